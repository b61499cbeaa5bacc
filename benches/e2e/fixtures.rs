//! What the harness feeds Baton: the config, complete P1 reports, and
//! histories of stored commits built with the domain's own `decide`.

use baton::config::Config;
use baton::domain::{
    apply, decide, handoff_id_for, Command, Commit, IncidentCommand, Policy, Report, Severity,
};
use baton::testkit::report;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub const TEMPLATE: &str = "agent_failure";

/// Production defaults (P1: page at once, first response 5 min), the HTTP
/// face off, and the ownership/runbook maps the reports match.
const BASE: &str = r#"
[http]
enabled = false

[[ownership]]
workflow = "billing-*"
team = "payments"
primary = "alice"
backup = "bob"

[[runbook]]
workflow = "billing-*"
rollback_command = "billing-sync rollback --to last-good"
tested = true
"#;

pub fn config(url: &str, extra: &str) -> anyhow::Result<Config> {
    let mut cfg = Config::parse(&format!("{BASE}\n{extra}")).map_err(anyhow::Error::msg)?;
    cfg.nats.url = url.to_string();
    cfg.validate()?;
    Ok(cfg)
}

/// [`config`] as a file's text, for `baton serve --config` (the URL in
/// `[nats]`, which `extra` must not have).
pub fn config_text(url: &str, extra: &str) -> String {
    format!("{BASE}\n{extra}\n[nats]\nurl = \"{url}\"\n")
}

/// A complete P1 report of its own run: one new handoff each.
pub fn p1(i: usize) -> Report {
    let mut r = report(Severity::P1);
    r.packet.run_id = Some(format!("bench-run-{i}"));
    r
}

/// The report as a runner publishes it.
pub fn p1_payload(i: usize) -> Bytes {
    serde_json::to_vec(&p1(i))
        .expect("reports serialize")
        .into()
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

fn seal(events: Vec<baton::domain::NewEvent>, id: Uuid, now: DateTime<Utc>) -> Commit {
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
    let step = |state: &mut Option<_>, commit: &Commit| {
        for e in &commit.events {
            apply(state, e);
        }
    };
    step(&mut state, &open);
    let due = state
        .as_ref()
        .and_then(|h: &baton::domain::Handoff| h.next_deadline(policy))
        .expect("armed");
    let escalate = seal(
        decide(state.as_ref(), &Command::Tick, due, policy).expect("tick"),
        id,
        due,
    );
    step(&mut state, &escalate);
    let acked_at = due + chrono::Duration::seconds(40);
    let ack = seal(
        decide(
            state.as_ref(),
            &Command::Incident(IncidentCommand::Acknowledge { by: "alice".into() }),
            acked_at,
            policy,
        )
        .expect("ack"),
        id,
        acked_at,
    );
    step(&mut state, &ack);
    let resolved_at = acked_at + chrono::Duration::minutes(20);
    let resolve = seal(
        decide(
            state.as_ref(),
            &Command::Incident(IncidentCommand::Resolve {
                by: "alice".into(),
                note: Some("failed over to the standby ledger".into()),
            }),
            resolved_at,
            policy,
        )
        .expect("resolve"),
        id,
        resolved_at,
    );
    (id, [open, escalate, ack, resolve])
}
