//! Replay and audit: rebuild any moment of history from `BATON_EVENTS`,
//! explain every page, and prove the live state equals the log.
//!
//! Everything here is read-only: the replayer reads the event log with an
//! ordered consumer (no durable state on the server), never appends and never
//! pages. The NATS reading lives at the edge ([`read`]); what is done with the
//! records is pure and unit-tested: [`rebuild`] folds records into state with
//! the same `domain::apply` the daemon uses, [`timeline`] tells one handoff's
//! story, [`audit`] checks the log's invariants, [`compare`] holds the
//! rebuilt state against the daemon's digests, and [`output`] renders
//! tables, JSON and CSV. [`run`] strings them together for the CLI.
//!
//! A [`Record`] is one stream message as read: its sequence, subject and the
//! decoded [`Commit`] — or why it did not decode, because an auditor must see
//! the messages the daemon skipped, not lose them.

pub mod audit;
pub mod compare;
pub mod output;
pub mod read;
pub mod run;
pub mod timeline;

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{apply, Commit, Event, Handoff, Severity};
use crate::store::StoreError;

pub use crate::projector::digest::{bucket_digest, bucket_of, digest};
pub use audit::{verify, Finding, FindingKind};
pub use output::{export_rows, render_handoffs, Format};
pub use read::{read_events, read_handoff, read_pages, PageRecord, ReadRange};
pub use timeline::timeline;

/// Why a replay could not run. The CLI prints it and exits 1 (an audit that
/// ran and found violations exits 2 instead).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
}

/// A point in the log: a stream sequence or a moment (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Seq(u64),
    Time(DateTime<Utc>),
}

impl FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.trim().parse::<u64>() {
            return Ok(Position::Seq(n));
        }
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Position::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("{s:?} is neither a stream sequence nor an RFC 3339 time"))
    }
}

/// One `BATON_EVENTS` message as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub subject: String,
    /// The decoded commit, or the decode error.
    pub commit: Result<Commit, String>,
}

impl Record {
    /// The handoff named by the subject's last token.
    pub fn subject_handoff(&self) -> Option<Uuid> {
        self.subject.rsplit('.').next()?.parse().ok()
    }

    /// When the commit's decision was taken (its events share one time).
    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.commit
            .as_ref()
            .ok()?
            .events
            .first()
            .map(|e| e.occurred_at)
    }

    /// Whether the record lies at or before `until` (`None`: no bound).
    pub fn at_or_before(&self, until: Option<Position>) -> bool {
        match until {
            None => true,
            Some(Position::Seq(s)) => self.seq <= s,
            Some(Position::Time(t)) => self.occurred_at().is_none_or(|o| o <= t),
        }
    }

    /// Whether the record lies at or after `since` (`None`: no bound).
    pub fn at_or_after(&self, since: Option<Position>) -> bool {
        match since {
            None => true,
            Some(Position::Seq(s)) => self.seq >= s,
            Some(Position::Time(t)) => self.occurred_at().is_none_or(|o| o >= t),
        }
    }
}

/// Which handoffs and which stretch of the log a command looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only history up to here (state "as of").
    pub until: Option<Position>,
    /// Only handoffs (or events, for export) active from here on.
    pub since: Option<Position>,
    pub handoff: Option<Uuid>,
    pub severity: Option<Severity>,
}

/// A handoff as rebuilt: its state, the sequence of its last commit, and
/// whether any of its events falls in the filter's `since` window.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub handoff: Handoff,
    pub last_seq: u64,
    pub active_since: bool,
}

/// Folds records into state with `domain::apply`, exactly as the projector
/// does (a commit applies to the handoff of its first event; undecodable
/// records are skipped here and reported by the audit). Pure.
pub fn rebuild(records: &[Record], filter: &Filter) -> BTreeMap<Uuid, Rebuilt> {
    let mut state: BTreeMap<Uuid, (Option<Handoff>, u64, bool)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.at_or_before(filter.until)) {
        let Ok(commit) = &r.commit else { continue };
        let Some(first) = commit.events.first() else {
            continue;
        };
        if filter.handoff.is_some_and(|h| h != first.handoff_id) {
            continue;
        }
        let slot = state.entry(first.handoff_id).or_default();
        if r.seq <= slot.1 {
            continue;
        }
        for e in &commit.events {
            apply(&mut slot.0, e);
        }
        slot.1 = r.seq;
        slot.2 |= r.at_or_after(filter.since);
    }
    state
        .into_iter()
        .filter_map(|(id, (h, last_seq, active_since))| {
            let handoff = h?;
            // A severity filter asks for incidents: team handoffs have none.
            if filter
                .severity
                .is_some_and(|s| handoff.as_incident().is_none_or(|i| i.severity != s))
            {
                return None;
            }
            Some((
                id,
                Rebuilt {
                    handoff,
                    last_seq,
                    active_since,
                },
            ))
        })
        .collect()
}

/// Every event of one handoff, in log order.
pub fn events_of(records: &[Record], id: Uuid) -> Vec<Event> {
    records
        .iter()
        .filter_map(|r| r.commit.as_ref().ok())
        .flat_map(|c| c.events.iter())
        .filter(|e| e.handoff_id == id)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
