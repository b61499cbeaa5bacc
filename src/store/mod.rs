//! JetStream: connection, Baton's streams, and the event log's append/read.
//!
//! [`Names`] (in `names.rs`) owns every subject and stream name and
//! [`Stream::ALL`] lists the streams; `streams.rs` holds their
//! configurations and [`ensure_streams`].
//!
//! `BATON_EVENTS` is the source of truth. An append is one [`Commit`] on
//! `<prefix>.events.<handoff_id>` carrying `Nats-Expected-Last-Subject-Sequence`
//! (optimistic concurrency per handoff) and a `Nats-Msg-Id` (so a retried
//! append is stored once). Appends for different handoffs run concurrently,
//! bounded by a semaphore below async-nats's 5,000 pending-ack limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_nats::HeaderMap;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::NatsConfig;
use crate::domain::{Commit, EVENT_VERSION};
use crate::wire::events::DecodeError;

mod backoff;
mod durable;
mod follow;
pub mod health;
mod names;
pub mod oncall;
mod streams;

pub use durable::Durable;
pub use follow::Follow;
pub use health::StoreHealth;
pub use names::{Names, Stream};
pub use oncall::OncallLog;
pub use streams::{ensure_streams, stream_config, StreamSettings};

/// Errors at the JetStream boundary. Callers see: `Conflict` → reload and
/// re-decide; anything else → the command fails with `unavailable` (HTTP 503)
/// and a report is left unacked for redelivery. The two decode errors differ
/// for the readers of the log: a `NewerVersion` commit is readable by a newer
/// Baton, so it is left for one (never acked, never skipped); a `Decode`
/// error is a corrupt message no build will read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("another writer appended to this handoff first")]
    Conflict,
    #[error("JetStream {op} failed: {message}")]
    Nats { op: &'static str, message: String },
    #[error("stored event at sequence {seq} does not decode: {message}")]
    Decode { seq: u64, message: String },
    /// A commit written by a newer Baton (rolling upgrade): its events carry
    /// a schema version above [`EVENT_VERSION`].
    #[error(
        "stored commit at sequence {seq} has event schema version {version}; \
         this build reads up to {EVENT_VERSION}: upgrade it"
    )]
    NewerVersion { seq: u64, version: u32 },
    /// The server cannot keep Baton's guarantees in the configured shape.
    #[error("nats-server {version} is too old: {why}")]
    ServerTooOld { version: String, why: &'static str },
}

/// The oldest server for `replicas > 1`: before 2.9.21 a clustered stream
/// did not enforce expected-last-subject-sequence (nats-server #4320).
pub const MIN_CLUSTER_SERVER: (u64, u64, u64) = (2, 9, 21);

/// The server version a cluster should run at least: Jepsen's 2025 NATS
/// analysis found data-loss bugs fixed by 2.12.3 (with `sync_interval:
/// always`).
pub const RECOMMENDED_SERVER: (u64, u64, u64) = (2, 12, 3);

/// Parses `"2.9.10"` (or `"v2.15.1"`, `"2.11.0-beta.1"`) into its numbers.
pub fn parse_server_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Refuses a server that cannot keep Baton's guarantees with `replicas`
/// stream replicas. A single server works from 2.9 on (Baton's msg-id
/// `<handoff>:<expected seq>` also protects older servers).
pub fn check_server(version: &str, replicas: usize) -> Result<(), StoreError> {
    if replicas <= 1 {
        return Ok(());
    }
    match parse_server_version(version) {
        Some(v) if v >= MIN_CLUSTER_SERVER => Ok(()),
        _ => Err(StoreError::ServerTooOld {
            version: version.to_string(),
            why: "replicas > 1 needs nats-server >= 2.9.21 (nats-server #4320: \
                  older clustered streams do not enforce the expected last \
                  subject sequence); 2.12.3 or newer with sync_interval: always \
                  is recommended",
        }),
    }
}

impl StoreError {
    pub(crate) fn nats(op: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Nats {
            op,
            message: e.to_string(),
        }
    }
}

/// The longest wait between two reconnect attempts. async-nats's default
/// doubles up to 4 s, so a broker back after a few seconds' outage waited
/// up to 4 s more to be noticed; Baton retries at least this often.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(250);

/// The wait before reconnect attempt `attempts` (1: at once), doubling
/// from 10 ms up to [`RECONNECT_DELAY_MAX`].
pub fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let shift = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(16);
    (Duration::from_millis(10) * (1u32 << shift)).min(RECONNECT_DELAY_MAX)
}

/// Connects with the configured auth and TLS.
pub async fn connect(cfg: &NatsConfig) -> Result<async_nats::Client, StoreError> {
    connect_watched(cfg, None).await
}

/// [`connect`], telling `health` when the connection drops (it comes back
/// up on the first JetStream call that succeeds after the reconnect).
pub async fn connect_watched(
    cfg: &NatsConfig,
    health: Option<Arc<StoreHealth>>,
) -> Result<async_nats::Client, StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Connect {
        url: cfg.url.clone(),
        message: e.to_string(),
    };
    let mut opts = async_nats::ConnectOptions::new()
        .name("baton")
        .request_timeout(Some(cfg.request_timeout))
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(reconnect_delay);
    // Every client event is logged (a slow consumer means the client
    // dropped messages: an ordered reader then rebuilds, a durable one
    // redelivers); a drop also tells `health`. Other events warn at most
    // once a second: async-nats tells a slow consumer per dropped message.
    let last_warned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    opts = opts.event_callback(move |event| {
        let (health, last_warned) = (health.clone(), last_warned.clone());
        async move {
            match event {
                // `health` logs the drop itself.
                async_nats::Event::Disconnected => match health {
                    Some(health) => health.disconnected(),
                    None => tracing::warn!("disconnected from NATS"),
                },
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Closed => tracing::debug!("NATS connection closed"),
                other => {
                    let second = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let before = last_warned.swap(second, std::sync::atomic::Ordering::Relaxed);
                    if before != second {
                        tracing::warn!(event = %other, "NATS client event");
                    } else {
                        tracing::debug!(event = %other, "NATS client event");
                    }
                }
            }
        }
    });
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &cfg.token {
        opts = opts.token(t.clone());
    }
    if let Some(path) = &cfg.creds_file {
        opts = opts.credentials_file(path).await.map_err(|e| err(&e))?;
    }
    if cfg.tls_required {
        opts = opts.require_tls(true);
    }
    if let Some(ca) = &cfg.tls_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(c), Some(k)) = (&cfg.tls_cert, &cfg.tls_key) {
        opts = opts.add_client_certificate(c.clone(), k.clone());
    }
    let urls: Vec<&str> = cfg.url.split(',').map(str::trim).collect();
    opts.connect(urls.as_slice()).await.map_err(|e| err(&e))
}

/// A JetStream context with the configured timeout.
pub fn jetstream(client: async_nats::Client, cfg: &NatsConfig) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(cfg.request_timeout);
    js
}

/// Reads a stream in order from `deliver_policy` with an ordered consumer
/// (ephemeral, recreated by the client on gaps): the projector's replay, the
/// read-only replay tools and `baton pages` all read this way.
pub async fn ordered_messages(
    stream: &stream::Stream,
    deliver_policy: jetstream::consumer::DeliverPolicy,
    filter_subject: String,
) -> Result<jetstream::consumer::pull::Ordered, StoreError> {
    stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy,
            filter_subject,
            ..Default::default()
        })
        .await
        .map_err(|e| StoreError::nats("create ordered consumer", e))?
        .messages()
        .await
        .map_err(|e| StoreError::nats("consume", e))
}

/// How long a durable consumer waits for an ack before it redelivers: what
/// a crashed daemon's reports and pages wait before another daemon takes
/// them. Short, so recovery is quick; work that takes longer says so with
/// progress acks ([`with_progress`]).
pub const ACK_WAIT: Duration = Duration::from_millis(1500);

/// How often work on a message tells the server it is still in progress
/// (three times per [`ACK_WAIT`], so one lost progress ack costs nothing).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Gets or creates a durable pull consumer with explicit acks: the ingest's
/// and the page publisher's, which only ack after their work is stored.
/// A consumer made by an older Baton (30 s ack wait) is updated to
/// [`ACK_WAIT`]; if the server refuses the update the old one is used and
/// the refusal logged.
pub async fn durable_consumer(
    stream: &stream::Stream,
    name: &str,
    description: &str,
    max_ack_pending: i64,
    filter_subject: String,
) -> Result<jetstream::consumer::PullConsumer, StoreError> {
    let config = jetstream::consumer::pull::Config {
        durable_name: Some(name.into()),
        description: Some(description.into()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending,
        filter_subject,
        ..Default::default()
    };
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(name, config.clone())
        .await
        .map_err(|e| StoreError::nats("create consumer", format!("{name}: {e}")))?;
    let current = consumer
        .info()
        .await
        .map_err(|e| StoreError::nats("consumer info", format!("{name}: {e}")))?
        .config
        .ack_wait;
    if current != ACK_WAIT {
        match stream.create_consumer(config).await {
            Ok(updated) => {
                tracing::info!(consumer = name, from = ?current, to = ?ACK_WAIT, "consumer ack wait updated");
                consumer = updated;
            }
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, ack_wait = ?current, "consumer not updated; redelivery after a crash waits its ack wait");
            }
        }
    }
    Ok(consumer)
}

/// Runs `work` on `msg`, sending a progress ack every [`PROGRESS_EVERY`]
/// until it is done, so work slower than [`ACK_WAIT`] (a store retrying
/// through a leader election) is not redelivered meanwhile.
pub async fn with_progress<F: std::future::Future>(msg: &jetstream::Message, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = msg.ack_with(jetstream::AckKind::Progress).await {
                    tracing::debug!(error = %e, "progress ack failed");
                }
            }
        }
    }
}

/// The stored outcome of an append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// Stream sequence of the commit.
    pub seq: u64,
    /// The server already had this `Nats-Msg-Id`: what is stored may be
    /// another writer's commit, so the caller must reload.
    pub duplicate: bool,
}

/// Told how long each append waited for its JetStream ack (the daemon
/// feeds `baton_event_append_seconds` with it). The store only times; what
/// is done with the figure is the caller's, so the store needs no metrics.
pub type AppendObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// Append and read access to `BATON_EVENTS`.
#[derive(Clone)]
pub struct EventStore {
    js: jetstream::Context,
    stream: stream::Stream,
    names: Names,
    permits: Arc<Semaphore>,
    on_append: Option<AppendObserver>,
    health: Option<Arc<StoreHealth>>,
}

impl EventStore {
    /// Opens `BATON_EVENTS` under `names`, with at most
    /// `max_in_flight_appends` appends awaiting their ack at once
    /// (`limits.max_in_flight_appends`).
    pub async fn open(
        js: jetstream::Context,
        names: &Names,
        max_in_flight_appends: usize,
        on_append: Option<AppendObserver>,
    ) -> Result<Self, StoreError> {
        let names = names.clone();
        let stream = js
            .get_stream(names.events_stream())
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        Ok(Self {
            js,
            stream,
            names,
            permits: Arc::new(Semaphore::new(max_in_flight_appends)),
            on_append,
            health: None,
        })
    }

    /// Tells `health` how each append went (a stored or conflicting append
    /// means the server answers; a failed one counts against it).
    pub fn with_health(mut self, health: Arc<StoreHealth>) -> Self {
        self.health = Some(health);
        self
    }

    /// The health this store reports to, if any ([`Self::with_health`]).
    pub fn health(&self) -> Option<&StoreHealth> {
        self.health.as_deref()
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// Appends a commit if the handoff's last stored sequence is still
    /// `expected_last_seq` (0: no events yet).
    pub async fn append(
        &self,
        handoff: Uuid,
        expected_last_seq: u64,
        msg_id: &str,
        commit: &Commit,
    ) -> Result<Appended, StoreError> {
        let payload = crate::wire::events::encode_commit(commit);
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected_last_seq.to_string().as_str(),
        );
        let _permit = self.permits.acquire().await.expect("never closed");
        let started = Instant::now();
        let ack = match self
            .js
            .publish_with_headers(self.names.events(handoff), headers, payload.into())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => {
                self.health.as_ref().inspect(|h| h.failed());
                return Err(StoreError::nats("publish", e));
            }
        };
        if let Some(observe) = &self.on_append {
            observe(started.elapsed());
        }
        if let Some(h) = &self.health {
            match &ack {
                Err(e) if e.kind() != PublishErrorKind::WrongLastSequence => h.failed(),
                _ => h.succeeded(),
            }
        }
        match ack {
            Ok(ack) => Ok(Appended {
                seq: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(StoreError::Conflict),
            Err(e) => Err(StoreError::nats("append", e)),
        }
    }

    /// Every commit of one handoff stored after `after_seq`, in order.
    pub async fn read_after(
        &self,
        handoff: Uuid,
        after_seq: u64,
    ) -> Result<Vec<(u64, Commit)>, StoreError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        let subject = self.names.events(handoff);
        let mut out = Vec::new();
        let mut next = after_seq + 1;
        loop {
            match self
                .stream
                .direct_get_next_for_subject(subject.clone(), Some(next))
                .await
            {
                Ok(msg) => {
                    let commit = decode_commit(msg.sequence, &msg.payload)?;
                    next = msg.sequence + 1;
                    out.push((msg.sequence, commit));
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(StoreError::nats("direct get", e)),
            }
        }
    }

    /// The stream's last sequence now.
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?;
        Ok(info.state.last_sequence)
    }
}

/// The handoff id the ingest gives a report stored at `seq` in
/// `BATON_REPORTS`: the dedup-key id, else the keyless id derived from the
/// stored message's stream time and sequence, as the ingest consumer sees
/// them. `baton report` and `POST /v1/reports/{template}` both answer it.
pub async fn stored_report_handoff_id(
    js: &async_nats::jetstream::Context,
    names: &Names,
    template: &str,
    report: &crate::domain::Report,
    seq: u64,
) -> Result<Uuid, StoreError> {
    if let Some(id) = crate::domain::handoff_id_for(template, report) {
        return Ok(id);
    }
    let stream = js
        .get_stream(names.reports_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let msg = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| StoreError::nats("get report", e))?;
    let ms = u64::try_from(msg.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok(crate::domain::keyless_handoff_id(ms, seq))
}

/// Decodes one stored commit ([`wire::events::decode_commit`], the fast
/// decoder), its failures as the store's errors.
///
/// [`wire::events::decode_commit`]: crate::wire::events::decode_commit
pub fn decode_commit(seq: u64, payload: &[u8]) -> Result<Commit, StoreError> {
    crate::wire::events::decode_commit(seq, payload).map_err(store_error)
}

/// [`decode_commit`] for folding into state only (the projector): notices'
/// copies of packet, score and work come back empty
/// ([`crate::wire::events::decode_commit_skimmed`]).
pub fn decode_commit_skimmed(seq: u64, payload: &[u8]) -> Result<Commit, StoreError> {
    crate::wire::events::decode_commit_skimmed(seq, payload).map_err(store_error)
}

// A plain function, not `From`: a second `From` impl on `StoreError` would
// make `?` ambiguous where callers rely on inference.
fn store_error(e: DecodeError) -> StoreError {
    match e {
        DecodeError::Decode { seq, message } => StoreError::Decode { seq, message },
        DecodeError::NewerVersion { seq, version } => StoreError::NewerVersion { seq, version },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_are_attempted_at_least_every_quarter_second() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(20));
        assert_eq!(reconnect_delay(5), Duration::from_millis(160));
        assert_eq!(reconnect_delay(6), RECONNECT_DELAY_MAX);
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_DELAY_MAX);
    }

    #[test]
    fn a_cluster_needs_a_server_that_enforces_expected_sequences() {
        assert_eq!(parse_server_version("2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_server_version("v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("2.11.0-beta.1"), Some((2, 11, 0)));
        assert_eq!(parse_server_version("garbage"), None);
        assert!(check_server("2.9.10", 1).is_ok(), "single server: fine");
        let err = check_server("2.9.10", 3).unwrap_err().to_string();
        assert!(err.contains("2.9.21") && err.contains("#4320"), "{err}");
        assert!(check_server("2.9.21", 3).is_ok());
        assert!(check_server("2.15.1", 3).is_ok());
        assert!(check_server("nonsense", 3).is_err(), "unknown: refuse");
    }

    /// The readers of the log tell the two apart (a newer Baton's commit is
    /// left for it, a corrupt one is not): the store keeps them apart too.
    #[test]
    fn decode_commit_keeps_a_newer_version_apart_from_corruption() {
        let newer = r#"{"events":[{"id":"0190f3a0-0000-7000-8000-000000000000","handoff_id":"0190f3a0-0000-7000-8000-000000000001","version":2,"occurred_at":"2026-01-01T00:00:00Z","actor":"baton","type":"resolved","data":{"by":"x"}}]}"#;
        let err = decode_commit(5, newer.as_bytes()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerVersion { seq: 5, version: 2 }),
            "{err}"
        );
        let err = decode_commit(7, b"not json").unwrap_err();
        assert!(matches!(err, StoreError::Decode { seq: 7, .. }), "{err}");
    }
}
