//! `[nats]`: where the NATS server is, how to authenticate, the subject
//! prefix and the stream replicas.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[nats]`
///
/// `Debug` is written by hand and the password and token are never
/// serialized, so a `?cfg` in a log line cannot leak them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated. Env: `BATON_NATS_URL`.
    #[serde(default = "default_url")]
    pub url: String,
    /// First token(s) of every subject (`<prefix>.report.*`, …); stream names
    /// are the prefix upper-cased with `.`/`-` as `_` (`BATON_EVENTS`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// User name for user/password auth. Env: `BATON_NATS_USER`.
    #[serde(default)]
    pub user: Option<String>,
    /// Password for user/password auth. Env: `BATON_NATS_PASSWORD`. Never
    /// serialized or logged.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Token auth. Env: `BATON_NATS_TOKEN`. Never serialized or logged.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// Path to a `.creds` file (JWT + nkey). Env: `BATON_NATS_CREDS`.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// Require TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// CA certificate (PEM) to trust.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Stream replicas (1 for a single server, 3 in a cluster).
    #[serde(default = "one")]
    pub replicas: usize,
    /// How long a JetStream request or publish ack may take.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_prefix() -> String {
    "baton".into()
}
const fn one() -> usize {
    1
}
const fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether a secret is set is worth seeing; its value never is.
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .field("creds_file", &self.creds_file)
            .field("tls_required", &self.tls_required)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("replicas", &self.replicas)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: default_url(),
            prefix: default_prefix(),
            user: None,
            password: None,
            token: None,
            creds_file: None,
            tls_required: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            replicas: 1,
            request_timeout: default_request_timeout(),
        }
    }
}
