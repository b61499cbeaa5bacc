//! `[limits]`: size and concurrency limits, and how long the ingest keeps
//! trying to store a report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest `max_report_bytes` accepted: the broker's default `max_payload`
/// (1 MiB) less 64 KiB of headroom. A report is published whole (over
/// HTTP to `BATON_REPORTS`) and its fields are stored in one commit, so a
/// report the broker cannot carry could be accepted but never stored. A
/// rejection record is bounded on its own (at most 64 KiB, see
/// `app::rejection`), so any refused report can be recorded.
pub const MAX_REPORT_BYTES_LIMIT: usize = 1024 * 1024 - 64 * 1024;

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest report accepted, bytes; larger ones are rejected (`too_large`).
    /// At most 983040 (1 MiB, the broker's default `max_payload`, less
    /// 64 KiB of headroom); a larger value is a config error.
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
    /// Deliveries of a report the ingest tries before giving up on one it
    /// cannot store (neither its events nor its rejection): the last one
    /// records it as `unrecordable` on the rejected stream, terminates it
    /// and counts it (`baton_reports_terminated_total`). At least 1. The
    /// default 10 with the default backoff gives a report about 4 minutes
    /// (1+2+4+…+60+60+60 s): longer than a stream-leader election or a
    /// broker restart, so only a report that can never be stored ends so.
    #[serde(default = "default_max_report_attempts")]
    pub max_report_attempts: u32,
    /// How long a report that could not be stored waits before its next
    /// delivery; doubled after each failed attempt, up to
    /// `report_retry_backoff_max`.
    #[serde(default = "default_report_retry_backoff", with = "humantime_serde")]
    pub report_retry_backoff: Duration,
    /// The longest wait between two deliveries of a report.
    #[serde(default = "default_report_retry_backoff_max", with = "humantime_serde")]
    pub report_retry_backoff_max: Duration,
    /// How long a closed handoff (resolved, completed, cancelled) stays in
    /// memory after it closed; then it leaves the projection, the list and
    /// the snapshots, and is read from the log when asked for (`get`,
    /// timeline, commands, recurrences of its dedup key). Lists and stats
    /// show what is held, so a stats window longer than this (plus the
    /// handoff's open time) misses the handoffs evicted from it.
    /// Default `7d`; at least 1 ms.
    #[serde(default = "default_closed_retention", with = "humantime_serde")]
    pub closed_retention: Duration,
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
const fn default_max_report_attempts() -> u32 {
    10
}
const fn default_report_retry_backoff() -> Duration {
    Duration::from_secs(1)
}
const fn default_report_retry_backoff_max() -> Duration {
    Duration::from_secs(60)
}
const fn default_closed_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_report_bytes: default_max_report_bytes(),
            max_field_bytes: default_max_field_bytes(),
            ingest_concurrency: default_ingest_concurrency(),
            max_in_flight_appends: default_max_in_flight(),
            tick_concurrency: default_tick_concurrency(),
            max_report_attempts: default_max_report_attempts(),
            report_retry_backoff: default_report_retry_backoff(),
            report_retry_backoff_max: default_report_retry_backoff_max(),
            closed_retention: default_closed_retention(),
        }
    }
}

impl Limits {
    /// What is wrong with these limits, one line each (`Config::validate`
    /// lists them with the rest).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_report_bytes > MAX_REPORT_BYTES_LIMIT {
            problems.push(format!(
                "limits.max_report_bytes: {} is more than the broker can carry; \
                 at most {MAX_REPORT_BYTES_LIMIT} (1 MiB, NATS' default max_payload, \
                 less 64 KiB of headroom)",
                self.max_report_bytes
            ));
        }
        if self.max_in_flight_appends == 0 || self.max_in_flight_appends > 5000 {
            problems.push("limits.max_in_flight_appends: must be within 1..=5000".into());
        }
        if self.ingest_concurrency == 0 || self.tick_concurrency == 0 {
            problems.push("limits: concurrency values must be > 0".into());
        }
        if self.closed_retention < Duration::from_millis(1) {
            problems.push("limits.closed_retention: must be at least 1ms".into());
        }
        if self.max_field_bytes < 16 {
            problems.push("limits.max_field_bytes: must be at least 16".into());
        }
        if self.max_report_attempts == 0 {
            problems.push("limits.max_report_attempts: must be at least 1".into());
        }
        if self.report_retry_backoff.is_zero()
            || self.report_retry_backoff_max < self.report_retry_backoff
        {
            problems.push(
                "limits.report_retry_backoff: must be > 0 and at most report_retry_backoff_max"
                    .into(),
            );
        }
        problems
    }

    /// How long a report waits after its `delivered`-th delivery failed:
    /// `report_retry_backoff` doubled per earlier failure, capped.
    pub fn report_retry_delay(&self, delivered: i64) -> Duration {
        let doublings = u32::try_from(delivered.saturating_sub(1).max(0))
            .unwrap_or(u32::MAX)
            .min(30);
        self.report_retry_backoff
            .saturating_mul(1 << doublings)
            .min(self.report_retry_backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_report_bytes_beyond_what_the_broker_carries_is_refused() {
        let at = Limits {
            max_report_bytes: MAX_REPORT_BYTES_LIMIT,
            ..Limits::default()
        };
        assert_eq!(at.problems(), Vec::<String>::new());
        let over = Limits {
            max_report_bytes: MAX_REPORT_BYTES_LIMIT + 1,
            ..Limits::default()
        };
        let problems = over.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("limits.max_report_bytes: 983041 is more than"),
            "{problems:?}"
        );
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let l = Limits::default();
        let secs: Vec<u64> = (1..=9).map(|d| l.report_retry_delay(d).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Nonsense counts never panic or overflow.
        assert_eq!(l.report_retry_delay(0), Duration::from_secs(1));
        assert_eq!(l.report_retry_delay(i64::MAX), Duration::from_secs(60));
    }

    #[test]
    fn zero_attempts_and_a_backwards_backoff_are_refused() {
        let l = Limits {
            max_report_attempts: 0,
            report_retry_backoff: Duration::from_secs(5),
            report_retry_backoff_max: Duration::from_secs(1),
            ..Limits::default()
        };
        assert_eq!(l.problems().len(), 2, "{:?}", l.problems());
    }
}
