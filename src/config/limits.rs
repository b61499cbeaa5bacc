//! `[limits]`: size and concurrency limits.

use serde::{Deserialize, Serialize};

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest report accepted, bytes; larger ones are rejected (`too_large`).
    #[serde(default = "default_max_report_bytes")]
    pub max_report_bytes: usize,
    /// Longest string field kept, bytes; longer ones are truncated and the
    /// truncation is recorded as a warning on the `scored` event.
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Reports processed at once (also the ingest consumer's max ack pending / 2).
    #[serde(default = "default_ingest_concurrency")]
    pub ingest_concurrency: usize,
    /// Event appends awaiting their JetStream ack at once, across handoffs
    /// (async-nats blocks beyond 5,000 by default).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_appends: usize,
    /// Timer wake-ups executed at once.
    #[serde(default = "default_tick_concurrency")]
    pub tick_concurrency: usize,
}

const fn default_max_report_bytes() -> usize {
    64 * 1024
}
const fn default_max_field_bytes() -> usize {
    4096
}
const fn default_ingest_concurrency() -> usize {
    512
}
const fn default_max_in_flight() -> usize {
    4096
}
const fn default_tick_concurrency() -> usize {
    256
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_report_bytes: default_max_report_bytes(),
            max_field_bytes: default_max_field_bytes(),
            ingest_concurrency: default_ingest_concurrency(),
            max_in_flight_appends: default_max_in_flight(),
            tick_concurrency: default_tick_concurrency(),
        }
    }
}
