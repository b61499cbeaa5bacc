//! Current state, built from `BATON_EVENTS`.
//!
//! [`Projection`] holds one slot per handoff: the state and the stream
//! sequence of the last commit applied. Two writers feed it: the engine
//! applies its own commits as soon as JetStream acks them (so the next
//! command sees them without waiting), and the projector task applies every
//! commit it reads from the stream, including other daemons'. A commit is
//! applied only if its sequence is newer than the slot's, so whichever comes
//! second is a no-op and both orders give the same state.
//!
//! The projector also feeds the event-derived metrics (it sees every commit
//! exactly once per process) and re-arms the SLA timer after each change.
//!
//! `applied_seq` never moves past a commit this build could not apply, and
//! snapshots are taken at `applied_seq`, so no skip becomes permanent. A
//! commit from a newer Baton (`StoreError::NewerVersion`, a rolling upgrade)
//! stops the projector with that error: the daemon does not become ready,
//! or exits with it once running, rather than serve a state silently
//! missing a commit (and the deadlines it set); an upgraded build replays
//! from there. The one exception is a commit no build can read (corrupt, or
//! misfiled under another handoff's subject): waiting would not make it
//! readable and the stream denies deletes, so it is skipped with an error
//! and `baton audit verify` reports it.

pub mod digest;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_nats::jetstream::consumer::DeliverPolicy;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{apply, Commit, EventData, Handoff, Policy, Severity, Status, TeamStatus};
use crate::metrics::Metrics;
use crate::sla::TimerHandle;
use crate::store::{decode_commit, EventStore, Names, StoreError};

/// A handoff's state and the sequence it reflects.
#[derive(Debug, Default)]
pub struct Entry {
    pub state: Option<Handoff>,
    pub last_seq: u64,
}

/// One handoff's slot. `write` serializes the engine's commands on this
/// handoff across an await (hence tokio's mutex); `entry` is only ever held
/// for a few non-async instructions (hence std's, which is cheaper).
#[derive(Default)]
pub struct Slot {
    pub write: tokio::sync::Mutex<()>,
    pub entry: Mutex<Entry>,
}

const SHARDS: usize = 16;

/// A shard of the projection. foldhash, not SipHash: a lookup runs for
/// every stored commit and SipHash was a tenth of replay's CPU; foldhash is
/// seeded per process, so crafted ids cannot aim at one bucket.
type Shard = RwLock<HashMap<Uuid, Arc<Slot>, foldhash::fast::RandomState>>;

/// All handoffs' current state.
pub struct Projection {
    shards: Vec<Shard>,
    policy: Arc<Policy>,
    timer: TimerHandle,
    metrics: Arc<Metrics>,
    /// Highest stream sequence the projector has applied (its reading task
    /// or its applier thread, in stream order).
    pub applied_seq: AtomicU64,
    /// `baton_open_handoffs` series by severity and state, as used.
    open_gauges: [[std::sync::OnceLock<prometheus::IntGauge>; STATES]; SEVERITIES],
}

const SEVERITIES: usize = crate::domain::Severity::ALL.len();
/// `Status` has this many variants (held … resolved); a state past them
/// takes the uncached lookup.
const STATES: usize = 5;

impl Projection {
    pub fn new(policy: Arc<Policy>, timer: TimerHandle, metrics: Arc<Metrics>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            policy,
            timer,
            metrics,
            applied_seq: AtomicU64::new(0),
            open_gauges: Default::default(),
        }
    }

    fn shard(&self, id: &Uuid) -> &Shard {
        &self.shards[id.as_bytes()[15] as usize % SHARDS]
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The slot of a handoff, created empty if unknown.
    pub fn slot(&self, id: Uuid) -> Arc<Slot> {
        if let Some(s) = self.shard(&id).read().expect("not poisoned").get(&id) {
            return s.clone();
        }
        self.shard(&id)
            .write()
            .expect("not poisoned")
            .entry(id)
            .or_default()
            .clone()
    }

    /// Drops a slot that holds no handoff and that nobody else is using (a
    /// command for an unknown id must not leave memory behind).
    pub fn forget_if_empty(&self, id: Uuid, slot: Arc<Slot>) {
        let mut shard = self.shard(&id).write().expect("not poisoned");
        let empty = slot.entry.lock().expect("not poisoned").state.is_none();
        // Two references: the map's and the caller's.
        if empty && Arc::strong_count(&slot) == 2 {
            shard.remove(&id);
        }
    }

    /// A copy of one handoff's current state.
    pub fn get(&self, id: Uuid) -> Option<Handoff> {
        let slot = self
            .shard(&id)
            .read()
            .expect("not poisoned")
            .get(&id)?
            .clone();
        let entry = slot.entry.lock().expect("not poisoned");
        entry.state.clone()
    }

    /// Copies of every handoff's state (for listings and stats).
    pub fn all(&self) -> Vec<Handoff> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let slots: Vec<_> = shard
                .read()
                .expect("not poisoned")
                .values()
                .cloned()
                .collect();
            for s in slots {
                if let Some(h) = &s.entry.lock().expect("not poisoned").state {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// Number of handoffs held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().expect("not poisoned").len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every handoff whose id passes `keep` and the stream
    /// sequence its state reflects, holding one slot's lock at a time (for
    /// snapshots and the audit's digests; nothing is copied wholesale).
    pub fn visit(&self, keep: impl Fn(&Uuid) -> bool, mut f: impl FnMut(&Handoff, u64)) {
        for shard in &self.shards {
            let slots: Vec<_> = shard
                .read()
                .expect("not poisoned")
                .iter()
                .filter(|(id, _)| keep(id))
                .map(|(_, s)| s.clone())
                .collect();
            for s in slots {
                let e = s.entry.lock().expect("not poisoned");
                if let Some(h) = &e.state {
                    f(h, e.last_seq);
                }
            }
        }
    }

    /// Loads a snapshot taken at `applied_seq`: each entry replaces a slot
    /// that reflects less, moves the gauges and arms its deadline exactly as
    /// applying its events would have. Event-derived counters are not fed
    /// (see `snapshot`).
    pub fn import(&self, entries: Vec<(Handoff, u64)>, applied_seq: u64) {
        for shard in &self.shards {
            shard
                .write()
                .expect("not poisoned")
                .reserve(entries.len() / SHARDS);
        }
        for (h, seq) in entries {
            let slot = self.slot(h.id());
            let mut entry = slot.entry.lock().expect("not poisoned");
            if seq <= entry.last_seq {
                continue;
            }
            let before = entry.state.as_ref().map(Gauged::of);
            self.move_gauge(before.clone(), Some(Gauged::of(&h)));
            // A slot that held nothing has nothing armed to cancel.
            let next = h.next_deadline(&self.policy);
            if next.is_some() || before.is_some() {
                self.timer.schedule(h.id(), next);
            }
            entry.state = Some(h);
            entry.last_seq = seq;
        }
        self.applied_seq.fetch_max(applied_seq, Ordering::AcqRel);
    }

    /// Applies a stored commit unless the slot already reflects it. With
    /// `observe`, feeds the metrics (the projector task does; the engine
    /// does not, so every commit is counted once).
    pub fn apply_commit(&self, slot: &Slot, seq: u64, commit: &Commit, observe: bool) -> bool {
        let mut entry = slot.entry.lock().expect("not poisoned");
        let opening = matches!(
            commit.events.first().map(|e| &e.data),
            Some(EventData::Opened { .. })
        );
        let fresh = seq > entry.last_seq;
        if fresh {
            let before = entry.state.as_ref().map(Gauged::of);
            for e in &commit.events {
                apply(&mut entry.state, e);
                if observe {
                    self.metrics.observe(e, entry.state.as_ref(), opening);
                }
            }
            entry.last_seq = seq;
            let after = entry.state.as_ref().map(Gauged::of);
            self.move_gauge(before, after);
            if let Some(h) = &entry.state {
                self.timer.schedule(h.id(), h.next_deadline(&self.policy));
            }
        } else if observe {
            for e in &commit.events {
                self.metrics.observe(e, entry.state.as_ref(), opening);
            }
        }
        fresh
    }

    fn move_gauge(&self, before: Option<Gauged>, after: Option<Gauged>) {
        if before == after {
            return;
        }
        for (g, by) in [(before, -1), (after, 1)] {
            match g {
                Some(Gauged::Incident(sev, st)) if st != Status::Resolved => {
                    self.add_open(sev, st, by)
                }
                Some(Gauged::Team(template, st)) if !st.is_finished() => self
                    .metrics
                    .open_team_handoffs
                    .with_label_values(&[template.as_str(), st.as_str()])
                    .add(by),
                _ => {}
            }
        }
    }

    /// Moves the `baton_open_handoffs` series of one severity and state. Each
    /// series is looked up once: every commit moves one, and prometheus's
    /// label lookup hashes the label strings under a lock each time.
    fn add_open(&self, sev: Severity, st: Status, by: i64) {
        let lookup = || {
            self.metrics
                .open_handoffs
                .with_label_values(&[sev.as_str(), st.as_str()])
        };
        match self
            .open_gauges
            .get(sev as usize)
            .and_then(|row| row.get(st as usize))
        {
            Some(cell) => cell.get_or_init(lookup).add(by),
            None => lookup().add(by),
        }
    }
}

/// What the open-handoff gauges count a handoff under: an incident by
/// severity and status, a team handoff by template and workflow state.
#[derive(Debug, Clone, PartialEq)]
enum Gauged {
    Incident(Severity, Status),
    Team(String, TeamStatus),
}

impl Gauged {
    fn of(h: &Handoff) -> Self {
        match h {
            Handoff::Incident(i) => Gauged::Incident(i.severity, i.status()),
            Handoff::Team(t) => Gauged::Team(t.template.name.clone(), t.status),
        }
    }
}

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
    let deliver_policy = if after_seq == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: after_seq + 1,
        }
    };
    let mut messages =
        crate::store::ordered_messages(store.stream(), deliver_policy, store.names().events_all())
            .await?;
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
        let mut next = first;
        let mut stream_ended = None;
        // Take what has already arrived, up to a batch, without waiting.
        loop {
            match next {
                Some(Ok(m)) => match m.info() {
                    Ok(i) => batch.push(Raw {
                        seq: i.stream_sequence,
                        pending: i.pending,
                        subject: m.subject.clone(),
                        payload: m.payload.clone(),
                    }),
                    Err(e) => tracing::error!(error = %e, "event without JetStream metadata"),
                },
                // The ordered consumer recreates itself on gaps; other errors
                // are transient (reconnects) and the stream resumes.
                Some(Err(e)) => tracing::warn!(error = %e, "projector stream error"),
                None => {
                    stream_ended = Some(StoreError::nats("consume", "event stream ended"));
                    break;
                }
            }
            if batch.len() == BATCH {
                break;
            }
            match messages.next().now_or_never() {
                Some(m) => next = m,
                None => break,
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
    /// Decodes and applies a batch in stream order. Stops at a commit from
    /// a newer Baton and returns its error, `applied_seq` left before it.
    fn apply(&self, batch: Vec<Raw>) -> Result<(), StoreError> {
        let projection = &self.projection;
        for raw in batch {
            let seq = raw.seq;
            match decode_commit(seq, &raw.payload) {
                // The subject says whose commit it is (the engine reads by
                // subject too); a commit whose events name another handoff
                // is misfiled and must not move that handoff's sequence.
                Ok(commit) => match filed_under(&raw.subject, &self.names, &commit) {
                    Some(id) => {
                        let slot = projection.slot(id);
                        projection.apply_commit(&slot, seq, &commit, true);
                    }
                    None => {
                        tracing::error!(seq, subject = %raw.subject, "misfiled or empty event commit skipped")
                    }
                },
                // Not applied, so `applied_seq` must stay below it: a
                // snapshot taken now would otherwise make the skip permanent
                // (see the module doc).
                Err(e @ StoreError::NewerVersion { .. }) => {
                    tracing::error!(seq, error = %e, "commit from a newer Baton; the projector stops here");
                    return Err(e);
                }
                Err(e) => tracing::error!(seq, error = %e, "corrupt event commit skipped"),
            }
            projection.applied_seq.store(seq, Ordering::Release);
            projection
                .metrics
                .projector_lag_events
                .set(raw.pending as i64);
            if seq >= self.target_seq && !*self.caught_up.borrow() {
                self.caught_up.send_replace(true);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decide, Command, IncidentCommand};
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
