//! The weekly synthetic P1 drill: a complete P1 report marked `drill: true`,
//! published through the normal ingest path so it exercises everything a
//! real incident does — scoring, gating, paging, escalation — on the drill
//! route (`[jobs.weekly_drill] route`), never the real on-call unless
//! `page_real_routes` is set. Its figures (HCS, time to first page, to
//! acknowledgement, to containment) appear in the daily review.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::DrillConfig;
use crate::domain::{BlastRadius, Owner, Packet, Report, Severity};

/// The drill report as published (JSON body of `<prefix>.report.agent_failure`).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    #[serde(flatten)]
    inner: Report,
}

impl DrillReport {
    /// The domain report it parses to.
    pub fn report(&self) -> Report {
        self.inner.clone()
    }
}

/// Builds the drill for the run at `at`. Its dedup key names the run, so a
/// retried publish joins the same handoff.
pub fn drill_report(cfg: &DrillConfig, at: DateTime<Utc>) -> DrillReport {
    let run = format!("drill-{}", at.format("%Y%m%dT%H%M%S"));
    DrillReport {
        inner: Report {
            severity: Severity::P1,
            packet: Packet {
                run_id: Some(run.clone()),
                workflow_id: Some(cfg.workflow_id.clone()),
                objective: Some(
                    "Weekly synthetic P1 drill: acknowledge it like a real page, then resolve it"
                        .into(),
                ),
                failure_class: Some("synthetic_drill".into()),
                last_successful_step: Some("drill_scheduled".into()),
                failing_step: Some("drill_page".into()),
                error_summary: Some(
                    "This is a drill. Measure: time to acknowledge and time to contain.".into(),
                ),
                blast_radius: Some(BlastRadius {
                    users: Some(0),
                    jobs: Some(0),
                }),
                recommended_action: Some(
                    "Acknowledge (baton ack), then resolve (baton resolve)".into(),
                ),
                rollback_command: Some("true  # nothing to roll back in a drill".into()),
                owner: Some(Owner {
                    primary: Some(format!("{}-primary", cfg.team)),
                    backup: Some(format!("{}-backup", cfg.team)),
                }),
                ttl_seconds: Some(3600),
            },
            dedup_key: Some(format!("drill/{run}")),
            team: Some(cfg.team.clone()),
            drill: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_is_a_complete_valid_p1_marked_drill() {
        let d = drill_report(
            &DrillConfig::default(),
            DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
        );
        let bytes = serde_json::to_vec(&d).unwrap();
        let parsed = crate::domain::parse_report(
            &bytes,
            crate::domain::ParseLimits {
                max_report_bytes: 65536,
                max_field_bytes: 4096,
            },
        )
        .unwrap();
        assert_eq!(parsed.report, d.report());
        assert!(parsed.report.drill);
        assert_eq!(
            crate::domain::score(&parsed.report.packet, Some("drill")).score,
            100.0
        );
    }
}
