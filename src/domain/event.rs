//! Handoff events: past-tense, versioned envelopes, the only thing stored.
//!
//! One JetStream message on `<prefix>.events.<handoff_id>` holds one
//! [`Commit`]: the events a single decision produced. JetStream 2.9 has no
//! atomic multi-message publish, so putting a decision's events in one message
//! is what makes "nothing half-written" true: a crash stores all of a
//! decision or none of it.
//!
//! Events that reach people ([`EventData::Paged`], [`EventData::Escalated`],
//! [`EventData::Held`] with a ticket, [`EventData::Expired`]) carry a
//! [`Notice`]: exactly what was told to whom, so pages are a pure function of
//! the log and an auditor reads the same words the on-call read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BelowMin, Hcs, Packet, Severity};

/// Current schema version of every event type. Every event so far is version
/// 1, so there is no upcasting yet. When a payload changes: bump this, and
/// rewrite older shapes to the new one where stored commits are decoded
/// (`wire::events::decode_commit`, before serde sees them). The recorded
/// fixtures in `tests/fixtures/` replay in a test forever, so a change that
/// breaks old events fails CI.
pub const EVENT_VERSION: u32 = 1;

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7; doubles as the `Nats-Msg-Id` stem of the pages it causes.
    pub id: Uuid,
    pub handoff_id: Uuid,
    /// Schema version of `data`.
    pub version: u32,
    /// RFC 3339, UTC.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub occurred_at: DateTime<Utc>,
    /// Who caused it: `baton` (the daemon), a person, or `report:<source>`.
    pub actor: String,
    /// `type` and `data`.
    #[serde(flatten)]
    pub data: EventData,
}

impl Event {
    /// The event's type name, as stored.
    pub fn kind(&self) -> &'static str {
        self.data.kind()
    }
}

/// The message body on `<prefix>.events.<id>`: one decision's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub events: Vec<Event>,
}

/// Who a notice reaches on one route.
///
/// `person`, `backup`, `rotation` and `unresolved` are filled by the engine
/// after `decide`, from the on-call roster at the decision's instant
/// (`domain::oncall::Directory::resolve`): who was really paged, kept even
/// after the rotation changes. Events stored before rotations existed, and
/// targets that are opaque labels (`rota:primary`), have none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTarget {
    pub route: String,
    pub target: String,
    /// The person `target` resolved to (or the route's fallback's person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// A rotation's backup at that instant: the next participant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The rotation `person` was on call for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    /// `target` resolved to nobody at that instant: `person` (if any) is
    /// the route's `fallback`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unresolved: bool,
}

impl RouteTarget {
    /// A route and its target, not resolved yet.
    pub fn new(route: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            route: route.into(),
            target: target.into(),
            ..Self::default()
        }
    }
}

/// What a page says: enough for a human to act without asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub routes: Vec<RouteTarget>,
    pub team: String,
    pub severity: Severity,
    pub template: String,
    /// Empty when decoded by [`skim::decode`] (the projector's decoder).
    #[serde(deserialize_with = "skim::hcs")]
    pub hcs: Hcs,
    /// Empty when decoded by [`skim::decode`] (the projector's decoder).
    #[serde(deserialize_with = "skim::packet")]
    pub packet: Packet,
    /// Packet scored below the severity's gate.
    pub incomplete: bool,
    /// When the next escalation fires unless someone acknowledges.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rfc3339::option"
    )]
    pub respond_by: Option<DateTime<Utc>>,
    /// Team handoffs: the template version, teams, fields and checklist.
    /// `None` when decoded by [`skim::decode`] (the projector's decoder).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "skim::work"
    )]
    pub work: Option<WorkNotice>,
}

/// What a team-handoff notice adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkNotice {
    pub template_version: u32,
    pub from_team: String,
    pub to_team: String,
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// Exit criteria the receiver checks off.
    pub checklist: Vec<String>,
}

/// Why a handoff paged at level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageReason {
    /// HCS met the gate at open.
    GatePassed,
    /// An enrichment raised HCS over the gate.
    Enriched,
    /// `max_hold` ran out (P1): paged anyway, flagged incomplete.
    MaxHold,
    /// A person overrode the gate.
    Override,
}

/// Event payloads. Serialized as `"type": "<snake_case>", "data": {...}`.
///
/// Notices and packets are boxed (the same JSON: serde reads and writes a
/// `Box<T>` as its `T`): a `Notice` is 544 bytes and a `Packet` 312, and
/// every decoded or decided event is moved several times at the size of
/// its largest variant (640 bytes unboxed, 136 boxed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventData {
    /// A report opened the handoff.
    Opened {
        template: String,
        severity: Severity,
        team: String,
        packet: Box<Packet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dedup_key: Option<String>,
        /// Stream sequence or id of the report that opened it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report: Option<String>,
        /// A synthetic drill (weekly P1 drill): real events, kept out of
        /// production MTTA/HCS series, paged on the drill route.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        drill: bool,
        /// A recurrence: the resolved handoff of the same dedup key that
        /// came before this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recurrence_of: Option<Uuid>,
        /// Which occurrence of its dedup key this is (absent: the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        occurrence: Option<u32>,
    },
    /// Fields were filled in, automatically (ownership/runbook maps) or by a person.
    Enriched {
        /// `ownership:<pattern>`, `runbook:<pattern>` or `manual`.
        sources: Vec<String>,
        /// Dotted names of the fields that changed.
        fields: Vec<String>,
        /// The new values.
        values: Box<Packet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<String>,
    },
    /// The packet was scored against the severity's gate.
    Scored {
        hcs: Hcs,
        min_hcs: f64,
        passed: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The gate held the page.
    Held {
        action: BelowMin,
        /// With `enrich_then_page`: when it pages anyway.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "rfc3339::option"
        )]
        until: Option<DateTime<Utc>>,
        missing: Vec<String>,
        /// With `queue` / `ticket`: the ticket sent to the owner queue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<Box<Notice>>,
    },
    /// The first page (level 0).
    Paged {
        reason: PageReason,
        notice: Box<Notice>,
    },
    /// An escalation step fired because nobody acknowledged in time.
    Escalated {
        step: u32,
        level: u32,
        repeat: u32,
        /// When the step was due (the SLA deadline it enforces).
        #[serde(deserialize_with = "rfc3339::deserialize")]
        deadline: DateTime<Utc>,
        notice: Box<Notice>,
    },
    /// Someone took it.
    Acknowledged {
        by: String,
        /// Milliseconds from opened to acknowledged.
        mtta_ms: i64,
        /// Acknowledged after the first-response deadline.
        breached: bool,
    },
    /// A person paged at once despite the gate.
    Overridden { by: String, reason: String },
    /// The packet's TTL passed without an acknowledgement: it is stale and
    /// the owner is asked to refresh it.
    Expired {
        #[serde(deserialize_with = "rfc3339::deserialize")]
        deadline: DateTime<Utc>,
        notice: Box<Notice>,
    },
    /// Closed.
    Resolved {
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The same failure was reported again and joined this handoff.
    ReportedAgain {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report: Option<String>,
    },
    /// A team handoff started; carries the template as it is now.
    Initiated {
        template: Box<super::teamwork::Template>,
        by: String,
        fields: std::collections::BTreeMap<String, serde_json::Value>,
        completeness: Hcs,
        notice: Box<Notice>,
    },
    /// The receiving team took it.
    Accepted {
        by: String,
        accept_ms: i64,
        breached: bool,
    },
    /// An exit criterion was met.
    Checked {
        index: u32,
        item: String,
        by: String,
    },
    /// The receiver sent it back, naming what is missing.
    Returned {
        by: String,
        missing: Vec<String>,
        reason: String,
        notice: Box<Notice>,
    },
    /// The sender filled in what was missing and sent it again.
    Resubmitted {
        by: String,
        fields: std::collections::BTreeMap<String, serde_json::Value>,
        completeness: Hcs,
        notice: Box<Notice>,
    },
    /// Every exit criterion met; done.
    Completed {
        by: String,
        complete_ms: i64,
        breached: bool,
    },
    /// Called off.
    Cancelled { by: String, reason: String },
    /// The receiving team's feedback on the handoff's quality.
    Rated {
        by: String,
        rating: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// An accept or complete SLA passed.
    SlaMissed {
        /// `accept` or `complete`.
        stage: String,
        #[serde(deserialize_with = "rfc3339::deserialize")]
        deadline: DateTime<Utc>,
        notice: Box<Notice>,
    },
    /// A page reached someone: the remote end (Slack, a webhook, the SMTP
    /// relay) accepted it. Recorded by the delivery worker on either kind
    /// of handoff, resolved ones included; it changes no rule or deadline.
    Delivered {
        /// The page's `Nats-Msg-Id` (`<event id>:<route>`).
        page_id: String,
        /// `slack`, `webhook` or `email`.
        channel: String,
        /// Where it went, redacted: a host, or a masked address. Never a
        /// webhook URL's path (it is the secret).
        destination: String,
        /// The person it was sent to (absent: a route's own contact).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<String>,
        /// Attempts it took (1: the first went through).
        attempts: u32,
        /// From the page's event being stored to the remote 2xx.
        latency_ms: i64,
    },
    /// One contact method gave up on a page: a permanent refusal or retries
    /// exhausted. The worker goes on to the next method.
    DeliveryFailed {
        page_id: String,
        channel: String,
        /// Redacted, as in `delivered`.
        destination: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<String>,
        /// A short code: `http_400`, `channel_not_found`, `timeout`,
        /// `retries_exhausted`, `smtp_permanent`, …
        reason: String,
        attempts: u32,
    },
    /// No contact method of the page's target accepted it (or it had none).
    /// Escalation goes on as the policy says: this never delays it.
    Undelivered {
        page_id: String,
        /// Why in one phrase: `no_contact` or `all_methods_failed`.
        reason: String,
    },
}

impl EventData {
    /// The aggregate whose `decide` produces this event and whose `apply`
    /// reads it. Every kind belongs to exactly one: the stream and the
    /// envelope are shared, the events are not.
    pub fn aggregate(&self) -> super::Kind {
        use super::Kind;
        match self {
            EventData::Opened { .. }
            | EventData::Enriched { .. }
            | EventData::Scored { .. }
            | EventData::Held { .. }
            | EventData::Paged { .. }
            | EventData::Escalated { .. }
            | EventData::Acknowledged { .. }
            | EventData::Overridden { .. }
            | EventData::Expired { .. }
            | EventData::Resolved { .. }
            | EventData::ReportedAgain { .. } => Kind::Incident,
            EventData::Initiated { .. }
            | EventData::Accepted { .. }
            | EventData::Checked { .. }
            | EventData::Returned { .. }
            | EventData::Resubmitted { .. }
            | EventData::Completed { .. }
            | EventData::Cancelled { .. }
            | EventData::Rated { .. }
            | EventData::SlaMissed { .. } => Kind::Team,
            // Delivery events are the edge's record about a page and are
            // stored on either kind (see [`EventData::is_delivery`]); neither
            // aggregate decides them. They report the incident, the kind that
            // pages people, only because this method names exactly one.
            EventData::Delivered { .. }
            | EventData::DeliveryFailed { .. }
            | EventData::Undelivered { .. } => Kind::Incident,
        }
    }

    /// `delivered`, `delivery_failed` or `undelivered`: what the delivery
    /// worker recorded about a page. Allowed on any handoff at any point
    /// after it opened (resolved ones too), and inert in both aggregates.
    pub fn is_delivery(&self) -> bool {
        matches!(
            self,
            EventData::Delivered { .. }
                | EventData::DeliveryFailed { .. }
                | EventData::Undelivered { .. }
        )
    }

    /// The stored `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::Opened { .. } => "opened",
            EventData::Enriched { .. } => "enriched",
            EventData::Scored { .. } => "scored",
            EventData::Held { .. } => "held",
            EventData::Paged { .. } => "paged",
            EventData::Escalated { .. } => "escalated",
            EventData::Acknowledged { .. } => "acknowledged",
            EventData::Overridden { .. } => "overridden",
            EventData::Expired { .. } => "expired",
            EventData::Resolved { .. } => "resolved",
            EventData::ReportedAgain { .. } => "reported_again",
            EventData::Initiated { .. } => "initiated",
            EventData::Accepted { .. } => "accepted",
            EventData::Checked { .. } => "checked",
            EventData::Returned { .. } => "returned",
            EventData::Resubmitted { .. } => "resubmitted",
            EventData::Completed { .. } => "completed",
            EventData::Cancelled { .. } => "cancelled",
            EventData::Rated { .. } => "rated",
            EventData::SlaMissed { .. } => "sla_missed",
            EventData::Delivered { .. } => "delivered",
            EventData::DeliveryFailed { .. } => "delivery_failed",
            EventData::Undelivered { .. } => "undelivered",
        }
    }

    /// The notice this event sends, to fill in its resolved people.
    pub fn notice_mut(&mut self) -> Option<&mut Notice> {
        match self {
            EventData::Paged { notice, .. }
            | EventData::Escalated { notice, .. }
            | EventData::Held {
                ticket: Some(notice),
                ..
            }
            | EventData::Expired { notice, .. }
            | EventData::Initiated { notice, .. }
            | EventData::Resubmitted { notice, .. }
            | EventData::Returned { notice, .. }
            | EventData::SlaMissed { notice, .. } => Some(notice),
            _ => None,
        }
    }

    /// The notice this event sends, and what kind of page it is.
    pub fn notice(&self) -> Option<(&'static str, &Notice)> {
        match self {
            EventData::Paged { notice, .. } => Some(("page", notice)),
            EventData::Escalated { notice, .. } => Some(("escalation", notice)),
            EventData::Held {
                ticket: Some(n), ..
            } => Some(("ticket", n)),
            EventData::Expired { notice, .. } => Some(("refresh", notice)),
            EventData::Initiated { notice, .. } | EventData::Resubmitted { notice, .. } => {
                Some(("handoff", notice))
            }
            EventData::Returned { notice, .. } => Some(("returned", notice)),
            EventData::SlaMissed { notice, .. } => Some(("sla_missed", notice)),
            _ => None,
        }
    }
}

/// An event as `decide` returns it, before the edge gives it an id and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub actor: String,
    pub data: EventData,
}

impl NewEvent {
    /// Wraps a decision's output into stored events.
    pub fn seal(self, id: Uuid, handoff_id: Uuid, occurred_at: DateTime<Utc>) -> Event {
        Event {
            id,
            handoff_id,
            version: EVENT_VERSION,
            occurred_at,
            actor: self.actor,
            data: self.data,
        }
    }
}

/// Reading stored timestamps. Baton writes RFC 3339; chrono's RFC 3339
/// parser reads that several times faster than the general parser behind
/// `DateTime`'s own `Deserialize` (timestamps were a tenth of replay's CPU),
/// which still reads anything else, so what decodes is unchanged.
/// Decoding events for applying them, not for showing them: a notice's
/// copies of the packet, its score and a team handoff's work are skipped.
///
/// A notice repeats what the handoff's own events already say (the packet
/// of `opened`/`enriched`, the score of `scored`) so that a page read alone
/// is complete. Folding events into state reads none of it
/// (`incident::apply`, `teamwork::apply` and the metrics read a notice's
/// routes and `incomplete` only), yet decoding those copies was about a
/// third of replay's bytes, each string allocated. Inside [`decode`] the
/// decoder reads past them (well-formed JSON of any shape) and keeps
/// nothing: `packet` and `hcs` come back empty and `work` as `None`.
///
/// A flag of the decoding thread, because serde's derived decoders pass no
/// context down to a field's; [`decode`] sets it for one call and clears
/// it after, however the call ends. Whoever uses it must apply, never show
/// or store, what it returns: `projector` tests that state from a skimmed
/// log equals state from a full one for every recorded fixture.
pub mod skim {
    use std::cell::Cell;

    use serde::de::IgnoredAny;
    use serde::{Deserialize, Deserializer};

    use super::WorkNotice;
    use crate::domain::{Hcs, Packet};

    thread_local! {
        static SKIMMING: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f` (a decode) with notices skimmed on this thread.
    pub fn decode<T>(f: impl FnOnce() -> T) -> T {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                SKIMMING.with(|s| s.set(self.0));
            }
        }
        let _reset = Reset(SKIMMING.with(|s| s.replace(true)));
        f()
    }

    fn skimming() -> bool {
        SKIMMING.with(Cell::get)
    }

    /// `T` as stored, or, when skimming, read past and left as `T::default()`.
    fn read<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
        if skimming() {
            IgnoredAny::deserialize(d)?;
            Ok(T::default())
        } else {
            T::deserialize(d)
        }
    }

    pub(super) fn packet<'de, D: Deserializer<'de>>(d: D) -> Result<Packet, D::Error> {
        read(d)
    }

    pub(super) fn hcs<'de, D: Deserializer<'de>>(d: D) -> Result<Hcs, D::Error> {
        read(d)
    }

    pub(super) fn work<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WorkNotice>, D::Error> {
        read(d)
    }
}

pub(crate) mod rfc3339 {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::de::{self, Deserializer, Visitor};

    struct Timestamp;

    impl<'de> Visitor<'de> for Timestamp {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
            if let Some(t) = utc(s) {
                return Ok(t);
            }
            match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Ok(t.to_utc()),
                Err(_) => s.parse().map_err(E::custom),
            }
        }
    }

    /// The one shape Baton writes, `YYYY-MM-DDTHH:MM:SS[.f…]Z` with at most
    /// nine fraction digits, read directly: a tenth of the instructions of
    /// chrono's RFC 3339 parser (which was 4 % of replay's). `None` for
    /// anything else (other offsets, leap seconds, more digits), which
    /// chrono then reads as before; what this reads, chrono reads the same.
    pub(crate) fn utc(s: &str) -> Option<DateTime<Utc>> {
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[b.len() - 1] != b'Z'
        {
            return None;
        }
        let digits = |d: &[u8]| {
            d.iter().try_fold(0u32, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let nanos = match &b[19..b.len() - 1] {
            [] => 0,
            [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
                digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
            }
            _ => return None,
        };
        let (second, minute) = (digits(&b[17..19])?, digits(&b[14..16])?);
        // 60 is a leap second: chrono's to read.
        if second > 59 {
            return None;
        }
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::try_from(digits(&b[0..4])?).ok()?,
            digits(&b[5..7])?,
            digits(&b[8..10])?,
        )?;
        let time =
            chrono::NaiveTime::from_hms_nano_opt(digits(&b[11..13])?, minute, second, nanos)?;
        Some(date.and_time(time).and_utc())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(Timestamp)
    }

    struct Maybe;

    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }

    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(Maybe)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat, Utc};
    use proptest::prelude::*;

    use super::rfc3339::utc;

    fn chrono(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
    }

    proptest! {
        /// What Baton writes (serde's `DateTime<Utc>`, any precision) reads
        /// directly, as chrono reads it.
        #[test]
        fn the_direct_reader_reads_what_chrono_reads(secs in -62_000_000_000i64..250_000_000_000, nanos in 0u32..1_000_000_000) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            for s in [
                serde_json::to_value(t).unwrap().as_str().unwrap().to_string(),
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
                t.to_rfc3339_opts(SecondsFormat::Nanos, true),
            ] {
                if s.len() >= 20 && !s.starts_with(['-', '+']) {
                    prop_assert_eq!(utc(&s), chrono(&s), "{}", s);
                    prop_assert!(utc(&s).is_some(), "{}", s);
                }
            }
        }
    }

    /// Anything else is left to chrono (`None`), never misread.
    #[test]
    fn other_shapes_are_left_to_chrono() {
        for s in [
            "2026-11-21T00:46:04+00:00",
            "2026-11-21T00:46:04.804499558+02:00",
            "2026-11-21t00:46:04Z",
            "2026-11-21 00:46:04Z",
            "2026-11-21T00:46:04z",
            "2026-11-21T00:46:04.Z",
            "2026-11-21T00:46:04.8044995581Z",
            "2016-12-31T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T00:60:00Z",
            "2026-11-21T00:46:4xZ",
            "+2026-11-21T00:46:04Z",
            "",
        ] {
            assert_eq!(utc(s), None, "{s}");
        }
        assert_eq!(
            utc("2026-11-21T00:46:04.5Z"),
            chrono("2026-11-21T00:46:04.5Z")
        );
        assert_eq!(utc("2026-11-21T00:46:04Z"), chrono("2026-11-21T00:46:04Z"));
    }
}
