//! Baton: an event-sourced handoff and incident-escalation daemon on NATS JetStream.
pub mod domain;
