//! `[http]`: the HTTP API's listener, bearer tokens and request limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::yes;

/// `[http]`
///
/// `Debug` is written by hand so the tokens never reach a log line.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the HTTP API and `/metrics`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address to listen on. Env: `BATON_HTTP_LISTEN`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Shared bearer tokens accepted on the API (`Authorization: Bearer
    /// <token>`): the compatibility mode, acting with the body's `by`,
    /// which they cannot prove (person credentials do: docs/people.md, "People and
    /// credentials"). Every mutating endpoint needs a token or a person
    /// credential; with neither, mutations over HTTP are refused (401)
    /// rather than left open. Env:
    /// `BATON_HTTP_TOKENS` (comma-separated). Never serialized or logged.
    #[serde(default, skip_serializing)]
    pub tokens: Vec<String>,
    /// Require a token on the read endpoints (`GET /v1/...`) too.
    /// `/metrics`, `/healthz`, `/readyz` and `/openapi.json` stay open.
    #[serde(default)]
    pub protect_reads: bool,
    /// Longest a request may take before it is answered 503 `timeout`.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted, bytes (413 `body_too_large` beyond).
    /// Keep it above `limits.max_report_bytes` so an oversized report gets
    /// the report's own `too_large` field error.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("valid default")
}
const fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}
const fn default_max_body_bytes() -> usize {
    256 * 1024
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_listen(),
            tokens: Vec::new(),
            protect_reads: false,
            request_timeout: default_http_timeout(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("protect_reads", &self.protect_reads)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}
