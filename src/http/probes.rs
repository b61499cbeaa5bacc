//! The operations face of a process without the API: `/metrics`,
//! `/healthz` and `/readyz` for `baton deliver` (on `[delivery] listen`).
//! `serve` answers the same paths from its full router (`http::router`),
//! with the same metrics body.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use crate::metrics::Metrics;

/// What the probes read.
#[derive(Clone)]
pub struct Probes {
    pub metrics: Arc<Metrics>,
    /// The connection `/readyz` reports on.
    pub client: async_nats::Client,
    /// Whether the worker's consumer is set up and taking pages.
    pub ready: watch::Receiver<bool>,
}

/// `/metrics`' answer: the Prometheus text exposition of every series.
pub fn metrics_response(metrics: &Metrics) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        metrics.render(),
    )
        .into_response()
}

/// The three routes.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(p): State<Probes>| async move { metrics_response(&p.metrics) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

/// Ready: connected to NATS and the worker taking pages; else 503
/// `not_ready` saying which.
async fn readyz(State(p): State<Probes>) -> Response {
    let reason = if !*p.ready.borrow() {
        Some("the delivery worker is not taking pages yet")
    } else if p.client.connection_state() != async_nats::connection::State::Connected {
        Some("not connected to NATS")
    } else {
        None
    };
    match reason {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(r) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", r).into_response(),
    }
}

/// Serves the probes until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Probes,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(probes))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
