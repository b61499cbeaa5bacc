//! Where an escalation's lateness goes (issue #15), and the broker alone at
//! the same operations for comparison.
//!
//! Each escalation is split into five stages, all read on this machine's
//! one clock:
//! 1. deadline → decided: the `escalated` event's `occurred_at` (timer
//!    wake-up, tick task, slot lock, `decide`);
//! 2. decided → append seen: a core subscription of the harness on
//!    `<prefix>.events.*` receives the commit as the server routes it (the
//!    engine's encode and publish, the client's write, the server's read);
//! 3. append seen → event stored: the stream's stored time (the broker);
//! 4. event stored → page seen: the later of its two pages, seen by a core
//!    subscription on the page subjects (delivery to the page publisher's
//!    pull consumer, decode, publish);
//! 5. page seen → page stored: that page's stored time (the broker).
//!
//! "Seen" is when the harness's subscriber task ran, so it carries the load
//! runtime's own scheduling; a stage can read slightly negative.
//!
//! [`raw_baseline`] is a bare client doing each escalation's JetStream work
//! at the same rate, on the same server and streams after the daemon
//! stopped: an append with `Nats-Expected-Last-Subject-Sequence` and a
//! `Nats-Msg-Id`, its ack awaited, then two pages with ids, acks awaited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream;
use async_nats::HeaderMap;
use baton::domain::EventData;
use baton::store::{decode_commit, Names};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fixtures::Escalation;
use crate::sys::Spread;

fn now_ns() -> i128 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128
}

/// The harness's core subscriptions on the events and page subjects.
pub struct Observer {
    stop: CancellationToken,
    /// Escalated event id → when its commit was seen (Unix ns).
    events: JoinHandle<HashMap<Uuid, i128>>,
    /// Page `Nats-Msg-Id` (`<event id>:<route>`) → when it was seen.
    pages: JoinHandle<HashMap<String, i128>>,
}

/// Starts watching; call once the openings are stored, so only the
/// escalations' commits and pages are decoded.
pub async fn observe(client: &async_nats::Client, names: &Names) -> anyhow::Result<Observer> {
    let stop = CancellationToken::new();
    let ev = client.subscribe(names.events_all()).await?;
    let pg = client.subscribe(names.pages_all()).await?;
    client.flush().await?;
    let events = first_seen(ev, stop.clone(), |m| {
        decode_commit(0, &m.payload)
            .map(|c| {
                c.events
                    .iter()
                    .filter(|e| matches!(e.data, EventData::Escalated { .. }))
                    .map(|e| e.id)
                    .collect()
            })
            .unwrap_or_default()
    });
    let pages = first_seen(pg, stop.clone(), |m| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
            .map(|id| id.to_string())
            .into_iter()
            .collect()
    });
    Ok(Observer {
        stop,
        events,
        pages,
    })
}

/// Reads `sub` until `stop`, noting when each key `keys` finds in a
/// message was first seen (Unix ns).
fn first_seen<K: Eq + std::hash::Hash + Send + 'static>(
    mut sub: async_nats::Subscriber,
    stop: CancellationToken,
    keys: impl Fn(&async_nats::Message) -> Vec<K> + Send + 'static,
) -> JoinHandle<HashMap<K, i128>> {
    tokio::spawn(async move {
        let mut seen = HashMap::new();
        loop {
            let m = tokio::select! {
                biased;
                m = sub.next() => m,
                _ = stop.cancelled() => None,
            };
            let Some(m) = m else { break };
            let at = now_ns();
            for k in keys(&m) {
                seen.entry(k).or_insert(at);
            }
        }
        seen
    })
}

/// Time spent runnable but not running (`/proc/.../schedstat`, field 2),
/// summed over the daemon's threads and over nats-server's, sampled every
/// [`RQ_EVERY`] on a thread of its own: how long the CPU was denied to
/// them, to tell a machine too busy from Baton's own stalls.
pub struct RunQueue {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(i128, u64, u64)>>,
}

const RQ_EVERY: Duration = Duration::from_millis(5);

fn run_delay(dir: &str, prefix: Option<&str>) -> u64 {
    let Ok(tasks) = std::fs::read_dir(dir) else {
        return 0;
    };
    tasks
        .filter_map(|e| e.ok())
        .filter(|e| {
            prefix.is_none_or(|p| {
                std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(p))
            })
        })
        .filter_map(|e| {
            let s = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            s.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// Starts sampling the daemon's threads (named `prefix`) and `nats_pid`'s.
pub fn watch_run_queue(prefix: &'static str, nats_pid: Option<u32>) -> RunQueue {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let nats = nats_pid.map(|p| format!("/proc/{p}/task"));
    let thread = std::thread::spawn(move || {
        let mut out = vec![];
        while !s.load(Ordering::Relaxed) {
            let d = run_delay("/proc/self/task", Some(prefix));
            let n = nats.as_deref().map_or(0, |n| run_delay(n, None));
            out.push((now_ns(), d, n));
            std::thread::sleep(RQ_EVERY);
        }
        out
    });
    RunQueue { stop, thread }
}

impl RunQueue {
    fn finish(self) -> Vec<(i128, u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// When nats-server rewrote a stream's full-state file (`msgs/index.db`):
/// from 2.10 on, the file store does so every 2 min (plus up to 30 s of
/// jitter) per stream, encoding every subject's index under the store's
/// lock, so appends to that stream wait meanwhile (tens of ms at 100k
/// handoff subjects on this VM). Each file's modification times, polled
/// every [`STATE_EVERY`] on a thread of its own; 2.9 writes no such file.
pub struct StateWrites {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(String, i128)>>,
}

const STATE_EVERY: Duration = Duration::from_millis(250);

/// Every `<store>/…/streams/<stream>/msgs/index.db` and its mtime (Unix ns).
fn state_files(store: &std::path::Path) -> Vec<(String, i128)> {
    let mut out = vec![];
    let mut dirs = vec![(store.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let path = e.path();
            if dir.file_name().is_some_and(|n| n == "streams") {
                let file = path.join("msgs").join("index.db");
                if let Ok(m) = std::fs::metadata(&file).and_then(|m| m.modified()) {
                    let at = DateTime::<Utc>::from(m).timestamp_nanos_opt().unwrap_or(0);
                    out.push((e.file_name().to_string_lossy().into_owned(), at as i128));
                }
            } else if depth < 4 && e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((path, depth + 1));
            }
        }
    }
    out
}

/// Starts watching the full-state files under the broker's `store`.
pub fn watch_state_writes(store: std::path::PathBuf) -> StateWrites {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let before = state_files(&store);
        let mut seen = vec![];
        while !s.load(Ordering::Relaxed) {
            for w in state_files(&store) {
                if !before.contains(&w) && !seen.contains(&w) {
                    seen.push(w);
                }
            }
            std::thread::sleep(STATE_EVERY);
        }
        seen
    });
    StateWrites { stop, thread }
}

impl StateWrites {
    fn finish(self) -> Vec<(String, i128)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Run-queue wait (ms, daemon threads, nats-server threads) between `from`
/// and `to`, from the samples around them.
fn waited(samples: &[(i128, u64, u64)], from: i128, to: i128) -> (f64, f64) {
    let i = samples.partition_point(|s| s.0 < from).saturating_sub(1);
    let j = samples
        .partition_point(|s| s.0 <= to)
        .min(samples.len().saturating_sub(1));
    match (samples.get(i), samples.get(j)) {
        (Some(a), Some(b)) if j > i => (
            b.1.saturating_sub(a.1) as f64 / 1e6,
            b.2.saturating_sub(a.2) as f64 / 1e6,
        ),
        _ => (0.0, 0.0),
    }
}

/// The stage split of every escalation, its spreads and the worst ones.
pub struct Stages {
    pub rows: Vec<(String, Spread)>,
    pub json: serde_json::Value,
}

const STAGES: [&str; 5] = [
    "deadline → decided",
    "decided → append seen",
    "append seen → event stored",
    "event stored → page seen",
    "page seen → page stored",
];

/// Splits each escalation into [`STAGES`]; `pages` maps a page's msg id
/// (`<event id>:<route>`) to its stored time. Also prints the 20 worst
/// with the daemon's log lines around each.
pub async fn attribute(
    observer: Observer,
    run_queue: RunQueue,
    state_writes: StateWrites,
    escalations: &[Escalation],
    pages: &HashMap<String, i128>,
) -> anyhow::Result<Stages> {
    observer.stop.cancel();
    let rq = run_queue.finish();
    let state_writes = state_writes.finish();
    let seen_events = observer.events.await?;
    let seen_pages = observer.pages.await?;
    let mut by_event: HashMap<Uuid, Vec<(&str, i128)>> = HashMap::new();
    for (k, at) in pages {
        if let Some((id, _route)) = k.split_once(':') {
            if let Ok(id) = id.parse::<Uuid>() {
                by_event.entry(id).or_default().push((k.as_str(), *at));
            }
        }
    }
    let ms = |ns: i128| ns as f64 / 1e6;
    let mut cols: [Vec<f64>; 5] = Default::default();
    // The same on server times only (no harness scheduling in them).
    let (mut to_stored, mut to_paged) = (vec![], vec![]);
    let mut per: Vec<(f64, [f64; 5], i128)> = vec![];
    let mut missing = 0usize;
    for e in escalations {
        let Some(&ev_seen) = seen_events.get(&e.event_id) else {
            missing += 1;
            continue;
        };
        // The later-stored of its pages.
        let Some(&(key, pg_stored)) = by_event
            .get(&e.event_id)
            .and_then(|v| v.iter().max_by_key(|(_, at)| *at))
        else {
            missing += 1;
            continue;
        };
        to_stored.push(ms(e.stored - e.decided));
        to_paged.push(ms(pg_stored - e.stored));
        let Some(&pg_seen) = seen_pages.get(key) else {
            missing += 1;
            continue;
        };
        let s = [
            ms(e.decided - e.deadline),
            ms(ev_seen - e.decided),
            ms(e.stored - ev_seen),
            ms(pg_seen - e.stored),
            ms(pg_stored - pg_seen),
        ];
        for (c, v) in cols.iter_mut().zip(s) {
            c.push(v);
        }
        per.push((ms(pg_stored - e.deadline), s, e.deadline));
    }
    let first = escalations.iter().map(|e| e.deadline).min().unwrap_or(0);
    per.sort_by(|a, b| b.0.total_cmp(&a.0));
    let log = daemon_log();
    let mut worst = vec![];
    eprintln!("[e2e] escalation: the 20 latest escalations (ms; t = s after the first deadline)");
    for (total, s, deadline) in per.iter().take(20) {
        let (stage, _) = s
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("five");
        let from = deadline - 500_000_000;
        let to = deadline + (*total * 1e6) as i128 + 100_000_000;
        let (rq_daemon, rq_nats) = waited(&rq, *deadline, to - 100_000_000);
        let near: Vec<&str> = log
            .iter()
            .filter(|(at, _)| (from..=to).contains(at))
            .map(|(_, l)| l.as_str())
            .take(5)
            .collect();
        // A full-state file finished between the deadline and half a
        // second after the page: the write's encoding (under the store's
        // lock) comes before the file's mtime.
        let state: Vec<String> = state_writes
            .iter()
            .filter(|(_, at)| (*deadline..=to + 400_000_000).contains(at))
            .map(|(stream, at)| format!("{stream} +{:.0} ms", ms(at - deadline)))
            .collect();
        let state_note = match state.is_empty() {
            true => String::new(),
            false => format!("; server state file written: {}", state.join(", ")),
        };
        eprintln!(
            "[e2e]   t={:8.3} total {total:6.2}: {:.2} | {:.2} | {:.2} | {:.2} | {:.2} — mostly {}; run queue daemon {rq_daemon:.1} / nats {rq_nats:.1}; {} log lines near{state_note}",
            (deadline - first) as f64 / 1e9,
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            STAGES[stage],
            near.len()
        );
        for l in &near {
            eprintln!("[e2e]       {}", l.chars().take(200).collect::<String>());
        }
        worst.push(json!({
            "t_s": (deadline - first) as f64 / 1e9,
            "total_ms": total,
            "stages_ms": s,
            "mostly": STAGES[stage],
            "run_queue_wait_ms": {"daemon_threads": rq_daemon, "nats_server": rq_nats},
            "log_near": near,
            "server_state_written": state,
        }));
    }
    let mut rows: Vec<(String, Spread)> = vec![
        (
            "decided → event stored (server time)".into(),
            Spread::of(to_stored),
        ),
        (
            "event stored → last page stored (server time)".into(),
            Spread::of(to_paged),
        ),
    ];
    rows.extend(
        STAGES
            .iter()
            .zip(cols)
            .map(|(name, c)| (name.to_string(), Spread::of(c))),
    );
    // Run-queue wait over the whole deadline window, per second of it.
    let window = match (rq.first(), rq.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let secs = (b.0 - a.0) as f64 / 1e9;
            json!({
                "seconds": secs,
                "daemon_ms_per_s": (b.1 - a.1) as f64 / 1e6 / secs,
                "nats_ms_per_s": (b.2 - a.2) as f64 / 1e6 / secs,
                "worst_5ms_daemon_ms": rq.windows(2).map(|w| w[1].1.saturating_sub(w[0].1)).max().unwrap_or(0) as f64 / 1e6,
            })
        }
        _ => json!(null),
    };
    eprintln!("[e2e] escalation: run-queue wait over the window: {window}");
    // Which stage the worst 1 % spent most in.
    let mut blame: HashMap<&str, usize> = HashMap::new();
    let top = (per.len() / 100).max(1);
    for (_, s, _) in per.iter().take(top) {
        let (i, _) = s
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("five");
        *blame.entry(STAGES[i]).or_default() += 1;
    }
    // Every full-state write in the window, whether or not a worst
    // escalation met it.
    let writes: Vec<serde_json::Value> = state_writes
        .iter()
        .map(|(stream, at)| json!({"stream": stream, "t_s": (at - first) as f64 / 1e9}))
        .collect();
    eprintln!(
        "[e2e] escalation: server state files written (t = s after the first deadline): {}",
        match writes.is_empty() {
            true =>
                "none in the window (from 2.10 on, one per stream every 2–2.5 min; none before)"
                    .to_string(),
            false => state_writes
                .iter()
                .map(|(stream, at)| format!("{stream} {:.3}", (at - first) as f64 / 1e9))
                .collect::<Vec<_>>()
                .join(", "),
        }
    );
    let json = json!({
        "stages_ms": rows.iter().map(|(n, s)| (n.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
        "worst_1pct_mostly_in": blame,
        "run_queue_wait": window,
        "server_state_writes": writes,
        "worst_20": worst,
        "unmatched": missing,
    });
    Ok(Stages { rows, json })
}

/// The daemon's log lines (see `main::log_to`) with their times (Unix ns).
fn daemon_log() -> Vec<(i128, String)> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let text =
        std::fs::read_to_string(dir.join("bench").join("e2e-daemon.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let ts = l.split_whitespace().next()?;
            let at = DateTime::parse_from_rfc3339(ts).ok()?;
            Some((at.timestamp_nanos_opt()? as i128, l.to_string()))
        })
        .collect()
}

/// Ack latencies of the bare client: append, pages, and the whole chain.
pub struct Raw {
    pub append: Spread,
    pub page: Spread,
    pub chain: Spread,
}

/// `n` escalations' JetStream work at `rate` per second by a bare client on
/// `names`' streams: append `commit` to a fresh handoff's subject expecting
/// sequence 0, await its ack, publish `page` twice with ids, await both.
pub async fn raw_baseline(
    js: &jetstream::Context,
    names: &Names,
    n: usize,
    rate: usize,
    commit: Bytes,
    page: Bytes,
) -> anyhow::Result<Raw> {
    let one = |commit: Bytes, page: Bytes| {
        let js = js.clone();
        let names = names.clone();
        async move {
            let t0 = std::time::Instant::now();
            let id = Uuid::now_v7();
            let mut h = HeaderMap::new();
            h.insert(NATS_MESSAGE_ID, format!("{id}:0").as_str());
            h.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
            js.publish_with_headers(names.events(id), h, commit)
                .await?
                .await?;
            let appended = t0.elapsed();
            let mut acks = vec![];
            for route in ["oncall", "incident_captain"] {
                let mut h = HeaderMap::new();
                h.insert(NATS_MESSAGE_ID, format!("{id}:{route}").as_str());
                acks.push(
                    js.publish_with_headers(names.page(route, "bench"), h, page.clone())
                        .await?,
                );
            }
            for a in acks {
                a.await?;
            }
            let chain = t0.elapsed();
            anyhow::Ok((appended, chain - appended, chain))
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut running = FuturesUnordered::new();
    let (mut a, mut p, mut c) = (vec![], vec![], vec![]);
    let mut sent = 0;
    while sent < n || !running.is_empty() {
        tokio::select! {
            _ = tick.tick(), if sent < n => {
                running.push(one(commit.clone(), page.clone()));
                sent += 1;
            }
            Some(r) = running.next(), if !running.is_empty() => {
                let (x, y, z) = r?;
                a.push(x.as_secs_f64() * 1e3);
                p.push(y.as_secs_f64() * 1e3);
                c.push(z.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(Raw {
        append: Spread::of(a),
        page: Spread::of(p),
        chain: Spread::of(c),
    })
}
