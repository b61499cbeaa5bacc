//! The binary's side of Baton: the command line ([`args`]), the verbs that
//! talk to a running daemon over NATS ([`verbs`]) and the read-only tools
//! over the log ([`replay`]). The daemon never imports any of it.

pub mod args;
pub mod exit;
pub mod replay;
pub mod show;
pub mod verbs;
