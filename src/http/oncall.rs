//! `/v1/oncall`: who is on call, and overrides. Handlers translate and call
//! the on-call service (`app::oncall::Oncall`), the same one the NATS verbs
//! `oncall`, `oncall_override` and `oncall_cancel` call. Mutations need the
//! bearer token like every other (`auth`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};

use super::handoffs::actor_of;
use super::problem::{Problem, ProblemDetails};
use super::AppState;
use crate::app::oncall::{
    OncallAnswer, OncallQuery, OverrideCancelBody, OverrideCreateBody, OverrideView,
};
use crate::app::requests;
use crate::identity::Actor;

/// Who is on call at `at` (default now), on one rotation or every one,
/// from the config's rotations and the stored overrides.
#[utoipa::path(
    get,
    path = "/v1/oncall",
    tag = "oncall",
    params(OncallQuery),
    responses(
        (status = 200, description = "Who is on call", body = OncallAnswer),
        (status = 400, description = "Invalid query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such rotation", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`at` or `known` is not an instant", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn who(
    State(s): State<AppState>,
    q: Result<Query<OncallQuery>, QueryRejection>,
) -> Result<Json<OncallAnswer>, Problem> {
    let Query(q) = q.map_err(super::query_rejected)?;
    Ok(Json(s.app.oncall().who(&q)?))
}

/// Someone takes a rotation's shifts from `from` until `until`.
#[utoipa::path(
    post,
    path = "/v1/oncall/overrides",
    tag = "oncall",
    request_body = OverrideCreateBody,
    responses(
        (status = 201, description = "Stored", body = OverrideView),
        (status = 400, description = "Body is not a JSON object", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such rotation", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or wrong", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_override(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<OverrideView>), Problem> {
    let mut obj = requests::object(&super::body(body)?)?;
    s.app
        .authorize_oncall(&actor_of(actor), "oncall_override", &mut obj)?;
    let view = s.app.oncall().create_override_body(obj).await?;
    Ok((axum::http::StatusCode::CREATED, Json(view)))
}

/// Withdraws an override from now on (a `override_cancelled` event; the
/// past it covered stays as it was).
#[utoipa::path(
    delete,
    path = "/v1/oncall/overrides/{id}",
    tag = "oncall",
    params(("id" = Uuid, Path, description = "Override id")),
    request_body(content = OverrideCancelBody, description = "Optional: who and why"),
    responses(
        (status = 200, description = "Cancelled", body = OverrideView),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such (uncancelled) override", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not an override id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_override(
    State(s): State<AppState>,
    Path(id): Path<String>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OverrideView>, Problem> {
    let id = requests::parse_id(&id)?;
    let mut obj = requests::object(&super::body(body)?)?;
    s.app
        .authorize_oncall(&actor_of(actor), "oncall_cancel", &mut obj)?;
    let b: OverrideCancelBody = requests::body("oncall_cancel", obj)?;
    Ok(Json(s.app.oncall().cancel_override(id, b).await?))
}
