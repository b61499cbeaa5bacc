//! Who was on call at each page: read from the person stored in each
//! notice-carrying event when it was decided (`RouteTarget::person`), never
//! recomputed from today's rotations, so overrides and participant changes
//! made later do not rewrite history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::replay::Record;

/// One route of one notice, and who it reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paged {
    pub handoff: Uuid,
    pub event: Uuid,
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `page`, `escalation`, `ticket`, …
    pub kind: &'static str,
    pub route: String,
    pub target: String,
    /// The person stored in the event (`None`: a label, or unresolved
    /// with no fallback).
    pub person: Option<String>,
    pub rotation: Option<String>,
    pub unresolved: bool,
}

impl std::fmt::Display for Paged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} handoff {} route {}: {}",
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.kind,
            self.handoff,
            self.route,
            self.person.as_deref().unwrap_or("(nobody resolved)")
        )?;
        match (&self.rotation, self.unresolved) {
            (_, true) => write!(f, " [fallback: {} resolved to nobody]", self.target),
            (Some(r), _) => write!(f, " [on call for rotation {r}]"),
            (None, _) => write!(f, " [{}]", self.target),
        }
    }
}

/// Every page the log's events sent, with the person each reached, in log order.
pub fn who_was_paged(records: &[Record]) -> Vec<Paged> {
    let mut out = Vec::new();
    for r in records {
        let Ok(commit) = &r.commit else { continue };
        for e in &commit.events {
            let Some((kind, notice)) = e.data.notice() else {
                continue;
            };
            for rt in &notice.routes {
                out.push(Paged {
                    handoff: e.handoff_id,
                    event: e.id,
                    seq: r.seq,
                    at: e.occurred_at,
                    kind,
                    route: rt.route.clone(),
                    target: rt.target.clone(),
                    person: rt.person.clone(),
                    rotation: rt.rotation.clone(),
                    unresolved: rt.unresolved,
                });
            }
        }
    }
    out
}
