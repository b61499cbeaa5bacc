//! Snapshots: the projector's state and the stream sequence it covers, kept
//! in JetStream so a restart replays only the tail of `BATON_EVENTS`.
//!
//! Storage is a plain stream, `BATON_SNAPSHOTS` on `<prefix>.snapshot.>`,
//! holding one message per subject (a hand-made KV: async-nats's
//! `create_key_value` cannot parse server 2.9's account info). A snapshot is
//! line-delimited JSON `{"h": <Handoff>, "seq": <last commit seq>}` cut at
//! line boundaries into chunks below NATS's payload limit, each on
//! `<prefix>.snapshot.<slot>.chunk.<n>` with a `Baton-Snapshot-Id` header,
//! and a [`Manifest`] (id, sequence, chunk count, byte count, SHA-256) on
//! `<prefix>.snapshot.<slot>.manifest`, written last. Two slots alternate, so
//! a crash while writing one leaves the other whole.
//!
//! Loading takes the newest manifest whose chunks are all there, carry its
//! id, add up to its size and hash; whose format and event version this
//! build reads; and whose events stream is the one now running (same
//! creation time, sequence not past the end). Anything else is skipped with
//! a warning, and with no valid snapshot the projector replays from zero.
//!
//! Consistency: the sequence is the projector's `applied_seq` read before
//! the state is walked, so every entry reflects at least every commit up to
//! it; entries the engine moved further carry their own later sequence, and
//! the projector skips commits a slot already reflects. Snapshot + tail is
//! therefore the same state as a full replay.
//!
//! Metrics: the gauges (`baton_open_handoffs`) are rebuilt from the loaded
//! state. The event-derived counters and histograms (`handoffs_opened`,
//! `handoffs_resolved`, `escalations`, `sla_breaches`, `gate_holds`,
//! `packet_missing_field`, `mtta_seconds`, `hcs`) see only the tail: after a
//! restart from a snapshot they count from the snapshot's sequence on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{Handoff, EVENT_VERSION};
use crate::projector::Projection;
use crate::store::{Names, StoreError};

/// Bumped when the snapshot layout changes; other formats are ignored.
pub const FORMAT: u32 = 1;
/// How often the daemon writes a snapshot (when anything changed).
pub const INTERVAL: Duration = Duration::from_secs(300);
/// Largest chunk body; below the 1 MiB default `max_payload`.
pub const CHUNK_BYTES: usize = 512 * 1024;
const SLOTS: [&str; 2] = ["a", "b"];
const ID_HEADER: &str = "Baton-Snapshot-Id";

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
    /// SHA-256 (hex) of the chunks' bodies in order.
    pub sha256: String,
    pub event_version: u32,
    /// Creation time of the events stream it was taken from.
    pub events_stream: String,
    pub created_at: DateTime<Utc>,
}

/// A loaded, verified snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub manifest: Manifest,
    pub entries: Vec<(Handoff, u64)>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    h: Handoff,
    seq: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds chunks from entries, one line each. Pure.
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
        let line =
            serde_json::to_vec(&serde_json::json!({"h": h, "seq": seq})).expect("state serializes");
        if !self.current.is_empty() && self.current.len() + line.len() + 1 > self.chunk_bytes {
            self.chunks.push(std::mem::take(&mut self.current));
        }
        self.current.extend_from_slice(&line);
        self.current.push(b'\n');
        self.handoffs += 1;
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
            self.chunks.push(std::mem::take(&mut self.current));
        }
        let mut sha = Sha256::new();
        for c in &self.chunks {
            sha.update(c);
        }
        let manifest = Manifest {
            format: FORMAT,
            id,
            seq,
            handoffs: self.handoffs,
            chunks: self.chunks.len() as u32,
            bytes: self.chunks.iter().map(|c| c.len() as u64).sum(),
            sha256: hex(&sha.finalize()),
            event_version: EVENT_VERSION,
            events_stream,
            created_at: now,
        };
        (manifest, self.chunks)
    }
}

/// Verifies chunks against their manifest and decodes them. Pure.
pub fn decode(manifest: &Manifest, chunks: &[Vec<u8>]) -> Result<Vec<(Handoff, u64)>, String> {
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
    if chunks.len() != manifest.chunks as usize {
        return Err(format!("{} of {} chunks", chunks.len(), manifest.chunks));
    }
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    for c in chunks {
        sha.update(c);
        bytes += c.len() as u64;
    }
    if bytes != manifest.bytes || hex(&sha.finalize()) != manifest.sha256 {
        return Err("checksum mismatch".into());
    }
    let mut out = Vec::with_capacity(manifest.handoffs as usize);
    for line in chunks
        .iter()
        .flat_map(|c| c.split(|b| *b == b'\n'))
        .filter(|l| !l.is_empty())
    {
        let l: Line =
            serde_json::from_slice(line).map_err(|e| format!("entry does not decode: {e}"))?;
        out.push((l.h, l.seq));
    }
    if out.len() as u64 != manifest.handoffs {
        return Err(format!("{} of {} handoffs", out.len(), manifest.handoffs));
    }
    Ok(out)
}

/// The snapshot stream.
#[derive(Clone)]
pub struct SnapshotStore {
    js: jetstream::Context,
    stream: stream::Stream,
    events: stream::Stream,
    prefix: String,
}

/// The snapshot stream's name under a prefix (`BATON_SNAPSHOTS`).
pub fn stream_name(names: &Names) -> String {
    let events = names.events_stream();
    format!("{}_SNAPSHOTS", events.trim_end_matches("_EVENTS"))
}

impl SnapshotStore {
    /// Creates (or updates) the snapshot stream.
    pub async fn open(
        js: jetstream::Context,
        names: &Names,
        replicas: usize,
    ) -> Result<Self, StoreError> {
        let config = stream::Config {
            name: stream_name(names),
            description: Some("Baton: projector snapshots (one message per subject)".into()),
            subjects: vec![format!("{}.snapshot.>", names.prefix)],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_messages_per_subject: 1,
            allow_direct: true,
            ..Default::default()
        };
        let stream = match js.get_stream(&config.name).await {
            Ok(_) => js.update_stream(config.clone()).await.map(|_| ()),
            Err(_) => js.create_stream(config.clone()).await.map(|_| ()),
        };
        stream.map_err(|e| StoreError::nats("snapshot stream", format!("{}: {e}", config.name)))?;
        let get = |n: String| {
            let js = js.clone();
            async move {
                js.get_stream(&n)
                    .await
                    .map_err(|e| StoreError::nats("get stream", format!("{n}: {e}")))
            }
        };
        Ok(Self {
            stream: get(config.name.clone()).await?,
            events: get(names.events_stream()).await?,
            js,
            prefix: names.prefix.clone(),
        })
    }

    fn subject(&self, slot: &str, what: &str) -> String {
        format!("{}.snapshot.{slot}.{what}", self.prefix)
    }

    async fn events_identity(&self) -> Result<(String, u64), StoreError> {
        let mut events = self.events.clone();
        let info = events
            .info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?;
        Ok((info.created.to_string(), info.state.last_sequence))
    }

    async fn get(&self, subject: String) -> Option<async_nats::jetstream::message::StreamMessage> {
        self.stream.direct_get_last_for_subject(subject).await.ok()
    }

    async fn manifests(&self) -> Vec<(&'static str, Result<Manifest, String>)> {
        let mut out = Vec::new();
        for slot in SLOTS {
            if let Some(m) = self.get(self.subject(slot, "manifest")).await {
                out.push((
                    slot,
                    serde_json::from_slice(&m.payload)
                        .map_err(|e| format!("manifest does not decode: {e}")),
                ));
            }
        }
        out
    }

    /// Writes the projection's state; returns the manifest written.
    pub async fn save(&self, projection: &Arc<Projection>) -> Result<Manifest, StoreError> {
        let (events_stream, _) = self.events_identity().await?;
        // Serializing every handoff is CPU work: off the runtime's threads,
        // so the SLA timer and commands keep their latency meanwhile.
        let p = projection.clone();
        let (manifest, chunks) = tokio::task::spawn_blocking(move || {
            let seq = p.applied_seq.load(Ordering::Acquire);
            let mut enc = Encoder::new(CHUNK_BYTES);
            p.visit(|_| true, |h, s| enc.push(h, s));
            enc.finish(Uuid::now_v7(), seq, events_stream, Utc::now())
        })
        .await
        .map_err(|e| StoreError::nats("snapshot encode", e))?;
        // Overwrite the slot that does not hold the newest manifest.
        let previous: Vec<(&str, Manifest)> = self
            .manifests()
            .await
            .into_iter()
            .filter_map(|(slot, m)| Some((slot, m.ok()?)))
            .collect();
        let newest = previous.iter().map(|(slot, m)| (m.seq, *slot)).max();
        let slot = match newest {
            Some((_, "a")) => "b",
            _ => "a",
        };
        let stale = previous
            .iter()
            .find(|(s, _)| *s == slot)
            .map_or(0, |(_, m)| m.chunks);
        let nats = |e: &dyn std::fmt::Display| StoreError::nats("snapshot write", e.to_string());
        let mut acks = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(ID_HEADER, manifest.id.to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(
                    self.subject(slot, &format!("chunk.{i}")),
                    headers,
                    chunk.into(),
                )
                .await
                .map_err(|e| nats(&e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| nats(&e))?;
        }
        let body = serde_json::to_vec(&manifest).expect("manifest serializes");
        self.js
            .publish(self.subject(slot, "manifest"), body.into())
            .await
            .map_err(|e| nats(&e))?
            .await
            .map_err(|e| nats(&e))?;
        // Chunks past the new count belonged to the slot's older snapshot.
        for i in manifest.chunks..stale {
            let subject = self.subject(slot, &format!("chunk.{i}"));
            if let Err(e) = self.stream.purge().filter(subject).await {
                tracing::debug!(error = %e, "stale snapshot chunk not purged");
            }
        }
        Ok(manifest)
    }

    /// The newest valid snapshot, or `None` (each one skipped is logged).
    pub async fn load(&self) -> Option<Snapshot> {
        let (stream_id, last_seq) = match self.events_identity().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the events stream; replaying in full");
                return None;
            }
        };
        let mut candidates = Vec::new();
        for (slot, m) in self.manifests().await {
            match m {
                Ok(m) => candidates.push((slot, m)),
                Err(e) => tracing::warn!(slot, error = %e, "snapshot ignored"),
            }
        }
        candidates.sort_by_key(|(_, m)| std::cmp::Reverse(m.seq));
        for (slot, m) in candidates {
            match self.fetch(slot, &m, &stream_id, last_seq).await {
                Ok(entries) => {
                    return Some(Snapshot {
                        manifest: m,
                        entries,
                    })
                }
                Err(e) => {
                    tracing::warn!(slot, snapshot = %m.id, seq = m.seq, error = %e, "snapshot ignored; trying an older one or a full replay")
                }
            }
        }
        None
    }

    async fn fetch(
        &self,
        slot: &str,
        m: &Manifest,
        stream_id: &str,
        last_seq: u64,
    ) -> Result<Vec<(Handoff, u64)>, String> {
        if m.events_stream != stream_id || m.seq > last_seq {
            return Err(format!(
                "taken from another events stream (created {}, seq {})",
                m.events_stream, m.seq
            ));
        }
        if m.format != FORMAT {
            return Err(format!("format {} (this build reads {FORMAT})", m.format));
        }
        let mut chunks = Vec::with_capacity(m.chunks as usize);
        for i in 0..m.chunks {
            let msg = self
                .get(self.subject(slot, &format!("chunk.{i}")))
                .await
                .ok_or_else(|| format!("chunk {i} missing"))?;
            let id = msg.headers.get(ID_HEADER).map(|v| v.as_str().to_string());
            if id.as_deref() != Some(m.id.to_string().as_str()) {
                return Err(format!("chunk {i} belongs to another snapshot"));
            }
            chunks.push(msg.payload.to_vec());
        }
        decode(m, &chunks)
    }
}

/// Loads the newest valid snapshot into `projection`; returns the sequence
/// the projector continues after (0: replay everything).
pub async fn restore(store: &SnapshotStore, projection: &Projection) -> u64 {
    let started = Instant::now();
    match store.load().await {
        Some(s) => {
            let (seq, n) = (s.manifest.seq, s.entries.len());
            projection.import(s.entries, seq);
            tracing::info!(snapshot = %s.manifest.id, seq, handoffs = n, elapsed_ms = started.elapsed().as_millis() as u64, "state loaded from a snapshot");
            seq
        }
        None => 0,
    }
}

/// Writes a snapshot every `interval` when the projection moved past
/// `saved` (the sequence of the snapshot loaded at start, 0 for none), and
/// once more on shutdown.
pub async fn run(
    store: SnapshotStore,
    projection: Arc<Projection>,
    interval: Duration,
    mut saved: u64,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        let now = projection.applied_seq.load(Ordering::Acquire);
        if now > saved {
            let started = Instant::now();
            match store.save(&projection).await {
                Ok(m) => {
                    saved = m.seq;
                    tracing::info!(snapshot = %m.id, seq = m.seq, handoffs = m.handoffs, chunks = m.chunks, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot not written; the next start replays more")
                }
            }
        }
        if stopping {
            return;
        }
    }
}
