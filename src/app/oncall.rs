//! Who is on call, for every transport: the [`Roster`] (the domain's
//! [`Directory`] of configured people and rotations plus the stored
//! on-call events, shared with the engine) and [`Oncall`], the service the
//! NATS verbs `oncall`, `oncall_override`, `oncall_cancel`,
//! `oncall_participants`, the HTTP `/v1/oncall…` routes and the CLI call.
//!
//! A write is decided on the roster ([`Directory::decide`]), appended to
//! `BATON_ONCALL`, then applied here at once (read-your-writes); the
//! follower task (the top-level `oncall` module) applies every event of the stream,
//! this daemon's and others', and the roster skips those it has seen.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::AppError;
use super::requests;
use crate::domain::oncall::{
    Directory, OnCall, OncallCommand, OncallError, OncallEvent, Override, ONCALL_EVENT_VERSION,
};
use crate::store::OncallLog;

/// The NATS verbs served by [`Oncall`] (`<prefix>.cmd.<verb>`).
pub const VERBS: &[&str] = &[
    "oncall",
    "oncall_override",
    "oncall_cancel",
    "oncall_participants",
];

/// The on-call directory in memory, shared by the engine (to resolve
/// targets), the service and the follower.
#[derive(Debug, Default)]
pub struct Roster {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    dir: Directory,
    seen: HashSet<Uuid>,
    last_seq: u64,
}

impl Roster {
    /// A roster of the configured people and rotations, no events yet.
    pub fn new(dir: Directory) -> Self {
        Self {
            inner: RwLock::new(Inner {
                dir,
                ..Inner::default()
            }),
        }
    }

    /// Folds in one stored event (once, however often it is seen).
    pub fn apply(&self, seq: u64, e: &OncallEvent) {
        let mut inner = self.inner.write().expect("not poisoned");
        inner.last_seq = inner.last_seq.max(seq);
        if inner.seen.insert(e.id) && !inner.dir.apply(e) {
            tracing::warn!(rotation = %e.rotation, kind = e.data.kind(), seq,
                "on-call event for a rotation or override not configured; ignored");
        }
    }

    /// The highest stream sequence applied.
    pub fn last_seq(&self) -> u64 {
        self.inner.read().expect("not poisoned").last_seq
    }

    /// Reads the directory.
    pub fn read<R>(&self, f: impl FnOnce(&Directory) -> R) -> R {
        f(&self.inner.read().expect("not poisoned").dir)
    }
}

/// `GET /v1/oncall` query and the `oncall` verb's body.
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
pub struct OncallQuery {
    /// The instant asked about (RFC 3339 or `now`; default now).
    pub at: Option<String>,
    /// One rotation (default: every rotation).
    pub rotation: Option<String>,
    /// Believe the log as it was at this instant (RFC 3339; default now):
    /// `known=<at>` answers who was on call as Baton knew it then, without
    /// overrides recorded later.
    pub known: Option<String>,
}

/// Body of `POST /v1/oncall/overrides` and the `oncall_override` verb.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideCreateBody {
    /// The rotation overridden.
    pub rotation: String,
    /// Who is on call instead (a person id).
    pub by: String,
    /// The scheduled person replaced; absent: whoever is on call.
    #[serde(default)]
    pub replaces: Option<String>,
    /// First instant covered (RFC 3339 or `now`).
    pub from: String,
    /// First instant no longer covered (RFC 3339).
    pub until: String,
    /// Who records it (default: `by`). Identity comes later: for now the
    /// request names it.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Body of `DELETE /v1/oncall/overrides/{id}` and the `oncall_cancel` verb
/// (which also carries `id`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OverrideCancelBody {
    /// Who cancels it.
    #[serde(default)]
    pub by: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of the `oncall_participants` verb.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ParticipantsBody {
    /// The rotation changed.
    pub rotation: String,
    /// Person ids in turn order.
    pub participants: Vec<String>,
    /// When the new list takes over (RFC 3339 or `now`; not in the past).
    pub effective: String,
    /// Who records it.
    pub by: String,
}

/// Who is on call on one rotation at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OncallView {
    /// The rotation.
    pub rotation: String,
    /// The instant asked about.
    pub at: DateTime<Utc>,
    /// Who is on call (after overrides).
    pub person: Option<String>,
    /// Whom the rotation schedules.
    pub scheduled: Option<String>,
    /// The next participant.
    pub backup: Option<String>,
    /// The shift's start.
    pub shift_start: DateTime<Utc>,
    /// The shift's end (the next handoff).
    pub shift_end: DateTime<Utc>,
    /// The override in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#override: Option<OverrideView>,
}

/// An override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverrideView {
    /// Its id (cancel with it).
    pub id: Uuid,
    /// The rotation.
    pub rotation: String,
    /// The scheduled person replaced; absent: whoever is on call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Who is on call instead.
    pub by: String,
    /// First instant covered.
    pub from: DateTime<Utc>,
    /// First instant no longer covered.
    pub until: DateTime<Utc>,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded: an override made after an instant did not
    /// change who was paged then (that is stored in the page's event).
    pub created_at: DateTime<Utc>,
    /// When it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<&Override> for OverrideView {
    fn from(o: &Override) -> Self {
        Self {
            id: o.id,
            rotation: o.rotation.clone(),
            replaces: o.replaces.clone(),
            by: o.by.clone(),
            from: o.from,
            until: o.until,
            created_by: o.created_by.clone(),
            created_at: o.created_at,
            cancelled_at: o.cancelled_at,
        }
    }
}

/// The answer of `oncall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OncallAnswer {
    /// One entry per rotation asked about, by id.
    pub oncall: Vec<OncallView>,
}

impl From<OncallError> for AppError {
    fn from(e: OncallError) -> Self {
        match e {
            OncallError::UnknownRotation(_) => AppError::UnknownRotation(e.to_string()),
            OncallError::UnknownOverride(_) => AppError::UnknownOverride(e.to_string()),
            OncallError::Invalid { field, message } => AppError::InvalidValue { field, message },
            OncallError::OutOfRange(_) => AppError::invalid("at", e.to_string()),
        }
    }
}

/// Reads an instant: RFC 3339, or `now`.
pub fn parse_instant(field: &str, s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|_| {
            AppError::invalid(
                field,
                format!("{field} must be an RFC 3339 instant (2026-11-24T02:13:00Z) or `now`"),
            )
        })
}

fn person_name(field: &str, s: &str) -> Result<String, AppError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("{field} must be 1–128 printable characters"),
        ));
    }
    Ok(s.to_string())
}

/// The on-call service. Cheap to clone.
#[derive(Clone)]
pub struct Oncall {
    roster: Arc<Roster>,
    log: OncallLog,
}

impl Oncall {
    /// The service over `roster`, storing in `log`.
    pub fn new(roster: Arc<Roster>, log: OncallLog) -> Self {
        Self { roster, log }
    }

    /// The roster it reads.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// Who is on call at `at` (default now) on one or every rotation.
    pub fn who(&self, q: &OncallQuery) -> Result<OncallAnswer, AppError> {
        let now = Utc::now();
        let at =
            q.at.as_deref()
                .map(|s| parse_instant("at", s, now))
                .transpose()?
                .unwrap_or(now);
        let known = q
            .known
            .as_deref()
            .map(|s| parse_instant("known", s, now))
            .transpose()?
            .unwrap_or(now);
        self.roster.read(|dir| {
            let ids: Vec<String> = match &q.rotation {
                Some(r) => vec![r.clone()],
                None => dir.rotations.keys().cloned().collect(),
            };
            let mut oncall = Vec::new();
            for id in ids {
                let OnCall {
                    rotation,
                    shift,
                    scheduled,
                    person,
                    backup,
                    override_id,
                } = dir.on_call(&id, at, known)?;
                oncall.push(OncallView {
                    rotation,
                    at,
                    person,
                    scheduled,
                    backup,
                    shift_start: shift.start,
                    shift_end: shift.end,
                    r#override: override_id
                        .and_then(|o| dir.find_override(o))
                        .map(OverrideView::from),
                });
            }
            Ok(OncallAnswer { oncall })
        })
    }

    /// `oncall` over NATS: the query as a JSON body.
    pub fn who_body(&self, body: Map<String, Value>) -> Result<OncallAnswer, AppError> {
        let q: OncallQuery = requests::body("oncall", body)?;
        self.who(&q)
    }

    /// Records an override.
    pub async fn create_override(&self, b: OverrideCreateBody) -> Result<OverrideView, AppError> {
        let now = Utc::now();
        let by = person_name("by", &b.by)?;
        let actor = match &b.created_by {
            Some(c) => person_name("created_by", c)?,
            None => by.clone(),
        };
        let id = Uuid::now_v7();
        let cmd = OncallCommand::CreateOverride {
            id,
            rotation: b.rotation.clone(),
            replaces: b
                .replaces
                .as_deref()
                .map(|r| person_name("replaces", r))
                .transpose()?,
            by,
            from: parse_instant("from", &b.from, now)?,
            until: parse_instant("until", &b.until, now)?,
        };
        self.store(cmd, actor, now).await?;
        self.view(id)
    }

    /// `oncall_override` over NATS.
    pub async fn create_override_body(
        &self,
        body: Map<String, Value>,
    ) -> Result<OverrideView, AppError> {
        self.create_override(requests::body("oncall_override", body)?)
            .await
    }

    /// Withdraws an override from now on.
    pub async fn cancel_override(
        &self,
        id: Uuid,
        b: OverrideCancelBody,
    ) -> Result<OverrideView, AppError> {
        let now = Utc::now();
        let actor = match &b.by {
            Some(by) => person_name("by", by)?,
            None => "api".to_string(),
        };
        let reason = b
            .reason
            .map(|r| r.chars().take(requests::MAX_TEXT_CHARS).collect());
        self.store(OncallCommand::CancelOverride { id, reason }, actor, now)
            .await?;
        self.view(id)
    }

    /// `oncall_cancel` over NATS (`id` in the body).
    pub async fn cancel_override_body(
        &self,
        mut body: Map<String, Value>,
    ) -> Result<OverrideView, AppError> {
        let id = requests::id(&body)?;
        body.remove("id");
        self.cancel_override(id, requests::body("oncall_cancel", body)?)
            .await
    }

    /// Changes a rotation's participants from `effective` on.
    pub async fn change_participants(&self, b: ParticipantsBody) -> Result<OncallAnswer, AppError> {
        let now = Utc::now();
        let actor = person_name("by", &b.by)?;
        let effective = parse_instant("effective", &b.effective, now)?;
        let cmd = OncallCommand::ChangeParticipants {
            rotation: b.rotation.clone(),
            participants: b.participants,
            effective,
        };
        self.store(cmd, actor, now).await?;
        self.who(&OncallQuery {
            at: Some(effective.to_rfc3339()),
            rotation: Some(b.rotation),
            known: None,
        })
    }

    /// `oncall_participants` over NATS.
    pub async fn change_participants_body(
        &self,
        body: Map<String, Value>,
    ) -> Result<OncallAnswer, AppError> {
        self.change_participants(requests::body("oncall_participants", body)?)
            .await
    }

    async fn store(
        &self,
        cmd: OncallCommand,
        actor: String,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (rotation, data) = self.roster.read(|d| d.decide(&cmd, now))?;
        let event = OncallEvent {
            id: Uuid::now_v7(),
            version: ONCALL_EVENT_VERSION,
            occurred_at: now,
            actor,
            rotation,
            data,
        };
        let seq = self.log.append(&event).await?;
        self.roster.apply(seq, &event);
        tracing::info!(rotation = %event.rotation, kind = event.data.kind(), seq, "on-call event stored");
        Ok(())
    }

    fn view(&self, id: Uuid) -> Result<OverrideView, AppError> {
        self.roster
            .read(|d| d.find_override(id).map(OverrideView::from))
            .ok_or_else(|| OncallError::UnknownOverride(id).into())
    }
}
