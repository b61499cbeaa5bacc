//! `/a/<token>`: one-click actions from a page's message: acknowledge and
//! resolve an incident, accept and complete a team handoff.
//!
//! `GET` only shows a small confirmation page with a form: link previewers
//! and mail scanners fetch links, and must never act. The form's `POST`
//! acts, as the person the link was sent to (the token's capability,
//! `delivery::links`). No bearer token: the signed token is the credential.
//! An expired, altered or already-used link answers a plain page saying so,
//! never an action.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::AppState;
use crate::app::views::HandoffView;
use crate::app::AppError;
use crate::delivery::links::{verify, Action, Capability, LinkError};
use crate::domain::{Status, TeamStatus};
use crate::identity::{Actor, Principal, Scope};
use serde_json::json;

/// The confirmation page (acts on nothing).
#[utoipa::path(get, path = "/a/{token}", tag = "commands",
    params(("token" = String, Path, description = "The signed link token")),
    responses(
        (status = 200, description = "A confirmation form", body = String, content_type = "text/html"),
        (status = 400, description = "Malformed or altered link", body = String, content_type = "text/html"),
        (status = 410, description = "Expired link", body = String, content_type = "text/html"),
    ))]
pub async fn confirm(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let cap = match verify(&token, &s.ack_keys, Utc::now()) {
        Ok(c) => c,
        Err(e) => return refused(&e),
    };
    let what = match s.app.get(cap.handoff).await {
        Ok(v) => describe(&v),
        Err(_) => "a handoff".into(),
    };
    page(
        StatusCode::OK,
        &format!("{} as {}?", capitalised(cap.action.verb()), cap.person),
        &format!(
            "<p>Handoff <code>{}</code> ({}).</p>\
             <form method=\"post\" action=\"/a/{}\"><button type=\"submit\">{} as {}</button></form>\
             <p>Nothing happens until you press the button.</p>",
            cap.handoff,
            escape(&what),
            escape(&token),
            capitalised(cap.action.verb()),
            escape(&cap.person),
        ),
    )
}

/// Acts as the link's person: acknowledges or resolves an incident, accepts
/// or completes a team handoff.
#[utoipa::path(post, path = "/a/{token}", tag = "commands",
    params(("token" = String, Path, description = "The signed link token")),
    responses(
        (status = 200, description = "Done", body = String, content_type = "text/html"),
        (status = 400, description = "Malformed or altered link", body = String, content_type = "text/html"),
        (status = 409, description = "Already done (a used link)", body = String, content_type = "text/html"),
        (status = 410, description = "Expired link", body = String, content_type = "text/html"),
    ))]
pub async fn act(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let cap = match verify(&token, &s.ack_keys, Utc::now()) {
        Ok(c) => c,
        Err(e) => return refused(&e),
    };
    let Capability {
        handoff,
        person,
        action,
        ..
    } = cap;
    // The person the link was sent to acts, under the same access rules as
    // their credential would (`identity`): the link proves who, not what.
    let Some(who) = s.identity.person(&person) else {
        return page(
            StatusCode::FORBIDDEN,
            "This link cannot be used",
            &format!(
                "<p>{} is no longer a configured person.</p>",
                escape(&person)
            ),
        );
    };
    let actor = Actor::Person(Principal {
        person: who.id.clone(),
        credential: "one-click-link".into(),
        scope: Scope::Person,
        service: who.service,
        roles: who.roles.clone(),
        teams: who.teams.clone(),
    });
    let mut body = serde_json::Map::new();
    body.insert("by".into(), json!(person));
    if action == Action::Resolve {
        body.insert("note".into(), json!("resolved from a one-click link"));
    }
    // The token's action word is the command verb.
    match s
        .app
        .command_as(&actor, action.as_str(), handoff, body)
        .await
    {
        Ok(_) => page(
            StatusCode::OK,
            "Done",
            &format!(
                "<p>Handoff <code>{handoff}</code> is {} by {}.</p>",
                action.done(),
                escape(&person)
            ),
        ),
        Err(e @ (AppError::Forbidden { .. } | AppError::Unauthorized(_))) => page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("<p>Nothing changed: {}.</p>", escape(&e.to_string())),
        ),
        Err(AppError::Domain(e)) => {
            let used = match s.app.get(handoff).await {
                Ok(v) => already_done(&v, action),
                Err(_) => false,
            };
            page(
                StatusCode::CONFLICT,
                if used {
                    "This link was used already"
                } else {
                    "Not done"
                },
                &format!("<p>Nothing changed: {}.</p>", escape(&e.to_string())),
            )
        }
        Err(e) => {
            tracing::warn!(handoff_id = %handoff, error = %e, "one-click action failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<p>Baton could not store this just now; press back and try again.</p>",
            )
        }
    }
}

/// What the confirmation page says the handoff is.
fn describe(v: &HandoffView) -> String {
    // A status in its wire word (`acknowledged`, `accepted`, …).
    fn word(status: impl serde::Serialize) -> String {
        serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }
    match v {
        HandoffView::Incident(i) => format!(
            "{} for {}, now {}",
            i.severity.as_str(),
            i.team,
            word(i.status)
        ),
        HandoffView::Team(t) => format!(
            "{} from {} to {}, now {}",
            t.template,
            t.from_team,
            t.to_team,
            word(t.status)
        ),
    }
}

/// Whether what `action` does is already done: a second use of a link (or
/// someone else was quicker), told apart from a refusal for another reason.
fn already_done(v: &HandoffView, action: Action) -> bool {
    match (v, action) {
        (HandoffView::Incident(i), Action::Acknowledge) => {
            matches!(i.status, Status::Acknowledged | Status::Resolved)
        }
        (HandoffView::Incident(i), Action::Resolve) => i.status == Status::Resolved,
        (HandoffView::Team(t), Action::Accept) => {
            matches!(t.status, TeamStatus::Accepted | TeamStatus::Completed)
        }
        (HandoffView::Team(t), Action::Complete) => t.status == TeamStatus::Completed,
        _ => false,
    }
}

fn refused(e: &LinkError) -> Response {
    let status = match e {
        LinkError::Expired(_) => StatusCode::GONE,
        LinkError::Disabled => StatusCode::NOT_FOUND,
        LinkError::Malformed | LinkError::Tampered => StatusCode::BAD_REQUEST,
    };
    page(
        status,
        "This link cannot be used",
        &format!(
            "<p>{}.</p><p>Use the page's other instructions (<code>baton ack</code>, <code>baton handoff accept</code>, the API) instead.</p>",
            escape(&e.to_string())
        ),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer")],
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
             <title>Baton: {t}</title></head><body><h1>{t}</h1>{body}</body></html>\n",
            t = escape(title)
        )),
    )
        .into_response()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
