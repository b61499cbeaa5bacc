//! The list of handoffs: its filters ([`ListQuery`], the NATS `list` body
//! and the `GET /v1/handoffs` query), their validation, and one page in
//! list order with a stable keyset cursor.
//!
//! [`page`] works on copies of every handoff today (the projection has no
//! index yet); `Handoffs::list` is the one place that hands them over.

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::AppError;
use super::requests::Whole;
use super::views::{HandoffPage, HandoffView};
use crate::domain::{FieldError, Handoff, Kind, Policy, Status, TeamStatus};
use crate::projector::{Key, Listing, Select, StatusFilter};

/// Page size of the list when none is asked for.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size of the list.
pub const MAX_LIMIT: usize = 500;

/// Filters and paging of the list. Unknown values are `invalid_query`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `incident` or `team`; both when absent.
    pub kind: Option<String>,
    /// An incident status (`held`, `paged`, `escalated`, `acknowledged`,
    /// `resolved`), a team-handoff status (`initiated`, `accepted`,
    /// `returned`, `completed`, `cancelled`), or `open` (neither resolved,
    /// completed nor cancelled).
    pub status: Option<String>,
    /// `P1`, `P2` or `P3` (incidents only: team handoffs have no severity).
    pub severity: Option<String>,
    /// An incident's team, or either team of a team handoff.
    pub team: Option<String>,
    /// A template name.
    pub template: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<Whole>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The cursor that continues the list after `h`: its [`Key`] (newest
/// first, ties by id) as `<opened_at nanos>.<id, simple>`. Keyset
/// pagination on this key is stable: a handoff opened meanwhile lands before
/// the first page and never shifts the later ones.
fn cursor_after(h: &Handoff) -> String {
    let Key(at, id) = Key::of(h);
    format!("{at}.{}", id.simple())
}

/// The position a cursor from [`cursor_after`] names.
fn parse_cursor(s: &str) -> Option<Key> {
    let (t, id) = s.split_once('.')?;
    Some(Key(t.parse().ok()?, Uuid::try_parse(id).ok()?))
}

/// A validated [`ListQuery`].
pub struct Filter {
    select: Select,
    limit: usize,
    after: Option<Key>,
}

impl Filter {
    /// Every problem with the query at once.
    pub fn parse(q: ListQuery) -> Result<Self, AppError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(FieldError::new(field, "invalid_value", message))
        };
        let kind = match q.kind.as_deref() {
            None | Some("") => None,
            Some("incident") => Some(Kind::Incident),
            Some("team") => Some(Kind::Team),
            Some(k) => {
                bad("kind", format!("unknown kind {k:?}; known: incident, team"));
                None
            }
        };
        let status = match q.status.as_deref() {
            None | Some("") => None,
            Some("open") => Some(StatusFilter::Open),
            Some(s) => match Status::ALL
                .iter()
                .map(|st| st.as_str())
                .chain(TeamStatus::ALL.iter().map(|st| st.as_str()))
                .find(|st| *st == s)
            {
                Some(st) => Some(StatusFilter::Is(st)),
                None => {
                    bad("status", format!("unknown status {s:?}; known: held, paged, escalated, acknowledged, resolved, initiated, accepted, returned, completed, cancelled, open"));
                    None
                }
            },
        };
        let severity = match q.severity.as_deref() {
            None | Some("") => None,
            Some(s) => s.parse().ok().or_else(|| {
                bad(
                    "severity",
                    format!("unknown severity {s:?}; known: P1, P2, P3"),
                );
                None
            }),
        };
        let limit = match &q.limit {
            None => DEFAULT_LIMIT,
            Some(Whole::Text(s)) if s.is_empty() => DEFAULT_LIMIT,
            Some(w) => match w.value().and_then(|n| usize::try_from(n).ok()) {
                Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    bad(
                        "limit",
                        format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                    );
                    DEFAULT_LIMIT
                }
            },
        };
        let after = match q.cursor.as_deref() {
            None | Some("") => None,
            Some(s) => parse_cursor(s).or_else(|| {
                bad("cursor", "not a cursor this API returned".into());
                None
            }),
        };
        if !errors.is_empty() {
            return Err(AppError::InvalidQuery(errors));
        }
        Ok(Self {
            select: Select {
                kind,
                status,
                severity,
                team: q.team.filter(|t| !t.is_empty()),
                template: q.template.filter(|t| !t.is_empty()),
            },
            limit,
            after,
        })
    }
}

/// One page of `handoffs`, filtered and in list order: read from the
/// projection's index, so it costs the page, not the projection.
pub fn page(handoffs: impl Listing, filter: &Filter, policy: &Policy) -> HandoffPage {
    let page = handoffs.page(&filter.select, filter.after, filter.limit);
    HandoffPage {
        next_cursor: page
            .more
            .then(|| page.items.last().map(cursor_after))
            .flatten(),
        items: page
            .items
            .iter()
            .map(|h| HandoffView::new(h, policy))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;
    use crate::testkit::policy;
    use chrono::{TimeZone, Utc};

    fn h(secs: i64, id: u128, team: &str) -> Handoff {
        let t =
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs);
        Handoff::Incident(crate::stats::fixtures::handoff(
            Uuid::from_u128(id),
            Severity::P2,
            team,
            t,
        ))
    }

    fn filter(q: &str) -> Filter {
        Filter::parse(serde_urlencoded_like(q)).unwrap()
    }

    /// `a=1&b=2` into the query struct (the tests avoid a URL crate).
    fn serde_urlencoded_like(q: &str) -> ListQuery {
        let mut out = ListQuery::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let v = Some(v.to_string());
            match k {
                "status" => out.status = v,
                "severity" => out.severity = v,
                "team" => out.team = v,
                "template" => out.template = v,
                "limit" => out.limit = v.map(Whole::Text),
                "cursor" => out.cursor = v,
                _ => panic!("{k}"),
            }
        }
        out
    }

    #[test]
    fn pages_are_stable_when_newer_handoffs_arrive_between_requests() {
        let p = policy();
        // Two share a timestamp: the id breaks the tie.
        let mut all: Vec<Handoff> = vec![
            h(1, 1, "a"),
            h(2, 2, "a"),
            h(2, 3, "a"),
            h(3, 4, "a"),
            h(4, 5, "a"),
        ];
        let first = page(all.clone(), &filter("limit=2"), &p);
        let ids: Vec<u128> = first.items.iter().map(|v| v.id().as_u128()).collect();
        assert_eq!(ids, [5, 4]);
        all.push(h(10, 6, "a"));
        let cursor = first.next_cursor.unwrap();
        let second = page(
            all.clone(),
            &filter(&format!("limit=2&cursor={cursor}")),
            &p,
        );
        let ids: Vec<u128> = second.items.iter().map(|v| v.id().as_u128()).collect();
        assert_eq!(ids, [3, 2]);
        let last = page(
            all,
            &filter(&format!("limit=2&cursor={}", second.next_cursor.unwrap())),
            &p,
        );
        assert_eq!(last.items.len(), 1);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn filters_combine_and_every_bad_parameter_is_reported() {
        let p = policy();
        let all = vec![h(1, 1, "a"), h(2, 2, "b")];
        let got = page(
            all.clone(),
            &filter("team=b&severity=P2&status=open&template=agent_failure"),
            &p,
        );
        assert_eq!(got.items.len(), 1);
        assert!(matches!(&got.items[0], HandoffView::Incident(i) if i.team == "b"));
        assert!(page(all, &filter("severity=P1"), &p).items.is_empty());
        let err = Filter::parse(serde_urlencoded_like(
            "status=nope&severity=P9&limit=0&cursor=zz",
        ))
        .err()
        .unwrap();
        let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "severity", "limit", "cursor"]);
        assert_eq!((err.status(), err.code()), (400, "invalid_query"));
    }

    /// The NATS body sends `limit` as a number; the query as text.
    #[test]
    fn a_limit_is_a_number_or_its_text() {
        let q = |limit| ListQuery {
            limit: Some(limit),
            ..Default::default()
        };
        assert_eq!(Filter::parse(q(Whole::Number(7))).ok().unwrap().limit, 7);
        assert_eq!(
            Filter::parse(q(Whole::Text("7".into())))
                .ok()
                .unwrap()
                .limit,
            7
        );
        assert!(Filter::parse(q(Whole::Number(501))).is_err());
    }
}
