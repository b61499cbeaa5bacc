//! The broker's own limit for Baton's message flow: a bare client doing the
//! JetStream operations Baton does per report, and nothing else.
//!
//! Per report, as in `ingest`, `engine`/`store`, `projector` and `pages`:
//! the report is pulled from a durable consumer (512 at once), a commit of
//! the real opening commit's size is appended with `Nats-Msg-Id` and
//! `Nats-Expected-Last-Subject-Sequence` and its ack awaited, the report is
//! acked; an ordered consumer reads the commit; a second durable consumer
//! publishes a page of the real page's size with `Nats-Msg-Id`, awaits its
//! ack (256 events in flight) and double-acks the event. No decoding, no
//! rules, no logging: what is left is the broker's and the client's cost.

use std::sync::Arc;
use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, consumer::pull, consumer::pull::OrderedConfig};
use async_nats::HeaderMap;
use baton::store::{self, Names};
use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Starts the bare pipeline under `prefix`; its tasks run on the calling
/// runtime until `stop`.
pub async fn start(
    url: String,
    prefix: &'static str,
    commit: Bytes,
    page: Bytes,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = crate::fixtures::config(&url, &format!("[nats]\nprefix = \"{prefix}\"\n"))?;
    let names = Names::new(prefix);
    let js = jetstream::new(async_nats::connect(url).await?);
    store::ensure_streams(&js, &names, &baton::server::stream_settings(&cfg)).await?;
    let reports = js.get_stream(names.reports_stream()).await?;
    let ingest = reports
        .get_or_create_consumer(
            "bare-ingest",
            pull::Config {
                durable_name: Some("bare-ingest".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: 1024,
                ..Default::default()
            },
        )
        .await?;
    let events = js.get_stream(names.events_stream()).await?;
    let pages = events
        .get_or_create_consumer(
            "bare-pages",
            pull::Config {
                durable_name: Some("bare-pages".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: 10_000,
                filter_subject: format!("{prefix}.events.*"),
                ..Default::default()
            },
        )
        .await?;
    let ordered = events
        .create_consumer(OrderedConfig {
            filter_subject: format!("{prefix}.events.*"),
            ..Default::default()
        })
        .await?;

    // Ingest: append a commit per report, then ack the report.
    {
        let (js, names, stop) = (js.clone(), names.clone(), stop.clone());
        let mut messages = ingest.messages().await?;
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(512));
            loop {
                let permit = tokio::select! {
                    _ = stop.cancelled() => return,
                    p = permits.clone().acquire_owned() => p.expect("open"),
                };
                let msg = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = messages.next() => match m { Some(Ok(m)) => m, _ => continue },
                };
                let (js, names, commit) = (js.clone(), names.clone(), commit.clone());
                tokio::spawn(async move {
                    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
                    let id = uuid::Uuid::from_u128(u128::from(seq));
                    let mut headers = HeaderMap::new();
                    headers.insert(NATS_MESSAGE_ID, format!("{id}:0").as_str());
                    headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
                    if let Ok(ack) = js
                        .publish_with_headers(names.events(id), headers, commit)
                        .await
                    {
                        if ack.await.is_ok() {
                            let _ = msg.ack().await;
                        }
                    }
                    drop(permit);
                });
            }
        });
    }
    // Projector: read every commit.
    {
        let stop = stop.clone();
        let mut messages = ordered.messages().await?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    m = messages.next() => if m.is_none() { return },
                }
            }
        });
    }
    // Pages: publish, await the ack, double-ack the event; 256 in flight.
    {
        let mut messages = pages.messages().await?;
        let subject = names.page("oncall", "payments");
        tokio::spawn(async move {
            let mut inflight = FuturesOrdered::new();
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    Some(()) = inflight.next(), if !inflight.is_empty() => {}
                    m = messages.next(), if inflight.len() < 256 => {
                        let Some(Ok(msg)) = m else { continue };
                        let (js, subject, page) = (js.clone(), subject.clone(), page.clone());
                        inflight.push_back(async move {
                            let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
                            let mut headers = HeaderMap::new();
                            headers.insert(NATS_MESSAGE_ID, format!("{seq}:oncall").as_str());
                            if let Ok(ack) = js.publish_with_headers(subject, headers, page).await {
                                if ack.await.is_ok() {
                                    let _ = msg.double_ack().await;
                                }
                            }
                        });
                    }
                }
            }
        });
    }
    // Give the consumers a moment to issue their first pulls.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
