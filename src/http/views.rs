//! The API's shapes: what `/v1/handoffs` answers and what its commands
//! take. Kept apart from the domain types so the wire contract (and the
//! OpenAPI schemas derived from it) changes only on purpose.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{BelowMin, Handoff, Hcs, Packet, Policy, Severity, Stamp, Status};

/// One handoff as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoffView {
    pub id: Uuid,
    pub template: String,
    #[schema(value_type = String, example = "P1")]
    pub severity: Severity,
    pub team: String,
    /// `held`, `paged`, `escalated`, `acknowledged` or `resolved`.
    #[schema(value_type = String, example = "paged")]
    pub status: Status,
    pub opened_at: DateTime<Utc>,
    pub owners: Owners,
    pub hcs: HcsView,
    pub gate: Gate,
    pub escalation: Escalation,
    /// When the first page went out.
    pub paged_at: Option<DateTime<Utc>>,
    /// The first-response SLA deadline.
    pub first_response_due: DateTime<Utc>,
    /// The next thing the SLA timer will do for it (hold release, escalation
    /// step or packet expiry); null when nothing is pending.
    pub next_deadline: Option<DateTime<Utc>>,
    pub acknowledged: Option<StampView>,
    /// Opened → acknowledged, seconds.
    pub mtta_seconds: Option<f64>,
    pub resolved: Option<StampView>,
    /// The packet's TTL ran out before anyone acknowledged.
    pub expired: bool,
    /// Reports that joined it, the first included.
    pub reports: u32,
    /// Events stored for it.
    pub events: u32,
    /// A synthetic drill: real events, kept out of production figures.
    pub drill: bool,
    /// The packet as it stands (after enrichment).
    #[schema(value_type = Object)]
    pub packet: Packet,
}

/// Primary and backup owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Owners {
    pub primary: Option<String>,
    pub backup: Option<String>,
}

/// The Handoff Completeness Score with its breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HcsView {
    /// 0–100: `0.30·context + 0.25·ownership + 0.25·next_action + 0.20·reproducibility`.
    pub score: f64,
    pub components: HcsComponents,
    /// Dotted names of the fields that scored nothing.
    pub missing: Vec<String>,
}

/// Each component, 0–100.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HcsComponents {
    pub context: u8,
    pub ownership: u8,
    pub next_action: u8,
    pub reproducibility: u8,
}

impl From<&Hcs> for HcsView {
    fn from(h: &Hcs) -> Self {
        Self {
            score: h.score,
            components: HcsComponents {
                context: h.context,
                ownership: h.ownership,
                next_action: h.next_action,
                reproducibility: h.reproducibility,
            },
            missing: h.missing.clone(),
        }
    }
}

/// The HCS gate's decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gate {
    pub passed: bool,
    /// The severity's minimum HCS.
    pub min_hcs: f64,
    /// While held: `enrich_then_page`, `queue` or `ticket`.
    #[schema(value_type = Option<String>)]
    pub held: Option<BelowMin>,
    pub hold_until: Option<DateTime<Utc>>,
    /// Paged with an incomplete packet (after `max_hold`).
    pub incomplete: bool,
    /// Someone paged it despite the gate.
    pub overridden: Option<StampView>,
}

/// How far escalation went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Escalation {
    /// Highest level reached (0: none).
    pub level: u32,
    /// Steps stored.
    pub steps: u32,
}

/// Who and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StampView {
    pub by: String,
    pub at: DateTime<Utc>,
}

impl From<&Stamp> for StampView {
    fn from(s: &Stamp) -> Self {
        Self {
            by: s.by.clone(),
            at: s.at,
        }
    }
}

impl HandoffView {
    pub fn new(h: &Handoff, policy: &Policy) -> Self {
        Self {
            id: h.id,
            template: h.template.clone(),
            severity: h.severity,
            team: h.team.clone(),
            status: h.status(),
            opened_at: h.opened_at,
            owners: Owners {
                primary: h.packet.primary().map(String::from),
                backup: h.packet.backup().map(String::from),
            },
            hcs: (&h.hcs).into(),
            gate: Gate {
                passed: h.gate_passed,
                min_hcs: policy.severity(h.severity).min_hcs,
                held: h.held,
                hold_until: h.hold_until,
                incomplete: h.incomplete,
                overridden: h.overridden.as_ref().map(Into::into),
            },
            escalation: Escalation {
                level: h.escalation_level,
                steps: h.escalation_steps,
            },
            paged_at: h.paged_at,
            first_response_due: h.first_response_due(policy),
            next_deadline: h.next_deadline(policy),
            acknowledged: h.acknowledged.as_ref().map(Into::into),
            mtta_seconds: h.mtta_ms.map(|ms| ms as f64 / 1000.0),
            resolved: h.resolved.as_ref().map(Into::into),
            expired: h.expired,
            reports: h.reports,
            events: h.events,
            drill: h.drill,
            packet: h.packet.clone(),
        }
    }
}

/// A page of the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoffPage {
    /// Newest first.
    pub items: Vec<HandoffView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A handoff's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timeline {
    pub handoff_id: Uuid,
    /// Every stored event in order, each with the stream sequence of the
    /// commit that stored it (`seq`) and its `type`, `data`, `actor`,
    /// `occurred_at`, `id` and `version`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// Body of `ack`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AckBody {
    /// Who acknowledges (1–128 printable characters).
    pub by: String,
}

/// Body of `override`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideBody {
    pub by: String,
    /// Why the gate is overridden (required).
    pub reason: String,
}

/// Body of `enrich`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrichBody {
    pub by: String,
    /// Packet fields to fill (same names and rules as a report; not `dedup_key`).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Body of `resolve`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveBody {
    pub by: String,
    pub note: Option<String>,
}

/// Body of `POST /v1/handoffs` (start a team handoff).
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartBody {
    /// Template name (`config/templates/<name>.toml`, `kind = "work"`).
    pub template: String,
    pub by: String,
    /// Field values; every `required_fields` entry must be present.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Makes a retried start join the same handoff.
    pub dedup_key: Option<String>,
}

/// Body of `accept`, `complete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ByBody {
    pub by: String,
}

/// Body of `check`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckBody {
    pub by: String,
    /// Checklist item: its number (1-based) or exact text.
    #[schema(value_type = String)]
    pub item: Value,
}

/// Body of `return`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReturnBody {
    pub by: String,
    /// Missing field names.
    pub missing: Option<Vec<String>>,
    pub reason: Option<String>,
}

/// Body of `resubmit`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResubmitBody {
    pub by: String,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Body of `cancel`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelBody {
    pub by: String,
    pub reason: String,
}

/// Body of `rate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RateBody {
    pub by: String,
    /// 1 to 5.
    pub rating: u8,
    pub comment: Option<String>,
}

/// The command reply, identical to the NATS reply:
/// `{"ok": true, "handoff": {...}, "events": [...], "seq": n}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandReply {
    pub ok: bool,
    /// State after the command (the stored form).
    #[schema(value_type = Object)]
    pub handoff: Value,
    /// Events stored by this command.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Stream sequence of the stored commit; null when nothing was stored.
    pub seq: Option<u64>,
}
