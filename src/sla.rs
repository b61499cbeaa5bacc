//! The SLA timer: one task holding every handoff's next deadline.
//!
//! A binary heap ordered by deadline plus a map of the deadline currently
//! armed per handoff (heap entries that no longer match the map are stale and
//! skipped when popped). That is O(log n) per change and one sleep for the
//! whole set, so 100k open handoffs cost one task and a few MB, not 100k
//! tasks. When a deadline comes, the timer asks the engine to `Tick` that
//! handoff; `decide` turns whatever is due into events (escalation, max-hold
//! page, expiry). The deadline itself is computed by the domain from the
//! opening time and the policy, so a late wake-up never shifts later ones.
//!
//! A tick that fails (NATS unreachable) is retried every second; until it
//! succeeds its deadline counts in `baton_overdue_deadlines`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;

/// Arms deadlines; cheap to clone.
#[derive(Clone)]
pub struct TimerHandle {
    tx: mpsc::UnboundedSender<(Uuid, Option<DateTime<Utc>>)>,
}

impl TimerHandle {
    /// Arms (or with `None` disarms) the handoff's next deadline.
    pub fn schedule(&self, id: Uuid, at: Option<DateTime<Utc>>) {
        // Only fails after the timer stopped at shutdown; nothing to do then.
        let _ = self.tx.send((id, at));
    }
}

/// The receiving half, handed to [`run`].
pub struct TimerQueue(mpsc::UnboundedReceiver<(Uuid, Option<DateTime<Utc>>)>);

/// A connected handle and queue.
pub fn channel() -> (TimerHandle, TimerQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (TimerHandle { tx }, TimerQueue(rx))
}

fn instant_for(at: DateTime<Utc>) -> Instant {
    let now = Utc::now();
    Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO)
}

const RETRY: Duration = Duration::from_secs(1);

/// Runs until shutdown. `fire(id)` executes a tick; `Ok(next)` means whatever
/// was due is stored and `next` is the handoff's next deadline in the state
/// the tick left, which the timer arms (the earlier of it and whatever is
/// armed already, so nothing scheduled meanwhile is lost; an early stale
/// wake-up only ticks and re-arms). A failed or panicked tick is retried in a
/// second. Nothing fires before `ready` is true (the projector has caught
/// up), so ticks never decide on half-rebuilt state.
pub async fn run<F, Fut>(
    queue: TimerQueue,
    fire: F,
    mut ready: watch::Receiver<bool>,
    concurrency: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) where
    F: Fn(Uuid) -> Fut,
    Fut: Future<Output = Result<Option<DateTime<Utc>>, String>> + Send + 'static,
{
    let mut rx = queue.0;
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, Uuid)>> = BinaryHeap::new();
    let mut armed: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // Deadlines fired but not yet stored: id → original deadline.
    let mut firing: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut ticks: JoinSet<Result<Option<DateTime<Utc>>, String>> = JoinSet::new();
    let mut tick_ids: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    // Arms the earlier of `at` and what is armed now.
    let arm = |heap: &mut BinaryHeap<Reverse<(DateTime<Utc>, Uuid)>>,
               armed: &mut HashMap<Uuid, DateTime<Utc>>,
               id: Uuid,
               at: DateTime<Utc>| {
        if armed.get(&id).is_none_or(|cur| at < *cur) {
            armed.insert(id, at);
            heap.push(Reverse((at, id)));
        }
    };
    let mut gauge = tokio::time::interval(Duration::from_secs(1));
    let far = Duration::from_secs(3600);

    loop {
        let is_ready = *ready.borrow();
        let wake = match heap.peek() {
            Some(Reverse((at, _))) if is_ready => instant_for(*at),
            _ => Instant::now() + far,
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some((id, Some(at))) => {
                    if armed.get(&id) != Some(&at) {
                        armed.insert(id, at);
                        heap.push(Reverse((at, id)));
                    }
                }
                Some((id, None)) => { armed.remove(&id); }
                None => break,
            },
            Some(done) = ticks.join_next_with_id() => {
                let (task, result) = match done {
                    Ok((task, r)) => (task, r),
                    Err(e) => (e.id(), Err(format!("tick panicked: {e}"))),
                };
                let Some(id) = tick_ids.remove(&task) else { continue };
                match result {
                    Ok(next) => {
                        firing.remove(&id);
                        if let Some(at) = next {
                            arm(&mut heap, &mut armed, id, at);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(handoff_id = %id, error = %e, "deadline tick failed; retrying");
                        arm(&mut heap, &mut armed, id, Utc::now() + RETRY);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Utc::now();
                while let Some(Reverse((at, id))) = heap.peek().copied() {
                    if at > now { break; }
                    heap.pop();
                    if armed.get(&id) != Some(&at) { continue; }
                    armed.remove(&id);
                    firing.entry(id).or_insert(at);
                    let permit = permits.clone().acquire_owned().await.expect("never closed");
                    let fut = fire(id);
                    let handle = ticks.spawn(async move {
                        let r = fut.await;
                        drop(permit);
                        r
                    });
                    tick_ids.insert(handle.id(), id);
                }
            }
            // Once ready, stop watching (a dropped sender would wake us forever).
            _ = ready.changed(), if !is_ready => {}
            _ = gauge.tick() => {
                let cutoff = Utc::now() - Duration::from_secs(1);
                // The heap is walked only when its earliest entry is overdue
                // (the timer is behind or not ready): a healthy daemon with
                // 1M deadlines pays one peek a second, not a 3 ms walk.
                let behind = heap.peek().is_some_and(|Reverse((at, _))| *at < cutoff);
                let overdue = firing.values().filter(|d| **d < cutoff).count()
                    + if behind {
                        heap.iter()
                            .filter(|Reverse((at, id))| *at < cutoff && armed.get(id) == Some(at))
                            .count()
                    } else {
                        0
                    };
                metrics.overdue_deadlines.set(overdue as i64);
            }
        }
    }
    // Let ticks already running store their events.
    while ticks.join_next().await.is_some() {}
}
