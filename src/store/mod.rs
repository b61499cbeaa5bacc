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

mod names;
mod streams;

pub use names::{Names, Stream};
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
}

impl StoreError {
    pub(crate) fn nats(op: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Nats {
            op,
            message: e.to_string(),
        }
    }
}

/// Connects with the configured auth and TLS.
pub async fn connect(cfg: &NatsConfig) -> Result<async_nats::Client, StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Connect {
        url: cfg.url.clone(),
        message: e.to_string(),
    };
    let mut opts = async_nats::ConnectOptions::new()
        .name("baton")
        .request_timeout(Some(cfg.request_timeout))
        .connection_timeout(Duration::from_secs(5));
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

/// Gets or creates a durable pull consumer with explicit acks: the ingest's
/// and the page publisher's, which only ack after their work is stored.
pub async fn durable_consumer(
    stream: &stream::Stream,
    name: &str,
    description: &str,
    max_ack_pending: i64,
    filter_subject: String,
) -> Result<jetstream::consumer::PullConsumer, StoreError> {
    stream
        .get_or_create_consumer(
            name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.into()),
                description: Some(description.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending,
                filter_subject,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| StoreError::nats("create consumer", format!("{name}: {e}")))
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
        })
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
        let payload = serde_json::to_vec(commit).expect("events serialize");
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected_last_seq.to_string().as_str(),
        );
        let _permit = self.permits.acquire().await.expect("never closed");
        let started = Instant::now();
        let ack = self
            .js
            .publish_with_headers(self.names.events(handoff), headers, payload.into())
            .await
            .map_err(|e| StoreError::nats("publish", e))?
            .await;
        if let Some(observe) = &self.on_append {
            observe(started.elapsed());
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

/// Decodes one stored commit: the same result as `Commit`'s derived
/// `Deserialize`, at two thirds of its cost (see [`wire`]).
///
/// A commit holding an event of a newer schema version is refused with
/// [`StoreError::NewerVersion`], whether or not today's shapes happen to
/// decode it (a newer Baton may add event types this build has never
/// seen); anything else that does not decode is [`StoreError::Decode`].
pub fn decode_commit(seq: u64, payload: &[u8]) -> Result<Commit, StoreError> {
    let commit = match serde_json::from_slice::<wire::Commit>(payload) {
        Ok(c) => Commit {
            events: c.events.into_iter().map(|e| e.0).collect(),
        },
        Err(e) => {
            // Only on the error path: is it a newer Baton's commit?
            if let Some(version) = wire::newer_version(payload) {
                return Err(StoreError::NewerVersion { seq, version });
            }
            return Err(StoreError::Decode {
                seq,
                message: e.to_string(),
            });
        }
    };
    // An event from a newer Baton (rolling upgrade) must not be read as if
    // it had today's shape: refuse it loudly instead of deciding on it.
    if let Some(e) = commit.events.iter().find(|e| e.version > EVENT_VERSION) {
        return Err(StoreError::NewerVersion {
            seq,
            version: e.version,
        });
    }
    Ok(commit)
}

/// The commit decoder every replay, page and reload runs through.
///
/// `Event` flattens its adjacently tagged `type`/`data` pair into the
/// envelope, and serde decodes a flattened struct by first buffering the
/// whole map into its generic `Content` tree (an allocation per string) and
/// then decoding that again. Decoding is most of what replay costs: a P1
/// opening commit (2.1 KB) took 11.6 µs to decode against 0.7 µs to apply
/// (`cargo bench --bench core -- projection`). Here the envelope's fields
/// are read directly and `data` goes straight to `EventData`'s own decoder
/// once `type` is known: 7.5 µs. Unknown keys are ignored,
/// as the derived decoder ignores them; a `data` stored before its `type`
/// (Baton never writes one) takes a slower path through a JSON value.
mod wire {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use crate::domain::{Event, EventData};

    #[derive(Deserialize)]
    pub struct Commit {
        pub events: Vec<WireEvent>,
    }

    /// Only the envelopes' versions, every other key ignored.
    #[derive(Deserialize)]
    struct Versions {
        events: Vec<Version>,
    }

    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }

    /// The highest event version of a payload that is a commit's envelope
    /// but not one this build decodes, if it is above `EVENT_VERSION`.
    pub fn newer_version(payload: &[u8]) -> Option<u32> {
        let v: Versions = serde_json::from_slice(payload).ok()?;
        v.events
            .iter()
            .map(|e| e.version)
            .max()
            .filter(|v| *v > crate::domain::EVENT_VERSION)
    }

    pub struct WireEvent(pub Event);

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Field {
        Id,
        HandoffId,
        Version,
        OccurredAt,
        Actor,
        Type,
        Data,
        #[serde(other)]
        Other,
    }

    impl<'de> Deserialize<'de> for WireEvent {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(EventVisitor)
        }
    }

    struct EventVisitor;

    /// `occurred_at`, read as the derived decoder reads it.
    struct Timestamp(chrono::DateTime<chrono::Utc>);

    impl<'de> Deserialize<'de> for Timestamp {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            crate::domain::rfc3339::deserialize(d).map(Timestamp)
        }
    }

    impl<'de> Visitor<'de> for EventVisitor {
        type Value = WireEvent;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an event")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireEvent, A::Error> {
            let (mut id, mut handoff_id, mut version, mut occurred_at, mut actor) =
                (None, None, None, None, None);
            let (mut kind, mut data, mut early) = (None::<String>, None, None);
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Id => id = Some(map.next_value()?),
                    Field::HandoffId => handoff_id = Some(map.next_value()?),
                    Field::Version => version = Some(map.next_value()?),
                    Field::OccurredAt => {
                        occurred_at = Some(map.next_value::<Timestamp>()?.0);
                    }
                    Field::Actor => actor = Some(map.next_value()?),
                    Field::Type => kind = Some(map.next_value()?),
                    Field::Data => match &kind {
                        Some(tag) => data = Some(map.next_value_seed(Data(tag))?),
                        None => early = Some(map.next_value::<serde_json::Value>()?),
                    },
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
            let data = match (data, early) {
                (Some(d), _) => d,
                (None, Some(v)) => {
                    EventData::deserialize(serde_json::json!({ "type": kind, "data": v }))
                        .map_err(de::Error::custom)?
                }
                (None, None) => return Err(de::Error::missing_field("data")),
            };
            Ok(WireEvent(Event {
                id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                handoff_id: handoff_id.ok_or_else(|| de::Error::missing_field("handoff_id"))?,
                version: version.ok_or_else(|| de::Error::missing_field("version"))?,
                occurred_at: occurred_at.ok_or_else(|| de::Error::missing_field("occurred_at"))?,
                actor: actor.ok_or_else(|| de::Error::missing_field("actor"))?,
                data,
            }))
        }
    }

    /// Decodes the `data` value as `EventData`, presenting it with its tag.
    struct Data<'a>(&'a str);

    impl<'de> DeserializeSeed<'de> for Data<'_> {
        type Value = EventData;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EventData, D::Error> {
            EventData::deserialize(Tagged {
                tag: self.0,
                data: Some(d),
                next: 0,
            })
        }
    }

    /// The map `{"type": tag, "data": <d>}`, without building it.
    struct Tagged<'a, D> {
        tag: &'a str,
        data: Option<D>,
        next: u8,
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tagged<'_, D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            visitor.visit_map(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    impl<'de, D: Deserializer<'de>> MapAccess<'de> for Tagged<'_, D> {
        type Error = D::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, D::Error> {
            let key = match self.next {
                0 => "type",
                1 => "data",
                _ => return Ok(None),
            };
            seed.deserialize(key.into_deserializer()).map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, D::Error> {
            self.next += 1;
            if self.next == 1 {
                seed.deserialize(self.tag.into_deserializer())
            } else {
                let d = self
                    .data
                    .take()
                    .ok_or_else(|| de::Error::custom("data read twice"))?;
                seed.deserialize(d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IncidentCommand;

    #[test]
    fn regression_events_from_a_newer_schema_are_refused_not_misread() {
        let json = r#"{"events":[{"id":"0190f3a0-0000-7000-8000-000000000000","handoff_id":"0190f3a0-0000-7000-8000-000000000001","version":2,"occurred_at":"2026-01-01T00:00:00Z","actor":"baton","type":"resolved","data":{"by":"x"}}]}"#;
        let err = decode_commit(5, json.as_bytes()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerVersion { seq: 5, version: 2 }),
            "{err}"
        );
        let ok = json.replace(r#""version":2"#, r#""version":1"#);
        assert_eq!(decode_commit(5, ok.as_bytes()).unwrap().events.len(), 1);
    }

    /// A newer Baton may store event types (or shapes) this build cannot
    /// decode at all: that is still a newer-version commit, to be left for a
    /// newer daemon, not a corrupt one to be dropped.
    #[test]
    fn regression_a_newer_event_type_is_a_newer_version_not_corruption() {
        let newer = r#"{"events":[{"id":"0190f3a0-0000-7000-8000-000000000000","handoff_id":"0190f3a0-0000-7000-8000-000000000001","version":999,"occurred_at":"2026-01-01T00:00:00Z","actor":"baton","type":"teleported","data":{"to":"mars"}}]}"#;
        let err = decode_commit(6, newer.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NewerVersion {
                    seq: 6,
                    version: 999
                }
            ),
            "{err}"
        );
        // The same unknown type at today's version is corrupt.
        let today = newer.replace(r#""version":999"#, r#""version":1"#);
        let err = decode_commit(6, today.as_bytes()).unwrap_err();
        assert!(matches!(err, StoreError::Decode { seq: 6, .. }), "{err}");
        for garbage in [&b"not json"[..], br#"{"events":"x"}"#, br#"{"x":1}"#] {
            let err = decode_commit(7, garbage).unwrap_err();
            assert!(matches!(err, StoreError::Decode { seq: 7, .. }), "{err}");
        }
    }

    /// Commits holding every event kind, as `decide` produces them.
    fn every_kind_of_commit() -> Vec<Commit> {
        use crate::domain::{apply, decide, Command, Packet, Severity};
        use crate::testkit::{policy, report};
        let policy = policy();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut commits = vec![];
        let mut life = |r: crate::domain::Report, steps: Vec<(Command, i64)>| {
            let id = Uuid::now_v7();
            let mut state = None;
            let open = Command::Incident(IncidentCommand::Open {
                template: "agent_failure".into(),
                report: r.clone(),
                warnings: vec!["error_summary truncated".into()],
                source: Some("report:9".into()),
            });
            for (cmd, secs) in std::iter::once((open, 0)).chain(steps) {
                let at = t0 + chrono::Duration::seconds(secs);
                let events = decide(state.as_ref(), &cmd, at, &policy).unwrap();
                let commit = Commit {
                    events: events
                        .into_iter()
                        .map(|e| e.seal(Uuid::now_v7(), id, at))
                        .collect(),
                };
                commit.events.iter().for_each(|e| apply(&mut state, e));
                commits.push(commit);
            }
        };
        // P1 missing run_id: enriched from the runbook, held, overridden,
        // reported again, escalated and expired, acknowledged, resolved.
        let mut p1 = report(Severity::P1);
        p1.packet.run_id = None;
        p1.packet.rollback_command = None;
        p1.packet.ttl_seconds = Some(400);
        let again = Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: p1.clone(),
            warnings: vec![],
            source: Some("report:10".into()),
        });
        let by = || "alice".to_string();
        life(
            p1,
            vec![
                (
                    Command::Incident(IncidentCommand::Override {
                        by: by(),
                        reason: "known outage".into(),
                    }),
                    1,
                ),
                (again, 2),
                (Command::Tick, 401),
                (
                    Command::Incident(IncidentCommand::Acknowledge { by: by() }),
                    402,
                ),
                (
                    Command::Incident(IncidentCommand::Resolve {
                        by: by(),
                        note: Some("done".into()),
                    }),
                    403,
                ),
            ],
        );
        // P3 below its gate: a ticket, then an enrichment that pages.
        let mut p3 = report(Severity::P3);
        p3.packet = Packet {
            workflow_id: Some("ledger".into()),
            ..Default::default()
        };
        p3.team = None;
        let mut fields = crate::testkit::full_packet();
        fields.workflow_id = None;
        life(
            p3,
            vec![(
                Command::Incident(IncidentCommand::Enrich {
                    by: by(),
                    fields,
                    team: Some("payments".into()),
                }),
                5,
            )],
        );
        commits
    }

    /// The commands the replay property draws from (as in the domain's).
    fn command(kind: u8) -> crate::domain::Command {
        crate::testkit::incident_command(kind)
    }

    proptest::proptest! {
        /// Replaying the log as stored (each commit through its JSON and
        /// `decode_commit`, as the projector and the engine read it)
        /// rebuilds the live state built from the events `decide` returned.
        #[test]
        fn replaying_decoded_commits_rebuilds_the_live_state(
            mut cmds in proptest::collection::vec((0u8..7, 0i64..20_000), 1..30)
        ) {
            use crate::domain::{apply, decide};
            use crate::testkit::policy;
            cmds.sort_by_key(|c| c.1);
            let policy = policy();
            let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let id = Uuid::now_v7();
            let (mut live, mut stored) = (None, None);
            for (seq, (kind, secs)) in cmds.into_iter().enumerate() {
                let at = t0 + chrono::Duration::seconds(secs);
                let Ok(events) = decide(live.as_ref(), &command(kind), at, &policy) else {
                    continue;
                };
                let commit = Commit {
                    events: events
                        .into_iter()
                        .map(|e| e.seal(Uuid::now_v7(), id, at))
                        .collect(),
                };
                commit.events.iter().for_each(|e| apply(&mut live, e));
                let payload = serde_json::to_vec(&commit).unwrap();
                let decoded = decode_commit(seq as u64 + 1, &payload).unwrap();
                decoded.events.iter().for_each(|e| apply(&mut stored, e));
            }
            proptest::prop_assert_eq!(stored, live);
        }
    }

    #[test]
    fn decode_commit_matches_the_derived_decoder_for_every_incident_event_kind() {
        let commits = every_kind_of_commit();
        let mut kinds: Vec<_> = commits
            .iter()
            .flat_map(|c| &c.events)
            .map(|e| e.kind())
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 11, "{kinds:?}");
        for c in commits {
            let payload = serde_json::to_vec(&c).unwrap();
            let derived: Commit = serde_json::from_slice(&payload).unwrap();
            assert_eq!(decode_commit(1, &payload).unwrap(), derived);
            assert_eq!(derived, c);
        }
    }

    #[test]
    fn decode_commit_matches_the_derived_decoder_on_recorded_events() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let payload = format!("{{\"events\":[{line}]}}");
                let derived: Commit = serde_json::from_str(&payload).unwrap();
                assert_eq!(
                    decode_commit(1, payload.as_bytes()).unwrap(),
                    derived,
                    "{line}"
                );
                n += 1;
            }
        }
        assert!(n > 0, "no recorded events");
    }

    #[test]
    fn decode_commit_takes_data_before_type_and_ignores_unknown_keys() {
        let c = &every_kind_of_commit()[0];
        let mut v = serde_json::to_value(c).unwrap();
        for e in v["events"].as_array_mut().unwrap() {
            let o = e.as_object_mut().unwrap();
            let (t, d) = (o.remove("type").unwrap(), o.remove("data").unwrap());
            let mut reordered = serde_json::Map::new();
            reordered.insert("data".into(), d);
            reordered.insert("later_field".into(), serde_json::json!({"x": [1]}));
            reordered.append(o);
            reordered.insert("type".into(), t);
            *e = reordered.into();
        }
        let payload = serde_json::to_vec(&v).unwrap();
        assert_eq!(&decode_commit(1, &payload).unwrap(), c);
    }

    #[test]
    fn decode_commit_rejects_what_the_derived_decoder_rejects() {
        let c = &every_kind_of_commit()[0];
        let mut v = serde_json::to_value(c).unwrap();
        v["events"][0].as_object_mut().unwrap().remove("actor");
        let payload = serde_json::to_vec(&v).unwrap();
        assert!(serde_json::from_slice::<Commit>(&payload).is_err());
        let err = decode_commit(7, &payload).unwrap_err();
        assert!(
            matches!(&err, StoreError::Decode { seq: 7, message } if message.contains("actor")),
            "{err}"
        );
        assert!(decode_commit(8, br#"{"events":[{"type":"opened"}]}"#).is_err());
    }
}
