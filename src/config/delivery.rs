//! `[delivery]`: the worker that takes pages from `BATON_PAGES` to people
//! (Slack, webhooks, e-mail), its retry schedule, rate limit, SMTP relay
//! and webhook signing.
//!
//! Secrets never sit in the file: the webhook signing secret, the SMTP
//! credentials and the acknowledge-link keys come from the environment
//! (`BATON_DELIVERY_WEBHOOK_SECRET`, `BATON_SMTP_USER`,
//! `BATON_SMTP_PASSWORD`, `BATON_ACK_KEYS`), are skipped when the config is
//! serialized and shown as `<redacted>` by `Debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[delivery]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Run the delivery worker inside `serve` (`baton deliver` runs it
    /// alone). Off by default: pages stay on `BATON_PAGES` for whatever
    /// consumes them.
    #[serde(default)]
    pub enabled: bool,
    /// How long one contact method is retried (408, 429, 5xx, timeouts,
    /// connection errors) before the next one is tried.
    #[serde(default = "default_retry_deadline", with = "humantime_serde")]
    pub retry_deadline: Duration,
    /// The first retry's delay; doubled each time (with jitter) up to
    /// `max_backoff`. A `Retry-After` answer waits at least that long.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Time to open a connection to a webhook, Slack or the SMTP relay.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time for one whole attempt (connect, send, answer).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The shortest interval between two requests to one destination (a
    /// host, or the SMTP relay): a simple per-destination rate limit.
    #[serde(default = "default_min_interval", with = "humantime_serde")]
    pub per_destination_interval: Duration,
    /// Pages delivered at once by one worker (each waits for its remote end
    /// and for its outcome's append, so throughput is about this many
    /// pages per round trip; the consumer lets four times as many be
    /// fetched ahead).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Where `baton deliver` serves `/metrics`, `/healthz` and `/readyz`
    /// (`"127.0.0.1:9465"`); unset, it serves nothing. `serve` ignores it:
    /// its `[http]` listener serves them. Env: `BATON_DELIVERY_LISTEN`.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where Baton's HTTP API is reachable from people's phones
    /// (`https://baton.example.com`): messages then carry acknowledge and
    /// resolve links.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long acknowledge and resolve links stay valid.
    #[serde(default = "default_link_ttl", with = "humantime_serde")]
    pub link_ttl: Duration,
    /// Webhook requests.
    #[serde(default)]
    pub webhook: WebhookDeliveryConfig,
    /// The SMTP relay e-mail goes through.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Keys for acknowledge links, newest first (from `BATON_ACK_KEYS`,
    /// comma-separated; links are signed with the first and accepted with
    /// any, so keys rotate without breaking links in flight).
    #[serde(skip)]
    pub ack_keys: Vec<String>,
}

/// `[delivery.webhook]`
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryConfig {
    /// Extra headers on every webhook request (`{ "X-Team" = "payments" }`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The HMAC-SHA256 key of `X-Baton-Signature: sha256=<hex>` over the
    /// body (from `BATON_DELIVERY_WEBHOOK_SECRET`; unsigned without it).
    #[serde(skip)]
    pub secret: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the
    /// relay does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on localhost or a trusted network.
    Plain,
}

/// `[delivery.smtp]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The relay's host name.
    pub host: String,
    /// Its port (default 587).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` or `plain`.
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// The sender (`Baton <baton@example.com>`).
    pub from: String,
    /// Login name (from `BATON_SMTP_USER`).
    #[serde(skip)]
    pub user: Option<String>,
    /// Password (from `BATON_SMTP_PASSWORD`).
    #[serde(skip)]
    pub password: Option<String>,
}

const fn default_retry_deadline() -> Duration {
    Duration::from_secs(300)
}
const fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}
const fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
const fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
const fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
const fn default_min_interval() -> Duration {
    Duration::from_millis(100)
}
const fn default_link_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
const fn default_concurrency() -> usize {
    256
}
const fn default_smtp_port() -> u16 {
    587
}
const fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            retry_deadline: default_retry_deadline(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            connect_timeout: default_connect_timeout(),
            timeout: default_timeout(),
            per_destination_interval: default_min_interval(),
            concurrency: default_concurrency(),
            listen: None,
            public_url: None,
            link_ttl: default_link_ttl(),
            webhook: WebhookDeliveryConfig::default(),
            smtp: None,
            ack_keys: Vec::new(),
        }
    }
}

/// `Some("<redacted>")` for a set secret.
fn redact<T>(s: &Option<T>) -> Option<&'static str> {
    s.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("enabled", &self.enabled)
            .field("retry_deadline", &self.retry_deadline)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("per_destination_interval", &self.per_destination_interval)
            .field("concurrency", &self.concurrency)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("link_ttl", &self.link_ttl)
            .field("webhook", &self.webhook)
            .field("smtp", &self.smtp)
            .field("ack_keys", &format!("<{} redacted>", self.ack_keys.len()))
            .finish()
    }
}

impl std::fmt::Debug for WebhookDeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDeliveryConfig")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("secret", &redact(&self.secret))
            .finish()
    }
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .finish()
    }
}

impl DeliveryConfig {
    /// What serde cannot check.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            out.push("delivery.timeout and delivery.connect_timeout: must be > 0".into());
        }
        if self.initial_backoff.is_zero() || self.max_backoff < self.initial_backoff {
            out.push("delivery.initial_backoff: must be > 0 and at most max_backoff".into());
        }
        if self.concurrency == 0 {
            out.push("delivery.concurrency: must be at least 1".into());
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                out.push("delivery.public_url: an http(s) URL".into());
            }
        }
        if let Some(s) = &self.smtp {
            if s.host.is_empty() || !s.from.contains('@') {
                out.push("delivery.smtp: host and a from address are required".into());
            }
        }
        out
    }

    /// Secrets from the environment (see the module's docs).
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("BATON_DELIVERY_WEBHOOK_SECRET") {
            self.webhook.secret = Some(v);
        }
        if let Some(v) = get("BATON_ACK_KEYS") {
            self.ack_keys = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(smtp) = self.smtp.as_mut() {
            if let Some(v) = get("BATON_SMTP_USER") {
                smtp.user = Some(v);
            }
            if let Some(v) = get("BATON_SMTP_PASSWORD") {
                smtp.password = Some(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    #[test]
    fn delivery_is_off_by_default_and_parses_with_route_contacts() {
        assert!(!Config::default().delivery.enabled);
        let cfg = Config::parse(
            r#"
[delivery]
enabled = true
retry_deadline = "30s"
public_url = "https://baton.example.com"
[delivery.webhook]
headers = { "X-Team" = "payments" }
[delivery.smtp]
host = "smtp.example.com"
from = "baton@example.com"
[routes.oncall]
target = "rota:payments"
contact = [ { kind = "slack", webhook_url = "env:OPS_SLACK" } ]
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.delivery.retry_deadline.as_secs(), 30);
        assert_eq!(cfg.delivery.concurrency, 256);
        assert_eq!(
            cfg.delivery.listen, None,
            "baton deliver serves nothing unless told"
        );
        assert_eq!(cfg.delivery.smtp.as_ref().unwrap().port, 587);
        assert_eq!(cfg.routes["oncall"].contact.len(), 1);
        let err = Config::parse(
            "[routes.x]\ntarget = \"t\"\ncontact = [ { kind = \"email\", to = \"nobody\" } ]\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid(p) if p.iter().any(|p| p.contains("routes.x.contact[0]"))),
            "{err}"
        );
    }

    #[test]
    fn baton_deliver_listens_where_the_file_or_the_env_says() {
        let mut cfg = Config::parse("[delivery]\nlisten = \"127.0.0.1:9465\"\n").unwrap();
        assert_eq!(cfg.delivery.listen, Some("127.0.0.1:9465".parse().unwrap()));
        cfg.apply_env(|k| (k == "BATON_DELIVERY_LISTEN").then(|| "0.0.0.0:9466".into()))
            .unwrap();
        assert_eq!(cfg.delivery.listen, Some("0.0.0.0:9466".parse().unwrap()));
        let err = cfg
            .apply_env(|k| (k == "BATON_DELIVERY_LISTEN").then(|| "9466".into()))
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::Env {
                    var: "BATON_DELIVERY_LISTEN",
                    ..
                }
            ),
            "{err}"
        );
    }

    /// Webhook URLs, the signing secret, SMTP passwords and link keys are
    /// secrets: never in `Debug` or the serialized config.
    #[test]
    fn delivery_secrets_never_show_in_debug_or_serialized_config() {
        let mut cfg =
            Config::parse("[delivery.smtp]\nhost = \"h\"\nfrom = \"b@example.com\"\n").unwrap();
        cfg.apply_env(|k| match k {
            "BATON_DELIVERY_WEBHOOK_SECRET" => Some("whsec-s3cret".into()),
            "BATON_SMTP_USER" => Some("baton".into()),
            "BATON_SMTP_PASSWORD" => Some("smtp-s3cret".into()),
            "BATON_ACK_KEYS" => Some("key-s3cret-new, key-s3cret-old".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.delivery.ack_keys, ["key-s3cret-new", "key-s3cret-old"]);
        assert_eq!(
            cfg.delivery.smtp.as_ref().unwrap().password.as_deref(),
            Some("smtp-s3cret")
        );
        for shown in [
            format!("{cfg:?}"),
            format!("{:#?}", cfg.delivery),
            serde_json::to_string(&cfg).unwrap(),
            toml::to_string(&cfg).unwrap(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }
}
