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

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use baton::pages::Page;
use baton::store::Names;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::json;

use crate::broker::{read_all, stream_state, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{config, p1_payload, TEMPLATE};
use crate::report::{Section, Target};
use crate::sys::Spread;

/// Slack between the last report published and the first deadline.
const MARGIN: Duration = Duration::from_secs(3);
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

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    n: usize,
    rate: usize,
) -> anyhow::Result<Section> {
    let (sink, url, sink_task) = start_sink().await?;
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let first_response = Duration::from_secs_f64(n as f64 / rate as f64) + MARGIN;
    let cfg = config(
        broker.url(),
        &format!(
            "[severity.P1]\nfirst_response = \"{}ms\"\n\
             escalation = [ {{ routes = [\"oncall\", \"incident_captain\"], delay = \"1h\" }} ]\n\
             [delivery]\nenabled = true\nper_destination_interval = \"0s\"\n\
             [routes.oncall]\ntarget = \"rota:payments\"\n\
             contact = [ {{ kind = \"webhook\", url = \"{url}\" }} ]\n\
             [routes.incident_captain]\ntarget = \"rota:captains\"\n\
             contact = [ {{ kind = \"webhook\", url = \"{url}\" }} ]\n",
            first_response.as_millis()
        ),
    )?;
    let names = Names::new(&cfg.nats.prefix);
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let payloads: Vec<_> = (0..n).map(p1_payload).collect();
    let subject = names.report(TEMPLATE);

    // Steady publishing: `per_tick` reports per tick, `rate` per second.
    let per_tick = (rate / 1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(per_tick as f64 / rate as f64));
    let mut acks = FuturesUnordered::new();
    let mut sent = 0;
    while sent < n {
        tokio::select! {
            _ = tick.tick() => {
                for _ in 0..per_tick.min(n - sent) {
                    let ack = js.publish(subject.clone(), payloads[sent].clone()).await?;
                    acks.push(ack.into_future());
                    sent += 1;
                }
            }
            Some(r) = acks.next(), if !acks.is_empty() => { r?; }
        }
    }
    while let Some(r) = acks.next().await {
        r?;
    }
    let projection = daemon.shared().engine.projection().clone();
    let waited = Instant::now();
    while projection.len() < n && waited.elapsed() < first_response {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = projection.len();
    ensure!(
        open == n,
        "{open} of {n} handoffs opened before the first deadline"
    );
    eprintln!(
        "[e2e] delivery: {n} reports published, {open} handoffs open, {} pages at the sink; waiting for deadlines",
        sink.len()
    );

    // Every page at the sink: one opening page, then two escalation pages each.
    let expected = PAGES_PER_HANDOFF * n;
    let limit = first_response + Duration::from_secs(120) + Duration::from_millis(n as u64 * 5);
    let started = Instant::now();
    while sink.len() < expected {
        if started.elapsed() > limit {
            bail!(
                "{} of {expected} webhook requests after {limit:?}",
                sink.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        "contacts": "oncall and incident_captain: one webhook each, to the same local sink",
    });
    Ok(s)
}
