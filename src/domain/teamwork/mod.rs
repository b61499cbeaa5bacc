//! Aggregate 2: the team handoff — work passed between teams under a
//! template with entry and exit criteria, the `initiated → accepted →
//! completed` lifecycle (plus `returned` and `cancelled`), accept/complete
//! SLAs, and feedback.
//!
//! It shares the stream, the event envelope, the SLA timer and the page path
//! with incidents, and nothing else: it has no severity, no HCS gate and no
//! escalation ladder. The template a handoff was started under is copied
//! into its `initiated` event, so editing a template never rewrites history:
//! every rule below reads the recorded copy.

mod apply;
mod decide;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_subject_token, DomainError, Hcs, Severity, Stamp};

/// Whether a template describes an agent incident or work between teams.
/// Stored (`kind` of an `initiated` event's template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// Reports on `<prefix>.report.<name>`, scored by HCS, gated per severity.
    Incident,
    /// Started by a person; accepted, checked off and completed by the receiver.
    #[default]
    Work,
}

/// Accept and complete SLAs. Stored as part of [`Template`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSla {
    /// The receiving team must accept within this ("4h").
    #[serde(with = "humantime_serde")]
    pub accept: Duration,
    /// The handoff must be completed within this of being initiated ("5d").
    #[serde(with = "humantime_serde")]
    pub complete: Duration,
}

/// Routes paged when an SLA is missed. Stored as part of [`Template`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateEscalation {
    /// Routes paged when nobody accepted in time.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Routes paged when it was not completed in time.
    #[serde(default)]
    pub complete: Vec<String>,
}

/// A handoff template: what the team-handoff rules read, and a **stored
/// record**. Its serde shape is the `template` of every `initiated` event
/// (and of team handoffs in snapshots), so it is written once and read
/// forever: field names, durations as humantime strings (`"5days"`) and the
/// defaults for fields an older event lacks never change; a change is a new
/// `EVENT_VERSION` with an upcaster. The config file's shape is
/// `config::TemplateFile`, converted into this at start-up, so renaming a
/// config key never changes these bytes.
///
/// Unlike the config DTO it does not deny unknown fields: a stored event
/// must stay readable by every build, and a key a newer Baton adds without
/// changing a meaning (a change of meaning bumps the version, which older
/// readers refuse) must not make an older one take the commit for corrupt
/// mid-upgrade. The commit decoder ignores unknown envelope keys for the
/// same reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Transition name; also the `<template>` subject token.
    pub name: String,
    /// Bump on every change; handoffs keep the version they were opened under.
    pub version: u32,
    /// `work` (default) or `incident`.
    #[serde(default)]
    pub kind: TemplateKind,
    /// What this handoff is for.
    #[serde(default)]
    pub description: String,
    /// Sending team.
    pub from_team: String,
    /// Receiving team, notified on `<prefix>.page.team.<to_team>`.
    pub to_team: String,
    /// Entry criteria: a handoff cannot start without every one of these.
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// Further fields that add to the completeness score when present.
    #[serde(default)]
    pub optional_fields: Vec<String>,
    /// Exit criteria: `complete` is refused while any is unchecked.
    #[serde(default)]
    pub checklist: Vec<String>,
    /// Accept / complete SLAs (work templates).
    #[serde(default)]
    pub sla: Option<TemplateSla>,
    /// Routes paged when an SLA is missed.
    #[serde(default)]
    pub escalation: TemplateEscalation,
    /// Who owns each step and who decides (role → who).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Completeness rubric, field → points (HCS-style score 0–100). Default:
    /// every required and optional field weighs the same.
    #[serde(default)]
    pub rubric: BTreeMap<String, u32>,
    /// Priority label used for metrics and pages.
    #[serde(default = "p3")]
    pub priority: Severity,
}

fn p3() -> Severity {
    Severity::P3
}

impl Template {
    /// Problems, each naming the template and key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        if !is_subject_token(n) {
            p.push(format!("template {n:?}: name must be a subject token"));
        }
        if self.version == 0 {
            p.push(format!("template {n}: version starts at 1"));
        }
        for (k, t) in [("from_team", &self.from_team), ("to_team", &self.to_team)] {
            if !is_subject_token(t) {
                p.push(format!("template {n}: {k} {t:?} must be a subject token"));
            }
        }
        if self.kind == TemplateKind::Work {
            match &self.sla {
                None => p.push(format!(
                    "template {n}: work templates need [sla] accept and complete"
                )),
                Some(s) if s.accept.is_zero() || s.complete.is_zero() => {
                    p.push(format!("template {n}: sla durations must be > 0"))
                }
                Some(s)
                    if s.accept > crate::domain::MAX_DURATION
                        || s.complete > crate::domain::MAX_DURATION =>
                {
                    p.push(format!(
                        "template {n}: sla durations must be at most 10 years"
                    ))
                }
                _ => {}
            }
            if self.required_fields.is_empty() {
                p.push(format!(
                    "template {n}: required_fields (entry criteria) must not be empty"
                ));
            }
        }
        for r in self
            .escalation
            .accept
            .iter()
            .chain(&self.escalation.complete)
        {
            if !is_subject_token(r) {
                p.push(format!(
                    "template {n}: escalation route {r:?} must be a subject token"
                ));
            }
        }
        let known: Vec<&String> = self
            .required_fields
            .iter()
            .chain(&self.optional_fields)
            .collect();
        for f in self.rubric.keys() {
            if !known.contains(&f) {
                p.push(format!(
                    "template {n}: rubric field {f:?} is neither required nor optional"
                ));
            }
        }
        if !self.rubric.is_empty() && self.rubric.values().sum::<u32>() == 0 {
            p.push(format!("template {n}: rubric points add up to 0"));
        }
        p
    }

    fn weights(&self) -> Vec<(String, u32)> {
        if self.rubric.is_empty() {
            self.required_fields
                .iter()
                .chain(&self.optional_fields)
                .map(|f| (f.clone(), 1))
                .collect()
        } else {
            self.rubric.iter().map(|(k, v)| (k.clone(), *v)).collect()
        }
    }
}

/// A field value that says something: not null, not empty, not a
/// placeholder for an answer still to come ("tbd"). Unlike in incident
/// packets, "none" and "n/a" are answers here ("special requirements: none").
fn present(v: Option<&Value>) -> bool {
    const PENDING: [&str; 6] = ["", "tbd", "todo", "unknown", "?", "..."];
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !PENDING.contains(&s.trim().to_ascii_lowercase().as_str()),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Every required field present, or an error naming each missing one.
pub(crate) fn require_entry_criteria(
    t: &Template,
    fields: &BTreeMap<String, Value>,
) -> Result<(), DomainError> {
    let missing: Vec<String> = t
        .required_fields
        .iter()
        .filter(|f| !present(fields.get(*f)))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DomainError::MissingFields(missing))
    }
}

/// The template's completeness score for a set of fields (HCS-style, 0–100).
pub fn completeness(t: &Template, fields: &BTreeMap<String, Value>) -> Hcs {
    let weights = t.weights();
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut got = 0;
    let mut missing = Vec::new();
    for (f, w) in &weights {
        if present(fields.get(f)) {
            got += w;
        } else {
            missing.push(f.clone());
        }
    }
    let score = if total == 0 {
        100.0
    } else {
        (f64::from(got) * 10000.0 / f64::from(total)).round() / 100.0
    };
    Hcs {
        score,
        missing,
        ..Default::default()
    }
}

/// Where a team handoff stands in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamStatus {
    Initiated,
    Accepted,
    Returned,
    Completed,
    Cancelled,
}

/// A feedback rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub by: String,
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Current state of one team handoff, derived from its events only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamHandoff {
    pub id: uuid::Uuid,
    /// When it was first initiated (the complete SLA runs from here).
    pub opened_at: DateTime<Utc>,
    /// The template as it was when the handoff started.
    pub template: Template,
    pub status: TeamStatus,
    pub initiated_by: String,
    pub fields: BTreeMap<String, Value>,
    /// When the current submission was sent (start or resubmission).
    pub submitted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Stamp>,
    /// Checklist index → who checked it, when.
    #[serde(default)]
    pub checked: BTreeMap<usize, Stamp>,
    pub returns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    pub accept_missed: bool,
    pub complete_missed: bool,
    /// The template's completeness score of the current submission.
    pub completeness: Hcs,
    /// Events applied.
    pub events: u32,
}

impl TeamHandoff {
    fn sla(&self) -> Option<&TemplateSla> {
        self.template.sla.as_ref()
    }

    /// When nobody accepting becomes an SLA miss.
    pub fn accept_due(&self) -> Option<DateTime<Utc>> {
        crate::domain::later(self.submitted_at, self.sla()?.accept)
    }

    /// When not being completed becomes an SLA miss.
    pub fn complete_due(&self) -> Option<DateTime<Utc>> {
        crate::domain::later(self.opened_at, self.sla()?.complete)
    }

    /// Checklist items not yet checked.
    pub fn unchecked(&self) -> Vec<String> {
        self.template
            .checklist
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.checked.contains_key(i))
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The earliest moment a `Tick` could produce events.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self.status {
            TeamStatus::Initiated if !self.accept_missed => self.accept_due(),
            TeamStatus::Initiated | TeamStatus::Accepted if !self.complete_missed => {
                self.complete_due()
            }
            _ => None,
        }
    }
}

impl TeamStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TeamStatus; 5] = [
        TeamStatus::Initiated,
        TeamStatus::Accepted,
        TeamStatus::Returned,
        TeamStatus::Completed,
        TeamStatus::Cancelled,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            TeamStatus::Initiated => "initiated",
            TeamStatus::Accepted => "accepted",
            TeamStatus::Returned => "returned",
            TeamStatus::Completed => "completed",
            TeamStatus::Cancelled => "cancelled",
        }
    }

    /// Completed or cancelled: nothing more happens but a rating.
    pub fn is_finished(self) -> bool {
        matches!(self, TeamStatus::Completed | TeamStatus::Cancelled)
    }
}

/// What a person asks of a team handoff.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamCommand {
    Initiate {
        template: Box<Template>,
        fields: BTreeMap<String, Value>,
        by: String,
    },
    Accept {
        by: String,
    },
    /// `item`: the 1-based index or the exact text of a checklist item.
    Check {
        by: String,
        item: String,
    },
    Complete {
        by: String,
    },
    Return {
        by: String,
        missing: Vec<String>,
        reason: String,
    },
    Resubmit {
        by: String,
        fields: BTreeMap<String, Value>,
    },
    Cancel {
        by: String,
        reason: String,
    },
    Rate {
        by: String,
        rating: u8,
        comment: Option<String>,
    },
}

pub use apply::{apply, apply_to};

pub use decide::{decide, tick, ROUTE_TEAM};
