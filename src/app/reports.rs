//! Reports in: the one validation, the open (or join) of a handoff, and
//! the rejection record.
//!
//! Two intakes use it. The ingest consumer hands every report it reads
//! from `BATON_REPORTS` to [`Handoffs::report`]: a valid one opens or
//! joins its handoff, an invalid one is recorded on
//! `<prefix>.rejected.<template>` and counted. `POST /v1/reports/{template}`
//! calls [`Handoffs::submit_report`]: a valid report is *published to
//! `BATON_REPORTS`*, so the ingest processes it like any runner's (one
//! write path), and the caller learns the handoff it becomes; an invalid
//! one is recorded and counted exactly as the ingest does, and refused
//! with every reason. Each payload is validated once.

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::{ReportSource, Reported};
use super::rejection;
use super::views::{CommandReply, HcsView, ReportAccepted, ReportOutcome};
use super::{AppError, Handoffs};
use crate::domain::teamwork::TemplateKind;
use crate::domain::{
    parse_report, Command, FieldError, IncidentCommand, ParseLimits, ParsedReport, Policy,
};
use crate::store::StoreError;

/// Whether reports may be published for `template`: any `kind = "incident"`
/// template of the policy.
pub fn is_report_template(policy: &Policy, template: &str) -> bool {
    policy
        .templates
        .get(template)
        .is_some_and(|t| t.kind == TemplateKind::Incident)
}

/// Validates a report for a template: the one check shared by the ingest,
/// `POST /v1/reports/{template}` and `baton report` (before it connects).
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

/// What lands on `<prefix>.rejected.<template>`: a stored format, read by
/// people and tools long after. Built bounded by [`super::rejection::build`]
/// (at most [`super::rejection::RECORD_BUDGET`] bytes), so it always fits
/// in one broker message. Fields added later are optional, so older
/// records still decode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    /// The template the report named (its subject's token), at most 256 bytes.
    pub template: String,
    /// The subject it was published on.
    pub subject: String,
    /// Every problem found, each with field, code and message; at most 100,
    /// the last one (`reasons_truncated`) saying how many more were cut.
    pub reasons: Vec<FieldError>,
    /// The original payload: as JSON when it parsed, else as (lossy) text.
    /// Absent when the record would grow too big with it (or it was the
    /// literal `null`): then `excerpt` holds its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// The first 4 KiB of the payload as (lossy) text, when `payload` is
    /// not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Size of the original payload, bytes (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// SHA-256 of the original payload, lowercase hex (absent in older
    /// records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// Sequence of the report in `BATON_REPORTS`; 0 for a report refused
    /// over HTTP, which never reached the stream.
    pub report_seq: u64,
    /// When it was refused.
    pub rejected_at: DateTime<Utc>,
}

/// What the ingest did with a report from the stream.
#[derive(Debug)]
pub enum Ingested {
    /// Its events are stored (a new handoff, a recurrence or
    /// `reported_again`), or were already (a redelivery).
    Stored(Box<Reported>),
    /// It was invalid; the rejection is recorded.
    Rejected(Vec<FieldError>),
}

impl Handoffs {
    fn validate(&self, template: &str, payload: &[u8]) -> Result<ParsedReport, Vec<FieldError>> {
        validate(self.policy(), self.limits, template, payload)
    }

    /// A report from `BATON_REPORTS`: opens or joins its handoff, or records
    /// its rejection. An error means nothing durable happened for it: the
    /// caller leaves it for redelivery.
    pub async fn report(
        &self,
        template: &str,
        payload: &[u8],
        source: ReportSource,
    ) -> Result<Ingested, AppError> {
        match self.validate(template, payload) {
            Ok(p) => {
                let outcome = self
                    .engine
                    .report(template, p.report, p.warnings, source)
                    .await?;
                Ok(Ingested::Stored(Box::new(outcome)))
            }
            Err(reasons) => {
                self.reject(template, payload, &reasons, Some(source.seq))
                    .await?;
                Ok(Ingested::Rejected(reasons))
            }
        }
    }

    /// A report over HTTP (and from the integrations): validated,
    /// published to `BATON_REPORTS` (with `msg_id` as its `Nats-Msg-Id`),
    /// then recorded at once, exactly as the ingest records it — the ingest
    /// meets it later as already recorded and changes nothing. So the answer
    /// says what happened, not a guess: `opened`, `joined` or `recurred`.
    ///
    /// An `msg_id` the stream has already seen (within its duplicate
    /// window) for the same body answers the first report's handoff with
    /// `duplicate: true`; for a different body it is refused with
    /// `idempotency_key_reused`, naming what the key stored first.
    pub async fn submit_report(
        &self,
        template: &str,
        payload: bytes::Bytes,
        msg_id: Option<&str>,
    ) -> Result<ReportAccepted, AppError> {
        let parsed = match self.validate(template, &payload) {
            Ok(p) => p,
            Err(reasons) => {
                // Counted either way; if the record cannot be stored the
                // caller still learns what is wrong with the report.
                if let Err(e) = self.reject(template, &payload, &reasons, None).await {
                    tracing::warn!(error = %e, template, "rejection record not stored");
                }
                return Err(AppError::InvalidReport(reasons));
            }
        };
        let names = self.names();
        let js = self.engine.store().context();
        let mut headers = HeaderMap::new();
        if let Some(k) = msg_id {
            headers.insert(NATS_MESSAGE_ID, k);
        }
        let subject = names.report(template);
        let ack = async {
            js.publish_with_headers(subject.clone(), headers, payload.clone())
                .await?
                .await
        }
        .await
        .map_err(|e| StoreError::nats("publish report", e))?;
        // The stored message: its time makes a keyless report's id, and a
        // duplicate's body tells a retry from a reused key.
        let stream = js
            .get_stream(names.reports_stream())
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        let stored = stream
            .get_raw_message(ack.sequence)
            .await
            .map_err(|e| StoreError::nats("get report", e))?;
        let source = ReportSource {
            seq: ack.sequence,
            published_ms: u64::try_from(stored.time.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(0),
        };
        if ack.duplicate && (stored.subject.as_str() != subject || stored.payload != payload) {
            let first = self.report_source_handoff(&stored.subject, &stored.payload, source);
            return Err(AppError::IdempotencyKeyReused { first_use: first });
        }
        let reported = self
            .engine
            .report(template, parsed.report, parsed.warnings.clone(), source)
            .await?;
        let handoff_id = reported.outcome.handoff_id;
        let incident = reported.incident();
        let occurrence = incident.map_or(1, |i| i.occurrence);
        let recurrence_of = incident.and_then(|i| i.recurrence_of);
        let outcome = match (reported.opened, recurrence_of) {
            (false, _) => ReportOutcome::Joined,
            (true, None) => ReportOutcome::Opened,
            (true, Some(_)) => ReportOutcome::Recurred,
        };
        let (hcs, gate_passed) = incident.map_or_else(
            || (HcsView::from(&crate::domain::Hcs::default()), false),
            |i| (HcsView::from(&i.hcs), i.gate_passed),
        );
        tracing::info!(%handoff_id, seq = ack.sequence, duplicate = ack.duplicate, ?outcome, occurrence, "report recorded over HTTP");
        Ok(ReportAccepted {
            handoff_id,
            report_seq: ack.sequence,
            duplicate: ack.duplicate,
            joins: outcome == ReportOutcome::Joined,
            hcs,
            gate_passed,
            warnings: parsed.warnings,
            outcome,
            occurrence,
            recurrence_of,
            message: outcome.message(handoff_id, occurrence, recurrence_of),
        })
    }

    /// Names what a stored report was about, for `idempotency_key_reused`.
    fn report_source_handoff(&self, subject: &str, payload: &[u8], source: ReportSource) -> String {
        let template = self.names().template_of(subject).to_string();
        let first_key = self
            .validate(&template, payload)
            .ok()
            .and_then(|p| crate::domain::dedup_key_for(&p.report));
        match first_key {
            Some(k) => format!(
                "a {template} report with dedup key {k:?} (BATON_REPORTS seq {})",
                source.seq
            ),
            None => format!("a {template} report (BATON_REPORTS seq {})", source.seq),
        }
    }

    /// Runs `cmd` (acknowledge or resolve, from an integration) on the
    /// current occurrence of the handoff that `dedup_key` names under
    /// `template`: the one reports with that key join now. `Ok(None)` when
    /// no report with that key was ever stored.
    pub async fn command_by_key(
        &self,
        template: &str,
        dedup_key: &str,
        cmd: IncidentCommand,
    ) -> Result<Option<CommandReply>, AppError> {
        let Some(h) = self.engine.current_occurrence(template, dedup_key).await? else {
            return Ok(None);
        };
        self.execute(h.id(), Command::Incident(cmd)).await.map(Some)
    }

    /// Counts a rejected report and records it on
    /// `<prefix>.rejected.<template>`; `seq` is its `BATON_REPORTS`
    /// sequence (none over HTTP), which also dedupes a redelivery's record.
    async fn reject(
        &self,
        template: &str,
        payload: &[u8],
        reasons: &[FieldError],
        seq: Option<u64>,
    ) -> Result<(), StoreError> {
        let label = if is_report_template(self.policy(), template) {
            template
        } else {
            "unknown"
        };
        let mut codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        codes.dedup();
        for c in codes {
            self.metrics
                .reports_rejected_total
                .with_label_values(&[label, c])
                .inc();
        }
        self.store_rejection(template, payload, reasons, seq)
            .await?;
        tracing::warn!(template, seq, reasons = ?reasons.iter().map(|r| &r.code).take(10).collect::<Vec<_>>(), "report rejected");
        Ok(())
    }

    /// Counts a report from `BATON_REPORTS` given up on after `attempts`
    /// deliveries failed to store it (`last_error` the last failure) in
    /// `baton_reports_terminated_total`, and records why: a rejection
    /// record with the one reason [`rejection::UNRECORDABLE`]. The ingest
    /// terminates the report whether or not the record is stored.
    pub async fn give_up_report(
        &self,
        template: &str,
        payload: &[u8],
        seq: u64,
        attempts: i64,
        last_error: &str,
    ) -> Result<(), StoreError> {
        self.metrics
            .reports_terminated_total
            .with_label_values(&[crate::metrics::TERMINATED_UNRECORDABLE])
            .inc();
        let reason = FieldError::new(
            "",
            rejection::UNRECORDABLE,
            format!("not stored after {attempts} attempts; last error: {last_error}"),
        );
        self.store_rejection(template, payload, &[reason], Some(seq))
            .await
    }

    /// Records a report that will not be stored on
    /// `<prefix>.rejected.<template>`, bounded ([`rejection::build`]);
    /// `seq` (its `BATON_REPORTS` sequence) makes its `Nats-Msg-Id`, so a
    /// redelivery's record is deduplicated. Counts nothing.
    pub(crate) async fn store_rejection(
        &self,
        template: &str,
        payload: &[u8],
        reasons: &[FieldError],
        seq: Option<u64>,
    ) -> Result<(), StoreError> {
        // The subject token may be anything a publisher sent; keep the
        // rejected subject valid.
        let token = if crate::domain::is_subject_token(template) {
            template
        } else {
            "invalid"
        };
        let names = self.names();
        let subject = names.report(template);
        let record = rejection::build(&rejection::Refused {
            template,
            subject: &subject,
            reasons,
            payload,
            report_seq: seq.unwrap_or(0),
            rejected_at: Utc::now(),
        });
        let mut headers = HeaderMap::new();
        if let Some(seq) = seq {
            headers.insert(NATS_MESSAGE_ID, format!("rejected:{seq}").as_str());
        }
        self.engine
            .store()
            .context()
            .publish_with_headers(
                names.rejected(token),
                headers,
                serde_json::to_vec(&record).expect("serializes").into(),
            )
            .await
            .map_err(|e| StoreError::nats("publish rejection", e))?
            .await
            .map_err(|e| StoreError::nats("publish rejection", e))?;
        Ok(())
    }
}
