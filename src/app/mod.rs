//! The application layer: the one write path and the reads every transport
//! answers with, free of any transport.
//!
//! - [`engine`] — load state, `decide`, append with optimistic concurrency, retry.
//! - [`requests`] — one typed request per verb (also the OpenAPI schema),
//!   decoded through `decode` so every refusal keeps its code.
//! - [`error`] — [`AppError`]: each variant's code and HTTP status.
//! - [`views`] — the API's representation of a handoff, the same for NATS,
//!   HTTP and the CLI.
//! - [`list`] — the list's filters and keyset paging.

mod decode;
pub mod engine;
pub mod error;
pub mod list;
pub mod requests;
pub mod views;

pub use error::AppError;
