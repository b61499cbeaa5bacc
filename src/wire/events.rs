//! Stored events: the JSON of one [`Commit`] per message on
//! `<prefix>.events.<handoff_id>` (`BATON_EVENTS`), written by
//! [`encode_commit`] and read back by [`decode_commit`].
//!
//! The types are the domain's ([`Commit`], `Event`, `EventData`): events are
//! what `decide` returns. What lives here is how they become bytes and back,
//! and the rule about versions: every event carries `version`; this build
//! writes and reads [`EVENT_VERSION`] and refuses a newer one
//! ([`DecodeError::NewerVersion`]) rather than misread it. When a payload
//! changes shape, the version is bumped and the older shape is rewritten to
//! the new one here, before the domain's types see it.
//!
//! Golden tests: every line of `tests/fixtures/*.jsonl` decodes here as the
//! derived decoder does and encodes back to the same bytes (below), and
//! replays to the recorded facts (`tests/replay_e2e.rs`,
//! `recorded_event_fixtures_replay_forever`, which also fails when an event
//! kind has no fixture).

use crate::domain::{Commit, EVENT_VERSION};

/// Why a stored commit cannot be read. The store turns it into its own
/// error (`StoreError::Decode` / `StoreError::NewerVersion`); the two differ
/// for the log's readers: a newer-version commit is left for a newer Baton,
/// a corrupt one no build will ever read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a commit this or any build wrote.
    #[error("stored event at sequence {seq} does not decode: {message}")]
    Decode { seq: u64, message: String },
    /// A commit written by a newer Baton (rolling upgrade): an event carries
    /// a schema version above [`EVENT_VERSION`].
    #[error(
        "stored commit at sequence {seq} has event schema version {version}; \
         this build reads up to {EVENT_VERSION}: upgrade it"
    )]
    NewerVersion { seq: u64, version: u32 },
}

/// The bytes a commit is stored as: its derived `Serialize`, as JSON.
pub fn encode_commit(commit: &Commit) -> Vec<u8> {
    serde_json::to_vec(commit).expect("events serialize")
}

/// Decodes one stored commit: the same result as `Commit`'s derived
/// `Deserialize`, at two thirds of its cost (see `fast` below).
///
/// A commit holding an event of a newer schema version is refused with
/// [`DecodeError::NewerVersion`], whether or not today's shapes happen to
/// decode it (a newer Baton may add event types this build has never
/// seen); anything else that does not decode is [`DecodeError::Decode`].
pub fn decode_commit(seq: u64, payload: &[u8]) -> Result<Commit, DecodeError> {
    // The payload's UTF-8 checked once, whole, then read as text: reading
    // bytes, serde_json checks every string on its own, and short strings
    // miss the checker's word-at-a-time path (that was 18 % of replay's
    // instructions, against ~1 % for one pass over the whole commit). Both
    // readers take and refuse the same JSON; bytes that are not UTF-8 take
    // the byte reader, so they fail exactly as before.
    let decoded = match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str::<fast::Commit>(text),
        Err(_) => serde_json::from_slice::<fast::Commit>(payload),
    };
    let commit = match decoded {
        Ok(c) => Commit {
            events: c.events.into_iter().map(|e| e.0).collect(),
        },
        Err(e) => {
            // Only on the error path: is it a newer Baton's commit?
            if let Some(version) = fast::newer_version(payload) {
                return Err(DecodeError::NewerVersion { seq, version });
            }
            return Err(DecodeError::Decode {
                seq,
                message: e.to_string(),
            });
        }
    };
    // An event from a newer Baton (rolling upgrade) must not be read as if
    // it had today's shape: refuse it loudly instead of deciding on it.
    if let Some(e) = commit.events.iter().find(|e| e.version > EVENT_VERSION) {
        return Err(DecodeError::NewerVersion {
            seq,
            version: e.version,
        });
    }
    Ok(commit)
}

/// [`decode_commit`] for folding into state only: notices' copies of the
/// packet, score and work are read past, not kept (see
/// [`crate::domain::skim`]); everything else, errors too, as
/// [`decode_commit`]. The projector's decoder: a quarter to a third of a
/// stored incident's bytes are such copies.
pub fn decode_commit_skimmed(seq: u64, payload: &[u8]) -> Result<Commit, DecodeError> {
    crate::domain::skim::decode(|| decode_commit(seq, payload))
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
mod fast {
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
pub(crate) mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{EventData, IncidentCommand};

    #[test]
    fn regression_events_from_a_newer_schema_are_refused_not_misread() {
        let json = r#"{"events":[{"id":"0190f3a0-0000-7000-8000-000000000000","handoff_id":"0190f3a0-0000-7000-8000-000000000001","version":2,"occurred_at":"2026-01-01T00:00:00Z","actor":"baton","type":"resolved","data":{"by":"x"}}]}"#;
        let err = decode_commit(5, json.as_bytes()).unwrap_err();
        assert!(
            matches!(err, DecodeError::NewerVersion { seq: 5, version: 2 }),
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
                DecodeError::NewerVersion {
                    seq: 6,
                    version: 999
                }
            ),
            "{err}"
        );
        // The same unknown type at today's version is corrupt.
        let today = newer.replace(r#""version":999"#, r#""version":1"#);
        let err = decode_commit(6, today.as_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::Decode { seq: 6, .. }), "{err}");
        for garbage in [&b"not json"[..], br#"{"events":"x"}"#, br#"{"x":1}"#] {
            let err = decode_commit(7, garbage).unwrap_err();
            assert!(matches!(err, DecodeError::Decode { seq: 7, .. }), "{err}");
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
        let mut n = 0;
        for line in recorded_events() {
            let payload = format!("{{\"events\":[{line}]}}");
            let derived: Commit = serde_json::from_str(&payload).unwrap();
            assert_eq!(
                decode_commit(1, payload.as_bytes()).unwrap(),
                derived,
                "{line}"
            );
            n += 1;
        }
        assert!(n > 0, "no recorded events");
    }

    /// Every line of `tests/fixtures/*.jsonl`: one stored event each, as a
    /// live daemon wrote it.
    pub(crate) fn recorded_events() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(String::from));
        }
        lines
    }

    /// Golden: a recorded event of today's version encodes back to the very
    /// bytes a live daemon stored. Decoding alone would not notice a renamed
    /// key read through an alias or a dropped `skip_serializing_if`, but a
    /// daemon of the previous build reads what this one writes during a
    /// rolling upgrade: a change here is a new `EVENT_VERSION` (older
    /// events are then upcast, and no longer compared byte for byte).
    #[test]
    fn recorded_events_of_this_version_encode_back_to_their_stored_bytes() {
        let mut n = 0;
        for line in recorded_events() {
            let payload = format!("{{\"events\":[{line}]}}");
            let commit = decode_commit(1, payload.as_bytes()).unwrap();
            if commit.events[0].version == EVENT_VERSION {
                assert_eq!(encode_commit(&commit), payload.as_bytes(), "{line}");
                n += 1;
            }
        }
        assert!(n > 0, "no recorded events of version {EVENT_VERSION}");
    }

    /// Golden: the template recorded in an `initiated` event (a copy of the
    /// config as it was, now a stored record of its own type) round-trips
    /// to the same JSON value, and its bytes are the recorded ones. The
    /// config file's `TemplateFile` is not involved: renaming a config key
    /// cannot change this.
    #[test]
    fn the_template_stored_in_a_recorded_initiated_event_round_trips() {
        let mut n = 0;
        for line in recorded_events() {
            let payload = format!("{{\"events\":[{line}]}}");
            let commit = decode_commit(1, payload.as_bytes()).unwrap();
            let EventData::Initiated { template, .. } = &commit.events[0].data else {
                continue;
            };
            let recorded: serde_json::Value = serde_json::from_str(&line).unwrap();
            let stored = serde_json::to_value(&**template).unwrap();
            assert_eq!(stored, recorded["data"]["template"], "{line}");
            let bytes = serde_json::to_string(&**template).unwrap();
            assert!(line.contains(&format!("\"template\":{bytes},")), "{line}");
            n += 1;
        }
        assert!(
            n >= 2,
            "expected the recorded team handoffs' initiated events"
        );
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
            matches!(&err, DecodeError::Decode { seq: 7, message } if message.contains("actor")),
            "{err}"
        );
        assert!(decode_commit(8, br#"{"events":[{"type":"opened"}]}"#).is_err());
    }

    /// The payload is read as text once it is UTF-8 as a whole: text with
    /// escapes and non-ASCII decodes as the byte reader decodes it, and
    /// bytes that are not UTF-8 are refused as before.
    #[test]
    fn decode_commit_reads_text_and_refuses_bytes_that_are_not_utf8() {
        let json = r#"{"events":[{"id":"0190f3a0-0000-7000-8000-000000000000","handoff_id":"0190f3a0-0000-7000-8000-000000000001","version":1,"occurred_at":"2026-01-01T00:00:00Z","actor":"r\u00e9mi \"é\" ✓","type":"resolved","data":{"by":"zoë\n","note":"\ud83d\ude00 ok"}}]}"#;
        let decoded = decode_commit(1, json.as_bytes()).unwrap();
        assert_eq!(
            decoded,
            serde_json::from_slice::<Commit>(json.as_bytes()).unwrap()
        );
        assert_eq!(decoded.events[0].actor, "rémi \"é\" ✓");
        let mut bad = json.as_bytes().to_vec();
        let at = json.find("zo").unwrap();
        bad[at] = 0xff;
        assert!(serde_json::from_slice::<Commit>(&bad).is_err());
        let err = decode_commit(9, &bad).unwrap_err();
        assert!(matches!(err, DecodeError::Decode { seq: 9, .. }), "{err}");
    }
}
