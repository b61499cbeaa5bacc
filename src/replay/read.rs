//! The NATS edge of replay and audit: reading `BATON_EVENTS` and
//! `BATON_PAGES` with ordered consumers, and asking a running daemon for its
//! state digests.
//!
//! Ordered consumers are ephemeral, flow-controlled and recreate themselves
//! on a gap, so reading the whole log leaves nothing behind on the server and
//! cannot disturb the daemon's durable consumers. A read stops at the
//! stream's last sequence as of its start (or the requested end), so a live
//! stream that keeps growing cannot make it run forever. Nothing here
//! publishes to a stream.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Record, ReplayError};
use crate::store::{decode_commit, Names, StoreError};
use crate::wire::page::Page;

/// Which stream sequences to read (inclusive; `None`: from the first / to
/// the last one stored when the read starts).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRange {
    pub from: Option<u64>,
    pub to: Option<u64>,
}

/// One `BATON_PAGES` message as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    pub seq: u64,
    pub subject: String,
    /// The `Nats-Msg-Id` it was published with.
    pub msg_id: Option<String>,
    pub page: Result<Page, String>,
}

fn progress(total: u64, show: bool) -> ProgressBar {
    // Piped or redirected: print only data, no bar.
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} seq {pos}/{len} {wide_bar} {msg} eta {eta}")
            .expect("valid template"),
    );
    bar
}

/// Every raw message of `stream` in `range`, in order: `(seq, subject,
/// headers' msg id, payload)`.
async fn read_raw(
    js: &jetstream::Context,
    stream: &str,
    filter_subject: String,
    range: ReadRange,
    show_progress: bool,
    mut each: impl FnMut(u64, &str, Option<&str>, &[u8]) -> usize,
) -> Result<(), ReplayError> {
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| StoreError::nats("get stream", format!("{stream}: {e}")))?;
    let state = s
        .info()
        .await
        .map_err(|e| StoreError::nats("stream info", e))?
        .state
        .clone();
    let last = range
        .to
        .map_or(state.last_sequence, |t| t.min(state.last_sequence));
    let first = range.from.unwrap_or(1).max(state.first_sequence).max(1);
    if state.messages == 0 || first > last {
        return Ok(());
    }
    let mut messages = crate::store::ordered_messages(
        &s,
        DeliverPolicy::ByStartSequence {
            start_sequence: first,
        },
        filter_subject,
    )
    .await?;
    let bar = progress(last, show_progress);
    bar.set_position(first - 1);
    let started = Instant::now();
    let mut events = 0usize;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| StoreError::nats("consume", e))?;
        let Ok(info) = m.info() else { continue };
        let seq = info.stream_sequence;
        if seq > last {
            break;
        }
        let msg_id = m
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
            .map(|v| v.as_str());
        events += each(seq, m.subject.as_str(), msg_id, &m.payload);
        if seq % 256 == 0 || seq == last {
            bar.set_position(seq);
            let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{rate:.0} events/s"));
        }
        if seq >= last || info.pending == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Reads `BATON_EVENTS` in `range`. Undecodable messages come back as
/// records with the decode error, never silently dropped.
pub async fn read_events(
    js: &jetstream::Context,
    names: &Names,
    range: ReadRange,
    show_progress: bool,
) -> Result<Vec<Record>, ReplayError> {
    let mut out = Vec::new();
    read_raw(
        js,
        &names.events_stream(),
        names.events_all(),
        range,
        show_progress,
        |seq, subject, _, payload| {
            let commit = decode_commit(seq, payload).map_err(|e| e.to_string());
            let n = commit.as_ref().map_or(1, |c| c.events.len());
            out.push(Record {
                seq,
                subject: subject.to_string(),
                commit,
            });
            n
        },
    )
    .await?;
    Ok(out)
}

/// Reads one handoff's commits with direct gets on its subject: as many
/// round trips as it has commits, however long the stream.
pub async fn read_handoff(
    js: &jetstream::Context,
    names: &Names,
    id: Uuid,
) -> Result<Vec<Record>, ReplayError> {
    use async_nats::jetstream::stream::DirectGetErrorKind;
    let stream = js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    let subject = names.events(id);
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        match stream
            .direct_get_next_for_subject(subject.clone(), Some(next))
            .await
        {
            Ok(m) => {
                next = m.sequence + 1;
                out.push(Record {
                    seq: m.sequence,
                    subject: subject.clone(),
                    commit: decode_commit(m.sequence, &m.payload).map_err(|e| e.to_string()),
                });
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::nats("direct get", e).into()),
        }
    }
}

/// Reads every page still held by `BATON_PAGES` (it has a `max_age`).
pub async fn read_pages(
    js: &jetstream::Context,
    names: &Names,
) -> Result<Vec<PageRecord>, ReplayError> {
    let mut out = Vec::new();
    read_raw(
        js,
        &names.pages_stream(),
        names.pages_all(),
        ReadRange::default(),
        false,
        |seq, subject, msg_id, payload| {
            out.push(PageRecord {
                seq,
                subject: subject.to_string(),
                msg_id: msg_id.map(String::from),
                page: serde_json::from_slice(payload).map_err(|e| e.to_string()),
            });
            1
        },
    )
    .await?;
    Ok(out)
}

/// The daemon's answer to `digest`: what it has applied and its per-handoff
/// digests, fetched bucket by bucket where the bucket digests differ.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonDigests {
    /// Highest stream sequence the daemon's projector has applied.
    pub applied_seq: u64,
    /// `(last_seq, digest)` per handoff, only for the buckets fetched.
    pub handoffs: BTreeMap<Uuid, (u64, String)>,
    /// Buckets whose per-handoff digests were fetched.
    pub fetched: Vec<u8>,
    /// Handoffs closed before this may be evicted from the daemon's memory
    /// (its `evicted_before`): their absence is no divergence.
    pub evicted_before: Option<chrono::DateTime<chrono::Utc>>,
}

async fn ask(
    client: &async_nats::Client,
    names: &Names,
    body: Value,
    timeout: Duration,
) -> Result<Value, ReplayError> {
    let subject = names.cmd("digest");
    let reply = tokio::time::timeout(
        timeout,
        client.request(subject.clone(), body.to_string().into()),
    )
    .await
    .map_err(|_| {
        StoreError::nats(
            "digest request",
            format!("{subject}: no reply (is the daemon running?)"),
        )
    })?
    .map_err(|e| StoreError::nats("digest request", format!("{subject}: {e}")))?;
    let v: Value =
        serde_json::from_slice(&reply.payload).map_err(|e| StoreError::nats("digest reply", e))?;
    if v["ok"] != json!(true) {
        return Err(StoreError::nats("digest", v["error"].to_string()).into());
    }
    Ok(v)
}

/// Asks the daemon for its bucket digests, then fetches the per-handoff
/// digests of every bucket that differs from `local_buckets(evicted_before)`
/// (the local digests of what the daemon holds, given its eviction cutoff).
pub async fn daemon_digests(
    client: &async_nats::Client,
    names: &Names,
    local_buckets: impl FnOnce(Option<chrono::DateTime<chrono::Utc>>) -> Vec<String>,
    timeout: Duration,
) -> Result<DaemonDigests, ReplayError> {
    let top = ask(client, names, json!({}), timeout).await?;
    let mut out = DaemonDigests {
        applied_seq: top["applied_seq"].as_u64().unwrap_or(0),
        evicted_before: serde_json::from_value(top["evicted_before"].clone()).unwrap_or(None),
        ..Default::default()
    };
    let local_buckets = local_buckets(out.evicted_before);
    let theirs: Vec<&str> = top["buckets"]
        .as_array()
        .map(|a| a.iter().map(|b| b.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    for b in 0..=255u8 {
        let mine = local_buckets.get(b as usize).map(String::as_str);
        if theirs.get(b as usize).copied() == mine {
            continue;
        }
        let v = ask(client, names, json!({"bucket": b}), timeout).await?;
        out.fetched.push(b);
        if let Some(map) = v["digests"].as_object() {
            for (id, d) in map {
                if let (Ok(id), Some(seq), Some(d)) =
                    (id.parse::<Uuid>(), d["seq"].as_u64(), d["digest"].as_str())
                {
                    out.handoffs.insert(id, (seq, d.to_string()));
                }
            }
        }
    }
    Ok(out)
}
