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

/// The dedup key of a report: its `dedup_key`, else `workflow_id/run_id`;
/// `None` when it has neither (a keyless report: every one is new).
pub fn dedup_key_for(report: &Report) -> Option<String> {
    match (
        &report.dedup_key,
        &report.packet.workflow_id,
        &report.packet.run_id,
    ) {
        (Some(k), _, _) => Some(k.clone()),
        (None, Some(w), Some(r)) => Some(format!("{w}/{r}")),
        _ => None,
    }
}

/// The handoff id of the first occurrence of a report's dedup key:
/// UUIDv5 of the template and the key ([`dedup_key_for`]), so a repeated
/// report finds its handoff; `None` when no key is possible (the caller
/// then uses [`keyless_handoff_id`]).
pub fn handoff_id_for(template: &str, report: &Report) -> Option<Uuid> {
    dedup_key_for(report).map(|k| keyed_handoff_id(template, &k))
}

/// The id of occurrence `n` of a dedup key. The first is
/// [`keyed_handoff_id`] (the id every report of the key had before
/// recurrences existed); occurrence `n ≥ 2` is UUIDv5 of
/// `"<template>\n<key>\n#<n>"`. Every daemon derives the same id, so the
/// next occurrence is opened once: its first append expects sequence 0.
pub fn occurrence_id(template: &str, key: &str, n: u32) -> Uuid {
    if n <= 1 {
        keyed_handoff_id(template, key)
    } else {
        Uuid::new_v5(
            &HANDOFF_NAMESPACE,
            format!("{template}\n{key}\n#{n}").as_bytes(),
        )
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
        assert_eq!(
            occurrence_id("agent_failure", "billing-sync/fx-1", 1),
            keyed_handoff_id("agent_failure", "billing-sync/fx-1")
        );
        assert_eq!(
            occurrence_id("agent_failure", "billing-sync/fx-1", 2).to_string(),
            "f65e435b-8b43-5e54-89ab-834fc5fda7f3"
        );
        let a = keyless_handoff_id(1_700_000_000_000, 7);
        assert_eq!(a, keyless_handoff_id(1_700_000_000_000, 7));
        assert_ne!(a, keyless_handoff_id(1_700_000_000_000, 8));
        assert_eq!(a.get_version_num(), 7);
    }
}
