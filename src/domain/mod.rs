//! The pure core: packet, HCS, policy, events, and the handoff aggregate.
//!
//! Nothing in here does I/O or reads a clock. `decide(state, command, now,
//! policy) -> events` holds every business rule; `apply(state, event)` only
//! updates state. Everything at the edges (ingest, store, SLA timer, pages,
//! HTTP) calls into this module and nothing here calls out.

mod event;
pub(crate) use event::rfc3339;
mod handoff;
mod hcs;
mod packet;
mod policy;
#[cfg(test)]
mod tests;
pub mod work;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use event::{
    Commit, Event, EventData, NewEvent, Notice, PageReason, RouteTarget, WorkNotice, EVENT_VERSION,
};
pub use handoff::{
    apply, decide, handoff_id_for, Command, Handoff, Stamp, Status, HANDOFF_NAMESPACE,
    MAX_STEPS_PER_TICK,
};
pub use hcs::{score, Hcs};
pub(crate) use packet::truncate;
pub use packet::{
    is_placeholder, is_subject_token, parse_object, parse_report, BlastRadius, Owner, Packet,
    ParseLimits, ParsedReport, Report,
};
pub use policy::{
    default_severities, BelowMin, Level, OwnershipRule, Policy, RouteConfig, RunbookRule, Severity,
    SeverityPolicy, Step, ROUTE_BACKUP, ROUTE_OWNER, ROUTE_QUEUE,
};

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
        }
    }
}

/// Fixtures shared by the domain's unit tests, the integration tests and the
/// benchmarks.
#[doc(hidden)]
pub mod testkit {
    use super::*;

    /// A packet with every field set: HCS 100 with a team.
    pub fn full_packet() -> Packet {
        Packet {
            run_id: Some("run-42".into()),
            workflow_id: Some("billing-sync".into()),
            objective: Some("Sync invoices to the ledger".into()),
            failure_class: Some("dependency_timeout".into()),
            last_successful_step: Some("fetch_invoices".into()),
            failing_step: Some("post_ledger".into()),
            error_summary: Some("ledger API timed out after 30s (3 retries)".into()),
            blast_radius: Some(BlastRadius {
                users: Some(1200),
                jobs: Some(3),
            }),
            recommended_action: Some("Pause the sync and fail over to the standby ledger".into()),
            rollback_command: Some("billing-sync rollback --to last-good".into()),
            owner: Some(Owner {
                primary: Some("alice".into()),
                backup: Some("bob".into()),
            }),
            ttl_seconds: Some(3600),
        }
    }

    /// A complete report of the given severity.
    pub fn report(severity: Severity) -> Report {
        Report {
            severity,
            packet: full_packet(),
            dedup_key: None,
            team: Some("payments".into()),
            drill: false,
        }
    }

    /// The default policy with one ownership and one runbook rule.
    pub fn policy() -> Policy {
        Policy {
            severities: default_severities(),
            ownership: vec![OwnershipRule {
                workflow: "billing-*".into(),
                team: "payments".into(),
                primary: "alice".into(),
                backup: Some("bob".into()),
            }],
            runbook: vec![RunbookRule {
                workflow: "billing-*".into(),
                rollback_command: "billing-sync rollback --to last-good".into(),
                tested: true,
            }],
            routes: Default::default(),
            default_team: "unassigned".into(),
            drill_route: Some("drill".into()),
            templates: crate::config::builtin_templates(),
        }
    }
}
