//! Who is on call: rotations, overrides, participant changes, and the
//! resolution of a route's target to a person at an instant.
//!
//! Pure like the rest of `domain`: the [`Directory`] is built from the
//! config's people and rotations plus the stored [`OncallEvent`]s (folded
//! in with [`Directory::apply`]), and every question takes its instant as
//! an argument. [`Directory::decide`] checks an on-call command and returns
//! the event to store; the edge (`app::oncall`) stores it.
//!
//! Questions take two instants: `at`, the moment asked about, and `known`,
//! how much of the log to believe (events recorded after `known` are
//! ignored, and an override cancelled by then no longer counts). The
//! engine asks with `at = known = now`, so an override made later never
//! changes who *was* paged: that person is stored in the page's event.

mod event;
mod rotation;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Notice, Policy};

pub use event::{OncallEvent, OncallEventData, ONCALL_EVENT_VERSION};
pub use rotation::{local_to_utc, pick, Rotation, RotationKind, Shift};

/// A stored override, as folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub id: Uuid,
    pub rotation: String,
    /// The scheduled person replaced; `None`: whoever is on call.
    pub replaces: Option<String>,
    /// Who is on call instead.
    pub by: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When it was cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl Override {
    /// Believed at `known` and covering `at`.
    fn covers(&self, at: DateTime<Utc>, known: DateTime<Utc>) -> bool {
        self.created_at <= known
            && self.cancelled_at.is_none_or(|c| c > known)
            && self.from <= at
            && at < self.until
    }
}

/// A participant list in force from `effective`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantsChange {
    pub participants: Vec<String>,
    pub effective: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// One rotation with what the log added to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RotationState {
    pub rotation: Rotation,
    /// In the order recorded.
    pub changes: Vec<ParticipantsChange>,
    /// In the order recorded.
    pub overrides: Vec<Override>,
}

/// Who is on call on one rotation at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCall {
    pub rotation: String,
    pub shift: Shift,
    /// Whom the rotation schedules (before overrides).
    pub scheduled: Option<String>,
    /// Who is on call: the override's `by`, or `scheduled`.
    pub person: Option<String>,
    /// The next participant after the scheduled one (not the person on call).
    pub backup: Option<String>,
    /// The override in force, if any.
    pub override_id: Option<Uuid>,
}

/// Why an on-call question or command is refused. Each maps to an
/// `AppError` at the edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OncallError {
    /// No rotation with that id (HTTP 404).
    #[error("no rotation {0:?}")]
    UnknownRotation(String),
    /// No override with that id (HTTP 404).
    #[error("no override {0}")]
    UnknownOverride(Uuid),
    /// The command's content is wrong (HTTP 422).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The instant is outside what can be computed (HTTP 422).
    #[error("{0} is out of range")]
    OutOfRange(DateTime<Utc>),
}

fn invalid(field: &str, message: impl Into<String>) -> OncallError {
    OncallError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// An on-call command, checked by [`Directory::decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum OncallCommand {
    /// `by` takes `rotation` from `from` until `until`.
    CreateOverride {
        id: Uuid,
        rotation: String,
        replaces: Option<String>,
        by: String,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// Withdraw an override.
    CancelOverride { id: Uuid, reason: Option<String> },
    /// New participants from `effective` (not before now).
    ChangeParticipants {
        rotation: String,
        participants: Vec<String>,
        effective: DateTime<Utc>,
    },
}

/// What a target names: `rotation:<id>`, `person:<id>`, `owner`, `backup`,
/// or any other string, an opaque label (`rota:primary`) kept as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Rotation(&'a str),
    Person(&'a str),
    Owner,
    Backup,
    Label(&'a str),
}

impl<'a> Target<'a> {
    /// Reads a target string.
    pub fn parse(s: &'a str) -> Target<'a> {
        if let Some(id) = s.strip_prefix("rotation:") {
            Target::Rotation(id)
        } else if let Some(id) = s.strip_prefix("person:") {
            Target::Person(id)
        } else if s == "owner" {
            Target::Owner
        } else if s == "backup" {
            Target::Backup
        } else {
            Target::Label(s)
        }
    }
}

/// A target resolved at an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// A person (and, for a rotation, its backup and the rotation's id).
    Person {
        person: String,
        backup: Option<String>,
        rotation: Option<String>,
    },
    /// It names someone, but nobody is there: the reason says why.
    Nobody(String),
    /// An opaque label: nothing to resolve.
    Label,
}

/// People and rotations, with the stored on-call events folded in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    /// Known person ids.
    pub people: BTreeSet<String>,
    pub rotations: BTreeMap<String, RotationState>,
}

impl Directory {
    /// A directory of configured people and rotations, no events yet.
    pub fn new(people: impl IntoIterator<Item = String>, rotations: Vec<Rotation>) -> Self {
        Self {
            people: people.into_iter().collect(),
            rotations: rotations
                .into_iter()
                .map(|r| {
                    (
                        r.id.clone(),
                        RotationState {
                            rotation: r,
                            changes: vec![],
                            overrides: vec![],
                        },
                    )
                })
                .collect(),
        }
    }

    /// Folds one stored event in. Events for a rotation no longer
    /// configured, or cancelling an unknown override, change nothing
    /// (returns `false`): the log outlives the config.
    pub fn apply(&mut self, e: &OncallEvent) -> bool {
        match &e.data {
            OncallEventData::OverrideCreated {
                override_id,
                replaces,
                by,
                from,
                until,
            } => {
                let Some(r) = self.rotations.get_mut(&e.rotation) else {
                    return false;
                };
                if r.overrides.iter().any(|o| o.id == *override_id) {
                    return false;
                }
                r.overrides.push(Override {
                    id: *override_id,
                    rotation: e.rotation.clone(),
                    replaces: replaces.clone(),
                    by: by.clone(),
                    from: *from,
                    until: *until,
                    created_by: e.actor.clone(),
                    created_at: e.occurred_at,
                    cancelled_at: None,
                });
                true
            }
            OncallEventData::OverrideCancelled { override_id, .. } => {
                let Some(o) = self
                    .rotations
                    .get_mut(&e.rotation)
                    .and_then(|r| r.overrides.iter_mut().find(|o| o.id == *override_id))
                else {
                    return false;
                };
                if o.cancelled_at.is_none() {
                    o.cancelled_at = Some(e.occurred_at);
                }
                true
            }
            OncallEventData::ParticipantsChanged {
                participants,
                effective,
            } => {
                let Some(r) = self.rotations.get_mut(&e.rotation) else {
                    return false;
                };
                r.changes.push(ParticipantsChange {
                    participants: participants.clone(),
                    effective: *effective,
                    recorded_at: e.occurred_at,
                });
                true
            }
        }
    }

    /// The override with that id.
    pub fn find_override(&self, id: Uuid) -> Option<&Override> {
        self.rotations
            .values()
            .flat_map(|r| &r.overrides)
            .find(|o| o.id == id)
    }

    /// Checks a command against the directory at `now`; the event to store.
    pub fn decide(
        &self,
        cmd: &OncallCommand,
        now: DateTime<Utc>,
    ) -> Result<(String, OncallEventData), OncallError> {
        match cmd {
            OncallCommand::CreateOverride {
                id,
                rotation,
                replaces,
                by,
                from,
                until,
            } => {
                if !self.rotations.contains_key(rotation) {
                    return Err(OncallError::UnknownRotation(rotation.clone()));
                }
                if !self.people.contains(by) {
                    return Err(invalid("by", format!("{by:?} is not in [people]")));
                }
                if let Some(p) = replaces {
                    if !self.people.contains(p) {
                        return Err(invalid("replaces", format!("{p:?} is not in [people]")));
                    }
                }
                if until <= from {
                    return Err(invalid("until", "must be after from"));
                }
                if *until <= now {
                    return Err(invalid("until", "the override would be over already"));
                }
                Ok((
                    rotation.clone(),
                    OncallEventData::OverrideCreated {
                        override_id: *id,
                        replaces: replaces.clone(),
                        by: by.clone(),
                        from: *from,
                        until: *until,
                    },
                ))
            }
            OncallCommand::CancelOverride { id, reason } => {
                let o = self
                    .find_override(*id)
                    .filter(|o| o.cancelled_at.is_none())
                    .ok_or(OncallError::UnknownOverride(*id))?;
                Ok((
                    o.rotation.clone(),
                    OncallEventData::OverrideCancelled {
                        override_id: *id,
                        reason: reason.clone(),
                    },
                ))
            }
            OncallCommand::ChangeParticipants {
                rotation,
                participants,
                effective,
            } => {
                if !self.rotations.contains_key(rotation) {
                    return Err(OncallError::UnknownRotation(rotation.clone()));
                }
                if *effective < now {
                    return Err(invalid(
                        "effective",
                        "a participant change takes effect now or later, never in the past",
                    ));
                }
                if participants.is_empty() {
                    return Err(invalid("participants", "nobody would be on call"));
                }
                if let Some(p) = participants.iter().find(|p| !self.people.contains(*p)) {
                    return Err(invalid("participants", format!("{p:?} is not in [people]")));
                }
                Ok((
                    rotation.clone(),
                    OncallEventData::ParticipantsChanged {
                        participants: participants.clone(),
                        effective: *effective,
                    },
                ))
            }
        }
    }

    /// Who is on call on `rotation` at `at`, believing the log up to `known`.
    pub fn on_call(
        &self,
        rotation: &str,
        at: DateTime<Utc>,
        known: DateTime<Utc>,
    ) -> Result<OnCall, OncallError> {
        let r = self
            .rotations
            .get(rotation)
            .ok_or_else(|| OncallError::UnknownRotation(rotation.into()))?;
        let shift = r.rotation.shift_at(at).ok_or(OncallError::OutOfRange(at))?;
        let participants = r.participants_at(at, known);
        let scheduled = pick(participants, shift.index).cloned();
        let backup = scheduled.as_ref().and_then(|s| {
            // The next participant after the scheduled one; a repeated
            // name is skipped so backup differs from the person on call.
            (1..participants.len() as i64)
                .filter_map(|i| pick(participants, shift.index + i))
                .find(|p| *p != s)
                .cloned()
        });
        let chosen = r
            .overrides
            .iter()
            .filter(|o| o.covers(at, known))
            .filter(|o| o.replaces.is_none() || o.replaces == scheduled)
            // Latest created wins; the id breaks a tie the same way always.
            .max_by_key(|o| (o.created_at, o.id));
        let (person, override_id) = match chosen {
            Some(o) => (Some(o.by.clone()), Some(o.id)),
            None => (scheduled.clone(), None),
        };
        Ok(OnCall {
            rotation: rotation.to_string(),
            shift,
            scheduled,
            person,
            backup,
            override_id,
        })
    }

    /// Who `target` reaches at `now`. `owner` and `backup` read the
    /// packet's owner fields (which may name a rotation or person in turn).
    pub fn resolve(
        &self,
        target: &str,
        owner: Option<&str>,
        backup: Option<&str>,
        now: DateTime<Utc>,
    ) -> Resolution {
        let named = match Target::parse(target) {
            Target::Owner => match owner {
                Some(o) => Target::parse(o),
                None => return Resolution::Nobody("the packet names no owner".into()),
            },
            Target::Backup => match backup {
                Some(b) => Target::parse(b),
                None => return Resolution::Nobody("the packet names no backup".into()),
            },
            t => t,
        };
        match named {
            Target::Person(p) if self.people.contains(p) => Resolution::Person {
                person: p.to_string(),
                backup: None,
                rotation: None,
            },
            Target::Person(p) => Resolution::Nobody(format!("no person {p:?}")),
            Target::Rotation(id) => match self.on_call(id, now, now) {
                Ok(OnCall {
                    person: Some(person),
                    backup,
                    ..
                }) => Resolution::Person {
                    person,
                    backup,
                    rotation: Some(id.to_string()),
                },
                Ok(_) => Resolution::Nobody(format!("rotation {id:?} has nobody on call")),
                Err(e) => Resolution::Nobody(e.to_string()),
            },
            // `owner` naming `owner` again, or a plain label.
            Target::Owner | Target::Backup | Target::Label(_) => Resolution::Label,
        }
    }

    /// Config problems of one target string (`routes.x.target`): a
    /// `rotation:` or `person:` that names nothing configured.
    pub fn target_problem(&self, target: &str) -> Option<String> {
        match Target::parse(target) {
            Target::Rotation(id) if !self.rotations.contains_key(id) => {
                Some(format!("{target:?}: no [rotations.{id}]"))
            }
            Target::Person(id) if !self.people.contains(id) => {
                Some(format!("{target:?}: no [people.{id}]"))
            }
            _ => None,
        }
    }
}

impl Directory {
    /// Fills in who each route of `notice` reaches at `now`: the person a
    /// `rotation:`/`person:`/`owner`/`backup` target resolves to (and a
    /// rotation's backup), or, when it resolves to nobody, the route's
    /// `fallback` with `unresolved` set. Labels are left as they are.
    /// Returns how many targets resolved to nobody.
    pub fn resolve_notice(&self, notice: &mut Notice, policy: &Policy, now: DateTime<Utc>) -> u32 {
        let owner = notice.packet.primary().map(str::to_string);
        let backup = notice.packet.backup().map(str::to_string);
        let mut unresolved = 0;
        for rt in &mut notice.routes {
            let resolution = self.resolve(&rt.target, owner.as_deref(), backup.as_deref(), now);
            let resolution = match resolution {
                Resolution::Nobody(_) => {
                    unresolved += 1;
                    rt.unresolved = true;
                    match policy
                        .routes
                        .get(&rt.route)
                        .and_then(|r| r.fallback.as_deref())
                    {
                        Some(f) => self.resolve(f, None, None, now),
                        None => Resolution::Label,
                    }
                }
                r => r,
            };
            if let Resolution::Person {
                person,
                backup,
                rotation,
            } = resolution
            {
                rt.person = Some(person);
                rt.backup = backup;
                rt.rotation = rotation;
            }
        }
        unresolved
    }
}

impl RotationState {
    /// The participant list in force at `at`: the latest-effective change
    /// recorded by `known` that is in force by `at`, else the configured
    /// list. The shift count still runs from the anchor.
    pub fn participants_at(&self, at: DateTime<Utc>, known: DateTime<Utc>) -> &[String] {
        self.changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.effective <= at && c.recorded_at <= known)
            .max_by_key(|(i, c)| (c.effective, *i))
            .map(|(_, c)| c.participants.as_slice())
            .unwrap_or(&self.rotation.participants)
    }
}
