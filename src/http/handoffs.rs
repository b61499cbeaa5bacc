//! `/v1/handoffs`: the list, one handoff, its timeline, and the commands.
//!
//! Every handler translates and calls the application service
//! ([`crate::app::Handoffs`]), the same one the NATS `<prefix>.cmd.*` loop
//! calls, with the same typed requests (`app::requests`, which are also the
//! OpenAPI bodies below) and the same error codes. The shapes they answer
//! live in [`super::views`].

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use uuid::Uuid;

use super::problem::{Problem, ProblemDetails};
use super::views::{CommandReply, HandoffPage, HandoffView, Timeline};
use super::AppState;
use crate::app::list::ListQuery;
use crate::app::requests::{
    self, AckBody, ByBody, CancelBody, CheckBody, EnrichBody, OverrideBody, RateBody, ResolveBody,
    ResubmitBody, ReturnBody, StartBody,
};
use crate::identity::Actor;

/// List handoffs, newest first, with stable cursor pagination.
#[utoipa::path(
    get,
    path = "/v1/handoffs",
    tag = "handoffs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of handoffs", body = HandoffPage),
        (status = 400, description = "Invalid query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Token needed (with `protect_reads`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<HandoffPage>, Problem> {
    let Query(q) = q.map_err(super::query_rejected)?;
    Ok(Json(s.app.list(q).await?))
}

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    Ok(requests::parse_id(id)?)
}

/// One handoff's current state.
#[utoipa::path(
    get,
    path = "/v1/handoffs/{id}",
    tag = "handoffs",
    params(("id" = Uuid, Path, description = "Handoff id")),
    responses(
        (status = 200, description = "Current state", body = HandoffView),
        (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not a handoff id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<HandoffView>, Problem> {
    Ok(Json(s.app.get(parse_id(&id)?).await?))
}

/// A handoff's events, read from `BATON_EVENTS`.
#[utoipa::path(
    get,
    path = "/v1/handoffs/{id}/events",
    tag = "handoffs",
    params(("id" = Uuid, Path, description = "Handoff id")),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not a handoff id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, Problem> {
    Ok(Json(s.app.timeline(parse_id(&id)?).await?))
}

/// The actor the auth middleware found; none means the route needed no
/// token, which only a future exempt path would do: the compatibility mode.
pub(super) fn actor_of(actor: Option<Extension<Actor>>) -> Actor {
    actor.map_or(Actor::Shared, |Extension(a)| a)
}

/// Runs one command as `actor`: the body must be a JSON object (empty
/// means `{}`).
async fn run(
    s: &AppState,
    actor: &Actor,
    verb: &str,
    id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CommandReply>, Problem> {
    let id = parse_id(id)?;
    let obj = requests::object(&super::body(body)?)?;
    Ok(Json(s.app.command_as(actor, verb, id, obj).await?))
}

macro_rules! command_endpoint {
    ($name:ident, $verb:literal, $body:ty, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = concat!("/v1/handoffs/{id}/", $verb),
            tag = "commands",
            params(("id" = Uuid, Path, description = "Handoff id")),
            request_body = $body,
            responses(
                (status = 200, description = "Done; the same reply as `<prefix>.cmd.*`", body = CommandReply),
                (status = 400, description = "Body is not a JSON object", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 403, description = "`forbidden`: the credential lacks the role, team or scope this needs (named in `detail`); nothing stored", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 409, description = "Refused by the rules (resolved, already acknowledged, already paged) or contended", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 422, description = "A field is missing or wrong", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
            ),
            security(("bearer" = []))
        )]
        pub async fn $name(
            State(s): State<AppState>,
            Path(id): Path<String>,
            actor: Option<Extension<Actor>>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<CommandReply>, Problem> {
            run(&s, &actor_of(actor), $verb, &id, body).await
        }
    };
}

command_endpoint!(
    ack,
    "ack",
    AckBody,
    "Acknowledge: stops escalation, records MTTA."
);
command_endpoint!(
    override_gate,
    "override",
    OverrideBody,
    "Page a held handoff at once despite the HCS gate."
);
command_endpoint!(
    enrich,
    "enrich",
    EnrichBody,
    "Fill packet fields; re-scores and may release a hold."
);
command_endpoint!(resolve, "resolve", ResolveBody, "Close a handoff.");
command_endpoint!(
    accept,
    "accept",
    ByBody,
    "Team handoff: the receiving team takes it."
);
command_endpoint!(
    check,
    "check",
    CheckBody,
    "Team handoff: check off an exit criterion."
);
command_endpoint!(
    complete,
    "complete",
    ByBody,
    "Team handoff: complete it (refused while any checklist item is unchecked)."
);
command_endpoint!(
    return_to_sender,
    "return",
    ReturnBody,
    "Team handoff: send it back naming what is missing."
);
command_endpoint!(
    resubmit,
    "resubmit",
    ResubmitBody,
    "Team handoff: fill in what was missing and send it again."
);
command_endpoint!(cancel, "cancel", CancelBody, "Team handoff: call it off.");
command_endpoint!(
    rate,
    "rate",
    RateBody,
    "Team handoff: rate a completed handoff's quality, 1-5."
);

/// Start a team handoff from a template.
#[utoipa::path(
    post,
    path = "/v1/handoffs",
    tag = "commands",
    request_body = StartBody,
    responses(
        (status = 200, description = "Started (or joined, with the same dedup_key)", body = CommandReply),
        (status = 400, description = "Body is not a JSON object", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a report-only or service credential, or shared tokens under `authz.require_person`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such template", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A required field is missing or a value is wrong", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CommandReply>, Problem> {
    let obj = requests::object(&super::body(body)?)?;
    Ok(Json(s.app.start_as(&actor_of(actor), obj).await?))
}
