//! The one place that dispatches by kind: a handoff is either an
//! [`Incident`] or a [`TeamHandoff`], two aggregates that share the events
//! stream, the envelope, the id space and the SLA timer, and nothing else.
//!
//! `opened` starts an incident and `initiated` a team handoff; every later
//! event applies to the aggregate its handoff already is. Code that only
//! understands one kind asks for it with [`Handoff::as_incident`] or
//! [`Handoff::as_team`] and leaves the other alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{Event, EventData, NewEvent};
use super::incident::{self, Incident, IncidentCommand};
use super::teamwork::{self, TeamCommand, TeamHandoff};
use super::{DomainError, Policy};

/// Current state of one handoff of either kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handoff {
    Incident(Incident),
    Team(TeamHandoff),
}

/// The two kinds, for filters and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Team,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Team => "team",
        }
    }
}

impl Handoff {
    pub fn id(&self) -> Uuid {
        match self {
            Handoff::Incident(h) => h.id,
            Handoff::Team(t) => t.id,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Handoff::Incident(_) => Kind::Incident,
            Handoff::Team(_) => Kind::Team,
        }
    }

    /// When it was opened (incident) or first initiated (team handoff).
    pub fn opened_at(&self) -> DateTime<Utc> {
        match self {
            Handoff::Incident(h) => h.opened_at,
            Handoff::Team(t) => t.opened_at,
        }
    }

    /// The template name it was opened under.
    pub fn template(&self) -> &str {
        match self {
            Handoff::Incident(h) => &h.template,
            Handoff::Team(t) => &t.template.name,
        }
    }

    /// Events applied.
    pub fn events(&self) -> u32 {
        match self {
            Handoff::Incident(h) => h.events,
            Handoff::Team(t) => t.events,
        }
    }

    /// When it closed (resolved, completed or cancelled); `None` while open.
    /// A team handoff is finished by exactly one of the two.
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Handoff::Incident(h) => h.resolved.as_ref().map(|s| s.at),
            Handoff::Team(t) if t.status.is_finished() => {
                t.completed.as_ref().or(t.cancelled.as_ref()).map(|s| s.at)
            }
            Handoff::Team(_) => None,
        }
    }

    /// Resolved (incident), completed or cancelled (team handoff).
    pub fn is_closed(&self) -> bool {
        match self {
            Handoff::Incident(h) => h.resolved.is_some(),
            Handoff::Team(t) => t.status.is_finished(),
        }
    }

    /// The status in the kind's own words (`escalated`, `accepted`, …).
    pub fn status_str(&self) -> &'static str {
        match self {
            Handoff::Incident(h) => h.status().as_str(),
            Handoff::Team(t) => t.status.as_str(),
        }
    }

    /// The earliest moment at which a `Tick` could produce events: the SLA
    /// timer arms exactly this.
    pub fn next_deadline(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        match self {
            Handoff::Incident(h) => h.next_deadline(policy),
            Handoff::Team(t) => t.next_deadline(),
        }
    }

    pub fn as_incident(&self) -> Option<&Incident> {
        match self {
            Handoff::Incident(h) => Some(h),
            Handoff::Team(_) => None,
        }
    }

    pub fn as_team(&self) -> Option<&TeamHandoff> {
        match self {
            Handoff::Team(t) => Some(t),
            Handoff::Incident(_) => None,
        }
    }
}

/// What someone (or the timer) asks of a handoff.
// A command lives for one decision and is never stored in bulk: boxing the
// report inside the incident variant would only add an allocation per report.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// For an incident (opening one included).
    Incident(IncidentCommand),
    /// For a team handoff (starting one included).
    Team(TeamCommand),
    /// The SLA timer's wake-up: fire whatever is due at `now`, whichever
    /// kind the handoff is.
    Tick,
    /// Record what the delivery worker did with a page: a delivery event
    /// (`delivered`, `delivery_failed`, `undelivered`; anything else is
    /// refused as invalid). Taken on either kind, resolved or not; it
    /// changes no state the rules read, so no deadline moves.
    Delivery(EventData),
}

/// The rules, dispatched to the handoff's aggregate. `state` is `None` for a
/// handoff that has no events yet.
pub fn decide(
    state: Option<&Handoff>,
    cmd: &Command,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    match (state, cmd) {
        (_, Command::Delivery(data)) if !data.is_delivery() => Err(invalid(
            "type",
            "only delivered, delivery_failed and undelivered are recorded this way",
        )),
        (None, Command::Delivery(_)) => Err(DomainError::NotFound),
        (Some(_), Command::Delivery(data)) => Ok(vec![NewEvent {
            actor: "baton".into(),
            data: data.clone(),
        }]),
        (None, Command::Tick) => Err(DomainError::NotFound),
        (None, Command::Incident(c)) => incident::decide(None, c, now, policy),
        (None, Command::Team(c)) => teamwork::decide(None, c, now, policy),
        (Some(Handoff::Incident(h)), Command::Tick) => Ok(incident::tick(h, now, policy)),
        (Some(Handoff::Team(t)), Command::Tick) => Ok(teamwork::tick(t, now, policy)),
        (Some(Handoff::Incident(h)), Command::Incident(c)) => {
            incident::decide(Some(h), c, now, policy)
        }
        (Some(Handoff::Team(t)), Command::Team(c)) => teamwork::decide(Some(t), c, now, policy),
        (Some(_), Command::Team(TeamCommand::Initiate { .. }))
        | (
            Some(_),
            Command::Incident(IncidentCommand::Open { .. } | IncidentCommand::Recur { .. }),
        ) => Err(invalid(
            "dedup_key",
            "this dedup key belongs to another kind of handoff",
        )),
        (Some(Handoff::Incident(_)), Command::Team(_)) => Err(invalid(
            "id",
            "this is an incident; use ack/override/enrich/resolve",
        )),
        (Some(Handoff::Team(_)), Command::Incident(_)) => Err(invalid(
            "id",
            "this is a team handoff; use accept/check/complete/return/resubmit/cancel/rate",
        )),
    }
}

fn invalid(field: &str, message: &str) -> DomainError {
    DomainError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Applies one event to whichever aggregate it belongs to. No rules here:
/// whatever was stored happened. The first event decides the kind.
pub fn apply(state: &mut Option<Handoff>, event: &Event) {
    match state {
        None => match &event.data {
            EventData::Opened { .. } => {
                let mut h = None;
                incident::apply(&mut h, event);
                *state = h.map(Handoff::Incident);
            }
            EventData::Initiated { .. } => {
                let mut t = None;
                teamwork::apply(&mut t, event);
                *state = t.map(Handoff::Team);
            }
            // Nothing opened it: a misfiled event is not a handoff.
            _ => {}
        },
        Some(Handoff::Incident(h)) => incident::apply_to(h, event),
        Some(Handoff::Team(t)) => teamwork::apply_to(t, event),
    }
}
