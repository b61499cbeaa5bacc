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

use super::engine::{Outcome, ReportSource};
use super::views::{CommandReply, HcsView, ReportAccepted, ReportOutcome};
use super::{AppError, Handoffs};
use crate::domain::teamwork::TemplateKind;
use crate::domain::{
    decide, parse_report, Command, EventData, FieldError, Handoff, IncidentCommand, ParseLimits,
    ParsedReport, Policy,
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

/// What lands on `<prefix>.rejected.<template>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    /// The template the report named (its subject's token).
    pub template: String,
    /// The subject it was published on.
    pub subject: String,
    /// Every problem found, each with field, code and message.
    pub reasons: Vec<FieldError>,
    /// The original payload: as JSON when it parsed, else as (lossy) text.
    pub payload: Value,
    /// Sequence of the report in `BATON_REPORTS`; 0 for a report refused
    /// over HTTP, which never reached the stream.
    pub report_seq: u64,
    /// When it was refused.
    pub rejected_at: DateTime<Utc>,
}

/// What the ingest did with a report from the stream.
#[derive(Debug)]
pub enum Ingested {
    /// Its events are stored (a new handoff, or `reported_again`).
    Stored(Box<Outcome>),
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

    /// A report over HTTP: validated, then published to `BATON_REPORTS`
    /// (with `msg_id` as its `Nats-Msg-Id`) for the ingest. The answer says
    /// which handoff it becomes and, for a new one, the score and gate the
    /// ingest will record; for one that exists already, that it joins it.
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
        // R17: a report whose handoff exists joins it; previewing a new
        // page would describe one that never comes. Looked up before the
        // report is stored: afterwards the ingest may already have opened
        // the handoff for this very report. A keyless report gets a fresh
        // id, so only a keyed one can join.
        let keyed = crate::domain::handoff_id_for(template, &parsed.report);
        let before = match keyed {
            Some(id) => self.engine.load(id).await?,
            None => None,
        };
        let names = self.names();
        let js = self.engine.store().context();
        let mut headers = HeaderMap::new();
        if let Some(k) = msg_id {
            headers.insert(NATS_MESSAGE_ID, k);
        }
        let ack = async {
            js.publish_with_headers(names.report(template), headers, payload)
                .await?
                .await
        }
        .await
        .map_err(|e| StoreError::nats("publish report", e))?;
        let handoff_id = crate::store::stored_report_handoff_id(
            js,
            names,
            template,
            &parsed.report,
            ack.sequence,
        )
        .await?;
        // A duplicate stored nothing: it is about the first report's
        // handoff as it stands now.
        let existing = if ack.duplicate {
            self.engine.load(handoff_id).await?
        } else {
            before
        };
        let (joins, hcs, gate_passed) = match existing.as_ref().and_then(Handoff::as_incident) {
            Some(i) => (true, HcsView::from(&i.hcs), i.gate_passed),
            None => {
                let (hcs, passed) = self.score_at_open(template, &parsed, ack.sequence);
                (false, hcs, passed)
            }
        };
        tracing::info!(%handoff_id, seq = ack.sequence, duplicate = ack.duplicate, joins, "report stored over HTTP");
        let outcome = if joins {
            ReportOutcome::Joined
        } else {
            ReportOutcome::Opened
        };
        Ok(ReportAccepted {
            handoff_id,
            report_seq: ack.sequence,
            duplicate: ack.duplicate,
            joins,
            hcs,
            gate_passed,
            warnings: parsed.warnings,
            outcome,
            occurrence: 1,
            recurrence_of: None,
            message: outcome.message(handoff_id, 1, None),
        })
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
        let id = crate::domain::keyed_handoff_id(template, dedup_key);
        if self.engine.load(id).await?.is_none() {
            return Ok(None);
        }
        self.execute(id, Command::Incident(cmd)).await.map(Some)
    }

    /// The score and gate the ingest records when the report opens its
    /// handoff: `decide` is pure and scoring does not depend on `now`.
    fn score_at_open(&self, template: &str, parsed: &ParsedReport, seq: u64) -> (HcsView, bool) {
        let open = Command::Incident(IncidentCommand::Open {
            template: template.to_string(),
            report: parsed.report.clone(),
            warnings: parsed.warnings.clone(),
            source: Some(format!("report:{seq}")),
        });
        let events = decide(None, &open, Utc::now(), self.policy())
            .expect("opening a new handoff is always decided");
        events
            .iter()
            .find_map(|e| match &e.data {
                EventData::Scored { hcs, passed, .. } => Some((HcsView::from(hcs), *passed)),
                _ => None,
            })
            .expect("an open is always scored")
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
        // The subject token may be anything a publisher sent; keep the
        // rejected subject valid.
        let token = if crate::domain::is_subject_token(template) {
            template
        } else {
            "invalid"
        };
        let names = self.names();
        let record = Rejection {
            template: template.to_string(),
            subject: names.report(template),
            reasons: reasons.to_vec(),
            payload: serde_json::from_slice(payload)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned())),
            report_seq: seq.unwrap_or(0),
            rejected_at: Utc::now(),
        };
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
        tracing::warn!(template, seq, reasons = ?record.reasons.iter().map(|r| &r.code).collect::<Vec<_>>(), "report rejected");
        Ok(())
    }
}

impl Handoffs {
    /// Records an intake's refusal of something that never became a valid
    /// report (an alert without a mappable severity, a webhook body that is
    /// not one): counted and stored on `<prefix>.rejected.<template>` by the
    /// same path as an invalid report, with `payload` as received.
    pub async fn record_rejection(
        &self,
        template: &str,
        payload: &[u8],
        reasons: &[FieldError],
    ) -> Result<(), AppError> {
        Ok(self.reject(template, payload, reasons, None).await?)
    }
}
