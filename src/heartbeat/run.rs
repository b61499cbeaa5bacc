//! The heartbeat edge: follows `BATON_HEARTBEATS`, arms each monitor's
//! deadline on a second instance of the SLA timer ([`crate::sla`]), and
//! turns what the rules in [`super`] decide into commands on the engine.
//!
//! Start: every stored ping is read with an ordered consumer and folded into
//! each monitor's state (no incident is opened for history); then the
//! deadlines are armed (one already past fires at once: a deadline missed
//! while Baton was down), a `fail` still current opens its outage, and the
//! reader follows new pings. Every daemon reads every ping and arms every
//! deadline; the outage's derived handoff id makes their decisions land on
//! one handoff (see [`super`]).
//!
//! **Opened once.** The engine's expected sequence lets only one daemon
//! store an outage's opening; the loser re-decides on the stored incident,
//! and an opening with the same `source` (the miss or the `fail` ping it is
//! for) is nothing to do (`Incident::opened_by`).
//!
//! Per monitor, pings and wake-ups are handled one at a time (an async
//! mutex held while the engine stores their effect), so an `ok` that comes
//! right after a miss finds the incident the miss opened, and resolves it.
//!
//! A ping for no configured monitor, or with a bad body, is logged and
//! counted (`baton_heartbeat_pings_rejected_total`) and skipped: the reader
//! never stops or loops on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{on_deadline, on_ping, parse_ping, Due, Effect, Monitor, MonitorState, PingStatus};
use crate::app::engine::{Engine, EngineError};
use crate::config::Config;
use crate::domain::{Command, DomainError, Handoff, IncidentCommand, Report};
use crate::metrics::Metrics;
use crate::sla::{self, TimerHandle};
use crate::store::{self, Names, StoreError, StoreHealth};

/// The monitors of `[[heartbeat]]` (validated at load), as settings.
pub fn monitors(cfg: &Config) -> Vec<Monitor> {
    cfg.heartbeat
        .iter()
        .map(|h| Monitor {
            name: h.name.clone(),
            period: h.period,
            grace: h.grace,
            severity: h.severity,
            team: h.team.clone(),
            workflow: h.workflow.clone(),
            template: h.template().to_string(),
            alert_if_never_pinged: h.alert_if_never_pinged,
        })
        .collect()
}

/// One monitor and what this daemon knows of it.
struct Entry {
    monitor: Monitor,
    /// Held while a ping's or a wake-up's effect is stored.
    state: Mutex<MonitorState>,
}

/// Everything the reader and the timer's ticks share.
struct Heartbeats {
    by_name: HashMap<String, Arc<Entry>>,
    by_timer: HashMap<Uuid, Arc<Entry>>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    timer: TimerHandle,
    names: Names,
    /// When this daemon started: the base of `alert_if_never_pinged`.
    started: DateTime<Utc>,
}

/// Retries of a ping's effect before it is given up (logged as an error).
const EFFECT_ATTEMPTS: u32 = 10;
/// Pause between those retries.
const RETRY: Duration = Duration::from_secs(1);
/// Wake-ups handled at once (a handful of monitors, each one at a time).
const TICK_CONCURRENCY: usize = 16;

/// The monitors of a daemon, ready to run: [`open`] then [`Monitors::run`].
pub struct Monitors {
    hb: Arc<Heartbeats>,
    stream: stream::Stream,
    queue: sla::TimerQueue,
    health: Option<Arc<StoreHealth>>,
}

/// Opens `BATON_HEARTBEATS` and fixes where history ends: a ping stored
/// after this returns is a new one (the daemon's start awaits it).
pub async fn open(
    monitors: Vec<Monitor>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    js: jetstream::Context,
    names: Names,
) -> Result<Monitors, StoreError> {
    let stream = js
        .get_stream(names.heartbeats_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let (timer, queue) = sla::channel();
    let entries: Vec<Arc<Entry>> = monitors
        .into_iter()
        .map(|monitor| {
            Arc::new(Entry {
                monitor,
                state: Mutex::default(),
            })
        })
        .collect();
    let hb = Arc::new(Heartbeats {
        by_name: entries
            .iter()
            .map(|e| (e.monitor.name.clone(), e.clone()))
            .collect(),
        by_timer: entries
            .iter()
            .map(|e| (e.monitor.timer_id(), e.clone()))
            .collect(),
        engine,
        metrics,
        timer,
        names,
        started: Utc::now(),
    });
    Ok(Monitors {
        hb,
        stream,
        queue,
        health: None,
    })
}

impl Monitors {
    /// Rebuilds the reader's consumer at once when `health` comes back up
    /// after an outage ([`store::Follow`]).
    pub fn with_health(mut self, health: Arc<StoreHealth>) -> Self {
        self.health = Some(health);
        self
    }

    /// Runs until shutdown: rebuilds the monitors' state from the stream,
    /// then follows it and fires their deadlines.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let Monitors {
            hb,
            stream,
            queue,
            health,
        } = self;
        let (ready_tx, ready) = watch::channel(false);
        let fire = {
            let hb = hb.clone();
            move |id: Uuid| {
                let hb = hb.clone();
                async move { hb.fire(id).await }
            }
        };
        // The timer's own gauge (`baton_overdue_deadlines`) belongs to the
        // escalation timer; this instance reports into a registry nobody
        // scrapes, so the two never overwrite each other's figure.
        let unscraped = Arc::new(Metrics::new());
        let timer = sla::run(
            queue,
            fire,
            ready,
            TICK_CONCURRENCY,
            unscraped,
            shutdown.clone(),
        );
        let reader = hb.follow(stream, health, ready_tx, shutdown);
        let ((), result) = tokio::join!(timer, reader);
        result
    }
}

/// A stored ping, as the reader hands it on.
struct Stored<'a> {
    subject: &'a str,
    payload: &'a [u8],
    seq: u64,
    at: DateTime<Utc>,
}

impl Heartbeats {
    /// Reads the stream from the start: history until `target`, then live.
    async fn follow(
        &self,
        stream: stream::Stream,
        health: Option<Arc<StoreHealth>>,
        ready: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<(), StoreError> {
        let target = stream.cached_info().state.last_sequence;
        let mut replaying = target > 0;
        if !replaying {
            self.caught_up(&ready).await;
        }
        // Each ping once, in order; the consumer is rebuilt after the last
        // ping read, at once when the store is back after an outage.
        let mut messages = store::Follow::new(stream, self.names.heartbeats_all(), 0, "heartbeats");
        if let Some(h) = &health {
            messages = messages.with_health(h);
        }
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                m = messages.next() => m,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "heartbeat reader failed; resuming");
                    continue;
                }
                None => continue,
            };
            let Ok(info) = msg.info() else {
                tracing::warn!("heartbeat message without stream info; skipped");
                continue;
            };
            let (seq, pending) = (info.stream_sequence, info.pending);
            let at = DateTime::from_timestamp_nanos(
                i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(i64::MAX),
            );
            let stored = Stored {
                subject: &msg.subject,
                payload: &msg.payload,
                seq,
                at,
            };
            if replaying {
                self.replay(stored).await;
                if seq >= target || pending == 0 {
                    replaying = false;
                    self.caught_up(&ready).await;
                }
            } else {
                self.live(stored, &shutdown).await;
            }
        }
    }

    /// The monitor a subject names, or `None` (counted and logged) when it is
    /// not configured.
    fn entry(&self, subject: &str, live: bool) -> Option<&Arc<Entry>> {
        let name = self.names.heartbeat_of(subject);
        let entry = self.by_name.get(name);
        if entry.is_none() && live {
            self.metrics
                .heartbeat_pings_rejected_total
                .with_label_values(&["unknown_monitor"])
                .inc();
            tracing::warn!(subject, "heartbeat ping for no configured monitor; ignored");
        }
        entry
    }

    /// A ping from before this daemon's start: folded into the state. Its
    /// `ok` still resolves an outage left open (the `ok` came while Baton
    /// was down); a `fail` only opens once history is read, if no `ok`
    /// came after it ([`Heartbeats::caught_up`]).
    async fn replay(&self, s: Stored<'_>) {
        let Some(entry) = self.entry(s.subject, false) else {
            return;
        };
        let Ok(ping) = parse_ping(s.payload) else {
            return;
        };
        let mut state = entry.state.lock().await;
        if let Effect::Resolve { outage_seq, note } =
            on_ping(&entry.monitor, &mut state, &ping, s.seq, s.at)
        {
            if let Err(e) = self.resolve(&entry.monitor, outage_seq, note).await {
                tracing::warn!(monitor = %entry.monitor.name, error = %e, "cannot resolve a heartbeat outage from history");
            }
        }
    }

    /// History is read: arm every deadline, open what a `fail` left
    /// failing, and let the timer fire.
    async fn caught_up(&self, ready: &watch::Sender<bool>) {
        for entry in self.by_name.values() {
            let m = &entry.monitor;
            let state = entry.state.lock().await;
            if let Some(ok) = state.last_ok {
                self.last_ok_gauge(m, ok.at);
            }
            if let Some((seen, message)) = &state.failing {
                let report = super::failed_report(m, &state, seen.at, message.as_deref());
                let source = format!("heartbeat:{}:fail:{}", m.name, seen.seq);
                if let Err(e) = self.open(entry, state.last_ok_seq(), report, source).await {
                    tracing::error!(monitor = %m.name, error = %e, "cannot open the incident of a heartbeat fail");
                }
            }
            self.timer
                .schedule(m.timer_id(), super::deadline(m, &state, self.started));
        }
        tracing::info!(monitors = self.by_name.len(), "heartbeat monitors armed");
        let _ = ready.send(true);
    }

    /// A new ping: folded, its deadline re-armed, its effect stored (retried
    /// while the store fails, up to [`EFFECT_ATTEMPTS`]).
    async fn live(&self, s: Stored<'_>, shutdown: &CancellationToken) {
        let Some(entry) = self.entry(s.subject, true) else {
            return;
        };
        let m = &entry.monitor;
        let ping = match parse_ping(s.payload) {
            Ok(p) => p,
            Err(e) => {
                self.metrics
                    .heartbeat_pings_rejected_total
                    .with_label_values(&[e.code()])
                    .inc();
                tracing::warn!(monitor = %m.name, seq = s.seq, error = %e, "heartbeat ping refused");
                return;
            }
        };
        self.metrics
            .heartbeat_pings_total
            .with_label_values(&[&m.name, ping.status.as_str()])
            .inc();
        let mut state = entry.state.lock().await;
        let effect = on_ping(m, &mut state, &ping, s.seq, s.at);
        if ping.status == PingStatus::Ok {
            self.last_ok_gauge(m, s.at);
        }
        self.timer
            .schedule(m.timer_id(), super::deadline(m, &state, self.started));
        tracing::debug!(monitor = %m.name, seq = s.seq, status = ping.status.as_str(), "heartbeat ping");
        for attempt in 1..=EFFECT_ATTEMPTS {
            let result = match &effect {
                Effect::Nothing => Ok(()),
                Effect::Resolve { outage_seq, note } => {
                    self.resolve(m, *outage_seq, note.clone()).await
                }
                Effect::Open { outage_seq, report } => {
                    let source = format!("heartbeat:{}:fail:{}", m.name, s.seq);
                    self.open(entry, *outage_seq, (**report).clone(), source)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return,
                Err(e) if attempt < EFFECT_ATTEMPTS => {
                    tracing::warn!(monitor = %m.name, error = %e, "heartbeat effect not stored; retrying");
                    if pause(shutdown).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(monitor = %m.name, seq = s.seq, error = %e, "heartbeat effect not stored; given up");
                }
            }
        }
    }

    /// The timer's wake-up for a monitor: opens its outage if the deadline
    /// passed; otherwise says what to arm. An error is retried by the timer.
    async fn fire(&self, id: Uuid) -> Result<Option<DateTime<Utc>>, String> {
        let Some(entry) = self.by_timer.get(&id) else {
            return Ok(None);
        };
        let m = &entry.monitor;
        let state = entry.state.lock().await;
        match on_deadline(m, &state, self.started, Utc::now()) {
            Due::NotYet(next) => Ok(next),
            Due::Missed { outage_seq, report } => {
                let source = format!("heartbeat:{}:missed:{outage_seq}", m.name);
                let opened = self
                    .open(entry, outage_seq, *report, source)
                    .await
                    .map_err(|e| e.to_string())?;
                if opened {
                    self.metrics
                        .heartbeat_misses_total
                        .with_label_values(&[&m.name])
                        .inc();
                    tracing::warn!(monitor = %m.name, handoff_id = %m.outage_id(outage_seq), "heartbeat missed; incident opened");
                }
                // Armed again by the next `ok`.
                Ok(None)
            }
        }
    }

    /// Opens the outage's incident unless it exists (opened by a miss, a
    /// `fail`, another daemon, or this one before a restart). True when
    /// this call stored the opening.
    async fn open(
        &self,
        entry: &Entry,
        outage_seq: u64,
        report: Report,
        source: String,
    ) -> Result<bool, EngineError> {
        let m = &entry.monitor;
        let id = m.outage_id(outage_seq);
        if self.engine.load(id).await?.is_some() {
            tracing::debug!(monitor = %m.name, handoff_id = %id, "heartbeat outage already open");
            return Ok(false);
        }
        let cmd = Command::Incident(IncidentCommand::Open {
            template: m.template.clone(),
            report,
            warnings: vec![],
            source: Some(source),
        });
        // Two daemons (or a retry) may decide the same opening: the append
        // expecting sequence 0 stores it once, and the loser's decision on
        // the stored incident is nothing (same `source`). A miss after the
        // outage was resolved is nothing too.
        match self.engine.execute(id, cmd).await {
            Ok(outcome) => Ok(outcome.events.first().is_some_and(|e| e.kind() == "opened")),
            Err(EngineError::Domain(DomainError::Resolved)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Resolves the outage's incident if it was opened and is not resolved.
    async fn resolve(&self, m: &Monitor, outage_seq: u64, note: String) -> Result<(), EngineError> {
        let id = m.outage_id(outage_seq);
        let open = match self.engine.load(id).await? {
            Some(Handoff::Incident(i)) => i.resolved.is_none(),
            _ => false,
        };
        if !open {
            return Ok(());
        }
        let cmd = Command::Incident(IncidentCommand::Resolve {
            by: super::ACTOR.into(),
            note: Some(note),
        });
        match self.engine.execute(id, cmd).await {
            Ok(_) => {
                tracing::info!(monitor = %m.name, handoff_id = %id, "heartbeat ok again; incident resolved");
                Ok(())
            }
            // Another daemon read the same `ok` first.
            Err(EngineError::Domain(DomainError::Resolved)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn last_ok_gauge(&self, m: &Monitor, at: DateTime<Utc>) {
        self.metrics
            .heartbeat_last_ok_timestamp_seconds
            .with_label_values(&[&m.name])
            .set(at.timestamp());
    }
}

/// Waits [`RETRY`]; true when shutdown came first.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(RETRY) => false,
    }
}
