//! `GET /v1/people/{id}`: a configured person, the open incidents they own
//! and their credentials (ids, scopes, last use; never a secret or hash).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::problem::{Problem, ProblemDetails};
use super::AppState;
use crate::app::views::{CredentialView, PersonView};

/// One person.
#[utoipa::path(
    get,
    path = "/v1/people/{id}",
    tag = "people",
    params(("id" = String, Path, description = "Person id (`[people.<id>]`)")),
    responses(
        (status = 200, description = "The person, what they own, their credentials", body = PersonView),
        (status = 401, description = "Token needed (with `protect_reads`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such person", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn get_person(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PersonView>, Problem> {
    let person = s.identity.person(&id).cloned().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no person {id:?} in [people]"),
        )
    })?;
    let credentials = s
        .identity
        .credentials()
        .map(|c| c.list(Some(&id)).iter().map(CredentialView::from).collect())
        .unwrap_or_default();
    let open_handoffs = s.app.owned_by(id).await;
    Ok(Json(PersonView {
        person,
        open_handoffs,
        credentials,
    }))
}
