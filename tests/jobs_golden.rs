//! Job bodies on a fixed event history give the expected digests (golden
//! files under tests/fixtures/jobs/; `UPDATE_GOLDEN=1 cargo test --test
//! jobs_golden` rewrites them after an intended change).

use std::path::PathBuf;

use baton::domain::{
    apply, decide, handoff_id_for, Command, Handoff, IncidentCommand, Policy, Severity,
};
use baton::jobs::{audit, review};
use baton::testkit::{policy, report};
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
}

/// Runs commands (at offsets in seconds from t0) against one handoff.
fn handoff(policy: &Policy, r: baton::domain::Report, steps: &[(i64, Command)]) -> Handoff {
    let id = handoff_id_for("agent_failure", &r).unwrap();
    let mut state = None;
    let mut all = vec![(
        0,
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: r,
            warnings: vec![],
            source: None,
        }),
    )];
    all.extend(steps.iter().cloned());
    for (at, cmd) in all {
        let now = t0() + Duration::seconds(at);
        for e in decide(state.as_ref(), &cmd, now, policy).unwrap() {
            apply(&mut state, &e.seal(Uuid::nil(), id, now));
        }
    }
    state.unwrap()
}

fn run(n: u32) -> baton::domain::Report {
    let mut r = report(Severity::P1);
    r.packet.run_id = Some(format!("run-{n}"));
    r
}

fn history(policy: &Policy) -> Vec<Handoff> {
    let ack = |by: &str| Command::Incident(IncidentCommand::Acknowledge { by: by.into() });
    let mut missing_rollback = run(3);
    missing_rollback.packet.rollback_command = None;
    missing_rollback.packet.workflow_id = Some("search-reindex".into());
    missing_rollback.team = Some("search".into());
    let mut p2 = report(Severity::P2);
    p2.packet.run_id = Some("p2".into());
    p2.packet.workflow_id = Some("search-reindex".into());
    p2.packet.rollback_command = None;
    p2.team = Some("search".into());
    let mut drill = run(9);
    drill.drill = true;
    drill.team = Some("drill".into());
    drill.dedup_key = Some("drill/1".into());
    vec![
        // Acked in 2 minutes: no escalation.
        handoff(policy, run(1), &[(120, ack("alice"))]),
        // Acked after two escalation steps.
        handoff(policy, run(2), &[(700, Command::Tick), (700, ack("bob"))]),
        // Never acked: all three steps.
        handoff(policy, missing_rollback, &[(2000, Command::Tick)]),
        handoff(policy, p2, &[(60, ack("dana"))]),
        // A drill acked in 90 s and resolved at 10 min.
        handoff(
            policy,
            drill,
            &[
                (90, ack("drill-primary")),
                (
                    600,
                    Command::Incident(IncidentCommand::Resolve {
                        by: "drill-primary".into(),
                        note: None,
                    }),
                ),
            ],
        ),
        // Opened two days before the window: outside it.
        {
            let mut old = run(7);
            old.packet.workflow_id = Some("legacy-export".into());
            let mut h = handoff(policy, old, &[]);
            if let Handoff::Incident(i) = &mut h {
                i.opened_at -= Duration::days(2);
            }
            h
        },
    ]
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jobs")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn daily_review_matches_its_golden_files() {
    let policy = policy();
    let h = history(&policy);
    let r = review::daily_review(&h, &policy, t0() + Duration::hours(12), |h| h.drill);
    assert_eq!(
        r.opened, 4,
        "drills and old handoffs are not production figures"
    );
    assert_eq!(r.top_escalations.len(), 2);
    assert_eq!(
        r.top_escalations[0].acknowledged_by, None,
        "unacked, highest level first"
    );
    assert_eq!(
        r.top_missing_field.as_ref().unwrap().field,
        "rollback_command"
    );
    assert_eq!(r.drills[0].result, "passed");
    golden(
        "daily-review.json",
        &serde_json::to_string_pretty(&r).unwrap(),
    );
    golden("daily-review.md", &review::render_markdown(&r));
}

/// The default policy plus a rule last matched long ago, one never
/// matched, an owner with no backup, one whose backup is the primary, and
/// an untested rollback.
fn audit_policy() -> Policy {
    let mut policy = policy();
    policy.ownership.push(baton::domain::OwnershipRule {
        workflow: "legacy-*".into(),
        team: "exports".into(),
        primary: "gus".into(),
        backup: None,
    });
    policy.ownership.push(baton::domain::OwnershipRule {
        workflow: "ml-*".into(),
        team: "ml".into(),
        primary: "hana".into(),
        backup: Some("HANA".into()),
    });
    policy.runbook.push(baton::domain::RunbookRule {
        workflow: "search-*".into(),
        rollback_command: "search alias swap --to previous".into(),
        tested: false,
    });
    policy
}

#[test]
fn ownership_audit_matches_its_golden_files() {
    let policy = audit_policy();
    let h = history(&policy);
    let a = audit::ownership_audit(
        &policy,
        &h,
        t0() + Duration::hours(12),
        std::time::Duration::from_secs(86400),
    );
    let stale: Vec<_> = a.stale_rules.iter().map(|r| r.workflow.as_str()).collect();
    assert_eq!(
        stale,
        ["legacy-*", "ml-*"],
        "legacy matched 2 days ago, ml never"
    );
    assert_eq!(a.no_backup.len(), 1);
    assert_eq!(a.backup_is_primary.len(), 1);
    assert_eq!(a.teams_without_rule, ["search"], "drills reveal no team");
    assert_eq!(a.untested_rollbacks.len(), 1);
    golden(
        "ownership-audit.json",
        &serde_json::to_string_pretty(&a).unwrap(),
    );
    golden("ownership-audit.md", &audit::render_markdown(&a));
}

/// The audit job walks the handoffs newest first and stops once nothing
/// older can change the audit: what it picks audits the same as all of
/// them, whether a rule never matched (the walk reaches the end) or every
/// rule matched within the window (it stops there).
#[test]
fn the_audit_of_what_a_newest_first_walk_picks_equals_the_audit_of_everything() {
    let now = t0() + Duration::hours(12);
    let stale_after = std::time::Duration::from_secs(86400);
    for (policy, stops_early) in [(audit_policy(), false), (policy(), true)] {
        let mut h = history(&policy);
        h.sort_by_key(|h| std::cmp::Reverse((h.opened_at(), h.id())));
        let mut evidence = audit::Evidence::new(&policy, now, stale_after);
        let visited = h
            .iter()
            .take_while(|x| evidence.visit(x).is_continue())
            .count();
        assert_eq!(
            audit::ownership_audit(&policy, &evidence.picked, now, stale_after),
            audit::ownership_audit(&policy, &h, now, stale_after)
        );
        assert_eq!(
            visited < h.len(),
            stops_early,
            "visited {visited} of {}",
            h.len()
        );
        assert!(evidence.picked.len() < h.len(), "drills are never picked");
    }
}

/// The review job reads only the incidents opened since
/// `review::reads_since`: the review of those is the review of all.
#[test]
fn the_review_of_what_the_job_reads_equals_the_review_of_everything() {
    let policy = policy();
    let mut h = history(&policy);
    // And one from long before: past the drills' week too.
    let mut ancient = h[0].clone();
    if let Handoff::Incident(i) = &mut ancient {
        i.opened_at -= Duration::days(8);
        i.id = Uuid::from_u128(8);
    }
    h.push(ancient);
    let end = t0() + Duration::hours(12);
    let read: Vec<Handoff> = h
        .iter()
        .filter(|x| x.opened_at() >= review::reads_since(end) && x.opened_at() < end)
        .cloned()
        .collect();
    assert!(read.len() < h.len(), "the old handoff is not read");
    assert_eq!(
        review::daily_review(&read, &policy, end, |h| h.drill),
        review::daily_review(&h, &policy, end, |h| h.drill)
    );
}
