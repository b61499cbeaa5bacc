//! `/v1/handoffs`: the list, one handoff, its timeline, and the commands.
//!
//! Reads come from the projection (rebuilt from `BATON_EVENTS`); the
//! timeline is read straight from the stream. Commands go through
//! [`commands::run`], the same function the NATS `<prefix>.cmd.*` service
//! calls, so both transports share one path and one set of error codes.
//! The shapes they answer live in [`super::views`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;
use uuid::Uuid;

use super::problem::{Problem, ProblemDetails, ProblemField};
use super::views::{
    AckBody, ByBody, CancelBody, CheckBody, CommandReply, EnrichBody, HandoffPage, HandoffView,
    OverrideBody, RateBody, ResolveBody, ResubmitBody, ReturnBody, StartBody, Timeline,
};
use super::AppState;
use crate::commands;
use crate::domain::{Handoff, Kind, Policy, Severity, Status, TeamStatus};
use crate::projector::{off_runtime, Key, Listing, Select, StatusFilter};

/// Default and largest page size of the list.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// Filters and paging of the list. Unknown values are 400 `invalid_query`.
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
    pub template: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The cursor that continues the list after `h`: its [`Key`] (list order
/// is newest first, ties by id) as `<opened_at nanos>.<id, simple>`.
fn cursor_after(h: &Handoff) -> String {
    let Key(at, id) = Key::of(h);
    format!("{at}.{}", id.simple())
}

/// The position a cursor from [`cursor_after`] names.
fn parse_cursor(s: &str) -> Option<Key> {
    let (t, id) = s.split_once('.')?;
    Some(Key(t.parse().ok()?, Uuid::try_parse(id).ok()?))
}

/// A parsed list query: what to keep, and which page.
struct Filter {
    select: Select,
    limit: usize,
    after: Option<Key>,
}

impl Filter {
    /// Every problem with the query at once.
    fn parse(q: ListQuery) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(ProblemField {
                field: field.into(),
                code: "invalid_value".into(),
                message,
            })
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
            Some(s) => s.parse::<Severity>().ok().or_else(|| {
                bad(
                    "severity",
                    format!("unknown severity {s:?}; known: P1, P2, P3"),
                );
                None
            }),
        };
        let limit = match q.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
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
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "the query parameters are invalid",
            )
            .with_errors(errors));
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
fn page(handoffs: impl Listing, filter: &Filter, policy: &Policy) -> HandoffPage {
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

/// List handoffs, newest first, with stable cursor pagination.
#[utoipa::path(
    get,
    path = "/v1/handoffs",
    tag = "handoffs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of handoffs", body = HandoffPage),
        (status = 400, description = "Invalid query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Token needed (with `protect_reads`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HandoffPage>, Problem> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let filter = Filter::parse(q)?;
    // A narrow filter may pass over much of the index: off the runtime.
    let engine = s.engine.clone();
    let listed = off_runtime(move || page(&**engine.projection(), &filter, engine.policy())).await;
    Ok(Json(listed))
}

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    commands::parse_id(id).map_err(Problem::from)
}

/// One handoff's current state.
#[utoipa::path(
    get,
    path = "/v1/handoffs/{id}",
    tag = "handoffs",
    params(("id" = Uuid, Path, description = "Handoff id")),
    responses(
        (status = 200, description = "Current state", body = HandoffView),
        (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not a handoff id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<HandoffView>, Problem> {
    let id = parse_id(&id)?;
    match s.engine.load(id).await {
        Ok(Some(h)) => Ok(Json(HandoffView::new(&h, s.engine.policy()))),
        Ok(None) => Err(Problem::not_found("no handoff with that id")),
        Err(e) => Err(Problem::unavailable("loading a handoff", &e)),
    }
}

/// A handoff's events, read from `BATON_EVENTS`.
#[utoipa::path(
    get,
    path = "/v1/handoffs/{id}/events",
    tag = "handoffs",
    params(("id" = Uuid, Path, description = "Handoff id")),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not a handoff id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, Problem> {
    let id = parse_id(&id)?;
    let commits = s
        .engine
        .store()
        .read_after(id, 0)
        .await
        .map_err(|e| Problem::unavailable("reading a timeline", &e))?;
    if commits.is_empty() {
        return Err(Problem::not_found("no handoff with that id"));
    }
    let events = commits
        .into_iter()
        .flat_map(|(seq, c)| c.events.into_iter().map(move |e| (seq, e)))
        .map(|(seq, e)| {
            let mut v = serde_json::to_value(&e).expect("events serialize");
            if let Value::Object(m) = &mut v {
                m.insert("seq".into(), seq.into());
            }
            v
        })
        .collect();
    Ok(Json(Timeline {
        handoff_id: id,
        events,
    }))
}

/// Runs one command: the body must be a JSON object (empty means `{}`).
async fn run(
    s: &AppState,
    verb: &str,
    id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    let id = parse_id(id)?;
    let body = super::body(body)?;
    let obj = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "not_an_object",
                    "the request body must be a JSON object",
                ))
            }
            Err(e) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("not valid JSON: {e}"),
                ))
            }
        }
    };
    let cfg = &s.limits;
    match commands::run(&s.engine, verb, id, &obj, cfg.max_field_bytes).await {
        Ok(v) => Ok(Json(v)),
        Err(e) => {
            tracing::info!(verb, code = %e.code, "command refused");
            Err(e.into())
        }
    }
}

macro_rules! command_endpoint {
    ($name:ident, $verb:literal, $body:ty, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = concat!("/v1/handoffs/{id}/", $verb),
            tag = "commands",
            params(("id" = Uuid, Path, description = "Handoff id")),
            request_body = $body,
            responses(
                (status = 200, description = "Done; the same reply as `<prefix>.cmd.*`", body = CommandReply),
                (status = 400, description = "Body is not a JSON object", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 404, description = "No such handoff", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 409, description = "Refused by the rules (resolved, already acknowledged, already paged) or contended", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 422, description = "A field is missing or wrong", body = ProblemDetails, content_type = "application/problem+json"),
                (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
            ),
            security(("bearer" = []))
        )]
        pub async fn $name(
            State(s): State<AppState>,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<Value>, Problem> {
            run(&s, $verb, &id, body).await
        }
    };
}

command_endpoint!(
    ack,
    "ack",
    AckBody,
    "Acknowledge: stops escalation, records MTTA."
);
command_endpoint!(
    override_gate,
    "override",
    OverrideBody,
    "Page a held handoff at once despite the HCS gate."
);
command_endpoint!(
    enrich,
    "enrich",
    EnrichBody,
    "Fill packet fields; re-scores and may release a hold."
);
command_endpoint!(resolve, "resolve", ResolveBody, "Close a handoff.");
command_endpoint!(
    accept,
    "accept",
    ByBody,
    "Team handoff: the receiving team takes it."
);
command_endpoint!(
    check,
    "check",
    CheckBody,
    "Team handoff: check off an exit criterion."
);
command_endpoint!(
    complete,
    "complete",
    ByBody,
    "Team handoff: complete it (refused while any checklist item is unchecked)."
);
command_endpoint!(
    return_to_sender,
    "return",
    ReturnBody,
    "Team handoff: send it back naming what is missing."
);
command_endpoint!(
    resubmit,
    "resubmit",
    ResubmitBody,
    "Team handoff: fill in what was missing and send it again."
);
command_endpoint!(cancel, "cancel", CancelBody, "Team handoff: call it off.");
command_endpoint!(
    rate,
    "rate",
    RateBody,
    "Team handoff: rate a completed handoff's quality, 1-5."
);

/// Start a team handoff from a template.
#[utoipa::path(
    post,
    path = "/v1/handoffs",
    tag = "commands",
    request_body = StartBody,
    responses(
        (status = 200, description = "Started (or joined, with the same dedup_key)", body = CommandReply),
        (status = 400, description = "Body is not a JSON object", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such template", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A required field is missing or a value is wrong", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    let body = super::body(body)?;
    match commands::handle(&s.engine, "start", &body, s.limits.max_field_bytes).await {
        Ok(v) => Ok(Json(v)),
        Err(e) => {
            tracing::info!(verb = "start", code = %e.code, "command refused");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                "limit" => out.limit = v,
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
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "severity", "limit", "cursor"]);
        assert_eq!((err.status, err.code.as_str()), (400, "invalid_query"));
    }
}
