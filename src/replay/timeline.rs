//! `baton timeline ID`: one handoff's story in plain words.
//!
//! A pure function from the handoff's events and the policy to text, so a
//! reviewer reads who reported it, how complete the packet was and what was
//! missing, what the gate decided and why, who was paged at which level and
//! when, each deadline and whether it was met, who acknowledged and how
//! fast, what was enriched or overridden and by whom, and how it ended —
//! without reading JSON. Times are UTC with milliseconds; offsets are from
//! the moment the handoff was opened.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::domain::{
    apply, BelowMin, Event, EventData, Handoff, Incident, Notice, PageReason, Policy, TeamHandoff,
};

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// A duration as people say it: `850ms`, `4.2s`, `3m 10s`, `2h 5m`.
pub fn human(ms: i64) -> String {
    let neg = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let s = match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    };
    format!("{neg}{s}")
}

/// Who a notice reached, route by route: the person stored in the event
/// when its target resolved to one ("alice (rotation payments-primary,
/// route oncall)"), else the route and its label as before rotations.
fn who(notice: &Notice) -> String {
    notice
        .routes
        .iter()
        .map(|r| match (&r.person, &r.rotation) {
            (Some(p), _) if r.unresolved => format!(
                "{p} (fallback of route {}: {} resolved to nobody)",
                r.route, r.target
            ),
            (Some(p), Some(rot)) => format!("{p} (rotation {rot}, route {})", r.route),
            (Some(p), None) => format!("{p} (route {})", r.route),
            (None, _) if r.unresolved => format!(
                "nobody on {} ({} resolved to nobody, no fallback)",
                r.route, r.target
            ),
            (None, _) => format!("{} ({})", r.route, r.target),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

/// The story of one handoff. `events` are its events in log order; the
/// policy supplies the deadlines that did not fire. Pure.
pub fn timeline(events: &[Event], policy: &Policy, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let Some(first) = events.first() else {
        return "no events: Baton has no handoff with this id\n".into();
    };
    let _ = writeln!(out, "Handoff {}", first.handoff_id);
    let (lines, state) = fold(events, policy);
    for l in &lines {
        let _ = writeln!(out, "  {}  (+{})  {}", at(l.at), l.offset, l.text);
    }
    match state {
        Some(Handoff::Incident(h)) => incident_ending(&mut out, &h, events, policy, now),
        Some(Handoff::Team(t)) => team_ending(&mut out, &t, events, now),
        None => {
            let _ = writeln!(
                out,
                "  (its first event is neither `opened` nor `initiated`: the log is damaged; run `baton audit verify`)"
            );
        }
    }
    out
}

/// One event of the story: when, how long after the opening (`4.2s`),
/// and what happened in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When the event occurred.
    pub at: DateTime<Utc>,
    /// Since the handoff was opened, as [`human`] says it.
    pub offset: String,
    /// The event in plain words, the same as `baton timeline` prints.
    pub text: String,
    /// Who acted (`baton` for the daemon itself).
    pub actor: String,
}

/// The story's lines, one per event, as [`timeline`] prints them (the web
/// console shows the same words). Pure.
pub fn lines(events: &[Event], policy: &Policy) -> Vec<Line> {
    fold(events, policy).0
}

/// The lines and the state after the last event.
fn fold(events: &[Event], policy: &Policy) -> (Vec<Line>, Option<Handoff>) {
    let mut state: Option<Handoff> = None;
    let Some(opened_at) = events.first().map(|e| e.occurred_at) else {
        return (Vec::new(), None);
    };
    let lines = events
        .iter()
        .map(|e| {
            apply(&mut state, e);
            Line {
                at: e.occurred_at,
                offset: human((e.occurred_at - opened_at).num_milliseconds()),
                text: describe(e, state.as_ref(), policy),
                actor: e.actor.clone(),
            }
        })
        .collect();
    (lines, state)
}

/// An incident's deadlines (from its severity's policy) and outcome.
fn incident_ending(
    out: &mut String,
    h: &Incident,
    events: &[Event],
    policy: &Policy,
    now: DateTime<Utc>,
) {
    let _ = writeln!(out, "\nDeadlines ({} policy):", h.severity);
    deadlines(out, h, events, policy, now);
    let _ = writeln!(out, "\nOutcome:");
    let mtta = h
        .mtta_ms
        .map(|m| format!("MTTA {}", human(m)))
        .unwrap_or_else(|| "never acknowledged".into());
    let level = match h.escalation_level {
        0 => "no escalation".to_string(),
        l => format!("escalated to level {l} ({} step(s))", h.escalation_steps),
    };
    let end = match &h.resolved {
        Some(r) => format!(
            "resolved by {} after {}",
            r.by,
            human((r.at - h.opened_at).num_milliseconds())
        ),
        None => format!("still open ({})", h.status().as_str()),
    };
    let _ = writeln!(
        out,
        "  {end}; {mtta}; {level}; HCS {:.2}; {} report(s); {} event(s).",
        h.hcs.score, h.reports, h.events
    );
}

/// A team handoff's accept and complete SLAs (from the template version it
/// was started under) and its outcome. It has no severity and no
/// first-response deadline.
fn team_ending(out: &mut String, t: &TeamHandoff, events: &[Event], now: DateTime<Utc>) {
    let _ = writeln!(
        out,
        "\nDeadlines ({} v{} SLAs):",
        t.template.name, t.template.version
    );
    let missed = |stage: &str| {
        events.iter().find_map(|e| match &e.data {
            EventData::SlaMissed { stage: s, .. } if s == stage => Some(e.occurred_at),
            _ => None,
        })
    };
    let verdict = |due: DateTime<Utc>,
                   done: Option<DateTime<Utc>>,
                   missed: Option<DateTime<Utc>>| match (done, missed) {
        (Some(d), _) if d <= due => format!("met at {}", at(d)),
        (Some(d), _) => format!("missed: done only at {}", at(d)),
        (None, Some(m)) => format!("missed: escalated at {}", at(m)),
        (None, None) if t.status.is_finished() => "no longer applies".into(),
        (None, None) if now < due => "pending".into(),
        (None, None) => "passed (see `baton audit verify`)".into(),
    };
    if let Some(due) = t.accept_due() {
        let v = verdict(due, t.accepted.as_ref().map(|a| a.at), missed("accept"));
        let _ = writeln!(out, "  accept due {} — {v}", at(due));
    }
    if let Some(due) = t.complete_due() {
        let v = verdict(due, t.completed.as_ref().map(|c| c.at), missed("complete"));
        let _ = writeln!(out, "  complete due {} — {v}", at(due));
    }
    let _ = writeln!(out, "\nOutcome:");
    let end = match (&t.completed, &t.cancelled) {
        (Some(c), _) => format!(
            "completed by {} after {}",
            c.by,
            human((c.at - t.opened_at).num_milliseconds())
        ),
        (_, Some(c)) => format!("cancelled by {}", c.by),
        _ => format!("still open ({})", t.status.as_str()),
    };
    let rating = t
        .rating
        .as_ref()
        .map(|r| format!("rated {}/5 by {}", r.rating, r.by))
        .unwrap_or_else(|| "not rated".into());
    let _ = writeln!(
        out,
        "  {end}; {}/{} checklist item(s); {} return(s); {rating}; completeness {:.2}; {} event(s).",
        t.checked.len(),
        t.template.checklist.len(),
        t.returns,
        t.completeness.score,
        t.events
    );
}

fn describe(e: &Event, h: Option<&Handoff>, policy: &Policy) -> String {
    match &e.data {
        EventData::Opened {
            template,
            severity,
            team,
            packet,
            report,
            dedup_key,
            occurrence,
            recurrence_of,
            ..
        } => {
            let mut s = format!(
                "Reported{} as {severity} ({template}) for team {team}",
                report
                    .as_deref()
                    .map(|r| format!(" by {r}"))
                    .unwrap_or_default()
            );
            if let (Some(w), Some(r)) = (&packet.workflow_id, &packet.run_id) {
                let _ = write!(s, ", workflow {w} run {r}");
            }
            if let Some(k) = dedup_key {
                let _ = write!(s, ", dedup key {k:?}");
            }
            if let (Some(n), Some(prev)) = (occurrence, recurrence_of) {
                let _ = write!(s, ", occurrence #{n} after resolved handoff {prev}");
            }
            if let Some(err) = &packet.error_summary {
                let _ = write!(s, ": \"{err}\"");
            }
            s + "."
        }
        EventData::Enriched {
            sources,
            fields,
            team,
            ..
        } => {
            let by = if e.actor == "baton" {
                format!("automatically from {}", list(sources))
            } else {
                format!("by {}", e.actor)
            };
            let team = team
                .as_deref()
                .map(|t| format!(" (team now {t})"))
                .unwrap_or_default();
            format!("Enriched {by}: filled {}{team}.", list(fields))
        }
        EventData::Scored {
            hcs,
            min_hcs,
            passed,
            warnings,
        } => {
            let verdict = if *passed {
                format!("meets the gate of {min_hcs}")
            } else {
                format!("below the gate of {min_hcs}")
            };
            let mut s = format!(
                "Scored HCS {:.2} ({verdict}; context {}, ownership {}, next action {}, reproducibility {}); missing: {}.",
                hcs.score, hcs.context, hcs.ownership, hcs.next_action, hcs.reproducibility, list(&hcs.missing)
            );
            if !warnings.is_empty() {
                let _ = write!(s, " Warnings: {}.", warnings.join("; "));
            }
            s
        }
        EventData::Held {
            action,
            until,
            missing,
            ticket,
        } => {
            let what = match action {
                BelowMin::EnrichThenPage => format!(
                    "Gate held the page to allow enrichment; it pages anyway at {}",
                    until.map(at).unwrap_or_else(|| "?".into())
                ),
                BelowMin::Queue => "Gate held the page and queued it for the owner".into(),
                BelowMin::Ticket => "Gate opened a ticket instead of paging".into(),
            };
            let ticket = ticket
                .as_ref()
                .map(|t| format!("; ticket sent to {}", who(t)))
                .unwrap_or_default();
            format!("{what}{ticket}. Missing: {}.", list(missing))
        }
        EventData::Paged { reason, notice } => {
            let why = match reason {
                PageReason::GatePassed => "the packet passed the gate",
                PageReason::Enriched => "an enrichment completed the packet",
                PageReason::MaxHold => "the hold ran out (paged incomplete)",
                PageReason::Override => "a person overrode the gate",
            };
            let respond = notice
                .respond_by
                .map(|t| format!("; respond by {}", at(t)))
                .unwrap_or_default();
            format!("Paged level 0 → {} because {why}{respond}.", who(notice))
        }
        EventData::Escalated {
            step,
            level,
            repeat,
            deadline,
            notice,
        } => {
            let late = human((e.occurred_at - *deadline).num_milliseconds());
            let again = if *repeat > 0 {
                format!(", repeat {repeat}")
            } else {
                String::new()
            };
            format!(
                "Deadline of step {step} ({}) passed unacknowledged: escalated to level {level}{again} → {} ({late} after the deadline).",
                at(*deadline),
                who(notice)
            )
        }
        EventData::Acknowledged {
            by,
            mtta_ms,
            breached,
        } => {
            let target = h
                .and_then(Handoff::as_incident)
                .map(|h| {
                    let due = h.first_response_due(policy);
                    format!(" (first-response target {})", at(due))
                })
                .unwrap_or_default();
            let verdict = if *breached { "late" } else { "in time" };
            format!(
                "Acknowledged by {by}: MTTA {}, {verdict}{target}.",
                human(*mtta_ms)
            )
        }
        EventData::Overridden { by, reason } => {
            format!("Override by {by}: \"{reason}\" — paged despite the gate.")
        }
        EventData::Expired { deadline, notice } => format!(
            "Packet TTL ran out at {} with nobody acknowledging: {} asked to refresh it.",
            at(*deadline),
            who(notice)
        ),
        EventData::Resolved { by, note } => format!(
            "Resolved by {by}{}.",
            note.as_deref()
                .map(|n| format!(": \"{n}\""))
                .unwrap_or_default()
        ),
        EventData::ReportedAgain { report } => format!(
            "Reported again{} and joined this handoff.",
            report
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default()
        ),
        EventData::Initiated {
            template,
            by,
            completeness,
            ..
        } => format!(
            "{by} started a {} handoff (template v{}) from {} to {}; completeness {:.2}{}. {} was notified.",
            template.name,
            template.version,
            template.from_team,
            template.to_team,
            completeness.score,
            if completeness.missing.is_empty() {
                String::new()
            } else {
                format!(" (missing {})", completeness.missing.join(", "))
            },
            template.to_team
        ),
        EventData::Accepted {
            by,
            accept_ms,
            breached,
        } => format!(
            "{by} accepted it after {:.1} min{}.",
            *accept_ms as f64 / 60_000.0,
            if *breached { ", after the accept SLA" } else { "" }
        ),
        EventData::Checked { item, by, .. } => format!("{by} checked \"{item}\"."),
        EventData::Returned {
            by,
            missing,
            reason,
            ..
        } => format!(
            "{by} returned it to the sender{}{}.",
            if missing.is_empty() {
                String::new()
            } else {
                format!(", missing {}", missing.join(", "))
            },
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        ),
        EventData::Resubmitted {
            by, completeness, ..
        } => format!(
            "{by} resubmitted it; completeness {:.2}.",
            completeness.score
        ),
        EventData::Completed {
            by,
            complete_ms,
            breached,
        } => format!(
            "{by} completed it {:.1} h after it started{}.",
            *complete_ms as f64 / 3_600_000.0,
            if *breached { ", after the complete SLA" } else { "" }
        ),
        EventData::Cancelled { by, reason } => format!("{by} cancelled it: {reason}."),
        EventData::Rated {
            by,
            rating,
            comment,
        } => format!(
            "{by} rated the handoff {rating}/5{}.",
            comment
                .as_deref()
                .map(|c| format!(": \"{c}\""))
                .unwrap_or_default()
        ),
        EventData::SlaMissed {
            stage,
            deadline,
            notice,
        } => format!(
            "The {stage} SLA passed at {}; paged {}.",
            deadline.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
            who(notice)
        ),
        EventData::Delivered {
            page_id,
            channel,
            destination,
            person,
            attempts,
            latency_ms,
        } => format!(
            "{} accepted {} (attempt {attempts}): page {} to {}{destination}, {} after the page.",
            channel_word(channel),
            e.occurred_at.format("%H:%M:%S%.3f"),
            page_route(page_id),
            person.as_deref().map(|p| format!("{p} at ")).unwrap_or_default(),
            human(*latency_ms),
        ),
        EventData::DeliveryFailed {
            page_id,
            channel,
            destination,
            person,
            reason,
            attempts,
        } => format!(
            "{} gave up on page {} to {}{destination} after {attempts} attempt(s): {reason}.",
            channel_word(channel),
            page_route(page_id),
            person.as_deref().map(|p| format!("{p} at ")).unwrap_or_default(),
        ),
        EventData::Undelivered { page_id, reason } => format!(
            "Page {} reached nobody ({}); escalation goes on regardless.",
            page_route(page_id),
            reason.replace('_', " "),
        ),
    }
}

/// Each scheduled deadline and whether it was met.
fn deadlines(
    out: &mut String,
    h: &Incident,
    events: &[Event],
    policy: &Policy,
    now: DateTime<Utc>,
) {
    let first = h.first_response_due(policy);
    let ack = h.acknowledged.as_ref().map(|a| a.at);
    let verdict = match (ack, &h.resolved) {
        (Some(a), _) if a <= first => format!("met: acknowledged by {}", at(a)),
        (Some(a), _) => format!("missed: acknowledged only at {}", at(a)),
        (None, Some(r)) if r.at <= first => "no longer applies: resolved before it".into(),
        (None, _) if now < first => "pending".into(),
        (None, _) => "missed: never acknowledged".into(),
    };
    let _ = writeln!(out, "  first response due {} — {verdict}", at(first));
    let sp = policy.severity(h.severity);
    let stop = [ack, h.resolved.as_ref().map(|r| r.at)]
        .into_iter()
        .flatten()
        .min();
    let mut n = 1;
    while let Some(step) = sp.step(h.opened_at, n) {
        let fired = events.iter().find_map(|e| match &e.data {
            EventData::Escalated { step, .. } if *step == n => Some(e.occurred_at),
            _ => None,
        });
        let verdict = match (fired, stop) {
            (Some(t), _) => format!("passed: escalated at {}", at(t)),
            (None, Some(s)) if s <= step.due => "not needed: handled before it".into(),
            (None, _) if now < step.due => "pending".into(),
            (None, _) => "passed without an escalation (see `baton audit verify`)".into(),
        };
        let routes = sp.level_routes(step.level).join(", ");
        let _ = writeln!(
            out,
            "  step {n} (level {} → {routes}) due {} — {verdict}",
            step.level,
            at(step.due)
        );
        n += 1;
    }
    if let Some(o) = &h.overridden {
        let _ = writeln!(out, "  gate overridden by {} at {}", o.by, at(o.at));
    }
}

/// `slack` → `Slack`, for "Slack accepted …".
fn channel_word(channel: &str) -> String {
    match channel {
        "slack" => "Slack".into(),
        "email" => "E-mail".into(),
        "webhook" => "Webhook".into(),
        other => other.to_string(),
    }
}

/// The route of a page id `<event id>:<route>` (the whole id if it has none).
fn page_route(page_id: &str) -> &str {
    page_id.split_once(':').map_or(page_id, |(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decide, Command, IncidentCommand, Severity};
    use crate::testkit;
    use uuid::Uuid;

    /// The timeline names the person stored in the event, with the
    /// rotation they were on call for; a fallback says why it was paged.
    #[test]
    fn who_names_the_person_paged_and_their_rotation() {
        use crate::domain::RouteTarget;
        let mut notice: Notice = serde_json::from_value(serde_json::json!({
            "routes": [], "team": "payments", "severity": "P1", "template": "agent_failure",
            "hcs": {"score": 100.0, "context": 100, "ownership": 100, "next_action": 100,
                    "reproducibility": 100, "missing": []},
            "packet": {}, "incomplete": false
        }))
        .unwrap();
        let mut rotation = RouteTarget::new("oncall", "rotation:payments-primary");
        rotation.person = Some("alice".into());
        rotation.rotation = Some("payments-primary".into());
        let mut fallback = RouteTarget::new("incident_captain", "rotation:captains");
        fallback.person = Some("dana".into());
        fallback.unresolved = true;
        notice.routes = vec![
            rotation,
            fallback,
            RouteTarget::new("queue", "rota:primary"),
        ];
        assert_eq!(
            who(&notice),
            "alice (rotation payments-primary, route oncall), \
             dana (fallback of route incident_captain: rotation:captains resolved to nobody), \
             queue (rota:primary)"
        );
    }

    fn run(cmds: &[(i64, Command)]) -> Vec<Event> {
        let policy = testkit::policy();
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let id = Uuid::from_u128(7);
        let mut state = None;
        let mut out = Vec::new();
        for (ms, cmd) in cmds {
            let now = t0 + chrono::Duration::milliseconds(*ms);
            for ne in decide(state.as_ref(), cmd, now, &policy).unwrap() {
                let e = ne.seal(Uuid::now_v7(), id, now);
                apply(&mut state, &e);
                out.push(e);
            }
        }
        out
    }

    fn open(report: crate::domain::Report) -> Command {
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report,
            warnings: vec![],
            source: Some("report:12".into()),
        })
    }

    #[test]
    fn a_p1_story_names_reporter_gate_pages_escalation_ack_and_resolution() {
        let events = run(&[
            (0, open(testkit::report(Severity::P1))),
            (300_000, Command::Tick),
            (
                420_000,
                Command::Incident(IncidentCommand::Acknowledge { by: "alice".into() }),
            ),
            (
                900_000,
                Command::Incident(IncidentCommand::Resolve {
                    by: "alice".into(),
                    note: Some("failed over".into()),
                }),
            ),
        ]);
        let t0 = events[0].occurred_at;
        let text = timeline(&events, &testkit::policy(), t0 + chrono::Duration::hours(1));
        for needle in [
            "Reported by report:12 as P1 (agent_failure) for team payments",
            "Scored HCS 100.00 (meets the gate of 90",
            "Paged level 0 → oncall (oncall:payments) because the packet passed the gate",
            "Deadline of step 1",
            "escalated to level 1 → oncall (oncall:payments), incident_captain",
            "Acknowledged by alice: MTTA 7m 0s, late",
            "first response due 2023-11-14 22:18:20.000Z — missed: acknowledged only at",
            "step 1 (level 1 → oncall, incident_captain) due 2023-11-14 22:18:20.000Z — passed: escalated",
            "step 2 (level 1 → oncall, incident_captain) due 2023-11-14 22:23:20.000Z — not needed",
            "Resolved by alice: \"failed over\"",
            "resolved by alice after 15m 0s; MTTA 7m 0s; escalated to level 1 (1 step(s))",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn a_held_story_says_what_was_missing_who_enriched_and_who_overrode() {
        let mut report = testkit::report(Severity::P2);
        report.packet.recommended_action = None;
        report.packet.rollback_command = None;
        report.packet.blast_radius = None;
        report.packet.workflow_id = Some("search".into());
        let events = run(&[
            (0, open(report)),
            (
                1000,
                Command::Incident(IncidentCommand::Override {
                    by: "dana".into(),
                    reason: "customer outage".into(),
                }),
            ),
        ]);
        let text = timeline(&events, &testkit::policy(), events[0].occurred_at);
        for needle in [
            "Gate held the page and queued it for the owner; ticket sent to queue",
            "Missing: blast_radius, recommended_action, rollback_command",
            "Override by dana: \"customer outage\"",
            "because a person overrode the gate",
            "first response due",
            "— pending",
            "gate overridden by dana",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_handoffs_and_damaged_logs_are_said_plainly() {
        assert!(timeline(&[], &testkit::policy(), Utc::now()).contains("no handoff"));
    }

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(human(850), "850ms");
        assert_eq!(human(4200), "4.2s");
        assert_eq!(human(190_000), "3m 10s");
        assert_eq!(human(7_500_000), "2h 5m");
    }
}
