//! What the harness feeds Baton: the config, complete P1 reports (also
//! published at a steady rate with deadlines just past, for the escalation
//! and delivery phases), and histories of stored commits built with the
//! domain's own `decide` (from `history.rs`, shared with
//! `benches/replay_cost.rs`); and escalation lateness read back from the
//! streams.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::ensure;
use baton::config::Config;
use baton::domain::EventData;
use baton::pages::Page;
use baton::store::{decode_commit, Names};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use uuid::Uuid;

use crate::broker::{read_all, stream_state};
use crate::daemon::Daemon;
use crate::history::p1;
pub use crate::history::{lifecycle, open_commit, TEMPLATE};
use crate::sys::Spread;

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

/// The report as a runner publishes it.
pub fn p1_payload(i: usize) -> Bytes {
    serde_json::to_vec(&p1(i))
        .expect("reports serialize")
        .into()
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
    /// Deadline → the event's `occurred_at` (the daemon's clock), in ms.
    pub decided: Spread,
    /// Deadlines per second, first to last deadline.
    pub fire_rate: f64,
    /// First to last deadline, seconds.
    pub span_s: f64,
    /// Every escalation read, for the `escalation` phase's stage split.
    pub escalations: Vec<Escalation>,
    /// Each escalation page's msg id (`<event id>:<route>`) → its stored
    /// time (Unix ns, server clock).
    pub page_stored: HashMap<String, i128>,
    /// The first escalation commit and page as stored (empty if none), for
    /// the bare client's baseline at the same sizes.
    pub sample_commit: Bytes,
    pub sample_page: Bytes,
}

/// One escalation as read back from the streams (Unix ns, server clock
/// for stored times).
pub struct Escalation {
    pub event_id: Uuid,
    pub deadline: i128,
    pub decided: i128,
    pub stored: i128,
}

/// Reads every `escalated` event and escalation page under `names` (the
/// measurement of the `escalation` phase, shared with `replication`) and
/// checks there are `n` and `2 × n` of them.
pub async fn escalation_lateness(
    js: &async_nats::jetstream::Context,
    names: &Names,
    n: usize,
) -> anyhow::Result<Lateness> {
    let (mut decided, mut stored, mut deadlines) = (vec![], vec![], vec![]);
    let mut escalations = vec![];
    let mut sample_commit = None;
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
                        let occurred = e.occurred_at.timestamp_nanos_opt().unwrap_or(0) as i128;
                        decided.push((occurred - d) as f64 / 1e6);
                        stored.push((at - d) as f64 / 1e6);
                        deadlines.push(d);
                        escalations.push(Escalation {
                            event_id: e.id,
                            deadline: d,
                            decided: occurred,
                            stored: at,
                        });
                        sample_commit.get_or_insert_with(|| payload.clone());
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
    let mut page_stored = HashMap::new();
    let mut sample_page = None;
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
                    page_stored.insert(format!("{}:{}", p.event_id, p.route), at);
                    sample_page.get_or_insert_with(|| payload.clone());
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
        decided: Spread::of(decided),
        fire_rate: n as f64 / span_s.max(1e-9),
        span_s,
        escalations,
        page_stored,
        sample_commit: sample_commit.unwrap_or_default(),
        sample_page: sample_page.unwrap_or_default(),
    })
}
