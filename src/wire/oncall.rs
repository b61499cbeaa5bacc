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
