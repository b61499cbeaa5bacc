//! State digests: what the daemon's `digest` command answers and what
//! `baton audit verify` computes from the log, so equal digests mean equal
//! state. They live beside the projection they summarize; the audit
//! (`replay`) imports them from here.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Handoff;

/// The state digest of one handoff: SHA-256 (hex, first 16 bytes) of its
/// JSON form and the sequence it reflects. The daemon's `digest` command and
/// the auditor compute it the same way, so equal digests mean equal state.
pub fn digest(handoff: &Handoff, last_seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(last_seq.to_be_bytes());
    h.update(serde_json::to_vec(handoff).expect("state serializes"));
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bucket (0–255) of a handoff id in the digest exchange: the id's last
/// byte, which is random in both UUIDv5 and UUIDv7.
pub fn bucket_of(id: &Uuid) -> u8 {
    id.as_bytes()[15]
}

/// Digest of one bucket: the digests of its handoffs in id order.
pub fn bucket_digest<'a>(entries: impl Iterator<Item = (&'a Uuid, &'a str)>) -> String {
    let mut sorted: Vec<_> = entries.collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (id, d) in sorted {
        h.update(id.as_bytes());
        h.update(d.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
