//! Bounded memory: closed handoffs (resolved, completed, cancelled) leave
//! the projection once they have been closed for longer than the retention
//! (`[limits] closed_retention`). Reading one afterwards loads it from its
//! own subject in the log (`app::Engine::load`), and a command on one
//! loads it through the write path as any handoff this process has not
//! seen, so only what is held in memory changes, never an answer.
//!
//! [`Queue`] orders the handoffs to evict by close time: a handoff is
//! pushed when a commit (or a snapshot's entry) leaves it closed, and the
//! periodic tick pops only those due, so a tick costs what it evicts, not
//! what is held. An entry is a hint, checked against the slot when it is
//! popped: a handoff held by a command, or changed since the index last
//! read it, is pushed again for the next tick. How the projection drops a
//! handoff (slot, list index, occurrence hints) is
//! [`Projection::evict_due`](super::Projection::evict_due).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Closed handoffs by close time, earliest first. Pure: the caller passes
/// the cutoff (now less the retention).
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, Uuid)>>,
}

impl Queue {
    /// Queues `id`, closed at `at`. A handoff may be queued more than once
    /// (loaded again after eviction); the extra entries find nothing.
    pub fn push(&mut self, at: DateTime<Utc>, id: Uuid) {
        self.heap.push(Reverse((at, id)));
    }

    /// Takes every entry closed at or before `cutoff`, earliest first, at
    /// most `max` of them.
    pub fn due(&mut self, cutoff: DateTime<Utc>, max: usize) -> Vec<(DateTime<Utc>, Uuid)> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.heap.peek() {
                Some(Reverse((at, _))) if *at <= cutoff => {
                    let Reverse(entry) = self.heap.pop().expect("peeked");
                    out.push(entry);
                }
                _ => break,
            }
        }
        out
    }

    /// Whether anything is due at `cutoff` (one comparison).
    pub fn any_due(&self, cutoff: DateTime<Utc>) -> bool {
        self.heap
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= cutoff)
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// How often [`run`] evicts: a quarter of the retention, between 10 ms and
/// a minute (a handoff stays at most that much past its retention).
pub fn tick_every(retention: std::time::Duration) -> std::time::Duration {
    (retention / 4).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(60),
    )
}

/// Evicts what is due, now and then every [`tick_every`], until shutdown
/// (the daemon's eviction task). Without a retention it only waits.
pub async fn run(
    projection: std::sync::Arc<super::Projection>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(retention) = projection.retention() else {
        return shutdown.cancelled().await;
    };
    let mut every = tokio::time::interval(tick_every(retention));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let p = projection.clone();
        let evicted = super::off_runtime(move || p.evict_due(Utc::now())).await;
        if evicted > 0 {
            tracing::debug!(evicted, "closed handoffs evicted from memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn due_takes_only_entries_closed_by_the_cutoff_earliest_first() {
        let mut q = Queue::default();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // Pushed out of order: a handoff loaded again closed long ago.
        q.push(at(30), c);
        q.push(at(10), a);
        q.push(at(20), b);
        assert!(!q.any_due(at(9)));
        assert!(q.due(at(9), usize::MAX).is_empty());
        assert!(q.any_due(at(20)));
        assert_eq!(q.due(at(20), usize::MAX), vec![(at(10), a), (at(20), b)]);
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.due(at(30) + TimeDelta::days(1), usize::MAX),
            vec![(at(30), c)]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn due_stops_at_max_and_leaves_the_rest_for_the_next_tick() {
        let mut q = Queue::default();
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            q.push(at(i as i64), *id);
        }
        let first: Vec<Uuid> = q.due(at(100), 2).into_iter().map(|e| e.1).collect();
        assert_eq!(first, ids[..2]);
        let rest: Vec<Uuid> = q.due(at(100), 10).into_iter().map(|e| e.1).collect();
        assert_eq!(rest, ids[2..]);
    }

    #[test]
    fn the_tick_is_a_quarter_of_the_retention_within_bounds() {
        use std::time::Duration;
        assert_eq!(
            tick_every(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
        assert_eq!(
            tick_every(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
        assert_eq!(
            tick_every(Duration::from_secs(7 * 86400)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_handoff_queued_twice_comes_out_twice() {
        let mut q = Queue::default();
        let id = Uuid::now_v7();
        q.push(at(1), id);
        q.push(at(1), id);
        assert_eq!(q.due(at(1), usize::MAX).len(), 2);
    }
}
