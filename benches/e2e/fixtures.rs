//! What the harness feeds Baton: the config, complete P1 reports (also
//! published at a steady rate with deadlines just past, for the escalation
//! and delivery phases), and histories of stored commits built with the
//! domain's own `decide`; and escalation lateness read back from the
//! streams.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::ensure;
use baton::config::Config;
use baton::domain::{
    apply, decide, handoff_id_for, Command, Commit, EventData, IncidentCommand, Policy, Report,
    Severity,
};
use baton::pages::Page;
use baton::store::{decode_commit, Names};
use baton::testkit::report;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use uuid::Uuid;

use crate::broker::{read_all, stream_state};
use crate::daemon::Daemon;
use crate::sys::Spread;

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

/// Slack between the last report published and the first deadline.
const MARGIN: Duration = Duration::from_secs(3);

/// P1's first response for `n` reports published at `rate` per second: just
/// past the time publishing takes, so every handoff is open when the first
/// deadline comes and ~`rate` deadlines fire per second.
pub fn first_response_after(n: usize, rate: usize) -> Duration {
    Duration::from_secs_f64(n as f64 / rate as f64) + MARGIN
}

/// The `[severity.P1]` section of the escalation phases: first response
/// `first_response`, one step paging `oncall` and `incident_captain`.
pub fn escalating_p1(first_response: Duration) -> String {
    format!(
        "[severity.P1]\nfirst_response = \"{}ms\"\n\
         escalation = [ {{ routes = [\"oncall\", \"incident_captain\"], delay = \"1h\" }} ]\n",
        first_response.as_millis()
    )
}

/// Publishes complete P1 reports `0..n` to `subject` at a steady `rate` per
/// second (`rate / 1000` per millisecond tick, at least one), acks awaited
/// alongside; `on_sent(count)` after each publish.
pub async fn publish_at_rate(
    js: &async_nats::jetstream::Context,
    subject: &str,
    n: usize,
    rate: usize,
    mut on_sent: impl FnMut(usize),
) -> anyhow::Result<()> {
    let payloads: Vec<_> = (0..n).map(p1_payload).collect();
    let per_tick = (rate / 1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(per_tick as f64 / rate as f64));
    let mut acks = FuturesUnordered::new();
    let mut sent = 0;
    while sent < n {
        tokio::select! {
            _ = tick.tick() => {
                for _ in 0..per_tick.min(n - sent) {
                    let ack = js.publish(subject.to_string(), payloads[sent].clone()).await?;
                    acks.push(ack.into_future());
                    sent += 1;
                    on_sent(sent);
                }
            }
            Some(r) = acks.next(), if !acks.is_empty() => { r?; }
        }
    }
    while let Some(r) = acks.next().await {
        r?;
    }
    Ok(())
}

/// Waits (polling, up to `within`) until the daemon holds `n` handoffs;
/// fails naming how many it holds if they are not all open by then.
pub async fn wait_open(daemon: &Daemon, n: usize, within: Duration) -> anyhow::Result<usize> {
    let projection = daemon.shared().engine.projection().clone();
    let waited = Instant::now();
    while projection.len() < n && waited.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = projection.len();
    ensure!(
        open == n,
        "{open} of {n} handoffs opened before the first deadline"
    );
    Ok(open)
}

/// Escalation lateness read back from the streams after a run of
/// [`escalating_p1`] handoffs: per step, deadline → the `escalated` event
/// stored and → each escalation page stored (server clock), in ms.
pub struct Lateness {
    pub stored: Spread,
    pub paged: Spread,
    /// Deadlines per second, first to last deadline.
    pub fire_rate: f64,
    /// First to last deadline, seconds.
    pub span_s: f64,
}

/// Reads every `escalated` event and escalation page under `names` (the
/// measurement of the `escalation` phase, shared with `replication`) and
/// checks there are `n` and `2 × n` of them.
pub async fn escalation_lateness(
    js: &async_nats::jetstream::Context,
    names: &Names,
    n: usize,
) -> anyhow::Result<Lateness> {
    let (mut stored, mut deadlines) = (vec![], vec![]);
    let (_, last) = stream_state(js, &names.events_stream()).await?;
    let mut decode_error = None;
    let events_filter = format!("{}.events.*", names.prefix);
    read_all(
        js,
        &names.events_stream(),
        &events_filter,
        last,
        |seq, at, payload| match decode_commit(seq, payload) {
            Ok(c) => {
                for e in &c.events {
                    if let EventData::Escalated { deadline, .. } = &e.data {
                        let d = deadline.timestamp_nanos_opt().unwrap_or(0) as i128;
                        stored.push((at - d) as f64 / 1e6);
                        deadlines.push(d);
                    }
                }
            }
            Err(e) => decode_error = Some(e),
        },
    )
    .await?;
    if let Some(e) = decode_error {
        return Err(e.into());
    }
    let mut paged = vec![];
    let (_, last) = stream_state(js, &names.pages_stream()).await?;
    let pages_filter = format!("{}.page.>", names.prefix);
    read_all(
        js,
        &names.pages_stream(),
        &pages_filter,
        last,
        |_, at, payload| {
            if let Ok(p) = serde_json::from_slice::<Page>(payload) {
                if let (true, Some(d)) = (p.kind == "escalation", p.deadline) {
                    let d = d.timestamp_nanos_opt().unwrap_or(0) as i128;
                    paged.push((at - d) as f64 / 1e6);
                }
            }
        },
    )
    .await?;
    ensure!(
        stored.len() == n && paged.len() == 2 * n,
        "every escalation and page read ({} of {n}, {} of {})",
        stored.len(),
        paged.len(),
        2 * n
    );
    let first = deadlines.iter().min().copied().unwrap_or(0);
    let last_deadline = deadlines.iter().max().copied().unwrap_or(0);
    let span_s = (last_deadline - first) as f64 / 1e9;
    Ok(Lateness {
        stored: Spread::of(stored),
        paged: Spread::of(paged),
        fire_rate: n as f64 / span_s.max(1e-9),
        span_s,
    })
}
