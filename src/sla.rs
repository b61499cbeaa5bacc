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
//! A tick that fails (NATS unreachable) is retried every [`RETRY`], so a
//! deadline that fell due during an outage fires within that of the broker
//! answering again (its lateness lands in the page publisher's
//! `baton_escalation_lateness_seconds`); until it
//! succeeds its deadline counts in `baton_overdue_deadlines`. A fired
//! deadline stops counting (and stops being retried) as soon as the
//! handoff's state moves past it: disarmed (acknowledged, resolved) or
//! re-armed later than it.
//!
//! Memory follows the open handoffs, not the churn: changes are coalesced
//! per handoff until the timer takes them (the latest wins: each is the
//! whole next deadline of the latest state), and the heap drops its stale
//! entries once they outnumber the armed ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;

/// Deadline changes the timer has not taken yet, the latest per handoff.
type Changes = HashMap<Uuid, Option<DateTime<Utc>>, foldhash::fast::RandomState>;

/// What the handles fill and the timer drains. Not a channel: one would
/// hold a message per applied commit while the timer is busy (a replay, or
/// ticks waiting for permits after an outage); this holds one per handoff.
/// std's mutex: it is held for one map insert or one swap, never across an
/// await.
#[derive(Default)]
struct Pending {
    changes: Mutex<Changes>,
    wake: Notify,
}

/// Arms deadlines; cheap to clone.
#[derive(Clone)]
pub struct TimerHandle {
    pending: Weak<Pending>,
}

impl TimerHandle {
    /// Arms (or with `None` disarms) the handoff's next deadline.
    pub fn schedule(&self, id: Uuid, at: Option<DateTime<Utc>>) {
        // Gone only once the timer stopped at shutdown; nothing to do then.
        let Some(pending) = self.pending.upgrade() else {
            return;
        };
        pending.changes.lock().expect("not poisoned").insert(id, at);
        pending.wake.notify_one();
    }
}

/// The receiving half, handed to [`run`].
pub struct TimerQueue(Arc<Pending>);

/// A connected handle and queue.
pub fn channel() -> (TimerHandle, TimerQueue) {
    let pending = Arc::new(Pending::default());
    (
        TimerHandle {
            pending: Arc::downgrade(&pending),
        },
        TimerQueue(pending),
    )
}

type Heap = BinaryHeap<Reverse<(DateTime<Utc>, Uuid)>>;

/// Drops heap entries that no longer match what is armed (disarmed or
/// re-armed handoffs) once they are a quarter of what is armed: otherwise
/// each would stay until its deadline, days away for some. Amortized O(1)
/// per push (a walk every `armed / 4` pushes, about four looks a push), and
/// the heap stays within 1.25× what is armed, so a daemon whose handoffs
/// open and close all day holds what a fresh one holds (issue #15's
/// lifetime bench: at 2× the heap's buffer doubled past its first size).
fn drop_stale(heap: &mut Heap, armed: &HashMap<Uuid, DateTime<Utc>>) {
    if heap.len() > armed.len() + armed.len() / 4 + 1024 {
        heap.retain(|Reverse((at, id))| armed.get(id) == Some(at));
    }
}

/// Changes drained at once beyond which the drained map is dropped rather
/// than kept for the next swap: a burst (a replay, a timer starved of CPU)
/// would otherwise leave both swapped maps at its size for good.
const CHANGES_KEPT: usize = 4096;

/// The tokio instant at which the clock will read `at`.
fn instant_for(at: DateTime<Utc>, now: DateTime<Utc>) -> Instant {
    Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// How soon a failed tick is tried again. A tick during an outage waits
/// for its append's ack (`nats.request_timeout`) before it fails, so this
/// adds little load while the broker is gone and little delay once it is back.
pub const RETRY: Duration = Duration::from_millis(250);

/// Runs until shutdown. `fire(id)` executes a tick; `Ok(next)` means whatever
/// was due is stored and `next` is the handoff's next deadline in the state
/// the tick left, which the timer arms (the earlier of it and whatever is
/// armed already, so nothing scheduled meanwhile is lost; an early stale
/// wake-up only ticks and re-arms). A failed or panicked tick is retried after
/// [`RETRY`]. Nothing fires before `ready` is true (the projector has caught
/// up), so ticks never decide on half-rebuilt state.
pub async fn run<F, Fut>(
    queue: TimerQueue,
    fire: F,
    ready: watch::Receiver<bool>,
    concurrency: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) where
    F: Fn(Uuid) -> Fut,
    Fut: Future<Output = Result<Option<DateTime<Utc>>, String>> + Send + 'static,
{
    run_with_clock(queue, fire, ready, concurrency, metrics, shutdown, Utc::now).await
}

/// [`run`] reading the time from `clock`: the wall clock in the daemon (the
/// domain's deadlines and the engine's ticks read it too), a clock that
/// follows tokio's paused time in tests.
async fn run_with_clock<F, Fut>(
    queue: TimerQueue,
    fire: F,
    mut ready: watch::Receiver<bool>,
    concurrency: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    clock: impl Fn() -> DateTime<Utc>,
) where
    F: Fn(Uuid) -> Fut,
    Fut: Future<Output = Result<Option<DateTime<Utc>>, String>> + Send + 'static,
{
    let pending = queue.0;
    let mut changes = Changes::default();
    let mut heap = Heap::new();
    let mut armed: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // Deadlines fired but not yet stored: id → original deadline.
    let mut firing: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut ticks: JoinSet<Result<Option<DateTime<Utc>>, String>> = JoinSet::new();
    let mut tick_ids: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    // Arms the earlier of `at` and what is armed now.
    let arm =
        |heap: &mut Heap, armed: &mut HashMap<Uuid, DateTime<Utc>>, id: Uuid, at: DateTime<Utc>| {
            if armed.get(&id).is_none_or(|cur| at < *cur) {
                armed.insert(id, at);
                heap.push(Reverse((at, id)));
            }
        };
    let mut gauge = tokio::time::interval(Duration::from_secs(1));
    let far = Duration::from_secs(3600);

    'run: loop {
        let is_ready = *ready.borrow();
        let wake = match heap.peek() {
            Some(Reverse((at, _))) if is_ready => instant_for(*at, clock()),
            _ => Instant::now() + far,
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = pending.wake.notified() => {
                std::mem::swap(&mut changes, &mut *pending.changes.lock().expect("not poisoned"));
                let burst = changes.capacity() > CHANGES_KEPT;
                for (id, next) in changes.drain() {
                    // The handoff's state moved: a fired deadline it no longer
                    // has (disarmed, or the next one is later) is handled, by
                    // another daemon's tick or made moot by an ack or a
                    // resolve. Left in `firing` it would count as overdue
                    // forever, its retry being stale.
                    if firing.get(&id).is_some_and(|fired| next.is_none_or(|at| at > *fired)) {
                        firing.remove(&id);
                    }
                    match next {
                        Some(at) => {
                            if armed.get(&id) != Some(&at) {
                                armed.insert(id, at);
                                heap.push(Reverse((at, id)));
                            }
                        }
                        None => { armed.remove(&id); }
                    }
                }
                if burst {
                    changes = Changes::default();
                }
                drop_stale(&mut heap, &armed);
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
                    // Retried while the deadline is still outstanding; once
                    // the state moved past it (see above), nothing is due.
                    Err(e) if firing.contains_key(&id) => {
                        tracing::warn!(handoff_id = %id, error = %e, "deadline tick failed; retrying");
                        arm(&mut heap, &mut armed, id, clock() + RETRY);
                    }
                    Err(e) => {
                        tracing::debug!(handoff_id = %id, error = %e, "deadline tick failed after its deadline was handled");
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = clock();
                while let Some(Reverse((at, id))) = heap.peek().copied() {
                    if at > now { break; }
                    heap.pop();
                    if armed.get(&id) != Some(&at) { continue; }
                    armed.remove(&id);
                    firing.entry(id).or_insert(at);
                    // All permits busy (slow NATS): wait, but not past
                    // shutdown.
                    let permit = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break 'run,
                        p = permits.clone().acquire_owned() => p.expect("never closed"),
                    };
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
                let cutoff = clock() - Duration::from_secs(1);
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

#[cfg(test)]
mod tests {
    //! The timer under `tokio::time::pause()`: its clock follows tokio's
    //! paused time, so deadlines seconds away pass at once and exactly.

    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::*;

    /// A running timer whose ticks are recorded and whose outcome the test
    /// sets: `Ok(None)` by default, `Err` while `nats_down`, `Ok(next)`
    /// when `next_deadline` holds one; the next tick fired after `hold` is
    /// set blocks until that `Notify` is notified.
    struct Timer {
        handle: TimerHandle,
        ready: watch::Sender<bool>,
        fired: mpsc::UnboundedReceiver<(Uuid, DateTime<Utc>)>,
        nats_down: Arc<AtomicBool>,
        next_deadline: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
        hold: Arc<Mutex<Option<Arc<Notify>>>>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        task: JoinHandle<()>,
        t0: DateTime<Utc>,
    }

    impl Timer {
        fn start(concurrency: usize, ready: bool) -> Timer {
            let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let start = Instant::now();
            let clock = move || t0 + (Instant::now() - start);
            let (handle, queue) = channel();
            let (ready_tx, ready_rx) = watch::channel(ready);
            let (fired_tx, fired) = mpsc::unbounded_channel();
            let nats_down = Arc::new(AtomicBool::new(false));
            let next_deadline = Arc::new(Mutex::new(HashMap::new()));
            let hold: Arc<Mutex<Option<Arc<Notify>>>> = Arc::default();
            let metrics = Arc::new(Metrics::new());
            let shutdown = CancellationToken::new();
            let fire = {
                let (down, next, hold) = (nats_down.clone(), next_deadline.clone(), hold.clone());
                move |id: Uuid| {
                    fired_tx.send((id, clock())).unwrap();
                    let failed = down.load(Ordering::SeqCst);
                    let next = next.lock().unwrap().remove(&id);
                    let held = hold.lock().unwrap().take();
                    async move {
                        if let Some(release) = held {
                            release.notified().await;
                        }
                        if failed {
                            Err("NATS unreachable".to_string())
                        } else {
                            Ok(next)
                        }
                    }
                }
            };
            let task = tokio::spawn(run_with_clock(
                queue,
                fire,
                ready_rx,
                concurrency,
                metrics.clone(),
                shutdown.clone(),
                clock,
            ));
            Timer {
                handle,
                ready: ready_tx,
                fired,
                nats_down,
                next_deadline,
                hold,
                metrics,
                shutdown,
                task,
                t0,
            }
        }

        fn at(&self, secs: f64) -> DateTime<Utc> {
            self.t0 + chrono::Duration::milliseconds((secs * 1000.0) as i64)
        }

        /// The next tick the timer fires: which handoff, at what clock time.
        async fn next_fired(&mut self) -> (Uuid, DateTime<Utc>) {
            self.fired.recv().await.expect("timer running")
        }

        /// Nothing fired since the last look.
        fn none_fired(&mut self) -> bool {
            self.fired.try_recv().is_err()
        }

        /// Forgets the ticks fired so far.
        fn drain(&mut self) {
            while self.fired.try_recv().is_ok() {}
        }

        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap();
        }
    }

    /// Lets virtual time pass (the timer runs meanwhile).
    async fn pass(secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_fires_at_its_time_and_not_before() {
        let mut t = Timer::start(4, true);
        let id = Uuid::now_v7();
        t.handle.schedule(id, Some(t.at(5.0)));
        pass(4.9).await;
        assert!(t.none_fired(), "fired early");
        let (fired, at) = t.next_fired().await;
        assert_eq!((fired, at), (id, t.at(5.0)));
        t.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_disarmed_deadline_never_fires_and_a_rearmed_one_moves() {
        let mut t = Timer::start(4, true);
        let (gone, moved, sentinel) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        t.handle.schedule(gone, Some(t.at(2.0)));
        t.handle.schedule(moved, Some(t.at(3.0)));
        t.handle.schedule(sentinel, Some(t.at(8.0)));
        t.handle.schedule(gone, None);
        t.handle.schedule(moved, Some(t.at(6.0)));
        assert_eq!(t.next_fired().await, (moved, t.at(6.0)));
        assert_eq!(t.next_fired().await, (sentinel, t.at(8.0)));
        t.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_arms_the_next_deadline_it_returns() {
        let mut t = Timer::start(4, true);
        let id = Uuid::now_v7();
        t.next_deadline.lock().unwrap().insert(id, t.at(10.0));
        t.handle.schedule(id, Some(t.at(5.0)));
        assert_eq!(t.next_fired().await, (id, t.at(5.0)));
        assert_eq!(t.next_fired().await, (id, t.at(10.0)));
        t.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_tick_is_retried_every_retry_until_it_succeeds() {
        let mut t = Timer::start(4, true);
        let id = Uuid::now_v7();
        let r = RETRY.as_secs_f64();
        t.nats_down.store(true, Ordering::SeqCst);
        t.handle.schedule(id, Some(t.at(1.0)));
        assert_eq!(t.next_fired().await, (id, t.at(1.0)));
        // To 3.35 s: retried at 1.25, 1.5, … 3.25, each failing.
        pass(2.35).await;
        // Overdue by more than a second and still not stored.
        assert_eq!(t.metrics.overdue_deadlines.get(), 1);
        t.nats_down.store(false, Ordering::SeqCst);
        for k in 1..=9 {
            let at = 1.0 + f64::from(k) * r;
            assert_eq!(t.next_fired().await, (id, t.at(at)), "still failing");
        }
        assert_eq!(t.next_fired().await, (id, t.at(3.5)), "succeeds");
        pass(3.0).await;
        assert!(t.none_fired(), "stored: no more retries");
        assert_eq!(t.metrics.overdue_deadlines.get(), 0);
        t.stop().await;
    }

    /// R3: a tick failed, and the handoff was acknowledged (disarmed) before
    /// the retry. `firing` kept the deadline forever, so
    /// `baton_overdue_deadlines` stayed at 1 and the critical alert on it
    /// fired until a restart.
    #[tokio::test(start_paused = true)]
    async fn regression_a_failed_tick_then_an_ack_leaves_no_overdue_deadline() {
        let mut t = Timer::start(4, true);
        let (acked, rearmed) = (Uuid::now_v7(), Uuid::now_v7());
        t.nats_down.store(true, Ordering::SeqCst);
        t.handle.schedule(acked, Some(t.at(1.0)));
        t.handle.schedule(rearmed, Some(t.at(1.0)));
        pass(3.5).await;
        assert_eq!(t.metrics.overdue_deadlines.get(), 2, "both failing");
        // Acknowledged meanwhile (another daemon stored it): one disarmed,
        // the other's next deadline is a later one.
        t.handle.schedule(acked, None);
        t.handle.schedule(rearmed, Some(t.at(60.0)));
        t.drain();
        pass(5.0).await;
        assert!(t.none_fired(), "no retry for a deadline that was handled");
        assert_eq!(t.metrics.overdue_deadlines.get(), 0);
        t.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_fires_before_the_projector_has_caught_up() {
        let mut t = Timer::start(4, false);
        let id = Uuid::now_v7();
        t.handle.schedule(id, Some(t.at(1.0)));
        pass(5.0).await;
        assert!(t.none_fired(), "fired on half-rebuilt state");
        t.ready.send_replace(true);
        assert_eq!(t.next_fired().await, (id, t.at(5.0)));
        t.stop().await;
    }

    /// R18: with every tick permit taken (slow NATS), the timer waited for a
    /// permit without watching shutdown, and started a new tick after it.
    #[tokio::test(start_paused = true)]
    async fn regression_waiting_for_a_tick_permit_races_shutdown() {
        let mut t = Timer::start(1, true);
        let release = Arc::new(Notify::new());
        *t.hold.lock().unwrap() = Some(release.clone());
        t.handle.schedule(Uuid::now_v7(), Some(t.at(1.0)));
        t.handle.schedule(Uuid::now_v7(), Some(t.at(1.0)));
        t.next_fired().await;
        pass(1.0).await;
        assert!(t.none_fired(), "the second tick waits for the permit");
        t.shutdown.cancel();
        // The running tick finishes (shutdown lets it store its events) and
        // frees the permit; the timer must already have stopped taking work.
        release.notify_one();
        t.task.await.unwrap();
        assert!(t.fired.try_recv().is_err(), "a tick started after shutdown");
    }

    /// R10: one channel message per applied commit piled up while the timer
    /// was busy. Changes now coalesce per handoff, the latest winning.
    #[test]
    fn regression_deadline_changes_coalesce_per_handoff_instead_of_queueing() {
        let (handle, queue) = channel();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..10_000 {
            handle.schedule(a, Some(t0 + chrono::Duration::seconds(i)));
        }
        handle.schedule(b, Some(t0));
        handle.schedule(b, None);
        let changes = queue.0.changes.lock().unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[&a], Some(t0 + chrono::Duration::seconds(9_999)));
        assert_eq!(changes[&b], None);
        drop(changes);
        drop(queue);
        handle.schedule(a, None); // after the timer stopped: a no-op
    }

    /// R10: disarmed handoffs' heap entries stayed until their deadline.
    #[test]
    fn regression_stale_heap_entries_are_dropped_once_they_dominate() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut heap = Heap::new();
        let mut armed = HashMap::new();
        for i in 0..5_000 {
            let (id, at) = (Uuid::now_v7(), t0 + chrono::Duration::seconds(i));
            heap.push(Reverse((at, id)));
            if i % 100 == 0 {
                armed.insert(id, at);
            }
        }
        drop_stale(&mut heap, &armed);
        assert_eq!(heap.len(), armed.len());
        assert!(heap.iter().all(|Reverse((at, id))| armed[id] == *at));
        // Below the threshold nothing is walked.
        heap.push(Reverse((t0, Uuid::now_v7())));
        drop_stale(&mut heap, &armed);
        assert_eq!(heap.len(), armed.len() + 1);
    }

    /// Issue #15 (memory over a lifetime): handoffs opening and closing all
    /// day, a fixed number open, keep the heap within 1.25× of what is
    /// armed, so its buffer never doubles past a fresh daemon's.
    #[test]
    fn regression_churn_keeps_the_heap_near_what_is_armed() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut heap, mut armed) = (Heap::new(), HashMap::new());
        let mut open = std::collections::VecDeque::new();
        let open_at_once = 20_000;
        for i in 0..200_000 {
            let (id, at) = (Uuid::now_v7(), t0 + chrono::Duration::seconds(i));
            armed.insert(id, at);
            heap.push(Reverse((at, id)));
            open.push_back(id);
            if open.len() > open_at_once {
                armed.remove(&open.pop_front().unwrap());
            }
            drop_stale(&mut heap, &armed);
            assert!(heap.len() <= armed.len() + armed.len() / 4 + 1024 + 1);
        }
        assert!(heap.capacity() <= 2 * open_at_once.next_power_of_two());
    }
}
