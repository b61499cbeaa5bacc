//! Snapshots: the projector's state and the stream sequence it covers, kept
//! in JetStream so a restart replays only the tail of `BATON_EVENTS`. The
//! bytes (entries, chunks, [`Manifest`]) are `wire::snapshot`'s; this module
//! writes them periodically and loads them at start.
//!
//! Storage is a plain stream, `BATON_SNAPSHOTS` on `<prefix>.snapshot.>`,
//! holding one message per subject (a hand-made KV: async-nats's
//! `create_key_value` cannot parse server 2.9's account info). Chunks are
//! cut below NATS's payload limit ([`CHUNK_BYTES`]), each on
//! `<prefix>.snapshot.<slot>.chunk.<n>` with a `Baton-Snapshot-Id` header,
//! and the manifest goes on `<prefix>.snapshot.<slot>.manifest`, written
//! last. Two slots alternate, so a crash while writing one leaves the other
//! whole.
//!
//! Loading fetches chunks several at a time and verifies and decodes them on
//! blocking threads while the rest arrive. It takes the newest manifest
//! whose chunks are all there, carry its id, add up to its size and match
//! their hashes; whose format and event version this build reads; and whose
//! events stream is the one now running (same creation time, sequence not
//! past the end). Anything else is skipped with a warning, and with no
//! valid snapshot the projector replays from zero.
//!
//! Consistency: the sequence is the projector's `applied_seq` read before
//! the state is walked, so every entry reflects at least every commit up to
//! it; entries the engine moved further carry their own later sequence, and
//! the projector skips commits a slot already reflects. Snapshot + tail is
//! therefore the same state as a full replay. The projector never moves
//! `applied_seq` past a commit it could not apply (a newer Baton's stops it;
//! see `projector`), so a snapshot never covers one either.
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
use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::Handoff;
use crate::projector::Projection;
use crate::store::{Names, StoreError};
use crate::wire::snapshot::{collect, readable};
pub use crate::wire::snapshot::{decode, decode_chunks, Encoder, Manifest, FORMAT};

/// How often the daemon writes a snapshot (when anything changed).
pub const INTERVAL: Duration = Duration::from_secs(300);
/// Largest chunk body before compression; below the 1 MiB default
/// `max_payload` even if LZ4 gained nothing.
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Chunk reads in flight while loading.
const FETCH_AHEAD: usize = 8;
/// Chunks verified and decoded together by one blocking task.
const DECODE_GROUP: usize = 8;
const SLOTS: [&str; 2] = ["a", "b"];
const ID_HEADER: &str = "Baton-Snapshot-Id";

/// A loaded, verified snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub manifest: Manifest,
    pub entries: Vec<(Handoff, u64)>,
}

/// The snapshot stream.
#[derive(Clone)]
pub struct SnapshotStore {
    js: jetstream::Context,
    stream: stream::Stream,
    events: stream::Stream,
    names: Names,
}

impl SnapshotStore {
    /// Opens the snapshot stream (`store::ensure_streams` creates it with
    /// the others) and the events stream it is taken from.
    pub async fn open(js: jetstream::Context, names: &Names) -> Result<Self, StoreError> {
        let get = |n: String| {
            let js = js.clone();
            async move {
                js.get_stream(&n)
                    .await
                    .map_err(|e| StoreError::nats("get stream", format!("{n}: {e}")))
            }
        };
        Ok(Self {
            stream: get(names.snapshots_stream()).await?,
            events: get(names.events_stream()).await?,
            js,
            names: names.clone(),
        })
    }

    async fn events_identity(&self) -> Result<(String, u64), StoreError> {
        let mut events = self.events.clone();
        let info = events
            .info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?;
        Ok((info.created.to_string(), info.state.last_sequence))
    }

    /// The stream time of the commit at `seq` (see [`Manifest::anchor`]).
    async fn anchor(&self, seq: u64) -> Result<Option<String>, StoreError> {
        if seq == 0 {
            return Ok(None);
        }
        let msg = self
            .events
            .get_raw_message(seq)
            .await
            .map_err(|e| StoreError::nats("get commit", e))?;
        Ok(Some(msg.time.unix_timestamp_nanos().to_string()))
    }

    async fn get(&self, subject: String) -> Option<async_nats::jetstream::message::StreamMessage> {
        self.stream.direct_get_last_for_subject(subject).await.ok()
    }

    async fn manifests(&self) -> Vec<(&'static str, Result<Manifest, String>)> {
        let mut out = Vec::new();
        for slot in SLOTS {
            if let Some(m) = self.get(self.names.snapshot_manifest(slot)).await {
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
        let mut manifest = manifest;
        manifest.anchor = self.anchor(manifest.seq).await?;
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
                    self.names.snapshot_chunk(slot, i as u64),
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
            .publish(self.names.snapshot_manifest(slot), body.into())
            .await
            .map_err(|e| nats(&e))?
            .await
            .map_err(|e| nats(&e))?;
        // Chunks past the new count belonged to the slot's older snapshot.
        for i in manifest.chunks..stale {
            let subject = self.names.snapshot_chunk(slot, i as u64);
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
        let same_stream = match &m.anchor {
            Some(a) => {
                m.seq <= last_seq && self.anchor(m.seq).await.ok().flatten().as_ref() == Some(a)
            }
            None => m.events_stream == stream_id,
        };
        if !same_stream || m.seq > last_seq {
            return Err(format!(
                "taken from another events stream (created {}, seq {})",
                m.events_stream, m.seq
            ));
        }
        readable(m)?;
        let started = Instant::now();
        // Direct gets are request/reply: keep several in flight. Every
        // `DECODE_GROUP` chunks go to a blocking thread to be verified and
        // decoded while the next ones arrive.
        let id = m.id.to_string();
        let manifest = Arc::new(m.clone());
        let mut gets = futures::stream::iter(0..m.chunks)
            .map(|i| {
                let subject = self.names.snapshot_chunk(slot, i as u64);
                async move { (i, self.get(subject).await) }
            })
            .buffered(FETCH_AHEAD);
        let (mut decoding, mut group, mut bytes) = (Vec::new(), Vec::new(), 0u64);
        let mut spawn = |first: usize, group: Vec<bytes::Bytes>| {
            let manifest = manifest.clone();
            decoding.push(tokio::task::spawn_blocking(move || {
                decode_chunks(&manifest, first, &group)
            }));
        };
        while let Some((i, msg)) = gets.next().await {
            let msg = msg.ok_or_else(|| format!("chunk {i} missing"))?;
            if msg.headers.get(ID_HEADER).map(|v| v.as_str()) != Some(id.as_str()) {
                return Err(format!("chunk {i} belongs to another snapshot"));
            }
            bytes += msg.payload.len() as u64;
            group.push(msg.payload);
            if group.len() == DECODE_GROUP {
                spawn(i as usize + 1 - DECODE_GROUP, std::mem::take(&mut group));
            }
        }
        if !group.is_empty() {
            spawn(m.chunks as usize - group.len(), group);
        }
        let fetched = started.elapsed();
        let mut parts = Vec::with_capacity(decoding.len());
        for d in decoding {
            parts.push(
                d.await
                    .unwrap_or_else(|e| Err(format!("snapshot decoder failed: {e}"))),
            );
        }
        let out = collect(m, bytes, parts);
        tracing::info!(
            fetch_ms = fetched.as_millis() as u64,
            decoded_ms = started.elapsed().as_millis() as u64,
            "snapshot read"
        );
        out
    }
}

/// Loads the newest valid snapshot into `projection`; returns the sequence
/// the projector continues after (0: replay everything).
pub async fn restore(store: &SnapshotStore, projection: &Projection) -> u64 {
    let started = Instant::now();
    match store.load().await {
        Some(s) => {
            let (seq, n) = (s.manifest.seq, s.entries.len());
            let importing = Instant::now();
            projection.import(s.entries, seq);
            tracing::info!(snapshot = %s.manifest.id, seq, handoffs = n, import_ms = importing.elapsed().as_millis() as u64, elapsed_ms = started.elapsed().as_millis() as u64, "state loaded from a snapshot");
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
