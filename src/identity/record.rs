//! The stored credential record: one JSON message per credential on
//! `<prefix>.credential.<id>` in `BATON_CREDENTIALS` (one message kept per
//! subject: an update replaces it). Stored bytes are forever: the golden
//! test below pins the shape; `version` is 1, a newer one is refused (the
//! credential does not authenticate) rather than misread.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::authz::Scope;

/// The record's schema version.
pub const RECORD_VERSION: u32 = 1;

/// One credential as stored. Never holds the token, only its hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The credential id (16 hex digits; the token's second part).
    pub id: String,
    /// The person (`[people.<id>]`) it proves.
    pub person: String,
    /// `person` or `report`.
    pub scope: Scope,
    /// A label for people ("laptop", "ci-runner-3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// argon2id PHC string of the whole token.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// Set once revoked; a revoked credential never authenticates again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use, updated at most once an hour per credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
}

/// Without the hash: a record may be logged.
impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("id", &self.id)
            .field("person", &self.person)
            .field("scope", &self.scope)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

/// Why stored bytes are not a usable record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("credential record does not decode: {0}")]
    Decode(String),
    #[error("credential record version {0} is newer than this build reads ({RECORD_VERSION})")]
    Newer(u32),
}

impl CredentialRecord {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records serialize")
    }

    /// Reads stored bytes; a newer version is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let r: CredentialRecord =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Decode(e.to_string()))?;
        if r.version > RECORD_VERSION {
            return Err(RecordError::Newer(r.version));
        }
        Ok(r)
    }

    /// Whether it can still authenticate.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored bytes are forever: a record written by this version must
    /// decode in every later one, and this build writes exactly these.
    const GOLDEN: &str = r#"{"version":1,"id":"0123456789abcdef","person":"ci-runner","scope":"report","name":"runner-3","hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3q2+7w","created_at":"2026-11-28T06:00:00Z","revoked_at":"2026-11-28T07:00:00Z","last_used":"2026-11-28T06:30:00Z"}"#;
    const GOLDEN_MINIMAL: &str = r#"{"version":1,"id":"fedcba9876543210","person":"alice","scope":"person","hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3q2+7w","created_at":"2026-11-28T06:00:00Z"}"#;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_stored_record_keeps_its_golden_bytes() {
        let full = CredentialRecord {
            version: 1,
            id: "0123456789abcdef".into(),
            person: "ci-runner".into(),
            scope: Scope::Report,
            name: Some("runner-3".into()),
            hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3q2+7w".into(),
            created_at: at("2026-11-28T06:00:00Z"),
            revoked_at: Some(at("2026-11-28T07:00:00Z")),
            last_used: Some(at("2026-11-28T06:30:00Z")),
        };
        assert_eq!(String::from_utf8(full.encode()).unwrap(), GOLDEN);
        assert_eq!(CredentialRecord::decode(GOLDEN.as_bytes()).unwrap(), full);
        let minimal = CredentialRecord::decode(GOLDEN_MINIMAL.as_bytes()).unwrap();
        assert!(minimal.is_active() && minimal.scope == Scope::Person);
        assert_eq!(String::from_utf8(minimal.encode()).unwrap(), GOLDEN_MINIMAL);
        assert!(!format!("{full:?}").contains("argon2id"));
    }

    #[test]
    fn a_newer_record_is_refused_not_misread() {
        let newer = GOLDEN.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            CredentialRecord::decode(newer.as_bytes()),
            Err(RecordError::Newer(2))
        ));
    }
}
