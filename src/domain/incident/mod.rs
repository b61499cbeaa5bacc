//! Aggregate 1: the incident — a failure report scored, gated, paged and
//! escalated until someone acknowledges and resolves it.
//!
//! [`decide`] holds every rule, [`apply`] only updates. Neither reads a clock
//! or does I/O: `now` and the policy come in as arguments, ids and
//! timestamps are added by the caller ([`NewEvent::seal`]). Replaying the
//! same events always yields the same state, which is what lets the
//! projector, the replay tools and a second daemon agree.
//!
//! [`NewEvent::seal`]: crate::domain::NewEvent::seal

mod apply;
mod decide;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BelowMin, Hcs, Packet, Policy, Severity, Stamp};

pub use apply::{apply, apply_to};
pub use decide::{decide, report_seq, tick, IncidentCommand, MAX_STEPS_PER_TICK};

/// Where an incident stands, for humans and gauges.
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
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Held,
        Status::Paged,
        Status::Escalated,
        Status::Acknowledged,
        Status::Resolved,
    ];

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

/// Current state of one incident, derived from its events only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
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
    /// `BATON_REPORTS` sequences of the latest reports joined (at most
    /// [`RECENT_REPORTS`]): a redelivered report is recognised and changes
    /// nothing. A set, not a high-water mark, because reports are processed
    /// concurrently and may be stored out of order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_reports: Vec<u64>,
    /// The highest `BATON_REPORTS` sequence joined: a report above it was
    /// never recorded here (see [`Incident::has_report`]).
    #[serde(default)]
    pub max_report: u64,
    /// The sequence of the report that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_report: Option<u64>,
    /// The `source` of the command that opened it (`report:<seq>`,
    /// `heartbeat:<name>:…`): the same opening decided again (a second
    /// daemon, a retry) changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
    /// Which occurrence of its dedup key this is (1: the first).
    #[serde(default = "first_occurrence")]
    pub occurrence: u32,
    /// The resolved handoff of the same dedup key before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_of: Option<Uuid>,
    /// The people its pages and escalations reached (the persons their
    /// targets resolved to when decided), in the order first paged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paged_people: Vec<String>,
}

fn first_occurrence() -> u32 {
    1
}

/// Whether a report is recorded on an incident, as far as its state tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// One of the latest reports joined: recorded.
    Yes,
    /// Above every sequence joined: never recorded here.
    No,
    /// Older than the latest joined and not among them: only the log can
    /// tell (a redelivery after a long stall, or reports stored out of
    /// order).
    Unsure,
}

/// How many joined report sequences a handoff remembers. Redelivery comes
/// within the ingest's ack wait (`store::ACK_WAIT`, seconds), far inside
/// this many reports.
pub const RECENT_REPORTS: usize = 64;

impl Incident {
    /// Notes the people a page or an escalation reached.
    pub(super) fn paged(&mut self, notice: &crate::domain::event::Notice) {
        for p in notice.routes.iter().filter_map(|r| r.person.as_ref()) {
            if !self.paged_people.contains(p) {
                self.paged_people.push(p.clone());
            }
        }
    }

    /// The highest `BATON_REPORTS` sequence recorded here: no report above
    /// it ever was.
    pub fn highest_report(&self) -> u64 {
        self.max_report
            .max(self.recent_reports.iter().copied().max().unwrap_or(0))
    }

    /// Whether the report stored at `seq` in `BATON_REPORTS` was recorded
    /// here (opened it or joined it).
    pub fn has_report(&self, seq: u64) -> Seen {
        if self.recent_reports.contains(&seq) {
            Seen::Yes
        } else if seq > self.highest_report() {
            Seen::No
        } else {
            Seen::Unsure
        }
    }

    pub(super) fn joined_report(&mut self, source: &Option<String>) {
        if let Some(n) = decide::report_seq(source) {
            self.max_report = self.max_report.max(n);
            self.recent_reports.push(n);
            if self.recent_reports.len() > RECENT_REPORTS {
                self.recent_reports.remove(0);
            }
        }
    }
}

impl Incident {
    /// A handoff with nothing happened yet but its opening.
    pub fn new(
        id: Uuid,
        template: &str,
        severity: Severity,
        team: &str,
        opened_at: DateTime<Utc>,
    ) -> Self {
        Incident {
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
            recent_reports: Vec::new(),
            max_report: 0,
            first_report: None,
            opened_by: None,
            occurrence: 1,
            recurrence_of: None,
            paged_people: Vec::new(),
        }
    }

    pub fn status(&self) -> Status {
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
    pub fn next_step(&self, policy: &Policy) -> Option<crate::domain::Step> {
        if self.acknowledged.is_some() || self.resolved.is_some() {
            return None;
        }
        policy
            .severity(self.severity)
            .step(self.opened_at, self.escalation_steps + 1)
    }

    pub(super) fn expires_at(&self) -> Option<DateTime<Utc>> {
        let ttl = self.packet.ttl_seconds?;
        crate::domain::later(self.opened_at, std::time::Duration::from_secs(ttl))
    }

    /// The earliest moment at which a `Tick` could produce events: the SLA
    /// timer arms exactly this.
    pub fn next_deadline(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        if self.resolved.is_some() {
            return None;
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
        crate::domain::later(
            self.opened_at,
            policy.severity(self.severity).first_response,
        )
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}
