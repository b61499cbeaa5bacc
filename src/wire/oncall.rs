//! On-call events as stored: one JSON [`OncallEvent`] per message on
//! `<prefix>.oncall.<rotation>` (`BATON_ONCALL`), `Nats-Msg-Id` = the
//! event's id. The types are the domain's (`domain::oncall`); this module
//! encodes, decodes and refuses versions it cannot read. Golden records of
//! every kind live in `tests/fixtures/oncall/` and must keep decoding.

use crate::domain::oncall::{OncallEvent, ONCALL_EVENT_VERSION};

/// Why a stored on-call record cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OncallDecodeError {
    /// Not a record any build wrote.
    #[error("stored on-call event at sequence {seq} does not decode: {message}")]
    Decode { seq: u64, message: String },
    /// Written by a newer Baton: left for it, never skipped.
    #[error(
        "stored on-call event at sequence {seq} has schema version {version}; \
         this build reads up to {ONCALL_EVENT_VERSION}: upgrade it"
    )]
    NewerVersion { seq: u64, version: u32 },
}

/// The bytes an on-call event is stored as.
pub fn encode(event: &OncallEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("on-call events serialize")
}

/// Reads one stored record (`seq` names it in errors).
pub fn decode(seq: u64, bytes: &[u8]) -> Result<OncallEvent, OncallDecodeError> {
    // The version is read first so a newer shape is told apart from junk.
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| OncallDecodeError::Decode {
        seq,
        message: e.to_string(),
    })?;
    if v.version > ONCALL_EVENT_VERSION {
        return Err(OncallDecodeError::NewerVersion {
            seq,
            version: v.version,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| OncallDecodeError::Decode {
        seq,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<(std::path::PathBuf, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oncall");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect()
    }

    /// Stored bytes are forever: every golden record decodes and encodes
    /// back to the same bytes, and every kind has one.
    #[test]
    fn golden_oncall_records_decode_and_reencode_to_the_same_bytes() {
        let mut kinds = std::collections::BTreeSet::new();
        for (path, text) in fixtures() {
            let bytes = text.trim_end().as_bytes();
            let e = decode(1, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(e.version, 1, "{}", path.display());
            assert_eq!(encode(&e), bytes, "{}", path.display());
            kinds.insert(e.data.kind());
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "override_cancelled",
                "override_created",
                "participants_changed"
            ]
        );
    }

    #[test]
    fn a_newer_version_is_refused_apart_from_junk() {
        let (_, text) = fixtures().remove(0);
        let newer = text.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            decode(7, newer.as_bytes()),
            Err(OncallDecodeError::NewerVersion { seq: 7, version: 2 })
        ));
        assert!(matches!(
            decode(8, b"{\"nope\":1}"),
            Err(OncallDecodeError::Decode { seq: 8, .. })
        ));
    }
}

/// The resolved people a notice's routes carry (`RouteTarget::person`,
/// `backup`, `rotation`, `unresolved`) are stored bytes too: a recorded
/// `paged` event with a resolved rotation, an unresolved target paged on
/// its fallback, and a label decodes and re-encodes to the same bytes.
#[cfg(test)]
mod resolved_targets {
    use crate::domain::{Commit, EventData};

    #[test]
    fn a_paged_event_with_resolved_people_round_trips_byte_for_byte() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/targets/paged_with_resolved_people.json");
        let line = std::fs::read_to_string(path).unwrap();
        let line = line.trim_end();
        let commit =
            crate::wire::events::decode_commit(1, format!("{{\"events\":[{line}]}}").as_bytes())
                .expect("decodes");
        let e = &commit.events[0];
        let EventData::Paged { notice, .. } = &e.data else {
            panic!("a paged event")
        };
        let r = &notice.routes;
        assert_eq!(r[0].person.as_deref(), Some("alice"));
        assert_eq!(r[0].backup.as_deref(), Some("bob"));
        assert_eq!(r[0].rotation.as_deref(), Some("payments-primary"));
        assert!(r[1].unresolved && r[1].person.as_deref() == Some("dana"));
        assert_eq!((r[2].person.as_ref(), r[2].unresolved), (None, false));
        let again = serde_json::to_string(&Commit {
            events: commit.events.clone(),
        })
        .unwrap();
        assert_eq!(again, format!("{{\"events\":[{line}]}}"));
    }
}
