//! A stream followed in order that resumes quickly after a broker loss: the
//! projector, the on-call follower, the credentials follower and the
//! heartbeat reader read through [`Follow`].
//!
//! An async-nats ordered consumer recreates itself on gaps and missed
//! heartbeats, but after a long outage it waits between attempts up to
//! 10 s, so a daemon whose broker is back still misses other daemons'
//! writes for seconds. And before it has delivered a message it recreates
//! from the stream's start (it only knows sequences it has seen), which
//! would hand a reader that began at a later sequence everything again.
//!
//! `Follow` keeps its own position (the last stream sequence it handed
//! out) and rebuilds the ordered consumer from the next one when the
//! store's health ([`super::StoreHealth`]) comes back up, when the
//! consumer errors, and when it ends; rebuilds retry with capped backoff
//! ([`super::backoff`]). A message at or before the position
//! is dropped, so nothing is handed out twice, and a rebuild starts right
//! after the position, so nothing is skipped: in order, exactly once.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::Ordered, consumer::DeliverPolicy, stream};
use backon::ExponentialBackoff;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::{schedule, REBUILD_MAX};
use super::{StoreError, StoreHealth};

/// The messages of one stream (under one filter) after a position, in
/// stream order, each once, for as long as the caller reads.
pub struct Follow {
    stream: stream::Stream,
    filter: String,
    /// What the logs call this reader.
    name: &'static str,
    /// The last stream sequence handed out (0: none yet).
    position: u64,
    messages: Option<Ordered>,
    /// A rebuild under way, kept here so dropping [`Follow::next`] in a
    /// `select!` neither loses nor repeats it.
    building: Option<BoxFuture<'static, Result<Ordered, StoreError>>>,
    backoff: ExponentialBackoff,
    /// Whether `backoff` has handed out a wait since it was last reset, so
    /// the hot path (every message) rebuilds it only after a retry.
    backoff_used: bool,
    /// No rebuild before this (kept, not slept, for the same reason).
    not_before: Instant,
    health: Option<watch::Receiver<bool>>,
}

impl Follow {
    /// Follows `stream` (messages on `filter`; empty: all) after stream
    /// sequence `after`. Nothing is read until [`Follow::next`]; a consumer
    /// that cannot be made is retried there. See [`Follow::open`] to fail
    /// fast instead.
    pub fn new(stream: stream::Stream, filter: String, after: u64, name: &'static str) -> Self {
        Follow {
            stream,
            filter,
            name,
            position: after,
            messages: None,
            building: None,
            backoff: schedule(),
            backoff_used: false,
            not_before: Instant::now(),
            health: None,
        }
    }

    /// [`Follow::new`] with its consumer made now: fails if that first
    /// attempt does, so a daemon that cannot read its stream says so.
    pub async fn open(
        stream: stream::Stream,
        filter: String,
        after: u64,
        name: &'static str,
    ) -> Result<Self, StoreError> {
        let mut f = Self::new(stream, filter, after, name);
        f.messages = Some(f.build().await?);
        Ok(f)
    }

    /// Rebuilds the consumer whenever `health` comes back up: the store
    /// answers again, so a consumer lost with the broker is replaced at
    /// once instead of at async-nats's next recreate attempt.
    pub fn with_health(mut self, health: &StoreHealth) -> Self {
        let mut rx = health.subscribe();
        rx.borrow_and_update();
        self.health = Some(rx);
        self
    }

    /// The last stream sequence handed out (`after` until one is).
    pub fn position(&self) -> u64 {
        self.position
    }

    fn build(&self) -> BoxFuture<'static, Result<Ordered, StoreError>> {
        let (stream, filter) = (self.stream.clone(), self.filter.clone());
        let deliver_policy = match self.position {
            0 => DeliverPolicy::All,
            n => DeliverPolicy::ByStartSequence {
                start_sequence: n + 1,
            },
        };
        Box::pin(async move { super::ordered_messages(&stream, deliver_policy, filter).await })
    }

    /// The next wait of the rebuild schedule.
    fn next_wait(&mut self) -> Duration {
        self.backoff_used = true;
        self.backoff.next().unwrap_or(REBUILD_MAX)
    }

    /// Starts the rebuild schedule again, if a wait was taken from it: a
    /// no-op per message in the common case.
    fn reset_backoff(&mut self) {
        if std::mem::take(&mut self.backoff_used) {
            self.backoff = schedule();
        }
    }

    /// Drops the consumer; the next read rebuilds it after `wait`.
    fn rebuild_after(&mut self, wait: Duration) {
        self.messages = None;
        self.building = None;
        self.not_before = Instant::now() + wait;
    }

    /// The next message after the position; waits (rebuilding the consumer
    /// as needed) until there is one. Never `None`: an `Option` so it reads
    /// like a stream's `next`. An error is the consumer's, told so the
    /// caller can log it; the consumer is being rebuilt and the next call
    /// resumes after the position. Cancel-safe: call it in a `select!`.
    pub async fn next(&mut self) -> Option<Result<jetstream::Message, StoreError>> {
        loop {
            if self.messages.is_none() {
                if self.building.is_none() {
                    tokio::time::sleep_until(self.not_before).await;
                    self.building = Some(self.build());
                }
                let built = self.building.as_mut().expect("set above").await;
                self.building = None;
                match built {
                    Ok(m) => {
                        tracing::info!(
                            reader = self.name,
                            after = self.position,
                            "ordered consumer rebuilt; resuming"
                        );
                        self.messages = Some(m);
                    }
                    Err(e) => {
                        let wait = self.next_wait();
                        tracing::warn!(reader = self.name, error = %e, ?wait, "ordered consumer cannot be rebuilt yet; retrying");
                        self.not_before = Instant::now() + wait;
                    }
                }
                continue;
            }
            let messages = self.messages.as_mut().expect("checked above");
            let got = match self.health.as_mut() {
                None => Got::Message(messages.next().await),
                Some(health) => tokio::select! {
                    biased;
                    changed = health.changed() => match changed {
                        Ok(()) => Got::Health(*health.borrow_and_update()),
                        Err(_) => Got::HealthGone,
                    },
                    m = messages.next() => Got::Message(m),
                },
            };
            match got {
                Got::Health(true) => {
                    tracing::info!(
                        reader = self.name,
                        after = self.position,
                        "store is back: rebuilding the ordered consumer"
                    );
                    self.reset_backoff();
                    self.rebuild_after(Duration::ZERO);
                }
                Got::Health(false) => {}
                Got::HealthGone => self.health = None,
                Got::Message(Some(Ok(m))) => {
                    let seq = match m.info() {
                        Ok(info) => info.stream_sequence,
                        Err(e) => {
                            tracing::error!(reader = self.name, error = %e, "message without JetStream metadata skipped");
                            continue;
                        }
                    };
                    if seq <= self.position {
                        tracing::debug!(
                            reader = self.name,
                            seq,
                            position = self.position,
                            "already handed out; dropped"
                        );
                        continue;
                    }
                    self.position = seq;
                    self.reset_backoff();
                    return Some(Ok(m));
                }
                Got::Message(Some(Err(e))) => {
                    let wait = self.next_wait();
                    self.rebuild_after(wait);
                    return Some(Err(StoreError::nats(
                        "ordered consumer",
                        format!("{}: {e}", self.name),
                    )));
                }
                Got::Message(None) => {
                    let wait = self.next_wait();
                    tracing::warn!(
                        reader = self.name,
                        ?wait,
                        "ordered consumer ended; rebuilding it"
                    );
                    self.rebuild_after(wait);
                }
            }
        }
    }
}

/// What one wait in [`Follow::next`] brought. A stack temporary, matched at
/// once: boxing the message would cost an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
enum Got {
    Message(Option<Result<jetstream::Message, jetstream::consumer::pull::OrderedError>>),
    Health(bool),
    HealthGone,
}
