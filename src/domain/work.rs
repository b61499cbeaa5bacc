//! Team handoffs: templates with entry and exit criteria, the
//! `initiated → accepted → completed` lifecycle (plus `returned` and
//! `cancelled`), accept/complete SLAs, and feedback.
//!
//! Work handoffs share the incident engine: the same stream, the same
//! `decide`/`apply`, the same SLA timer and page path. The template a handoff
//! was opened under is copied into its `initiated` event, so editing a
//! template never rewrites history: every rule below reads the recorded copy.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{EventData, NewEvent, Notice, RouteTarget};
use super::{is_subject_token, DomainError, Handoff, Hcs, Packet, Policy, Severity, Stamp};

/// Whether a template describes an agent incident or work between teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// Reports on `<prefix>.report.<name>`, scored by HCS, gated per severity.
    Incident,
    /// Started by a person; accepted, checked off and completed by the receiver.
    #[default]
    Work,
}

/// Accept and complete SLAs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSla {
    /// The receiving team must accept within this ("4h").
    #[serde(with = "humantime_serde")]
    pub accept: Duration,
    /// The handoff must be completed within this of being initiated ("5d").
    #[serde(with = "humantime_serde")]
    pub complete: Duration,
}

/// Routes paged when an SLA is missed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateEscalation {
    /// Routes paged when nobody accepted in time.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Routes paged when it was not completed in time.
    #[serde(default)]
    pub complete: Vec<String>,
}

/// A handoff template (`config/templates/<name>.toml`). The same struct is
/// recorded in each `initiated` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
                Some(s) if s.accept > super::MAX_DURATION || s.complete > super::MAX_DURATION => p
                    .push(format!(
                        "template {n}: sla durations must be at most 10 years"
                    )),
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
fn require_entry_criteria(
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

/// Where a work handoff stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkStatus {
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

/// The work part of a handoff's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkState {
    /// The template as it was when the handoff started.
    pub template: Template,
    pub status: WorkStatus,
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
}

impl WorkState {
    fn sla(&self) -> Option<&TemplateSla> {
        self.template.sla.as_ref()
    }

    /// When nobody accepting becomes an SLA miss.
    pub fn accept_due(&self) -> Option<DateTime<Utc>> {
        super::later(self.submitted_at, self.sla()?.accept)
    }

    /// When not being completed becomes an SLA miss.
    pub fn complete_due(&self, opened_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        super::later(opened_at, self.sla()?.complete)
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
    pub fn next_deadline(&self, opened_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.status {
            WorkStatus::Initiated if !self.accept_missed => self.accept_due(),
            WorkStatus::Initiated | WorkStatus::Accepted if !self.complete_missed => {
                self.complete_due(opened_at)
            }
            _ => None,
        }
    }
}

/// Commands on work handoffs.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkCommand {
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

fn ev(actor: &str, data: EventData) -> NewEvent {
    NewEvent {
        actor: actor.to_string(),
        data,
    }
}

fn invalid(field: &str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The notice a work event sends.
fn notice(
    t: &Template,
    routes: &[String],
    team: &str,
    fields: &BTreeMap<String, Value>,
    score: &Hcs,
    respond_by: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Notice {
    Notice {
        routes: routes
            .iter()
            .map(|r| RouteTarget {
                route: r.clone(),
                target: t
                    .roles
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| policy.target(r, team, &Packet::default())),
            })
            .collect(),
        team: team.to_string(),
        severity: t.priority,
        template: t.name.clone(),
        hcs: score.clone(),
        packet: Packet::default(),
        incomplete: !score.missing.is_empty(),
        respond_by,
        work: Some(super::event::WorkNotice {
            template_version: t.version,
            from_team: t.from_team.clone(),
            to_team: t.to_team.clone(),
            fields: fields.clone(),
            checklist: t.checklist.clone(),
        }),
    }
}

/// The route that reaches a whole team.
pub const ROUTE_TEAM: &str = "team";

/// The rules for work handoffs.
pub fn decide(
    state: Option<&Handoff>,
    cmd: &WorkCommand,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    let w = match (state, cmd) {
        (
            None,
            WorkCommand::Initiate {
                template,
                fields,
                by,
            },
        ) => {
            require_entry_criteria(template, fields)?;
            let score = completeness(template, fields);
            let respond_by = template
                .sla
                .as_ref()
                .and_then(|s| super::later(now, s.accept));
            let routes = [ROUTE_TEAM.to_string()];
            return Ok(vec![ev(
                by,
                EventData::Initiated {
                    template: template.clone(),
                    by: by.clone(),
                    fields: fields.clone(),
                    completeness: score.clone(),
                    notice: notice(
                        template,
                        &routes,
                        &template.to_team,
                        fields,
                        &score,
                        respond_by,
                        policy,
                    ),
                },
            )]);
        }
        // A retried start (same dedup key) joins the handoff it opened.
        (Some(h), WorkCommand::Initiate { template, .. })
            if h.work
                .as_ref()
                .is_some_and(|w| w.template.name == template.name) =>
        {
            return Ok(vec![])
        }
        (Some(_), WorkCommand::Initiate { .. }) => {
            return Err(invalid(
                "dedup_key",
                "this dedup key belongs to another handoff",
            ))
        }
        (None, _) => return Err(DomainError::NotFound),
        (Some(h), _) => h
            .work
            .as_deref()
            .ok_or_else(|| invalid("id", "this is an incident handoff; use ack/enrich/resolve"))?,
    };
    let t = &w.template;
    let terminal = matches!(w.status, WorkStatus::Completed | WorkStatus::Cancelled);
    match cmd {
        WorkCommand::Initiate { .. } => unreachable!("handled above"),
        WorkCommand::Rate {
            by,
            rating,
            comment,
        } => {
            if w.status != WorkStatus::Completed {
                return Err(DomainError::WrongState(
                    "only a completed handoff can be rated".into(),
                ));
            }
            if w.rating.is_some() {
                return Err(DomainError::WrongState("already rated".into()));
            }
            if !(1..=5).contains(rating) {
                return Err(invalid("rating", "rating is 1 to 5"));
            }
            Ok(vec![ev(
                by,
                EventData::Rated {
                    by: by.clone(),
                    rating: *rating,
                    comment: comment.clone(),
                },
            )])
        }
        _ if terminal => Err(DomainError::Resolved),
        WorkCommand::Accept { by } => {
            if w.status != WorkStatus::Initiated {
                return Err(DomainError::WrongState(
                    format!("cannot accept a handoff that is {:?}", w.status).to_lowercase(),
                ));
            }
            let opened = state.map(|h| h.opened_at).unwrap_or(now);
            Ok(vec![ev(
                by,
                EventData::Accepted {
                    by: by.clone(),
                    accept_ms: (now - opened).num_milliseconds().max(0),
                    breached: w.accept_due().is_some_and(|d| now > d),
                },
            )])
        }
        WorkCommand::Check { by, item } => {
            if w.status != WorkStatus::Accepted {
                return Err(DomainError::WrongState(
                    "accept the handoff before checking items".into(),
                ));
            }
            let index = match item.parse::<usize>() {
                Ok(n) if (1..=t.checklist.len()).contains(&n) => n - 1,
                _ => t
                    .checklist
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(item.trim()))
                    .ok_or_else(|| {
                        invalid(
                            "item",
                            format!(
                                "no checklist item {item:?}; items: {}",
                                t.checklist.join(" | ")
                            ),
                        )
                    })?,
            };
            if let Some(s) = w.checked.get(&index) {
                return Err(DomainError::WrongState(format!(
                    "already checked by {} at {}",
                    s.by, s.at
                )));
            }
            Ok(vec![ev(
                by,
                EventData::Checked {
                    index: index as u32,
                    item: t.checklist[index].clone(),
                    by: by.clone(),
                },
            )])
        }
        WorkCommand::Complete { by } => {
            if w.status != WorkStatus::Accepted {
                return Err(DomainError::WrongState(
                    "only an accepted handoff can be completed".into(),
                ));
            }
            let unchecked = w.unchecked();
            if !unchecked.is_empty() {
                return Err(DomainError::Unchecked(unchecked));
            }
            let opened = state.map(|h| h.opened_at).unwrap_or(now);
            Ok(vec![ev(
                by,
                EventData::Completed {
                    by: by.clone(),
                    complete_ms: (now - opened).num_milliseconds().max(0),
                    breached: w.complete_due(opened).is_some_and(|d| now > d),
                },
            )])
        }
        WorkCommand::Return {
            by,
            missing,
            reason,
        } => {
            if !matches!(w.status, WorkStatus::Initiated | WorkStatus::Accepted) {
                return Err(DomainError::WrongState(
                    "only an open handoff can be returned".into(),
                ));
            }
            if missing.is_empty() && reason.trim().is_empty() {
                return Err(invalid(
                    "missing",
                    "say what is missing (fields) or why (reason)",
                ));
            }
            let score = completeness(t, &w.fields);
            let routes = [ROUTE_TEAM.to_string()];
            Ok(vec![ev(
                by,
                EventData::Returned {
                    by: by.clone(),
                    missing: missing.clone(),
                    reason: reason.clone(),
                    notice: notice(t, &routes, &t.from_team, &w.fields, &score, None, policy),
                },
            )])
        }
        WorkCommand::Resubmit { by, fields } => {
            if w.status != WorkStatus::Returned {
                return Err(DomainError::WrongState(
                    "only a returned handoff can be resubmitted".into(),
                ));
            }
            let mut merged = w.fields.clone();
            merged.extend(fields.clone());
            require_entry_criteria(t, &merged)?;
            let score = completeness(t, &merged);
            let respond_by = t.sla.as_ref().and_then(|s| super::later(now, s.accept));
            let routes = [ROUTE_TEAM.to_string()];
            Ok(vec![ev(
                by,
                EventData::Resubmitted {
                    by: by.clone(),
                    fields: fields.clone(),
                    completeness: score.clone(),
                    notice: notice(t, &routes, &t.to_team, &merged, &score, respond_by, policy),
                },
            )])
        }
        WorkCommand::Cancel { by, reason } => Ok(vec![ev(
            by,
            EventData::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
            },
        )]),
    }
}

/// The timer's wake-up for a work handoff: a missed accept or complete SLA
/// pages the template's escalation routes, once per stage.
pub fn tick(h: &Handoff, w: &WorkState, now: DateTime<Utc>, policy: &Policy) -> Vec<NewEvent> {
    let t = &w.template;
    let mut out = Vec::new();
    let score = completeness(t, &w.fields);
    if w.status == WorkStatus::Initiated && !w.accept_missed {
        if let Some(due) = w.accept_due().filter(|d| *d <= now) {
            out.push(ev(
                "baton",
                EventData::SlaMissed {
                    stage: "accept".into(),
                    deadline: due,
                    notice: notice(
                        t,
                        &t.escalation.accept,
                        &t.to_team,
                        &w.fields,
                        &score,
                        w.complete_due(h.opened_at),
                        policy,
                    ),
                },
            ));
        }
    }
    if matches!(w.status, WorkStatus::Initiated | WorkStatus::Accepted) && !w.complete_missed {
        if let Some(due) = w.complete_due(h.opened_at).filter(|d| *d <= now) {
            out.push(ev(
                "baton",
                EventData::SlaMissed {
                    stage: "complete".into(),
                    deadline: due,
                    notice: notice(
                        t,
                        &t.escalation.complete,
                        &t.to_team,
                        &w.fields,
                        &score,
                        None,
                        policy,
                    ),
                },
            ));
        }
    }
    out
}

/// Applies a work event to the handoff's work state.
pub fn apply(h: &mut Handoff, e: &super::Event) {
    let at = e.occurred_at;
    let Some(w) = h.work.as_deref_mut() else {
        return;
    };
    match &e.data {
        EventData::Accepted { by, .. } => {
            w.status = WorkStatus::Accepted;
            w.accepted = Some(Stamp { by: by.clone(), at });
        }
        EventData::Checked { index, by, .. } => {
            w.checked
                .insert(*index as usize, Stamp { by: by.clone(), at });
        }
        EventData::Completed { by, .. } => {
            w.status = WorkStatus::Completed;
            w.completed = Some(Stamp { by: by.clone(), at });
            h.resolved = Some(Stamp { by: by.clone(), at });
        }
        EventData::Cancelled { by, .. } => {
            w.status = WorkStatus::Cancelled;
            w.cancelled = Some(Stamp { by: by.clone(), at });
            h.resolved = Some(Stamp { by: by.clone(), at });
        }
        EventData::Returned { .. } => {
            w.status = WorkStatus::Returned;
            w.returns += 1;
            w.accepted = None;
            w.checked.clear();
        }
        EventData::Resubmitted {
            fields,
            completeness,
            ..
        } => {
            w.status = WorkStatus::Initiated;
            w.fields.extend(fields.clone());
            w.submitted_at = at;
            w.accept_missed = false;
            h.hcs = completeness.clone();
        }
        EventData::Rated {
            by,
            rating,
            comment,
        } => {
            w.rating = Some(Rating {
                by: by.clone(),
                rating: *rating,
                comment: comment.clone(),
            })
        }
        EventData::SlaMissed { stage, .. } => {
            if stage == "accept" {
                w.accept_missed = true;
            } else {
                w.complete_missed = true;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::policy;
    use crate::domain::{apply as apply_event, decide as decide_cmd, Command, Status};
    use chrono::TimeZone;
    use serde_json::json;
    use uuid::Uuid;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn sales() -> Template {
        policy().templates["sales_to_onboarding"].clone()
    }

    fn full_fields() -> BTreeMap<String, Value> {
        [
            ("client_name", json!("Acme")),
            ("contract_value", json!(120000)),
            ("start_date", json!("2026-12-01")),
            ("key_contacts", json!(["ann@acme.test"])),
            ("special_requirements", json!("SSO")),
            ("goals", json!("Go live in Q1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Given commands at times, the state after them.
    fn given(cmds: &[(i64, WorkCommand)]) -> Option<Handoff> {
        let mut state = None;
        for (at, c) in cmds {
            let events = decide_cmd(state.as_ref(), &Command::Work(c.clone()), t(*at), &policy())
                .expect("accepted");
            for e in events {
                apply_event(&mut state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(*at)));
            }
        }
        state
    }

    fn when(
        state: &Option<Handoff>,
        at: i64,
        c: WorkCommand,
    ) -> Result<Vec<&'static str>, DomainError> {
        decide_cmd(state.as_ref(), &Command::Work(c), t(at), &policy())
            .map(|v| v.iter().map(|e| e.data.kind()).collect())
    }

    fn start(fields: BTreeMap<String, Value>) -> WorkCommand {
        WorkCommand::Initiate {
            template: Box::new(sales()),
            fields,
            by: "sam".into(),
        }
    }
    fn by(who: &str) -> String {
        who.to_string()
    }

    #[test]
    fn initiate_with_a_missing_required_field_names_it() {
        let mut f = full_fields();
        f.remove("goals");
        f.insert("key_contacts".into(), json!("tbd"));
        let err = when(&None, 0, start(f)).unwrap_err();
        assert_eq!(
            err,
            DomainError::MissingFields(vec!["key_contacts".into(), "goals".into()])
        );
    }

    #[test]
    fn initiate_notifies_the_receiving_team_with_a_completeness_score() {
        let s = given(&[(0, start(full_fields()))]).unwrap();
        assert_eq!(s.status(), Status::Paged);
        assert_eq!(s.team, "onboarding");
        // crm_link (5) and renewal_date (5) are optional and absent.
        assert_eq!(s.hcs.score, 90.0);
        let events =
            decide_cmd(None, &Command::Work(start(full_fields())), t(0), &policy()).unwrap();
        let (kind, notice) = events[0].data.notice().unwrap();
        assert_eq!(
            (kind, notice.routes[0].route.as_str(), notice.team.as_str()),
            ("handoff", "team", "onboarding")
        );
    }

    #[test]
    fn accept_late_escalates_once_through_the_templates_routes() {
        let s = given(&[(0, start(full_fields()))]);
        let h = s.as_ref().unwrap();
        assert_eq!(h.next_deadline(&policy()), Some(t(4 * 3600)));
        let tick = decide_cmd(s.as_ref(), &Command::Tick, t(4 * 3600), &policy()).unwrap();
        let EventData::SlaMissed { stage, notice, .. } = &tick[0].data else {
            panic!("{tick:?}")
        };
        assert_eq!(stage, "accept");
        assert_eq!(notice.routes[0].target, "onboarding-lead");
        let mut s2 = s.clone();
        apply_event(
            &mut s2,
            &tick[0]
                .clone()
                .seal(Uuid::now_v7(), Uuid::nil(), t(4 * 3600)),
        );
        assert!(
            decide_cmd(s2.as_ref(), &Command::Tick, t(4 * 3600 + 1), &policy())
                .unwrap()
                .is_empty()
        );
        // Accepting after the miss is allowed and marked as a breach.
        let accepted = decide_cmd(
            s2.as_ref(),
            &Command::Work(WorkCommand::Accept { by: by("olga") }),
            t(5 * 3600),
            &policy(),
        )
        .unwrap();
        assert!(matches!(
            accepted[0].data,
            EventData::Accepted { breached: true, .. }
        ));
    }

    #[test]
    fn complete_with_unchecked_items_is_refused_naming_them() {
        let s = given(&[
            (0, start(full_fields())),
            (10, WorkCommand::Accept { by: by("olga") }),
            (
                20,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "1".into(),
                },
            ),
            (
                30,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "welcome email sent".into(),
                },
            ),
        ]);
        let err = when(&s, 40, WorkCommand::Complete { by: by("olga") }).unwrap_err();
        assert_eq!(
            err,
            DomainError::Unchecked(vec![
                "Kickoff meeting scheduled".into(),
                "Client portal access created".into()
            ])
        );
        let s = given(&[
            (0, start(full_fields())),
            (10, WorkCommand::Accept { by: by("olga") }),
            (
                20,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "1".into(),
                },
            ),
            (
                21,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "2".into(),
                },
            ),
            (
                22,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "3".into(),
                },
            ),
            (
                23,
                WorkCommand::Check {
                    by: by("olga"),
                    item: "4".into(),
                },
            ),
        ]);
        assert_eq!(
            when(&s, 40, WorkCommand::Complete { by: by("olga") }).unwrap(),
            ["completed"]
        );
        assert_eq!(
            when(
                &s,
                40,
                WorkCommand::Check {
                    by: by("x"),
                    item: "9".into()
                }
            )
            .unwrap_err()
            .code(),
            "invalid"
        );
    }

    #[test]
    fn return_is_counted_and_resubmit_restarts_the_accept_clock() {
        let s = given(&[
            (0, start(full_fields())),
            (
                60,
                WorkCommand::Return {
                    by: by("olga"),
                    missing: vec!["crm_link".into()],
                    reason: "no CRM record".into(),
                },
            ),
        ]);
        let w = s.as_ref().unwrap().work.as_ref().unwrap();
        assert_eq!((w.status, w.returns), (WorkStatus::Returned, 1));
        assert_eq!(
            s.as_ref().unwrap().next_deadline(&policy()),
            None,
            "the clock is on the sender"
        );
        assert_eq!(
            when(&s, 70, WorkCommand::Accept { by: by("olga") })
                .unwrap_err()
                .code(),
            "wrong_state"
        );
        let fields: BTreeMap<String, Value> =
            [("crm_link".to_string(), json!("https://crm/acme"))].into();
        let s = given(&[
            (0, start(full_fields())),
            (
                60,
                WorkCommand::Return {
                    by: by("olga"),
                    missing: vec!["crm_link".into()],
                    reason: String::new(),
                },
            ),
            (
                120,
                WorkCommand::Resubmit {
                    by: by("sam"),
                    fields,
                },
            ),
        ]);
        let h = s.unwrap();
        assert_eq!(h.hcs.score, 95.0);
        assert_eq!(h.next_deadline(&policy()), Some(t(120 + 4 * 3600)));
    }

    #[test]
    fn rating_needs_completion_and_happens_once() {
        let mut cmds = vec![
            (0, start(full_fields())),
            (10, WorkCommand::Accept { by: by("olga") }),
        ];
        for i in 1..=4 {
            cmds.push((
                20,
                WorkCommand::Check {
                    by: by("olga"),
                    item: i.to_string(),
                },
            ));
        }
        let open = given(&cmds);
        let rate = || WorkCommand::Rate {
            by: by("olga"),
            rating: 4,
            comment: Some("clear".into()),
        };
        assert_eq!(when(&open, 30, rate()).unwrap_err().code(), "wrong_state");
        cmds.push((40, WorkCommand::Complete { by: by("olga") }));
        cmds.push((50, rate()));
        let done = given(&cmds);
        assert_eq!(when(&done, 60, rate()).unwrap_err().code(), "wrong_state");
        assert_eq!(done.unwrap().work.unwrap().rating.unwrap().rating, 4);
    }

    #[test]
    fn a_template_edited_after_start_does_not_change_the_open_handoff() {
        let s = given(&[
            (0, start(full_fields())),
            (10, WorkCommand::Accept { by: by("olga") }),
        ]);
        // Version 2 adds a fifth exit criterion; the open handoff keeps v1's four.
        let mut v2 = sales();
        v2.version = 2;
        v2.checklist.push("Security review done".into());
        let mut p = policy();
        p.templates.insert(v2.name.clone(), v2);
        let w = s.as_ref().unwrap().work.as_ref().unwrap();
        assert_eq!((w.template.version, w.template.checklist.len()), (1, 4));
        assert_eq!(w.unchecked().len(), 4);
    }

    #[test]
    fn incident_commands_on_team_handoffs_are_refused() {
        let s = given(&[(0, start(full_fields()))]);
        let err = decide_cmd(
            s.as_ref(),
            &Command::Acknowledge { by: by("x") },
            t(1),
            &policy(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid");
    }

    #[test]
    fn none_is_an_answer_but_tbd_is_not() {
        let mut f = full_fields();
        f.insert("special_requirements".into(), json!("none"));
        assert!(when(&None, 0, start(f.clone())).is_ok());
        f.insert("special_requirements".into(), json!("TBD"));
        assert_eq!(
            when(&None, 0, start(f)).unwrap_err(),
            DomainError::MissingFields(vec!["special_requirements".into()])
        );
    }

    /// Every shipped work template: missing entry criterion named, late
    /// accept escalates, unchecked exit criteria named, return counted,
    /// rating recorded and reflected in the stats.
    #[test]
    fn every_work_template_follows_the_lifecycle_rules() {
        let p = policy();
        let works: Vec<&Template> = p
            .templates
            .values()
            .filter(|t| t.kind == TemplateKind::Work)
            .collect();
        assert!(works.len() >= 2);
        for tpl in works {
            let full: BTreeMap<String, Value> = tpl
                .required_fields
                .iter()
                .map(|f| (f.clone(), json!(format!("{f} value"))))
                .collect();
            let run = |cmds: &[(i64, WorkCommand)]| {
                let mut state = None;
                for (at, c) in cmds {
                    for e in decide_cmd(state.as_ref(), &Command::Work(c.clone()), t(*at), &p)
                        .expect("accepted")
                    {
                        apply_event(&mut state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(*at)));
                    }
                }
                state
            };
            let start = |f: BTreeMap<String, Value>| WorkCommand::Initiate {
                template: Box::new(tpl.clone()),
                fields: f,
                by: by("s"),
            };
            // Entry criteria.
            let mut short = full.clone();
            let last = tpl.required_fields.last().unwrap().clone();
            short.remove(&last);
            assert_eq!(
                decide_cmd(None, &Command::Work(start(short)), t(0), &p).unwrap_err(),
                DomainError::MissingFields(vec![last.clone()]),
                "{}",
                tpl.name
            );
            // Late accept escalates on the template's routes.
            let opened = run(&[(0, start(full.clone()))]);
            let due = tpl.sla.as_ref().unwrap().accept.as_secs() as i64;
            let tick = decide_cmd(opened.as_ref(), &Command::Tick, t(due), &p).unwrap();
            let EventData::SlaMissed { stage, notice, .. } = &tick[0].data else {
                panic!("{}", tpl.name)
            };
            assert_eq!(stage, "accept");
            let routes: Vec<_> = notice.routes.iter().map(|r| r.route.clone()).collect();
            assert_eq!(routes, tpl.escalation.accept, "{}", tpl.name);
            // Exit criteria.
            let accepted = run(&[
                (0, start(full.clone())),
                (1, WorkCommand::Accept { by: by("r") }),
            ]);
            assert_eq!(
                decide_cmd(
                    accepted.as_ref(),
                    &Command::Work(WorkCommand::Complete { by: by("r") }),
                    t(2),
                    &p
                )
                .unwrap_err(),
                DomainError::Unchecked(tpl.checklist.clone()),
                "{}",
                tpl.name
            );
            // Return counted; completion and rating reach the stats.
            let mut cmds = vec![
                (0, start(full.clone())),
                (
                    1,
                    WorkCommand::Return {
                        by: by("r"),
                        missing: vec![last.clone()],
                        reason: String::new(),
                    },
                ),
                (
                    2,
                    WorkCommand::Resubmit {
                        by: by("s"),
                        fields: BTreeMap::new(),
                    },
                ),
                (3, WorkCommand::Accept { by: by("r") }),
            ];
            for i in 1..=tpl.checklist.len() {
                cmds.push((
                    4,
                    WorkCommand::Check {
                        by: by("r"),
                        item: i.to_string(),
                    },
                ));
            }
            cmds.push((5, WorkCommand::Complete { by: by("r") }));
            cmds.push((
                6,
                WorkCommand::Rate {
                    by: by("r"),
                    rating: 3,
                    comment: None,
                },
            ));
            let done = run(&cmds).unwrap();
            let stats = crate::teams::work_stats(std::slice::from_ref(&done));
            assert_eq!(
                (
                    stats[0].completed,
                    stats[0].returns_per_handoff,
                    stats[0].avg_rating
                ),
                (1, 1.0, Some(3.0)),
                "{}",
                tpl.name
            );
        }
    }

    #[test]
    fn shipped_templates_validate() {
        for t in policy().templates.values() {
            assert!(t.validate().is_empty(), "{}: {:?}", t.name, t.validate());
        }
    }
}
