//! The stored on-call events: one JSON record per message on
//! `<prefix>.oncall.<rotation>` (`BATON_ONCALL`). Like handoff events they
//! are past-tense, versioned, and forever: `tests/fixtures/oncall/` holds a
//! golden record of every kind that must keep decoding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::rfc3339;

/// Schema version of every on-call event. All are version 1 so far; a
/// change bumps it and rewrites older shapes where records are decoded.
pub const ONCALL_EVENT_VERSION: u32 = 1;

/// One stored on-call event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OncallEvent {
    /// UUIDv7; the message's `Nats-Msg-Id`.
    pub id: Uuid,
    /// Schema version of `data`.
    pub version: u32,
    /// When it was recorded (RFC 3339, UTC): an override's `created_at`.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub occurred_at: DateTime<Utc>,
    /// Who made it (an override's `created_by`).
    pub actor: String,
    /// The rotation it changes.
    pub rotation: String,
    /// `type` and `data`.
    #[serde(flatten)]
    pub data: OncallEventData,
}

/// On-call event payloads, `"type": "<snake_case>", "data": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum OncallEventData {
    /// Someone takes (part of) a rotation's shifts.
    OverrideCreated {
        override_id: Uuid,
        /// The scheduled person replaced; absent: whoever is on call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
        /// Who is on call instead.
        by: String,
        /// First instant covered.
        #[serde(deserialize_with = "rfc3339::deserialize")]
        from: DateTime<Utc>,
        /// First instant no longer covered.
        #[serde(deserialize_with = "rfc3339::deserialize")]
        until: DateTime<Utc>,
    },
    /// An override is withdrawn from the moment it is recorded.
    OverrideCancelled {
        override_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The rotation's participants change from `effective` on (never
    /// before the record: the past stays as it was).
    ParticipantsChanged {
        participants: Vec<String>,
        #[serde(deserialize_with = "rfc3339::deserialize")]
        effective: DateTime<Utc>,
    },
}

impl OncallEventData {
    /// The stored `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            OncallEventData::OverrideCreated { .. } => "override_created",
            OncallEventData::OverrideCancelled { .. } => "override_cancelled",
            OncallEventData::ParticipantsChanged { .. } => "participants_changed",
        }
    }
}
