//! Alerts from the tools teams already run, turned into reports: the
//! Alertmanager webhook (v4) and the PagerDuty Events API v2.
//!
//! Each intake maps what it receives into a *native report payload* (the
//! JSON a runner publishes on `baton.report.<template>`) and hands it to
//! [`Handoffs::submit_report`](crate::app::Handoffs::submit_report), so
//! every alert goes through the one validation, HCS, gating, dedup and
//! events; an alert that says "resolved" (or a PagerDuty acknowledge or
//! resolve) becomes a command on its dedup key's current handoff through
//! [`Handoffs::command_by_key`](crate::app::Handoffs::command_by_key).
//! Nothing here is a side door.
//!
//! The mapping (`map_*`, `parse_*`) is pure and holds no transport type;
//! the `receive`/`enqueue` functions call the application; `http::intake`
//! only translates bytes and statuses.
//!
//! - [`alertmanager`] — one handoff per alert, keyed by its fingerprint.
//! - [`pagerduty`] — trigger / acknowledge / resolve by `dedup_key`,
//!   answered exactly as PagerDuty answers.
//! - `rate` — the per-routing-key event budget (429 beyond it).

pub mod alertmanager;
pub mod pagerduty;
mod rate;

use std::collections::BTreeMap;

use crate::config::{AlertmanagerConfig, PagerDutyConfig};
use crate::domain::ParseLimits;

/// The configured integrations and the rate budgets of a running HTTP
/// face; built from `[alertmanager.*]` and `[pagerduty.*]` at start.
pub struct Intake {
    alertmanager: BTreeMap<String, AlertmanagerConfig>,
    pagerduty: pagerduty::Integrations,
}

impl Intake {
    /// The intakes of a configuration.
    pub fn new(
        alertmanager: BTreeMap<String, AlertmanagerConfig>,
        pagerduty: BTreeMap<String, PagerDutyConfig>,
    ) -> Self {
        Self {
            alertmanager,
            pagerduty: pagerduty::Integrations::new(pagerduty),
        }
    }
}

/// The longest a mapped string field may be: the field limit, and small
/// enough that a report of a dozen such fields, each escaped as JSON text
/// (up to 6× for control bytes), stays under the report limit.
fn field_budget(limits: ParseLimits) -> usize {
    limits
        .max_field_bytes
        .min(limits.max_report_bytes / 16)
        .max(16)
}

/// `s` trimmed and cut to at most `max` bytes on a char boundary, with `…`
/// marking a cut; `None` when nothing is left.
fn bounded(s: &str, max: usize) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.len() <= max {
        return Some(s.to_string());
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}…", &s[..end]))
}

/// Serializes a mapped report, halving every string until it fits in
/// `max_bytes` (escaping can make text several times longer than its
/// bytes): a legitimate alert is never refused for its report's size.
fn fit(mut report: serde_json::Map<String, serde_json::Value>, max_bytes: usize) -> Vec<u8> {
    loop {
        let bytes = serde_json::to_vec(&report).expect("a JSON map serializes");
        let longest = report
            .values()
            .filter_map(|v| v.as_str().map(str::len))
            .max()
            .unwrap_or(0);
        if bytes.len() <= max_bytes || longest <= 16 {
            return bytes;
        }
        for v in report.values_mut() {
            if let Some(s) = v.as_str() {
                if s.len() > 16 {
                    *v = serde_json::Value::String(
                        bounded(s, s.len() / 2).unwrap_or_else(|| "…".into()),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_on_char_boundaries_and_marks_the_cut() {
        assert_eq!(bounded("  abc ", 10).as_deref(), Some("abc"));
        assert_eq!(bounded("   ", 10), None);
        let cut = bounded(&"é".repeat(100), 21).unwrap();
        assert!(cut.len() <= 21 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn fit_shrinks_escaped_text_under_the_limit() {
        let mut m = serde_json::Map::new();
        m.insert("severity".into(), "P1".into());
        m.insert("error_summary".into(), "\u{1}".repeat(4000).into());
        m.insert("objective".into(), "x".repeat(4000).into());
        let bytes = fit(m, 4096);
        assert!(bytes.len() <= 4096, "{}", bytes.len());
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["severity"], "P1");
    }
}
