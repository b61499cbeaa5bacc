//! The tracker's figures behind `GET /v1/stats?days=N`.
//!
//! [`compute`] is a pure function of the handoffs' current state, the policy
//! and `now`: no I/O, no clock, so it is unit-tested with fixed data and two
//! daemons with the same event stream answer the same figures.
//!
//! Definitions (docs/wire-contract.md, "HTTP API", repeats them):
//! - the window is the handoffs *opened* in the last `days` days, drills
//!   left out (they are real events but not production figures);
//! - MTTA is opened → acknowledged, over the acknowledged handoffs;
//!   percentiles are nearest-rank;
//! - a handoff breached its SLA when its first response (the
//!   acknowledgement, else the resolution) came after the severity's
//!   first-response deadline, or has not come and the deadline has passed;
//!   the breach rate divides by the handoffs whose outcome is settled
//!   (responded, or past due), so a handoff opened a minute ago counts as
//!   neither;
//! - handoffs closed longer ago than `limits.closed_retention` have left
//!   memory: a window longer than the retention says so in
//!   `closed_evicted_before` (Prometheus' replayed series stay complete);
//! - HCS figures use the current score (after any enrichment), so they show
//!   how complete the packets people work with are; the `baton_hcs`
//!   histogram keeps the score at open.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Handoff, Incident, Policy, Severity};

/// How many of the most often missing fields are listed.
pub const TOP_MISSING: usize = 10;

/// The figures for one window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    /// Window length in days.
    pub days: u32,
    /// Start of the window (handoffs opened at or after it count).
    pub since: DateTime<Utc>,
    /// When the figures were computed.
    pub now: DateTime<Utc>,
    /// Handoffs opened in the window.
    pub total: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// `resolved / total`; null when there are none.
    pub completion_rate: Option<f64>,
    /// Per severity; every severity is present, with zeros if idle.
    pub by_severity: BTreeMap<String, SeverityStats>,
    /// Per team.
    pub by_team: BTreeMap<String, TeamStats>,
    /// Fields still missing from packets, most often first (at most 10).
    pub missing_fields: Vec<FieldCount>,
    /// Team handoffs started in the window, per template and sending team
    /// (completion rate, acceptance and completion hours, returns,
    /// completeness, rating). They are not in the incident figures above.
    pub work: Vec<crate::teams::WorkStats>,
    /// Set when the figures are incomplete: handoffs closed before this
    /// moment have left memory (`limits.closed_retention`) and are not
    /// counted. Absent when the window is within the retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_evicted_before: Option<DateTime<Utc>>,
}

/// Figures for one severity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeverityStats {
    pub handoffs: u64,
    pub resolved: u64,
    pub acknowledged: u64,
    /// Opened → acknowledged, seconds; null without acknowledgements.
    pub mtta_seconds: Option<Mtta>,
    /// Handoffs whose first response missed the deadline.
    pub sla_breaches: u64,
    /// `sla_breaches` over the handoffs whose outcome is settled; null if none is.
    pub sla_breach_rate: Option<f64>,
    /// Mean current HCS; null without handoffs.
    pub mean_hcs: Option<f64>,
}

/// Mean and nearest-rank percentiles, seconds.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Mtta {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Figures for one team.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TeamStats {
    pub handoffs: u64,
    pub mean_hcs: f64,
}

/// How many handoffs miss a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldCount {
    pub field: String,
    pub count: u64,
}

/// The start of the window of `days` days ending at `now`: handoffs opened
/// at or after it count.
pub fn window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// Computes the figures over the handoffs opened in the last `days` days
/// (`handoffs` may hold more: those opened earlier are left out).
pub fn compute(handoffs: &[Handoff], policy: &Policy, now: DateTime<Utc>, days: u32) -> Stats {
    let since = window_start(now, days);
    let window: Vec<&Incident> = handoffs
        .iter()
        .filter_map(Handoff::as_incident)
        .filter(|h| h.opened_at >= since && !h.drill)
        .collect();

    let by_severity = Severity::ALL
        .iter()
        .map(|&sev| {
            let of: Vec<&Incident> = window
                .iter()
                .copied()
                .filter(|h| h.severity == sev)
                .collect();
            (sev.as_str().to_string(), severity_stats(&of, policy, now))
        })
        .collect();

    let mut teams: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut missing: BTreeMap<&str, u64> = BTreeMap::new();
    for h in &window {
        let t = teams.entry(h.team.clone()).or_default();
        t.0 += 1;
        t.1 += h.hcs.score;
        for f in &h.hcs.missing {
            *missing.entry(f.as_str()).or_default() += 1;
        }
    }
    let by_team = teams
        .into_iter()
        .map(|(team, (n, sum))| {
            (
                team,
                TeamStats {
                    handoffs: n,
                    mean_hcs: round(sum / n as f64, 2),
                },
            )
        })
        .collect();
    let mut missing_fields: Vec<FieldCount> = missing
        .into_iter()
        .map(|(field, count)| FieldCount {
            field: field.to_string(),
            count,
        })
        .collect();
    // Most often first; ties by name so the answer is stable.
    missing_fields.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.field.cmp(&b.field)));
    missing_fields.truncate(TOP_MISSING);

    let total = window.len() as u64;
    let resolved = window.iter().filter(|h| h.resolved.is_some()).count() as u64;
    Stats {
        days,
        since,
        now,
        total,
        resolved,
        completion_rate: ratio(resolved, total),
        by_severity,
        by_team,
        missing_fields,
        work: crate::teams::work_stats(handoffs.iter().filter(|h| h.opened_at() >= since)),
        closed_evicted_before: None,
    }
}

fn severity_stats(of: &[&Incident], policy: &Policy, now: DateTime<Utc>) -> SeverityStats {
    let mut mtta: Vec<f64> = of
        .iter()
        .filter_map(|h| h.mtta_ms)
        .map(|ms| ms as f64 / 1000.0)
        .collect();
    mtta.sort_by(f64::total_cmp);
    let (mut breaches, mut settled) = (0u64, 0u64);
    for h in of {
        match breached(h, policy, now) {
            Some(true) => {
                breaches += 1;
                settled += 1;
            }
            Some(false) => settled += 1,
            None => {}
        }
    }
    let n = of.len() as u64;
    SeverityStats {
        handoffs: n,
        resolved: of.iter().filter(|h| h.resolved.is_some()).count() as u64,
        acknowledged: of.iter().filter(|h| h.acknowledged.is_some()).count() as u64,
        mtta_seconds: (!mtta.is_empty()).then(|| Mtta {
            mean: round(mtta.iter().sum::<f64>() / mtta.len() as f64, 3),
            p50: percentile(&mtta, 50.0),
            p90: percentile(&mtta, 90.0),
            p99: percentile(&mtta, 99.0),
        }),
        sla_breaches: breaches,
        sla_breach_rate: ratio(breaches, settled),
        mean_hcs: (n > 0).then(|| round(of.iter().map(|h| h.hcs.score).sum::<f64>() / n as f64, 2)),
    }
}

/// `Some(breached)` once the outcome is settled, `None` while the first
/// response is still within its deadline.
fn breached(h: &Incident, policy: &Policy, now: DateTime<Utc>) -> Option<bool> {
    let due = h.first_response_due(policy);
    let responded = h
        .acknowledged
        .as_ref()
        .or(h.resolved.as_ref())
        .map(|s| s.at);
    match responded {
        Some(at) => Some(at > due),
        None if now > due => Some(true),
        None => None,
    }
}

/// Nearest-rank percentile of sorted, non-empty values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    round(sorted[rank.clamp(1, sorted.len()) - 1], 3)
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| round(num as f64 / den as f64, 4))
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Test fixtures shared with the HTTP module's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use uuid::Uuid;

    use crate::domain::{incident::apply, Event, Incident, Severity};
    use crate::testkit::full_packet;

    /// A just-opened incident, built by applying a stored `opened` event
    /// (decoded from JSON, so fields added to the event later keep their
    /// defaults and this fixture keeps compiling).
    pub fn handoff(id: Uuid, sev: Severity, team: &str, opened_at: DateTime<Utc>) -> Incident {
        let opened: Event = serde_json::from_value(json!({
            "id": Uuid::nil(), "handoff_id": id, "version": 1,
            "occurred_at": opened_at, "actor": "baton", "type": "opened",
            "data": {"template": "agent_failure", "severity": sev, "team": team, "packet": full_packet()},
        }))
        .expect("an opened event decodes");
        let mut state = None;
        apply(&mut state, &opened);
        state.expect("opened creates state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The figures are incidents'; the helpers build incidents and `compute`
    // below wraps them as the projection holds them.
    use crate::domain::Incident as Handoff;
    use crate::domain::{Hcs, Stamp};

    fn compute(hs: &[Handoff], p: &Policy, now: DateTime<Utc>, days: u32) -> Stats {
        let all: Vec<crate::domain::Handoff> = hs
            .iter()
            .cloned()
            .map(crate::domain::Handoff::Incident)
            .collect();
        super::compute(&all, p, now, days)
    }
    use crate::testkit::policy;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
    }

    /// A paged handoff opened `ago` before `now()`.
    fn handoff(sev: Severity, team: &str, ago: Duration, score: f64, missing: &[&str]) -> Handoff {
        let mut h = fixtures::handoff(Uuid::now_v7(), sev, team, now() - ago);
        h.hcs = Hcs {
            score,
            missing: missing.iter().map(|s| s.to_string()).collect(),
            ..Hcs::default()
        };
        h.gate_passed = true;
        h.paged_at = Some(h.opened_at);
        h
    }

    fn acked(mut h: Handoff, after: Duration) -> Handoff {
        h.acknowledged = Some(Stamp {
            by: "alice".into(),
            at: h.opened_at + after,
        });
        h.mtta_ms = Some(after.num_milliseconds());
        h
    }

    fn resolved(mut h: Handoff, after: Duration) -> Handoff {
        h.resolved = Some(Stamp {
            by: "alice".into(),
            at: h.opened_at + after,
        });
        h
    }

    #[test]
    fn empty_input_gives_zeros_and_nulls_for_every_severity() {
        let s = compute(&[], &policy(), now(), 30);
        assert_eq!((s.total, s.resolved, s.completion_rate), (0, 0, None));
        assert_eq!(s.by_severity.len(), 3);
        let p1 = &s.by_severity["P1"];
        assert_eq!(p1.handoffs, 0);
        assert_eq!(
            (p1.mtta_seconds.clone(), p1.sla_breach_rate, p1.mean_hcs),
            (None, None, None)
        );
        assert!(s.by_team.is_empty() && s.missing_fields.is_empty());
        assert_eq!(s.since, now() - Duration::days(30));
    }

    #[test]
    fn mtta_mean_and_nearest_rank_percentiles_per_severity() {
        let p = policy();
        // P1 acks after 10..=100 s: mean 55, p50 = 5th of 10 = 50, p90 = 90, p99 = 100.
        let hs: Vec<Handoff> = (1..=10)
            .map(|i| {
                acked(
                    handoff(Severity::P1, "payments", Duration::hours(1), 100.0, &[]),
                    Duration::seconds(i * 10),
                )
            })
            .collect();
        let s = compute(&hs, &p, now(), 30);
        let m = s.by_severity["P1"].mtta_seconds.clone().unwrap();
        assert_eq!(
            m,
            Mtta {
                mean: 55.0,
                p50: 50.0,
                p90: 90.0,
                p99: 100.0
            }
        );
        assert_eq!(s.by_severity["P1"].acknowledged, 10);
        assert_eq!(s.by_severity["P2"].mtta_seconds, None);
    }

    #[test]
    fn breaches_count_late_responses_and_overdue_silence_but_not_pending_ones() {
        let p = policy(); // P1 first response 5 min
        let hs = vec![
            acked(
                handoff(Severity::P1, "a", Duration::hours(2), 100.0, &[]),
                Duration::minutes(2),
            ),
            acked(
                handoff(Severity::P1, "a", Duration::hours(2), 100.0, &[]),
                Duration::minutes(9),
            ),
            // Never acknowledged, resolved late: a breach.
            resolved(
                handoff(Severity::P1, "a", Duration::hours(2), 100.0, &[]),
                Duration::minutes(30),
            ),
            // Silent and past due: a breach.
            handoff(Severity::P1, "a", Duration::minutes(6), 100.0, &[]),
            // Silent but still within its 5 minutes: not settled, not counted.
            handoff(Severity::P1, "a", Duration::minutes(1), 100.0, &[]),
        ];
        let s = compute(&hs, &p, now(), 30);
        let p1 = &s.by_severity["P1"];
        assert_eq!((p1.handoffs, p1.sla_breaches), (5, 3));
        assert_eq!(p1.sla_breach_rate, Some(0.75));
        assert_eq!((s.total, s.resolved, s.completion_rate), (5, 1, Some(0.2)));
    }

    #[test]
    fn the_window_keeps_only_handoffs_opened_in_the_last_days() {
        let hs = vec![
            handoff(Severity::P2, "a", Duration::days(3), 80.0, &[]),
            handoff(Severity::P2, "a", Duration::days(40), 10.0, &[]),
        ];
        assert_eq!(compute(&hs, &policy(), now(), 30).total, 1);
        assert_eq!(compute(&hs, &policy(), now(), 60).total, 2);
        assert_eq!(compute(&hs, &policy(), now(), 1).total, 0);
    }

    #[test]
    fn mean_hcs_per_severity_and_team_and_the_most_missing_fields() {
        let d = Duration::hours(1);
        let hs = vec![
            handoff(Severity::P1, "payments", d, 89.0, &["run_id"]),
            handoff(Severity::P1, "payments", d, 100.0, &[]),
            handoff(
                Severity::P3,
                "search",
                d,
                60.0,
                &["run_id", "rollback_command"],
            ),
            handoff(
                Severity::P3,
                "search",
                d,
                70.0,
                &["ttl_seconds", "rollback_command", "run_id"],
            ),
        ];
        let s = compute(&hs, &policy(), now(), 30);
        assert_eq!(s.by_severity["P1"].mean_hcs, Some(94.5));
        assert_eq!(s.by_severity["P3"].mean_hcs, Some(65.0));
        assert_eq!(s.by_severity["P2"].mean_hcs, None);
        assert_eq!(
            s.by_team["payments"],
            TeamStats {
                handoffs: 2,
                mean_hcs: 94.5
            }
        );
        assert_eq!(s.by_team["search"].mean_hcs, 65.0);
        let top: Vec<(&str, u64)> = s
            .missing_fields
            .iter()
            .map(|f| (f.field.as_str(), f.count))
            .collect();
        assert_eq!(
            top,
            [("run_id", 3), ("rollback_command", 2), ("ttl_seconds", 1)]
        );
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0], 50.0), 1.0);
        assert_eq!(percentile(&[1.0, 2.0], 51.0), 2.0);
    }
}
