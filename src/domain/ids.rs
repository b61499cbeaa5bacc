//! Every handoff id derivation, in one place.
//!
//! Ids are derived, not stored in a side table, so that two daemons, a
//! redelivered report and `baton report` all reach the same handoff without
//! asking anyone: a dedup key maps to a UUIDv5; a report without one maps to
//! a UUIDv7 made from its stream time and sequence.

use uuid::Uuid;

use super::Report;

/// The namespace of handoff ids derived from dedup keys (UUIDv5).
pub const HANDOFF_NAMESPACE: Uuid = Uuid::from_u128(0x6261_746f_6e00_4000_8000_6861_6e64_6f66);

/// The id for `key` under `template`: UUIDv5 of `"<template>\n<key>"`. Used
/// by reports (below) and by team handoffs started with a `dedup_key`.
pub fn keyed_handoff_id(template: &str, key: &str) -> Uuid {
    Uuid::new_v5(&HANDOFF_NAMESPACE, format!("{template}\n{key}").as_bytes())
}

/// The handoff id for a report: UUIDv5 of the template and the dedup key
/// (default `workflow_id/run_id`), so a repeated report joins its handoff;
/// `None` when no key is possible (the caller then uses
/// [`keyless_handoff_id`]).
pub fn handoff_id_for(template: &str, report: &Report) -> Option<Uuid> {
    match (
        &report.dedup_key,
        &report.packet.workflow_id,
        &report.packet.run_id,
    ) {
        (Some(k), _, _) => Some(keyed_handoff_id(template, k)),
        (None, Some(w), Some(r)) => Some(keyed_handoff_id(template, &format!("{w}/{r}"))),
        _ => None,
    }
}

/// The id of a report with no dedup key: a UUIDv7 whose time is the report's
/// stream time and whose random bits come from its stream sequence. It is a
/// fresh id per report, yet a redelivered report maps to the same handoff,
/// so a crash between storing and acking cannot open it twice.
pub fn keyless_handoff_id(published_ms: u64, seq: u64) -> Uuid {
    let seed = Uuid::new_v5(&HANDOFF_NAMESPACE, format!("report-seq:{seq}").as_bytes());
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&seed.as_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(published_ms, &rand).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored handoff ids are forever: these exact values are in logs.
    #[test]
    fn ids_are_stable() {
        assert_eq!(
            keyed_handoff_id("agent_failure", "billing-sync/fx-1").to_string(),
            "555f1774-4cc7-54d8-a0b1-aef78daba506"
        );
        let a = keyless_handoff_id(1_700_000_000_000, 7);
        assert_eq!(a, keyless_handoff_id(1_700_000_000_000, 7));
        assert_ne!(a, keyless_handoff_id(1_700_000_000_000, 8));
        assert_eq!(a.get_version_num(), 7);
    }
}
