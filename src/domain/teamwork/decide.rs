//! The team handoff's rules: start (entry criteria), accept, check,
//! complete (exit criteria), return, resubmit, cancel, rate, and the timer's
//! tick (a missed accept or complete SLA pages the template's routes once).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{completeness, require_entry_criteria, TeamCommand, TeamHandoff, TeamStatus, Template};
use crate::domain::event::{EventData, NewEvent, Notice, RouteTarget};
use crate::domain::{DomainError, Hcs, Packet, Policy};

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
) -> Box<Notice> {
    Box::new(Notice {
        routes: routes
            .iter()
            .map(|r| {
                let target = t
                    .roles
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| policy.target(r, team, &Packet::default()));
                RouteTarget::new(r.clone(), target)
            })
            .collect(),
        team: team.to_string(),
        severity: t.priority,
        template: t.name.clone(),
        hcs: score.clone(),
        packet: Packet::default(),
        incomplete: !score.missing.is_empty(),
        respond_by,
        work: Some(crate::domain::event::WorkNotice {
            template_version: t.version,
            from_team: t.from_team.clone(),
            to_team: t.to_team.clone(),
            fields: fields.clone(),
            checklist: t.checklist.clone(),
        }),
    })
}

/// The route that reaches a whole team.
pub const ROUTE_TEAM: &str = "team";

/// The rules for work handoffs.
pub fn decide(
    state: Option<&TeamHandoff>,
    cmd: &TeamCommand,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    let w = match (state, cmd) {
        (
            None,
            TeamCommand::Initiate {
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
                .and_then(|s| crate::domain::later(now, s.accept));
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
        (Some(h), TeamCommand::Initiate { template, .. }) if h.template.name == template.name => {
            return Ok(vec![])
        }
        (Some(_), TeamCommand::Initiate { .. }) => {
            return Err(invalid(
                "dedup_key",
                "this dedup key belongs to another handoff",
            ))
        }
        (None, _) => return Err(DomainError::NotFound),
        (Some(h), _) => h,
    };
    let t = &w.template;
    let terminal = w.status.is_finished();
    match cmd {
        TeamCommand::Initiate { .. } => unreachable!("handled above"),
        TeamCommand::Rate {
            by,
            rating,
            comment,
        } => {
            if w.status != TeamStatus::Completed {
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
        _ if terminal => Err(DomainError::Finished(w.status.as_str())),
        TeamCommand::Accept { by } => {
            if w.status != TeamStatus::Initiated {
                return Err(DomainError::WrongState(
                    format!("cannot accept a handoff that is {:?}", w.status).to_lowercase(),
                ));
            }
            // Measured on the same clock as `breached`: from the current
            // submission (a resubmission restarts the accept SLA).
            Ok(vec![ev(
                by,
                EventData::Accepted {
                    by: by.clone(),
                    accept_ms: (now - w.submitted_at).num_milliseconds().max(0),
                    breached: w.accept_due().is_some_and(|d| now > d),
                },
            )])
        }
        TeamCommand::Check { by, item } => {
            if w.status != TeamStatus::Accepted {
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
        TeamCommand::Complete { by } => {
            if w.status != TeamStatus::Accepted {
                return Err(DomainError::WrongState(
                    "only an accepted handoff can be completed".into(),
                ));
            }
            let unchecked = w.unchecked();
            if !unchecked.is_empty() {
                return Err(DomainError::Unchecked(unchecked));
            }
            let opened = w.opened_at;
            Ok(vec![ev(
                by,
                EventData::Completed {
                    by: by.clone(),
                    complete_ms: (now - opened).num_milliseconds().max(0),
                    breached: w.complete_due().is_some_and(|d| now > d),
                },
            )])
        }
        TeamCommand::Return {
            by,
            missing,
            reason,
        } => {
            if !matches!(w.status, TeamStatus::Initiated | TeamStatus::Accepted) {
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
        TeamCommand::Resubmit { by, fields } => {
            if w.status != TeamStatus::Returned {
                return Err(DomainError::WrongState(
                    "only a returned handoff can be resubmitted".into(),
                ));
            }
            let mut merged = w.fields.clone();
            merged.extend(fields.clone());
            require_entry_criteria(t, &merged)?;
            let score = completeness(t, &merged);
            let respond_by = t
                .sla
                .as_ref()
                .and_then(|s| crate::domain::later(now, s.accept));
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
        TeamCommand::Cancel { by, reason } => Ok(vec![ev(
            by,
            EventData::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
            },
        )]),
    }
}

/// The timer's wake-up for a team handoff: a missed accept or complete SLA
/// pages the template's escalation routes, once per stage.
pub fn tick(w: &TeamHandoff, now: DateTime<Utc>, policy: &Policy) -> Vec<NewEvent> {
    let t = &w.template;
    let mut out = Vec::new();
    let score = completeness(t, &w.fields);
    if w.status == TeamStatus::Initiated && !w.accept_missed {
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
                        w.complete_due(),
                        policy,
                    ),
                },
            ));
        }
    }
    if matches!(w.status, TeamStatus::Initiated | TeamStatus::Accepted) && !w.complete_missed {
        if let Some(due) = w.complete_due().filter(|d| *d <= now) {
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
