//! Reports in: the durable consumer of `BATON_REPORTS`.
//!
//! Each report goes to the application (`Handoffs::report`): a valid one
//! opens or joins its handoff and is acked only after its events are
//! stored; an invalid one is recorded on `<prefix>.rejected.<template>`
//! with every reason and then acked. If either store fails, the report is
//! nak'ed and redelivered after a delay that doubles per attempt
//! (`limits.report_retry_backoff`, capped). A report that still cannot be
//! stored on its `limits.max_report_attempts`-th delivery is given up on:
//! recorded as `unrecordable` on the rejected stream (with the last error),
//! counted in `baton_reports_terminated_total` and terminated, so one bad
//! report never loops forever. If even that record fails it is terminated
//! all the same and logged at error level with its sequence.
//! Reports are processed concurrently (`limits.ingest_concurrency`), which is
//! what pipelines appends across handoffs.

use std::sync::Arc;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::engine::ReportSource;
use crate::app::Handoffs;
use crate::config::Limits;
use crate::store::StoreError;

/// Durable consumer name on `BATON_REPORTS`.
pub const CONSUMER: &str = "baton-ingest";

/// Consumes reports until shutdown, then finishes the ones in flight.
/// `limits` gives the concurrency (`ingest_concurrency`), the attempts and
/// the retry backoff.
pub async fn run(
    app: Handoffs,
    js: jetstream::Context,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let concurrency = limits.ingest_concurrency;
    let limits = Arc::new(limits);
    let names = app.names().clone();
    // No `max_deliver` on the consumer: the server would stop delivering a
    // report silently (an advisory only), and it counts ack-wait expiries
    // of a stalled but healthy daemon too; `process` records and counts
    // the reports it gives up on instead. It also leaves an existing
    // durable's config as it is, which nats-server 2.9 may refuse to update.
    let mut messages = crate::store::Durable::open(
        js,
        names.reports_stream(),
        CONSUMER,
        "Baton report ingest",
        i64::try_from(concurrency * 2).unwrap_or(1024),
        String::new(),
    )
    .await?;
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
        while tasks.try_join_next().is_some() {}
        let (app, limits) = (app.clone(), limits.clone());
        tasks.spawn(async move {
            process(&app, &limits, msg).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn process(app: &Handoffs, limits: &Limits, msg: jetstream::Message) {
    let template = app.names().template_of(&msg.subject).to_string();
    let (source, delivered) = match msg.info() {
        Ok(i) => (
            ReportSource {
                seq: i.stream_sequence,
                published_ms: u64::try_from(i.published.unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(0),
            },
            i.delivered,
        ),
        Err(e) => {
            tracing::error!(error = %e, "report without JetStream metadata");
            return;
        }
    };
    let seq = source.seq;
    let outcome =
        crate::store::with_progress(&msg, app.report(&template, &msg.payload, source)).await;
    match outcome {
        Ok(_) => {
            if let Err(e) = msg.ack().await {
                tracing::warn!(seq, error = %e, "report ack failed; redelivery will join the same handoff");
            }
        }
        Err(e) if delivered >= i64::from(limits.max_report_attempts) => {
            let error = e.to_string();
            match app
                .give_up_report(&template, &msg.payload, seq, delivered, &error)
                .await
            {
                Ok(()) => {
                    tracing::warn!(seq, delivered, %error, "report not stored after every attempt; recorded as unrecordable and terminated")
                }
                Err(record) => {
                    tracing::error!(seq, delivered, %error, record_error = %record, "report not stored after every attempt, nor its record; terminated")
                }
            }
            if let Err(e) = msg.ack_with(AckKind::Term).await {
                tracing::warn!(seq, error = %e, "report term failed; its next delivery is given up on again");
            }
        }
        Err(e) => {
            let delay = limits.report_retry_delay(delivered);
            tracing::warn!(seq, delivered, error = %e, ?delay, "report not stored; will be redelivered");
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
        }
    }
}
