//! Configuration: one strict TOML file (`config/baton.toml`), every field
//! documented, unknown keys rejected by name, durations human-readable
//! (`"5m"`, `"300ms"`), and environment overrides for secrets and addresses.
//!
//! Environment overrides (applied after the file): `BATON_NATS_URL`,
//! `BATON_NATS_PREFIX`, `BATON_NATS_USER`, `BATON_NATS_PASSWORD`,
//! `BATON_NATS_TOKEN`, `BATON_NATS_CREDS`, `BATON_HTTP_LISTEN`,
//! `BATON_HTTP_TOKENS` (comma-separated bearer tokens for the HTTP API). An
//! override that does not parse is an error naming the variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::teamwork::Template;
use crate::domain::{
    default_severities, is_subject_token, BelowMin, Level, OwnershipRule, Policy, RouteConfig,
    RunbookRule, Severity, SeverityPolicy,
};

/// Why a configuration could not be used. `check-config` prints it; `serve`
/// refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
    /// An environment override whose value does not parse: named with its
    /// value, never ignored (only overrides that parse can fail, and none of
    /// those holds a secret).
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// NATS connection and subject prefix.
    #[serde(default)]
    pub nats: NatsConfig,
    /// Size and concurrency limits.
    #[serde(default)]
    pub limits: Limits,
    /// The page publisher.
    #[serde(default)]
    pub pages: PagesConfig,
    /// The HTTP API and `/metrics`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Per-severity gate, SLA and escalation (`[severity.P1]`, `P2`, `P3`);
    /// any field left out keeps the playbook default.
    #[serde(default)]
    pub severity: BTreeMap<Severity, SeverityConfig>,
    /// Ownership map: workflow pattern → team, primary, backup.
    #[serde(default)]
    pub ownership: Vec<OwnershipRule>,
    /// Runbook map: workflow pattern → rollback command.
    #[serde(default)]
    pub runbook: Vec<RunbookRule>,
    /// Who each route reaches (`[routes.oncall] target = "rota:payments-primary"`).
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    /// Team for reports that name none and match no ownership rule.
    #[serde(default = "default_team")]
    pub default_team: String,
    /// The operations playbook's scheduled jobs (`[jobs]`).
    #[serde(default)]
    pub jobs: crate::jobs::JobsConfig,
    /// Directory of handoff templates (`*.toml`, one per transition type).
    /// Default: `templates/` beside the config file; without a config file,
    /// the templates shipped in `config/templates/`.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// The loaded templates (filled by [`Config::load`], not a config key).
    #[serde(skip)]
    pub templates: BTreeMap<String, Template>,
}

/// The templates shipped in `config/templates/`, built in for a daemon
/// started without a config file.
pub fn builtin_templates() -> BTreeMap<String, Template> {
    crate::domain::teamwork::builtin_templates()
}

/// Loads every `*.toml` in `dir` as a template; errors name the file.
pub fn load_templates(dir: &Path) -> Result<BTreeMap<String, Template>, ConfigError> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let t: Template = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(prev) = out.insert(t.name.clone(), t) {
            return Err(ConfigError::Invalid(vec![format!(
                "template {:?} is defined twice ({})",
                prev.name,
                path.display()
            )]));
        }
    }
    Ok(out)
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("").expect("an empty file is a valid config")
    }
}

fn default_team() -> String {
    "unassigned".into()
}

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

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest report accepted, bytes; larger ones are rejected (`too_large`).
    #[serde(default = "default_max_report_bytes")]
    pub max_report_bytes: usize,
    /// Longest string field kept, bytes; longer ones are truncated and the
    /// truncation is recorded as a warning on the `scored` event.
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Reports processed at once (also the ingest consumer's max ack pending / 2).
    #[serde(default = "default_ingest_concurrency")]
    pub ingest_concurrency: usize,
    /// Event appends awaiting their JetStream ack at once, across handoffs
    /// (async-nats blocks beyond 5,000 by default).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_appends: usize,
    /// Timer wake-ups executed at once.
    #[serde(default = "default_tick_concurrency")]
    pub tick_concurrency: usize,
}

const fn default_max_report_bytes() -> usize {
    64 * 1024
}
const fn default_max_field_bytes() -> usize {
    4096
}
const fn default_ingest_concurrency() -> usize {
    512
}
const fn default_max_in_flight() -> usize {
    4096
}
const fn default_tick_concurrency() -> usize {
    256
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_report_bytes: default_max_report_bytes(),
            max_field_bytes: default_max_field_bytes(),
            ingest_concurrency: default_ingest_concurrency(),
            max_in_flight_appends: default_max_in_flight(),
            tick_concurrency: default_tick_concurrency(),
        }
    }
}

/// `[pages]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagesConfig {
    /// Run the page publisher in this process. Turn off to run it elsewhere;
    /// events still wait in the durable consumer, so nothing is lost.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long `BATON_PAGES` remembers page ids to drop duplicates. A page
    /// re-published after a crash inside this window is dropped by the server.
    #[serde(default = "default_dup_window", with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long pages are kept.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub max_age: Duration,
}

const fn yes() -> bool {
    true
}
const fn default_dup_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
const fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            duplicate_window: default_dup_window(),
            max_age: default_retention(),
        }
    }
}

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
    /// Bearer tokens accepted on the API (`Authorization: Bearer <token>`).
    /// Every mutating endpoint needs one; with none configured, mutations
    /// over HTTP are refused (401) rather than left open. Env:
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

/// `[severity.P1]` etc. Every field is optional; what is left out keeps the
/// playbook default (see `domain::default_severities`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// Minimum HCS to page at once (P1 90, P2 85, P3 70).
    pub min_hcs: Option<f64>,
    /// Below the minimum: `enrich_then_page` (P1), `queue` (P2), `ticket` (P3).
    pub below_min: Option<BelowMin>,
    /// Longest hold before an incomplete `enrich_then_page` report pages anyway (60s).
    #[serde(default, with = "humantime_serde")]
    pub max_hold: Option<Duration>,
    /// First-response target (P1 5m, P2 15m, P3 4h).
    #[serde(default, with = "humantime_serde")]
    pub first_response: Option<Duration>,
    /// Routes paged when the gate passes (P1 oncall, P2 owner, P3 queue).
    pub page_routes: Option<Vec<String>>,
    /// Escalation levels, replacing the default list when given.
    pub escalation: Option<Vec<Level>>,
}

impl Config {
    /// Reads and validates a file, then applies environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        cfg.apply_env(|k| std::env::var(k).ok())?;
        let dir = match &cfg.templates_dir {
            Some(d) if d.is_relative() => path.parent().unwrap_or(Path::new(".")).join(d),
            Some(d) => d.clone(),
            None => path.parent().unwrap_or(Path::new(".")).join("templates"),
        };
        if dir.is_dir() {
            cfg.templates = load_templates(&dir)?;
        } else if cfg.templates_dir.is_some() {
            return Err(ConfigError::Invalid(vec![format!(
                "templates_dir: {} is not a directory",
                dir.display()
            )]));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Built-in defaults plus environment overrides (no file).
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text; the error names the offending key and line.
    /// Templates start as the built-in ones; [`Config::load`] replaces them
    /// with the directory's.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.templates = builtin_templates();
        Ok(cfg)
    }

    /// Applies `BATON_*` overrides from `get`. A value that does not parse
    /// is an error naming the variable, not a silently kept default.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("BATON_NATS_URL") {
            self.nats.url = v;
        }
        if let Some(v) = get("BATON_NATS_PREFIX") {
            self.nats.prefix = v;
        }
        if let Some(v) = get("BATON_NATS_USER") {
            self.nats.user = Some(v);
        }
        if let Some(v) = get("BATON_NATS_PASSWORD") {
            self.nats.password = Some(v);
        }
        if let Some(v) = get("BATON_NATS_TOKEN") {
            self.nats.token = Some(v);
        }
        if let Some(v) = get("BATON_NATS_CREDS") {
            self.nats.creds_file = Some(v.into());
        }
        if let Some(v) = get("BATON_HTTP_LISTEN") {
            self.http.listen =
                v.parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                        var: "BATON_HTTP_LISTEN",
                        message: format!("{e} (expected an address and port, e.g. 0.0.0.0:9464)"),
                        value: v,
                    })?;
        }
        if let Some(v) = get("BATON_HTTP_TOKENS") {
            self.http.tokens = v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
        }
        Ok(())
    }

    /// The domain policy this config describes.
    pub fn policy(&self) -> Policy {
        let mut severities = default_severities();
        for (sev, c) in &self.severity {
            let p: &mut SeverityPolicy = severities.get_mut(sev).expect("all severities");
            if let Some(v) = c.min_hcs {
                p.min_hcs = v;
            }
            if let Some(v) = c.below_min {
                p.below_min = v;
            }
            if let Some(v) = c.max_hold {
                p.max_hold = v;
            }
            if let Some(v) = c.first_response {
                p.first_response = v;
            }
            if let Some(v) = &c.page_routes {
                p.page_routes = v.clone();
            }
            if let Some(v) = &c.escalation {
                p.escalation = v.clone();
            }
        }
        Policy {
            severities,
            ownership: self.ownership.clone(),
            runbook: self.runbook.clone(),
            routes: self.routes.clone(),
            default_team: self.default_team.clone(),
            drill_route: (!self.jobs.weekly_drill.page_real_routes)
                .then(|| self.jobs.weekly_drill.route.clone()),
            templates: self.templates.clone(),
        }
    }

    /// Checks everything serde cannot; lists every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.policy().validate();
        problems.extend(self.jobs.validate());
        for t in self.templates.values() {
            problems.extend(t.validate());
        }
        if !self.templates.contains_key(crate::ingest::AGENT_FAILURE) {
            problems.push("templates: agent_failure.toml is missing".into());
        }
        let prefix_ok =
            !self.nats.prefix.is_empty() && self.nats.prefix.split('.').all(is_subject_token);
        if !prefix_ok {
            problems.push(format!(
                "nats.prefix: {:?} must be dot-separated subject tokens",
                self.nats.prefix
            ));
        }
        if self.nats.tls_cert.is_some() != self.nats.tls_key.is_some() {
            problems.push("nats.tls_cert and nats.tls_key go together".into());
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            problems.push("nats.user and nats.password go together".into());
        }
        if self.limits.max_in_flight_appends == 0 || self.limits.max_in_flight_appends > 5000 {
            problems.push("limits.max_in_flight_appends: must be within 1..=5000".into());
        }
        if self.limits.ingest_concurrency == 0 || self.limits.tick_concurrency == 0 {
            problems.push("limits: concurrency values must be > 0".into());
        }
        if self.limits.max_field_bytes < 16 {
            problems.push("limits.max_field_bytes: must be at least 16".into());
        }
        for (i, t) in self.http.tokens.iter().enumerate() {
            // Only the position is named: a token must not reach the output.
            if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!(
                    "http.tokens[{i}]: a token is at least 16 characters with no spaces"
                ));
            }
        }
        if self.http.request_timeout.is_zero() {
            problems.push("http.request_timeout: must be > 0".into());
        }
        if self.http.max_body_bytes < self.limits.max_report_bytes {
            problems.push("http.max_body_bytes: must be at least limits.max_report_bytes".into());
        }
        for name in self.routes.keys() {
            if !is_subject_token(name) {
                problems.push(format!("routes.{name}: route names are subject tokens"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_config_file_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let cfg = Config::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                cfg.validate().unwrap_or_else(|e| panic!("{path:?}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 2, "expected config/baton.toml and config/dev.toml");
    }

    #[test]
    fn shipped_templates_load_from_their_directory_and_match_the_builtin_copies() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
        let loaded = load_templates(&dir).unwrap();
        assert_eq!(loaded, builtin_templates());
        for t in loaded.values() {
            assert!(t.validate().is_empty(), "{}: {:?}", t.name, t.validate());
        }
        let cfg =
            Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/baton.toml")).unwrap();
        assert_eq!(cfg.templates.len(), 3);
    }

    #[test]
    fn a_template_with_an_unknown_key_is_an_error_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.toml"),
            "name = \"x\"\nversion = 1\nfrom_team = \"a\"\nto_team = \"b\"\nchecklst = []\n",
        )
        .unwrap();
        let err = load_templates(dir.path()).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("checklst"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::parse("[nats]\nurll = \"x\"\n").unwrap_err();
        assert!(err.contains("urll"), "{err}");
        let err = Config::parse("[severity.P1]\nmin_hsc = 3\n").unwrap_err();
        assert!(err.contains("min_hsc"), "{err}");
    }

    #[test]
    fn partial_severity_sections_keep_the_other_defaults() {
        let cfg = Config::parse("[severity.P1]\nfirst_response = \"300ms\"\n").unwrap();
        let p = cfg.policy();
        let p1 = p.severity(Severity::P1);
        assert_eq!(p1.first_response, Duration::from_millis(300));
        assert_eq!(p1.min_hcs, 90.0);
    }

    #[test]
    fn env_overrides_the_url_and_secrets() {
        let mut cfg = Config::parse("").unwrap();
        cfg.apply_env(|k| (k == "BATON_NATS_URL").then(|| "nats://x:1".to_string()))
            .unwrap();
        assert_eq!(cfg.nats.url, "nats://x:1");
    }

    /// R15: `NatsConfig` derived `Debug` and `Config` `Serialize` with the
    /// NATS password and token in them: one `?cfg` would have logged them.
    #[test]
    fn regression_nats_secrets_never_show_in_debug_or_serialized_config() {
        let mut cfg = Config::parse("[nats]\nuser = \"baton\"\n").unwrap();
        cfg.apply_env(|k| match k {
            "BATON_NATS_PASSWORD" => Some("pw-s3cret-value".into()),
            "BATON_NATS_TOKEN" => Some("tok-s3cret-value".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.nats.password.as_deref(), Some("pw-s3cret-value"));
        let shown = [
            format!("{cfg:?}"),
            format!("{:?}", cfg.nats),
            format!("{cfg:#?}"),
            serde_json::to_string(&cfg).unwrap(),
            toml::to_string(&cfg).unwrap(),
        ];
        for s in &shown {
            assert!(!s.contains("s3cret"), "{s}");
        }
        assert!(shown[1].contains("<redacted>") && shown[1].contains("baton"));
    }

    /// R9: an invalid `BATON_HTTP_LISTEN` was silently ignored, so the API
    /// listened on the default 127.0.0.1:9464 with no error.
    #[test]
    fn regression_an_invalid_http_listen_env_is_an_error_naming_variable_and_value() {
        let mut cfg = Config::parse("").unwrap();
        let err = cfg
            .apply_env(|k| (k == "BATON_HTTP_LISTEN").then(|| "0.0.0.0".to_string()))
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var: "BATON_HTTP_LISTEN", value, .. } if value == "0.0.0.0"),
            "{err}"
        );
        let shown = err.to_string();
        assert!(
            shown.contains("BATON_HTTP_LISTEN") && shown.contains("\"0.0.0.0\""),
            "{shown}"
        );
        cfg.apply_env(|k| (k == "BATON_HTTP_LISTEN").then(|| "0.0.0.0:8080".to_string()))
            .unwrap();
        assert_eq!(cfg.http.listen, "0.0.0.0:8080".parse().unwrap());
    }

    #[test]
    fn http_tokens_come_from_env_and_never_show_in_debug() {
        let mut cfg = Config::parse("[http]\nprotect_reads = true\n").unwrap();
        cfg.apply_env(|k| {
            (k == "BATON_HTTP_TOKENS").then(|| " token-aaaaaaaaaaaa1, ,token-bbbbbbbbbbbb2".into())
        })
        .unwrap();
        assert_eq!(
            cfg.http.tokens,
            ["token-aaaaaaaaaaaa1", "token-bbbbbbbbbbbb2"]
        );
        cfg.validate().unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("token-aaaa"), "{shown}");
        assert!(!serde_json::to_string(&cfg).unwrap().contains("token-aaaa"));
        cfg.http.tokens = vec!["short".into()];
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("http.tokens[0]") && !err.contains("short"),
            "{err}"
        );
    }

    #[test]
    fn validation_lists_every_problem() {
        let cfg = Config::parse(
            "[nats]\nprefix = \"a b\"\n[severity.P2]\npage_routes = []\n[[ownership]]\nworkflow=\"x\"\nteam=\"a.b\"\nprimary=\"p\"\n",
        )
        .unwrap();
        let ConfigError::Invalid(problems) = cfg.validate().unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
