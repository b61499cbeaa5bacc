//! Recovery: how long escalations and pages stop when something dies.
//!
//! - `failover`: a three-node cluster (`replicas = 3`), escalations firing
//!   steadily; the `BATON_EVENTS` leader is killed with SIGKILL. Measured
//!   from outside: the broker's own election (kill → a new leader answers
//!   stream info) and, beyond it, the gap to the next escalation stored and
//!   the next escalation page stored (goal ≤ 1 s). Needs nats-server ≥
//!   2.9.21 (`store::MIN_CLUSTER_SERVER`); skipped with a message otherwise.
//! - `crash`: `baton serve` (the real binary, a child process) and a daemon
//!   in-process share a broker and escalations firing; the child is
//!   stopped (SIGSTOP) for a second, so it holds pages it pulled, then
//!   killed with SIGKILL. Measured: kill → the page of every escalation
//!   stored before the kill but paged after it (the in-flight ones,
//!   redelivered from the dead daemon after the consumer's ack wait; goal
//!   ≤ 2 s).
//!
//! Every escalation is `n` handoffs stepping every [`STEP`]: both daemons'
//! timers fire each deadline and the store keeps one, so an escalation's
//! stored time is what paging saw.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use async_nats::jetstream;
use baton::domain::EventData;
use baton::pages::Page;
use baton::store::{decode_commit, Names};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

#[path = "../../tests/support/cluster.rs"]
pub mod cluster;

use crate::broker::{publish_all, read_all, stream_state, wait_for_count, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{config_text, p1_payload, TEMPLATE};
use crate::report::{Section, Target};

/// Between two escalation steps of one handoff.
const STEP: Duration = Duration::from_millis(500);
/// Steps per handoff: escalations keep firing this long ([`STEP`] ×).
const STEPS: u32 = 30;

/// Escalating every [`STEP`] for [`STEPS`] steps (the first at the first
/// response deadline, then `repeat` more); nothing else due.
fn escalating() -> String {
    let step = STEP.as_millis();
    format!(
        "[severity.P1]\nfirst_response = \"{step}ms\"\n\
         escalation = [ {{ routes = [\"oncall\", \"incident_captain\"], delay = \"{step}ms\", repeat = {} }} ]\n",
        STEPS - 1
    )
}

/// Unix nanoseconds now (the server's clock: same machine).
fn now_ns() -> i128 {
    i128::from(Utc::now().timestamp_nanos_opt().unwrap_or(0))
}

/// Every escalation's `(handoff, step)` → stored time (Unix ns).
async fn escalations_stored(
    js: &jetstream::Context,
    names: &Names,
) -> anyhow::Result<HashMap<(Uuid, u32), i128>> {
    let mut out = HashMap::new();
    let (_, last) = stream_state(js, &names.events_stream()).await?;
    let filter = format!("{}.events.*", names.prefix);
    read_all(js, &names.events_stream(), &filter, last, |seq, at, p| {
        for e in decode_commit(seq, p).map(|c| c.events).unwrap_or_default() {
            if let EventData::Escalated { step, .. } = e.data {
                out.insert((e.handoff_id, step), at);
            }
        }
    })
    .await?;
    Ok(out)
}

/// Every escalation page's `(handoff, step)` → first stored time, and how
/// many pages were stored twice.
async fn escalation_pages(
    js: &jetstream::Context,
    names: &Names,
) -> anyhow::Result<(HashMap<(Uuid, u32), i128>, usize)> {
    let (mut out, mut seen, mut doubled) = (HashMap::new(), HashMap::new(), 0);
    let (_, last) = stream_state(js, &names.pages_stream()).await?;
    let filter = format!("{}.page.>", names.prefix);
    read_all(js, &names.pages_stream(), &filter, last, |_, at, p| {
        if let Ok(p) = serde_json::from_slice::<Page>(p) {
            if p.kind == "escalation" {
                out.entry((p.handoff_id, p.step)).or_insert(at);
                let n = seen.entry((p.handoff_id, p.step, p.route)).or_insert(0);
                *n += 1;
                doubled += usize::from(*n == 2);
            }
        }
    })
    .await?;
    Ok((out, doubled))
}

/// The first stored time after `t` among `times`.
fn first_after(times: impl Iterator<Item = i128>, t: i128) -> Option<i128> {
    times.filter(|at| *at > t).min()
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

/// Waits until every handoff took every step and paged it.
async fn wait_done(js: &jetstream::Context, names: &Names, n: usize) -> anyhow::Result<()> {
    let limit = STEP * STEPS + Duration::from_secs(60);
    // Per handoff: its opening page, then two per step.
    let pages = (n * (1 + 2 * STEPS as usize)) as u64;
    wait_for_count(js, &names.pages_stream(), limit, |m| m >= pages).await?;
    Ok(())
}

pub async fn failover(daemon_rt: &tokio::runtime::Handle, n: usize) -> anyhow::Result<Section> {
    let mut s = Section::new("failover");
    let (version, capable) = cluster::cluster_capable();
    if !capable {
        eprintln!("[e2e] failover: skipped, nats-server {version} cannot run Baton clustered (needs >= 2.9.21)");
        s.row(
            "skipped",
            format!("nats-server {version} < 2.9.21"),
            Target::None,
        );
        return Ok(s);
    }
    let mut cluster = tokio::task::block_in_place(cluster::Cluster::start);
    let urls = cluster.urls();
    let mut cfg = baton::config::Config::parse(&config_text(&urls, &escalating()))
        .map_err(anyhow::Error::msg)?;
    cfg.nats.replicas = 3;
    cfg.nats.request_timeout = Duration::from_secs(2);
    cfg.validate()?;
    let names = Names::new(&cfg.nats.prefix);
    let client = async_nats::ConnectOptions::new()
        .connect(urls.split(',').collect::<Vec<_>>().as_slice())
        .await?;
    let js = jetstream::new(client);
    // The cluster elects its meta leader after "ready": retry the start.
    let started = Instant::now();
    let daemon = loop {
        match Daemon::start(daemon_rt, cfg.clone()).await {
            Ok((d, _)) => break d,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = %e, "cluster not ready yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let subject = names.report(TEMPLATE);
    publish_all(&js, (0..n).map(|i| (subject.clone(), p1_payload(i)))).await?;
    // A few steps in, kill the events leader.
    tokio::time::sleep(STEP * 6).await;
    let old = cluster::leader(&js, &names.events_stream())
        .await
        .context("an events leader")?;
    // The election is watched from a surviving node, with a short timeout,
    // so the watcher's own reconnect is not what is measured.
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.name != old)
        .map(|n| format!("nats://127.0.0.1:{}", n.port))
        .context("a surviving node")?;
    let watcher = jetstream::new(
        async_nats::ConnectOptions::new()
            .request_timeout(Some(Duration::from_millis(200)))
            .connect(survivor)
            .await?,
    );
    let killed_at = now_ns();
    cluster.node(&old).kill();
    let elected = loop {
        match cluster::leader(&watcher, &names.events_stream()).await {
            Some(l) if l != old => break now_ns(),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        ensure!(
            now_ns() - killed_at < 60_000_000_000,
            "no new events leader in 60 s"
        );
    };
    wait_done(&js, &names, n).await?;
    daemon.stop().await?;
    cluster.node(&old).start();

    let stored = escalations_stored(&js, &names).await?;
    let (paged, doubled) = escalation_pages(&js, &names).await?;
    ensure!(doubled == 0, "{doubled} escalation pages stored twice");
    let next_esc = first_after(stored.values().copied(), killed_at).context("an escalation")?;
    let next_page = first_after(paged.values().copied(), killed_at).context("a page")?;
    let election = ms(elected - killed_at);
    let esc_gap = ms(next_esc - elected);
    let page_gap = ms(next_page - elected);
    s.row(
        format!(
            "{n} handoffs escalating every {} ms; leader kill → new leader (the broker's election)",
            STEP.as_millis()
        ),
        format!("{election:.0} ms"),
        Target::None,
    );
    s.row(
        "new leader → next escalation stored",
        format!("{esc_gap:.0} ms"),
        Target::AtMost(esc_gap, 1000.0, "≤ 1 s"),
    );
    s.row(
        "new leader → next escalation page stored",
        format!("{page_gap:.0} ms"),
        Target::AtMost(page_gap, 1000.0, "≤ 1 s"),
    );
    s.json = json!({
        "handoffs": n,
        "step_ms": STEP.as_millis(),
        "killed": old,
        "election_ms": election,
        "leader_to_escalation_ms": esc_gap,
        "leader_to_page_ms": page_gap,
        "kill_to_escalation_ms": ms(next_esc - killed_at),
        "kill_to_page_ms": ms(next_page - killed_at),
    });
    Ok(s)
}

/// `baton serve` as a child process, killed with SIGKILL on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn crash(daemon_rt: &tokio::runtime::Handle, n: usize) -> anyhow::Result<Section> {
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let text = config_text(broker.url(), &escalating());
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("baton.toml");
    std::fs::write(&path, &text)?;
    let cfg = baton::config::Config::parse(&text).map_err(anyhow::Error::msg)?;
    let names = Names::new(&cfg.nats.prefix);
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .env_remove("BATON_NATS_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("baton serve starts")?,
    );
    // The child pulls pages once it serves.
    let waited = Instant::now();
    loop {
        let waiting = async {
            let s = js.get_stream(names.events_stream()).await.ok()?;
            let mut c: jetstream::consumer::PullConsumer =
                s.get_consumer(baton::pages::CONSUMER).await.ok()?;
            Some(c.info().await.ok()?.num_waiting)
        };
        if waiting.await.unwrap_or(0) > 0 {
            break;
        }
        ensure!(
            waited.elapsed() < Duration::from_secs(30),
            "baton serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let subject = names.report(TEMPLATE);
    publish_all(&js, (0..n).map(|i| (subject.clone(), p1_payload(i)))).await?;
    tokio::time::sleep(STEP * 6).await;
    // Stopped first, then killed: pages the child pulled meanwhile are in
    // flight (delivered, never acked), as with a daemon dying mid-work.
    let pid = child.0.id().to_string();
    let stopped_at = now_ns();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = now_ns();
    child.0.kill()?;
    child.0.wait()?;
    wait_done(&js, &names, n).await?;
    daemon.stop().await?;

    let stored = escalations_stored(&js, &names).await?;
    let (paged, doubled) = escalation_pages(&js, &names).await?;
    ensure!(doubled == 0, "{doubled} escalation pages stored twice");
    // In flight: stored before the kill, paged after it.
    let in_flight: Vec<(i128, i128)> = stored
        .iter()
        .filter(|(_, at)| **at <= killed_at)
        .filter_map(|(k, at)| paged.get(k).filter(|p| **p > killed_at).map(|p| (*at, *p)))
        .collect();
    let kill_to_page = in_flight
        .iter()
        .map(|(_, p)| p - killed_at)
        .max()
        .map_or(0.0, ms);
    let event_to_page = in_flight.iter().map(|(e, p)| p - e).max().map_or(0.0, ms);
    let stalled = ms(killed_at - stopped_at);
    let mut s = Section::new("crash");
    s.row(
        format!(
            "{n} handoffs escalating every {} ms on two daemons; one stopped {stalled:.0} ms, then kill -9 → its {} in-flight escalations paged",
            STEP.as_millis(),
            in_flight.len()
        ),
        format!("{kill_to_page:.0} ms"),
        Target::AtMost(kill_to_page, 2000.0, "≤ 2 s"),
    );
    s.row(
        "  (in-flight escalation stored → paged, max)",
        format!("{event_to_page:.0} ms"),
        Target::None,
    );
    s.json = json!({
        "handoffs": n,
        "step_ms": STEP.as_millis(),
        "stopped_before_kill_ms": stalled,
        "in_flight_escalations": in_flight.len(),
        "kill_to_in_flight_paged_ms": kill_to_page,
        "in_flight_stored_to_paged_ms": event_to_page,
    });
    Ok(s)
}
