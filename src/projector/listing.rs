//! Reading many handoffs without copying them all: pages of the list and
//! windows of stats and jobs, walked from the list index (`index`).
//!
//! **Keeping the index in step.** Applying a commit only notes, under the
//! handoff's slot lock, which handoff changed and the key it was listed
//! under: a push onto a short list, and only for the first change since
//! the index last read that handoff (the slot remembers it is noted). The
//! index catches up (settles) before any walk reads it, and whenever the
//! notes pile up past [`SETTLE_AT`] (the projector checks after each batch
//! it applies), so they stay few. Settling reads each noted handoff once
//! however many commits touched it, and inserts in key order: during a
//! replay that is less work than an insert per commit at a random place,
//! and none of it on the apply path. One settler at a time, so the index
//! sees a handoff's states in the order they happened. A snapshot's
//! entries are listed at once by `import`, holding the settler's lock.
//!
//! **Locks**, in the order they may be taken: `settling` (which also holds
//! the names), a slot's entry, `changed`; and `settling` before the index.
//! The apply path takes only its slot and `changed`. A walk holds the index
//! only while it reads a chunk of keys, then locks slots one at a time and
//! re-checks each state, as it may have moved on since.

use std::ops::ControlFlow;
use std::sync::MutexGuard;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::index::{Ix, Key, Meta, Names, Select};
use super::Projection;
use crate::domain::Handoff;

/// Notes that make the projector settle the index after a batch.
pub const SETTLE_AT: usize = 4096;
/// Keys a walk takes from the index per lock hold: a page of 500 takes a
/// few holds, and a settler waits for at most one.
const CHUNK: usize = 128;
/// Index entries a walk looks at per lock hold when a filter keeps few.
const SCAN_BUDGET: usize = 4096;

/// A handoff whose state changed since the index last settled.
#[derive(Debug)]
pub(super) struct Changed {
    pub id: Uuid,
    /// Its key when it was last listed, if it was.
    pub listed: Option<Key>,
}

/// One page of the list: up to the limit, and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Copies of the handoffs on the page, newest first.
    pub items: Vec<Handoff>,
    /// Whether the filter keeps more after the last item.
    pub more: bool,
}

/// What a page of the list is read from: the projection or, in unit tests,
/// a plain list of handoffs (loaded into a projection of their own, so the
/// same index serves them).
pub trait Listing {
    /// See [`Projection::page`].
    fn page(&self, select: &Select, after: Option<Key>, limit: usize) -> Page;
}

impl Listing for &Projection {
    fn page(&self, select: &Select, after: Option<Key>, limit: usize) -> Page {
        Projection::page(self, select, after, limit)
    }
}

/// Runs `f` on a blocking thread and returns what it returns: for reads
/// that may walk many handoffs (filtered lists, windows of stats and jobs),
/// so they hold no runtime worker. A panic in `f` resumes in the caller.
pub async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl Projection {
    /// Calls `f` with each handoff `select` keeps, in list order (newest
    /// first): those listed after `after` and opened at or after `since`,
    /// until `f` breaks. Nothing is copied; `f` runs under that handoff's
    /// slot lock, so it must not call back into the projection.
    ///
    /// The cost is the handoffs visited, plus the index entries a narrow
    /// filter passes over. A handoff that changes during the walk is seen
    /// as it is when visited, and only if it still matches.
    pub fn walk(
        &self,
        select: &Select,
        after: Option<Key>,
        since: Option<DateTime<Utc>>,
        mut f: impl FnMut(&Handoff) -> ControlFlow<()>,
    ) {
        let Some(criteria) = select.numbered(&self.settle()) else {
            return;
        };
        let floor = since.map(Key::first_at);
        let mut after = after;
        loop {
            // The index is let go before any slot is locked.
            let chunk = self.index.read().expect("not poisoned").scan(
                &criteria,
                after,
                floor,
                CHUNK,
                SCAN_BUDGET,
            );
            for key in &chunk.keys {
                let Some(slot) = self.find(key.1) else {
                    continue;
                };
                let entry = slot.entry.lock().expect("not poisoned");
                let Some(h) = &entry.state else {
                    continue;
                };
                if Key::of(h) == *key && select.matches(h) && f(h).is_break() {
                    return;
                }
            }
            match chunk.resume {
                Some(k) => after = Some(k),
                None => return,
            }
        }
    }

    /// Up to `limit` handoffs `select` keeps, listed after `after`, newest
    /// first: copies of those only.
    pub fn page(&self, select: &Select, after: Option<Key>, limit: usize) -> Page {
        let mut items = Vec::with_capacity(limit.min(CHUNK) + 1);
        self.walk(select, after, None, |h| {
            items.push(h.clone());
            if items.len() > limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        let more = items.len() > limit;
        items.truncate(limit);
        Page { items, more }
    }

    /// Copies of the handoffs `select` keeps opened from `since` (inclusive)
    /// to `until` (exclusive; no end when `None`), newest first: the
    /// windows of stats and jobs.
    pub fn opened_in(
        &self,
        select: &Select,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Vec<Handoff> {
        let mut out = Vec::new();
        self.walk(select, until.map(Key::first_at), since, |h| {
            out.push(h.clone());
            ControlFlow::Continue(())
        });
        out
    }

    /// Notes that `id` changed, listed under `listed` until now. Called
    /// under its slot lock, and only if the slot is not noted already: a
    /// handoff has at most one note pending, its key the one listed.
    pub(super) fn note_changed(&self, id: Uuid, listed: Option<Key>) {
        self.changed
            .lock()
            .expect("not poisoned")
            .push(Changed { id, listed });
    }

    /// Settles the index if the notes have piled up (see the module doc).
    pub(super) fn settle_when_due(&self) {
        if self.changed.lock().expect("not poisoned").len() >= SETTLE_AT {
            drop(self.settle());
        }
    }

    /// Brings the index up to date with every change noted so far, and
    /// hands back the names (held until the guard drops).
    pub(super) fn settle(&self) -> MutexGuard<'_, Names> {
        let mut names = self.settling.lock().expect("not poisoned");
        let changed = std::mem::take(&mut *self.changed.lock().expect("not poisoned"));
        if changed.is_empty() {
            return names;
        }
        let mut puts = Vec::with_capacity(changed.len());
        for c in changed {
            let Some(slot) = self.find(c.id) else {
                continue;
            };
            let mut entry = slot.entry.lock().expect("not poisoned");
            // Read now: a change after this point notes it again.
            entry.noted = false;
            if let Some(h) = &entry.state {
                puts.push((c.listed, Key::of(h), Meta::numbered(h, &mut names)));
            }
        }
        self.list(puts);
        names
    }

    /// Writes entries into the index (the caller holds `settling`, so
    /// nothing else writes it meanwhile): into an empty one in bulk, else
    /// in key order, each insert landing near the one before. Of two
    /// entries for one key (a snapshot listing a handoff twice), the later
    /// wins either way.
    pub(super) fn list(&self, mut puts: Vec<(Option<Key>, Key, Meta)>) {
        if self.index.read().expect("not poisoned").is_empty() {
            let listed = puts.into_iter().map(|(_, k, m)| (k, m));
            self.index.write().expect("not poisoned").fill(listed);
            return;
        }
        puts.sort_by_key(|p| Ix::from(p.1));
        let mut index = self.index.write().expect("not poisoned");
        for (before, key, meta) in puts {
            index.put(before, key, meta);
        }
    }
}

#[cfg(test)]
impl Listing for Vec<Handoff> {
    fn page(&self, select: &Select, after: Option<Key>, limit: usize) -> Page {
        let (timer, _queue) = crate::sla::channel();
        let p = Projection::new(
            std::sync::Arc::new(crate::testkit::policy()),
            timer,
            std::sync::Arc::new(crate::metrics::Metrics::new()),
        );
        p.import(self.iter().map(|h| (h.clone(), 1)).collect(), 1);
        Projection::page(&p, select, after, limit)
    }
}
