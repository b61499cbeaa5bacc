//! The application layer: the one write path and the reads every transport
//! answers with, free of any transport.
//!
//! - [`engine`] — load state, `decide`, append with optimistic concurrency, retry.
//! - [`views`] — the API's representation of a handoff, the same for NATS,
//!   HTTP and the CLI.

pub mod engine;
pub mod views;
