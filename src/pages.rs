//! Pages out: a durable consumer of `BATON_EVENTS` turns each stored notice
//! into messages on `<prefix>.page.<route>.<team>`.
//!
//! A page is a pure function of its causing event ([`pages_for`]; it and
//! the [`Page`] format live in `wire::page`), published with
//! `Nats-Msg-Id = <event id>:<route>` before the event is acked. A crash
//! after the publish and before the ack redelivers the event; the re-publish
//! carries the same id and `BATON_PAGES` drops it (duplicate window,
//! `[pages] duplicate_window`, default 24 h). A crash before the publish
//! leaves the event unacked, so the page goes out on restart. Neither lost
//! nor doubled.
//!
//! A commit is never acked unless its pages are stored. One written by a
//! newer Baton (rolling upgrade) is nak'd with a long delay, left for a
//! daemon that reads it; a corrupt one (not a commit at all) is terminated.
//! Both are logged as errors and counted in `baton_undecodable_commits_total`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use chrono::Utc;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, UNDECODABLE_CORRUPT, UNDECODABLE_NEWER};
use crate::store::{decode_commit, Names, StoreError};
pub use crate::wire::page::{pages_for, AckHow, Page};

/// Durable consumer name on `BATON_EVENTS`.
pub const CONSUMER: &str = "baton-pages";
/// Events whose pages are in flight at once.
const WINDOW: usize = 256;
/// How long a commit from a newer Baton waits before it is offered again
/// (to whichever daemon pulls it next, a newer one during an upgrade).
const NEWER_VERSION_RETRY: Duration = Duration::from_secs(300);
/// How soon an event whose pages could not be stored is offered again:
/// short, so paging resumes within a fraction of a second of the broker.
const RETRY: Duration = Duration::from_millis(250);

/// Publishes pages until shutdown. Events are processed in stream order;
/// their pages' acks are awaited in a pipeline of `WINDOW` events.
pub async fn run(
    js: jetstream::Context,
    names: Names,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut messages = crate::store::Durable::open(
        js.clone(),
        names.events_stream(),
        CONSUMER,
        "Baton page publisher",
        10_000,
        names.events_all(),
    )
    .await?;
    let mut inflight = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
            msg = messages.next(), if inflight.len() < WINDOW => {
                inflight.push_back(publish(js.clone(), names.clone(), metrics.clone(), msg));
            }
        }
    }
    // Finish what was started: publish-then-ack, nothing half done.
    while inflight.next().await.is_some() {}
    Ok(())
}

async fn publish(
    js: jetstream::Context,
    names: Names,
    metrics: Arc<Metrics>,
    msg: jetstream::Message,
) {
    crate::store::with_progress(&msg, publish_event(js, names, metrics, &msg)).await;
}

/// Stores the pages of the commit in `msg`, then acks it.
async fn publish_event(
    js: jetstream::Context,
    names: Names,
    metrics: Arc<Metrics>,
    msg: &jetstream::Message,
) {
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    // Never ack what was not paged: a commit is acked only once its pages
    // are stored, or terminated when no build could ever derive any.
    let commit = match decode_commit(seq, &msg.payload) {
        Ok(c) => c,
        Err(e @ StoreError::NewerVersion { .. }) => {
            // A newer daemon (rolling upgrade) reads it: leave it on the
            // shared consumer for one. Acking would lose its pages forever.
            tracing::error!(
                seq,
                error = %e,
                "commit from a newer Baton left unpaged for a daemon that reads it; upgrade this one"
            );
            metrics
                .undecodable_commits_total
                .with_label_values(&[UNDECODABLE_NEWER])
                .inc();
            let _ = msg.ack_with(AckKind::Nak(Some(NEWER_VERSION_RETRY))).await;
            return;
        }
        Err(e) => {
            // Not a commit at all (`decode_commit` reports newer versions
            // apart): redelivering it would fail the same way forever.
            // `baton audit verify` reports it as `undecodable_event`.
            tracing::error!(seq, error = %e, "corrupt commit terminated; no pages derived from it");
            metrics
                .undecodable_commits_total
                .with_label_values(&[UNDECODABLE_CORRUPT])
                .inc();
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let mut acks = Vec::new();
    for event in &commit.events {
        for (subject, msg_id, page) in pages_for(event, &names) {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, msg_id.as_str());
            let body = serde_json::to_vec(&page).expect("pages serialize");
            match js.publish_with_headers(subject, headers, body.into()).await {
                Ok(f) => acks.push((f, page.kind, page.deadline)),
                Err(e) => {
                    tracing::warn!(handoff_id = %page.handoff_id, error = %e, "page publish failed; event will be redelivered");
                    let _ = msg.ack_with(AckKind::Nak(Some(RETRY))).await;
                    return;
                }
            }
        }
    }
    for (f, kind, deadline) in acks {
        match f.await {
            Ok(ack) => {
                if !ack.duplicate {
                    metrics
                        .pages_published_total
                        .with_label_values(&[&kind])
                        .inc();
                    if let (true, Some(d)) = (kind == "escalation", deadline) {
                        let late = (Utc::now() - d).num_microseconds().unwrap_or(0).max(0);
                        metrics
                            .escalation_lateness_seconds
                            .observe(late as f64 / 1e6);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "page not stored; event will be redelivered");
                let _ = msg.ack_with(AckKind::Nak(Some(RETRY))).await;
                return;
            }
        }
    }
    if let Err(e) = msg.double_ack().await {
        // The pages are stored; a redelivery re-publishes them under the same
        // ids and the stream drops the copies.
        tracing::warn!(seq, error = %e, "event ack failed after its pages were stored");
    }
}
