//! [`AppError`]: every way a request to the application can fail, and what
//! each transport shows for it.
//!
//! Each variant documents its stable code (the NATS reply's `error.code`
//! and the HTTP problem's `code`) and its HTTP status. [`AppError::code`]
//! and [`AppError::status`] are the one table of each: the NATS reply body
//! and the HTTP problem only translate, so a new code cannot be invented at
//! a transport. Store failures are logged with their cause and shown only
//! as `unavailable`.

use crate::app::engine::EngineError;
use crate::domain::{DomainError, FieldError};
use crate::store::StoreError;

/// A request the application refused or could not complete.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `malformed_json`, HTTP 400: the body is not JSON.
    #[error("not valid JSON: {0}")]
    MalformedJson(String),
    /// `not_an_object`, HTTP 400: the body is JSON but not an object.
    #[error("the request must be a JSON object")]
    NotAnObject,
    /// `unknown_command`, HTTP 404: no such verb (NATS only; HTTP routes
    /// are fixed and answer `no_route`).
    #[error("no command {verb:?}; known: {known}")]
    UnknownCommand {
        /// The verb asked for.
        verb: String,
        /// The verbs served, comma-separated.
        known: String,
    },
    /// `unknown_job`, HTTP 404: no such job (NATS `job.*` only).
    #[error("{0}")]
    UnknownJob(String),
    /// `invalid_id`, HTTP 422, field `id`: not a handoff UUID (so never a
    /// subject wildcard).
    #[error("id must be a handoff UUID")]
    InvalidId,
    /// `missing_field`, HTTP 422: a required field is absent or null.
    #[error("{message}")]
    MissingField {
        /// The dotted field name.
        field: String,
        /// What to fix.
        message: String,
    },
    /// `wrong_type`, HTTP 422: a field has the wrong JSON type.
    #[error("{message}")]
    WrongType {
        /// The dotted field name.
        field: String,
        /// What to fix.
        message: String,
    },
    /// `invalid_value`, HTTP 422: a field has the right type and a value
    /// out of bounds (a name, a rating, a bucket, a date).
    #[error("{message}")]
    InvalidValue {
        /// The dotted field name.
        field: String,
        /// What to fix.
        message: String,
    },
    /// `unknown_field`, HTTP 422: a field that may not be sent (e.g.
    /// `fields.dedup_key` in `enrich`).
    #[error("{message}")]
    UnknownField {
        /// The dotted field name.
        field: String,
        /// What to fix.
        message: String,
    },
    /// The packet fields of `enrich` break a report rule. Code: the first
    /// error's own (`wrong_type`, `invalid_token`, `unknown_field`,
    /// `out_of_range`, …); HTTP 422; field `fields.<name>`; the message
    /// names every error.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<FieldError>),
    /// `unknown_template`, HTTP 404, field `template`: `start` names no
    /// team-handoff template.
    #[error("no team-handoff template {name:?}; known: {}", .known.join(", "))]
    UnknownTemplate {
        /// The template asked for.
        name: String,
        /// The team-handoff templates there are.
        known: Vec<String>,
    },
    /// `invalid_report`, HTTP 422: a report failed validation; every field
    /// error in `errors` (HTTP `POST /v1/reports` only: NATS reports are
    /// published, not requested).
    #[error("the report has {} problem(s); see `errors`", .0.len())]
    InvalidReport(Vec<FieldError>),
    /// `invalid_query`, HTTP 400: list filters or the stats window; every
    /// problem in `errors`.
    #[error("{}", match .0.as_slice() { [one] => one.message.clone(), _ => "the query parameters are invalid".into() })]
    InvalidQuery(Vec<FieldError>),
    /// The rules refused. Code: [`DomainError::code`]; HTTP 404 for
    /// `not_found`, 422 for `invalid` and `missing_required_fields`, 409
    /// for the rest (`resolved`, `already_acknowledged`, `already_paged`,
    /// `checklist_incomplete`, `finished`, `wrong_state`).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// `conflict`, HTTP 409: other writers kept winning the append race.
    #[error("gave up after {0} concurrent-write conflicts")]
    Contended(u32),
    /// `idempotency_key_reused`, HTTP 409: the `Idempotency-Key` was first
    /// used for another request body; the message names what it stored
    /// then (template, `BATON_REPORTS` sequence, handoff).
    #[error("this Idempotency-Key was first used for a different report: {first_use}; use a new key for a new report")]
    IdempotencyKeyReused {
        /// What the key's first use stored.
        first_use: String,
    },
    /// `conflict`, HTTP 409: another daemon has this job run.
    #[error("claimed elsewhere")]
    ClaimedElsewhere,
    /// `unauthorized`, HTTP 401: the credential sent (NATS
    /// `Authorization` header) is unknown, revoked or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// `forbidden`, HTTP 403: the actor may not take this action; the
    /// message names what is needed (a role, a team, a person credential).
    /// Nothing is stored.
    #[error("{action} needs {needed}")]
    Forbidden {
        /// The verb refused.
        action: String,
        /// What would be allowed.
        needed: String,
    },
    /// `unknown_rotation`, HTTP 404, field `rotation`: no such rotation.
    #[error("{0}")]
    UnknownRotation(String),
    /// `unknown_override`, HTTP 404, field `id`: no such (uncancelled) override.
    #[error("{0}")]
    UnknownOverride(String),
    /// `unavailable`, HTTP 503: JetStream failed; retry. The cause is
    /// logged, never shown.
    #[error("the event store is unavailable; retry")]
    Unavailable(#[source] StoreError),
}

impl AppError {
    /// The stable code: NATS `error.code`, HTTP problem `code`.
    pub fn code(&self) -> &str {
        match self {
            AppError::MalformedJson(_) => "malformed_json",
            AppError::NotAnObject => "not_an_object",
            AppError::UnknownCommand { .. } => "unknown_command",
            AppError::UnknownJob(_) => "unknown_job",
            AppError::InvalidId => "invalid_id",
            AppError::MissingField { .. } => "missing_field",
            AppError::WrongType { .. } => "wrong_type",
            AppError::InvalidValue { .. } => "invalid_value",
            AppError::UnknownField { .. } => "unknown_field",
            AppError::InvalidFields(errors) => errors.first().map_or("invalid", |e| &e.code),
            AppError::UnknownTemplate { .. } => "unknown_template",
            AppError::InvalidReport(_) => "invalid_report",
            AppError::InvalidQuery(_) => "invalid_query",
            AppError::Domain(d) => d.code(),
            AppError::Contended(_) | AppError::ClaimedElsewhere => "conflict",
            AppError::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden { .. } => "forbidden",
            AppError::Unavailable(_) => "unavailable",
            AppError::UnknownRotation(_) => "unknown_rotation",
            AppError::UnknownOverride(_) => "unknown_override",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AppError::MalformedJson(_) | AppError::NotAnObject | AppError::InvalidQuery(_) => 400,
            AppError::UnknownCommand { .. }
            | AppError::UnknownJob(_)
            | AppError::UnknownTemplate { .. }
            | AppError::UnknownRotation(_)
            | AppError::UnknownOverride(_)
            | AppError::Domain(DomainError::NotFound) => 404,
            AppError::InvalidId
            | AppError::MissingField { .. }
            | AppError::WrongType { .. }
            | AppError::InvalidValue { .. }
            | AppError::UnknownField { .. }
            | AppError::InvalidFields(_)
            | AppError::InvalidReport(_)
            | AppError::Domain(DomainError::Invalid { .. } | DomainError::MissingFields(_)) => 422,
            AppError::Domain(_)
            | AppError::Contended(_)
            | AppError::ClaimedElsewhere
            | AppError::IdempotencyKeyReused { .. } => 409,
            AppError::Unauthorized(_) => 401,
            AppError::Forbidden { .. } => 403,
            AppError::Unavailable(_) => 503,
        }
    }

    /// The field to blame, when one is.
    pub fn field(&self) -> Option<String> {
        match self {
            AppError::MissingField { field, .. }
            | AppError::WrongType { field, .. }
            | AppError::InvalidValue { field, .. }
            | AppError::UnknownField { field, .. }
            | AppError::Domain(DomainError::Invalid { field, .. }) => Some(field.clone()),
            AppError::InvalidId => Some("id".into()),
            AppError::UnknownTemplate { .. } => Some("template".into()),
            AppError::UnknownRotation(_) => Some("rotation".into()),
            AppError::UnknownOverride(_) => Some("id".into()),
            AppError::InvalidFields(errors) => {
                errors.first().map(|e| format!("fields.{}", e.field))
            }
            AppError::Domain(DomainError::MissingFields(fields)) => fields.first().cloned(),
            _ => None,
        }
    }

    /// Every field error, for the variants that list them.
    pub fn errors(&self) -> &[FieldError] {
        match self {
            AppError::InvalidReport(errors) | AppError::InvalidQuery(errors) => errors,
            _ => &[],
        }
    }

    /// Logs the refusal once, where a transport answers it: the cause of an
    /// `unavailable` at error level, every other refusal at info.
    pub fn log(&self, what: &str) {
        match self {
            AppError::Unavailable(cause) => {
                tracing::error!(what, error = %cause, "request failed at the store");
            }
            _ => tracing::info!(what, code = self.code(), "request refused"),
        }
    }

    /// One field refused with `missing_field`.
    pub(crate) fn missing(field: &str, message: impl Into<String>) -> Self {
        AppError::MissingField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// One field refused with `wrong_type`.
    pub(crate) fn wrong_type(field: &str, message: impl Into<String>) -> Self {
        AppError::WrongType {
            field: field.into(),
            message: message.into(),
        }
    }

    /// One field refused with `invalid_value`.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::InvalidValue {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Domain(d) => AppError::Domain(d),
            EngineError::Store(s) => AppError::Unavailable(s),
            EngineError::Contended(n) => AppError::Contended(n),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Unavailable(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses the transports answered before this table existed
    /// (`CommandError::from(EngineError)` and the HTTP handlers).
    #[test]
    fn codes_and_statuses_are_the_ones_clients_already_match_on() {
        let cases: Vec<(AppError, &str, u16)> = vec![
            (AppError::MalformedJson("x".into()), "malformed_json", 400),
            (AppError::NotAnObject, "not_an_object", 400),
            (AppError::InvalidQuery(vec![]), "invalid_query", 400),
            (AppError::InvalidId, "invalid_id", 422),
            (
                AppError::missing("by", "by is required"),
                "missing_field",
                422,
            ),
            (AppError::wrong_type("by", "m"), "wrong_type", 422),
            (AppError::invalid("rating", "m"), "invalid_value", 422),
            (
                AppError::InvalidFields(vec![FieldError::new("team", "invalid_token", "m")]),
                "invalid_token",
                422,
            ),
            (AppError::InvalidReport(vec![]), "invalid_report", 422),
            (DomainError::NotFound.into(), "not_found", 404),
            (DomainError::Resolved.into(), "resolved", 409),
            (DomainError::AlreadyPaged.into(), "already_paged", 409),
            (
                DomainError::MissingFields(vec!["goals".into()]).into(),
                "missing_required_fields",
                422,
            ),
            (
                DomainError::Unchecked(vec!["a".into()]).into(),
                "checklist_incomplete",
                409,
            ),
            (
                DomainError::Invalid {
                    field: "item".into(),
                    message: "m".into(),
                }
                .into(),
                "invalid",
                422,
            ),
            (AppError::Contended(8), "conflict", 409),
            (AppError::Unauthorized("x".into()), "unauthorized", 401),
            (
                AppError::Forbidden {
                    action: "override".into(),
                    needed: "role incident_captain".into(),
                },
                "forbidden",
                403,
            ),
            (
                AppError::UnknownTemplate {
                    name: "x".into(),
                    known: vec![],
                },
                "unknown_template",
                404,
            ),
            (
                StoreError::nats("publish", "down").into(),
                "unavailable",
                503,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!((e.code(), e.status()), (code, status), "{e:?}");
        }
    }

    #[test]
    fn the_field_to_blame_is_named_the_way_replies_always_named_it() {
        let e = AppError::InvalidFields(vec![
            FieldError::new("ttl_seconds", "wrong_type", "must be a number"),
            FieldError::new("team", "invalid_token", "no dots"),
        ]);
        assert_eq!(e.field().as_deref(), Some("fields.ttl_seconds"));
        assert_eq!(
            e.to_string(),
            "ttl_seconds: must be a number; team: no dots"
        );
        assert_eq!(AppError::InvalidId.field().as_deref(), Some("id"));
        let unavailable = AppError::from(StoreError::nats("publish", "secret detail"));
        assert!(!unavailable.to_string().contains("secret"));
    }
}
