//! Handoff Completeness Score: `HCS = 0.30·C + 0.25·O + 0.25·N + 0.20·R`.
//!
//! Each component is 0–100 and is the sum of fixed points for the packet
//! fields present (the rubric below; docs/hcs.md shows the same
//! table). Scoring is additive, so adding a field can never lower the score.
//!
//! | component | field | points |
//! |---|---|---|
//! | C context | objective, failure_class, error_summary, blast_radius | 25 each |
//! | O ownership | owner.primary 50, owner.backup 30 (only if ≠ primary), team 20 | |
//! | N next action | recommended_action 50, rollback_command 35, ttl_seconds 15 | |
//! | R reproducibility | run_id 55, workflow_id 15, last_successful_step 15, failing_step 15 | |
//!
//! `run_id` weighs most because without it nobody can find the failing run:
//! a packet missing only `run_id` scores 89 and misses the P1 gate of 90,
//! which is the playbook's own example.

use serde::{Deserialize, Serialize};

use super::Packet;

/// A score with its breakdown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hcs {
    /// Weighted total, 0–100, two decimals.
    pub score: f64,
    /// Context completeness, 0–100.
    pub context: u8,
    /// Ownership clarity, 0–100.
    pub ownership: u8,
    /// Next-action clarity, 0–100.
    pub next_action: u8,
    /// Reproducibility, 0–100.
    pub reproducibility: u8,
    /// Dotted names of the fields that scored nothing.
    pub missing: Vec<String>,
}

/// Scores a packet (and its team, which counts towards ownership).
pub fn score(packet: &Packet, team: Option<&str>) -> Hcs {
    let mut missing = Vec::new();
    let mut component = |parts: &[(&str, bool, u8)]| -> u8 {
        let mut total = 0u8;
        for (name, present, points) in parts {
            if *present {
                total += points;
            } else {
                missing.push((*name).to_string());
            }
        }
        total
    };
    let backup_distinct = match (packet.primary(), packet.backup()) {
        (Some(p), Some(b)) => !p.eq_ignore_ascii_case(b),
        (None, Some(_)) => true,
        _ => false,
    };
    let context = component(&[
        ("objective", packet.objective.is_some(), 25),
        ("failure_class", packet.failure_class.is_some(), 25),
        ("error_summary", packet.error_summary.is_some(), 25),
        ("blast_radius", packet.blast_radius.is_some(), 25),
    ]);
    let ownership = component(&[
        ("owner.primary", packet.primary().is_some(), 50),
        ("owner.backup", backup_distinct, 30),
        ("team", team.is_some(), 20),
    ]);
    let next_action = component(&[
        (
            "recommended_action",
            packet.recommended_action.is_some(),
            50,
        ),
        ("rollback_command", packet.rollback_command.is_some(), 35),
        ("ttl_seconds", packet.ttl_seconds.is_some(), 15),
    ]);
    let reproducibility = component(&[
        ("run_id", packet.run_id.is_some(), 55),
        ("workflow_id", packet.workflow_id.is_some(), 15),
        (
            "last_successful_step",
            packet.last_successful_step.is_some(),
            15,
        ),
        ("failing_step", packet.failing_step.is_some(), 15),
    ]);
    let hundredths = 30 * u32::from(context)
        + 25 * u32::from(ownership)
        + 25 * u32::from(next_action)
        + 20 * u32::from(reproducibility);
    Hcs {
        score: f64::from(hundredths) / 100.0,
        context,
        ownership,
        next_action,
        reproducibility,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::full_packet;
    use proptest::prelude::*;

    #[test]
    fn full_packet_scores_100() {
        let h = score(&full_packet(), Some("payments"));
        assert_eq!(h.score, 100.0);
        assert!(h.missing.is_empty());
    }

    #[test]
    fn playbook_example_missing_run_id_and_rollback_misses_the_p1_gate() {
        let mut p = full_packet();
        p.run_id = None;
        p.rollback_command = None;
        let h = score(&p, Some("payments"));
        assert_eq!(h.score, 80.25);
        assert_eq!(h.missing, vec!["rollback_command", "run_id"]);
        p.rollback_command = Some("undo".into());
        assert_eq!(score(&p, Some("payments")).score, 89.0);
    }

    #[test]
    fn backup_equal_to_primary_is_not_a_backup() {
        let mut p = full_packet();
        p.owner.as_mut().unwrap().backup = p.primary().map(str::to_uppercase);
        assert_eq!(score(&p, Some("t")).missing, vec!["owner.backup"]);
    }

    fn arb_packet() -> impl Strategy<Value = (Packet, bool)> {
        (proptest::collection::vec(any::<bool>(), 14), any::<bool>()).prop_map(|(m, team)| {
            let full = full_packet();
            let pick = |i: usize, v: Option<String>| if m[i] { v } else { None };
            let owner = crate::domain::Owner {
                primary: pick(10, full.primary().map(String::from)),
                backup: pick(11, full.backup().map(String::from)),
            };
            let p = Packet {
                run_id: pick(0, full.run_id.clone()),
                workflow_id: pick(1, full.workflow_id.clone()),
                objective: pick(2, full.objective.clone()),
                failure_class: pick(3, full.failure_class.clone()),
                last_successful_step: pick(4, full.last_successful_step.clone()),
                failing_step: pick(5, full.failing_step.clone()),
                error_summary: pick(6, full.error_summary.clone()),
                blast_radius: if m[7] {
                    full.blast_radius.clone()
                } else {
                    None
                },
                recommended_action: pick(8, full.recommended_action.clone()),
                rollback_command: pick(9, full.rollback_command.clone()),
                owner: (owner.primary.is_some() || owner.backup.is_some()).then_some(owner),
                ttl_seconds: if m[12] { full.ttl_seconds } else { None },
            };
            (p, team)
        })
    }

    proptest! {
        #[test]
        fn score_is_within_0_and_100((p, team) in arb_packet()) {
            let h = score(&p, team.then_some("t"));
            prop_assert!((0.0..=100.0).contains(&h.score));
            for c in [h.context, h.ownership, h.next_action, h.reproducibility] {
                prop_assert!(c <= 100);
            }
        }

        #[test]
        fn adding_a_field_never_lowers_the_score((p, team) in arb_packet(), field in 0usize..14) {
            let before = score(&p, team.then_some("t")).score;
            let mut q = p.clone();
            let full = full_packet();
            let mut team_after = team;
            match field {
                0 => q.run_id = full.run_id,
                1 => q.workflow_id = full.workflow_id,
                2 => q.objective = full.objective,
                3 => q.failure_class = full.failure_class,
                4 => q.last_successful_step = full.last_successful_step,
                5 => q.failing_step = full.failing_step,
                6 => q.error_summary = full.error_summary,
                7 => q.blast_radius = full.blast_radius,
                8 => q.recommended_action = full.recommended_action,
                9 => q.rollback_command = full.rollback_command,
                10 => { q.merge_from(&Packet { owner: full.owner.clone(), ..Default::default() }, true); }
                11 => q.ttl_seconds = full.ttl_seconds,
                _ => team_after = true,
            }
            prop_assert!(score(&q, team_after.then_some("t")).score >= before);
        }
    }
}
