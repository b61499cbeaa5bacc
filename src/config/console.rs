//! `[console]`: the web console's sessions (served on the `[http]` port).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::yes;

/// `[console]`
///
/// `Debug` is written by hand so the session key never reaches a log line.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the web console (`/`, `/handoffs/{id}`, `/oncall`, `/login`)
    /// on the HTTP port. Needs `[http] enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Set it when
    /// `[http]` is reached through a TLS-terminating proxy; leave it off for
    /// plain `http://127.0.0.1` (a browser would drop a `Secure` cookie).
    #[serde(default)]
    pub secure_cookies: bool,
    /// The key that signs session cookies (HMAC-SHA256), at least 32
    /// characters. Give every daemon behind one load balancer the same key.
    /// Absent: a random key per process, so every session ends when the
    /// daemon restarts. Env: `BATON_CONSOLE_SESSION_KEY`. Never serialized
    /// or logged.
    #[serde(default, skip_serializing)]
    pub session_key: Option<String>,
    /// How long a sign-in lasts. A session also ends as soon as its
    /// credential is revoked (checked on every request).
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
}

const fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secure_cookies: false,
            session_key: None,
            session_ttl: default_session_ttl(),
        }
    }
}

impl ConsoleConfig {
    /// Problems serde cannot see.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.session_key.as_ref().is_some_and(|k| k.len() < 32) {
            out.push("console.session_key must be at least 32 characters".into());
        }
        if self.session_ttl < Duration::from_secs(60) {
            out.push("console.session_ttl must be at least 1m".into());
        }
        out
    }
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("enabled", &self.enabled)
            .field("secure_cookies", &self.secure_cookies)
            .field(
                "session_key",
                &self.session_key.as_ref().map(|_| "[redacted]"),
            )
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}
