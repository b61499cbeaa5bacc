//! The snapshot format: how the projector's state is cut into chunks and
//! described by a [`Manifest`], and read back ([`Encoder`], [`decode`],
//! [`decode_chunks`]). Pure; `snapshot` stores and loads the bytes.
//!
//! A snapshot is a sequence of entries, each a little-endian `u32` length
//! and a MessagePack map `{"h": <Handoff>, "seq": <last commit seq>}`
//! (format 2; format 1 was line-delimited JSON, three times slower to write
//! and 1.5 times to read), cut at entry boundaries into LZ4-compressed
//! chunks, and a [`Manifest`] (JSON: id, sequence, chunk count, byte count,
//! SHA-256 of each chunk), written last.
//!
//! Versioned by [`FORMAT`] and by the manifest's `event_version`; a build
//! reads only its own format and event versions up to its own, and skips
//! anything else, whose state the projector then replays from the log. So,
//! unlike events, a snapshot need not decode forever and has no golden
//! fixture: its round trip and refusals are tested in `replay/tests.rs`
//! (`snapshot_plus_tail_equals_full_replay`,
//! `a_corrupt_snapshot_is_refused_so_the_caller_replays_in_full`,
//! `every_chunk_of_a_snapshot_is_checked_and_named_when_it_fails`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Handoff, EVENT_VERSION};

/// Bumped when the snapshot layout changes; other formats are ignored.
/// 3: entries are the `Handoff` enum (incident or team handoff).
pub const FORMAT: u32 = 3;
/// Largest decompressed chunk accepted (a chunk holds
/// `snapshot::CHUNK_BYTES` of entries, or one entry that is larger on its
/// own).
const MAX_CHUNK_BODY: usize = 64 * 1024 * 1024;

/// What a snapshot holds, written after all of its chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: Uuid,
    /// Every commit up to this stream sequence is reflected.
    pub seq: u64,
    pub handoffs: u64,
    pub chunks: u32,
    pub bytes: u64,
    /// SHA-256 (hex) of each chunk's body, in order (format 2 on; each
    /// chunk is verified by whichever thread decodes it).
    #[serde(default)]
    pub chunk_sha256: Vec<String>,
    pub event_version: u32,
    /// Creation time of the events stream it was taken from (checked only
    /// for manifests without `anchor`: nats-server 2.9 changes it when the
    /// stream's config is updated and the server restarts).
    pub events_stream: String,
    pub created_at: DateTime<Utc>,
    /// The stream time (Unix nanoseconds) of the commit at `seq`: which
    /// events stream it was taken from, as no restart changes it and a
    /// recreated stream does not match it. Absent when `seq` is 0, and in
    /// manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    h: Handoff,
    seq: u64,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    h: &'a Handoff,
    seq: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Builds chunks from entries: each entry is a little-endian `u32` length
/// and a MessagePack map `{"h": <Handoff>, "seq": <u64>}` (named fields, so
/// the same serde attributes as the JSON wire apply); each chunk of entries
/// is one LZ4 block with its size prepended. Pure.
pub struct Encoder {
    chunks: Vec<Vec<u8>>,
    current: Vec<u8>,
    chunk_bytes: usize,
    handoffs: u64,
}

impl Encoder {
    pub fn new(chunk_bytes: usize) -> Self {
        Self {
            chunks: Vec::new(),
            current: Vec::new(),
            chunk_bytes,
            handoffs: 0,
        }
    }

    pub fn push(&mut self, h: &Handoff, seq: u64) {
        let entry = rmp_serde::to_vec_named(&EntryRef { h, seq }).expect("state serializes");
        let len = u32::try_from(entry.len()).expect("an entry is far below 4 GiB");
        if !self.current.is_empty() && self.current.len() + 4 + entry.len() > self.chunk_bytes {
            self.close_chunk();
        }
        self.current.extend_from_slice(&len.to_le_bytes());
        self.current.extend_from_slice(&entry);
        self.handoffs += 1;
    }

    /// Stores the entries gathered so far as one LZ4 block (MessagePack
    /// repeats every field name; compressed, a chunk is about a third of
    /// its size, and loading is bound by the bytes the server sends).
    fn close_chunk(&mut self) {
        self.chunks
            .push(lz4_flex::compress_prepend_size(&std::mem::take(
                &mut self.current,
            )));
    }

    /// The manifest (minus the stream identity) and the chunks.
    pub fn finish(
        mut self,
        id: Uuid,
        seq: u64,
        events_stream: String,
        now: DateTime<Utc>,
    ) -> (Manifest, Vec<Vec<u8>>) {
        if !self.current.is_empty() {
            self.close_chunk();
        }
        let manifest = Manifest {
            format: FORMAT,
            id,
            seq,
            handoffs: self.handoffs,
            chunks: self.chunks.len() as u32,
            bytes: self.chunks.iter().map(|c| c.len() as u64).sum(),
            chunk_sha256: self.chunks.iter().map(|c| sha256_hex(c)).collect(),
            event_version: EVENT_VERSION,
            events_stream,
            created_at: now,
            anchor: None,
        };
        (manifest, self.chunks)
    }
}

/// Whether this build reads snapshots described by `manifest`.
pub(crate) fn readable(manifest: &Manifest) -> Result<(), String> {
    if manifest.format != FORMAT {
        return Err(format!(
            "format {} (this build reads {FORMAT})",
            manifest.format
        ));
    }
    if manifest.event_version > EVENT_VERSION {
        return Err(format!(
            "written by a newer build (event version {})",
            manifest.event_version
        ));
    }
    if manifest.chunk_sha256.len() != manifest.chunks as usize {
        return Err(format!(
            "{} checksums for {} chunks",
            manifest.chunk_sha256.len(),
            manifest.chunks
        ));
    }
    Ok(())
}

/// Verifies and decodes whole chunks (an entry never spans two) of
/// `manifest` that start at chunk `first`. Pure; loading runs several at
/// once, on every core, while later chunks are still being fetched.
pub fn decode_chunks<C: AsRef<[u8]>>(
    manifest: &Manifest,
    first: usize,
    chunks: &[C],
) -> Result<Vec<(Handoff, u64)>, String> {
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let chunk = chunk.as_ref();
        let i = first + i;
        if manifest.chunk_sha256.get(i).map(String::as_str) != Some(sha256_hex(chunk).as_str()) {
            return Err(format!("chunk {i}: checksum mismatch"));
        }
        // The size an LZ4 block claims is allocated before decoding: bound it.
        let claimed = chunk
            .first_chunk::<4>()
            .map_or(0, |n| u32::from_le_bytes(*n) as usize);
        if claimed > MAX_CHUNK_BODY {
            return Err(format!("chunk {i} claims {claimed} bytes"));
        }
        let body = lz4_flex::decompress_size_prepended(chunk)
            .map_err(|e| format!("chunk {i} does not decompress: {e}"))?;
        let mut rest = body.as_slice();
        while !rest.is_empty() {
            let (len, body) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| format!("chunk {i}: entry length cut short"))?;
            let len = u32::from_le_bytes(*len) as usize;
            if body.len() < len {
                return Err(format!("chunk {i}: entry cut short"));
            }
            let (entry, next) = body.split_at(len);
            let e: Entry = rmp_serde::from_slice(entry)
                .map_err(|e| format!("chunk {i}: entry does not decode: {e}"))?;
            out.push((e.h, e.seq));
            rest = next;
        }
    }
    Ok(out)
}

/// Verifies all of a snapshot's chunks against its manifest and decodes
/// them on this thread. Pure. (Loading does the same a group at a time on
/// blocking threads, overlapped with fetching; see
/// `snapshot::SnapshotStore::fetch`.)
pub fn decode<C: AsRef<[u8]>>(
    manifest: &Manifest,
    chunks: &[C],
) -> Result<Vec<(Handoff, u64)>, String> {
    readable(manifest)?;
    if chunks.len() != manifest.chunks as usize {
        return Err(format!("{} of {} chunks", chunks.len(), manifest.chunks));
    }
    let bytes: u64 = chunks.iter().map(|c| c.as_ref().len() as u64).sum();
    collect(manifest, bytes, vec![decode_chunks(manifest, 0, chunks)])
}

/// Joins decoded parts in order and checks the totals.
pub(crate) fn collect(
    manifest: &Manifest,
    bytes: u64,
    parts: Vec<Result<Vec<(Handoff, u64)>, String>>,
) -> Result<Vec<(Handoff, u64)>, String> {
    if bytes != manifest.bytes {
        return Err(format!("{bytes} of {} bytes", manifest.bytes));
    }
    let parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Sized by what decoded, not by the manifest's unchecked count.
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend(part);
    }
    if out.len() as u64 != manifest.handoffs {
        return Err(format!("{} of {} handoffs", out.len(), manifest.handoffs));
    }
    Ok(out)
}
