//! The pure core: packet, HCS, policy, events, and the two aggregates that
//! share one stream: [`incident`] and [`teamwork`] (team handoffs), joined
//! only in [`Handoff`].
//!
//! Nothing in here does I/O or reads a clock. `decide(state, command, now,
//! policy) -> events` holds every business rule; `apply(state, event)` only
//! updates state. Everything at the edges (ingest, store, SLA timer, pages,
//! HTTP) calls into this module and nothing here calls out.

mod event;
pub(crate) use event::rfc3339;
mod handoff;
mod hcs;
mod ids;
pub mod incident;
pub mod oncall;
mod packet;
mod policy;
pub mod teamwork;
#[doc(hidden)]
pub mod testkit;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use event::{
    skim, Commit, Event, EventData, NewEvent, Notice, PageReason, RouteTarget, WorkNotice,
    EVENT_VERSION,
};
pub use handoff::{apply, decide, Command, Handoff, Kind};
pub use hcs::{score, Hcs};
pub use ids::{
    dedup_key_for, handoff_id_for, keyed_handoff_id, keyless_handoff_id, occurrence_id,
    HANDOFF_NAMESPACE,
};
pub use incident::{Incident, IncidentCommand, Seen, Status, MAX_STEPS_PER_TICK};
pub(crate) use packet::truncate;
pub use packet::{
    is_placeholder, is_subject_token, parse_object, parse_report, BlastRadius, Owner, Packet,
    ParseLimits, ParsedReport, Report,
};
pub use policy::{
    default_severities, BelowMin, Level, OwnershipRule, Policy, Route, RunbookRule, Severity,
    SeverityPolicy, Step, ROUTE_BACKUP, ROUTE_OWNER, ROUTE_QUEUE,
};
pub use teamwork::{TeamCommand, TeamHandoff, TeamStatus};

/// `t + d`, or `None` past chrono's range. Every deadline goes through this:
/// `apply` runs on whatever the log holds, forever, so it must never panic on
/// a duration, however large.
pub fn later(t: DateTime<Utc>, d: std::time::Duration) -> Option<DateTime<Utc>> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
}

/// The longest duration Baton accepts anywhere (config, templates, packet
/// TTLs): ten years. Anything longer is a typo, not a deadline.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// A person and a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// One problem with one field of a report or command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted field name; empty for the payload as a whole.
    pub field: String,
    /// Stable machine-readable code (`missing_field`, `wrong_type`, …).
    pub code: String,
    /// What a person should fix.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// A command the rules refuse. Each variant's [`DomainError::code`] is the
/// stable `error.code` in NATS replies and the problem `type` over HTTP.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// No handoff with that id (HTTP 404).
    #[error("no handoff with that id")]
    NotFound,
    /// The handoff is resolved; only reads are allowed (HTTP 409).
    #[error("the handoff is resolved")]
    Resolved,
    /// Someone acknowledged already (HTTP 409).
    #[error("already acknowledged by {by} at {at}")]
    AlreadyAcknowledged { by: String, at: DateTime<Utc> },
    /// Override asked for a handoff that has paged already (HTTP 409).
    #[error("already paged; override only releases a held page")]
    AlreadyPaged,
    /// The command's content is wrong (HTTP 422).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A team handoff cannot start without these entry criteria (HTTP 422).
    #[error("missing required fields: {}", .0.join(", "))]
    MissingFields(Vec<String>),
    /// `complete` while exit criteria are unchecked (HTTP 409).
    #[error("unchecked checklist items: {}", .0.join("; "))]
    Unchecked(Vec<String>),
    /// A team handoff is completed or cancelled; only a rating is still
    /// taken (HTTP 409).
    #[error("the handoff is {0}")]
    Finished(&'static str),
    /// The lifecycle does not allow this now (HTTP 409).
    #[error("{0}")]
    WrongState(String),
}

impl DomainError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::NotFound => "not_found",
            DomainError::Resolved => "resolved",
            DomainError::AlreadyAcknowledged { .. } => "already_acknowledged",
            DomainError::AlreadyPaged => "already_paged",
            DomainError::Invalid { .. } => "invalid",
            DomainError::MissingFields(_) => "missing_required_fields",
            DomainError::Unchecked(_) => "checklist_incomplete",
            DomainError::WrongState(_) => "wrong_state",
            DomainError::Finished(_) => "finished",
        }
    }
}
