//! The audit's comparison of the state rebuilt from the log with the
//! running daemon's, by digest.
//!
//! Both sides compute [`digest`] (it lives in `projector::digest`) the same
//! way: SHA-256 over a handoff's JSON state and the sequence it reflects.
//! The daemon answers `digest` with one
//! digest per bucket (the id's last byte, random in UUIDv5 and UUIDv7), so
//! only the buckets that differ are fetched handoff by handoff; a million
//! handoffs cost 256 small replies plus whatever differs. [`compare`] then
//! tells a divergence from a daemon that is merely behind or ahead of the
//! audit's read. Pure.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::audit::{violation, Finding, FindingKind};
use super::read::DaemonDigests;
use super::Rebuilt;
use crate::projector::digest::{bucket_digest, bucket_of, digest};

/// Whether the daemon may have evicted `rb` from memory: closed before
/// its eviction cutoff.
fn evictable(rb: &Rebuilt, evicted_before: Option<DateTime<Utc>>) -> bool {
    evicted_before
        .zip(rb.handoff.closed_at())
        .is_some_and(|(cutoff, closed)| closed < cutoff)
}

/// The local bucket digests (see [`bucket_digest`]) of the handoffs a
/// daemon evicting those closed before `evicted_before` holds.
pub fn local_buckets(
    state: &BTreeMap<Uuid, Rebuilt>,
    evicted_before: Option<DateTime<Utc>>,
) -> Vec<String> {
    let mut buckets: Vec<Vec<(Uuid, String)>> = vec![Vec::new(); 256];
    for (id, rb) in state
        .iter()
        .filter(|(_, rb)| !evictable(rb, evicted_before))
    {
        buckets[bucket_of(id) as usize].push((*id, digest(&rb.handoff, rb.last_seq)));
    }
    buckets
        .iter()
        .map(|b| bucket_digest(b.iter().map(|(i, d)| (i, d.as_str()))))
        .collect()
}

/// Compares the state rebuilt from records up to `upto` with the daemon's
/// digests. Differences explained by the daemon being ahead of (or behind)
/// the audit's read are notices; the rest are divergences. Pure.
pub fn compare(state: &BTreeMap<Uuid, Rebuilt>, upto: u64, daemon: &DaemonDigests) -> Vec<Finding> {
    let mut out = Vec::new();
    let fetched: HashSet<u8> = daemon.fetched.iter().copied().collect();
    let notice = |id: Uuid, detail: String| Finding {
        kind: FindingKind::Divergence,
        violation: false,
        handoff: Some(id),
        seq: None,
        detail,
    };
    for (id, rb) in state
        .iter()
        .filter(|(id, _)| fetched.contains(&bucket_of(id)))
    {
        let local = digest(&rb.handoff, rb.last_seq);
        match daemon.handoffs.get(id) {
            Some((seq, d)) if *seq == rb.last_seq && *d == local => {}
            Some((seq, _)) if *seq > upto => out.push(notice(
                *id,
                format!("changed at seq {seq}, after the audit's read"),
            )),
            Some((seq, d)) if *seq == rb.last_seq => out.push(violation(
                FindingKind::Divergence,
                Some(*id),
                Some(*seq),
                format!("daemon digest {d} differs from the log's {local} at the same sequence"),
            )),
            Some((seq, _)) if *seq < rb.last_seq && daemon.applied_seq < rb.last_seq => {
                out.push(notice(
                    *id,
                    format!(
                        "daemon at seq {} has not applied seq {} yet",
                        daemon.applied_seq, rb.last_seq
                    ),
                ))
            }
            Some((seq, _)) => out.push(violation(
                FindingKind::Divergence,
                Some(*id),
                Some(rb.last_seq),
                format!(
                    "daemon reflects seq {seq}, the log's last commit is seq {}",
                    rb.last_seq
                ),
            )),
            // Evicted after its retention: the log is where it lives now.
            None if evictable(rb, daemon.evicted_before) => {}
            None if daemon.applied_seq < rb.last_seq => out.push(notice(
                *id,
                format!(
                    "daemon at seq {} has not applied seq {} yet",
                    daemon.applied_seq, rb.last_seq
                ),
            )),
            None => out.push(violation(
                FindingKind::Divergence,
                Some(*id),
                Some(rb.last_seq),
                "in the log but not in the daemon's state".into(),
            )),
        }
    }
    for (id, (seq, _)) in &daemon.handoffs {
        if !state.contains_key(id) && *seq <= upto {
            out.push(violation(
                FindingKind::Divergence,
                Some(*id),
                Some(*seq),
                "in the daemon's state but not in the log".into(),
            ));
        }
    }
    out
}
