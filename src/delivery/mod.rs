//! Pages reach people: a durable consumer of `BATON_PAGES` (`baton-delivery`)
//! that sends each page to its target's contact methods, in order, until one
//! takes it, and records what happened **in the log** as delivery events on
//! the handoff (`delivered`, `delivery_failed`, `undelivered`) through the
//! one write path (`app::Handoffs::execute` with `Command::Delivery`).
//!
//! - [`contacts`] — who and how, in order (pure).
//! - [`channels`] — webhook, Slack, e-mail: message builders and senders.
//! - [`retry`] — the attempt loop: backoff with jitter, `Retry-After`, the
//!   retry deadline, a per-destination rate limit.
//!
//! **At-least-once.** A page's message is acked only once its outcome is
//! stored; every attempt on contact `i` of page `<event>:<route>` carries
//! the idempotency key `<event>:<route>:<i>` (`Idempotency-Key` on
//! webhooks, the `Message-ID` of mails). A crash between the remote 2xx and
//! the record (or a shutdown in the middle of a retry) leaves the message
//! unacked: it is redelivered, to this daemon or another, and sent again
//! under the same key, so a receiver that honours the key sees one page.
//! A redelivery whose outcome is already in the log is acked without sending.
//! Two daemons share the one durable consumer, so each page goes to one of
//! them at a time (progress acks keep a long retry from being taken over).
//!
//! **Throughput.** A page's first delivery reads nothing from the log: no
//! outcome can be there yet, and who else was paged travels on the page
//! (`also_paged`). Only a redelivery (or a page from before that field)
//! reads the handoff's log. So a page costs one request to its contact, one
//! append and one ack, and `concurrency` pages (default 256) are in flight
//! at once; appends to one handoff still go one after the other (the
//! engine's expected-sequence write), appends to different handoffs overlap.
//!
//! Delivery never changes escalation: the events it records are inert in
//! both aggregates, so the next level fires when the policy says.

pub mod channels;
pub mod contacts;
pub mod links;
pub mod retry;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{AppError, Handoffs};
use crate::config::{ContactConfig, DeliveryConfig, PersonConfig, RouteConfig};
use crate::domain::{Command, EventData};
use crate::metrics::Metrics;
use crate::pages::Page;
use crate::projector::Projection;
use crate::store::{Names, StoreError};
use channels::{Attempt, Context};
use contacts::Contact;
use retry::RateLimiter;

/// Durable consumer name on `BATON_PAGES`.
pub const CONSUMER: &str = "baton-delivery";
/// How often the queue depth's `pending` is refreshed from the consumer.
const DEPTH_EVERY: Duration = Duration::from_secs(5);
/// The queue depth's label for pages not in this process's hands.
const PENDING: &str = "pending";

/// What the worker needs from the config: `[delivery]`, and the people and
/// routes whose contacts it reads.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub delivery: DeliveryConfig,
    pub people: BTreeMap<String, PersonConfig>,
    pub routes: BTreeMap<String, RouteConfig>,
}

impl Settings {
    /// From the whole config.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            delivery: cfg.delivery.clone(),
            people: cfg.people.clone(),
            routes: cfg.routes.clone(),
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client or the SMTP transport could not be built.
    #[error("delivery setup: {0}")]
    Setup(String),
}

/// The senders and their limits, shared by every page in flight.
pub struct Worker {
    app: Handoffs,
    settings: Settings,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    limiter: RateLimiter,
    metrics: Arc<Metrics>,
    /// Pages this process holds (counted under a channel in the queue
    /// depth), so `pending` can leave them out.
    held: AtomicI64,
    /// Run alone: the projection no projector feeds ([`Worker::alone`]).
    alone: Option<Arc<Projection>>,
}

/// How one page ended, for the caller's ack.
#[derive(Debug, PartialEq, Eq)]
pub enum PageDone {
    /// Its outcome is in the log (now, or already before): ack it.
    Recorded,
    /// The log could not be read or written: offer it again later.
    Retry,
}

impl Worker {
    pub fn new(
        app: Handoffs,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeliveryError> {
        let d = &settings.delivery;
        let http = reqwest::Client::builder()
            .connect_timeout(d.connect_timeout)
            .timeout(d.timeout)
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Setup(format!("http client: {e}")))?;
        let smtp = match &d.smtp {
            Some(s) => Some(
                channels::email::transport(s, d.timeout)
                    .map_err(|e| DeliveryError::Setup(format!("smtp: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            limiter: RateLimiter::new(d.per_destination_interval),
            app,
            settings,
            http,
            smtp,
            metrics,
            held: AtomicI64::new(0),
            alone: None,
        })
    }

    /// `baton deliver`'s worker: drops a page's handoff from `projection`
    /// once the page is done, or it would hold every one it wrote to.
    pub fn alone(mut self, projection: Arc<Projection>) -> Self {
        self.alone = Some(projection);
        self
    }

    /// Delivers one page (`page_id` is its `Nats-Msg-Id`) and records the
    /// outcome. Safe to call again for the same page: on a `redelivery`,
    /// what the log already holds is not sent again. A first delivery skips
    /// that read (nothing can be recorded for the page yet).
    pub async fn deliver(&self, page_id: &str, page: &Page, redelivery: bool) -> PageDone {
        self.deliver_counted(page_id, page, redelivery, &mut InDelivery::new(self))
            .await
    }

    async fn deliver_counted(
        &self,
        page_id: &str,
        page: &Page,
        redelivery: bool,
        depth: &mut InDelivery<'_>,
    ) -> PageDone {
        let id = page.handoff_id;
        let mut failed = Vec::new();
        let mut also_paged = page.also_paged.clone();
        if redelivery || also_paged.is_none() {
            let log = match self.app.events(id).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(handoff_id = %id, error = %e, "cannot read the handoff's log; page offered again later");
                    return PageDone::Retry;
                }
            };
            for e in &log {
                match &e.data {
                    EventData::Delivered { page_id: p, .. }
                    | EventData::Undelivered { page_id: p, .. }
                        if p == page_id =>
                    {
                        return PageDone::Recorded;
                    }
                    EventData::DeliveryFailed {
                        page_id: p,
                        channel,
                        destination,
                        person,
                        ..
                    } if p == page_id => {
                        failed.push((channel.clone(), destination.clone(), person.clone()))
                    }
                    _ => {}
                }
            }
            if also_paged.is_none() {
                also_paged = Some(
                    log.iter()
                        .find(|e| e.id == page.event_id)
                        .and_then(|e| e.data.notice())
                        .map(|(_, n)| crate::wire::page::also_paged(n, &page.route))
                        .unwrap_or_default(),
                );
            }
        }
        let also_paged = also_paged.unwrap_or_default();
        let all = contacts::contacts_for(page, &self.settings.people, &self.settings.routes);
        if all.is_empty() {
            return self
                .record(
                    id,
                    EventData::Undelivered {
                        page_id: page_id.into(),
                        reason: "no_contact".into(),
                    },
                )
                .await;
        }
        depth.on(all[0].channel());
        for contact in all {
            let (channel, destination) = (contact.channel(), contact.destination());
            // Given up on before a crash or a redelivery: the next one.
            if failed.contains(&(
                channel.to_string(),
                destination.clone(),
                contact.person.clone(),
            )) {
                continue;
            }
            depth.on(channel);
            let cx = Context {
                key: format!("{page_id}:{}", contact.index),
                page_id: page_id.into(),
                person: contact.person.clone(),
                slack_member: match &contact.method {
                    ContactConfig::Slack { member, .. } => member.clone(),
                    _ => None,
                },
                also_paged: also_paged.clone(),
                links: self.links(page, contact.person.as_deref()),
            };
            let (outcome, attempts) = self.attempt(&contact, page, &cx).await;
            let data = match outcome {
                Attempt::Delivered => {
                    let latency = (Utc::now() - page.sent_at).num_milliseconds().max(0);
                    self.metrics
                        .delivery_seconds
                        .with_label_values(&[channel])
                        .observe(latency as f64 / 1e3);
                    EventData::Delivered {
                        page_id: page_id.into(),
                        channel: channel.into(),
                        destination,
                        person: contact.person.clone(),
                        attempts,
                        latency_ms: latency,
                    }
                }
                Attempt::Permanent { reason } | Attempt::Retry { reason, .. } => {
                    let label = reason.split(':').next().unwrap_or("other").to_string();
                    self.metrics
                        .delivery_failures_total
                        .with_label_values(&[channel, &label])
                        .inc();
                    tracing::warn!(handoff_id = %id, page_id, channel, %destination, attempts, %reason, "contact method failed; trying the next");
                    EventData::DeliveryFailed {
                        page_id: page_id.into(),
                        channel: channel.into(),
                        destination,
                        person: contact.person.clone(),
                        reason,
                        attempts,
                    }
                }
            };
            let delivered = matches!(data, EventData::Delivered { .. });
            if self.record(id, data).await == PageDone::Retry {
                return PageDone::Retry;
            }
            if delivered {
                return PageDone::Recorded;
            }
        }
        self.record(
            id,
            EventData::Undelivered {
                page_id: page_id.into(),
                reason: "all_methods_failed".into(),
            },
        )
        .await
    }

    /// Attempts one contact until it is delivered, refused, or the retry
    /// deadline passes; returns the last outcome and the attempts made.
    async fn attempt(&self, contact: &Contact, page: &Page, cx: &Context) -> (Attempt, u32) {
        let d = &self.settings.delivery;
        let channel = contact.channel();
        // What is built once per contact; each attempt sends the same bytes.
        enum Prepared {
            Webhook(String, channels::webhook::Request),
            Slack(String, serde_json::Value),
            Email(String, channels::email::Mail),
        }
        let prepared = match &contact.method {
            ContactConfig::Webhook { url } => Prepared::Webhook(
                url.clone(),
                channels::webhook::build(page, cx, d.webhook.secret.as_deref(), &d.webhook.headers),
            ),
            ContactConfig::Slack { webhook_url, .. } => match resolve_secret(webhook_url) {
                Some(url) => Prepared::Slack(url, channels::slack::build(page, cx)),
                None => {
                    return (
                        Attempt::Permanent {
                            reason: "missing_secret".into(),
                        },
                        0,
                    )
                }
            },
            ContactConfig::Email { to } => {
                if self.smtp.is_none() {
                    return (
                        Attempt::Permanent {
                            reason: "no_smtp_relay".into(),
                        },
                        0,
                    );
                }
                Prepared::Email(to.clone(), channels::email::build(page, cx))
            }
        };
        let limit_key = match &prepared {
            Prepared::Webhook(u, _) | Prepared::Slack(u, _) => u.clone(),
            Prepared::Email(..) => "smtp".to_string(),
        };
        let schedule = retry::Schedule::new(d.initial_backoff, d.max_backoff, d.retry_deadline);
        schedule
            .run(|| async {
                self.limiter.wait(&limit_key).await;
                self.metrics
                    .delivery_attempts_total
                    .with_label_values(&[channel])
                    .inc();
                match &prepared {
                    Prepared::Webhook(url, req) => {
                        channels::webhook::send(&self.http, url, req.clone()).await
                    }
                    Prepared::Slack(url, body) => {
                        channels::slack::send(&self.http, url, body).await
                    }
                    Prepared::Email(to, mail) => {
                        let smtp = self.smtp.as_ref().expect("checked above");
                        let from = &d.smtp.as_ref().expect("with the transport").from;
                        channels::email::send(smtp, from, to, mail.clone()).await
                    }
                }
            })
            .await
    }

    /// One-click links for a page to a person, when `[delivery] public_url`
    /// and `BATON_ACK_KEYS` are set: acknowledge and resolve on an
    /// incident's, accept and complete on a team handoff's (none on a
    /// returned one). A route's own contact (no person) gets none: the
    /// link's actor must be a person.
    fn links(&self, page: &Page, person: Option<&str>) -> Option<channels::Links> {
        let d = &self.settings.delivery;
        links::links_for(
            d.public_url.as_deref()?,
            &d.ack_keys,
            page.handoff_id,
            person?,
            links::Action::for_page(page.work.is_some(), &page.kind),
            Utc::now(),
            d.link_ttl,
        )
    }

    /// Appends one delivery event through the write path.
    async fn record(&self, id: Uuid, data: EventData) -> PageDone {
        match self.app.execute(id, Command::Delivery(data)).await {
            Ok(_) => PageDone::Recorded,
            Err(AppError::Domain(e)) => {
                // The handoff is gone or the event refused: nothing to record
                // it on, and redelivering would not change that.
                tracing::warn!(handoff_id = %id, error = %e, "delivery outcome not recorded");
                PageDone::Recorded
            }
            Err(e) => {
                tracing::warn!(handoff_id = %id, error = %e, "delivery outcome not stored; page offered again");
                PageDone::Retry
            }
        }
    }
}

/// A Slack URL given as `env:VAR` is read from the environment (it is a
/// secret); `None` if the variable is unset.
fn resolve_secret(value: &str) -> Option<String> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).ok().filter(|v| !v.is_empty()),
        None => Some(value.to_string()),
    }
}

/// One page in this process's hands, counted in
/// `baton_delivery_queue_depth{channel}` under the channel being tried
/// (from the first contact method's on) until it is dropped: after the
/// ack, or when the page is given back.
struct InDelivery<'a> {
    worker: &'a Worker,
    channel: Option<&'static str>,
}

impl<'a> InDelivery<'a> {
    fn new(worker: &'a Worker) -> Self {
        Self {
            worker,
            channel: None,
        }
    }

    /// Counts the page under `channel` from now on.
    fn on(&mut self, channel: &'static str) {
        let gauge = &self.worker.metrics.delivery_queue_depth;
        match self.channel.replace(channel) {
            Some(c) if c == channel => return,
            Some(c) => gauge.with_label_values(&[c]).dec(),
            None => {
                self.worker.held.fetch_add(1, Ordering::Relaxed);
            }
        }
        gauge.with_label_values(&[channel]).inc();
    }
}

impl Drop for InDelivery<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.channel {
            self.worker
                .metrics
                .delivery_queue_depth
                .with_label_values(&[c])
                .dec();
            self.worker.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Delivers pages until shutdown.
///
/// Up to `concurrency` pages are delivered at once (the consumer lets
/// four times that be fetched and unacknowledged, so the next pages are
/// already here when one finishes).
///
/// A page in the middle of its retries when shutdown comes is left unacked
/// (not finished): its retries may last minutes, and another daemon, or
/// this one after its restart, takes it up under the same keys.
pub async fn run(
    worker: Arc<Worker>,
    js: jetstream::Context,
    names: Names,
    shutdown: CancellationToken,
) -> Result<(), DeliveryError> {
    run_ready(worker, js, names, shutdown, None).await
}

/// [`run`], telling `ready` once its consumer is set up (`baton deliver`'s
/// `/readyz`).
pub async fn run_ready(
    worker: Arc<Worker>,
    js: jetstream::Context,
    names: Names,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::watch::Sender<bool>>,
) -> Result<(), DeliveryError> {
    let stream = js
        .get_stream(names.pages_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let window = worker.settings.delivery.concurrency.max(1);
    let consumer = crate::store::durable_consumer(
        &stream,
        CONSUMER,
        "Baton delivery worker",
        i64::try_from(window * 4).unwrap_or(i64::MAX),
        names.pages_all(),
    )
    .await?;
    {
        let (mut c, w, t) = (consumer.clone(), worker.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(DEPTH_EVERY);
            loop {
                tokio::select! {
                    _ = t.cancelled() => break,
                    _ = every.tick() => {
                        if let Ok(info) = c.info().await {
                            let backlog = i64::try_from(info.num_pending + info.num_ack_pending as u64).unwrap_or(i64::MAX);
                            let ours = w.held.load(Ordering::Relaxed);
                            w.metrics.delivery_queue_depth.with_label_values(&[PENDING]).set((backlog - ours).max(0));
                        }
                    }
                }
            }
        });
    }
    // Read through `Durable`: rebuilt if the stream ends (broker loss).
    let mut messages = crate::store::Durable::open(
        js.clone(),
        names.pages_stream(),
        CONSUMER,
        "Baton delivery worker",
        i64::try_from(window * 4).unwrap_or(i64::MAX),
        names.pages_all(),
    )
    .await?;
    if let Some(r) = ready {
        r.send_replace(true);
    }
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
            msg = messages.next(), if inflight.len() < window => {
                let w = worker.clone();
                inflight.push(async move { handle(&w, msg).await });
            }
        }
    }
    Ok(())
}

/// One message: decode, deliver, ack (or offer it again).
async fn handle(worker: &Worker, msg: jetstream::Message) {
    let page_id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string());
    let page: Page = match serde_json::from_slice(&msg.payload) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, subject = %msg.subject, "a page that does not decode is not delivered");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    // Pages are published with their id; derive it the same way otherwise.
    let page_id = page_id.unwrap_or_else(|| format!("{}:{}", page.event_id, page.route));
    // Delivered before (to this process or another): the log says how far
    // it got. Unknown counts as a redelivery: the read only costs time.
    let redelivery = msg.info().map_or(true, |i| i.delivered > 1);
    let mut depth = InDelivery::new(worker);
    let done = crate::store::with_progress(
        &msg,
        worker.deliver_counted(&page_id, &page, redelivery, &mut depth),
    )
    .await;
    match done {
        // A plain ack, not a double ack: its outcome is stored, so if the
        // ack is lost the redelivery finds it in the log and sends nothing;
        // waiting for the server's confirmation would hold a slot for one
        // more round trip per page.
        PageDone::Recorded => {
            if let Err(e) = msg.ack().await {
                tracing::warn!(page_id, error = %e, "page ack failed after its outcome was stored");
            }
        }
        PageDone::Retry => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
    drop(depth);
    if let Some(projection) = &worker.alone {
        projection.forget(page.handoff_id); // Its outcomes are stored by now.
    }
}

/// A page from the recorded fixtures, for the channels' tests.
#[cfg(test)]
pub(crate) fn testpage() -> Page {
    let line = include_str!("../../tests/fixtures/pages/from_recorded_events.jsonl")
        .lines()
        .next()
        .expect("a recorded page");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    serde_json::from_value(v["page"].clone()).expect("a page")
}
