//! The pages: the board and its rows, one handoff, who is on call.

use super::*;

pub(super) async fn board(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let filters = q.map(|Query(f)| f).unwrap_or_default();
    let b = board_data(&s, filters, who.as_ref()).await;
    page(StatusCode::OK, views::board(&b, who.as_ref().map(|w| &w.1)))
}

pub(super) async fn rows(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let filters = q.map(|Query(f)| f).unwrap_or_default();
    let b = board_data(&s, filters, who.as_ref()).await;
    page(StatusCode::OK, views::rows(&b))
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// The list as the board shows it: the app's list (its filters and their
/// validation), sorted by severity then age, "mine" applied.
async fn board_data(s: &AppState, filters: Filters, who: Option<&(Actor, Viewer)>) -> Board {
    let now = Utc::now();
    let team_tab = filters.team_tab();
    let query = ListQuery {
        kind: Some(if team_tab { "team" } else { "incident" }.into()),
        status: Some(non_empty(&filters.state).unwrap_or_else(|| "open".into())),
        severity: if team_tab {
            None
        } else {
            non_empty(&filters.severity)
        },
        team: non_empty(&filters.team),
        limit: Some(crate::app::requests::Whole::Number(
            crate::app::list::MAX_LIMIT as u64,
        )),
        ..ListQuery::default()
    };
    let (items, error) = match s.app.list(query).await {
        Ok(p) => (p.items, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let me = who.map(|w| w.1.person.clone());
    let my_teams = me
        .as_deref()
        .and_then(|p| s.identity.person(p))
        .map(|p| p.teams.clone())
        .unwrap_or_default();
    let mine = filters.mine();
    let mut incidents = Vec::new();
    let mut teams = Vec::new();
    for item in items {
        match item {
            HandoffView::Incident(i) => {
                let paged = paged_person(s, i.id, i.events).await;
                if mine {
                    let me = me.as_deref();
                    let concerns = me.is_some()
                        && (paged.as_deref() == me
                            || i.owners.primary.as_deref() == me
                            || i.owners.backup.as_deref() == me);
                    if !concerns {
                        continue;
                    }
                }
                incidents.push(IncidentRow {
                    id: i.id,
                    severity: i.severity.to_string(),
                    team: i.team.clone(),
                    hcs: i.hcs.score,
                    paged,
                    status: i.status.as_str().into(),
                    opened_at: i.opened_at,
                    next_deadline: i.next_deadline,
                    summary: i
                        .packet
                        .error_summary
                        .clone()
                        .or_else(|| i.packet.workflow_id.clone()),
                });
            }
            HandoffView::Team(t) => {
                if mine
                    && !(my_teams.contains(&t.to_team)
                        || my_teams.contains(&t.from_team)
                        || me.as_deref() == Some(t.initiated_by.as_str()))
                {
                    continue;
                }
                teams.push(TeamRow {
                    id: t.id,
                    template: t.template.clone(),
                    from_team: t.from_team.clone(),
                    to_team: t.to_team.clone(),
                    status: t.status.as_str().into(),
                    opened_at: t.opened_at,
                    next_deadline: t.next_deadline,
                    checked: t.checklist.iter().filter(|c| c.checked.is_some()).count(),
                    checklist: t.checklist.len(),
                });
            }
        }
    }
    incidents.sort_by(|a, b| (&a.severity, a.opened_at).cmp(&(&b.severity, b.opened_at)));
    teams.sort_by_key(|t| t.opened_at);
    Board {
        filters,
        incidents,
        teams,
        now,
        error,
    }
}

/// The person the latest page or escalation of `id` named (the stored
/// notice, never recomputed), cached until the handoff has more events.
async fn paged_person(s: &AppState, id: Uuid, events: u32) -> Option<String> {
    if let Some((n, p)) = s.console.paged.lock().expect("not poisoned").get(&id) {
        if *n == events {
            return p.clone();
        }
    }
    let person = match s.app.events(id).await {
        Ok(events) => latest_paged(&events),
        Err(e) => {
            tracing::debug!(%id, error = %e, "who was paged: events not read");
            return None;
        }
    };
    let mut cache = s.console.paged.lock().expect("not poisoned");
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(id, (events, person.clone()));
    person
}

/// The first person of the latest notice that names one.
pub fn latest_paged(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match &e.data {
        EventData::Paged { notice, .. } | EventData::Escalated { notice, .. } => {
            notice.routes.iter().find_map(|r| r.person.clone())
        }
        _ => None,
    })
}

pub(super) async fn detail(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let viewer = who.as_ref().map(|w| &w.1);
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found(viewer);
    };
    let view = match s.app.get(id).await {
        Ok(v) => v,
        Err(e) => return app_error(e, viewer),
    };
    let events = match s.app.events(id).await {
        Ok(e) => e,
        Err(e) => return app_error(e, viewer),
    };
    let now = Utc::now();
    let d = Detail {
        actions: super::actions::actions(&s, who.as_ref().map(|w| &w.0), &view),
        lines: crate::replay::timeline::lines(&events, s.app.policy()),
        story: crate::replay::timeline::timeline(&events, s.app.policy(), now),
        view,
        signed_in: who.is_some(),
        now,
    };
    page(StatusCode::OK, views::handoff(&d, viewer))
}

/// The verbs the console posts, each the `app` verb of the same name.
#[derive(serde::Deserialize, Default)]
pub(super) struct AtQuery {
    at: Option<String>,
}

pub(super) async fn oncall(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AtQuery>, QueryRejection>,
) -> Response {
    let who = session(&s, &headers).await;
    if reads_closed(&s, &who) {
        return Redirect::to("/login").into_response();
    }
    let at = q.ok().and_then(|Query(q)| non_empty(&q.at));
    let service = s.app.oncall();
    let now = match service.who(&OncallQuery::default()) {
        Ok(a) => a.oncall,
        Err(e) => return app_error(e, who.as_ref().map(|w| &w.1)),
    };
    let rotations = now
        .into_iter()
        .map(|v| {
            let next = service
                .who(&OncallQuery {
                    at: Some(v.shift_end.to_rfc3339()),
                    rotation: Some(v.rotation.clone()),
                    known: None,
                })
                .ok()
                .and_then(|a| a.oncall.into_iter().next())
                .and_then(|n| n.person);
            RotationRow { now: v, next }
        })
        .collect();
    let (at_answer, error) = match &at {
        None => (Vec::new(), None),
        Some(at) => match service.who(&OncallQuery {
            at: Some(at.clone()),
            ..OncallQuery::default()
        }) {
            Ok(a) => (a.oncall, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
    };
    let until_now = Utc::now();
    let mut overrides: Vec<crate::app::oncall::OverrideView> = service.roster().read(|d| {
        d.rotations
            .values()
            .flat_map(|r| &r.overrides)
            .filter(|o| o.cancelled_at.is_none() && o.until > until_now)
            .map(Into::into)
            .collect()
    });
    overrides.sort_by_key(|o| o.from);
    let p = OncallPage {
        rotations,
        at,
        at_answer,
        error,
        overrides,
    };
    page(
        StatusCode::OK,
        views::oncall(&p, who.as_ref().map(|w| &w.1)),
    )
}
