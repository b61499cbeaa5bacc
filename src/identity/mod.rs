//! Who acts: people (from `[people.*]`), their credentials (stored hashed
//! in `BATON_CREDENTIALS`) and the rule of who may do what.
//!
//! - [`token`] — the token's format, minting and argon2id check (pure).
//! - [`authz`] — [`authz::authorize`], the one rule (pure): actor, action,
//!   facts → allow or forbidden naming what is needed.
//! - [`record`] — the stored credential record and its golden bytes.
//! - [`credentials`] — the stream followed into memory, the verification
//!   cache, and the writes (create, revoke, last use).
//!
//! [`Identity`] is what a transport holds: it turns a bearer token into an
//! [`Actor`]. It imports the store and the config, never `app`, `http` or
//! `api`: they call it.

pub mod authz;
pub mod credentials;
pub mod record;
pub mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use authz::{Action, Actor, Decision, Facts, Principal, Rules, Scope};
pub use credentials::{Credentials, VerifyError};
pub use record::CredentialRecord;

use crate::config::{Config, ContactConfig, PersonConfig};
use crate::store::StoreError;

/// A configured person, as the API shows them: no contact secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Person {
    pub id: String,
    /// Display name (the id when none is configured).
    pub name: String,
    /// IANA time zone (`UTC` when none is configured).
    pub time_zone: String,
    pub roles: BTreeSet<String>,
    pub teams: BTreeSet<String>,
    /// The kinds of their contact methods, in order (`email`, `slack`,
    /// `webhook`); never the addresses or webhook URLs.
    pub contact: Vec<String>,
    /// A service account (may only report).
    pub service: bool,
}

impl Person {
    fn from_config(id: &str, p: &PersonConfig) -> Self {
        Person {
            id: id.to_string(),
            name: p.name.clone().unwrap_or_else(|| id.to_string()),
            time_zone: p.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            roles: p.roles.iter().cloned().collect(),
            teams: p.teams.iter().cloned().collect(),
            contact: p
                .contact
                .iter()
                .map(|c| {
                    match c {
                        ContactConfig::Email { .. } => "email",
                        ContactConfig::Slack { .. } => "slack",
                        ContactConfig::Webhook { .. } => "webhook",
                    }
                    .to_string()
                })
                .collect(),
            service: p.service,
        }
    }
}

/// Why a bearer token is not a person: HTTP 401 (503 for `Store`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Credential(#[from] VerifyError),
    /// The credential's person is no longer in `[people]`.
    #[error("credential {credential} belongs to {person:?}, who is not configured")]
    NoSuchPerson { credential: String, person: String },
}

impl AuthError {
    /// Whether it is the store's fault (retry), not the caller's.
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            AuthError::Credential(VerifyError::Store(e)) => Some(e),
            _ => None,
        }
    }
}

/// People, credentials and the access rules: what a transport needs to
/// know who asks and what they may do. A cheap handle.
#[derive(Clone)]
pub struct Identity {
    people: Arc<BTreeMap<String, Person>>,
    /// `None` without a store (tests of the router alone).
    credentials: Option<Credentials>,
    rules: Arc<Rules>,
    members_only: Arc<BTreeSet<String>>,
}

impl Identity {
    /// From the config; `credentials` is the daemon's followed view.
    pub fn new(cfg: &Config, credentials: Option<Credentials>) -> Self {
        let a = &cfg.authz;
        Identity {
            people: Arc::new(
                cfg.people
                    .iter()
                    .map(|(id, p)| {
                        let mut person = Person::from_config(id, p);
                        // A rotation's configured participants hold the
                        // role `rotation:<id>` (`[authz] override =
                        // ["rotation:incident-captains"]`).
                        person.roles.extend(
                            cfg.rotations
                                .iter()
                                .filter(|(_, r)| r.participants.contains(id))
                                .map(|(r, _)| format!("rotation:{r}")),
                        );
                        (id.clone(), person)
                    })
                    .collect(),
            ),
            credentials,
            rules: Arc::new(Rules {
                require_person: a.require_person,
                acknowledge: a.acknowledge.clone(),
                override_gate: a.override_gate.clone(),
                resolve: a.resolve.clone(),
                enrich: a.enrich.clone(),
            }),
            members_only: Arc::new(cfg.members_only_templates.clone()),
        }
    }

    /// The access rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Whether template `name` is `members_only`.
    pub fn members_only(&self, template: &str) -> bool {
        self.members_only.contains(template)
    }

    /// Whether any template is `members_only` (else no facts are loaded).
    pub fn any_members_only(&self) -> bool {
        !self.members_only.is_empty()
    }

    /// A configured person.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.get(id)
    }

    /// Every configured person.
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }

    /// The followed credentials, if this process has a store.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Whether `token` has the shape of a person credential (so it is
    /// worth a lookup).
    pub fn is_person_token(token: &str) -> bool {
        token::id_of(token).is_ok()
    }

    /// The actor a person credential proves.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AuthError> {
        let creds = self
            .credentials
            .as_ref()
            .ok_or(AuthError::Credential(VerifyError::Unknown))?;
        let record = creds.verify(token).await?;
        self.actor_of(record)
    }

    /// The actor of credential `id`, still active, whose token was proven
    /// before (a console session): no secret, so no argon2 check.
    pub async fn actor_for_credential(&self, id: &str) -> Result<Actor, AuthError> {
        let creds = self
            .credentials
            .as_ref()
            .ok_or(AuthError::Credential(VerifyError::Unknown))?;
        let record = creds.active(id).await?;
        self.actor_of(record)
    }

    fn actor_of(&self, record: CredentialRecord) -> Result<Actor, AuthError> {
        let person = self
            .people
            .get(&record.person)
            .ok_or_else(|| AuthError::NoSuchPerson {
                credential: record.id.clone(),
                person: record.person.clone(),
            })?;
        Ok(Actor::Person(Principal {
            person: person.id.clone(),
            credential: record.id,
            scope: record.scope,
            service: person.service,
            roles: person.roles.clone(),
            teams: person.teams.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotations_participants_hold_its_role() {
        let cfg = Config::parse(
            "[people.alice]\nroles = [\"lead\"]\n[people.bob]\n\
             [rotations.captains]\ntime_zone = \"UTC\"\nkind = \"weekly\"\n\
             handoff = \"2026-11-02T09:00:00\"\nparticipants = [\"alice\"]\n",
        )
        .unwrap();
        let id = Identity::new(&cfg, None);
        let roles = |p: &str| {
            id.person(p)
                .unwrap()
                .roles
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(roles("alice"), ["lead", "rotation:captains"]);
        assert!(roles("bob").is_empty());
    }
}
