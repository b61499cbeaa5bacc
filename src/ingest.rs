//! Reports in: the durable consumer of `BATON_REPORTS`.
//!
//! Each report is validated; a valid one goes through the engine and is acked
//! only after its events are stored; an invalid one is published to
//! `<prefix>.rejected.<template>` with every reason and then acked. If either
//! store fails, the report is nak'ed and redelivered: nothing is dropped.
//! Reports are processed concurrently (`limits.ingest_concurrency`), which is
//! what pipelines appends across handoffs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::engine::{Engine, EngineError, Outcome, ReportSource};
use crate::config::{Config, Limits};
use crate::domain::teamwork::TemplateKind;
use crate::domain::{parse_report, FieldError, ParseLimits, ParsedReport, Policy};
use crate::metrics::Metrics;
use crate::store::{Names, StoreError};

/// The built-in incident template's name; it lives with the templates in
/// `config` and stays reachable here for the report path's callers.
pub use crate::config::AGENT_FAILURE;

/// Whether reports may be published for `template`: any `kind = "incident"`
/// template of the policy.
pub fn is_report_template(policy: &Policy, template: &str) -> bool {
    policy
        .templates
        .get(template)
        .is_some_and(|t| t.kind == TemplateKind::Incident)
}

/// Validates a report for a template: the one check shared by the NATS
/// consumer, `POST /v1/reports/{template}` and `baton report`.
pub fn validate(
    policy: &Policy,
    limits: ParseLimits,
    template: &str,
    payload: &[u8],
) -> Result<ParsedReport, Vec<FieldError>> {
    if !is_report_template(policy, template) {
        let known: Vec<&str> = policy
            .templates
            .values()
            .filter(|t| t.kind == TemplateKind::Incident)
            .map(|t| t.name.as_str())
            .collect();
        return Err(vec![FieldError::new(
            "",
            "unknown_template",
            format!(
                "no report template {template:?}; known: {}",
                known.join(", ")
            ),
        )]);
    }
    parse_report(payload, limits)
}

/// Durable consumer name on `BATON_REPORTS`.
pub const CONSUMER: &str = "baton-ingest";

/// What lands on `<prefix>.rejected.<template>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    pub template: String,
    pub subject: String,
    /// Every problem found, each with field, code and message.
    pub reasons: Vec<FieldError>,
    /// The original payload: as JSON when it parsed, else as (lossy) text.
    pub payload: Value,
    /// Sequence of the report in `BATON_REPORTS` (0 when it came over HTTP).
    pub report_seq: u64,
    pub rejected_at: DateTime<Utc>,
}

/// Builds the rejection record for a payload.
pub fn rejection(
    template: &str,
    subject: &str,
    payload: &[u8],
    reasons: Vec<FieldError>,
    seq: u64,
) -> Rejection {
    let payload = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    Rejection {
        template: template.to_string(),
        subject: subject.to_string(),
        reasons,
        payload,
        report_seq: seq,
        rejected_at: Utc::now(),
    }
}

/// The result of handling one report payload.
pub enum Handled {
    Stored(Box<Outcome>),
    Rejected(Vec<FieldError>),
}

/// Validates a report and stores its events, or publishes its rejection.
/// Shared by the NATS consumer and `POST /v1/reports/{template}`.
pub async fn handle_report(
    engine: &Engine,
    js: &jetstream::Context,
    limits: &Limits,
    metrics: &Metrics,
    template: &str,
    payload: &[u8],
    source: ReportSource,
) -> Result<Handled, EngineError> {
    let names = engine.store().names();
    let limits = ParseLimits {
        max_report_bytes: limits.max_report_bytes,
        max_field_bytes: limits.max_field_bytes,
    };
    match validate(engine.policy(), limits, template, payload) {
        Ok(p) => Ok(Handled::Stored(Box::new(
            engine
                .report(template, p.report, p.warnings, source)
                .await?,
        ))),
        Err(reasons) => {
            let label = if is_report_template(engine.policy(), template) {
                template
            } else {
                "unknown"
            };
            let mut codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
            codes.dedup();
            for c in codes {
                metrics
                    .reports_rejected_total
                    .with_label_values(&[label, c])
                    .inc();
            }
            // The subject token may be anything a publisher sent; keep the
            // rejected subject valid.
            let token = if crate::domain::is_subject_token(template) {
                template
            } else {
                "invalid"
            };
            let record = rejection(
                template,
                &names.report(template),
                payload,
                reasons.clone(),
                source.seq,
            );
            let mut headers = HeaderMap::new();
            if source.seq > 0 {
                headers.insert(NATS_MESSAGE_ID, format!("rejected:{}", source.seq).as_str());
            }
            js.publish_with_headers(
                names.rejected(token),
                headers,
                serde_json::to_vec(&record).expect("serializes").into(),
            )
            .await
            .map_err(|e| StoreError::nats("publish rejection", e))?
            .await
            .map_err(|e| StoreError::nats("publish rejection", e))?;
            tracing::warn!(template, seq = source.seq, reasons = ?record.reasons.iter().map(|r| &r.code).collect::<Vec<_>>(), "report rejected");
            Ok(Handled::Rejected(reasons))
        }
    }
}

/// Consumes reports until shutdown, then finishes the ones in flight.
pub async fn run(
    engine: Arc<Engine>,
    js: jetstream::Context,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let names = Names::new(&cfg.nats.prefix);
    let stream = js
        .get_stream(names.reports_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let consumer = crate::store::durable_consumer(
        &stream,
        CONSUMER,
        "Baton report ingest",
        i64::try_from(cfg.limits.ingest_concurrency * 2).unwrap_or(1024),
        String::new(),
    )
    .await?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| StoreError::nats("consume", e))?;
    let permits = Arc::new(Semaphore::new(cfg.limits.ingest_concurrency));
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
        let (engine, js, cfg, metrics) = (engine.clone(), js.clone(), cfg.clone(), metrics.clone());
        tasks.spawn(async move {
            process(&engine, &js, &cfg, &metrics, msg).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn process(
    engine: &Engine,
    js: &jetstream::Context,
    cfg: &Config,
    metrics: &Metrics,
    msg: jetstream::Message,
) {
    let names = engine.store().names();
    let template = names.template_of(&msg.subject).to_string();
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
    match handle_report(
        engine,
        js,
        &cfg.limits,
        metrics,
        &template,
        &msg.payload,
        source,
    )
    .await
    {
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
