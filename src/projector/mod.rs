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
//! Every change is noted for the list index (`index`, `listing`), from
//! which lists, stats and jobs read pages and windows without copying
//! every state.
//!
//! Closed handoffs leave it once closed for longer than the retention
//! (`evict`); a commit for a handoff it no longer holds is not a handoff on
//! its own (`apply` ignores what nothing opened), so the slot it would make
//! is dropped again and the log stays the place to read it from.
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
pub mod evict;
mod index;
mod listing;
mod occurrences;
mod reader;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use uuid::Uuid;

use crate::domain::{apply, Commit, EventData, Handoff, Policy, Severity, Status, TeamStatus};
use crate::metrics::Metrics;
use crate::sla::TimerHandle;

pub use index::{Key, Select, StatusFilter};
pub use listing::{off_runtime, Listing, Page, SETTLE_AT};
pub use occurrences::Hint;
pub use reader::run;

/// A handoff's state and the sequence it reflects.
#[derive(Debug, Default)]
pub struct Entry {
    pub state: Option<Handoff>,
    pub last_seq: u64,
    /// Noted as changed since the list index last read it (`listing`):
    /// further changes need no note of their own.
    noted: bool,
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
    /// Every handoff in list order, for pages and windows (`index`).
    index: RwLock<index::Index>,
    /// Handoffs changed since the index last settled (`listing`).
    changed: Mutex<Vec<listing::Changed>>,
    /// Held while settling the index; the names its entries number.
    settling: Mutex<index::Names>,
    /// How long a closed handoff stays after it closed; `None`: forever.
    retention: Option<chrono::TimeDelta>,
    /// Closed handoffs by close time, to evict (`evict`); empty without a
    /// retention.
    evictions: Mutex<evict::Queue>,
    /// Where each dedup key's occurrence walk may start (`occurrences`).
    hints: Mutex<occurrences::Hints>,
}

/// Handoffs evicted per lock hold of the settler (a walk waits for at most
/// one such batch).
const EVICT_BATCH: usize = 1024;

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
            index: RwLock::default(),
            changed: Mutex::default(),
            settling: Mutex::default(),
            retention: None,
            evictions: Mutex::default(),
            hints: Mutex::default(),
        }
    }

    /// The same projection evicting closed handoffs `retention` after they
    /// closed (see `evict`); without, it keeps every handoff.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention =
            Some(chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX));
        self
    }

    /// How long a closed handoff is held after it closed, if it is evicted.
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.retention.and_then(|r| r.to_std().ok())
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

    /// The slot of a handoff, if it has one.
    fn find(&self, id: Uuid) -> Option<Arc<Slot>> {
        self.shard(&id)
            .read()
            .expect("not poisoned")
            .get(&id)
            .cloned()
    }

    /// A copy of one handoff's current state.
    pub fn get(&self, id: Uuid) -> Option<Handoff> {
        let slot = self.find(id)?;
        let entry = slot.entry.lock().expect("not poisoned");
        entry.state.clone()
    }

    /// Copies of every handoff's state, in no order: O(everything held),
    /// for tests and tools. Serving paths use [`Self::page`],
    /// [`Self::opened_in`] or [`Self::walk`]; snapshots and digests use
    /// [`Self::visit`], one slot at a time.
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
    /// that reflects less, moves the gauges, arms its deadline and is listed
    /// exactly as applying its events would have. Event-derived counters are not fed
    /// (see `snapshot`).
    pub fn import(&self, entries: Vec<(Handoff, u64)>, applied_seq: u64) {
        for shard in &self.shards {
            shard
                .write()
                .expect("not poisoned")
                .reserve(entries.len() / SHARDS);
        }
        // Listed at once at the end rather than noted one by one (see
        // `listing`); holding `settling` keeps any settle from overtaking.
        let mut names = self.settling.lock().expect("not poisoned");
        let mut listed = Vec::with_capacity(entries.len());
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
            let meta = index::Meta::numbered(&h, &mut names);
            listed.push((entry.state.as_ref().map(Key::of), Key::of(&h), meta));
            let was_closed = entry.state.as_ref().is_some_and(Handoff::is_closed);
            self.queue_if_closing(was_closed, &h);
            entry.state = Some(h);
            entry.last_seq = seq;
        }
        self.list(listed);
        drop(names);
        self.applied_seq.fetch_max(applied_seq, Ordering::AcqRel);
    }

    /// Applies a stored commit unless the slot already reflects it. With
    /// `observe`, feeds the metrics (the projector task does; the engine
    /// does not, so every commit is counted once).
    pub fn apply_commit(&self, slot: &Slot, seq: u64, commit: &Commit, observe: bool) -> bool {
        self.apply_in(slot, seq, commit, observe).0
    }

    /// Applies a commit read from the stream to the handoff `id` and feeds
    /// the metrics (the projector's path). A commit that opens nothing for
    /// a handoff not held (one evicted) leaves no slot behind.
    pub fn apply_stored(&self, id: Uuid, seq: u64, commit: &Commit) {
        let slot = self.slot(id);
        if !self.apply_in(&slot, seq, commit, true).1 {
            self.forget_if_empty(id, slot);
        }
    }

    /// [`Self::apply_commit`], also telling whether the slot holds a
    /// handoff afterwards.
    fn apply_in(&self, slot: &Slot, seq: u64, commit: &Commit, observe: bool) -> (bool, bool) {
        let mut entry = slot.entry.lock().expect("not poisoned");
        let opening = matches!(
            commit.events.first().map(|e| &e.data),
            Some(EventData::Opened { .. })
        );
        let fresh = seq > entry.last_seq;
        if fresh {
            let before = entry.state.as_ref().map(Gauged::of);
            let listed = entry.state.as_ref().map(Key::of);
            let was_closed = entry.state.as_ref().is_some_and(Handoff::is_closed);
            for e in &commit.events {
                apply(&mut entry.state, e);
                if observe {
                    self.metrics.observe(e, entry.state.as_ref(), opening);
                }
            }
            // A commit that opened nothing (the handoff was evicted) leaves
            // an empty slot at sequence 0, so a later read of the log from
            // the slot's sequence still starts at the opening.
            if entry.state.is_some() {
                entry.last_seq = seq;
            }
            let after = entry.state.as_ref().map(Gauged::of);
            self.move_gauge(before, after);
            if let Some(h) = &entry.state {
                self.timer.schedule(h.id(), h.next_deadline(&self.policy));
                if !entry.noted {
                    self.note_changed(h.id(), listed);
                }
                self.queue_if_closing(was_closed, h);
            }
            entry.noted |= entry.state.is_some();
        } else if observe {
            for e in &commit.events {
                self.metrics.observe(e, entry.state.as_ref(), opening);
            }
        }
        (fresh, entry.state.is_some())
    }

    /// Queues `h` for eviction if it is closed now and was not before
    /// (called under its slot lock, so the queue lock comes after it).
    fn queue_if_closing(&self, was_closed: bool, h: &Handoff) {
        if was_closed || self.retention.is_none() {
            return;
        }
        if let Some(at) = h.closed_at() {
            self.evictions
                .lock()
                .expect("not poisoned")
                .push(at, h.id());
        }
    }

    /// Evicts every closed handoff whose close is older than the retention
    /// at `now`: out of the map, the list index and the occurrence hints.
    /// Returns how many went. Without a retention it does nothing.
    ///
    /// A handoff is evicted only while nobody else holds its slot (a
    /// command running on it) and the index has read its last change;
    /// otherwise it waits for the next call. The gauges are untouched (a
    /// closed handoff is not counted open) and so are the event-derived
    /// counters: they were fed when its events were applied.
    pub fn evict_due(&self, now: chrono::DateTime<chrono::Utc>) -> usize {
        let Some(cutoff) = self.retention.and_then(|r| now.checked_sub_signed(r)) else {
            return 0;
        };
        let mut evicted = 0;
        loop {
            let due = self
                .evictions
                .lock()
                .expect("not poisoned")
                .due(cutoff, EVICT_BATCH);
            if due.is_empty() {
                break;
            }
            let full = due.len() == EVICT_BATCH;
            let (gone, later) = self.evict(due, cutoff);
            evicted += gone;
            if !later.is_empty() {
                let mut queue = self.evictions.lock().expect("not poisoned");
                for (at, id) in later {
                    queue.push(at, id);
                }
                // Pushed back entries are due again: the next call retries.
                break;
            }
            if !full {
                break;
            }
        }
        self.metrics.handoffs_evicted_total.inc_by(evicted as u64);
        self.metrics
            .handoffs_in_memory
            .set(i64::try_from(self.len()).unwrap_or(i64::MAX));
        evicted
    }

    /// Evicts the `due` handoffs that are still closed by `cutoff`; returns
    /// how many went and those to try again later.
    fn evict(
        &self,
        due: Vec<(chrono::DateTime<chrono::Utc>, Uuid)>,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> (usize, Vec<(chrono::DateTime<chrono::Utc>, Uuid)>) {
        // Held throughout, so no settle lists an evicted handoff again from
        // a note taken before it went (see `listing` for the lock order).
        let names = self.settle();
        let mut unlisted = Vec::new();
        let mut later = Vec::new();
        for (at, id) in due {
            // Closed since the entry was queued (reopened and closed
            // again): its later entry decides.
            let still_due = |h: Option<&Handoff>| {
                h.and_then(Handoff::closed_at)
                    .is_some_and(|closed| closed <= cutoff)
            };
            match self.take(id, still_due) {
                Taken::Gone(h) => unlisted.extend(h.as_ref().map(Key::of)),
                Taken::Busy => later.push((at, id)),
                Taken::Kept => {}
            }
        }
        self.unlist(&unlisted, names);
        (unlisted.len(), later)
    }

    /// Takes `id`'s slot out of the map if `remove` agrees on what it holds,
    /// nobody else holds the slot (a command running on it) and the index
    /// has read its last change; hands back what it held. The caller holds
    /// `settling` (from [`Self::settle`]) and then calls [`Self::unlist`].
    fn take(&self, id: Uuid, remove: impl FnOnce(Option<&Handoff>) -> bool) -> Taken {
        let mut shard = self.shard(&id).write().expect("not poisoned");
        let Some(slot) = shard.get(&id) else {
            return Taken::Kept;
        };
        let mut entry = slot.entry.lock().expect("not poisoned");
        if !remove(entry.state.as_ref()) {
            return Taken::Kept;
        }
        // The map's reference is the only one: no command holds it.
        if entry.noted || Arc::strong_count(slot) > 1 {
            return Taken::Busy;
        }
        let held = entry.state.take();
        drop(entry);
        shard.remove(&id);
        Taken::Gone(held)
    }

    /// Takes handoffs [`Self::take`] took out of the list index (under
    /// `names`, the settler's lock, let go here) and drops their
    /// occurrence hints.
    fn unlist(&self, gone: &[Key], names: MutexGuard<'_, index::Names>) {
        if !gone.is_empty() {
            let mut index = self.index.write().expect("not poisoned");
            for key in gone {
                index.remove(*key);
            }
        }
        drop(names);
        let mut hints = self.hints.lock().expect("not poisoned");
        for key in gone {
            hints.forget(key.1);
        }
    }

    /// Drops everything held for `id`, as if this projection had never
    /// read it: its slot, its list index entry, its occurrence hint, its
    /// armed deadline and its count in the open-handoff gauges. A later
    /// read or command loads it from the log again (`Engine::load`). An
    /// entry of it in the eviction queue stays: popped, it finds nothing.
    ///
    /// For a process whose projection no projector feeds (`baton
    /// deliver`), which would otherwise keep every handoff it wrote to and
    /// never learn that one closed. Never in `serve`: there the projector
    /// owns the projection and the SLA timer arms deadlines from it.
    ///
    /// Returns whether it went. Not while a command holds the slot or its
    /// change is not yet read by the index: the caller that ran that
    /// command forgets it afterwards.
    pub fn forget(&self, id: Uuid) -> bool {
        let names = self.settle();
        let Taken::Gone(held) = self.take(id, |_| true) else {
            return false;
        };
        let Some(h) = held else {
            return true;
        };
        self.unlist(&[Key::of(&h)], names);
        self.move_gauge(Some(Gauged::of(&h)), None);
        if h.next_deadline(&self.policy).is_some() {
            self.timer.schedule(id, None);
        }
        true
    }

    /// Whether [`Self::evict_due`] would evict anything now (one
    /// comparison): the projector asks after each batch it applies.
    pub fn eviction_due(&self) -> bool {
        self.retention
            .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
            .is_some_and(|cutoff| self.evictions.lock().expect("not poisoned").any_due(cutoff))
    }

    /// Where the occurrence walk of the key whose first occurrence is
    /// `first` may start (see `occurrences`).
    pub fn occurrence_hint(&self, first: Uuid) -> Option<Hint> {
        self.hints.lock().expect("not poisoned").get(first)
    }

    /// Notes where the key whose first occurrence is `first` stands, if
    /// the hinted occurrence is held (a hint never outlives its handoff).
    pub fn note_occurrence(&self, first: Uuid, hint: Hint) {
        let mut hints = self.hints.lock().expect("not poisoned");
        if self.find(hint.id).is_some() {
            hints.note(first, hint);
        }
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

/// What [`Projection::take`] did with a handoff's slot. A stack temporary,
/// matched at once: boxing would cost an allocation per handoff taken.
#[allow(clippy::large_enum_variant)]
enum Taken {
    /// Out of the map, with what it held.
    Gone(Option<Handoff>),
    /// Held by a command or not yet read by the index: try again later.
    Busy,
    /// Not there, or not to be taken.
    Kept,
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

#[cfg(test)]
mod eviction_tests;
#[cfg(test)]
mod tests;
