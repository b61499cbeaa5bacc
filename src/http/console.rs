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
    paged: Arc<Mutex<HashMap<Uuid, (u32, Option<String>)>>>,
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
        .route("/", get(board))
        .route("/console/rows", get(rows))
        .route("/console/stream", get(stream))
        .route("/console/app.css", get(css))
        .route("/console/app.js", get(js))
        .route("/handoffs/{id}", get(detail))
        .route("/handoffs/{id}/{verb}", post(act))
        .route("/oncall", get(oncall))
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

async fn board(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let filters = q.map(|Query(f)| f).unwrap_or_default();
    let b = board_data(&s, filters, who.as_ref()).await;
    page(StatusCode::OK, views::board(&b, who.as_ref().map(|w| &w.1)))
}

async fn rows(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let filters = q.map(|Query(f)| f).unwrap_or_default();
    let b = board_data(&s, filters, who.as_ref()).await;
    page(StatusCode::OK, views::rows(&b))
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// The list as the board shows it: the app's list (its filters and their
/// validation), sorted by severity then age, "mine" applied.
async fn board_data(s: &AppState, filters: Filters, who: Option<&(Actor, Viewer)>) -> Board {
    let now = Utc::now();
    let team_tab = filters.team_tab();
    let query = ListQuery {
        kind: Some(if team_tab { "team" } else { "incident" }.into()),
        status: Some(non_empty(&filters.state).unwrap_or_else(|| "open".into())),
        severity: if team_tab {
            None
        } else {
            non_empty(&filters.severity)
        },
        team: non_empty(&filters.team),
        limit: Some(crate::app::requests::Whole::Number(
            crate::app::list::MAX_LIMIT as u64,
        )),
        ..ListQuery::default()
    };
    let (items, error) = match s.app.list(query).await {
        Ok(p) => (p.items, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let me = who.map(|w| w.1.person.clone());
    let my_teams = me
        .as_deref()
        .and_then(|p| s.identity.person(p))
        .map(|p| p.teams.clone())
        .unwrap_or_default();
    let mine = filters.mine();
    let mut incidents = Vec::new();
    let mut teams = Vec::new();
    for item in items {
        match item {
            HandoffView::Incident(i) => {
                let paged = paged_person(s, i.id, i.events).await;
                if mine {
                    let me = me.as_deref();
                    let concerns = me.is_some()
                        && (paged.as_deref() == me
                            || i.owners.primary.as_deref() == me
                            || i.owners.backup.as_deref() == me);
                    if !concerns {
                        continue;
                    }
                }
                incidents.push(IncidentRow {
                    id: i.id,
                    severity: i.severity.to_string(),
                    team: i.team.clone(),
                    hcs: i.hcs.score,
                    paged,
                    status: i.status.as_str().into(),
                    opened_at: i.opened_at,
                    next_deadline: i.next_deadline,
                    summary: i
                        .packet
                        .error_summary
                        .clone()
                        .or_else(|| i.packet.workflow_id.clone()),
                });
            }
            HandoffView::Team(t) => {
                if mine
                    && !(my_teams.contains(&t.to_team)
                        || my_teams.contains(&t.from_team)
                        || me.as_deref() == Some(t.initiated_by.as_str()))
                {
                    continue;
                }
                teams.push(TeamRow {
                    id: t.id,
                    template: t.template.clone(),
                    from_team: t.from_team.clone(),
                    to_team: t.to_team.clone(),
                    status: t.status.as_str().into(),
                    opened_at: t.opened_at,
                    next_deadline: t.next_deadline,
                    checked: t.checklist.iter().filter(|c| c.checked.is_some()).count(),
                    checklist: t.checklist.len(),
                });
            }
        }
    }
    incidents.sort_by(|a, b| (&a.severity, a.opened_at).cmp(&(&b.severity, b.opened_at)));
    teams.sort_by_key(|t| t.opened_at);
    Board {
        filters,
        incidents,
        teams,
        now,
        error,
    }
}

/// The person the latest page or escalation of `id` named (the stored
/// notice, never recomputed), cached until the handoff has more events.
async fn paged_person(s: &AppState, id: Uuid, events: u32) -> Option<String> {
    if let Some((n, p)) = s.console.paged.lock().expect("not poisoned").get(&id) {
        if *n == events {
            return p.clone();
        }
    }
    let person = match s.app.events(id).await {
        Ok(events) => latest_paged(&events),
        Err(e) => {
            tracing::debug!(%id, error = %e, "who was paged: events not read");
            return None;
        }
    };
    let mut cache = s.console.paged.lock().expect("not poisoned");
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(id, (events, person.clone()));
    person
}

/// The first person of the latest notice that names one.
pub fn latest_paged(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match &e.data {
        EventData::Paged { notice, .. } | EventData::Escalated { notice, .. } => {
            notice.routes.iter().find_map(|r| r.person.clone())
        }
        _ => None,
    })
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

fn allowed(s: &AppState, actor: Option<&Actor>, action: Action, facts: &Facts) -> bool {
    actor.is_some_and(|a| {
        matches!(
            authorize(a, action, facts, s.identity.rules()),
            Decision::Allow
        )
    })
}

/// The buttons offered: allowed by the person's roles and sensible in the
/// handoff's state (the domain still decides).
fn actions(s: &AppState, actor: Option<&Actor>, view: &HandoffView) -> Actions {
    let none = Facts::default();
    match view {
        HandoffView::Incident(i) => {
            let open = i.resolved.is_none();
            Actions {
                ack: open
                    && i.acknowledged.is_none()
                    && allowed(s, actor, Action::Acknowledge, &none),
                resolve: open && allowed(s, actor, Action::Resolve, &none),
                override_gate: open
                    && i.gate.held.is_some()
                    && allowed(s, actor, Action::Override, &none),
                enrich: open && allowed(s, actor, Action::Enrich, &none),
                ..Actions::default()
            }
        }
        HandoffView::Team(t) => {
            use crate::domain::TeamStatus as T;
            let facts = Facts {
                members_only_team: s
                    .identity
                    .members_only(&t.template)
                    .then(|| t.to_team.clone()),
            };
            let other = allowed(s, actor, Action::OtherTeamCommand, &none);
            Actions {
                accept: t.status == T::Initiated && allowed(s, actor, Action::Accept, &facts),
                check: t.status == T::Accepted && other,
                complete: t.status == T::Accepted && allowed(s, actor, Action::Complete, &facts),
                return_: matches!(t.status, T::Initiated | T::Accepted) && other,
                rate: t.status == T::Completed
                    && t.rating.is_none()
                    && allowed(s, actor, Action::Rate, &facts),
                ..Actions::default()
            }
        }
    }
}

async fn detail(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let viewer = who.as_ref().map(|w| &w.1);
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found(viewer);
    };
    let view = match s.app.get(id).await {
        Ok(v) => v,
        Err(e) => return app_error(e, viewer),
    };
    let events = match s.app.events(id).await {
        Ok(e) => e,
        Err(e) => return app_error(e, viewer),
    };
    let now = Utc::now();
    let d = Detail {
        actions: actions(&s, who.as_ref().map(|w| &w.0), &view),
        lines: crate::replay::timeline::lines(&events, s.app.policy()),
        story: crate::replay::timeline::timeline(&events, s.app.policy(), now),
        view,
        signed_in: who.is_some(),
        now,
    };
    page(StatusCode::OK, views::handoff(&d, viewer))
}

/// The verbs the console posts, each the `app` verb of the same name.
const VERBS: &[&str] = &[
    "ack", "resolve", "override", "enrich", "accept", "check", "complete", "return", "rate",
];

/// A form's fields as the verb's JSON body (empty fields left out).
pub fn form_body(verb: &str, form: &[(String, String)]) -> Map<String, Value> {
    let mut body = Map::new();
    let mut fields = Map::new();
    for (k, v) in form {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match (verb, k.as_str()) {
            ("enrich", k) if k.starts_with("field.") => {
                // A field's value: JSON when it parses as an object or a
                // number (`blast_radius`), else the text; dotted names nest.
                let value = match serde_json::from_str::<Value>(v) {
                    Ok(j @ (Value::Object(_) | Value::Number(_))) => j,
                    _ => Value::String(v.to_string()),
                };
                let mut path = k["field.".len()..].split('.').collect::<Vec<_>>();
                let last = path.pop().unwrap_or_default().to_string();
                let mut at = &mut fields;
                for p in path {
                    let next = at
                        .entry(p.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !next.is_object() {
                        *next = Value::Object(Map::new());
                    }
                    at = next.as_object_mut().expect("an object");
                }
                at.insert(last, value);
            }
            ("check", "item") | ("rate", "rating") => {
                let n = v.parse::<u64>().map(Value::from);
                body.insert(k.clone(), n.unwrap_or_else(|_| Value::String(v.into())));
            }
            ("return", "missing") => {
                let list = v
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(|m| Value::String(m.into()))
                    .collect();
                body.insert("missing".into(), Value::Array(list));
            }
            (_, "note" | "reason" | "comment") => {
                body.insert(k.clone(), Value::String(v.into()));
            }
            _ => {}
        }
    }
    if verb == "enrich" {
        body.insert("fields".into(), Value::Object(fields));
    }
    body
}

async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Some((actor, viewer)) = session(&s, &headers).await else {
        return page(
            StatusCode::UNAUTHORIZED,
            views::message(
                "Sign in first",
                "Acting on a handoff needs a signed-in person: sign in at /login.",
                None,
            ),
        );
    };
    let (Ok(id), true) = (Uuid::try_parse(&id), VERBS.contains(&verb.as_str())) else {
        return not_found(Some(&viewer));
    };
    let Ok(Form(form)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            views::message("Refused", "The form could not be read.", Some(&viewer)),
        );
    };
    match s
        .app
        .command_as(&actor, &verb, id, form_body(&verb, &form))
        .await
    {
        Ok(_) => Redirect::to(&format!("/handoffs/{id}")).into_response(),
        Err(e) => app_error(e, Some(&viewer)),
    }
}

#[derive(serde::Deserialize, Default)]
struct AtQuery {
    at: Option<String>,
}

async fn oncall(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AtQuery>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let at = q.ok().and_then(|Query(q)| non_empty(&q.at));
    let service = s.app.oncall();
    let now = match service.who(&OncallQuery::default()) {
        Ok(a) => a.oncall,
        Err(e) => return app_error(e, who.as_ref().map(|w| &w.1)),
    };
    let rotations = now
        .into_iter()
        .map(|v| {
            let next = service
                .who(&OncallQuery {
                    at: Some(v.shift_end.to_rfc3339()),
                    rotation: Some(v.rotation.clone()),
                    known: None,
                })
                .ok()
                .and_then(|a| a.oncall.into_iter().next())
                .and_then(|n| n.person);
            RotationRow { now: v, next }
        })
        .collect();
    let (at_answer, error) = match &at {
        None => (Vec::new(), None),
        Some(at) => match service.who(&OncallQuery {
            at: Some(at.clone()),
            ..OncallQuery::default()
        }) {
            Ok(a) => (a.oncall, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
    };
    let p = OncallPage {
        rotations,
        at,
        at_answer,
        error,
    };
    page(
        StatusCode::OK,
        views::oncall(&p, who.as_ref().map(|w| &w.1)),
    )
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
    fn forms_become_the_verbs_bodies() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let b = form_body(
            "enrich",
            &f(&[
                ("field.owner.primary", "alice"),
                ("field.blast_radius", "{\"users\": 3}"),
                ("field.recommended_action", " "),
            ]),
        );
        assert_eq!(
            Value::Object(b),
            serde_json::json!({"fields": {"owner": {"primary": "alice"}, "blast_radius": {"users": 3}}})
        );
        let b = form_body("return", &f(&[("missing", "a, b"), ("reason", "x")]));
        assert_eq!(
            Value::Object(b),
            serde_json::json!({"missing": ["a", "b"], "reason": "x"})
        );
        let b = form_body(
            "rate",
            &f(&[("rating", "4"), ("comment", ""), ("by", "eve")]),
        );
        assert_eq!(Value::Object(b), serde_json::json!({"rating": 4}));
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
