//! The handoff aggregate: `decide` holds every rule, `apply` only updates.
//!
//! Neither reads a clock or does I/O: `now` and the policy come in as
//! arguments, ids and timestamps are added by the caller
//! ([`NewEvent::seal`]). Replaying the same events always yields the same
//! state, which is what lets the projector, the replay tools and a second
//! daemon agree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{EventData, NewEvent, Notice, PageReason, RouteTarget};
use super::{hcs, BelowMin, DomainError, Hcs, Packet, Policy, Report, Severity};

/// Where a handoff stands, for humans and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Held,
    Paged,
    Escalated,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Paged => "paged",
            Status::Escalated => "escalated",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

/// A person and a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Current state of one handoff, derived from its events only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub id: Uuid,
    pub template: String,
    pub severity: Severity,
    pub team: String,
    pub opened_at: DateTime<Utc>,
    pub packet: Packet,
    pub hcs: Hcs,
    pub gate_passed: bool,
    /// Set while the gate holds the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<BelowMin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paged_at: Option<DateTime<Utc>>,
    pub incomplete: bool,
    /// Escalation steps already stored.
    pub escalation_steps: u32,
    /// Highest escalation level reached (0 = none).
    pub escalation_level: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtta_ms: Option<i64>,
    pub expired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Stamp>,
    /// Reports that joined this handoff, the first included.
    pub reports: u32,
    /// Events applied.
    pub events: u32,
    /// A synthetic drill.
    #[serde(default)]
    pub drill: bool,
    /// Team handoffs only: template, lifecycle, checklist, feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<Box<super::work::WorkState>>,
    /// `BATON_REPORTS` sequences of the latest reports joined (at most
    /// [`RECENT_REPORTS`]): a redelivered report is recognised and changes
    /// nothing. A set, not a high-water mark, because reports are processed
    /// concurrently and may be stored out of order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_reports: Vec<u64>,
}

/// How many joined report sequences a handoff remembers. Redelivery comes
/// within the ingest's ack wait (30 s), far inside this many reports.
pub const RECENT_REPORTS: usize = 64;

impl Handoff {
    fn joined_report(&mut self, source: &Option<String>) {
        if let Some(n) = report_seq(source) {
            self.recent_reports.push(n);
            if self.recent_reports.len() > RECENT_REPORTS {
                self.recent_reports.remove(0);
            }
        }
    }
}

impl Handoff {
    /// A handoff with nothing happened yet but its opening.
    pub fn new(
        id: Uuid,
        template: &str,
        severity: Severity,
        team: &str,
        opened_at: DateTime<Utc>,
    ) -> Self {
        Handoff {
            id,
            template: template.to_string(),
            severity,
            team: team.to_string(),
            opened_at,
            packet: Packet::default(),
            // `scored` always follows `opened` in the same commit.
            hcs: Hcs::default(),
            gate_passed: false,
            held: None,
            hold_until: None,
            paged_at: None,
            incomplete: false,
            escalation_steps: 0,
            escalation_level: 0,
            acknowledged: None,
            mtta_ms: None,
            expired: false,
            overridden: None,
            resolved: None,
            reports: 1,
            events: 1,
            drill: false,
            work: None,
            recent_reports: Vec::new(),
        }
    }

    pub fn status(&self) -> Status {
        if let Some(w) = &self.work {
            use super::work::WorkStatus as W;
            return match w.status {
                W::Initiated => Status::Paged,
                W::Returned => Status::Held,
                W::Accepted => Status::Acknowledged,
                W::Completed | W::Cancelled => Status::Resolved,
            };
        }
        if self.resolved.is_some() {
            Status::Resolved
        } else if self.acknowledged.is_some() {
            Status::Acknowledged
        } else if self.escalation_steps > 0 {
            Status::Escalated
        } else if self.paged_at.is_some() {
            Status::Paged
        } else {
            Status::Held
        }
    }

    /// The next escalation step, if any is left and nobody has acknowledged.
    pub fn next_step(&self, policy: &Policy) -> Option<super::Step> {
        if self.acknowledged.is_some() || self.resolved.is_some() {
            return None;
        }
        policy
            .severity(self.severity)
            .step(self.opened_at, self.escalation_steps + 1)
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        let ttl = self.packet.ttl_seconds?;
        super::later(self.opened_at, std::time::Duration::from_secs(ttl))
    }

    /// The earliest moment at which a `Tick` could produce events: the SLA
    /// timer arms exactly this.
    pub fn next_deadline(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        if self.resolved.is_some() {
            return None;
        }
        if let Some(w) = &self.work {
            return w.next_deadline(self.opened_at);
        }
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        // An acknowledged hold needs no page: someone has it.
        if self.paged_at.is_none()
            && self.held == Some(BelowMin::EnrichThenPage)
            && self.acknowledged.is_none()
        {
            consider(self.hold_until);
        }
        consider(self.next_step(policy).map(|s| s.due));
        if self.acknowledged.is_none() && !self.expired {
            consider(self.expires_at());
        }
        next
    }

    /// When the first-response SLA is due.
    pub fn first_response_due(&self, policy: &Policy) -> DateTime<Utc> {
        super::later(
            self.opened_at,
            policy.severity(self.severity).first_response,
        )
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// What someone (or the timer) asks of a handoff.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A validated report; opens the handoff or joins it.
    Open {
        template: String,
        report: Report,
        /// Truncation warnings from parsing.
        warnings: Vec<String>,
        /// Where the report came from (stream sequence), for the audit.
        source: Option<String>,
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
    /// The SLA timer's wake-up: fire whatever is due at `now`.
    Tick,
    /// A team-handoff command.
    Work(super::work::WorkCommand),
}

const SYSTEM: &str = "baton";

/// Escalation steps one tick may store.
pub const MAX_STEPS_PER_TICK: u32 = 32;

/// The report stream sequence in a `source` of the form `report:<seq>`.
fn report_seq(source: &Option<String>) -> Option<u64> {
    source.as_deref()?.strip_prefix("report:")?.parse().ok()
}

fn ev(actor: &str, data: EventData) -> NewEvent {
    NewEvent {
        actor: actor.to_string(),
        data,
    }
}

/// The rules. `state` is `None` for a handoff that has no events yet.
pub fn decide(
    state: Option<&Handoff>,
    cmd: &Command,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<NewEvent>, DomainError> {
    if let Command::Work(w) = cmd {
        return super::work::decide(state, w, now, policy);
    }
    if let Some(w) = state.and_then(|h| h.work.as_deref()) {
        return match cmd {
            Command::Tick => Ok(super::work::tick(state.expect("some"), w, now, policy)),
            _ => Err(DomainError::Invalid {
                field: "id".into(),
                message: "this is a team handoff; use accept/check/complete/return/cancel/rate"
                    .into(),
            }),
        };
    }
    match (state, cmd) {
        (_, Command::Work(_)) => unreachable!("handled above"),
        (
            None,
            Command::Open {
                template,
                report,
                warnings,
                source,
            },
        ) => Ok(open(template, report, warnings, source, now, policy)),
        // A redelivered report (its sequence already joined) changes nothing.
        (Some(h), Command::Open { source, .. })
            if report_seq(source).is_some_and(|n| h.recent_reports.contains(&n)) =>
        {
            Ok(vec![])
        }
        (Some(_), Command::Open { source, .. }) => Ok(vec![ev(
            SYSTEM,
            EventData::ReportedAgain {
                report: source.clone(),
            },
        )]),
        (None, _) => Err(DomainError::NotFound),
        (Some(h), Command::Tick) => Ok(tick(h, now, policy)),
        (Some(h), _) if h.resolved.is_some() => Err(DomainError::Resolved),
        (Some(h), Command::Acknowledge { by }) => {
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
        (Some(h), Command::Override { by, reason }) => {
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
        (Some(h), Command::Enrich { by, fields, team }) => enrich(h, by, fields, team, policy),
        (Some(_), Command::Resolve { by, note }) => Ok(vec![ev(
            by,
            EventData::Resolved {
                by: by.clone(),
                note: note.clone(),
            },
        )]),
    }
}

fn notice(
    h: &Handoff,
    routes: &[String],
    respond_by: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Notice {
    // Drills reach the drill route only, unless configured to page for real.
    let drill_route;
    let routes = match (&policy.drill_route, h.drill) {
        (Some(r), true) => {
            drill_route = [r.clone()];
            &drill_route[..]
        }
        _ => routes,
    };
    Notice {
        routes: routes
            .iter()
            .map(|r| RouteTarget {
                route: r.clone(),
                target: policy.target(r, &h.team, &h.packet),
            })
            .collect(),
        team: h.team.clone(),
        severity: h.severity,
        template: h.template.clone(),
        hcs: h.hcs.clone(),
        packet: h.packet.clone(),
        incomplete: !h.gate_passed,
        respond_by,
        work: None,
    }
}

fn page(h: &Handoff, reason: PageReason, policy: &Policy) -> EventData {
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
                owner: Some(super::Owner {
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
            packet: report.packet.clone(),
            dedup_key: report.dedup_key.clone(),
            report: source.clone(),
            drill: report.drill,
        },
    ));
    if !fields.is_empty() {
        events.push(ev(
            SYSTEM,
            EventData::Enriched {
                sources,
                fields,
                values,
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
    let mut h: Option<Handoff> = None;
    let sealed: Vec<_> = events
        .iter()
        .map(|e| e.clone().seal(Uuid::nil(), Uuid::nil(), now))
        .collect();
    for e in &sealed {
        apply(&mut h, e);
    }
    let h = h.expect("opened creates state");
    if passed {
        events.push(ev(SYSTEM, page(&h, PageReason::GatePassed, policy)));
    } else {
        let (until, ticket) = match sp.below_min {
            BelowMin::EnrichThenPage => (super::later(now, sp.max_hold), None),
            BelowMin::Queue | BelowMin::Ticket => (
                None,
                Some(notice(
                    &h,
                    &[super::ROUTE_QUEUE.to_string()],
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
    h: &Handoff,
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
                values: fields.clone(),
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

fn tick(h: &Handoff, now: DateTime<Utc>, policy: &Policy) -> Vec<NewEvent> {
    let mut out = Vec::new();
    if h.resolved.is_some() {
        return out;
    }
    let mut cur = h.clone();
    let push = |cur: &mut Handoff, data: EventData, out: &mut Vec<NewEvent>| {
        let e = ev(SYSTEM, data);
        let mut s = Some(cur.clone());
        apply(&mut s, &e.clone().seal(Uuid::nil(), cur.id, now));
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
                notice: notice(&cur, &[super::ROUTE_OWNER.to_string()], None, policy),
            };
            push(&mut cur, data, &mut out);
        }
    }
    out
}

/// Applies one event. No rules here: whatever was stored happened.
pub fn apply(state: &mut Option<Handoff>, event: &super::Event) {
    if let EventData::Initiated {
        template,
        by,
        fields,
        completeness,
        ..
    } = &event.data
    {
        if state.is_none() {
            let mut h = Handoff::new(
                event.handoff_id,
                &template.name,
                template.priority,
                &template.to_team,
                event.occurred_at,
            );
            h.hcs = completeness.clone();
            // The receiving team is notified as the handoff starts.
            h.gate_passed = true;
            h.paged_at = Some(event.occurred_at);
            h.work = Some(Box::new(super::work::WorkState {
                template: (**template).clone(),
                status: super::work::WorkStatus::Initiated,
                initiated_by: by.clone(),
                fields: fields.clone(),
                submitted_at: event.occurred_at,
                accepted: None,
                checked: Default::default(),
                returns: 0,
                completed: None,
                cancelled: None,
                rating: None,
                accept_missed: false,
                complete_missed: false,
            }));
            *state = Some(h);
        }
        return;
    }
    if let Some(h) = state.as_mut().filter(|h| h.work.is_some()) {
        h.events += 1;
        super::work::apply(h, event);
        return;
    }
    if let EventData::Opened {
        template,
        severity,
        team,
        packet,
        drill,
        report,
        ..
    } = &event.data
    {
        if state.is_none() {
            let mut h = Handoff::new(
                event.handoff_id,
                template,
                *severity,
                team,
                event.occurred_at,
            );
            h.packet = packet.clone();
            h.drill = *drill;
            h.joined_report(report);
            *state = Some(h);
            return;
        }
    }
    let Some(h) = state.as_mut() else {
        return;
    };
    h.events += 1;
    match &event.data {
        EventData::Opened { .. } => h.reports += 1,
        EventData::ReportedAgain { report } => {
            h.reports += 1;
            h.joined_report(report);
        }
        // Team-handoff events apply through `work::apply` above.
        EventData::Initiated { .. }
        | EventData::Accepted { .. }
        | EventData::Checked { .. }
        | EventData::Returned { .. }
        | EventData::Resubmitted { .. }
        | EventData::Completed { .. }
        | EventData::Cancelled { .. }
        | EventData::Rated { .. }
        | EventData::SlaMissed { .. } => {}
        EventData::Enriched { values, team, .. } => {
            h.packet.merge_from(values, false);
            if let Some(t) = team {
                h.team = t.clone();
            }
        }
        EventData::Scored { hcs, passed, .. } => {
            h.hcs = hcs.clone();
            h.gate_passed = *passed;
        }
        EventData::Held { action, until, .. } => {
            h.held = Some(*action);
            h.hold_until = *until;
        }
        EventData::Paged { notice, .. } => {
            h.paged_at.get_or_insert(event.occurred_at);
            h.held = None;
            h.hold_until = None;
            h.incomplete = notice.incomplete;
        }
        EventData::Escalated { step, level, .. } => {
            h.escalation_steps = h.escalation_steps.max(*step);
            h.escalation_level = h.escalation_level.max(*level);
        }
        EventData::Acknowledged { by, mtta_ms, .. } => {
            h.acknowledged = Some(Stamp {
                by: by.clone(),
                at: event.occurred_at,
            });
            h.mtta_ms = Some(*mtta_ms);
        }
        EventData::Overridden { by, .. } => {
            h.overridden = Some(Stamp {
                by: by.clone(),
                at: event.occurred_at,
            })
        }
        EventData::Expired { .. } => h.expired = true,
        EventData::Resolved { by, .. } => {
            h.resolved = Some(Stamp {
                by: by.clone(),
                at: event.occurred_at,
            });
            h.held = None;
        }
    }
}
