//! `[authz]`: which roles each limited action needs, and whether a person
//! credential is required at all. Roles come from `[people.<id>].roles`.

use serde::{Deserialize, Serialize};

/// `[authz]`
///
/// An empty list means anyone authenticated may take the action; a list
/// means a person credential of someone holding one of its roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// Refuse shared tokens (`http.tokens`) and NATS commands without a
    /// person credential: every mutation then names a proven person.
    #[serde(default)]
    pub require_person: bool,
    /// Roles that may acknowledge (default: anyone).
    #[serde(default)]
    pub acknowledge: Vec<String>,
    /// Roles that may override the HCS gate (e.g. `["incident_captain"]`).
    #[serde(default, rename = "override")]
    pub override_gate: Vec<String>,
    /// Roles that may resolve.
    #[serde(default)]
    pub resolve: Vec<String>,
    /// Roles that may enrich a packet.
    #[serde(default)]
    pub enrich: Vec<String>,
}

impl AuthzConfig {
    /// Problems serde cannot see.
    pub fn problems(&self) -> Vec<String> {
        let lists = [
            ("acknowledge", &self.acknowledge),
            ("override", &self.override_gate),
            ("resolve", &self.resolve),
            ("enrich", &self.enrich),
        ];
        lists
            .iter()
            .flat_map(|(key, roles)| {
                roles
                    .iter()
                    .filter(|r| r.trim().is_empty())
                    .map(move |_| format!("authz.{key}: a role name is empty"))
            })
            .collect()
    }
}
