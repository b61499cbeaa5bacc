//! Transports that only translate: bytes in, a call on the application
//! service (`app::Handoffs`) or a job, bytes out.
//!
//! - [`nats`] — the one request/reply loop for `<prefix>.cmd.*` and
//!   `<prefix>.job.*` (the CLI goes through it).
//!
//! The HTTP face (`http`) is the other transport; it calls the same
//! service with the same request types and errors.

// The API's own layer: every public item says what it is.
#![warn(missing_docs)]

pub mod nats;
