//! The web console's routes: thin handlers that read `app`, build the view
//! structs of [`crate::console::views`] and answer HTML. Actions go through
//! [`crate::app::Handoffs::command_as`] with the signed-in person's
//! [`Actor`], the same write path as NATS and `/v1`.
//!
//! - `GET /` (filters `tab`, `severity`, `team`, `state`, `mine`), and
//!   `GET /console/rows` (the rows alone, fetched by the script on a nudge);
//! - `GET /console/stream`: server-sent events, one `data: <seq>` whenever
//!   the projection's applied sequence moves (polled every 250 ms);
//! - `GET /handoffs/{id}`, `POST /handoffs/{id}/{verb}` (`ack`, `resolve`,
//!   `override`, `enrich`, `accept`, `check`, `complete`, `return`, `rate`);
//! - `GET /oncall` (`?at=`);
//! - `GET`/`POST /login`, `POST /logout`;
//! - `GET /console/app.css`, `/console/app.js`.
//!
//! These paths authenticate by the session cookie, not a bearer token
//! ([`is_console_path`], exempted in [`super::auth::Auth::required`]).
//! Every POST must come from this origin (`Sec-Fetch-Site: same-origin`,
//! else an `Origin` matching `Host`), so another site cannot act with a
//! person's cookie (`SameSite=Strict` is the second lock).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use maud::Markup;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::AppState;

mod actions;
mod pages;

use crate::app::list::ListQuery;
use crate::app::oncall::OncallQuery;
use crate::app::views::HandoffView;
use crate::app::AppError;
use crate::config::ConsoleConfig;
use crate::console::session::{self, SessionKey, COOKIE};
use crate::console::views::{
    self, Actions, Board, Detail, Filters, IncidentRow, OncallPage, RotationRow, TeamRow, Viewer,
};
use crate::domain::{Event, EventData};
use crate::identity::authz::{authorize, Action, Decision, Facts};
use crate::identity::{Actor, Scope};
pub use actions::form_body;
pub use pages::latest_paged;

/// Per handoff: the event count read at, and the person paged.
type PagedCache = HashMap<Uuid, (u32, Option<String>)>;

/// What the console keeps per process.
#[derive(Clone)]
pub struct ConsoleState {
    /// Serve the console at all (`[console] enabled`).
    pub enabled: bool,
    key: SessionKey,
    secure: bool,
    ttl: Duration,
    /// Ends the live streams, so a graceful shutdown does not wait on
    /// them (`serve` sets it).
    pub shutdown: CancellationToken,
    /// Who each listed incident's latest page named, by handoff, with the
    /// event count it was read at: re-read only when the handoff changed.
    paged: Arc<Mutex<PagedCache>>,
}

impl ConsoleState {
    /// From `[console]`; without a `session_key`, a random one (sessions
    /// end on restart).
    pub fn new(cfg: &ConsoleConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            key: SessionKey::new(cfg.session_key.as_deref()),
            secure: cfg.secure_cookies,
            ttl: cfg.session_ttl,
            shutdown: CancellationToken::new(),
            paged: Arc::default(),
        }
    }
}

/// Whether `path` is the console's (cookie auth, not bearer tokens).
pub fn is_console_path(path: &str) -> bool {
    matches!(path, "/" | "/login" | "/logout" | "/oncall")
        || path.starts_with("/handoffs/")
        || path.starts_with("/console/")
}

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::board))
        .route("/console/rows", get(pages::rows))
        .route("/console/stream", get(stream))
        .route("/console/app.css", get(css))
        .route("/console/app.js", get(js))
        .route("/handoffs/{id}", get(pages::detail))
        .route("/handoffs/{id}/{verb}", post(actions::act))
        .route("/oncall", get(pages::oncall))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

/// An HTML answer with headers that keep the page to this origin.
fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        markup,
    )
        .into_response()
}

/// The signed-in person, if the cookie holds a valid session of an active
/// credential.
async fn session(s: &AppState, headers: &HeaderMap) -> Option<(Actor, Viewer)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = session::cookie(cookies, COOKIE)?;
    let credential = s.console.key.verify(value, Utc::now().timestamp())?;
    match s.identity.actor_for_credential(&credential).await {
        Ok(actor @ Actor::Person(_)) => {
            let person = actor.person()?.to_string();
            let name = s
                .identity
                .person(&person)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| person.clone());
            Some((actor, Viewer { person, name }))
        }
        Ok(Actor::Shared) => None,
        Err(e) => {
            tracing::info!(reason = %e, "console session refused");
            None
        }
    }
}

/// Whether a POST comes from this origin: `Sec-Fetch-Site` when the
/// browser sends it, else `Origin` against `Host`. Neither: refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn cross_site() -> Response {
    page(
        StatusCode::FORBIDDEN,
        views::message(
            "Refused",
            "This form was not sent from this site's own pages (Origin / Sec-Fetch-Site), so it was refused.",
            None,
        ),
    )
}

fn not_found(viewer: Option<&Viewer>) -> Response {
    page(
        StatusCode::NOT_FOUND,
        views::message("Not found", "Baton has no handoff with this id.", viewer),
    )
}

fn app_error(e: AppError, viewer: Option<&Viewer>) -> Response {
    e.log("console");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Unavailable",
        _ => "Refused",
    };
    page(status, views::message(title, &e.to_string(), viewer))
}

/// With `http.protect_reads`, reads need a session too.
fn reads_closed(s: &AppState, viewer: &Option<(Actor, Viewer)>) -> bool {
    s.http.protect_reads && viewer.is_none()
}

async fn stream(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let app = s.app.clone();
    let stop = s.console.shutdown.clone();
    let first = app.applied_seq();
    let nudges = futures::stream::unfold((app, first, stop), |(app, mut last, stop)| async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let seq = app.applied_seq();
            if seq != last {
                last = seq;
                let event = SseEvent::default().data(seq.to_string());
                return Some((Ok::<_, Infallible>(event), (app, last, stop)));
            }
        }
    });
    Sse::new(nudges)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        crate::console::assets::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        crate::console::assets::JS,
    )
        .into_response()
}

async fn login_form() -> Response {
    page(StatusCode::OK, views::login(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let refused = |status, text: &str| page(status, views::login(Some(text)));
    let Ok(Form(LoginForm { token })) = form else {
        return refused(StatusCode::BAD_REQUEST, "Paste your person credential.");
    };
    let token = token.trim();
    if !crate::identity::Identity::is_person_token(token) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "That is not a person credential (baton_…).",
        );
    }
    match s.identity.authenticate(token).await {
        Ok(Actor::Person(p)) if p.scope == Scope::Person && !p.service => {
            let expires = Utc::now().timestamp() + s.console.ttl.as_secs() as i64;
            let value = s.console.key.sign(&p.credential, expires);
            let cookie = session::set_cookie(&value, s.console.ttl.as_secs(), s.console.secure);
            tracing::info!(person = p.person, credential = p.credential, "console sign-in");
            let mut res = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Ok(_) => refused(
            StatusCode::FORBIDDEN,
            "This credential may only report (report scope or a service account); it cannot sign in.",
        ),
        Err(e) if e.store().is_some() => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Credentials cannot be checked right now; retry.",
        ),
        Err(e) => {
            tracing::info!(reason = %e, "console sign-in refused");
            refused(
                StatusCode::UNAUTHORIZED,
                "That credential is unknown, revoked or wrong.",
            )
        }
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(s.console.secure)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_posts_pass() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://a:1"),
            ("host", "a:1")
        ])));
        assert!(same_origin(&h(&[
            ("origin", "http://a:1"),
            ("host", "a:1")
        ])));
        assert!(!same_origin(&h(&[
            ("origin", "http://evil"),
            ("host", "a:1")
        ])));
        assert!(!same_origin(&h(&[("host", "a:1")])));
    }

    #[test]
    fn console_paths_are_told_apart_from_the_api() {
        for p in ["/", "/login", "/handoffs/x", "/console/stream", "/oncall"] {
            assert!(is_console_path(p), "{p}");
        }
        for p in ["/v1/handoffs", "/metrics", "/v1/oncall"] {
            assert!(!is_console_path(p), "{p}");
        }
    }
}
