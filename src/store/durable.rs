//! A durable pull consumer's messages that outlive a broker loss: the ingest
//! and the page publisher read through [`Durable`].
//!
//! async-nats resumes a pull stream across a reconnect by itself, but a
//! stream that ends (its consumer deleted: a broker back with a lost store,
//! an operator's `nats consumer rm`) or keeps erroring does not come back.
//! `Durable` then gets or creates the consumer again and resumes, retrying
//! with capped backoff, so a long-running loop never exits or stalls on it.

use async_nats::jetstream::{self, consumer::pull};
use backon::ExponentialBackoff;
use futures::StreamExt;
use tokio::time::Instant;

use super::backoff::{schedule, REBUILD_MAX};
use super::StoreError;

/// Errors in a row after which the consumer is rebuilt.
const ERRORS_TO_REBUILD: u32 = 3;

/// Which consumer to read: the arguments of [`super::durable_consumer`].
struct Spec {
    js: jetstream::Context,
    stream: String,
    name: &'static str,
    description: &'static str,
    max_ack_pending: i64,
    filter_subject: String,
}

/// A durable consumer's messages, rebuilt whenever they stop.
pub struct Durable {
    spec: Spec,
    messages: Option<pull::Stream>,
    errors: u32,
    /// The waits between rebuild attempts ([`super::backoff`]).
    backoff: ExponentialBackoff,
    /// Whether `backoff` has handed out a wait since it was last reset, so
    /// the hot path (every message) rebuilds it only after a failed rebuild.
    backoff_used: bool,
    /// No rebuild before this (kept here, not slept, so dropping
    /// [`Durable::next`] in a `select!` loses nothing).
    not_before: Instant,
}

impl Durable {
    /// Opens the consumer `name` on `stream` (see
    /// [`super::durable_consumer`]); fails only if the first attempt does,
    /// so a daemon that cannot start says so.
    pub async fn open(
        js: jetstream::Context,
        stream: String,
        name: &'static str,
        description: &'static str,
        max_ack_pending: i64,
        filter_subject: String,
    ) -> Result<Self, StoreError> {
        let mut d = Durable {
            spec: Spec {
                js,
                stream,
                name,
                description,
                max_ack_pending,
                filter_subject,
            },
            messages: None,
            errors: 0,
            backoff: schedule(),
            backoff_used: false,
            not_before: Instant::now(),
        };
        d.messages = Some(d.build().await?);
        Ok(d)
    }

    async fn build(&self) -> Result<pull::Stream, StoreError> {
        let s = &self.spec;
        let stream =
            s.js.get_stream(&s.stream)
                .await
                .map_err(|e| StoreError::nats("get stream", e))?;
        super::durable_consumer(
            &stream,
            s.name,
            s.description,
            s.max_ack_pending,
            s.filter_subject.clone(),
        )
        .await?
        .messages()
        .await
        .map_err(|e| StoreError::nats("consume", e))
    }

    /// The next message; waits (rebuilding the consumer as needed) until
    /// there is one. Cancel-safe: call it in a `select!` with shutdown.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                tokio::time::sleep_until(self.not_before).await;
                match self.build().await {
                    Ok(m) => {
                        tracing::info!(consumer = self.spec.name, "consumer rebuilt; resuming");
                        self.messages = Some(m);
                        self.errors = 0;
                    }
                    Err(e) => {
                        self.backoff_used = true;
                        let wait = self.backoff.next().unwrap_or(REBUILD_MAX);
                        tracing::warn!(consumer = self.spec.name, error = %e, ?wait, "consumer cannot be rebuilt yet; retrying");
                        self.not_before = Instant::now() + wait;
                    }
                }
                continue;
            };
            match messages.next().await {
                Some(Ok(m)) => {
                    self.errors = 0;
                    if std::mem::take(&mut self.backoff_used) {
                        self.backoff = schedule();
                    }
                    return m;
                }
                Some(Err(e)) => {
                    self.errors += 1;
                    tracing::warn!(consumer = self.spec.name, error = %e, "consumer error");
                    if self.errors >= ERRORS_TO_REBUILD {
                        self.messages = None;
                    }
                }
                None => {
                    tracing::warn!(consumer = self.spec.name, "consumer ended; rebuilding it");
                    self.messages = None;
                }
            }
        }
    }
}
