//! NATS request/reply: `<prefix>.cmd.<verb>` and `<prefix>.job.<name>` in
//! one loop, queue group `baton` (several daemons share the load).
//!
//! This module only translates. A request body is decoded into the verb's
//! typed request (`app::requests`; an empty body is `{}`, as over HTTP),
//! the application service or the job runs it, and the answer goes back
//! as `{"ok": true, …}`: the command reply, `"handoff"` (get), `"page"`
//! (list), `"stats"`, the digests, or a job's `"record"`. Any refusal is
//! `{"ok": false, "error": {"code", "message", "field"?, "errors"?}}` with
//! the code of [`AppError::code`].
//!
//! A command acts as the person whose credential comes in the request's
//! `Authorization: Bearer <token>` header (the CLI sends `BATON_TOKEN`);
//! an unknown, revoked or wrong one is refused `unauthorized`. Without the
//! header the request is the compatibility mode (the body's `by`, as
//! before), which `authz.require_person` refuses. The NATS user or JWT is
//! not mapped to a person.
//!
//! One semaphore bounds the requests in flight for both subjects; a permit
//! is taken before a message is, and both waits race shutdown, after which
//! the requests in flight finish and are answered.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::requests::{self, JobBody};
use crate::app::{AppError, Handoffs};
use crate::identity::{Action, Actor, Facts, Identity};
use crate::jobs::{self, JobContext};
use crate::store::Names;

/// Requests handled at once, commands and job runs together.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The subscriptions, taken before `server::start` returns so a request
/// sent right after start-up never meets "no responders".
pub struct Subscriptions {
    commands: async_nats::Subscriber,
    jobs: async_nats::Subscriber,
}

/// Subscribes to `<prefix>.cmd.*` and `<prefix>.job.*` in queue group `baton`.
pub async fn subscribe(
    client: &async_nats::Client,
    names: &Names,
) -> Result<Subscriptions, async_nats::SubscribeError> {
    Ok(Subscriptions {
        commands: client
            .queue_subscribe(names.cmd_all(), "baton".into())
            .await?,
        jobs: client
            .queue_subscribe(names.job_all(), "baton".into())
            .await?,
    })
}

/// What the loop serves with.
pub struct Service {
    /// Who sends a command (the `Authorization` header).
    pub identity: Identity,
    /// Commands and reads.
    pub app: Handoffs,
    /// On-demand job runs.
    pub jobs: JobContext,
    /// The connection replies go out on.
    pub client: async_nats::Client,
}

/// Serves both subjects until shutdown, then answers what is in flight.
pub async fn serve(subs: Subscriptions, service: Service, shutdown: CancellationToken) {
    let Subscriptions {
        mut commands,
        mut jobs,
    } = subs;
    let service = Arc::new(service);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    {
        let mut requests = futures::stream::select(&mut commands, &mut jobs);
        loop {
            // A permit first: no request is taken in without the capacity
            // to answer it.
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("never closed"),
            };
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = requests.next() => match m { Some(m) => m, None => break },
            };
            while tasks.try_join_next().is_some() {}
            let service = service.clone();
            tasks.spawn(async move {
                let reply =
                    answer_with(&service, &msg.subject, msg.headers.as_ref(), &msg.payload).await;
                match msg.reply {
                    Some(to) => {
                        let bytes = serde_json::to_vec(&reply).expect("serializes");
                        if let Err(e) = service.client.publish(to, bytes.into()).await {
                            tracing::warn!(error = %e, "reply failed");
                        }
                    }
                    None => tracing::warn!(
                        subject = %msg.subject,
                        "request without a reply subject; executed, nobody told"
                    ),
                }
                drop(permit);
            });
        }
    }
    let _ = commands.unsubscribe().await;
    let _ = jobs.unsubscribe().await;
    while tasks.join_next().await.is_some() {}
}

/// The reply body for one request on `subject` without headers.
pub async fn answer(service: &Service, subject: &str, payload: &[u8]) -> Value {
    answer_with(service, subject, None, payload).await
}

/// The bearer token of a NATS request's `Authorization` header.
fn bearer(headers: Option<&async_nats::HeaderMap>) -> Option<&str> {
    let value = headers?.get("Authorization")?.as_str();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Who sends a request: the person of its credential, or the
/// compatibility mode without one.
async fn actor(
    identity: &Identity,
    headers: Option<&async_nats::HeaderMap>,
) -> Result<Actor, AppError> {
    let Some(token) = bearer(headers) else {
        return Ok(Actor::Shared);
    };
    identity.authenticate(token).await.map_err(|e| match e {
        crate::identity::AuthError::Credential(crate::identity::VerifyError::Store(s)) => {
            AppError::Unavailable(s)
        }
        e => {
            tracing::info!(reason = %e, "NATS credential refused");
            AppError::Unauthorized(
                "the Authorization header's credential is unknown, revoked or wrong".into(),
            )
        }
    })
}

/// The reply body for one request on `subject`, acting as the sender
/// its `headers` prove.
pub async fn answer_with(
    service: &Service,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Value {
    let names = service.app.names();
    let verb = names.verb_of(subject);
    let (what, result) = if verb.is_empty() {
        let name = names.job_of(subject);
        (name, job(&service.jobs, name, payload).await)
    } else {
        let result = match actor(&service.identity, headers).await {
            Ok(actor) => command(&service.app, &actor, verb, payload).await,
            Err(e) => Err(e),
        };
        (verb, result)
    };
    result.unwrap_or_else(|e| {
        e.log(what);
        error_body(&e)
    })
}

/// `<prefix>.cmd.<verb>`.
async fn command(
    app: &Handoffs,
    actor: &Actor,
    verb: &str,
    payload: &[u8],
) -> Result<Value, AppError> {
    if crate::app::oncall::VERBS.contains(&verb) {
        return oncall(app, actor, verb, payload).await;
    }
    if !requests::VERBS.contains(&verb) {
        return Err(AppError::UnknownCommand {
            verb: verb.into(),
            known: requests::VERBS.join(", "),
        });
    }
    let obj = requests::object(payload)?;
    Ok(match verb {
        "get" => json!({"ok": true, "handoff": app.get(requests::id(&obj)?).await?}),
        "list" => json!({"ok": true, "page": app.list(requests::body(verb, obj)?).await?}),
        "stats" => json!({"ok": true, "stats": app.stats(&requests::body(verb, obj)?).await?}),
        "digest" => ok(app.digest(&requests::body(verb, obj)?)),
        "start" => ok(app.start_as(actor, obj).await?),
        "report" => {
            app.authorize(actor, Action::Report, &Facts::default())?;
            let body: requests::ReportBody = requests::body(verb, obj)?;
            if let Some(k) = body.idempotency_key.as_deref() {
                if !requests::is_idempotency_key(k) {
                    return Err(AppError::invalid(
                        "idempotency_key",
                        requests::IDEMPOTENCY_KEY_RULE,
                    ));
                }
            }
            let payload = serde_json::to_vec(&body.report).expect("JSON values serialize");
            ok(app
                .submit_report(
                    &body.template,
                    payload.into(),
                    body.idempotency_key.as_deref(),
                )
                .await?)
        }
        _ => {
            let id = requests::id(&obj)?;
            ok(app.command_as(actor, verb, id, obj).await?)
        }
    })
}

/// The on-call verbs: `oncall`, `oncall_override`, `oncall_cancel`,
/// `oncall_participants`.
async fn oncall(
    app: &Handoffs,
    actor: &Actor,
    verb: &str,
    payload: &[u8],
) -> Result<Value, AppError> {
    let mut obj = requests::object(payload)?;
    if verb != "oncall" {
        app.authorize_oncall(actor, verb, &mut obj)?;
    }
    let service = app.oncall();
    Ok(match verb {
        "oncall" => ok(service.who_body(obj)?),
        "oncall_override" => {
            json!({"ok": true, "override": service.create_override_body(obj).await?})
        }
        "oncall_cancel" => {
            json!({"ok": true, "override": service.cancel_override_body(obj).await?})
        }
        _ => ok(service.change_participants_body(obj).await?),
    })
}

/// `<prefix>.job.<name>`.
async fn job(ctx: &JobContext, name: &str, payload: &[u8]) -> Result<Value, AppError> {
    let body: JobBody = requests::body("job", requests::object(payload)?)?;
    let record = jobs::run_on_demand(ctx, name, body.date.as_deref()).await?;
    Ok(json!({"ok": true, "record": record}))
}

/// A reply object with `"ok": true`.
fn ok(reply: impl Serialize) -> Value {
    let mut v = serde_json::to_value(reply).expect("replies serialize");
    if let Value::Object(o) = &mut v {
        o.insert("ok".into(), Value::Bool(true));
    }
    v
}

/// `{"ok": false, "error": {"code", "message", "field"?, "errors"?}}`.
pub fn error_body(e: &AppError) -> Value {
    let mut error = json!({"code": e.code(), "message": e.to_string()});
    if let Some(field) = e.field() {
        error["field"] = field.into();
    }
    if !e.errors().is_empty() {
        error["errors"] = serde_json::to_value(e.errors()).expect("field errors serialize");
    }
    json!({"ok": false, "error": error})
}
