//! Applying stored events to an incident. No rules here: whatever was
//! stored happened.

use super::Incident;
use crate::domain::event::EventData;
use crate::domain::{Event, Packet, Stamp};

/// Applies one event. `state` is `None` until the `opened` event.
pub fn apply(state: &mut Option<Incident>, event: &Event) {
    if let EventData::Opened {
        template,
        severity,
        team,
        packet,
        drill,
        report,
        recurrence_of,
        occurrence,
        ..
    } = &event.data
    {
        if state.is_none() {
            let mut h = Incident::new(
                event.handoff_id,
                template,
                *severity,
                team,
                event.occurred_at,
            );
            h.packet = Packet::clone(packet);
            h.drill = *drill;
            h.first_report = super::decide::report_seq(report);
            h.opened_by = report.clone();
            h.occurrence = occurrence.unwrap_or(1);
            h.recurrence_of = *recurrence_of;
            h.joined_report(report);
            *state = Some(h);
            return;
        }
    }
    if let Some(h) = state.as_mut() {
        apply_to(h, event);
    }
}

/// Applies one event to an incident that exists.
pub fn apply_to(h: &mut Incident, event: &Event) {
    h.events += 1;
    match &event.data {
        EventData::Opened { .. } => h.reports += 1,
        EventData::ReportedAgain { report } => {
            h.reports += 1;
            h.joined_report(report);
        }
        // Team-handoff events belong to the other aggregate; a misfiled one
        // changes nothing here.
        EventData::Initiated { .. }
        | EventData::Accepted { .. }
        | EventData::Checked { .. }
        | EventData::Returned { .. }
        | EventData::Resubmitted { .. }
        | EventData::Completed { .. }
        | EventData::Cancelled { .. }
        | EventData::Rated { .. }
        | EventData::SlaMissed { .. } => {}
        // What reached people is a record for humans and the audit; no rule
        // or deadline reads it, so escalation is never delayed by delivery.
        EventData::Delivered { .. }
        | EventData::DeliveryFailed { .. }
        | EventData::Undelivered { .. } => {}
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
            h.paged(notice);
        }
        EventData::Escalated {
            step,
            level,
            notice,
            ..
        } => {
            h.escalation_steps = h.escalation_steps.max(*step);
            h.escalation_level = h.escalation_level.max(*level);
            h.paged(notice);
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
