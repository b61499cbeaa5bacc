//! Heartbeat monitors: the rules, pure. A runner pings
//! `<prefix>.heartbeat.<name>` (or `POST /v1/heartbeats/{name}`); a monitor
//! that gets no `ok` within `period + grace` of the last one opens an
//! incident, a `fail` ping opens one at once, and the next `ok` resolves it.
//!
//! This module decides; [`run`] (the edge) reads the pings from
//! `BATON_HEARTBEATS`, arms the deadlines on the SLA timer and sends the
//! commands through the engine. Nothing here does I/O or reads a clock.
//!
//! **One outage, one handoff id.** An outage is named by the stream
//! sequence of the last `ok` before it (0 before any):
//! `keyed_handoff_id(template, "heartbeat:<name>:<last_ok_seq>")`. Every
//! daemon, before or after a restart, derives the same id for the same
//! outage, so the engine's optimistic concurrency stores its opening once,
//! and a `fail` after a miss (or a miss after a `fail`) joins the outage
//! that is already open.

pub mod run;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{keyed_handoff_id, later, Packet, Report, Severity, HANDOFF_NAMESPACE};

/// The actor of the resolutions a heartbeat stores.
pub const ACTOR: &str = "heartbeat";
/// `failure_class` of an incident opened by a missed deadline.
pub const MISSED: &str = "heartbeat_missed";
/// `failure_class` of an incident opened by a `fail` ping.
pub const FAILED: &str = "heartbeat_failed";
/// Largest ping body accepted, bytes (the stream stores no larger message).
pub const MAX_PING_BYTES: usize = 4096;
/// Longest `message` kept from a ping, bytes.
const MAX_MESSAGE_BYTES: usize = 1024;

/// One configured monitor (from `[[heartbeat]]`, validated at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// The `<name>` subject token.
    pub name: String,
    /// How often the runner pings `ok`.
    pub period: Duration,
    /// How late an `ok` may be before the monitor alerts.
    pub grace: Duration,
    /// Severity of the incidents it opens.
    pub severity: Severity,
    /// Team that receives them.
    pub team: String,
    /// Workflow they are about (ownership and runbook rules match it).
    pub workflow: String,
    /// Incident template they are opened under.
    pub template: String,
    /// Alert when no ping ever came, counting from the daemon's start.
    pub alert_if_never_pinged: bool,
}

impl Monitor {
    /// The monitor's key on the timer: UUIDv5 of `heartbeat:<name>`.
    pub fn timer_id(&self) -> Uuid {
        timer_id(&self.name)
    }

    /// The dedup key of the outage that follows the `ok` stored at
    /// `last_ok_seq` (0: none yet).
    pub fn outage_key(&self, last_ok_seq: u64) -> String {
        format!("heartbeat:{}:{last_ok_seq}", self.name)
    }

    /// The handoff id of that outage.
    pub fn outage_id(&self, last_ok_seq: u64) -> Uuid {
        keyed_handoff_id(&self.template, &self.outage_key(last_ok_seq))
    }
}

/// The timer key of monitor `name` (UUIDv5 of `heartbeat:<name>`): distinct
/// from every handoff id, which are derived from `<template>\n<key>`.
pub fn timer_id(name: &str) -> Uuid {
    Uuid::new_v5(&HANDOFF_NAMESPACE, format!("heartbeat:{name}").as_bytes())
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingStatus {
    /// The run succeeded: the deadline moves on.
    #[default]
    Ok,
    /// A run started (recorded; the deadline does not move).
    Start,
    /// The run failed: an incident opens now.
    Fail,
}

impl PingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PingStatus::Ok => "ok",
            PingStatus::Start => "start",
            PingStatus::Fail => "fail",
        }
    }
}

/// A ping's body: empty (an `ok`), or `{"status": …, "message": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    #[serde(default)]
    pub status: PingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a ping was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// Larger than [`MAX_PING_BYTES`] (HTTP 413).
    #[error("a ping body is at most {MAX_PING_BYTES} bytes")]
    TooLarge,
    /// Not the documented shape (HTTP 422).
    #[error("{0}")]
    Invalid(String),
}

impl PingError {
    /// Stable code: the `reason` label of the rejection counter and the
    /// problem code over HTTP.
    pub fn code(&self) -> &'static str {
        match self {
            PingError::TooLarge => "too_large",
            PingError::Invalid(_) => "invalid_body",
        }
    }
}

/// Parses a ping body; whitespace only counts as empty. The message is cut
/// to 1 KiB on a character boundary.
pub fn parse_ping(body: &[u8]) -> Result<Ping, PingError> {
    if body.len() > MAX_PING_BYTES {
        return Err(PingError::TooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Ping::default());
    }
    let mut ping: Ping = serde_json::from_slice(body).map_err(|e| {
        PingError::Invalid(format!(
            "expected an empty body or {{\"status\": \"ok\"|\"start\"|\"fail\", \"message\": \"…\"}}: {e}"
        ))
    })?;
    if let Some(m) = &mut ping.message {
        crate::domain::truncate(m, MAX_MESSAGE_BYTES);
    }
    Ok(ping)
}

/// A stored ping's place: its stream time and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub at: DateTime<Utc>,
    pub seq: u64,
}

/// What a daemon knows of one monitor, folded from its pings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorState {
    /// The last `ok`.
    pub last_ok: Option<Seen>,
    /// The first ping of any kind (the deadline's base before any `ok`).
    pub first_seen: Option<Seen>,
    /// The last ping of any kind, and what it said.
    pub last_seen: Option<(Seen, PingStatus)>,
    /// The `fail` ping since the last `ok`, if any, with its message.
    pub failing: Option<(Seen, Option<String>)>,
}

impl MonitorState {
    /// The stream sequence naming the current outage (0 before any `ok`).
    pub fn last_ok_seq(&self) -> u64 {
        self.last_ok.map_or(0, |s| s.seq)
    }
}

/// When the monitor alerts unless an `ok` comes first: the last `ok` +
/// period + grace. Before any `ok`, counted from the first ping; a monitor
/// never pinged has none, unless `alert_if_never_pinged` (then from the
/// daemon's start). Millisecond precision, like the escalation deadlines.
pub fn deadline(m: &Monitor, s: &MonitorState, started: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let base = match (s.last_ok, s.first_seen) {
        (Some(ok), _) => ok.at,
        (None, Some(first)) => first.at,
        (None, None) if m.alert_if_never_pinged => started,
        (None, None) => return None,
    };
    later(base, m.period.saturating_add(m.grace))
}

/// What a ping asks the edge to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond re-arming the deadline.
    Nothing,
    /// Resolve the outage that this `ok` ends, if it was opened.
    Resolve { outage_seq: u64, note: String },
    /// Open (or join) the current outage with this report.
    Open {
        outage_seq: u64,
        report: Box<Report>,
    },
}

/// Folds a ping into the state and says what it causes. `seq` and `at` are
/// its stream sequence and time.
pub fn on_ping(
    m: &Monitor,
    s: &mut MonitorState,
    ping: &Ping,
    seq: u64,
    at: DateTime<Utc>,
) -> Effect {
    let seen = Seen { at, seq };
    s.first_seen.get_or_insert(seen);
    s.last_seen = Some((seen, ping.status));
    match ping.status {
        PingStatus::Start => Effect::Nothing,
        PingStatus::Ok => {
            let outage_seq = s.last_ok_seq();
            s.last_ok = Some(seen);
            s.failing = None;
            Effect::Resolve {
                outage_seq,
                note: match &ping.message {
                    Some(msg) => format!("heartbeat {} ok again: {msg}", m.name),
                    None => format!("heartbeat {} ok again", m.name),
                },
            }
        }
        PingStatus::Fail => {
            s.failing = Some((seen, ping.message.clone()));
            Effect::Open {
                outage_seq: s.last_ok_seq(),
                report: Box::new(failed_report(m, s, at, ping.message.as_deref())),
            }
        }
    }
}

/// What the timer's wake-up for a monitor means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Not due (an `ok` moved it, or it never alerts): arm this instead.
    NotYet(Option<DateTime<Utc>>),
    /// Missed: open (or join) the outage with this report.
    Missed {
        outage_seq: u64,
        report: Box<Report>,
    },
}

/// Decides a wake-up at `now`.
pub fn on_deadline(
    m: &Monitor,
    s: &MonitorState,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Due {
    match deadline(m, s, started) {
        Some(due) if due <= now => Due::Missed {
            outage_seq: s.last_ok_seq(),
            report: Box::new(missed_report(m, s, due)),
        },
        next => Due::NotYet(next),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The packet both kinds of report share.
fn report(
    m: &Monitor,
    s: &MonitorState,
    failure_class: &str,
    failing_step: String,
    error_summary: String,
) -> Report {
    let last_ok = s
        .last_ok
        .map(|ok| format!("last ok ping at {} (seq {})", time(ok.at), ok.seq));
    Report {
        severity: m.severity,
        packet: Packet {
            run_id: Some(m.outage_key(s.last_ok_seq())),
            workflow_id: Some(m.workflow.clone()),
            objective: Some(format!("heartbeat {}", m.name)),
            failure_class: Some(failure_class.to_string()),
            last_successful_step: last_ok,
            failing_step: Some(failing_step),
            error_summary: Some(error_summary),
            recommended_action: Some(format!(
                "check the runner of {}; the next ok ping on heartbeat {} resolves this",
                m.workflow, m.name
            )),
            ..Packet::default()
        },
        dedup_key: Some(m.outage_key(s.last_ok_seq())),
        team: Some(m.team.clone()),
        drill: false,
    }
}

fn last_seen(s: &MonitorState) -> String {
    match s.last_seen {
        Some((seen, status)) => format!("{} ({})", time(seen.at), status.as_str()),
        None => "never".into(),
    }
}

/// The report of a missed deadline `due`.
pub fn missed_report(m: &Monitor, s: &MonitorState, due: DateTime<Utc>) -> Report {
    let summary = format!(
        "no ok ping on heartbeat {}: last seen {}, expected by {} (period {}, grace {})",
        m.name,
        last_seen(s),
        time(due),
        humantime::format_duration(m.period),
        humantime::format_duration(m.grace),
    );
    let step = format!("heartbeat {}: no ok ping in time", m.name);
    report(m, s, MISSED, step, summary)
}

/// The report of a `fail` ping at `at`.
pub fn failed_report(
    m: &Monitor,
    s: &MonitorState,
    at: DateTime<Utc>,
    message: Option<&str>,
) -> Report {
    let summary = match message {
        Some(msg) => format!("heartbeat {} reported fail at {}: {msg}", m.name, time(at)),
        None => format!("heartbeat {} reported fail at {}", m.name, time(at)),
    };
    let step = format!("heartbeat {}: run reported fail", m.name);
    report(m, s, FAILED, step, summary)
}

#[cfg(test)]
mod tests;
