//! Configuration: one strict TOML file (`config/baton.toml`), every field
//! documented, unknown keys rejected by name, durations human-readable
//! (`"5m"`, `"300ms"`), and environment overrides for secrets and addresses.
//!
//! Environment overrides (applied after the file): `BATON_NATS_URL`,
//! `BATON_NATS_PREFIX`, `BATON_NATS_USER`, `BATON_NATS_PASSWORD`,
//! `BATON_NATS_TOKEN`, `BATON_NATS_CREDS`, `BATON_HTTP_LISTEN`,
//! `BATON_HTTP_TOKENS` (comma-separated bearer tokens for the HTTP API),
//! `BATON_CONSOLE_SESSION_KEY` (the web console's cookie-signing key),
//! `BATON_PAGERDUTY_<NAME>_ROUTING_KEY` (for a `[pagerduty.<name>]` in the
//! file). An override that does not parse is an error naming the variable.
//!
//! One file per section: [`nats`](NatsConfig), [`limits`](Limits),
//! [`pages`](PagesConfig), [`http`](HttpConfig), [`jobs`](JobsConfig),
//! [`heartbeat`](HeartbeatConfig) (`[[heartbeat]]` monitors), the
//! policy sections ([`severity`](SeverityConfig),
//! [`ownership`](OwnershipConfig), [`runbook`](RunbookConfig),
//! [`routes`](RouteConfig)) and the handoff templates ([`TemplateFile`],
//! [`load_templates`]). Each is the file's own type: the domain's types and
//! the stored formats carry none of the file's serde attributes, so a key
//! renamed here never changes stored bytes; [`Config::policy`] and
//! [`TemplateFile::into_template`] convert at start-up.
//!
//! This module imports only the domain: the components' settings are built
//! from it at the top (`server`), never the other way round.

mod authz;
mod console;
mod delivery;
mod heartbeat;
mod http;
mod integrations;
mod jobs;
mod limits;
mod nats;
mod pages;
mod people;
mod policy;
mod references;
mod templates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::teamwork::Template;
use crate::domain::{is_subject_token, Severity};

pub use authz::AuthzConfig;
pub use console::ConsoleConfig;
pub use delivery::{DeliveryConfig, SmtpConfig, SmtpSecurity, WebhookDeliveryConfig};
pub use heartbeat::HeartbeatConfig;
pub use http::HttpConfig;
pub use integrations::{AlertmanagerConfig, PagerDutyConfig, PD_SEVERITIES};
pub use jobs::{parse_schedule, AuditConfig, DrillConfig, Job, JobSchedule, JobsConfig};
pub use limits::{Limits, MAX_REPORT_BYTES_LIMIT};
pub use nats::NatsConfig;
pub use pages::PagesConfig;
pub use people::{ContactConfig, PersonConfig, RotationConfig, RotationKindConfig};
pub use policy::{
    BelowMinConfig, LevelConfig, OwnershipConfig, RouteConfig, RunbookConfig, SeverityConfig,
};
pub use references::BUILTIN_ROUTES;
pub use templates::{
    builtin_templates, load_templates, members_only_templates, TemplateEscalationFile,
    TemplateFile, TemplateKindFile, TemplateSlaFile, AGENT_FAILURE,
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
    /// The web console on the HTTP port: session cookies (`[console]`).
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Per-severity gate, SLA and escalation (`[severity.P1]`, `P2`, `P3`);
    /// any field left out keeps the playbook default.
    #[serde(default)]
    pub severity: BTreeMap<Severity, SeverityConfig>,
    /// Ownership map: workflow pattern → team, primary, backup.
    #[serde(default)]
    pub ownership: Vec<OwnershipConfig>,
    /// Runbook map: workflow pattern → rollback command.
    #[serde(default)]
    pub runbook: Vec<RunbookConfig>,
    /// Who each route reaches (`[routes.oncall] target = "rota:payments-primary"`).
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    /// People who can be paged and act (`[people.alice]`), service
    /// accounts among them.
    #[serde(default)]
    pub people: BTreeMap<String, PersonConfig>,
    /// On-call rotations (`[rotations.payments-primary]`).
    #[serde(default)]
    pub rotations: BTreeMap<String, RotationConfig>,
    /// Who may do what (`[authz]`): roles per action, person credentials
    /// required or not.
    #[serde(default)]
    pub authz: AuthzConfig,
    /// Team for reports that name none and match no ownership rule.
    #[serde(default = "default_team")]
    pub default_team: String,
    /// The operations playbook's scheduled jobs (`[jobs]`).
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Directory of handoff templates (`*.toml`, one per transition type).
    /// Default: `templates/` beside the config file; without a config file,
    /// the templates shipped in `config/templates/`.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// Alertmanager webhook receivers (`[alertmanager.<integration>]`),
    /// served at `POST /v1/alertmanager/<integration>`.
    #[serde(default)]
    pub alertmanager: BTreeMap<String, AlertmanagerConfig>,
    /// PagerDuty Events API v2 integrations (`[pagerduty.<name>]`), chosen
    /// by `routing_key` at `POST /v2/enqueue`.
    #[serde(default)]
    pub pagerduty: BTreeMap<String, PagerDutyConfig>,
    /// Page delivery to people: Slack, webhooks, e-mail (`[delivery]`).
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Heartbeat monitors (`[[heartbeat]]`): runners that must ping in time.
    #[serde(default)]
    pub heartbeat: Vec<HeartbeatConfig>,
    /// The loaded templates (filled by [`Config::load`], not a config key).
    #[serde(skip)]
    pub templates: BTreeMap<String, Template>,
    /// The templates whose `members_only = true` (filled with
    /// `templates`): access, not part of the stored template.
    #[serde(skip)]
    pub members_only_templates: std::collections::BTreeSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("").expect("an empty file is a valid config")
    }
}

fn default_team() -> String {
    "unassigned".into()
}

/// The `true` default of the `enabled` switches.
const fn yes() -> bool {
    true
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
            cfg.members_only_templates = members_only_templates(&dir)?;
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
        self.delivery.apply_env(&get);
        if let Some(v) = get("BATON_DELIVERY_LISTEN") {
            self.delivery.listen =
                Some(
                    v.parse()
                        .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                            var: "BATON_DELIVERY_LISTEN",
                            message: format!(
                                "{e} (expected an address and port, e.g. 127.0.0.1:9465)"
                            ),
                            value: v,
                        })?,
                );
        }
        if let Some(v) = get("BATON_CONSOLE_SESSION_KEY") {
            self.console.session_key = Some(v);
        }
        for (name, pd) in self.pagerduty.iter_mut() {
            if let Some(v) = get(&PagerDutyConfig::routing_key_env(name)) {
                pd.routing_key = v;
            }
        }
        Ok(())
    }

    /// The on-call directory of `[people.*]` and `[rotations.*]`.
    pub fn directory(&self) -> crate::domain::oncall::Directory {
        people::directory(&self.people, &self.rotations)
    }

    /// Targets naming a `rotation:` or `person:` that is not configured:
    /// in routes (target and fallback), ownership rules and template roles.
    pub fn target_problems(&self) -> Vec<String> {
        let dir = self.directory();
        let mut out = Vec::new();
        let mut check = |key: String, target: &str| {
            if let Some(p) = dir.target_problem(target) {
                out.push(format!("{key}: {p}"));
            }
        };
        for (name, r) in &self.routes {
            check(format!("routes.{name}.target"), &r.target);
            if let Some(f) = &r.fallback {
                if !(f.starts_with("person:") || f.starts_with("rotation:")) {
                    check(format!("routes.{name}.fallback"), "person:");
                }
                check(format!("routes.{name}.fallback"), f);
            }
        }
        for (i, o) in self.ownership.iter().enumerate() {
            check(format!("ownership[{i}].primary"), &o.primary);
            if let Some(b) = &o.backup {
                check(format!("ownership[{i}].backup"), b);
            }
        }
        for (name, t) in &self.templates {
            for (role, target) in &t.roles {
                check(format!("templates.{name}.roles.{role}"), target);
            }
        }
        out
    }

    /// Checks everything serde cannot; lists every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.policy().validate();
        problems.extend(self.jobs.validate());
        problems.extend(heartbeat::validate(&self.heartbeat, &self.templates));
        for t in self.templates.values() {
            problems.extend(t.validate());
        }
        if !self.templates.contains_key(AGENT_FAILURE) {
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
        problems.extend(self.limits.problems());
        problems.extend(people::problems(&self.people, &self.rotations));
        problems.extend(self.delivery.problems());
        for (name, r) in &self.routes {
            for (i, c) in r.contact.iter().enumerate() {
                if !people::contact_has_address(c) {
                    problems.push(format!("routes.{name}.contact[{i}]: no address"));
                }
            }
        }
        problems.extend(self.authz.problems());
        problems.extend(self.console.problems());
        problems.extend(self.target_problems());
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
        problems.extend(integrations::validate(
            &self.alertmanager,
            &self.pagerduty,
            |t| {
                self.templates
                    .get(t)
                    .is_some_and(|t| t.kind == crate::domain::teamwork::TemplateKind::Incident)
            },
        ));
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
    use std::time::Duration;

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
    fn authz_and_members_only_templates_are_read_and_members_only_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
        let templates = dir.path().join("templates");
        std::fs::create_dir(&templates).unwrap();
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_name().unwrap() == "sales_to_onboarding.toml" {
                // A top-level key: before the file's first table.
                text = format!("members_only = true\n{text}");
            }
            std::fs::write(templates.join(path.file_name().unwrap()), text).unwrap();
        }
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "[authz]\noverride = [\"incident_captain\"]\nrequire_person = true\n",
        )
        .unwrap();
        let cfg = Config::load(&file).unwrap();
        assert_eq!(cfg.authz.override_gate, ["incident_captain"]);
        assert!(cfg.authz.require_person && cfg.authz.acknowledge.is_empty());
        assert_eq!(
            cfg.members_only_templates.iter().collect::<Vec<_>>(),
            ["sales_to_onboarding"]
        );
        // Access, not the stored template: the loaded one is the shipped one.
        assert_eq!(cfg.templates, builtin_templates());
        let err = Config::parse("[authz]\noverrid = []\n").unwrap_err();
        assert!(err.contains("overrid"), "{err}");
    }

    #[test]
    fn check_config_names_targets_naming_unknown_rotations_and_people() {
        let cfg = Config::parse(
            "[people.alice]\n[rotations.r]\ntime_zone = \"Mars/Base\"\nkind = \"weekly\"\nhandoff = \"x\"\nparticipants = [\"alice\", \"zed\"]\n\
             [routes.oncall]\ntarget = \"rotation:nope\"\nfallback = \"person:ghost\"\n[routes.legacy]\ntarget = \"rota:primary\"\n",
        )
        .unwrap();
        let ConfigError::Invalid(problems) = cfg.validate().unwrap_err() else {
            panic!()
        };
        let all = problems.join("\n");
        for want in [
            "routes.oncall.target: \"rotation:nope\": no [rotations.nope]",
            "routes.oncall.fallback: \"person:ghost\": no [people.ghost]",
            "rotations.r.time_zone",
            "rotations.r.handoff",
            "\"zed\" is not in [people]",
        ] {
            assert!(all.contains(want), "{want} in {all}");
        }
        assert!(!all.contains("legacy"), "labels are not checked: {all}");
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
