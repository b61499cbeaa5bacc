//! The incident's rules: open (auto-enrich, score, gate), acknowledge,
//! override, enrich, resolve, and the timer's tick (max-hold pages,
//! escalation steps, packet expiry).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Incident;
use crate::domain::event::{EventData, NewEvent, Notice, PageReason, RouteTarget};
use crate::domain::{hcs, BelowMin, DomainError, Packet, Policy, Report};

/// What someone (or the timer) asks of an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentCommand {
    /// A validated report; opens the handoff or joins it.
    Open {
        template: String,
        report: Report,
        /// Truncation warnings from parsing.
        warnings: Vec<String>,
        /// Where the report came from (stream sequence), for the audit.
        source: Option<String>,
    },
    /// A report whose dedup key's last handoff (`of`, occurrence
    /// `occurrence - 1`) is resolved: opens occurrence `occurrence`, linked
    /// to it, gated and paged like any new failure. On a handoff that
    /// exists it acts as `Open` (the other daemon opened it first).
    Recur {
        template: String,
        report: Report,
        warnings: Vec<String>,
        source: Option<String>,
        /// The previous occurrence's handoff.
        of: Uuid,
        /// This occurrence's number (2 for the first recurrence).
        occurrence: u32,
    },
    Acknowledge {
        by: String,
    },
    Override {
        by: String,
        reason: String,
    },
    Enrich {
        by: String,
        fields: Packet,
        team: Option<String>,
    },
    Resolve {
        by: String,
        note: Option<String>,
    },
}

const SYSTEM: &str = "baton";

/// Escalation steps one tick may store.
pub const MAX_STEPS_PER_TICK: u32 = 32;

/// The report stream sequence in a `source` of the form `report:<seq>`.
pub fn report_seq(source: &Option<String>) -> Option<u64> {
    source.as_deref()?.strip_prefix("report:")?.parse().ok()
}

fn ev(actor: &str, data: EventData) -> NewEvent {
    NewEvent {
        actor: actor.to_string(),
        data,
    }
}

/// The rules. `state` is `None` for an incident that has no events yet.
pub fn decide(
    state: Option<&Incident>,
    cmd: &IncidentCommand,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    match (state, cmd) {
        (
            None,
            IncidentCommand::Open {
                template,
                report,
                warnings,
                source,
            },
        ) => Ok(open(template, report, warnings, source, None, now, policy)),
        (
            None,
            IncidentCommand::Recur {
                template,
                report,
                warnings,
                source,
                of,
                occurrence,
            },
        ) => Ok(open(
            template,
            report,
            warnings,
            source,
            Some((*of, *occurrence)),
            now,
            policy,
        )),
        // A redelivered report (its sequence already joined), or the same
        // opening decided again (another daemon, a retry), changes nothing.
        (Some(h), IncidentCommand::Open { source, .. } | IncidentCommand::Recur { source, .. })
            if report_seq(source).is_some_and(|n| h.recent_reports.contains(&n))
                || (source.is_some() && *source == h.opened_by) =>
        {
            Ok(vec![])
        }
        // A resolved handoff is never joined: the report is a new
        // occurrence (the engine opens the next one).
        (Some(h), IncidentCommand::Open { .. } | IncidentCommand::Recur { .. })
            if h.resolved.is_some() =>
        {
            Err(DomainError::Resolved)
        }
        (Some(_), IncidentCommand::Open { source, .. } | IncidentCommand::Recur { source, .. }) => {
            Ok(vec![ev(
                SYSTEM,
                EventData::ReportedAgain {
                    report: source.clone(),
                },
            )])
        }
        (None, _) => Err(DomainError::NotFound),
        (Some(h), _) if h.resolved.is_some() => Err(DomainError::Resolved),
        (Some(h), IncidentCommand::Acknowledge { by }) => {
            if let Some(a) = &h.acknowledged {
                return Err(DomainError::AlreadyAcknowledged {
                    by: a.by.clone(),
                    at: a.at,
                });
            }
            Ok(vec![ev(
                by,
                EventData::Acknowledged {
                    by: by.clone(),
                    mtta_ms: (now - h.opened_at).num_milliseconds().max(0),
                    breached: now > h.first_response_due(policy),
                },
            )])
        }
        (Some(h), IncidentCommand::Override { by, reason }) => {
            if h.paged_at.is_some() {
                return Err(DomainError::AlreadyPaged);
            }
            let mut out = vec![ev(
                by,
                EventData::Overridden {
                    by: by.clone(),
                    reason: reason.clone(),
                },
            )];
            out.push(ev(by, page(h, PageReason::Override, policy)));
            Ok(out)
        }
        (Some(h), IncidentCommand::Enrich { by, fields, team }) => {
            enrich(h, by, fields, team, policy)
        }
        (Some(_), IncidentCommand::Resolve { by, note }) => Ok(vec![ev(
            by,
            EventData::Resolved {
                by: by.clone(),
                note: note.clone(),
            },
        )]),
    }
}

fn notice(
    h: &Incident,
    routes: &[String],
    respond_by: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Box<Notice> {
    // Drills reach the drill route only, unless configured to page for real.
    let drill_route;
    let routes = match (&policy.drill_route, h.drill) {
        (Some(r), true) => {
            drill_route = [r.clone()];
            &drill_route[..]
        }
        _ => routes,
    };
    Box::new(Notice {
        routes: routes
            .iter()
            .map(|r| RouteTarget::new(r.clone(), policy.target(r, &h.team, &h.packet)))
            .collect(),
        team: h.team.clone(),
        severity: h.severity,
        template: h.template.clone(),
        hcs: h.hcs.clone(),
        packet: h.packet.clone(),
        incomplete: !h.gate_passed,
        respond_by,
        work: None,
    })
}

fn page(h: &Incident, reason: PageReason, policy: &Policy) -> EventData {
    let sp = policy.severity(h.severity);
    let respond_by = h.next_step(policy).map(|s| s.due);
    EventData::Paged {
        reason,
        notice: notice(h, &sp.page_routes, respond_by, policy),
    }
}

fn open(
    template: &str,
    report: &Report,
    warnings: &[String],
    source: &Option<String>,
    recurrence: Option<(Uuid, u32)>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Vec<NewEvent> {
    let sp = policy.severity(report.severity);
    let mut events = Vec::with_capacity(4);
    let mut packet = report.packet.clone();
    let mut team = report.team.clone();

    // Auto-enrichment fills only what the runner left out.
    let mut sources = Vec::new();
    let mut fields = Vec::new();
    let mut values = Packet::default();
    let mut team_filled = None;
    if let Some(wf) = &report.packet.workflow_id {
        if let Some(rule) = policy.ownership_for(wf) {
            let from = Packet {
                owner: Some(crate::domain::Owner {
                    primary: Some(rule.primary.clone()),
                    backup: rule.backup.clone(),
                }),
                ..Default::default()
            };
            let mut changed = packet.merge_from(&from, true);
            if team.is_none() {
                team = Some(rule.team.clone());
                team_filled = Some(rule.team.clone());
                changed.push("team".into());
            }
            if !changed.is_empty() {
                values.merge_from(&from, false);
                sources.push(format!("ownership:{}", rule.workflow));
                fields.extend(changed);
            }
        }
        if let Some(rule) = policy.runbook_for(wf) {
            if packet.rollback_command.is_none() {
                packet.rollback_command = Some(rule.rollback_command.clone());
                values.rollback_command = Some(rule.rollback_command.clone());
                sources.push(format!("runbook:{}", rule.workflow));
                fields.push("rollback_command".into());
            }
        }
    }
    // Only the fields that actually changed are recorded as enriched values.
    if let Some(o) = values.owner.as_mut() {
        if !fields.iter().any(|f| f == "owner.primary") {
            o.primary = None;
        }
        if !fields.iter().any(|f| f == "owner.backup") {
            o.backup = None;
        }
        if o.primary.is_none() && o.backup.is_none() {
            values.owner = None;
        }
    }

    events.push(ev(
        SYSTEM,
        EventData::Opened {
            template: template.to_string(),
            severity: report.severity,
            team: report
                .team
                .clone()
                .unwrap_or_else(|| policy.default_team.clone()),
            packet: Box::new(report.packet.clone()),
            dedup_key: report.dedup_key.clone(),
            report: source.clone(),
            drill: report.drill,
            recurrence_of: recurrence.map(|(of, _)| of),
            occurrence: recurrence.map(|(_, n)| n),
        },
    ));
    if !fields.is_empty() {
        events.push(ev(
            SYSTEM,
            EventData::Enriched {
                sources,
                fields,
                values: Box::new(values),
                team: team_filled,
            },
        ));
    }
    let score = hcs::score(&packet, team.as_deref());
    let passed = score.score >= sp.min_hcs;
    let missing = score.missing.clone();
    events.push(ev(
        SYSTEM,
        EventData::Scored {
            hcs: score,
            min_hcs: sp.min_hcs,
            passed,
            warnings: warnings.to_vec(),
        },
    ));
    // Build the state so far to phrase the page or the hold from it.
    let mut h: Option<Incident> = None;
    let sealed: Vec<_> = events
        .iter()
        .map(|e| e.clone().seal(Uuid::nil(), Uuid::nil(), now))
        .collect();
    for e in &sealed {
        super::apply(&mut h, e);
    }
    let h = h.expect("opened creates state");
    if passed {
        events.push(ev(SYSTEM, page(&h, PageReason::GatePassed, policy)));
    } else {
        let (until, ticket) = match sp.below_min {
            BelowMin::EnrichThenPage => (crate::domain::later(now, sp.max_hold), None),
            BelowMin::Queue | BelowMin::Ticket => (
                None,
                Some(notice(
                    &h,
                    &[crate::domain::ROUTE_QUEUE.to_string()],
                    h.next_step(policy).map(|s| s.due),
                    policy,
                )),
            ),
        };
        events.push(ev(
            SYSTEM,
            EventData::Held {
                action: sp.below_min,
                until,
                missing,
                ticket,
            },
        ));
    }
    events
}

fn enrich(
    h: &Incident,
    by: &str,
    fields: &Packet,
    team: &Option<String>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    let mut packet = h.packet.clone();
    let mut changed = packet.merge_from(fields, false);
    let team_changed = team.as_ref().filter(|t| **t != h.team).cloned();
    if team_changed.is_some() {
        changed.push("team".into());
    }
    if changed.is_empty() {
        return Err(DomainError::Invalid {
            field: "fields".into(),
            message: "enrich changes nothing: give at least one new field value".into(),
        });
    }
    let sp = policy.severity(h.severity);
    let mut next = h.clone();
    next.packet = packet;
    if let Some(t) = &team_changed {
        next.team = t.clone();
    }
    // The default team is a placeholder, not ownership clarity.
    let team_known = (next.team != policy.default_team).then_some(next.team.as_str());
    let score = hcs::score(&next.packet, team_known);
    let passed = score.score >= sp.min_hcs;
    next.hcs = score.clone();
    next.gate_passed = passed;
    let mut out = vec![
        ev(
            by,
            EventData::Enriched {
                sources: vec!["manual".into()],
                fields: changed,
                values: Box::new(fields.clone()),
                team: team_changed,
            },
        ),
        ev(
            by,
            EventData::Scored {
                hcs: score,
                min_hcs: sp.min_hcs,
                passed,
                warnings: vec![],
            },
        ),
    ];
    if passed && h.paged_at.is_none() {
        out.push(ev(by, page(&next, PageReason::Enriched, policy)));
    }
    Ok(out)
}

/// The SLA timer's wake-up: whatever is due at `now` (a max-hold page,
/// escalation steps, the packet's expiry).
pub fn tick(h: &Incident, now: DateTime<Utc>, policy: &Policy) -> Vec<NewEvent> {
    let mut out = Vec::new();
    if h.resolved.is_some() {
        return out;
    }
    let mut cur = h.clone();
    let push = |cur: &mut Incident, data: EventData, out: &mut Vec<NewEvent>| {
        let e = ev(SYSTEM, data);
        let mut s = Some(cur.clone());
        super::apply(&mut s, &e.clone().seal(Uuid::nil(), cur.id, now));
        *cur = s.expect("state stays");
        out.push(e);
    };
    if cur.paged_at.is_none()
        && cur.held == Some(BelowMin::EnrichThenPage)
        && cur.acknowledged.is_none()
        && cur.hold_until.is_some_and(|u| u <= now)
    {
        let data = page(&cur, PageReason::MaxHold, policy);
        push(&mut cur, data, &mut out);
    }
    let sp = policy.severity(cur.severity);
    // At most MAX_STEPS_PER_TICK steps per commit (a daemon down for long
    // must not build one huge message); the rest are due at once and fire
    // on the next tick.
    let mut fired = 0;
    while let Some(step) = cur
        .next_step(policy)
        .filter(|s| s.due <= now && fired < MAX_STEPS_PER_TICK)
    {
        fired += 1;
        let routes = sp.level_routes(step.level).to_vec();
        let respond_by = sp.step(cur.opened_at, step.step + 1).map(|s| s.due);
        let data = EventData::Escalated {
            step: step.step,
            level: step.level,
            repeat: step.repeat,
            deadline: step.due,
            notice: notice(&cur, &routes, respond_by, policy),
        };
        push(&mut cur, data, &mut out);
    }
    if cur.acknowledged.is_none() && !cur.expired {
        if let Some(at) = cur.expires_at().filter(|t| *t <= now) {
            let data = EventData::Expired {
                deadline: at,
                notice: notice(
                    &cur,
                    &[crate::domain::ROUTE_OWNER.to_string()],
                    None,
                    policy,
                ),
            };
            push(&mut cur, data, &mut out);
        }
    }
    out
}
