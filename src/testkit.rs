//! Test fixtures (see [`crate::domain::testkit`]), at the crate root for the
//! integration tests and benchmarks.

pub use crate::domain::testkit::*;
