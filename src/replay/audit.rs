//! `baton audit verify`: the log's invariants, checked as pure functions over
//! the records and pages read, plus the comparison of the rebuilt state with
//! the running daemon's digests.
//!
//! Each check returns [`Finding`]s naming the handoff (and the stream
//! sequence where there is one). A finding is either a violation (the CLI
//! exits 2) or a notice (printed, exit 0): notices are things that are not
//! wrong yet — a page still in flight, a daemon whose projector lags the
//! audit's read. `now` and the grace period come in as arguments, so a
//! deadline that passed a moment ago is not reported before the timer had a
//! fair chance to fire it. The policy is today's config: an audit of history
//! written under another escalation policy reports the difference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Rebuilt, Record};
use crate::domain::{BelowMin, Event, EventData, Handoff, Incident, Policy, TeamHandoff};
use crate::store::Names;
use crate::wire::page::pages_for;

/// Events of the team-handoff aggregate.
fn is_team_event(e: &EventData) -> bool {
    matches!(
        e,
        EventData::Initiated { .. }
            | EventData::Accepted { .. }
            | EventData::Checked { .. }
            | EventData::Returned { .. }
            | EventData::Resubmitted { .. }
            | EventData::Completed { .. }
            | EventData::Cancelled { .. }
            | EventData::Rated { .. }
            | EventData::SlaMissed { .. }
    )
}

/// What a finding is about. The `snake_case` name is printed and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A stored message is not a valid commit.
    UndecodableEvent,
    /// Stream sequences are missing between two records.
    SequenceGap,
    /// An event's handoff id differs from its subject's, or an event id repeats.
    MisfiledEvent,
    /// A handoff's first event is not `opened`/`initiated`, or it repeats.
    EventBeforeOpen,
    /// An event other than `reported_again` after `resolved`.
    EventAfterResolved,
    /// A deadline passed unacknowledged and no escalation was stored for it.
    MissingEscalation,
    /// More than one escalation for one step.
    DuplicateEscalation,
    /// An escalation stored before its deadline, after the ack, or for a
    /// step the policy does not have.
    WrongEscalation,
    /// A P1 hold ran past `max_hold` without the page it owes.
    MissingHoldPage,
    /// Two pages for the same (handoff, kind, step, route).
    DuplicatePage,
    /// A page no stored event causes, or whose content or `Nats-Msg-Id`
    /// differs from what its event derives.
    PageWithoutCause,
    /// A notice event whose page is not in `BATON_PAGES`.
    PageNotPublished,
    /// The daemon's state for a handoff differs from the log's.
    Divergence,
}

impl FindingKind {
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// `false`: a notice, not (yet) a violation.
    pub violation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.violation {
            "VIOLATION"
        } else {
            "notice"
        };
        write!(f, "{level} {}", self.kind.name())?;
        if let Some(h) = self.handoff {
            write!(f, " handoff {h}")?;
        }
        if let Some(s) = self.seq {
            write!(f, " seq {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

pub(super) fn violation(
    kind: FindingKind,
    handoff: Option<Uuid>,
    seq: Option<u64>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        violation: true,
        handoff,
        seq,
        detail,
    }
}

/// What the invariants are checked against.
pub struct Audit<'a> {
    pub policy: &'a Policy,
    pub names: &'a Names,
    /// The moment of the audit.
    pub now: DateTime<Utc>,
    /// How long after a deadline its escalation (or a notice's page) may
    /// still be in flight.
    pub grace: Duration,
    /// The first sequence the stream should hold (1 unless read from later).
    pub first_seq: u64,
}

/// Checks every invariant of the log and its pages. Pure.
pub fn verify(
    audit: &Audit<'_>,
    records: &[Record],
    state: &BTreeMap<Uuid, Rebuilt>,
    pages: &[super::PageRecord],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut expected = audit.first_seq;
    let mut per_handoff: BTreeMap<Uuid, Vec<(u64, &Event)>> = BTreeMap::new();
    let mut event_ids = HashSet::new();
    for r in records {
        if r.seq > expected {
            out.push(violation(
                FindingKind::SequenceGap,
                None,
                Some(r.seq),
                format!("sequences {expected}..{} are missing", r.seq - 1),
            ));
        }
        expected = expected.max(r.seq + 1);
        let subject_id = r.subject_handoff();
        let commit = match &r.commit {
            Ok(c) => c,
            Err(e) => {
                out.push(violation(
                    FindingKind::UndecodableEvent,
                    subject_id,
                    Some(r.seq),
                    format!("{} does not decode: {e}", r.subject),
                ));
                continue;
            }
        };
        for e in &commit.events {
            if subject_id != Some(e.handoff_id) {
                out.push(violation(
                    FindingKind::MisfiledEvent,
                    Some(e.handoff_id),
                    Some(r.seq),
                    format!("{} event {} stored on {}", e.kind(), e.id, r.subject),
                ));
            }
            if !event_ids.insert(e.id) {
                out.push(violation(
                    FindingKind::MisfiledEvent,
                    Some(e.handoff_id),
                    Some(r.seq),
                    format!("event id {} stored twice", e.id),
                ));
            }
            per_handoff
                .entry(e.handoff_id)
                .or_default()
                .push((r.seq, e));
        }
    }
    for (id, events) in &per_handoff {
        out.extend(check_lifecycle(*id, events));
        // Each aggregate's deadlines: the incident's escalation policy, the
        // team handoff's accept and complete SLAs.
        match state.get(id).map(|rb| &rb.handoff) {
            Some(Handoff::Incident(h)) => out.extend(check_deadlines(audit, h, events)),
            Some(Handoff::Team(t)) => out.extend(check_team_slas(audit, t, events)),
            None => {}
        }
    }
    out.extend(check_pages(audit, &per_handoff, pages));
    out
}

/// The stored types that open a handoff: `opened` (an incident report) and
/// `initiated` (a team handoff, which shares the stream and the aggregate).
const OPENING: [&str; 2] = ["opened", "initiated"];

/// Opened first and once; nothing but `reported_again` after `resolved`.
fn check_lifecycle(id: Uuid, events: &[(u64, &Event)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut opened = false;
    let mut resolved = false;
    for (seq, e) in events {
        let opening = OPENING.contains(&e.kind());
        match (&e.data, opening, opened, resolved) {
            (_, true, true, _) => out.push(violation(
                FindingKind::EventBeforeOpen,
                Some(id),
                Some(*seq),
                format!("{} a second time", e.kind()),
            )),
            (_, true, false, _) => opened = true,
            (_, false, false, _) => {
                out.push(violation(
                    FindingKind::EventBeforeOpen,
                    Some(id),
                    Some(*seq),
                    format!("{} before the handoff was opened", e.kind()),
                ));
                opened = true;
            }
            (EventData::ReportedAgain { .. }, _, _, true) => {}
            // A completed team handoff still takes its feedback.
            (EventData::Rated { .. }, _, _, true) => {}
            (_, _, _, true) => out.push(violation(
                FindingKind::EventAfterResolved,
                Some(id),
                Some(*seq),
                format!("{} by {} after it was resolved", e.kind(), e.actor),
            )),
            (
                EventData::Resolved { .. }
                | EventData::Completed { .. }
                | EventData::Cancelled { .. },
                _,
                _,
                false,
            ) => resolved = true,
            _ => {}
        }
    }
    out
}

/// Every deadline that passed without an ack has exactly one escalation,
/// none fired early or after the ack; a P1 hold pages by `max_hold`.
fn check_deadlines(audit: &Audit<'_>, h: &Incident, events: &[(u64, &Event)]) -> Vec<Finding> {
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
fn check_team_slas(audit: &Audit<'_>, t: &TeamHandoff, events: &[(u64, &Event)]) -> Vec<Finding> {
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

/// No duplicate pages; each page derives from a stored event under its
/// message id; each notice's pages are stored.
fn check_pages(
    audit: &Audit<'_>,
    events: &BTreeMap<Uuid, Vec<(u64, &Event)>>,
    pages: &[super::PageRecord],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let by_id: HashMap<Uuid, (u64, &Event)> = events
        .values()
        .flatten()
        .map(|(s, e)| (e.id, (*s, *e)))
        .collect();
    type PageKey = (Uuid, String, u32, String, Option<Uuid>);
    let mut seen: HashMap<PageKey, u64> = HashMap::new();
    let mut published: HashSet<(Uuid, String)> = HashSet::new();
    let mut oldest: Option<DateTime<Utc>> = None;
    for pr in pages {
        let p = match &pr.page {
            Ok(p) => p,
            Err(e) => {
                out.push(violation(
                    FindingKind::PageWithoutCause,
                    None,
                    None,
                    format!("page seq {} on {} does not decode: {e}", pr.seq, pr.subject),
                ));
                continue;
            }
        };
        oldest = Some(oldest.map_or(p.sent_at, |o| o.min(p.sent_at)));
        // An incident pages each (kind, step) once; a team handoff notifies
        // again on every return and resubmission, so its pages are unique
        // per causing event.
        let team = by_id
            .get(&p.event_id)
            .is_some_and(|(_, e)| is_team_event(&e.data));
        let key = (
            p.handoff_id,
            p.kind.clone(),
            p.step,
            p.route.clone(),
            team.then_some(p.event_id),
        );
        if let Some(first) = seen.insert(key, pr.seq) {
            out.push(violation(
                FindingKind::DuplicatePage,
                Some(p.handoff_id),
                None,
                format!(
                    "{} step {} on route {} stored twice (pages seq {first} and {}, msg id {:?})",
                    p.kind,
                    p.step,
                    p.route,
                    pr.seq,
                    pr.msg_id.as_deref().unwrap_or("none")
                ),
            ));
        }
        published.insert((p.event_id, p.route.clone()));
        let derived = by_id.get(&p.event_id).and_then(|(_, e)| {
            pages_for(e, audit.names)
                .into_iter()
                .find(|(_, _, d)| d.route == p.route)
        });
        match derived {
            None => out.push(violation(
                FindingKind::PageWithoutCause,
                Some(p.handoff_id),
                None,
                format!(
                    "page seq {} ({} on {}) has no causing event {}",
                    pr.seq, p.kind, p.route, p.event_id
                ),
            )),
            Some((subject, msg_id, d)) => {
                if subject != pr.subject || Some(&msg_id) != pr.msg_id.as_ref() || d != *p {
                    out.push(violation(
                        FindingKind::PageWithoutCause,
                        Some(p.handoff_id),
                        None,
                        format!(
                            "page seq {} differs from what event {} derives (subject {}, msg id {:?}, expected {msg_id})",
                            pr.seq, p.event_id, pr.subject, pr.msg_id.as_deref().unwrap_or("none")
                        ),
                    ));
                }
            }
        }
    }
    // A notice older than the oldest retained page may have aged out; a
    // recent one may still be in flight: both are notices, not violations.
    for (id, evs) in events {
        for (seq, e) in evs {
            for (_, _, d) in pages_for(e, audit.names) {
                if published.contains(&(e.id, d.route.clone())) {
                    continue;
                }
                let settled = e.occurred_at + audit.grace <= audit.now;
                let retained = oldest.is_some_and(|o| e.occurred_at >= o);
                out.push(Finding {
                    kind: FindingKind::PageNotPublished,
                    violation: settled && retained,
                    handoff: Some(*id),
                    seq: Some(*seq),
                    detail: format!(
                        "{} event {} has no {} page on route {}",
                        e.kind(),
                        e.id,
                        d.kind,
                        d.route
                    ),
                });
            }
        }
    }
    out
}
