//! The API's answers: a handoff as every transport shows it
//! ([`HandoffView`]), a page of the list, a timeline, a command's reply, a
//! submitted report's preview and the state digests. Kept apart from the
//! domain types so the wire contract (and the OpenAPI schemas derived from
//! it) changes only on purpose; what requests take is in `requests`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::engine::Outcome;
use crate::domain::{
    BelowMin, Event, Handoff, Hcs, Incident, Packet, Policy, Severity, Stamp, Status, TeamHandoff,
    TeamStatus,
};

/// One handoff as the API shows it: an incident or a team handoff, each in
/// its own terms, told apart by `kind`. The same shape answers NATS `get`,
/// `GET /v1/handoffs/{id}` and each item of the list.
// Built to be serialized at once, never held in bulk: no box needed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HandoffView {
    /// An incident: a failure report, paged and escalated.
    Incident(IncidentView),
    /// A team handoff: work passed between teams under a template.
    Team(TeamHandoffView),
}

impl HandoffView {
    /// The handoff's id.
    pub fn id(&self) -> Uuid {
        match self {
            HandoffView::Incident(i) => i.id,
            HandoffView::Team(t) => t.id,
        }
    }

    /// The view of a handoff under `policy`.
    pub fn new(h: &Handoff, policy: &Policy) -> Self {
        match h {
            Handoff::Incident(i) => HandoffView::Incident(IncidentView::new(i, policy)),
            Handoff::Team(t) => HandoffView::Team(TeamHandoffView::new(t)),
        }
    }
}

/// An incident as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentView {
    /// The handoff id.
    pub id: Uuid,
    /// The report template (`agent_failure`).
    pub template: String,
    /// `P1`, `P2` or `P3`.
    #[schema(value_type = String, example = "P1")]
    pub severity: Severity,
    /// The owning team.
    pub team: String,
    /// `held`, `paged`, `escalated`, `acknowledged` or `resolved`.
    #[schema(value_type = String, example = "paged")]
    pub status: Status,
    /// When the first report opened it.
    pub opened_at: DateTime<Utc>,
    /// Who owns it.
    pub owners: Owners,
    /// The packet's completeness score.
    pub hcs: HcsView,
    /// The HCS gate's decision.
    pub gate: Gate,
    /// How far escalation went.
    pub escalation: Escalation,
    /// When the first page went out.
    pub paged_at: Option<DateTime<Utc>>,
    /// The first-response SLA deadline.
    pub first_response_due: DateTime<Utc>,
    /// The next thing the SLA timer will do for it (hold release, escalation
    /// step or packet expiry); null when nothing is pending.
    pub next_deadline: Option<DateTime<Utc>>,
    /// Who acknowledged it, and when.
    pub acknowledged: Option<StampView>,
    /// Opened → acknowledged, seconds.
    pub mtta_seconds: Option<f64>,
    /// Who resolved it, and when.
    pub resolved: Option<StampView>,
    /// The packet's TTL ran out before anyone acknowledged.
    pub expired: bool,
    /// Reports that joined it, the first included.
    pub reports: u32,
    /// Events stored for it.
    pub events: u32,
    /// A synthetic drill: real events, kept out of production figures.
    pub drill: bool,
    /// Which occurrence of its dedup key it is: 1 for the first, n for the
    /// (n-1)th recurrence after a resolved one.
    pub occurrence: u32,
    /// The resolved handoff of the same dedup key before this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence_of: Option<Uuid>,
    /// The packet as it stands (after enrichment).
    #[schema(value_type = Object)]
    pub packet: Packet,
}

/// Primary and backup owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Owners {
    /// Paged first.
    pub primary: Option<String>,
    /// Paged when the primary does not answer.
    pub backup: Option<String>,
}

/// The Handoff Completeness Score with its breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HcsView {
    /// 0–100: `0.30·context + 0.25·ownership + 0.25·next_action + 0.20·reproducibility`.
    pub score: f64,
    /// Each component's score.
    pub components: HcsComponents,
    /// Dotted names of the fields that scored nothing.
    pub missing: Vec<String>,
}

/// Each component, 0–100.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HcsComponents {
    /// The failure's context (30 %).
    pub context: u8,
    /// Owners (25 %).
    pub ownership: u8,
    /// The next action and its rollback (25 %).
    pub next_action: u8,
    /// How to reproduce it (20 %).
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
    /// The score passed the severity's minimum.
    pub passed: bool,
    /// The severity's minimum HCS.
    pub min_hcs: f64,
    /// While held: `enrich_then_page`, `queue` or `ticket`.
    #[schema(value_type = Option<String>)]
    pub held: Option<BelowMin>,
    /// While held: when it pages anyway.
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
    /// Who.
    pub by: String,
    /// When.
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

impl IncidentView {
    /// The view of an incident under `policy`.
    pub fn new(h: &Incident, policy: &Policy) -> Self {
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
            occurrence: h.occurrence,
            recurrence_of: h.recurrence_of,
            packet: h.packet.clone(),
        }
    }
}

/// A team handoff as the API shows it: its workflow state, its SLA
/// deadlines, the fields sent and the checklist.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamHandoffView {
    /// The handoff id.
    pub id: Uuid,
    /// The template it was started under.
    pub template: String,
    /// The template version it was started under.
    pub template_version: u32,
    /// The sending team.
    pub from_team: String,
    /// The receiving team.
    pub to_team: String,
    /// `initiated`, `accepted`, `returned`, `completed` or `cancelled`.
    #[schema(value_type = String, example = "accepted")]
    pub status: TeamStatus,
    /// When it was started.
    pub opened_at: DateTime<Utc>,
    /// Who started it.
    pub initiated_by: String,
    /// When the current submission was sent (start or resubmission).
    pub submitted_at: DateTime<Utc>,
    /// The fields sent, resubmissions merged in.
    #[schema(value_type = Object)]
    pub fields: std::collections::BTreeMap<String, Value>,
    /// The template's completeness score (0–100) and the fields it misses.
    pub completeness: Completeness,
    /// The accept SLA's deadline for the current submission.
    pub accept_due: Option<DateTime<Utc>>,
    /// The complete SLA's deadline.
    pub complete_due: Option<DateTime<Utc>>,
    /// The next SLA deadline the timer watches; null when none is pending.
    pub next_deadline: Option<DateTime<Utc>>,
    /// Who accepted it, and when.
    pub accepted: Option<StampView>,
    /// Exit criteria in order, each with who checked it.
    pub checklist: Vec<ChecklistItem>,
    /// Times it was sent back.
    pub returns: u32,
    /// Who completed it, and when.
    pub completed: Option<StampView>,
    /// Who cancelled it, and when.
    pub cancelled: Option<StampView>,
    /// The receiving team's rating, after completion.
    pub rating: Option<RatingView>,
    /// The accept SLA was missed.
    pub accept_missed: bool,
    /// The complete SLA was missed.
    pub complete_missed: bool,
    /// Events stored for it.
    pub events: u32,
}

/// A team handoff's completeness score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Completeness {
    /// 0–100.
    pub score: f64,
    /// The fields that scored nothing.
    pub missing: Vec<String>,
}

/// One exit criterion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChecklistItem {
    /// The exit criterion's text.
    pub item: String,
    /// Who checked it, and when; null while unchecked.
    pub checked: Option<StampView>,
}

/// The receiving team's feedback.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingView {
    /// Who rated it.
    pub by: String,
    /// 1–5.
    pub rating: u8,
    /// What the sender should know.
    pub comment: Option<String>,
}

impl TeamHandoffView {
    /// The view of a team handoff.
    pub fn new(t: &TeamHandoff) -> Self {
        Self {
            id: t.id,
            template: t.template.name.clone(),
            template_version: t.template.version,
            from_team: t.template.from_team.clone(),
            to_team: t.template.to_team.clone(),
            status: t.status,
            opened_at: t.opened_at,
            initiated_by: t.initiated_by.clone(),
            submitted_at: t.submitted_at,
            fields: t.fields.clone(),
            completeness: Completeness {
                score: t.completeness.score,
                missing: t.completeness.missing.clone(),
            },
            accept_due: t.accept_due(),
            complete_due: t.complete_due(),
            next_deadline: t.next_deadline(),
            accepted: t.accepted.as_ref().map(Into::into),
            checklist: t
                .template
                .checklist
                .iter()
                .enumerate()
                .map(|(i, item)| ChecklistItem {
                    item: item.clone(),
                    checked: t.checked.get(&i).map(Into::into),
                })
                .collect(),
            returns: t.returns,
            completed: t.completed.as_ref().map(Into::into),
            cancelled: t.cancelled.as_ref().map(Into::into),
            rating: t.rating.as_ref().map(|r| RatingView {
                by: r.by.clone(),
                rating: r.rating,
                comment: r.comment.clone(),
            }),
            accept_missed: t.accept_missed,
            complete_missed: t.complete_missed,
            events: t.events,
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
    /// The handoff the timeline is of.
    pub handoff_id: Uuid,
    /// Every stored event in order, each with the stream sequence of the
    /// commit that stored it (`seq`) and its `type`, `data`, `actor`,
    /// `occurred_at`, `id` and `version`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// The reply to a command, the same over NATS and HTTP:
/// `{"ok": true, "handoff": {...}, "events": [...], "seq": n}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandReply {
    /// Always `true` (a refusal is an error reply instead).
    pub ok: bool,
    /// The handoff after the command, as [`HandoffView`] shows it.
    pub handoff: Option<HandoffView>,
    /// Events stored by this command (empty when nothing was due).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Event>,
    /// Stream sequence of the stored commit; null when nothing was stored.
    pub seq: Option<u64>,
}

impl CommandReply {
    /// The reply for what a command did.
    pub fn new(outcome: Outcome, policy: &Policy) -> Self {
        Self {
            ok: true,
            handoff: outcome
                .handoff
                .as_ref()
                .map(|h| HandoffView::new(h, policy)),
            events: outcome.events,
            seq: outcome.seq,
        }
    }
}

/// What a report submitted over HTTP will become.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportAccepted {
    /// The handoff the ingest opens (or joins) for it.
    pub handoff_id: Uuid,
    /// Sequence of the report in `BATON_REPORTS`.
    pub report_seq: u64,
    /// The `Idempotency-Key` was seen before: nothing new was stored and
    /// `report_seq` is the first report's.
    pub duplicate: bool,
    /// The handoff existed when the report arrived (same dedup key): the
    /// report joins it.
    /// The ingest records it as `reported_again` (nothing at all when
    /// `duplicate`) and pages nobody anew; `hcs` and `gate_passed` are then
    /// that handoff's current score and gate, not a new page's.
    pub joins: bool,
    /// The score the report gets at open (when `joins`: the handoff's
    /// current score).
    pub hcs: HcsView,
    /// Whether that score passes the severity's gate (else it is held).
    pub gate_passed: bool,
    /// Fields truncated to `limits.max_field_bytes`.
    pub warnings: Vec<String>,
    /// What the report did: `opened` a new handoff, `joined` an open one
    /// (recorded as `reported_again`, nobody paged anew), or `recurred`:
    /// its dedup key's last handoff was resolved, so it opened a new
    /// occurrence linked to it (`recurrence_of`), gated and paged anew.
    pub outcome: ReportOutcome,
    /// The occurrence of the dedup key this handoff is (1 for the first).
    pub occurrence: u32,
    /// The previous occurrence's handoff, for a recurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence_of: Option<Uuid>,
    /// The same in words: "opened handoff X", "joined open handoff X",
    /// "new occurrence #3 of …".
    pub message: String,
}

/// What a report did to its dedup key's handoffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// A new handoff (the first of its dedup key, or a keyless report).
    Opened,
    /// Recorded on the open handoff of its dedup key.
    Joined,
    /// A new occurrence after the key's last handoff was resolved.
    Recurred,
}

impl ReportOutcome {
    /// The reply's sentence for a report that did this to `handoff`.
    pub fn message(self, handoff: Uuid, occurrence: u32, recurrence_of: Option<Uuid>) -> String {
        match (self, recurrence_of) {
            (ReportOutcome::Opened, _) => format!("opened handoff {handoff}"),
            (ReportOutcome::Joined, _) => format!("joined open handoff {handoff}"),
            (ReportOutcome::Recurred, Some(prev)) => {
                format!("new occurrence #{occurrence} ({handoff}) of resolved handoff {prev}")
            }
            (ReportOutcome::Recurred, None) => format!("new occurrence #{occurrence} ({handoff})"),
        }
    }
}

/// The reply to `digest`: the live projection's state digests, for `baton
/// audit verify`. Without a bucket, one digest per bucket (the last byte of
/// the handoff id); with one, that bucket's per-handoff digests, so a
/// bucket stays far below NATS's payload limit even with millions of
/// handoffs.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Digests {
    /// `{"applied_seq", "handoffs", "buckets": [256 hex digests]}`.
    Buckets {
        /// The projection's sequence, read before the entries: an entry
        /// may be newer, never older.
        applied_seq: u64,
        /// Handoffs held.
        handoffs: usize,
        /// The 256 bucket digests, in bucket order.
        buckets: Vec<String>,
        /// Handoffs closed before this moment may have been evicted from
        /// memory (`limits.closed_retention`) and are then in no bucket;
        /// absent when nothing is evicted.
        #[serde(skip_serializing_if = "Option::is_none")]
        evicted_before: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// `{"applied_seq", "digests": {id: {"seq", "digest"}}}`.
    Bucket {
        /// As in `Buckets`.
        applied_seq: u64,
        /// Each handoff of the bucket by id.
        digests: BTreeMap<String, HandoffDigest>,
    },
}

/// One handoff's state digest and the sequence it reflects.
#[derive(Debug, Serialize)]
pub struct HandoffDigest {
    /// The stream sequence its state reflects.
    pub seq: u64,
    /// SHA-256 of its state, hex.
    pub digest: String,
}

/// An open incident a person owns (`GET /v1/people/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnedHandoff {
    /// The handoff.
    pub id: Uuid,
    /// `primary` or `backup` (how the packet's owner names them), or
    /// `paged` (a page or escalation reached them).
    pub role: String,
    /// `P1`, `P2`, `P3`.
    pub severity: String,
    /// The status in the incident's words.
    pub status: String,
    /// The owning team.
    pub team: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
}

/// One of a person's credentials, without its secret or hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialView {
    /// The credential id (the token's second part).
    pub id: String,
    /// Its label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `person` or `report`.
    pub scope: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last successful use (written at most hourly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&crate::identity::CredentialRecord> for CredentialView {
    fn from(r: &crate::identity::CredentialRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            scope: r.scope.as_str().into(),
            created_at: r.created_at,
            last_used: r.last_used,
            revoked_at: r.revoked_at,
        }
    }
}

/// `GET /v1/people/{id}`: who they are, what they own, their credentials.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonView {
    /// The configured person (contact kinds only, never addresses).
    #[serde(flatten)]
    pub person: crate::identity::Person,
    /// Open incidents whose packet names them owner, newest first.
    pub open_handoffs: Vec<OwnedHandoff>,
    /// Their credentials, revoked ones included.
    pub credentials: Vec<CredentialView>,
}
