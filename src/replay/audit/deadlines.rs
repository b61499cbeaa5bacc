//! Deadlines each aggregate owes: an incident's escalation steps and
//! max-hold page, a team handoff's accept and complete SLAs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{violation, Audit, Finding, FindingKind};
use crate::domain::{BelowMin, Event, EventData, Incident, TeamHandoff};

/// Every deadline that passed without an ack has exactly one escalation,
/// none fired early or after the ack; a P1 hold pages by `max_hold`.
pub(super) fn check_deadlines(
    audit: &Audit<'_>,
    h: &Incident,
    events: &[(u64, &Event)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let sp = audit.policy.severity(h.severity);
    let mut by_step: BTreeMap<u32, Vec<(u64, &Event)>> = BTreeMap::new();
    for (seq, e) in events {
        if let EventData::Escalated { step, .. } = &e.data {
            by_step.entry(*step).or_default().push((*seq, e));
        }
    }
    let ack = h.acknowledged.as_ref().map(|a| a.at);
    let resolved = h.resolved.as_ref().map(|r| r.at);
    // Escalation stops at the ack or the resolution, whichever came first.
    let stop = [ack, resolved, Some(audit.now)].into_iter().flatten().min();
    let stop = stop.unwrap_or(audit.now);
    let mut n = 1;
    while let Some(step) = sp.step(h.opened_at, n) {
        let stored = by_step.remove(&n).unwrap_or_default();
        if stored.len() > 1 {
            let seqs: Vec<String> = stored.iter().map(|s| s.0.to_string()).collect();
            out.push(violation(
                FindingKind::DuplicateEscalation,
                Some(h.id),
                Some(stored[1].0),
                format!(
                    "step {n} escalated {} times (seq {})",
                    stored.len(),
                    seqs.join(", ")
                ),
            ));
        }
        if stored.is_empty() && step.due + audit.grace <= stop {
            out.push(violation(
                FindingKind::MissingEscalation,
                Some(h.id),
                None,
                format!(
                    "step {n} (level {}) was due at {} and passed unacknowledged, but no escalation was stored",
                    step.level,
                    step.due.to_rfc3339()
                ),
            ));
        }
        for (seq, e) in &stored {
            if e.occurred_at < step.due {
                out.push(violation(
                    FindingKind::WrongEscalation,
                    Some(h.id),
                    Some(*seq),
                    format!(
                        "step {n} fired at {} before its deadline {}",
                        e.occurred_at.to_rfc3339(),
                        step.due.to_rfc3339()
                    ),
                ));
            }
            if ack.is_some_and(|a| e.occurred_at > a) {
                out.push(violation(
                    FindingKind::WrongEscalation,
                    Some(h.id),
                    Some(*seq),
                    format!("step {n} fired after the acknowledgement"),
                ));
            }
        }
        n += 1;
    }
    for (step, stored) in by_step {
        out.push(violation(
            FindingKind::WrongEscalation,
            Some(h.id),
            Some(stored[0].0),
            format!(
                "step {step} is not in the {} policy (was the policy changed?)",
                h.severity
            ),
        ));
    }
    if h.paged_at.is_none() && h.resolved.is_none() && h.held == Some(BelowMin::EnrichThenPage) {
        if let Some(until) = h.hold_until.filter(|u| *u + audit.grace <= audit.now) {
            out.push(violation(
                FindingKind::MissingHoldPage,
                Some(h.id),
                None,
                format!("held until {} but never paged", until.to_rfc3339()),
            ));
        }
    }
    out
}

/// A team handoff's SLAs: each submission whose accept deadline passed
/// before anyone accepted (or it was returned, cancelled or completed) has
/// exactly one accept `sla_missed`, none early; the complete deadline the
/// same, once per handoff.
pub(super) fn check_team_slas(
    audit: &Audit<'_>,
    t: &TeamHandoff,
    events: &[(u64, &Event)],
) -> Vec<Finding> {
    let Some(sla) = &t.template.sla else {
        return Vec::new();
    };
    /// One submission (start or resubmission) and its accept SLA.
    struct Window<'e> {
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        missed: Vec<(u64, &'e Event)>,
    }
    let mut accept: Vec<Window> = Vec::new();
    let mut complete = Window {
        start: t.opened_at,
        end: None,
        missed: Vec::new(),
    };
    for (seq, e) in events {
        match &e.data {
            EventData::Initiated { .. } | EventData::Resubmitted { .. } => accept.push(Window {
                start: e.occurred_at,
                end: None,
                missed: Vec::new(),
            }),
            EventData::Accepted { .. } | EventData::Returned { .. } => {
                if let Some(w) = accept.last_mut() {
                    w.end.get_or_insert(e.occurred_at);
                }
            }
            EventData::Completed { .. } | EventData::Cancelled { .. } => {
                if let Some(w) = accept.last_mut() {
                    w.end.get_or_insert(e.occurred_at);
                }
                complete.end.get_or_insert(e.occurred_at);
            }
            EventData::SlaMissed { stage, .. } if stage == "accept" => {
                if let Some(w) = accept.last_mut() {
                    w.missed.push((*seq, e));
                }
            }
            EventData::SlaMissed { .. } => complete.missed.push((*seq, e)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let windows = accept.iter().map(|w| ("accept", w, sla.accept)).chain([(
        "complete",
        &complete,
        sla.complete,
    )]);
    for (stage, w, after) in windows {
        let Some(due) = crate::domain::later(w.start, after) else {
            continue;
        };
        if w.missed.len() > 1 {
            out.push(violation(
                FindingKind::DuplicateEscalation,
                Some(t.id),
                Some(w.missed[1].0),
                format!(
                    "the {stage} SLA due {} was paged {} times",
                    due.to_rfc3339(),
                    w.missed.len()
                ),
            ));
        }
        let stop = w.end.unwrap_or(audit.now).min(audit.now);
        if w.missed.is_empty() && due + audit.grace <= stop {
            out.push(violation(
                FindingKind::MissingEscalation,
                Some(t.id),
                None,
                format!(
                    "the {stage} SLA was due at {} and passed, but no sla_missed was stored",
                    due.to_rfc3339()
                ),
            ));
        }
        for (seq, e) in &w.missed {
            if e.occurred_at < due {
                out.push(violation(
                    FindingKind::WrongEscalation,
                    Some(t.id),
                    Some(*seq),
                    format!(
                        "the {stage} SLA was paged at {} before its deadline {}",
                        e.occurred_at.to_rfc3339(),
                        due.to_rfc3339()
                    ),
                ));
            }
        }
    }
    out
}
