//! The CLI's client side: publish reports, send commands, follow pages.
//!
//! Everything here talks to a running Baton over NATS only, exactly as any
//! other runner or paging consumer would.

use std::io::Write as _;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::Config;
use crate::domain::{FieldError, ParseLimits};
use crate::store::{self, Names, StoreError};
use crate::wire::page::Page;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the report is invalid:\n{}", .0.iter().map(|e| format!("  - {}: {} ({})", if e.field.is_empty() { "report" } else { &e.field }, e.message, e.code)).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    #[error("no reply from Baton on {subject}: is `baton serve` running? ({message})")]
    NoReply { subject: String, message: String },
    #[error("stream {0} does not exist yet: start `baton serve` (or `baton dev`) once to create Baton's streams")]
    NoStreams(String),
    #[error("{0}")]
    Io(String),
}

/// Validates a report with the daemon's own rules (no connection needed).
pub fn validate_report(
    cfg: &Config,
    template: &str,
    payload: &[u8],
) -> Result<crate::domain::ParsedReport, ClientError> {
    let limits = ParseLimits {
        max_report_bytes: cfg.limits.max_report_bytes,
        max_field_bytes: cfg.limits.max_field_bytes,
    };
    crate::app::reports::validate(&cfg.policy(), limits, template, payload)
        .map_err(ClientError::Invalid)
}

/// A connected client.
pub struct Client {
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub names: Names,
    pub cfg: Config,
    /// A person credential sent with every command as
    /// `Authorization: Bearer <token>` (the binary reads `BATON_TOKEN`).
    pub token: Option<String>,
}

impl Client {
    pub async fn connect(cfg: Config) -> Result<Self, ClientError> {
        let nats = store::connect(&cfg.nats).await?;
        let js = store::jetstream(nats.clone(), &cfg.nats);
        Ok(Self {
            nats,
            js,
            names: Names::new(&cfg.nats.prefix),
            cfg,
            token: None,
        })
    }

    /// The same client, acting with person credential `token`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// Creates a credential for `person` (who must be in `[people]`) and
    /// returns the token, shown once, and the stored record.
    pub async fn create_credential(
        &self,
        person: &str,
        scope: crate::identity::Scope,
        name: Option<String>,
    ) -> Result<(String, crate::identity::CredentialRecord), ClientError> {
        if !self.cfg.people.contains_key(person) {
            return Err(ClientError::Refused {
                code: "unknown_person".into(),
                message: format!("{person:?} is not in [people] of this config"),
            });
        }
        let (minted, record) = crate::identity::credentials::create(
            &self.js,
            &self.names,
            person,
            scope,
            name,
            chrono::Utc::now(),
        )
        .await
        .map_err(write_error)?;
        Ok((minted.token, record))
    }

    /// Revokes credential `id`.
    pub async fn revoke_credential(
        &self,
        id: &str,
    ) -> Result<crate::identity::CredentialRecord, ClientError> {
        crate::identity::credentials::revoke(&self.js, &self.names, id, chrono::Utc::now())
            .await
            .map_err(write_error)
    }

    /// Every stored credential record (never a secret), of `person` or all.
    pub async fn list_credentials(
        &self,
        person: Option<&str>,
    ) -> Result<Vec<crate::identity::CredentialRecord>, ClientError> {
        let all = crate::identity::credentials::list_stored(&self.js, &self.names)
            .await
            .map_err(write_error)?;
        Ok(all
            .into_iter()
            .filter(|r| person.is_none_or(|p| r.person == p))
            .collect())
    }

    /// Validates a report locally (same rules as the daemon), stores it in
    /// `BATON_REPORTS` and returns its stream sequence and handoff id.
    pub async fn report(&self, template: &str, payload: &[u8]) -> Result<(u64, Uuid), ClientError> {
        let parsed = validate_report(&self.cfg, template, payload)?;
        let ack = self
            .js
            .publish(self.names.report(template), payload.to_vec().into())
            .await
            .map_err(|e| StoreError::nats("publish report", e))?
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::StreamNotFound => {
                    ClientError::NoStreams(self.names.reports_stream())
                }
                _ => StoreError::nats("publish report", e).into(),
            })?;
        let id = store::stored_report_handoff_id(
            &self.js,
            &self.names,
            template,
            &parsed.report,
            ack.sequence,
        )
        .await?;
        Ok((ack.sequence, id))
    }

    /// Validates a report locally, then asks the daemon to record it
    /// (`<prefix>.cmd.report`): the reply says whether it opened, joined
    /// or recurred a handoff. `Ok(None)` when no daemon listens (nothing
    /// was sent; [`Self::report`] stores it for the ingest instead).
    pub async fn submit_report(
        &self,
        template: &str,
        payload: &[u8],
    ) -> Result<Option<Value>, ClientError> {
        validate_report(&self.cfg, template, payload)?;
        let report: Value =
            serde_json::from_slice(payload).map_err(|e| ClientError::Io(e.to_string()))?;
        let subject = self.names.cmd("report");
        let body = json!({"template": template, "report": report});
        match self
            .nats
            .request(
                subject.clone(),
                serde_json::to_vec(&body).expect("json").into(),
            )
            .await
        {
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(None),
            Err(e) => Err(ClientError::NoReply {
                subject,
                message: format!("{e}; the report may or may not be stored"),
            }),
            Ok(reply) => {
                let v: Value = serde_json::from_slice(&reply.payload)
                    .map_err(|e| ClientError::Io(e.to_string()))?;
                if v["ok"] == json!(true) {
                    Ok(Some(v))
                } else {
                    Err(ClientError::Refused {
                        code: v["error"]["code"].as_str().unwrap_or("error").to_string(),
                        message: v["error"]["message"].as_str().unwrap_or("").to_string(),
                    })
                }
            }
        }
    }

    /// Sends `<prefix>.cmd.<verb>` and returns the `ok` reply.
    pub async fn command(&self, verb: &str, body: Value) -> Result<Value, ClientError> {
        self.request(self.names.cmd(verb), body).await
    }

    /// Runs a job through the daemon (`<prefix>.job.<name>`).
    pub async fn job(&self, name: &str, body: Value) -> Result<Value, ClientError> {
        self.request(self.names.job(name), body).await
    }

    async fn request(&self, subject: String, body: Value) -> Result<Value, ClientError> {
        let payload: bytes::Bytes = serde_json::to_vec(&body).expect("json").into();
        let mut headers = async_nats::HeaderMap::new();
        if let Some(t) = &self.token {
            headers.insert("Authorization", format!("Bearer {t}").as_str());
        }
        let reply = tokio::time::timeout(
            self.cfg.nats.request_timeout,
            self.nats
                .request_with_headers(subject.clone(), headers, payload),
        )
        .await
        .map_err(|_| ClientError::NoReply {
            subject: subject.clone(),
            message: "timed out".into(),
        })?
        .map_err(|e| ClientError::NoReply {
            subject: subject.clone(),
            message: e.to_string(),
        })?;
        let v: Value =
            serde_json::from_slice(&reply.payload).map_err(|e| ClientError::Io(e.to_string()))?;
        if v["ok"] == json!(true) {
            Ok(v)
        } else {
            Err(ClientError::Refused {
                code: v["error"]["code"].as_str().unwrap_or("error").to_string(),
                message: v["error"]["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }

    /// Prints pages: the stored ones too with `all`, then new ones while
    /// `follow`, across daemon and broker restarts.
    pub async fn pages(&self, follow: bool, all: bool, json_out: bool) -> Result<(), ClientError> {
        let policy = if all {
            DeliverPolicy::All
        } else {
            DeliverPolicy::New
        };
        self.read_stream(
            self.names.pages_stream(),
            String::new(),
            policy,
            follow,
            all,
            |payload| {
                let parsed = (!json_out)
                    .then(|| serde_json::from_slice::<Page>(payload).ok())
                    .flatten();
                Some(match parsed {
                    Some(p) => describe(&p),
                    None => String::from_utf8_lossy(payload).into_owned(),
                })
            },
        )
        .await
    }

    /// Prints what delivery recorded for one handoff (`delivered`,
    /// `delivery_failed`, `undelivered`), read from its events; then new
    /// ones while `follow`, across restarts.
    pub async fn deliveries(
        &self,
        id: Uuid,
        follow: bool,
        json_out: bool,
    ) -> Result<(), ClientError> {
        self.read_stream(
            self.names.events_stream(),
            self.names.events(id),
            DeliverPolicy::All,
            follow,
            true,
            |payload| {
                let commit = store::decode_commit(0, payload).ok()?;
                let lines: Vec<String> = commit
                    .events
                    .iter()
                    .filter(|e| e.data.is_delivery())
                    .map(|e| {
                        if json_out {
                            serde_json::to_string(e).expect("events serialize")
                        } else {
                            describe_delivery(e)
                        }
                    })
                    .collect();
                (!lines.is_empty()).then(|| lines.join("\n"))
            },
        )
        .await
    }

    /// Reads `stream` (only `filter` if not empty) from `policy` and prints
    /// what `line` makes of each message; with `follow`, forever.
    ///
    /// Following survives daemon and broker restarts: when the ordered
    /// consumer fails (`consumer not found` after a broker restart, missed
    /// heartbeats, a stream that is briefly gone) it is created again from
    /// the sequence after the last one seen, with a capped backoff, so
    /// nothing is skipped and nothing printed twice.
    async fn read_stream(
        &self,
        stream_name: String,
        filter: String,
        policy: DeliverPolicy,
        follow: bool,
        stored: bool,
        mut line: impl FnMut(&[u8]) -> Option<String>,
    ) -> Result<(), ClientError> {
        const FIRST_RETRY: Duration = Duration::from_millis(100);
        const MAX_RETRY: Duration = Duration::from_secs(5);
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        let last = stream
            .get_info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?
            .state
            .last_sequence;
        if !follow && (!stored || last == 0) {
            return Ok(());
        }
        let mut next: Option<u64> = None;
        let mut wait = FIRST_RETRY;
        let mut announced = false;
        loop {
            let policy = match next {
                Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
                None => policy,
            };
            let opened = match self.js.get_stream(&stream_name).await {
                Ok(s) => store::ordered_messages(&s, policy, filter.clone()).await,
                Err(e) => Err(StoreError::nats("get stream", e)),
            };
            let failure = match opened {
                Err(e) => e.to_string(),
                Ok(mut msgs) => loop {
                    // Said once the consumer exists, so whatever is stored
                    // from now on is shown (a script can wait for this line).
                    if follow && !announced {
                        announced = true;
                        eprintln!("following {stream_name} (Ctrl-C to stop)");
                    }
                    match msgs.next().await {
                        Some(Ok(m)) => {
                            wait = FIRST_RETRY;
                            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                            next = Some(seq + 1);
                            if let Some(text) = line(&m.payload) {
                                if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
                                    // `baton pages --follow | head`: the reader left.
                                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                                        return Ok(());
                                    }
                                    return Err(ClientError::Io(format!(
                                        "cannot write to stdout: {e}"
                                    )));
                                }
                            }
                            if !follow && seq >= last {
                                return Ok(());
                            }
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the consumer ended".to_string(),
                    }
                },
            };
            if !follow {
                return Err(StoreError::nats("consume", failure).into());
            }
            tracing::warn!(error = %failure, retry_in = ?wait, "following again after a restart");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
}

/// One delivery event as a line: "12:00:01.250 Slack accepted (attempt 2) …".
pub fn describe_delivery(e: &crate::domain::Event) -> String {
    use crate::domain::EventData;
    let at = e.occurred_at.format("%H:%M:%S%.3f");
    match &e.data {
        EventData::Delivered {
            page_id,
            channel,
            destination,
            person,
            attempts,
            latency_ms,
        } => format!(
            "{at} DELIVERED {page_id} via {channel} to {}{destination} (attempt {attempts}, {latency_ms} ms after the page)",
            person.as_deref().map(|p| format!("{p} at ")).unwrap_or_default()
        ),
        EventData::DeliveryFailed {
            page_id,
            channel,
            destination,
            reason,
            attempts,
            ..
        } => format!("{at} FAILED {page_id} via {channel} to {destination}: {reason} after {attempts} attempt(s)"),
        EventData::Undelivered { page_id, reason } => {
            format!("{at} UNDELIVERED {page_id}: {reason}")
        }
        other => format!("{at} {}", other.kind()),
    }
}

fn write_error(e: crate::identity::credentials::WriteError) -> ClientError {
    use crate::identity::credentials::WriteError;
    match e {
        WriteError::Store(s) => ClientError::Store(s),
        WriteError::NoStream(s) => ClientError::NoStreams(s),
        e @ (WriteError::NotFound(_) | WriteError::AlreadyRevoked(_)) => ClientError::Refused {
            code: "credential".into(),
            message: e.to_string(),
        },
        e @ WriteError::Token(_) => ClientError::Io(e.to_string()),
    }
}

/// One line a human reads.
pub fn describe(p: &Page) -> String {
    if let Some(w) = &p.work {
        let what = match p.kind.as_str() {
            "returned" => "RETURNED to sender".to_string(),
            "sla_missed" => "SLA MISSED".to_string(),
            _ => "HANDOFF".to_string(),
        };
        return format!(
            "{} {what} {} v{} {} → {} → {}/{} ({}) completeness {:.2}{} — {}",
            p.sent_at.format("%H:%M:%S%.3f"),
            p.template,
            w.template_version,
            w.from_team,
            w.to_team,
            p.route,
            p.team,
            p.target,
            p.hcs.score,
            if p.hcs.missing.is_empty() {
                String::new()
            } else {
                format!(" (missing {})", p.hcs.missing.join(", "))
            },
            p.ack.cli,
        );
    }
    let what = match p.kind.as_str() {
        "escalation" => format!("ESCALATION L{} (step {})", p.level, p.step),
        "ticket" => "TICKET (packet incomplete)".to_string(),
        "refresh" => "REFRESH (packet TTL expired)".to_string(),
        _ => "PAGE".to_string(),
    };
    let respond = p
        .respond_by
        .map(|t| format!(" respond by {}", t.format("%H:%M:%S%.3f")))
        .unwrap_or_default();
    format!(
        "{} {} {} → {}/{} ({}) HCS {:.2}{}{} :: {} — ack: {}",
        p.sent_at.format("%H:%M:%S%.3f"),
        p.severity,
        what,
        p.route,
        p.team,
        match &p.person {
            Some(person) if *person != p.target => format!("{}: {person}", p.target),
            _ => p.target.clone(),
        },
        p.hcs.score,
        if p.incomplete { " INCOMPLETE" } else { "" },
        respond,
        p.packet
            .error_summary
            .as_deref()
            .unwrap_or("(no error summary)"),
        p.ack.cli,
    )
}

/// How long `baton report` waits to show the outcome.
pub const REPORT_WAIT: Duration = Duration::from_secs(5);
