//! `POST /v1/reports/{template}`: the same validation and storage as the
//! NATS path, through the application service.
//!
//! A valid report is *published to `BATON_REPORTS`*, not handed to the
//! engine: the ingest consumer then processes it like any runner's report,
//! so there is one write path. The answer is computed without waiting for
//! the ingest: the handoff id the ingest will use, and either the score and
//! gate it will record or, when that handoff exists already, that the
//! report joins it (`joins`). An invalid report is counted and recorded on
//! `<prefix>.rejected.<template>` exactly as a rejected NATS report is, and
//! the caller gets every field error at once (see `app::reports`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap as HttpHeaders, StatusCode};
use axum::Json;

use super::problem::{Problem, ProblemDetails};
use super::AppState;
use crate::app::requests;
pub use crate::app::views::ReportAccepted;
use crate::identity::{Action, Actor, Facts};

/// The request header whose value becomes the report's `Nats-Msg-Id`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency_key(headers: &HttpHeaders) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if requests::is_idempotency_key(s) => Ok(Some(s.to_string())),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            requests::IDEMPOTENCY_KEY_RULE,
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
        (status = 202, description = "Stored; the ingest opens the handoff, or the report joins it (`joins`)", body = ReportAccepted),
        (status = 400, description = "Bad Idempotency-Key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Shared tokens refused (`authz.require_person`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid report: every field error in `errors`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(s): State<AppState>,
    Path(template): Path<String>,
    actor: Option<Extension<Actor>>,
    headers: HttpHeaders,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ReportAccepted>), Problem> {
    let actor = actor.map_or(Actor::Shared, |Extension(a)| a);
    s.app.authorize(&actor, Action::Report, &Facts::default())?;
    let payload = super::body(body)?;
    let msg_id = idempotency_key(&headers)?;
    let accepted = s
        .app
        .submit_report(&template, payload, msg_id.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
