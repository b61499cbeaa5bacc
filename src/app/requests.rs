//! One typed request per verb, the same types for every transport: the
//! NATS `<prefix>.cmd.<verb>` body, the HTTP body or query, and the OpenAPI
//! schema (`ToSchema`) all come from the structs below, so the document
//! and the parser cannot drift.
//!
//! A body is decoded in two steps. serde checks the JSON types ([`decode`]
//! keeps which field failed and how; [`refuse`] is the one table of the
//! code and message each field answers). Then `into_command` applies the
//! rules serde cannot express, in the order the hand parser applied them:
//! person names, non-blank reasons, ratings, byte limits. No body denies
//! unknown fields: the hand parser never did, and NATS bodies carry `id`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::decode::{self, Fault, Refusal};
use super::error::AppError;
use crate::domain::teamwork::{TeamCommand, TemplateKind};
use crate::domain::{parse_object, Command, IncidentCommand, Owner, Policy};

/// Every `<prefix>.cmd.<verb>` served.
pub const VERBS: &[&str] = &[
    "ack", "override", "enrich", "resolve", "get", "digest", "start", "accept", "check",
    "complete", "return", "resubmit", "cancel", "rate", "stats", "list", "report",
];

/// The longest free text kept (`reason`, `note`, `comment`, `dedup_key`),
/// in characters; longer text is cut.
pub const MAX_TEXT_CHARS: usize = 2000;

/// The JSON object of a body; an empty body is `{}`.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(AppError::NotAnObject),
        Err(e) => Err(AppError::MalformedJson(e.to_string())),
    }
}

/// Decodes the body of `verb`, refusing as [`refuse`] says.
pub fn body<T: serde::de::DeserializeOwned>(
    verb: &str,
    obj: Map<String, Value>,
) -> Result<T, AppError> {
    decode::decode(obj).map_err(|r| refuse(verb, r))
}

/// Parses a handoff id (it becomes a subject token, so only UUIDs pass).
pub fn parse_id(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s.trim()).map_err(|_| AppError::InvalidId)
}

/// The `id` of a NATS body (HTTP has it in the path).
pub fn id(obj: &Map<String, Value>) -> Result<Uuid, AppError> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let Id { id } = body("id", obj.clone())?;
    parse_id(&id)
}

/// The code and message a field refused by serde answers: the one table of
/// them, kept from the hand parser it replaces.
fn refuse(verb: &str, Refusal { field, fault }: Refusal) -> AppError {
    let absent = matches!(fault, Fault::Missing | Fault::Null);
    if matches!(verb, "list" | "stats") {
        let message = match field.as_str() {
            "limit" => format!(
                "limit must be an integer from 1 to {}",
                super::list::MAX_LIMIT
            ),
            "days" => DAYS.to_string(),
            _ => format!("{field} must be a string"),
        };
        return AppError::InvalidQuery(vec![crate::domain::FieldError::new(
            &field,
            "invalid_value",
            message,
        )]);
    }
    match (field.as_str(), &fault) {
        ("rating", _) => AppError::invalid(&field, "rating is a whole number from 1 to 5"),
        ("bucket", _) => AppError::invalid(&field, "bucket must be 0..=255"),
        (_, Fault::Unknown) => AppError::UnknownField {
            message: format!("`{field}` is not a field of {verb}"),
            field,
        },
        // A null id or template was a wrong type, not an absent field.
        ("id" | "template", Fault::Missing) => {
            AppError::missing(&field, format!("{field} is required"))
        }
        ("id" | "template", _) => AppError::wrong_type(&field, format!("{field} must be a string")),
        ("fields", _) if verb == "enrich" && absent => {
            AppError::missing(&field, "enrich needs `fields`")
        }
        ("fields", _) if verb == "enrich" => {
            AppError::wrong_type(&field, "fields must be an object of packet fields")
        }
        ("fields", _) => AppError::missing(&field, "fields must be an object of field values"),
        ("item", _) if absent => {
            AppError::missing(&field, "item is required: its number (1-based) or text")
        }
        ("item", _) => AppError::wrong_type(&field, "item is a number or a string"),
        ("missing", _) => AppError::wrong_type(&field, "missing is a list of field names"),
        ("reason", _) if absent => AppError::missing(&field, format!("{verb} needs a reason")),
        (_, _) if absent => AppError::missing(&field, format!("{field} is required")),
        (_, _) => AppError::wrong_type(&field, format!("{field} must be a string")),
    }
}

/// Body of `ack`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AckBody {
    /// Who acknowledges (1–128 printable characters).
    /// Who does it (1–128 printable characters).
    pub by: String,
}

/// Body of `override`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Why the gate is overridden (required).
    pub reason: String,
}

/// Body of `enrich`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrichBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Packet fields to fill (same names and rules as a report; not `dedup_key`).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Body of `resolve`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// How it was resolved.
    pub note: Option<String>,
}

/// Body of `start` (`POST /v1/handoffs`): a team handoff from a template.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartBody {
    /// Template name (`config/templates/<name>.toml`, `kind = "work"`).
    pub template: String,
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Field values; every `required_fields` entry must be present.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Makes a retried start join the same handoff.
    pub dedup_key: Option<String>,
}

/// What an `Idempotency-Key` must be (it becomes a `Nats-Msg-Id` header).
pub const IDEMPOTENCY_KEY_RULE: &str =
    "Idempotency-Key must be 1-128 printable ASCII characters without spaces";

/// Whether `key` may be an `Idempotency-Key` ([`IDEMPOTENCY_KEY_RULE`]).
pub fn is_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Body of `report` (NATS only; HTTP posts the report itself to
/// `/v1/reports/{template}`): a report, recorded at once like an HTTP one,
/// with the same answer (`opened`, `joined` or `recurred`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportBody {
    /// The report template (`agent_failure`).
    pub template: String,
    /// The report, as published on `<prefix>.report.<template>`.
    #[schema(value_type = Object)]
    pub report: Value,
    /// As HTTP's `Idempotency-Key`: a retry with the same key and report
    /// is stored once.
    pub idempotency_key: Option<String>,
}

/// Body of `accept`, `complete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ByBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
}

/// Body of `check`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Checklist item: its number (1-based) or exact text.
    pub item: ItemRef,
}

/// A checklist item, by number or by text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ItemRef {
    /// Its number, 1-based.
    #[schema(value_type = u32)]
    Number(serde_json::Number),
    /// Its exact text.
    Text(String),
}

/// Body of `return`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReturnBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Missing field names.
    pub missing: Option<Vec<String>>,
    /// Why it goes back.
    pub reason: Option<String>,
}

/// Body of `resubmit`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResubmitBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// The fields that were missing (merged into those sent).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Body of `cancel`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// Why it is called off (required).
    pub reason: String,
}

/// Body of `rate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RateBody {
    /// Who does it (1–128 printable characters).
    pub by: String,
    /// 1 to 5.
    pub rating: u8,
    /// What the sender should know.
    pub comment: Option<String>,
}

/// Body of `digest`: all 256 bucket digests, or one bucket's per-handoff ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DigestBody {
    /// 0–255: the bucket (last byte of the handoff id) to list.
    pub bucket: Option<u8>,
}

/// Body of `<prefix>.job.daily-review` (and every other job).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct JobBody {
    /// `YYYY-MM-DD`: review the 24 h before that day's review time.
    pub date: Option<String>,
}

const DAYS: &str = "days must be an integer from 1 to 365";

/// The window of `stats`: the NATS body and the `GET /v1/stats` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Days back from now, 1–365 (default 30).
    #[param(value_type = Option<u32>)]
    pub days: Option<Whole>,
}

impl StatsQuery {
    /// The window in days, or `invalid_query`.
    pub fn days(&self) -> Result<u32, AppError> {
        match &self.days {
            None => Ok(30),
            Some(d) => d
                .value()
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| {
                    AppError::InvalidQuery(vec![crate::domain::FieldError::new(
                        "days",
                        "invalid_value",
                        DAYS,
                    )])
                }),
        }
    }
}

/// A whole number as JSON sends it (`10`) or a query string does (`"10"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Whole {
    /// A JSON number.
    Number(u64),
    /// Text that should hold one.
    Text(String),
}

impl Whole {
    /// The number, if it is one.
    pub fn value(&self) -> Option<u64> {
        match self {
            Whole::Number(n) => Some(*n),
            Whole::Text(s) => s.parse().ok(),
        }
    }
}

/// A person's name (`by`): 1–128 printable characters, trimmed.
fn person(field: &str, s: String) -> Result<String, AppError> {
    if !s.trim().is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) {
        Ok(s.trim().to_string())
    } else {
        Err(AppError::invalid(
            field,
            format!("{field} must be 1-128 printable characters"),
        ))
    }
}

/// Free text, cut to [`MAX_TEXT_CHARS`].
fn text(s: String) -> String {
    if s.chars().count() <= MAX_TEXT_CHARS {
        s
    } else {
        s.chars().take(MAX_TEXT_CHARS).collect()
    }
}

/// A required reason: present and not blank.
fn reason(verb: &str, s: String) -> Result<String, AppError> {
    Some(text(s))
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| AppError::missing("reason", format!("{verb} needs a reason")))
}

/// The `fields` of a team-handoff command: any JSON values, strings cut to
/// `max_field_bytes` (bytes, at a char boundary, as report fields are).
fn work_fields(
    fields: Map<String, Value>,
    max_field_bytes: usize,
) -> Result<BTreeMap<String, Value>, AppError> {
    let mut out = BTreeMap::new();
    for (k, v) in fields {
        if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
            return Err(AppError::invalid("fields", format!("bad field name {k:?}")));
        }
        let v = match v {
            Value::String(mut s) => {
                crate::domain::truncate(&mut s, max_field_bytes);
                Value::String(s)
            }
            v => v,
        };
        out.insert(k, v);
    }
    Ok(out)
}

/// The command of a verb that acts on one handoff, from its body (without
/// `id`). `None` for a verb that is not such a command.
pub fn command(
    verb: &str,
    obj: Map<String, Value>,
    max_field_bytes: usize,
) -> Result<Option<Command>, AppError> {
    let team = |c| Some(Command::Team(c));
    let incident = |c| Some(Command::Incident(c));
    Ok(match verb {
        "ack" => {
            let b: AckBody = body(verb, obj)?;
            incident(IncidentCommand::Acknowledge {
                by: person("by", b.by)?,
            })
        }
        "override" => {
            let b: OverrideBody = body(verb, obj)?;
            incident(IncidentCommand::Override {
                by: person("by", b.by)?,
                reason: reason(verb, b.reason)?,
            })
        }
        "resolve" => {
            let b: ResolveBody = body(verb, obj)?;
            incident(IncidentCommand::Resolve {
                by: person("by", b.by)?,
                note: b.note.map(text),
            })
        }
        "enrich" => incident(enrich(body(verb, obj)?, max_field_bytes)?),
        "accept" | "complete" => {
            let by = person("by", body::<ByBody>(verb, obj)?.by)?;
            team(if verb == "accept" {
                TeamCommand::Accept { by }
            } else {
                TeamCommand::Complete { by }
            })
        }
        "check" => {
            let b: CheckBody = body(verb, obj)?;
            let by = person("by", b.by)?;
            let item = match b.item {
                ItemRef::Number(n) => n.to_string(),
                ItemRef::Text(s) if !s.trim().is_empty() => s,
                ItemRef::Text(_) => {
                    return Err(AppError::wrong_type("item", "item is a number or a string"))
                }
            };
            team(TeamCommand::Check { by, item })
        }
        "return" => {
            let b: ReturnBody = body(verb, obj)?;
            team(TeamCommand::Return {
                by: person("by", b.by)?,
                missing: b.missing.unwrap_or_default(),
                reason: b.reason.map(text).unwrap_or_default(),
            })
        }
        "resubmit" => {
            let b: ResubmitBody = body(verb, obj)?;
            team(TeamCommand::Resubmit {
                by: person("by", b.by)?,
                fields: work_fields(b.fields, max_field_bytes)?,
            })
        }
        "cancel" => {
            let b: CancelBody = body(verb, obj)?;
            team(TeamCommand::Cancel {
                by: person("by", b.by)?,
                reason: reason(verb, b.reason)?,
            })
        }
        "rate" => {
            let b: RateBody = body(verb, obj)?;
            let by = person("by", b.by)?;
            if !(1..=5).contains(&b.rating) {
                return Err(AppError::invalid(
                    "rating",
                    "rating is a whole number from 1 to 5",
                ));
            }
            team(TeamCommand::Rate {
                by,
                rating: b.rating,
                comment: b.comment.map(text),
            })
        }
        _ => None,
    })
}

fn enrich(b: EnrichBody, max_field_bytes: usize) -> Result<IncidentCommand, AppError> {
    let by = person("by", b.by)?;
    if b.fields.contains_key("dedup_key") {
        return Err(AppError::UnknownField {
            field: "fields.dedup_key".into(),
            message: "dedup_key cannot change after open".into(),
        });
    }
    let parsed =
        parse_object(&b.fields, max_field_bytes, false).map_err(AppError::InvalidFields)?;
    let mut packet = parsed.report.packet;
    // An enrich that names only a backup must not erase the primary.
    if let Some(Owner {
        primary: None,
        backup: None,
    }) = packet.owner
    {
        packet.owner = None;
    }
    Ok(IncidentCommand::Enrich {
        by,
        fields: packet,
        team: parsed.report.team,
    })
}

impl StartBody {
    /// The id and the `Initiate` command: with a `dedup_key` the id is
    /// stable (a retried start joins the same handoff); without one it is a
    /// fresh UUIDv7.
    pub fn into_command(
        self,
        policy: &Policy,
        max_field_bytes: usize,
    ) -> Result<(Uuid, Command), AppError> {
        let is_work = |t: &&crate::domain::teamwork::Template| t.kind == TemplateKind::Work;
        let template = policy
            .templates
            .get(&self.template)
            .filter(is_work)
            .ok_or_else(|| AppError::UnknownTemplate {
                name: self.template.clone(),
                known: policy
                    .templates
                    .values()
                    .filter(is_work)
                    .map(|t| t.name.clone())
                    .collect(),
            })?
            .clone();
        let by = person("by", self.by)?;
        let fields = work_fields(self.fields, max_field_bytes)?;
        let id = match self.dedup_key.map(text) {
            Some(k) => crate::domain::keyed_handoff_id(&template.name, &k),
            None => Uuid::now_v7(),
        };
        let cmd = Command::Team(TeamCommand::Initiate {
            template: Box::new(template),
            fields,
            by,
        });
        Ok((id, cmd))
    }
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
