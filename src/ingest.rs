//! Reports in: the durable consumer of `BATON_REPORTS`.
//!
//! Each report goes to the application (`Handoffs::report`): a valid one
//! opens or joins its handoff and is acked only after its events are
//! stored; an invalid one is recorded on `<prefix>.rejected.<template>`
//! with every reason and then acked. If either store fails, the report is
//! nak'ed and redelivered: nothing is dropped.
//! Reports are processed concurrently (`limits.ingest_concurrency`), which is
//! what pipelines appends across handoffs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::engine::ReportSource;
use crate::app::Handoffs;
use crate::store::StoreError;

/// Durable consumer name on `BATON_REPORTS`.
pub const CONSUMER: &str = "baton-ingest";

/// Consumes reports until shutdown, then finishes the ones in flight.
/// `concurrency` is `limits.ingest_concurrency`.
pub async fn run(
    app: Handoffs,
    js: jetstream::Context,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let names = app.names().clone();
    let stream = js
        .get_stream(names.reports_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let consumer = crate::store::durable_consumer(
        &stream,
        CONSUMER,
        "Baton report ingest",
        i64::try_from(concurrency * 2).unwrap_or(1024),
        String::new(),
    )
    .await?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| StoreError::nats("consume", e))?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("never closed"),
        };
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = messages.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "ingest consumer error");
                continue;
            }
            None => return Err(StoreError::nats("consume", "report stream ended")),
        };
        while tasks.try_join_next().is_some() {}
        let app = app.clone();
        tasks.spawn(async move {
            process(&app, msg).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn process(app: &Handoffs, msg: jetstream::Message) {
    let template = app.names().template_of(&msg.subject).to_string();
    let source = match msg.info() {
        Ok(i) => ReportSource {
            seq: i.stream_sequence,
            published_ms: u64::try_from(i.published.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(0),
        },
        Err(e) => {
            tracing::error!(error = %e, "report without JetStream metadata");
            return;
        }
    };
    match app.report(&template, &msg.payload, source).await {
        Ok(_) => {
            if let Err(e) = msg.ack().await {
                tracing::warn!(seq = source.seq, error = %e, "report ack failed; redelivery will join the same handoff");
            }
        }
        Err(e) => {
            tracing::warn!(seq = source.seq, error = %e, "report not stored; will be redelivered");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}
