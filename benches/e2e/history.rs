//! Stored histories built with the domain's own `decide` and `apply`, no
//! NATS: a complete P1 report per run and its whole life as the commits
//! Baton would store. Pure, so the e2e harness (through `fixtures.rs`) and
//! `benches/replay_cost.rs` (which includes this file by `#[path]`) replay
//! the same commits.

use baton::domain::{
    apply, decide, handoff_id_for, Command, Commit, Handoff, IncidentCommand, NewEvent, Policy,
    Report, Severity,
};
use baton::testkit::report;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The template every bench report is filed under.
pub const TEMPLATE: &str = "agent_failure";

/// A complete P1 report of its own run: one new handoff each.
pub fn p1(i: usize) -> Report {
    let mut r = report(Severity::P1);
    r.packet.run_id = Some(format!("bench-run-{i}"));
    r
}

fn open_cmd(i: usize) -> Command {
    Command::Incident(IncidentCommand::Open {
        template: TEMPLATE.into(),
        report: p1(i),
        warnings: vec![],
        source: Some(format!("report:{}", i + 1)),
    })
}

/// The commit Baton stores for report `i` opened at `now` (opened, scored,
/// paged), and its handoff id.
pub fn open_commit(policy: &Policy, i: usize, now: DateTime<Utc>) -> (Uuid, Commit) {
    let id = handoff_id_for(TEMPLATE, &p1(i)).expect("keyed report");
    let events = decide(None, &open_cmd(i), now, policy).expect("opens");
    (id, seal(events, id, now))
}

fn seal(events: Vec<NewEvent>, id: Uuid, now: DateTime<Utc>) -> Commit {
    Commit {
        events: events
            .into_iter()
            .map(|e| e.seal(Uuid::now_v7(), id, now))
            .collect(),
    }
}

/// A handoff's whole life as four commits, as Baton would store them:
/// opened+scored+paged, escalated at the first-response deadline,
/// acknowledged, resolved.
pub fn lifecycle(policy: &Policy, i: usize, opened_at: DateTime<Utc>) -> (Uuid, [Commit; 4]) {
    let (id, open) = open_commit(policy, i, opened_at);
    let mut state = None;
    for e in &open.events {
        apply(&mut state, e);
    }
    let due = state
        .as_ref()
        .and_then(|h: &Handoff| h.next_deadline(policy))
        .expect("armed");
    let escalate = step(&mut state, policy, id, Command::Tick, due);
    let acked_at = due + chrono::Duration::seconds(40);
    let ack = IncidentCommand::Acknowledge { by: "alice".into() };
    let ack = step(&mut state, policy, id, Command::Incident(ack), acked_at);
    let resolved_at = acked_at + chrono::Duration::minutes(20);
    let resolve = IncidentCommand::Resolve {
        by: "alice".into(),
        note: Some("failed over to the standby ledger".into()),
    };
    let resolve = step(
        &mut state,
        policy,
        id,
        Command::Incident(resolve),
        resolved_at,
    );
    (id, [open, escalate, ack, resolve])
}

/// The commit `cmd` makes on `state` at `at`, applied to it.
fn step(
    state: &mut Option<Handoff>,
    policy: &Policy,
    id: Uuid,
    cmd: Command,
    at: DateTime<Utc>,
) -> Commit {
    let events = decide(state.as_ref(), &cmd, at, policy).expect("decides");
    let commit = seal(events, id, at);
    for e in &commit.events {
        apply(state, e);
    }
    commit
}
