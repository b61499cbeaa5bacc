//! `baton serve`: connect, ensure streams, rebuild state, then run every task
//! until shutdown.
//!
//! Start-up order matters: the projector replays `BATON_EVENTS` first and
//! the SLA timer, ingest and commands start only once it has caught up, so no
//! decision is taken on half-rebuilt state and every pending deadline is
//! re-armed (the projector arms them as it applies). Each task takes the
//! shutdown token; on SIGINT/SIGTERM they stop taking new work, finish what
//! they started, and `wait` returns once all have ended. If one task fails,
//! the others are shut down and the error is returned (exit code 1), so a
//! supervisor restarts a daemon that is whole, never one that is half alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::engine::{Engine, EngineError};
use crate::app::Handoffs;
use crate::config::Config;
use crate::domain::{Command, DomainError, ParseLimits};
use crate::identity::{Credentials, Identity};
use crate::metrics::Metrics;
use crate::projector::{self, Projection};
use crate::store::{self, EventStore, Names, StoreError};
use crate::{api, delivery, heartbeat, http, ingest, jobs, pages, sla, snapshot};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{task} failed: {message}")]
    Task { task: &'static str, message: String },
}

/// Shared handles of a running daemon (tests and benches use them). The
/// components never see it: each takes the narrow context it needs, built
/// here ([`Shared::app`], [`Shared::app_state`], [`Shared::job_context`]).
#[derive(Clone)]
pub struct Shared {
    pub cfg: Arc<Config>,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub js: async_nats::jetstream::Context,
    pub client: async_nats::Client,
    pub ready: watch::Receiver<bool>,
    /// Whether Baton can write to JetStream now (`store::health`).
    pub store_up: watch::Receiver<bool>,
    /// People, followed credentials and access rules.
    pub identity: Identity,
}

impl Shared {
    /// The application service every transport calls, with `[limits]`.
    pub fn app(&self) -> Handoffs {
        let limits = ParseLimits {
            max_report_bytes: self.cfg.limits.max_report_bytes,
            max_field_bytes: self.cfg.limits.max_field_bytes,
        };
        Handoffs::new(self.engine.clone(), limits, self.metrics.clone())
            .with_identity(self.identity.clone())
    }

    /// The HTTP face's state.
    pub fn app_state(&self) -> http::AppState {
        http::AppState {
            http: Arc::new(self.cfg.http.clone()),
            names: Names::new(&self.cfg.nats.prefix),
            app: self.app(),
            metrics: self.metrics.clone(),
            js: self.js.clone(),
            client: self.client.clone(),
            ready: self.ready.clone(),
            store_up: self.store_up.clone(),
            intake: Arc::new(crate::intake::Intake::new(
                self.cfg.alertmanager.clone(),
                self.cfg.pagerduty.clone(),
            )),
            ack_keys: Arc::new(self.cfg.delivery.ack_keys.clone()),
            heartbeats: Arc::new(self.cfg.heartbeat.iter().map(|h| h.name.clone()).collect()),
            identity: self.identity.clone(),
            console: http::console::ConsoleState::new(&self.cfg.console),
        }
    }

    /// The jobs' context.
    pub fn job_context(&self) -> jobs::JobContext {
        jobs::JobContext {
            cfg: Arc::new(self.cfg.jobs.clone()),
            app: self.app(),
            metrics: self.metrics.clone(),
            js: self.js.clone(),
            identity: self.identity.clone(),
        }
    }
}

/// The streams' settings from `[nats]`, `[limits]` and `[pages]`.
pub fn stream_settings(cfg: &Config) -> store::StreamSettings {
    store::StreamSettings {
        replicas: cfg.nats.replicas,
        max_report_bytes: cfg.limits.max_report_bytes,
        pages_duplicate_window: cfg.pages.duplicate_window,
        pages_max_age: cfg.pages.max_age,
    }
}

/// Feeds `baton_event_append_seconds` from the event store's append timings.
pub fn append_timer(metrics: &Arc<Metrics>) -> store::AppendObserver {
    let m = metrics.clone();
    Arc::new(move |took| m.event_append_seconds.observe(took.as_secs_f64()))
}

/// A started daemon.
pub struct Running {
    pub shared: Shared,
    /// Where the HTTP API listens, if enabled.
    pub http_addr: Option<SocketAddr>,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
    shutdown: CancellationToken,
}

/// Starts the daemon and returns once state is rebuilt and every task runs.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> Result<Running, ServeError> {
    let cfg = Arc::new(cfg);
    let health = store::StoreHealth::new();
    let client = store::connect_watched(&cfg.nats, Some(health.clone())).await?;
    let version = client.server_info().version;
    store::check_server(&version, cfg.nats.replicas)?;
    if cfg.nats.replicas > 1
        && store::parse_server_version(&version).is_some_and(|v| v < store::RECOMMENDED_SERVER)
    {
        tracing::warn!(%version, "nats-server below 2.12.3 in a cluster: upgrade (Jepsen 2025), and run it with sync_interval: always");
    }
    tracing::info!(%version, replicas = cfg.nats.replicas, "connected to nats-server");
    let js = store::jetstream(client.clone(), &cfg.nats);
    let names = Names::new(&cfg.nats.prefix);
    store::ensure_streams(&js, &names, &stream_settings(&cfg)).await?;
    let metrics = Arc::new(Metrics::new());
    let policy = Arc::new(cfg.policy());
    let event_store = EventStore::open(
        js.clone(),
        &names,
        cfg.limits.max_in_flight_appends,
        Some(append_timer(&metrics)),
    )
    .await?
    .with_health(health.clone());
    let (timer, queue) = sla::channel();
    let projection = Arc::new(
        Projection::new(policy.clone(), timer, metrics.clone())
            .with_retention(cfg.limits.closed_retention),
    );
    // Who is on call: the config's rotations plus every stored override,
    // read before anything can page so no decision misses one.
    let roster = Arc::new(crate::app::oncall::Roster::new(cfg.directory()));
    let oncall_log = store::OncallLog::new(js.clone(), &names);
    let oncall_after = crate::oncall::catch_up(&roster, &oncall_log).await?;
    let engine = Arc::new(
        Engine::new(event_store.clone(), projection.clone(), policy).with_roster(roster.clone()),
    );
    let (ready_tx, ready) = watch::channel(false);
    let mut tasks: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
    {
        // Probes JetStream so readiness follows the store both ways, even
        // when nothing else writes; `baton_store_up` mirrors it.
        let (h, j, m, t) = (
            health.clone(),
            js.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let stream = names.events_stream();
        tasks.spawn(async move {
            let gauge = move |up: bool| m.store_up.set(i64::from(up));
            store::health::run(h, j, stream, gauge, t).await;
            ("store health", Ok(()))
        });
    }

    {
        let (r, l, h, t) = (roster, oncall_log, health.clone(), shutdown.clone());
        tasks.spawn(async move {
            let result = crate::oncall::run(r, l, oncall_after, Some(h), t).await;
            ("on-call follower", result.map_err(|e| e.to_string()))
        });
    }

    let started = Instant::now();
    // A snapshot, when a valid one exists, leaves only the tail to replay.
    let snapshots = snapshot::SnapshotStore::open(js.clone(), event_store.names()).await?;
    let after = snapshot::restore(&snapshots, &projection).await;
    metrics
        .snapshot_restored_seq
        .set(i64::try_from(after).unwrap_or(i64::MAX));
    let target = event_store.last_seq().await?;
    {
        let (p, s, t) = (projection.clone(), event_store.clone(), shutdown.clone());
        tasks.spawn(async move {
            let r = projector::run(p, s, after, target, ready_tx, t).await;
            ("projector", r.map_err(|e| e.to_string()))
        });
    }
    let mut wait_ready = ready.clone();
    // Only a bool leaves the select: the watch guard must not live across the
    // await below (it would make `start`'s future !Send).
    let projector_ended = tokio::select! {
        _ = shutdown.cancelled() => false,
        r = wait_ready.wait_for(|r| *r) => r.is_err(),
    };
    if projector_ended {
        // The projector ended before catching up, whichever way: a daemon
        // without its state must not serve (it would never escalate).
        let message = match tasks.join_next().await {
            Some(Ok((_, Err(message)))) => message,
            Some(Err(e)) => format!("panicked: {e}"),
            _ => "stopped before catching up".into(),
        };
        return Err(ServeError::Task {
            task: "projector",
            message,
        });
    }
    tracing::info!(
        events = target,
        replayed = target.saturating_sub(after),
        handoffs = projection.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state rebuilt from the event stream"
    );

    {
        let (p, t) = (projection.clone(), shutdown.clone());
        tasks.spawn(async move {
            snapshot::run(snapshots, p, snapshot::INTERVAL, after, t).await;
            ("snapshots", Ok(()))
        });
    }
    {
        // Closed handoffs past `limits.closed_retention` leave memory,
        // those the snapshot or the replay brought back included.
        let (p, t) = (projection.clone(), shutdown.clone());
        tasks.spawn(async move {
            projector::evict::run(p, t).await;
            ("evictions", Ok(()))
        });
    }
    {
        let e = engine.clone();
        let fire = move |id| {
            let e = e.clone();
            async move {
                // The timer re-arms from the state after every tick, so a
                // deadline scheduled while this tick ran is never lost.
                match e.execute(id, Command::Tick).await {
                    Ok(o) => Ok(o.handoff.and_then(|h| h.next_deadline(e.policy()))),
                    Err(EngineError::Domain(DomainError::NotFound)) => Ok(None),
                    Err(err) => Err(err.to_string()),
                }
            }
        };
        let (r, m, t, n) = (
            ready.clone(),
            metrics.clone(),
            shutdown.clone(),
            cfg.limits.tick_concurrency,
        );
        tasks.spawn(async move {
            sla::run(queue, fire, r, n, m, t).await;
            ("sla timer", Ok(()))
        });
    }
    // Credentials are followed into memory; one not seen yet is read by
    // its subject on first use, so commands need not wait for this.
    let credentials = Credentials::new(js.clone(), names.clone());
    {
        let (c, h, t) = (credentials.clone(), health.clone(), shutdown.clone());
        tasks.spawn(async move {
            c.run(Some(h), t).await;
            ("credentials", Ok(()))
        });
    }
    let shared = Shared {
        cfg: cfg.clone(),
        engine,
        metrics: metrics.clone(),
        js: js.clone(),
        client: client.clone(),
        ready,
        store_up: health.subscribe(),
        identity: Identity::new(&cfg, Some(credentials)),
    };
    {
        let (a, j, n, t) = (
            shared.app(),
            js.clone(),
            cfg.limits.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            (
                "ingest",
                ingest::run(a, j, n, t).await.map_err(|e| e.to_string()),
            )
        });
    }
    // Subscribed before `start` returns: no "no responders" right after start-up.
    let requests = api::nats::subscribe(&client, &names)
        .await
        .map_err(|e| StoreError::nats("subscribe", e))?;
    {
        let service = api::nats::Service {
            identity: shared.identity.clone(),
            app: shared.app(),
            jobs: shared.job_context(),
            client: client.clone(),
        };
        let t = shutdown.clone();
        tasks.spawn(async move {
            api::nats::serve(requests, service, t).await;
            ("nats requests", Ok(()))
        });
    }
    if cfg.pages.enabled {
        let (j, n, m, t) = (
            js.clone(),
            event_store.names().clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            (
                "pages",
                pages::run(j, n, m, t).await.map_err(|e| e.to_string()),
            )
        });
    }
    if cfg.delivery.enabled {
        let worker = delivery::Worker::new(
            shared.app(),
            delivery::Settings::from_config(&cfg),
            metrics.clone(),
        )
        .map_err(|e| ServeError::Task {
            task: "delivery",
            message: e.to_string(),
        })?;
        let (j, n, t) = (js.clone(), event_store.names().clone(), shutdown.clone());
        tasks.spawn(async move {
            (
                "delivery",
                delivery::run(Arc::new(worker), j, n, t)
                    .await
                    .map_err(|e| e.to_string()),
            )
        });
    }
    {
        // After the projector caught up: an `ok` read from history may
        // resolve an incident, which needs the handoffs' state.
        let monitors = heartbeat::run::open(
            heartbeat::run::monitors(&cfg),
            shared.engine.clone(),
            metrics.clone(),
            js.clone(),
            names.clone(),
        )
        .await?
        .with_health(health.clone());
        let t = shutdown.clone();
        tasks.spawn(async move {
            let r = monitors.run(t).await;
            ("heartbeats", r.map_err(|e| e.to_string()))
        });
    }
    let mut http_addr = None;
    if cfg.http.enabled {
        let addr = cfg.http.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        http_addr = listener.local_addr().ok();
        let (s, t) = (shared.app_state(), shutdown.clone());
        tasks.spawn(async move {
            (
                "http",
                http::serve(listener, s, t).await.map_err(|e| e.to_string()),
            )
        });
    }
    {
        let (c, t) = (shared.job_context(), shutdown.clone());
        tasks.spawn(async move { ("jobs", jobs::run(c, t).await) });
    }
    // A request/response on the same connection is a barrier: the server
    // handles a connection's messages in order, so once it answers, the
    // subscriptions above are registered and a command sent now is served.
    // (`Client::flush` only drains the socket buffer; it is not enough.)
    event_store.last_seq().await?;
    tracing::info!(prefix = %cfg.nats.prefix, http = ?http_addr, "baton is serving");
    Ok(Running {
        shared,
        http_addr,
        tasks,
        shutdown,
    })
}

impl Running {
    /// Runs until shutdown (or until a task fails), then waits for every
    /// task to finish its in-flight work.
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let mut result = Ok(());
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {}
            // A task that ends once shutdown has begun is just stopping.
            Some(done) = self.tasks.join_next(), if !self.shutdown.is_cancelled() => {
                result = Err(match done {
                    Ok((task, Err(message))) => ServeError::Task { task, message },
                    Ok((task, Ok(()))) => ServeError::Task { task, message: "stopped unexpectedly".into() },
                    Err(e) => ServeError::Task { task: "task", message: e.to_string() },
                });
            }
        }
        self.shutdown.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Ok((task, Err(message))) = done {
                tracing::warn!(task, %message, "task ended with an error during shutdown");
            }
        }
        let _ = self.shared.client.flush().await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "baton stopped");
        } else {
            tracing::info!("baton stopped cleanly");
        }
        result
    }

    /// Aborts every task at once, as a crash would (tests use this).
    pub fn abort(mut self) {
        self.tasks.abort_all();
        self.tasks.detach_all();
    }
}

/// `start` then `wait`.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    start(cfg, shutdown).await?.wait().await
}

/// `baton deliver`: only the delivery worker, apart from `serve`. It
/// records outcomes through its own engine, which loads each handoff from
/// the stream when it first writes to it (no full replay, no SLA timer:
/// the daemons keep escalating) and forgets again once the page is done
/// (no projector tells it of closes). With `[delivery] listen` it serves
/// `/metrics`, `/healthz` and `/readyz` there (`http::probes`).
pub async fn deliver(cfg: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    let cfg = Arc::new(cfg);
    let client = store::connect(&cfg.nats).await?;
    store::check_server(&client.server_info().version, cfg.nats.replicas)?;
    let js = store::jetstream(client.clone(), &cfg.nats);
    let names = Names::new(&cfg.nats.prefix);
    store::ensure_streams(&js, &names, &stream_settings(&cfg)).await?;
    let metrics = Arc::new(Metrics::new());
    let policy = Arc::new(cfg.policy());
    let event_store = EventStore::open(
        js.clone(),
        &names,
        cfg.limits.max_in_flight_appends,
        Some(append_timer(&metrics)),
    )
    .await?;
    // A timer nobody runs: this process never fires deadlines. Its queue
    // goes at once, so arming one is a no-op, not an entry kept forever.
    let (timer, queue) = sla::channel();
    drop(queue);
    let projection = Arc::new(Projection::new(policy.clone(), timer, metrics.clone()));
    let engine = Arc::new(Engine::new(event_store, projection.clone(), policy));
    let limits = ParseLimits {
        max_report_bytes: cfg.limits.max_report_bytes,
        max_field_bytes: cfg.limits.max_field_bytes,
    };
    let app = Handoffs::new(engine, limits, metrics.clone());
    // No projector here: the worker forgets each handoff once its page is
    // done, or the projection would keep every one it ever wrote to.
    let worker = delivery::Worker::new(app, delivery::Settings::from_config(&cfg), metrics.clone())
        .map_err(|e| ServeError::Task {
            task: "delivery",
            message: e.to_string(),
        })?
        .alone(projection);
    let (ready_tx, ready) = watch::channel(false);
    let mut probes = None;
    if let Some(addr) = cfg.delivery.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let state = http::probes::Probes {
            metrics,
            client: client.clone(),
            ready,
        };
        tracing::info!(listen = ?listener.local_addr().ok(), "serving /metrics, /healthz and /readyz");
        probes = Some(tokio::spawn(http::probes::serve(
            listener,
            state,
            shutdown.clone(),
        )));
    }
    tracing::info!(prefix = %cfg.nats.prefix, "baton is delivering pages");
    let result = delivery::run_ready(
        Arc::new(worker),
        js,
        names,
        shutdown.clone(),
        Some(ready_tx),
    )
    .await
    .map_err(|e| ServeError::Task {
        task: "delivery",
        message: e.to_string(),
    });
    // The probes stop with the worker, whichever way it ended.
    shutdown.cancel();
    if let Some(p) = probes {
        if let Ok(Err(e)) = p.await {
            tracing::warn!(error = %e, "probe listener ended with an error");
        }
    }
    result
}

/// Cancels `token` on SIGINT, SIGTERM or SIGHUP (the last unless ignored).
pub async fn shutdown_on_signals(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        // The terminal closing (SIGHUP) stops cleanly too, unless SIGHUP is
        // ignored (`nohup baton serve`): a handler would undo that.
        let mut hup = (!sighup_ignored())
            .then(|| signal(SignalKind::hangup()).expect("SIGHUP handler installs"));
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
            _ = hangup => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}

/// Whether this process was started with SIGHUP ignored (`nohup`).
#[cfg(unix)]
fn sighup_ignored() -> bool {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter, and a null
    // new action only reads the current disposition.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}
