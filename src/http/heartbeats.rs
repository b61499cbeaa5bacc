//! `POST /v1/heartbeats/{name}` (and `/start`, `/fail`): a heartbeat ping
//! over HTTP, for runners that cannot publish to NATS.
//!
//! The ping is checked (a configured monitor, a valid body) and published to
//! `<prefix>.heartbeat.<name>`, where the daemons' heartbeat readers take it
//! like one sent over NATS: one path from there on (see `heartbeat::run`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemDetails};
use super::AppState;
use crate::heartbeat::{parse_ping, PingError, PingStatus};

/// The answer to a stored ping.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatAccepted {
    /// The monitor pinged.
    pub monitor: String,
    /// `ok`, `start` or `fail`.
    pub status: String,
    /// The ping's sequence in `BATON_HEARTBEATS`.
    pub seq: u64,
}

/// Checks and publishes one ping; `status` is the path's (`None` for the
/// plain route, where the body may say it).
async fn ping(
    s: AppState,
    name: String,
    status: Option<PingStatus>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HeartbeatAccepted>), Problem> {
    let body = super::body(body)?;
    if !s.heartbeats.contains(&name) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_monitor",
            format!("no heartbeat monitor {name:?} is configured"),
        ));
    }
    let mut ping = parse_ping(&body).map_err(|e| match e {
        PingError::TooLarge => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        PingError::Invalid(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_heartbeat",
            e.to_string(),
        ),
    })?;
    if let Some(status) = status {
        // The body's `status` defaults to ok; any other must agree with the path.
        if ping.status != PingStatus::Ok && ping.status != status {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_heartbeat",
                format!(
                    "the body says {:?} but the path says {:?}",
                    ping.status.as_str(),
                    status.as_str()
                ),
            ));
        }
        ping.status = status;
    }
    let payload = serde_json::to_vec(&ping).expect("a ping serializes");
    let ack = async {
        s.js.publish(s.names.heartbeat(&name), payload.into())
            .await?
            .await
    }
    .await
    .map_err(|e| {
        tracing::warn!(monitor = name, error = %e, "heartbeat ping not stored");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the ping could not be stored; retry",
        )
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(HeartbeatAccepted {
            monitor: name,
            status: ping.status.as_str().into(),
            seq: ack.sequence,
        }),
    ))
}

/// Ping a heartbeat monitor (`ok` unless the body says `start` or `fail`).
#[utoipa::path(
    post,
    path = "/v1/heartbeats/{name}",
    tag = "heartbeats",
    params(("name" = String, Path, description = "Monitor name (`[[heartbeat]] name`)")),
    request_body(content = Object, description = "Optional: empty, or `{\"status\": \"ok\"|\"start\"|\"fail\", \"message\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = HeartbeatAccepted),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such monitor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body over 4 KiB", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn ok(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HeartbeatAccepted>), Problem> {
    ping(s, name, None, body).await
}

/// A run of the monitored job started (recorded; the deadline does not move).
#[utoipa::path(
    post,
    path = "/v1/heartbeats/{name}/start",
    tag = "heartbeats",
    params(("name" = String, Path, description = "Monitor name")),
    request_body(content = Object, description = "Optional: `{\"message\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = HeartbeatAccepted),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such monitor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HeartbeatAccepted>), Problem> {
    ping(s, name, Some(PingStatus::Start), body).await
}

/// A run of the monitored job failed: an incident opens at once.
#[utoipa::path(
    post,
    path = "/v1/heartbeats/{name}/fail",
    tag = "heartbeats",
    params(("name" = String, Path, description = "Monitor name")),
    request_body(content = Object, description = "Optional: `{\"message\": \"…\"}` (goes into the incident's error summary)", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = HeartbeatAccepted),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such monitor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "JetStream unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn fail(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HeartbeatAccepted>), Problem> {
    ping(s, name, Some(PingStatus::Fail), body).await
}
