//! The projector task: follows `BATON_EVENTS` with an ordered consumer and
//! applies every commit to the [`Projection`], in stream order, filing each
//! under the handoff its subject names (see the module doc of `projector`
//! for what stops it and what it skips).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Projection;
use crate::domain::Commit;
use crate::store::{decode_commit_skimmed, EventStore, Follow, Names, StoreError};

/// The handoff a commit belongs to: the id in its subject, provided every
/// event in it names that same handoff.
fn filed_under(subject: &str, names: &Names, commit: &Commit) -> Option<Uuid> {
    let id: Uuid = names.handoff_of(subject)?.parse().ok()?;
    (!commit.events.is_empty() && commit.events.iter().all(|e| e.handoff_id == id)).then_some(id)
}

/// One stored commit as the reader hands it to the applier.
struct Raw {
    seq: u64,
    pending: u64,
    subject: async_nats::Subject,
    payload: bytes::Bytes,
}

/// Commits handed over at once (one channel operation per batch).
const BATCH: usize = 256;
/// Batches in flight between the reader and the applier.
const BATCHES_AHEAD: usize = 16;
/// Batches shorter than this are applied by the reading task when the
/// applier is idle (live traffic, as opposed to catching up).
const INLINE_BELOW: usize = 16;

/// Follows `BATON_EVENTS` from `after_seq` with an ordered consumer and
/// applies every commit. Sets `caught_up` once it has applied `target_seq`.
///
/// Two stages while catching up, so that receiving (the NATS client's
/// protocol work) overlaps decoding and applying: this task reads and
/// batches whatever has arrived; a blocking thread decodes and applies in
/// stream order. Live traffic (short batches, applier idle) is applied
/// right here, without a thread hand-off.
pub async fn run(
    projection: Arc<Projection>,
    store: EventStore,
    after_seq: u64,
    target_seq: u64,
    caught_up: tokio::sync::watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    if target_seq <= after_seq {
        caught_up.send_replace(true);
    }
    // Resumes from the last commit read (every commit read is applied, in
    // order, or the projector stops), rebuilt at once when the store is
    // back after an outage: `Follow` hands out each sequence once.
    let mut messages = Follow::open(
        store.stream().clone(),
        store.names().events_all(),
        after_seq,
        "projector",
    )
    .await?;
    if let Some(health) = store.health() {
        messages = messages.with_health(health);
    }
    let applier = Arc::new(Applier {
        projection,
        names: store.names().clone(),
        target_seq,
        caught_up,
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Raw>>(BATCHES_AHEAD);
    // Fired when the applier thread ends, however it ends (a panic too), so
    // the reader stops instead of waiting on a stream gone quiet.
    let applier_gone = CancellationToken::new();
    let worker = {
        let applier = applier.clone();
        let gone = applier_gone.clone().drop_guard();
        tokio::task::spawn_blocking(move || {
            let _gone = gone;
            while let Some(batch) = rx.blocking_recv() {
                let applied = applier.apply(batch);
                applier.in_flight.fetch_sub(1, Ordering::AcqRel);
                applied?;
            }
            Ok(())
        })
    };
    let ended = 'read: loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break 'read None,
            _ = applier_gone.cancelled() => break 'read None,
            m = messages.next() => m,
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut stream_ended = None;
        // The follower's position and pending count are those of the
        // message it just handed out (its metadata parsed once, there).
        let raw = |m: async_nats::jetstream::Message, follow: &Follow| {
            // Subject and payload moved out, not cloned: two reference
            // counts less to bump and drop per commit.
            let m = m.message;
            Raw {
                seq: follow.position(),
                pending: follow.pending(),
                subject: m.subject,
                payload: m.payload,
            }
        };
        match first {
            Some(Ok(m)) => batch.push(raw(m, &messages)),
            // The ordered consumer recreates itself on gaps; other errors
            // are transient (reconnects) and the stream resumes.
            Some(Err(e)) => tracing::warn!(error = %e, "projector stream error"),
            None => stream_ended = Some(StoreError::nats("consume", "event stream ended")),
        }
        // After a message, take what has already arrived, up to a batch,
        // without waiting.
        if !batch.is_empty() {
            while batch.len() < BATCH {
                match messages.next_ready() {
                    Some(m) => batch.push(raw(m, &messages)),
                    None => break,
                }
            }
        }
        if batch.is_empty() {
            match stream_ended {
                Some(e) => break 'read Some(e),
                None => continue,
            }
        }
        // Caught up (a short batch) and nothing handed over still being
        // applied: apply here, as waking the other thread for a commit or
        // two costs more latency than it saves. Order holds either way:
        // inline only when every earlier batch is applied.
        if batch.len() < INLINE_BELOW && applier.in_flight.load(Ordering::Acquire) == 0 {
            if let Err(e) = applier.apply(batch) {
                break 'read Some(e);
            }
        } else {
            applier.in_flight.fetch_add(1, Ordering::AcqRel);
            if tx.send(batch).await.is_err() {
                break 'read None;
            }
        }
        // What was read before the stream ended is applied first.
        if let Some(e) = stream_ended {
            break 'read Some(e);
        }
    };
    drop(tx);
    // The applier's own error first: it is why the reader stopped.
    worker
        .await
        .map_err(|e| StoreError::nats("projector", format!("applier failed: {e}")))??;
    ended.map_or(Ok(()), Err)
}

/// What applies read commits, from either stage.
struct Applier {
    projection: Arc<Projection>,
    names: Names,
    target_seq: u64,
    caught_up: tokio::sync::watch::Sender<bool>,
    /// Batches handed to the blocking thread and not yet applied.
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Applier {
    /// After a batch: the lag behind the stream's end and, once the target
    /// is reached, caught up. `last` is the last commit passed (its
    /// sequence and the commits pending after it), if any.
    fn applied_up_to(&self, last: Option<(u64, u64)>) {
        let Some((seq, pending)) = last else {
            return;
        };
        self.projection
            .metrics
            .projector_lag_events
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        if seq >= self.target_seq && !*self.caught_up.borrow() {
            self.caught_up.send_replace(true);
        }
    }

    /// Decodes and applies a batch in stream order. Stops at a commit from
    /// a newer Baton and returns its error, `applied_seq` left before it.
    fn apply(&self, batch: Vec<Raw>) -> Result<(), StoreError> {
        let projection = &self.projection;
        // The lag gauge and the caught-up check once per batch, not per
        // commit: the batch is applied in one go either way.
        let mut last = None;
        for raw in batch {
            let seq = raw.seq;
            match decode_commit_skimmed(seq, &raw.payload) {
                // The subject says whose commit it is (the engine reads by
                // subject too); a commit whose events name another handoff
                // is misfiled and must not move that handoff's sequence.
                Ok(commit) => match filed_under(&raw.subject, &self.names, &commit) {
                    Some(id) => projection.apply_stored(id, seq, &commit),
                    None => {
                        tracing::error!(seq, subject = %raw.subject, "misfiled or empty event commit skipped")
                    }
                },
                // Not applied, so `applied_seq` must stay below it: a
                // snapshot taken now would otherwise make the skip permanent
                // (see the module doc).
                Err(e @ StoreError::NewerVersion { .. }) => {
                    tracing::error!(seq, error = %e, "commit from a newer Baton; the projector stops here");
                    self.applied_up_to(last);
                    return Err(e);
                }
                Err(e) => tracing::error!(seq, error = %e, "corrupt event commit skipped"),
            }
            projection.applied_seq.store(seq, Ordering::Release);
            last = Some((seq, raw.pending));
        }
        self.applied_up_to(last);
        projection.settle_when_due();
        // While replaying, handoffs closed long ago go as soon as they
        // close, so memory stays bounded during a catch-up too.
        if projection.eviction_due() {
            projection.evict_due(chrono::Utc::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decide, Command, EventData, IncidentCommand, Severity};
    use crate::metrics::Metrics;
    use crate::testkit::{policy, report};

    fn commit_for(id: Uuid) -> Commit {
        let now = chrono::Utc::now();
        let cmd = Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: report(Severity::P1),
            warnings: vec![],
            source: None,
        });
        Commit {
            events: decide(None, &cmd, now, &policy())
                .unwrap()
                .into_iter()
                .map(|e| e.seal(Uuid::now_v7(), id, now))
                .collect(),
        }
    }

    fn raw(seq: u64, id: Uuid, payload: Vec<u8>) -> Raw {
        Raw {
            seq,
            pending: 0,
            subject: format!("baton.events.{id}").into(),
            payload: payload.into(),
        }
    }

    /// R2: the projector skipped a newer-version commit but still advanced
    /// `applied_seq`, so a snapshot made the skip permanent. It must stop at
    /// that commit, `applied_seq` before it, and apply nothing after it.
    #[test]
    fn regression_a_newer_version_commit_stops_the_projector_before_applied_seq_passes_it() {
        let (timer, _queue) = crate::sla::channel();
        let projection = Arc::new(Projection::new(
            Arc::new(policy()),
            timer,
            Arc::new(Metrics::new()),
        ));
        let (caught_up, ready) = tokio::sync::watch::channel(false);
        let applier = Applier {
            projection: projection.clone(),
            names: Names::new("baton"),
            target_seq: 4,
            caught_up,
            in_flight: Default::default(),
        };
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut newer = serde_json::to_value(commit_for(b)).unwrap();
        newer["events"][0]["version"] = 999.into();
        let batch = vec![
            raw(1, a, serde_json::to_vec(&commit_for(a)).unwrap()),
            raw(2, a, b"corrupt: no build reads this".to_vec()),
            raw(3, b, serde_json::to_vec(&newer).unwrap()),
            raw(4, c, serde_json::to_vec(&commit_for(c)).unwrap()),
        ];
        let err = applier.apply(batch).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NewerVersion {
                    seq: 3,
                    version: 999
                }
            ),
            "{err}"
        );
        assert_eq!(projection.applied_seq.load(Ordering::Acquire), 2);
        assert!(projection.get(a).is_some());
        assert!(projection.get(b).is_none() && projection.get(c).is_none());
        assert!(!*ready.borrow(), "never caught up past it");
    }

    /// The projector decodes skimmed (notices' packet, score and work read
    /// past): state, digests and metrics must be what full decoding gives,
    /// for every recorded event, or `apply` has started reading what the
    /// skim leaves out.
    #[test]
    fn skimmed_commits_fold_to_the_state_full_ones_do() {
        use crate::store::decode_commit;
        let lines = crate::wire::events::tests::recorded_events();
        let fold = |skim: bool| {
            let (timer, _queue) = crate::sla::channel();
            let metrics = Arc::new(Metrics::new());
            let p = Projection::new(Arc::new(policy()), timer, metrics.clone());
            let mut differs = 0;
            for (i, line) in lines.iter().enumerate() {
                let payload = format!("{{\"events\":[{line}]}}");
                let full = decode_commit(i as u64 + 1, payload.as_bytes()).unwrap();
                let commit = if skim {
                    decode_commit_skimmed(i as u64 + 1, payload.as_bytes()).unwrap()
                } else {
                    full.clone()
                };
                differs += usize::from(commit != full);
                p.apply_stored(full.events[0].handoff_id, i as u64 + 1, &commit);
            }
            let mut digests = Vec::new();
            p.visit(
                |_| true,
                |h, seq| digests.push(super::super::digest::digest(h, seq)),
            );
            digests.sort();
            (digests, metrics.render(), differs)
        };
        let (full, skimmed) = (fold(false), fold(true));
        assert!(!full.0.is_empty());
        assert_eq!(skimmed.0, full.0, "state digests");
        assert_eq!(skimmed.1, full.1, "metrics");
        assert!(
            skimmed.2 > 0,
            "no recorded notice was skimmed: the test proves nothing"
        );
        // The flag is the decoding call's only: a full decode after it keeps all.
        let paged = lines
            .iter()
            .find(|l| l.contains(r#""type":"paged""#))
            .unwrap();
        let payload = format!("{{\"events\":[{paged}]}}");
        let _ = decode_commit_skimmed(1, payload.as_bytes()).unwrap();
        let EventData::Paged { notice, .. } =
            &decode_commit(1, payload.as_bytes()).unwrap().events[0].data
        else {
            panic!("paged")
        };
        assert_ne!(notice.packet, Default::default());
    }

    #[test]
    fn regression_commits_are_filed_by_subject_and_misfiled_ones_are_refused() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let baton = Names::new("baton");
        assert_eq!(
            filed_under(&format!("baton.events.{a}"), &baton, &commit_for(a)),
            Some(a)
        );
        assert_eq!(
            filed_under(&format!("baton.events.{a}"), &baton, &commit_for(b)),
            None
        );
        assert_eq!(
            filed_under(
                &format!("baton.events.{a}"),
                &baton,
                &Commit { events: vec![] }
            ),
            None
        );
        assert_eq!(
            filed_under("baton.events.not-a-uuid", &baton, &commit_for(a)),
            None
        );
    }
}
