//! The alert intakes' routes: `POST /v1/alertmanager/{integration}` (bearer
//! token, as every mutation) and `POST /v2/enqueue` /
//! `POST /v1/pagerduty/enqueue` (no token: the event's `routing_key`
//! authenticates it, as at PagerDuty). Handlers only translate; the mapping
//! and the answers' rules are `crate::intake`'s.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::problem::{Problem, ProblemDetails, ProblemField, CONTENT_TYPE};
use super::AppState;
use crate::intake::alertmanager::{AlertResult, Batch};
use crate::intake::pagerduty::{self, Response as PdResponse};

/// A problem that also lists what became of each alert (RFC 9457
/// extension member `alerts`).
#[derive(Serialize)]
struct BatchProblem<'a> {
    #[serde(flatten)]
    problem: &'a ProblemDetails,
    alerts: &'a [AlertResult],
}

/// Receive an Alertmanager webhook notification (payload version 4).
#[utoipa::path(
    post,
    path = "/v1/alertmanager/{integration}",
    tag = "reports",
    params(("integration" = String, Path, description = "A configured `[alertmanager.<integration>]`")),
    request_body(content = Object, description = "Alertmanager's webhook payload, version 4", content_type = "application/json"),
    responses(
        (status = 200, description = "Every alert stored: each one's handoff and outcome", body = Batch),
        (status = 400, description = "Not a webhook notification (recorded as rejected)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown integration (recorded as rejected)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Wrong payload version, or some alerts refused (recorded; the others are stored, listed in `alerts`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable: Alertmanager retries", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn alertmanager(
    State(s): State<AppState>,
    Path(integration): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = super::body(body)?;
    let batch = s
        .intake
        .alertmanager(&s.app, &integration, &body)
        .await
        .map_err(|r| {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            Problem::new(status, r.code, r.detail)
                .with_errors(r.reasons.into_iter().map(ProblemField::from))
        })?;
    let status = batch.status();
    if status == 200 {
        return Ok((StatusCode::OK, Json(batch)).into_response());
    }
    let (status, code, detail) = if status == 503 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the event store is unavailable; alerts before the failure are stored, and a retry joins them",
        )
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "alerts_refused",
            "some alerts were refused and recorded (see `alerts`); the others are stored",
        )
    };
    let problem = Problem::new(status, code, detail);
    let body = BatchProblem {
        problem: &problem,
        alerts: &batch.alerts,
    };
    Ok((
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        serde_json::to_vec(&body).expect("serializes"),
    )
        .into_response())
}

/// Send an event as to PagerDuty's Events API v2.
#[utoipa::path(
    post,
    path = "/v2/enqueue",
    tag = "reports",
    request_body(content = Object, description = "A PagerDuty Events API v2 event", content_type = "application/json"),
    responses(
        (status = 202, description = "Event processed", body = PdResponse),
        (status = 400, description = "Invalid event (also over 512 KB, unknown routing key)", body = PdResponse),
        (status = 429, description = "Over the integration's rate_limit", body = PdResponse),
        (status = 503, description = "JetStream unavailable; retry", body = PdResponse),
    ),
    security(())
)]
pub async fn enqueue(State(s): State<AppState>, body: Body) -> Response {
    pagerduty_event(s, body).await
}

/// The same as `POST /v2/enqueue`, under Baton's own prefix.
#[utoipa::path(
    post,
    path = "/v1/pagerduty/enqueue",
    tag = "reports",
    request_body(content = Object, description = "A PagerDuty Events API v2 event", content_type = "application/json"),
    responses(
        (status = 202, description = "Event processed", body = PdResponse),
        (status = 400, description = "Invalid event (also over 512 KB, unknown routing key)", body = PdResponse),
        (status = 429, description = "Over the integration's rate_limit", body = PdResponse),
        (status = 503, description = "JetStream unavailable; retry", body = PdResponse),
    ),
    security(())
)]
pub async fn enqueue_v1(State(s): State<AppState>, body: Body) -> Response {
    pagerduty_event(s, body).await
}

/// Reads the body with PagerDuty's own limit (not `http.max_body_bytes`,
/// which may be lower) so an oversized event gets PagerDuty's answer.
async fn pagerduty_event(s: AppState, body: Body) -> Response {
    let reply = match axum::body::to_bytes(body, pagerduty::MAX_EVENT_BYTES + 1).await {
        Ok(bytes) => s.intake.pagerduty(&s.app, &bytes, Instant::now()).await,
        Err(_) => PdResponse::invalid(vec![format!(
            "Event payload is larger than {} bytes (512 KB) or could not be read",
            pagerduty::MAX_EVENT_BYTES
        )]),
    };
    let status = StatusCode::from_u16(reply.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, Json(&reply)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    res
}
