//! Delivery latency: deadline → webhook request received (issue 14).
//!
//! As in [`crate::escalation`], `n` complete P1 reports are published at a
//! steady `rate` per second with P1's first response set just past the time
//! that takes, so ~`rate` deadlines fire per second; each escalation is one
//! step paging `oncall` and `incident_captain`. Here `[delivery]` is on
//! (no per-destination rate limit, otherwise defaults) and **both** routes'
//! only contact is a webhook to a local HTTP sink in this process
//! (127.0.0.1:0, on the load runtime), which records each request's arrival
//! time and `X-Baton-Page-Id` and answers 200. The sink therefore gets every
//! page: the opening page (`oncall`, while reports are published) and the two
//! escalation pages per handoff.
//!
//! Lateness is measured from the escalation's deadline (the page's
//! `deadline`, the `escalated` event's) to the sink's wall clock when the
//! request arrived, matched by page id `<event id>:<route>`. Deliveries/s is
//! the escalation pages' arrival rate over their middle 60 %. The phase
//! fails if any page stored on `BATON_PAGES` never reaches the sink, or
//! reaches it more than once.
//!
//! Before that, the worker's **capacity**: a backlog of opening pages stored
//! with delivery off, then drained by the restarted daemon with nothing
//! else to do; deliveries/s over the middle 60 % and over the whole drain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use baton::pages::Page;
use baton::store::Names;
use serde_json::json;

use crate::broker::{publish_all, read_all, stream_state, wait_for_count, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{
    config, escalating_p1, first_response_after, p1_payload, publish_at_rate, wait_open, TEMPLATE,
};
use crate::report::{Section, Target};
use crate::sys::Spread;

/// Pages per handoff: the opening page, then two escalation pages.
const PAGES_PER_HANDOFF: usize = 3;

/// One request the sink received.
struct Arrival {
    page_id: String,
    /// Wall clock, Unix ns (compared with the deadline).
    wall_ns: i128,
    /// Monotonic (for the rate).
    at: Instant,
}

#[derive(Clone, Default)]
struct Sink {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
}

impl Sink {
    fn len(&self) -> usize {
        self.arrivals.lock().expect("not poisoned").len()
    }

    /// Polls until `count` requests arrived; fails after `limit` naming
    /// how many did.
    async fn wait_for(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.len() < count {
            if started.elapsed() > limit {
                bail!("{} of {count} webhook requests after {limit:?}", self.len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// Records the arrival as soon as the headers are in, then reads the body
/// (so the connection stays usable) and answers 200.
async fn receive(State(sink): State<Sink>, req: Request) -> StatusCode {
    let wall_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
    let at = Instant::now();
    let page_id = req
        .headers()
        .get("x-baton-page-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    sink.arrivals.lock().expect("not poisoned").push(Arrival {
        page_id,
        wall_ns,
        at,
    });
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Starts the sink on the current (load) runtime; returns it and its URL.
async fn start_sink() -> anyhow::Result<(Sink, String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let sink = Sink::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(sink.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("[e2e] delivery: sink stopped: {e}");
        }
    });
    Ok((sink, url, task))
}

/// The config of both sub-phases: P1 as in [`crate::escalation`], both
/// routes' only contact the sink, `[delivery]` on or off, no
/// per-destination limit.
fn delivery_config(
    broker: &Broker,
    sink_url: &str,
    first_response: Duration,
    enabled: bool,
) -> anyhow::Result<baton::config::Config> {
    config(
        broker.url(),
        &format!(
            "{}[delivery]\nenabled = {enabled}\nper_destination_interval = \"0s\"\n\
             [routes.oncall]\ntarget = \"rota:payments\"\n\
             contact = [ {{ kind = \"webhook\", url = \"{sink_url}\" }} ]\n\
             [routes.incident_captain]\ntarget = \"rota:captains\"\n\
             contact = [ {{ kind = \"webhook\", url = \"{sink_url}\" }} ]\n",
            escalating_p1(first_response)
        ),
    )
}

/// The worker's capacity: `backlog` opening pages are stored with delivery
/// off (first response an hour away, so nothing else happens), then the
/// daemon restarts with delivery on and drains them to the sink with no
/// other load. Returns the steady rate over the middle 60 % of arrivals and
/// the whole drain's (from the restart's start to the last arrival).
async fn capacity(
    daemon_rt: &tokio::runtime::Handle,
    backlog: usize,
) -> anyhow::Result<(f64, f64)> {
    let (sink, url, sink_task) = start_sink().await?;
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let hour = Duration::from_secs(3600);
    let cfg = delivery_config(&broker, &url, hour, false)?;
    let names = Names::new(&cfg.nats.prefix);
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let subject = names.report(TEMPLATE);
    publish_all(&js, (0..backlog).map(|i| (subject.clone(), p1_payload(i)))).await?;
    let limit = Duration::from_secs(60) + Duration::from_millis(backlog as u64 * 2);
    wait_for_count(&js, &names.pages_stream(), limit, |m| m >= backlog as u64).await?;
    daemon.stop().await?;
    ensure!(sink.len() == 0, "pages delivered with delivery off");

    let started = Instant::now();
    let (daemon, _) = Daemon::start(daemon_rt, delivery_config(&broker, &url, hour, true)?).await?;
    sink.wait_for(backlog, limit).await?;
    let drained = started.elapsed();
    daemon.stop().await?;
    sink_task.abort();
    let mut at: Vec<Instant> = sink
        .arrivals
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|a| a.at)
        .collect();
    at.sort();
    let (from, to) = (at.len() / 5, at.len() - 1 - at.len() / 5);
    let steady = (to - from) as f64 / (at[to] - at[from]).as_secs_f64().max(1e-9);
    eprintln!(
        "[e2e] delivery: capacity {steady:.0} pages/s steady, {backlog} drained in {:.2} s",
        drained.as_secs_f64()
    );
    Ok((steady, backlog as f64 / drained.as_secs_f64()))
}

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    n: usize,
    rate: usize,
    backlog: usize,
) -> anyhow::Result<Section> {
    let (capacity_steady, capacity_drain) = capacity(daemon_rt, backlog).await?;
    let (sink, url, sink_task) = start_sink().await?;
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let first_response = first_response_after(n, rate);
    let cfg = delivery_config(&broker, &url, first_response, true)?;
    let names = Names::new(&cfg.nats.prefix);
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    publish_at_rate(&js, &names.report(TEMPLATE), n, rate, |_| {}).await?;
    let open = wait_open(&daemon, n, first_response).await?;
    eprintln!(
        "[e2e] delivery: {n} reports published, {open} handoffs open, {} pages at the sink; waiting for deadlines",
        sink.len()
    );

    // Every page at the sink: one opening page, then two escalation pages each.
    let expected = PAGES_PER_HANDOFF * n;
    let limit = first_response + Duration::from_secs(120) + Duration::from_millis(n as u64 * 5);
    sink.wait_for(expected, limit).await?;
    // A moment more, so a late duplicate shows.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivery_metric = daemon
        .shared()
        .metrics
        .delivery_seconds
        .with_label_values(&["webhook"])
        .get_sample_count();
    daemon.stop().await?;
    sink_task.abort();

    // What was stored on BATON_PAGES: every page id, and for escalation
    // pages their deadline and stored time (Unix ns).
    let mut stored: HashMap<String, Option<(i128, i128)>> = HashMap::new();
    let (_, last) = stream_state(&js, &names.pages_stream()).await?;
    let pages_filter = format!("{}.page.>", names.prefix);
    read_all(
        &js,
        &names.pages_stream(),
        &pages_filter,
        last,
        |_, at, payload| {
            if let Ok(p) = serde_json::from_slice::<Page>(payload) {
                let deadline = (p.kind == "escalation")
                    .then_some(p.deadline)
                    .flatten()
                    .map(|d| (d.timestamp_nanos_opt().unwrap_or(0) as i128, at));
                stored.insert(format!("{}:{}", p.event_id, p.route), deadline);
            }
        },
    )
    .await?;
    ensure!(
        stored.len() == expected,
        "{} pages stored, {expected} expected",
        stored.len()
    );

    let arrivals = std::mem::take(&mut *sink.arrivals.lock().expect("not poisoned"));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in &arrivals {
        *seen.entry(a.page_id.as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    ensure!(
        doubled.is_empty(),
        "{} pages delivered more than once, e.g. {:?}",
        doubled.len(),
        doubled.iter().take(3).collect::<Vec<_>>()
    );
    let unknown: Vec<_> = seen
        .keys()
        .filter(|id| !stored.contains_key(**id))
        .collect();
    ensure!(
        unknown.is_empty(),
        "{} requests for pages never stored, e.g. {:?}",
        unknown.len(),
        unknown.iter().take(3).collect::<Vec<_>>()
    );
    let missing: Vec<_> = stored
        .keys()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} stored pages never delivered, e.g. {:?}",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );

    // Escalation pages: lateness, and their arrival rate.
    let (mut late, mut page_stored, mut after_store) = (vec![], vec![], vec![]);
    let mut escalated: Vec<Instant> = vec![];
    let (mut first_deadline, mut last_deadline) = (i128::MAX, i128::MIN);
    for a in &arrivals {
        if let Some(Some((d, at))) = stored.get(&a.page_id) {
            late.push((a.wall_ns - d) as f64 / 1e6);
            page_stored.push((at - d) as f64 / 1e6);
            after_store.push((a.wall_ns - at) as f64 / 1e6);
            escalated.push(a.at);
            first_deadline = first_deadline.min(*d);
            last_deadline = last_deadline.max(*d);
        }
    }
    ensure!(
        late.len() == 2 * n,
        "{} escalation pages delivered, {} expected",
        late.len(),
        2 * n
    );
    escalated.sort();
    let (from, to) = (
        escalated.len() / 5,
        escalated.len() - 1 - escalated.len() / 5,
    );
    let window = (escalated[to] - escalated[from]).as_secs_f64();
    let steady = (to - from) as f64 / window.max(1e-9);
    let fire_span = (last_deadline - first_deadline) as f64 / 1e9;
    let fire_rate = n as f64 / fire_span.max(1e-9);
    let late = Spread::of(late);
    let (page_stored, after_store) = (Spread::of(page_stored), Spread::of(after_store));
    let ms = |s: &Spread| format!("{:.2} / {:.2} / {:.2} ms", s.p50, s.p99, s.max);

    let mut s = Section::new("delivery");
    s.row(
        format!("{n} escalations (2 webhook pages each), deadlines firing at"),
        format!("{fire_rate:.0} /s over {fire_span:.1} s"),
        Target::None,
    );
    s.row(
        "lateness deadline → webhook request received, p50 / p99 / max",
        ms(&late),
        Target::Met(late.p99 <= 10.0, "p99 ≤ 10 ms"),
    );
    s.row(
        "  (deadline → page stored, p50 / p99 / max)",
        ms(&page_stored),
        Target::None,
    );
    s.row(
        "  (page stored → webhook request received, p50 / p99 / max)",
        ms(&after_store),
        Target::None,
    );
    s.row(
        "escalation pages delivered to the sink, steady (middle 60 %)",
        format!("{steady:.0} /s over {window:.1} s"),
        Target::None,
    );
    s.row(
        format!("capacity: a backlog of {backlog} pages drained by the worker alone, steady (middle 60 %) / whole drain"),
        format!("{capacity_steady:.0} /s / {capacity_drain:.0} /s"),
        Target::None,
    );
    s.row(
        "webhook requests: stored pages, each once",
        format!("{} of {expected}, 0 missing, 0 doubled", arrivals.len()),
        Target::None,
    );
    s.json = json!({
        "escalations": n,
        "rate": rate,
        "fires_per_s": fire_rate,
        "lateness_webhook_received_ms": late,
        "lateness_page_stored_ms": page_stored,
        "page_stored_to_webhook_received_ms": after_store,
        "steady_deliveries_per_s": steady,
        "steady_window_s": window,
        "webhook_requests": arrivals.len(),
        "pages_stored": expected,
        "delivery_metric_samples": delivery_metric,
        "capacity_backlog": backlog,
        "capacity_steady_per_s": capacity_steady,
        "capacity_drain_per_s": capacity_drain,
        "contacts": "oncall and incident_captain: one webhook each, to the same local sink",
    });
    Ok(s)
}
