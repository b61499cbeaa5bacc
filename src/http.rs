//! The HTTP face: health, readiness and Prometheus metrics.
//!
//! `router(shared)` builds the axum app so tests can drive it with
//! `oneshot` and no socket; `serve` runs it with graceful shutdown.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::server::Shared;

/// The application.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn readyz(State(s): State<Shared>) -> Response {
    if !*s.ready.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "projector is replaying the event stream\n",
        )
            .into_response();
    }
    if s.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "not connected to NATS\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// Serves until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
