//! Pages against the events that cause them: none doubled, none without a
//! cause, none missing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{violation, Audit, Finding, FindingKind};
use crate::domain::{Event, Kind};
use crate::wire::page::pages_for;

/// No duplicate pages; each page derives from a stored event under its
/// message id; each notice's pages are stored.
pub(super) fn check_pages(
    audit: &Audit<'_>,
    events: &BTreeMap<Uuid, Vec<(u64, &Event)>>,
    pages: &[crate::replay::PageRecord],
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
            .is_some_and(|(_, e)| e.data.aggregate() == Kind::Team);
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
