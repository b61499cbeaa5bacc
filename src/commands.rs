//! Commands: `ack`, `override`, `enrich`, `resolve`, `get`, and `digest`
//! (the live state's digests, for `baton audit verify`).
//!
//! [`handle`] is transport-free: the NATS request/reply service below
//! (`<prefix>.cmd.<verb>`) and the HTTP API both call it, so the two
//! transports share one path into the engine. Replies are
//! `{"ok":true,"handoff":{...},"events":[...]}` or
//! `{"ok":false,"error":{"code","message","field"}}`.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use std::collections::BTreeMap;

use crate::domain::teamwork::{TeamCommand, TemplateKind};
use crate::domain::{parse_object, Command, DomainError, IncidentCommand, Owner, Policy};
use crate::engine::{Engine, EngineError, Outcome};
use crate::store::Names;
use crate::views::HandoffView;

/// The verbs served.
pub const VERBS: &[&str] = &[
    "ack", "override", "enrich", "resolve", "get", "digest", "start", "accept", "check",
    "complete", "return", "resubmit", "cancel", "rate", "stats",
];

/// A command that failed. `code` is stable; `status` is what HTTP answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    pub status: u16,
}

impl CommandError {
    pub fn new(status: u16, code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: field.map(String::from),
            status,
        }
    }
}

impl From<EngineError> for CommandError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Domain(d) => {
                let status = match d {
                    DomainError::NotFound => 404,
                    DomainError::Invalid { .. } | DomainError::MissingFields(_) => 422,
                    _ => 409,
                };
                let field = match &d {
                    DomainError::Invalid { field, .. } => Some(field.as_str()),
                    DomainError::MissingFields(f) => f.first().map(String::as_str),
                    _ => None,
                };
                CommandError::new(status, d.code(), d.to_string(), field)
            }
            EngineError::Contended(_) => CommandError::new(409, "conflict", e.to_string(), None),
            EngineError::Store(s) => {
                // The detail goes to the log, not to the caller.
                tracing::error!(error = %s, "command failed at the store");
                CommandError::new(
                    503,
                    "unavailable",
                    "the event store is unavailable; retry",
                    None,
                )
            }
        }
    }
}

fn bad(code: &str, field: &str, message: impl Into<String>) -> CommandError {
    CommandError::new(422, code, message, Some(field))
}

/// Parses a handoff id (which becomes a subject token, so only UUIDs pass).
pub fn parse_id(s: &str) -> Result<Uuid, CommandError> {
    Uuid::parse_str(s.trim()).map_err(|_| bad("invalid_id", "id", "id must be a handoff UUID"))
}

fn person(obj: &Map<String, Value>, field: &str) -> Result<String, CommandError> {
    match obj.get(field) {
        Some(Value::String(s))
            if !s.trim().is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) =>
        {
            Ok(s.trim().to_string())
        }
        Some(Value::String(_)) => Err(bad(
            "invalid_value",
            field,
            format!("{field} must be 1-128 printable characters"),
        )),
        None | Some(Value::Null) => {
            Err(bad("missing_field", field, format!("{field} is required")))
        }
        Some(_) => Err(bad(
            "wrong_type",
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn text(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, CommandError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.chars().take(2000).collect())),
        Some(_) => Err(bad(
            "wrong_type",
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// Builds the domain command for a verb from its JSON body (without `id`).
pub fn command(
    verb: &str,
    obj: &Map<String, Value>,
    max_field_bytes: usize,
) -> Result<Option<Command>, CommandError> {
    Ok(Some(match verb {
        "get" | "digest" => return Ok(None),
        "accept" => Command::Team(TeamCommand::Accept {
            by: person(obj, "by")?,
        }),
        "check" => Command::Team(TeamCommand::Check {
            by: person(obj, "by")?,
            item: match obj.get("item") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => {
                    return Err(bad(
                        "missing_field",
                        "item",
                        "item is required: its number (1-based) or text",
                    ))
                }
                Some(_) => return Err(bad("wrong_type", "item", "item is a number or a string")),
            },
        }),
        "complete" => Command::Team(TeamCommand::Complete {
            by: person(obj, "by")?,
        }),
        "return" => Command::Team(TeamCommand::Return {
            by: person(obj, "by")?,
            missing: match obj.get("missing") {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        bad("wrong_type", "missing", "missing is a list of field names")
                    })?,
                Some(_) => {
                    return Err(bad(
                        "wrong_type",
                        "missing",
                        "missing is a list of field names",
                    ))
                }
            },
            reason: text(obj, "reason")?.unwrap_or_default(),
        }),
        "resubmit" => Command::Team(TeamCommand::Resubmit {
            by: person(obj, "by")?,
            fields: work_fields(obj, max_field_bytes)?,
        }),
        "cancel" => Command::Team(TeamCommand::Cancel {
            by: person(obj, "by")?,
            reason: text(obj, "reason")?
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| bad("missing_field", "reason", "cancel needs a reason"))?,
        }),
        "rate" => Command::Team(TeamCommand::Rate {
            by: person(obj, "by")?,
            rating: match obj.get("rating").and_then(Value::as_u64) {
                Some(n @ 1..=5) => n as u8,
                _ => {
                    return Err(bad(
                        "invalid_value",
                        "rating",
                        "rating is a whole number from 1 to 5",
                    ))
                }
            },
            comment: text(obj, "comment")?,
        }),
        "ack" => Command::Incident(IncidentCommand::Acknowledge {
            by: person(obj, "by")?,
        }),
        "override" => Command::Incident(IncidentCommand::Override {
            by: person(obj, "by")?,
            reason: text(obj, "reason")?
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| bad("missing_field", "reason", "override needs a reason"))?,
        }),
        "resolve" => Command::Incident(IncidentCommand::Resolve {
            by: person(obj, "by")?,
            note: text(obj, "note")?,
        }),
        "enrich" => {
            let by = person(obj, "by")?;
            let fields = match obj.get("fields") {
                Some(Value::Object(f)) => f,
                None | Some(Value::Null) => {
                    return Err(bad("missing_field", "fields", "enrich needs `fields`"))
                }
                Some(_) => {
                    return Err(bad(
                        "wrong_type",
                        "fields",
                        "fields must be an object of packet fields",
                    ))
                }
            };
            if fields.contains_key("dedup_key") {
                return Err(bad(
                    "unknown_field",
                    "fields.dedup_key",
                    "dedup_key cannot change after open",
                ));
            }
            let parsed = parse_object(fields, max_field_bytes, false).map_err(|errs| {
                let first = &errs[0];
                let all: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                CommandError::new(
                    422,
                    &first.code,
                    all.join("; "),
                    Some(&format!("fields.{}", first.field)),
                )
            })?;
            let mut packet = parsed.report.packet;
            // An enrich that names only a backup must not erase the primary.
            if let Some(Owner {
                primary: None,
                backup: None,
            }) = packet.owner
            {
                packet.owner = None;
            }
            Command::Incident(IncidentCommand::Enrich {
                by,
                fields: packet,
                team: parsed.report.team,
            })
        }
        other => {
            return Err(CommandError::new(
                404,
                "unknown_command",
                format!("no command {other:?}; known: {}", VERBS.join(", ")),
                None,
            ))
        }
    }))
}

/// Reply body for a successful command: the handoff as the API shows it
/// (the same view HTTP answers), the events stored and their sequence.
pub fn ok_body(outcome: &Outcome, policy: &Policy) -> Value {
    let handoff = outcome
        .handoff
        .as_ref()
        .map(|h| HandoffView::new(h, policy));
    json!({"ok": true, "handoff": handoff, "events": outcome.events, "seq": outcome.seq})
}

/// The `fields` object of a team-handoff command: any JSON values, strings
/// cut to `max_field_bytes`.
fn work_fields(
    obj: &Map<String, Value>,
    max_field_bytes: usize,
) -> Result<BTreeMap<String, Value>, CommandError> {
    let Some(Value::Object(f)) = obj.get("fields") else {
        return Err(bad(
            "missing_field",
            "fields",
            "fields must be an object of field values",
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in f {
        if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
            return Err(bad(
                "invalid_value",
                "fields",
                format!("bad field name {k:?}"),
            ));
        }
        let v = match v {
            // The limit is in bytes, as for report fields.
            Value::String(s) if s.len() > max_field_bytes => {
                let mut s = s.clone();
                crate::domain::truncate(&mut s, max_field_bytes);
                Value::String(s)
            }
            v => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// `start`: opens a team handoff from a template. With a `dedup_key` the id
/// is stable (a retried start joins the same handoff); without one it is a
/// fresh UUIDv7.
pub async fn start(
    engine: &Engine,
    obj: &Map<String, Value>,
    max_field_bytes: usize,
) -> Result<Value, CommandError> {
    let name = match obj.get("template") {
        Some(Value::String(s)) => s.as_str(),
        None => return Err(bad("missing_field", "template", "template is required")),
        Some(_) => return Err(bad("wrong_type", "template", "template must be a string")),
    };
    let template = engine
        .policy()
        .templates
        .get(name)
        .filter(|t| t.kind == TemplateKind::Work)
        .ok_or_else(|| {
            let known: Vec<&str> = engine
                .policy()
                .templates
                .values()
                .filter(|t| t.kind == TemplateKind::Work)
                .map(|t| t.name.as_str())
                .collect();
            CommandError::new(
                404,
                "unknown_template",
                format!(
                    "no team-handoff template {name:?}; known: {}",
                    known.join(", ")
                ),
                Some("template"),
            )
        })?
        .clone();
    let by = person(obj, "by")?;
    let fields = work_fields(obj, max_field_bytes)?;
    let id = match text(obj, "dedup_key")? {
        Some(k) => crate::domain::keyed_handoff_id(&template.name, &k),
        None => Uuid::now_v7(),
    };
    let cmd = Command::Team(TeamCommand::Initiate {
        template: Box::new(template),
        fields,
        by,
    });
    Ok(ok_body(&engine.execute(id, cmd).await?, engine.policy()))
}

/// Runs a command given as a verb and a JSON body with `id`.
pub async fn handle(
    engine: &Engine,
    verb: &str,
    body: &[u8],
    max_field_bytes: usize,
) -> Result<Value, CommandError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        CommandError::new(400, "malformed_json", format!("not valid JSON: {e}"), None)
    })?;
    let Value::Object(obj) = value else {
        return Err(CommandError::new(
            400,
            "not_an_object",
            "the request must be a JSON object",
            None,
        ));
    };
    if verb == "digest" {
        return digest(engine, &obj);
    }
    if verb == "start" {
        return start(engine, &obj, max_field_bytes).await;
    }
    if verb == "stats" {
        // All-time team figures: the team handoffs only, copied off the
        // runtime.
        let projection = engine.projection().clone();
        let stats = crate::projector::off_runtime(move || {
            let teams = projection.opened_in(
                &crate::projector::Select::kind(crate::domain::Kind::Team),
                None,
                None,
            );
            crate::teams::work_stats(&teams)
        })
        .await;
        return Ok(json!({"ok": true, "stats": stats}));
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => parse_id(s)?,
        None => return Err(bad("missing_field", "id", "id is required")),
        Some(_) => return Err(bad("wrong_type", "id", "id must be a string")),
    };
    run(engine, verb, id, &obj, max_field_bytes).await
}

/// Runs a command for a known id (the HTTP path has the id in the URL).
pub async fn run(
    engine: &Engine,
    verb: &str,
    id: Uuid,
    obj: &Map<String, Value>,
    max_field_bytes: usize,
) -> Result<Value, CommandError> {
    match command(verb, obj, max_field_bytes)? {
        None if verb == "digest" => digest(engine, obj),
        None => match engine.load(id).await.map_err(EngineError::from)? {
            Some(h) => Ok(json!({"ok": true, "handoff": HandoffView::new(&h, engine.policy())})),
            None => Err(EngineError::Domain(DomainError::NotFound).into()),
        },
        Some(cmd) => Ok(ok_body(&engine.execute(id, cmd).await?, engine.policy())),
    }
}

/// `digest` (no id): the live projection's state digests, for `baton audit
/// verify`. Without `bucket`: `{"applied_seq", "handoffs", "buckets": [256
/// hex]}`; with `"bucket": 0..=255`: `{"applied_seq", "digests": {id: {"seq",
/// "digest"}}}` for the handoffs whose id ends in that byte (a bucket stays
/// far below NATS's payload limit even with millions of handoffs).
fn digest(engine: &Engine, obj: &Map<String, Value>) -> Result<Value, CommandError> {
    use crate::projector::digest::{bucket_digest, bucket_of, digest};
    let projection = engine.projection();
    // Read before the entries: an entry may be newer, never older.
    let applied = projection
        .applied_seq
        .load(std::sync::atomic::Ordering::Acquire);
    match obj.get("bucket") {
        None | Some(Value::Null) => {
            let mut buckets: Vec<Vec<(Uuid, String)>> = vec![Vec::new(); 256];
            let mut handoffs = 0usize;
            projection.visit(
                |_| true,
                |h, seq| {
                    handoffs += 1;
                    buckets[bucket_of(&h.id()) as usize].push((h.id(), digest(h, seq)));
                },
            );
            let buckets: Vec<String> = buckets
                .iter()
                .map(|b| bucket_digest(b.iter().map(|(i, d)| (i, d.as_str()))))
                .collect();
            Ok(
                json!({"ok": true, "applied_seq": applied, "handoffs": handoffs, "buckets": buckets}),
            )
        }
        Some(b) => {
            let b = b
                .as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(|| bad("invalid_value", "bucket", "bucket must be 0..=255"))?;
            let mut digests = Map::new();
            projection.visit(
                |id| bucket_of(id) == b,
                |h, seq| {
                    let d = json!({"seq": seq, "digest": digest(h, seq)});
                    digests.insert(h.id().to_string(), d);
                },
            );
            Ok(json!({"ok": true, "applied_seq": applied, "digests": digests}))
        }
    }
}

/// The error reply body.
pub fn error_body(e: &CommandError) -> Value {
    json!({"ok": false, "error": e})
}

/// Serves `<prefix>.cmd.*` (queue group `baton`, so several daemons share
/// the load) until shutdown.
pub async fn serve(
    client: async_nats::Client,
    engine: Arc<Engine>,
    max_field_bytes: usize,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let sub = subscribe(&client, engine.store().names()).await?;
    serve_on(sub, client, engine, max_field_bytes, shutdown).await;
    Ok(())
}

/// The command subscription. `server::start` takes it before it returns, so
/// a command sent right after start-up is never met with "no responders".
pub async fn subscribe(
    client: &async_nats::Client,
    names: &Names,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    client
        .queue_subscribe(names.cmd_all(), "baton".into())
        .await
}

/// Serves commands arriving on `sub` until shutdown.
pub async fn serve_on(
    mut sub: async_nats::Subscriber,
    client: async_nats::Client,
    engine: Arc<Engine>,
    max_field_bytes: usize,
    shutdown: CancellationToken,
) {
    let names = engine.store().names().clone();
    let permits = Arc::new(Semaphore::new(1024));
    let mut tasks = JoinSet::new();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = sub.next() => match m { Some(m) => m, None => break },
        };
        while tasks.try_join_next().is_some() {}
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let (client, engine) = (client.clone(), engine.clone());
        let verb = names.verb_of(&msg.subject).to_string();
        tasks.spawn(async move {
            let reply = match handle(&engine, &verb, &msg.payload, max_field_bytes).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::info!(verb, code = %e.code, "command refused");
                    error_body(&e)
                }
            };
            match msg.reply {
                Some(to) => {
                    if let Err(e) = client
                        .publish(to, serde_json::to_vec(&reply).expect("serializes").into())
                        .await
                    {
                        tracing::warn!(error = %e, "command reply failed");
                    }
                }
                None => tracing::warn!(
                    verb,
                    "command without a reply subject; executed, nobody told"
                ),
            }
            drop(permit);
        });
    }
    let _ = sub.unsubscribe().await;
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R14: team fields were cut to `max_field_bytes` *chars*, so a field
    /// of multi-byte characters could be four times the byte limit.
    #[test]
    fn regression_team_fields_are_cut_to_the_byte_limit_at_a_char_boundary() {
        let obj = json!({"fields": {
            "accents": "é".repeat(100),
            "crabs": "🦀".repeat(10),
            "short": "ok",
            "count": 5,
        }});
        let out = work_fields(obj.as_object().unwrap(), 17).unwrap();
        // 2-byte chars: 8 fit in 17 bytes; 4-byte chars: 4 fit.
        assert_eq!(out["accents"], json!("é".repeat(8)));
        assert_eq!(out["crabs"], json!("🦀".repeat(4)));
        assert_eq!((&out["short"], &out["count"]), (&json!("ok"), &json!(5)));
        for v in out.values() {
            if let Value::String(s) = v {
                assert!(s.len() <= 17, "{s:?} is {} bytes", s.len());
            }
        }
    }
}
