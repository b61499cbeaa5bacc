//! `POST /v1/reports/{template}`: the same validation and storage as the
//! NATS path.
//!
//! A valid report is *published to `BATON_REPORTS`*, not handed to the
//! engine: the ingest consumer then processes it like any runner's report,
//! so there is one write path, and a keyless report's handoff id (derived
//! from its stream sequence) is the one the ingest will use. The answer is
//! computed without waiting for the ingest: the id as
//! [`store::stored_report_handoff_id`](crate::store::stored_report_handoff_id) derives it for `baton report` too, and the HCS as the pure
//! `domain::decide` scores the report at open.
//!
//! An invalid report goes through [`ingest::handle_report`], exactly as a
//! rejected NATS report does (counted in `baton_reports_rejected_total` and
//! recorded on `<prefix>.rejected.<template>`), and the caller gets every
//! field error at once.

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::HeaderMap;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap as HttpHeaders, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{Problem, ProblemDetails, ProblemField};
use super::views::HcsView;
use super::AppState;
use crate::app::engine::ReportSource;
use crate::domain::{decide, Command, EventData, FieldError, IncidentCommand, ParseLimits};
use crate::ingest::{self, Handled};

/// The request header whose value becomes the report's `Nats-Msg-Id`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What a stored report will become.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportAccepted {
    /// The handoff the ingest opens (or joins) for it.
    pub handoff_id: Uuid,
    /// Sequence of the report in `BATON_REPORTS`.
    pub report_seq: u64,
    /// The `Idempotency-Key` was seen before: nothing new was stored and
    /// `report_seq` is the first report's.
    pub duplicate: bool,
    /// The score the report gets at open.
    pub hcs: HcsView,
    /// Whether that score passes the severity's gate (else it is held).
    pub gate_passed: bool,
    /// Fields truncated to `limits.max_field_bytes`.
    pub warnings: Vec<String>,
}

fn idempotency_key(headers: &HttpHeaders) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(s.to_string()))
        }
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-128 printable ASCII characters without spaces",
        )),
    }
}

/// Submit a report.
#[utoipa::path(
    post,
    path = "/v1/reports/{template}",
    tag = "reports",
    params(
        ("template" = String, Path, description = "Report template (`agent_failure`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key store the report once (JetStream duplicate window)"),
    ),
    request_body(content = Object, description = "The report: `severity`, packet fields, optional `team` and `dedup_key`", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored; the ingest opens or joins the handoff", body = ReportAccepted),
        (status = 400, description = "Bad Idempotency-Key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid report: every field error in `errors`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(s): State<AppState>,
    Path(template): Path<String>,
    headers: HttpHeaders,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ReportAccepted>), Problem> {
    let payload = super::body(body)?;
    let msg_id = idempotency_key(&headers)?;
    let limits = ParseLimits {
        max_report_bytes: s.limits.max_report_bytes,
        max_field_bytes: s.limits.max_field_bytes,
    };
    let parsed = match ingest::validate(s.engine.policy(), limits, &template, &payload) {
        Ok(p) => p,
        Err(reasons) => return Err(reject(&s, &template, &payload, reasons).await),
    };

    let names = s.engine.store().names();
    let mut nats_headers = HeaderMap::new();
    if let Some(k) = &msg_id {
        nats_headers.insert(NATS_MESSAGE_ID, k.as_str());
    }
    let ack = async {
        s.js.publish_with_headers(names.report(&template), nats_headers, payload.clone())
            .await?
            .await
    }
    .await
    .map_err(|e| Problem::unavailable("publishing a report", &e))?;
    let handoff_id = crate::store::stored_report_handoff_id(
        &s.js,
        names,
        &template,
        &parsed.report,
        ack.sequence,
    )
    .await
    .map_err(|e| Problem::unavailable("deriving a report's handoff id", &e))?;

    // The score the ingest will record: `decide` is pure and scoring does
    // not depend on `now`.
    let open = Command::Incident(IncidentCommand::Open {
        template: template.clone(),
        report: parsed.report,
        warnings: parsed.warnings.clone(),
        source: Some(format!("report:{}", ack.sequence)),
    });
    let events = decide(None, &open, Utc::now(), s.engine.policy())
        .expect("opening a new handoff is always decided");
    let (hcs, gate_passed) = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::Scored { hcs, passed, .. } => Some((HcsView::from(hcs), *passed)),
            _ => None,
        })
        .expect("an open is always scored");
    tracing::info!(%handoff_id, seq = ack.sequence, duplicate = ack.duplicate, "report stored over HTTP");
    Ok((
        StatusCode::ACCEPTED,
        Json(ReportAccepted {
            handoff_id,
            report_seq: ack.sequence,
            duplicate: ack.duplicate,
            hcs,
            gate_passed,
            warnings: parsed.warnings,
        }),
    ))
}

/// Rejects an invalid report through the ingest's own rejection path and
/// answers 422 with every reason.
async fn reject(s: &AppState, template: &str, payload: &[u8], reasons: Vec<FieldError>) -> Problem {
    // Not from the stream: sequence 0 (the rejection record says so).
    let source = ReportSource {
        seq: 0,
        published_ms: 0,
    };
    match ingest::handle_report(
        &s.engine, &s.js, &s.limits, &s.metrics, template, payload, source,
    )
    .await
    {
        Ok(Handled::Rejected(_)) => {}
        Ok(Handled::Stored(outcome)) => {
            // The same rules cannot disagree; if they ever do, the report
            // is stored and the caller must not be told it was refused.
            tracing::error!(template, handoff_id = %outcome.handoff_id, "ingest accepted a report the HTTP validation refused");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
        }
        // Counted, but the rejection record was not stored: the caller
        // still learns what is wrong with the report.
        Err(e) => tracing::warn!(error = %e, template, "rejection record not stored"),
    }
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_report",
        format!("the report has {} problem(s); see `errors`", reasons.len()),
    )
    .with_errors(reasons.into_iter().map(ProblemField::from))
}
