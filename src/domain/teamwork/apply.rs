//! Applying stored events to a team handoff. No rules here: whatever was
//! stored happened.

use super::{Rating, TeamHandoff, TeamStatus};
use crate::domain::event::EventData;
use crate::domain::{Event, Stamp};

/// Applies one event. `state` is `None` until the `initiated` event.
pub fn apply(state: &mut Option<TeamHandoff>, e: &Event) {
    let at = e.occurred_at;
    if let EventData::Initiated {
        template,
        by,
        fields,
        completeness,
        ..
    } = &e.data
    {
        if state.is_none() {
            // Events of the first commit count once it exists.
            *state = Some(TeamHandoff {
                id: e.handoff_id,
                opened_at: at,
                template: (**template).clone(),
                status: TeamStatus::Initiated,
                initiated_by: by.clone(),
                fields: fields.clone(),
                submitted_at: at,
                accepted: None,
                checked: Default::default(),
                returns: 0,
                completed: None,
                cancelled: None,
                rating: None,
                accept_missed: false,
                complete_missed: false,
                completeness: completeness.clone(),
                events: 1,
            });
        }
        return;
    }
    if let Some(w) = state.as_mut() {
        apply_to(w, e);
    }
}

/// Applies one event to a team handoff that exists.
pub fn apply_to(w: &mut TeamHandoff, e: &Event) {
    let at = e.occurred_at;
    match &e.data {
        // A retried start with the same dedup key joins: it is not stored
        // twice, and an old log's duplicate counts as nothing.
        EventData::Initiated { .. } => return,
        _ => w.events += 1,
    }
    match &e.data {
        EventData::Accepted { by, .. } => {
            w.status = TeamStatus::Accepted;
            w.accepted = Some(Stamp { by: by.clone(), at });
        }
        EventData::Checked { index, by, .. } => {
            w.checked
                .insert(*index as usize, Stamp { by: by.clone(), at });
        }
        EventData::Completed { by, .. } => {
            w.status = TeamStatus::Completed;
            w.completed = Some(Stamp { by: by.clone(), at });
        }
        EventData::Cancelled { by, .. } => {
            w.status = TeamStatus::Cancelled;
            w.cancelled = Some(Stamp { by: by.clone(), at });
        }
        EventData::Returned { .. } => {
            w.status = TeamStatus::Returned;
            w.returns += 1;
            w.accepted = None;
            w.checked.clear();
        }
        EventData::Resubmitted {
            fields,
            completeness,
            ..
        } => {
            w.status = TeamStatus::Initiated;
            w.fields.extend(fields.clone());
            w.submitted_at = at;
            w.accept_missed = false;
            w.completeness = completeness.clone();
        }
        EventData::Rated {
            by,
            rating,
            comment,
        } => {
            w.rating = Some(Rating {
                by: by.clone(),
                rating: *rating,
                comment: comment.clone(),
            })
        }
        EventData::SlaMissed { stage, .. } => {
            if stage == "accept" {
                w.accept_missed = true;
            } else {
                w.complete_missed = true;
            }
        }
        _ => {}
    }
}
