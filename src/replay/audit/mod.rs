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

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

mod deadlines;
mod paged;
mod pages;

use super::{Rebuilt, Record};
use crate::domain::{Event, EventData, Handoff, Policy};
use crate::store::Names;
use deadlines::{check_deadlines, check_team_slas};
pub use paged::{who_was_paged, Paged};
use pages::check_pages;

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
            // A page sent before the resolve may be delivered (or given up
            // on) after it: the delivery worker records it whenever it ends.
            (d, _, _, true) if d.is_delivery() => {}
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
