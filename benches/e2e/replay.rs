//! Replay and restart: `BATON_EVENTS` filled with `n` commits (handoffs'
//! whole lives: opened+scored+paged, escalated, acknowledged, resolved, as
//! `decide` produces them), then
//! - the raw ordered-consumer read rate of that stream, read twice around
//!   two Baton replays (raw, Baton, Baton, raw: drift cancels in the ratio),
//! - Baton's projector rebuilding state from it (the replay `serve` does
//!   before it takes work),
//! - restart to ready: how long `server::start` takes to return, without a
//!   snapshot (full replay) and then with the snapshot the first daemon
//!   wrote on shutdown.
//!
//! The commits are written by the harness, not through ingest: 1M commits
//! through the full pipeline would take minutes and measure ingest again.
//! They carry no headers (Baton's carry `Nats-Msg-Id` and the expected
//! sequence, ~80 B that nothing reads on replay).

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::metrics::Metrics;
use baton::projector::{self, Projection};
use baton::store::{self, EventStore, Names};
use baton::{config::Config, sla};
use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::broker::{publish_all, read_all, stream_state, Broker};
use crate::daemon::{Daemon, THREAD_NAME};
use crate::fixtures::{config, lifecycle};
use crate::report::{Section, Target};
use crate::sys::threads_cpu;
use crate::LOAD_THREADS;

/// Handoffs whose commits are interleaved in the stream.
const BLOCK: usize = 1000;

pub async fn run(daemon_rt: &tokio::runtime::Handle, n: usize) -> anyhow::Result<Section> {
    let n = std::env::var("BATON_BENCH_REPLAY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    // The restart below must not publish a million pages: in a running
    // deployment the page consumer has long caught up with this history.
    // The lives are 30 days old and resolved: a retention past that keeps
    // them held, so the phase measures replay, not eviction.
    let cfg = config(
        broker.url(),
        "[pages]\nenabled = false\n[limits]\nclosed_retention = \"365d\"\n",
    )?;
    let names = Names::new(&cfg.nats.prefix);
    store::ensure_streams(&js, &names, &baton::server::stream_settings(&cfg)).await?;
    let (commits, events, bytes) = fill(&js, &cfg, &names, n).await?;
    let (_, last) = stream_state(&js, &names.events_stream()).await?;
    eprintln!(
        "[e2e] replay: stream holds {commits} commits ({events} events, {} MiB)",
        bytes >> 20
    );

    let filter = format!("{}.events.*", names.prefix);
    // CPU per commit: of the reading side (the load runtime's threads for
    // the raw reader, the daemon's for the projector) and of nats-server.
    let per = |d: Duration| d.as_secs_f64() * 1e6 / last as f64;
    // Raw, Baton, Baton, raw: the machine's speed drifts over a run (raw
    // read 173k-237k msg/s in back-to-back runs here), and this order
    // cancels a steady drift out of the ratio. Rates are totals over both
    // reads of each kind; CPU per commit is their mean.
    let (mut raw_time, mut raw_cpu) = (Duration::ZERO, (0.0, 0.0));
    let (mut took, mut baton_cpu, mut handoffs) = (Duration::ZERO, (0.0, 0.0), 0);
    let mut rounds = Vec::with_capacity(4);
    // `BATON_BENCH_REPLAY_BATON=k`: k Baton reads between the raw ones
    // (hunting the intermittent stall), `BATON_BENCH_REPLAY_N` the size.
    let baton_rounds: usize = std::env::var("BATON_BENCH_REPLAY_BATON")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let order = std::iter::once("raw")
        .chain(std::iter::repeat_n("Baton", baton_rounds))
        .chain(std::iter::once("raw"));
    for round in order {
        if round == "raw" {
            let (client0, server0) = (threads_cpu(LOAD_THREADS), broker.cpu());
            let started = Instant::now();
            let mut read = 0u64;
            read_all(&js, &names.events_stream(), &filter, last, |_, _, _| {
                read += 1
            })
            .await?;
            anyhow::ensure!(read == last, "raw reader read {read} of {last}");
            let t = started.elapsed();
            raw_time += t;
            raw_cpu.0 += per(threads_cpu(LOAD_THREADS).saturating_sub(client0)) / 2.0;
            raw_cpu.1 += per(broker.cpu().saturating_sub(server0)) / 2.0;
            rounds.push(format!("raw {:.0}", last as f64 / t.as_secs_f64()));
        } else {
            let (client0, server0) = (threads_cpu(THREAD_NAME), broker.cpu());
            let (t, held) = daemon_rt.spawn(replay(cfg.clone(), last)).await??;
            took += t;
            handoffs = held;
            let k = baton_rounds as f64;
            baton_cpu.0 += per(threads_cpu(THREAD_NAME).saturating_sub(client0)) / k;
            baton_cpu.1 += per(broker.cpu().saturating_sub(server0)) / k;
            rounds.push(format!("Baton {:.0}", last as f64 / t.as_secs_f64()));
        }
        eprintln!("[e2e] replay: {} msg/s", rounds.last().expect("pushed"));
    }
    let raw = 2.0 * last as f64 / raw_time.as_secs_f64();
    let baton = baton_rounds as f64 * last as f64 / took.as_secs_f64();
    let took = took / u32::try_from(baton_rounds).unwrap_or(1);

    // No snapshot yet: a full replay. Stopping writes the shutdown snapshot
    // the second start loads.
    let (daemon, restart) = Daemon::start(daemon_rt, cfg.clone()).await?;
    let held = daemon.shared().engine.projection().len();
    daemon.stop().await?;
    eprintln!(
        "[e2e] replay: restart to ready {:.2} s",
        restart.as_secs_f64()
    );
    let (daemon, with_snapshot) = Daemon::start(daemon_rt, cfg).await?;
    let held_too = daemon.shared().engine.projection().len();
    daemon.stop().await?;
    eprintln!(
        "[e2e] replay: restart with a snapshot {:.2} s",
        with_snapshot.as_secs_f64()
    );
    anyhow::ensure!(
        held == handoffs && held_too == handoffs && handoffs == commits as usize / 4,
        "state rebuilt whole"
    );

    let ratio = baton / raw;
    let times = match baton_rounds {
        2 => "twice".to_string(),
        k => format!("{k} times"),
    };
    let mut s = Section::new("replay");
    s.row(
        format!(
            "raw ordered consumer, {commits} commits ({} MiB), read twice",
            bytes >> 20
        ),
        format!(
            "{raw:.0} msg/s (reader {:.1} + nats-server {:.1} µs CPU/commit)",
            raw_cpu.0, raw_cpu.1
        ),
        Target::None,
    );
    s.row(
        format!("Baton projector, same commits ({events} events), {times}"),
        format!(
            "{baton:.0} msg/s, {:.2} s (daemon {:.1} + nats-server {:.1} µs CPU/commit)",
            took.as_secs_f64(),
            baton_cpu.0,
            baton_cpu.1
        ),
        Target::None,
    );
    s.row(
        "Baton replay ÷ raw ordered consumer",
        format!("{ratio:.2} ({})", rounds.join(", ")),
        Target::AtLeast(ratio, 0.8, "≥ 0.80"),
    );
    s.row(
        format!("restart to ready, {commits} commits, no snapshot"),
        format!("{:.2} s ({handoffs} handoffs)", restart.as_secs_f64()),
        Target::None,
    );
    s.row(
        format!("restart to ready, {commits} commits, with snapshot"),
        format!("{:.2} s", with_snapshot.as_secs_f64()),
        Target::AtMost(with_snapshot.as_secs_f64(), 2.0, "≤ 2 s"),
    );
    s.json = json!({
        "commits": commits,
        "events": events,
        "stream_bytes": bytes,
        "handoffs": handoffs,
        "raw_ordered_msgs_per_s": raw,
        "raw_reader_cpu_us_per_commit": raw_cpu.0,
        "raw_server_cpu_us_per_commit": raw_cpu.1,
        "baton_daemon_cpu_us_per_commit": baton_cpu.0,
        "baton_server_cpu_us_per_commit": baton_cpu.1,
        "baton_replay_msgs_per_s": baton,
        "baton_replay_s": took.as_secs_f64(),
        "ratio": ratio,
        "restart_to_ready_s": restart.as_secs_f64(),
        "restart_with_snapshot_s": with_snapshot.as_secs_f64(),
    });
    Ok(s)
}

/// Publishes `n` commits (rounded down to whole lives); returns commits,
/// events and payload bytes written.
async fn fill(
    js: &async_nats::jetstream::Context,
    cfg: &Config,
    names: &Names,
    n: usize,
) -> anyhow::Result<(u64, u64, u64)> {
    let policy = cfg.policy();
    let lives = n / 4;
    let start = Utc::now() - chrono::Duration::days(30);
    let (mut commits, mut events, mut bytes) = (0u64, 0u64, 0u64);
    let mut messages = Vec::new();
    for block in (0..lives).step_by(BLOCK) {
        let block: Vec<_> = (block..(block + BLOCK).min(lives))
            .map(|i| lifecycle(&policy, i, start + chrono::Duration::seconds(i as i64)))
            .collect();
        // Each block's openings, then its escalations, acks, resolutions.
        for stage in 0..4 {
            for (id, lives) in &block {
                let commit = &lives[stage];
                let payload: Bytes = serde_json::to_vec(commit)?.into();
                commits += 1;
                events += commit.events.len() as u64;
                bytes += payload.len() as u64;
                messages.push((names.events(*id), payload));
            }
        }
        if messages.len() >= 64 * BLOCK {
            publish_all(js, messages.drain(..)).await?;
        }
    }
    publish_all(js, messages).await?;
    Ok((commits, events, bytes))
}

/// Prints the events stream's consumers that have messages pending once
/// the projector has not moved for 2 s: what the server holds (pull
/// requests waiting, pending) when a replay stalls. `Follow`'s watchdog
/// repairs such a stall within seconds; this says that one happened.
async fn watch_stall(projection: Arc<Projection>, client: async_nats::Client, cfg: Config) {
    use futures::TryStreamExt;
    use std::sync::atomic::Ordering;
    let js = store::jetstream(client, &cfg.nats);
    let names = Names::new(&cfg.nats.prefix);
    let (mut last, mut since, mut told) = (0, Instant::now(), false);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = projection.applied_seq.load(Ordering::Acquire);
        if now != last {
            (last, since, told) = (now, Instant::now(), false);
            continue;
        }
        if told || since.elapsed() < Duration::from_secs(2) {
            continue;
        }
        told = true;
        let Ok(stream) = js.get_stream(names.events_stream()).await else {
            continue;
        };
        let infos: Vec<_> = match stream.consumers().try_collect().await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("[e2e] replay stall: consumers: {e}");
                continue;
            }
        };
        for i in infos.into_iter().filter(|i| i.num_pending > 0) {
            eprintln!(
                "[e2e] replay stalled at seq {now} for {:.1} s: consumer {} delivered {}/{} pending {} waiting {} ack_pending {}",
                since.elapsed().as_secs_f64(),
                i.name,
                i.delivered.consumer_sequence,
                i.delivered.stream_sequence,
                i.num_pending,
                i.num_waiting,
                i.num_ack_pending
            );
        }
    }
}

/// The projector alone, as `server::start` runs it before taking work: from
/// sequence 0 until it has applied `last`. Returns the time and handoffs.
async fn replay(cfg: Config, last: u64) -> anyhow::Result<(Duration, usize)> {
    let client = store::connect(&cfg.nats).await?;
    let js = store::jetstream(client, &cfg.nats);
    let metrics = Arc::new(Metrics::new());
    let event_store = EventStore::open(
        js,
        &Names::new(&cfg.nats.prefix),
        cfg.limits.max_in_flight_appends,
        Some(baton::server::append_timer(&metrics)),
    )
    .await?;
    // Held, not run: before ready the daemon's timer only queues deadlines.
    let (timer, _queue) = sla::channel();
    let projection = Arc::new(Projection::new(Arc::new(cfg.policy()), timer, metrics));
    let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(projector::run(
        projection.clone(),
        event_store,
        0,
        last,
        ready_tx,
        shutdown.clone(),
    ));
    let watch = tokio::spawn(watch_stall(
        projection.clone(),
        store::connect(&cfg.nats).await?,
        cfg.clone(),
    ));
    let caught_up = ready.wait_for(|r| *r).await.is_ok();
    let took = started.elapsed();
    watch.abort();
    shutdown.cancel();
    task.await??;
    anyhow::ensure!(caught_up, "projector stopped before catching up");
    Ok((took, projection.len()))
}
