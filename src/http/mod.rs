//! The HTTP face: the `/v1` API, probes, Prometheus metrics and the OpenAPI
//! document.
//!
//! [`router`] builds the axum app from an [`AppState`] (built by `server`)
//! so tests drive it with `oneshot` and no socket; [`serve`] runs it until
//! shutdown. Every route is registered
//! through `utoipa_axum::routes!`, so the document at `/openapi.json` is
//! generated from the handlers themselves and cannot miss one.
//!
//! Around every route, outermost first: a request timeout (503 `timeout`),
//! bearer-token auth ([`auth`]: shared tokens or person credentials, the
//! [`crate::identity::Actor`] handed to the handlers), and a body-size limit (413
//! `body_too_large`). Every error is an RFC 9457 problem ([`problem`]).
//!
//! Handlers only translate: path, query and body into the typed requests
//! of `app::requests`, a call on the application service
//! ([`crate::app::Handoffs`], the same one NATS calls), and its answer or
//! [`crate::app::AppError`] into JSON or a problem.
//!
//! - [`handoffs`] — list, get, timeline, and the commands.
//! - [`views`] — the shapes they answer (and the OpenAPI schemas).
//! - [`reports`] — `POST /v1/reports/{template}`.
//! - [`intake`] — `POST /v1/alertmanager/{integration}`, `POST /v2/enqueue`
//!   (PagerDuty Events API v2, no bearer token: the routing key).
//! - [`heartbeats`] — `POST /v1/heartbeats/{name}` (`/start`, `/fail`).
//! - [`people`] — `GET /v1/people/{id}`.
//! - `/v1/stats` — the same figures as NATS `stats`.
//! - [`links`] — `/a/<token>`: one-click acknowledge and resolve, accept
//!   and complete (no bearer token: the signed link).
//! - [`probes`] — `/metrics`, `/healthz`, `/readyz` alone, for `baton
//!   deliver`.
//! - [`oncall`] — `/v1/oncall` and its overrides.
//! - [`console`] — the web console's pages (`/`, `/handoffs/{id}`,
//!   `/oncall`, `/login`), outside `/v1` and the OpenAPI document: HTML,
//!   authenticated by a session cookie instead of a bearer token.

pub mod auth;
pub mod console;
pub mod handoffs;
pub mod heartbeats;
pub mod intake;
pub mod links;
pub mod oncall;
pub mod people;
pub mod probes;
pub mod problem;
pub mod reports;
pub use crate::app::views;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::requests::StatsQuery;
use crate::app::Handoffs;
use crate::config::HttpConfig;
use crate::metrics::Metrics;
use crate::stats::Stats;
use crate::store::{Names, Stream};
use problem::{Problem, ProblemDetails};

/// What the HTTP face needs from a running daemon, and nothing more;
/// `server` builds it. Cloned per request, so it holds handles and `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// `[http]`: tokens, request timeout, body limit.
    pub http: Arc<HttpConfig>,
    /// The subjects and streams `/readyz` checks.
    pub names: Names,
    /// Reads, commands and reports: the service NATS calls too.
    pub app: Handoffs,
    /// `/metrics`, and the rejection counters of `POST /v1/reports`.
    pub metrics: Arc<Metrics>,
    /// Reports in and stream checks.
    pub js: async_nats::jetstream::Context,
    /// The connection `/readyz` reports on.
    pub client: async_nats::Client,
    /// Whether the projector has caught up (`/readyz`).
    pub ready: watch::Receiver<bool>,
    /// Whether Baton can write to JetStream now (`/readyz`).
    pub store_up: watch::Receiver<bool>,
    /// The Alertmanager and PagerDuty integrations and their rate budgets.
    pub intake: Arc<crate::intake::Intake>,
    /// Keys of one-click links (`BATON_ACK_KEYS`, newest first; empty: off).
    pub ack_keys: Arc<Vec<String>>,
    /// The configured heartbeat monitors' names (`POST /v1/heartbeats/…`).
    pub heartbeats: Arc<BTreeSet<String>>,
    /// People, credentials and access rules (auth, `/v1/people`).
    pub identity: crate::identity::Identity,
    /// The web console's sessions and live streams (`[console]`).
    pub console: console::ConsoleState,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baton",
        description = "Handoffs, timelines, reports, commands and SLA figures of a Baton daemon. \
                       Errors are RFC 9457 `application/problem+json` with a stable `code`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "handoffs", description = "Current state and timelines"),
        (name = "commands", description = "The same commands as `<prefix>.cmd.*`: incidents (ack, override, enrich, resolve) and team handoffs"),
        (name = "reports", description = "Reports in, as on `<prefix>.report.<template>`"),
        (name = "stats", description = "MTTA, SLA and HCS figures"),
        (name = "heartbeats", description = "Heartbeat pings, as on `<prefix>.heartbeat.<name>`"),
        (name = "people", description = "People, what they own, their credentials"),
        (name = "operations", description = "Probes, metrics and this document"),
        (name = "oncall", description = "Who is on call, and overrides (as `<prefix>.cmd.oncall*`)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Every route with its documentation; state comes later.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(handoffs::list))
        .routes(routes!(handoffs::get_one))
        .routes(routes!(handoffs::events))
        .routes(routes!(handoffs::ack))
        .routes(routes!(handoffs::override_gate))
        .routes(routes!(handoffs::enrich))
        .routes(routes!(handoffs::resolve))
        .routes(routes!(handoffs::start))
        .routes(routes!(handoffs::accept))
        .routes(routes!(handoffs::check))
        .routes(routes!(handoffs::complete))
        .routes(routes!(handoffs::return_to_sender))
        .routes(routes!(handoffs::resubmit))
        .routes(routes!(handoffs::cancel))
        .routes(routes!(handoffs::rate))
        .routes(routes!(reports::submit))
        .routes(routes!(intake::alertmanager))
        .routes(routes!(intake::enqueue))
        .routes(routes!(intake::enqueue_v1))
        .routes(routes!(heartbeats::ok))
        .routes(routes!(heartbeats::start))
        .routes(routes!(heartbeats::fail))
        .routes(routes!(stats_handler))
        .routes(routes!(links::confirm, links::act))
        .routes(routes!(people::get_person))
        .routes(routes!(oncall::who))
        .routes(routes!(oncall::create_override))
        .routes(routes!(oncall::cancel_override))
}

/// The OpenAPI document, generated from the routes.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| api().into_openapi())
}

/// The application.
pub fn router(state: AppState) -> Router {
    let http = state.http.clone();
    let (mut routes, _) = api().split_for_parts();
    if state.console.enabled {
        routes = routes.merge(console::routes());
    }
    routes
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            auth::Auth::new(&http).with_identity(state.identity.clone()),
            auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            http.request_timeout,
            deadline,
        ))
        .with_state(state)
}

/// Answers 503 `timeout` when a request outlives `http.request_timeout`
/// (the handler's future is dropped; a command whose append was already
/// sent may still be stored, as with any client timeout).
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%method, path, ?limit, "request timed out");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long; retry",
            )
            .into_response()
        }
    }
}

/// A request body, or the problem with it.
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than http.max_body_bytes",
            )
        } else {
            tracing::info!(error = %e.body_text(), "unreadable request body");
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the request body could not be read",
            )
        }
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: NATS connected, JetStream answering (the last calls
/// succeeded: see `store::health`), every stream Baton owns present, the
/// projector caught up with the event stream, and no commit met that is too
/// new for this build to page.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready; `detail` says why", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
async fn readyz(State(s): State<AppState>) -> Response {
    match not_ready(&s).await {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => {
            tracing::debug!(reason, "not ready");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason).into_response()
        }
    }
}

async fn not_ready(s: &AppState) -> Option<String> {
    if !*s.ready.borrow() {
        return Some("the projector is replaying the event stream".into());
    }
    if s.metrics.met_newer_commits() {
        return Some(
            "the event stream holds commits from a newer Baton that this build cannot page; upgrade it"
                .into(),
        );
    }
    if s.client.connection_state() != async_nats::connection::State::Connected {
        return Some("not connected to NATS".into());
    }
    if !*s.store_up.borrow() {
        return Some("JetStream calls are failing: Baton cannot write".into());
    }
    // Every stream Baton owns, from the same list `ensure_streams` creates.
    for stream in Stream::ALL.map(|which| s.names.stream(which)) {
        if let Err(e) = s.js.get_stream(&stream).await {
            tracing::warn!(stream, error = %e, "readiness: stream check failed");
            return Some(format!("stream {stream} is missing or unreachable"));
        }
    }
    None
}

/// Prometheus text exposition of every `baton_*` series.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics(State(s): State<AppState>) -> Response {
    probes::metrics_response(&s.metrics)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI document", body = Object)))]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// MTTA, SLA breaches, completion and HCS figures over recent handoffs,
/// and the team-handoff figures (`work`): what NATS `stats` answers.
#[utoipa::path(get, path = "/v1/stats", tag = "stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 400, description = "Invalid `days`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Token needed (with `protect_reads`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])))]
async fn stats_handler(
    State(s): State<AppState>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Stats>, Problem> {
    let Query(q) = q.map_err(query_rejected)?;
    Ok(Json(s.app.stats(&q).await?))
}

/// A query string that does not even parse: 400 `invalid_query`.
pub(crate) fn query_rejected(e: QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
}

/// Serves until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if state.http.tokens.is_empty() {
        tracing::warn!(
            "no shared HTTP tokens configured (http.tokens / BATON_HTTP_TOKENS): \
             mutating endpoints accept person credentials only"
        );
    }
    let mut state = state;
    // The console's live streams end with the server, or graceful shutdown
    // would wait on them forever.
    state.console.shutdown = shutdown.child_token();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
