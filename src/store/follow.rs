//! A stream followed in order that resumes quickly after a broker loss: the
//! projector, the on-call follower, the credentials follower and the
//! heartbeat reader read through [`Follow`].
//!
//! An async-nats ordered consumer recreates itself on gaps and missed
//! heartbeats, but after a long outage it waits between attempts up to
//! 10 s, so a daemon whose broker is back still misses other daemons'
//! writes for seconds. And before it has delivered a message it recreates
//! from the stream's start (it only knows sequences it has seen), which
//! would hand a reader that began at a later sequence everything again.
//!
//! `Follow` keeps its own position (the last stream sequence it handed
//! out) and rebuilds the ordered consumer from the next one when the
//! store's health ([`super::StoreHealth`]) comes back up, when the
//! consumer errors, and when it ends; rebuilds retry with capped backoff
//! ([`super::backoff`]). A message at or before the position
//! is dropped, so nothing is handed out twice, and a rebuild starts right
//! after the position, so nothing is skipped: in order, exactly once.
//!
//! A watchdog covers a consumer that goes quiet while healthy. Seen in the
//! replay benchmark about once in twenty million-event reads on 2.15.1:
//! the server had delivered every message it was asked for and held no
//! pull request (`num_waiting` 0), while async-nats counted one more
//! request outstanding and so sent none until that request's 30 s expiry.
//! When nothing has arrived for [`IDLE_BEFORE_CHECK`] ticks, `Follow`
//! asks the server for the stream's last sequence and message count (every
//! follower's filter covers its whole stream); if the stream holds messages
//! after the position at two checks a tick apart with none handed out in
//! between, the consumer is stalled and is rebuilt after the position:
//! about 4 s after the last message, or up to [`CHECK_EVERY_IDLE`] ticks
//! more when the stall began during a quiet spell. A purged stream (no
//! messages) is not a stall, and a second stall at the same position is not
//! rebuilt for again (the stream's newest message was deleted, say) until
//! the position moves. A quiet stream costs one stream-info request per
//! [`CHECK_EVERY_IDLE`] ticks. Ticks count only while `next` waits, so a
//! caller busy elsewhere never trips it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::Ordered, consumer::DeliverPolicy, stream};
use backon::ExponentialBackoff;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::{schedule, REBUILD_MAX};
use super::{StoreError, StoreHealth};

/// How often the watchdog looks at a follower's progress.
const TICK: Duration = Duration::from_secs(1);
/// Ticks without a message before the watchdog asks the server whether the
/// stream holds more (so a stall is repaired within about four seconds).
const IDLE_BEFORE_CHECK: u32 = 2;
/// Ticks between two checks of a stream that has simply gone quiet.
const CHECK_EVERY_IDLE: u32 = 10;

/// The messages of one stream (under one filter) after a position, in
/// stream order, each once, for as long as the caller reads.
pub struct Follow {
    stream: stream::Stream,
    filter: String,
    /// What the logs call this reader.
    name: &'static str,
    /// The last stream sequence handed out (0: none yet).
    position: u64,
    /// The server's pending count with that message.
    pending: u64,
    /// An error [`Follow::next_ready`] met, for the next [`Follow::next`]
    /// to hand out.
    reported: Option<StoreError>,
    messages: Option<Ordered>,
    /// A rebuild under way, kept here so dropping [`Follow::next`] in a
    /// `select!` neither loses nor repeats it.
    building: Option<BoxFuture<'static, Result<Ordered, StoreError>>>,
    backoff: ExponentialBackoff,
    /// Whether `backoff` has handed out a wait since it was last reset, so
    /// the hot path (every message) rebuilds it only after a retry.
    backoff_used: bool,
    /// No rebuild before this (kept, not slept, for the same reason).
    not_before: Instant,
    health: Option<watch::Receiver<bool>>,
    /// The stall watchdog (see the module's docs).
    watchdog: Watchdog,
}

/// What the stall watchdog keeps between ticks.
struct Watchdog {
    tick: tokio::time::Interval,
    /// The position at the last tick.
    position: u64,
    /// Ticks since the position last moved.
    idle: u32,
    /// Whether the last check found messages after the position (cleared
    /// when the position moves).
    suspect: bool,
    /// The position a stall was last repaired at: a second stall there is
    /// not the consumer's (the stream's newest message was deleted, say),
    /// so it is not rebuilt again until the position moves.
    repaired_at: Option<u64>,
    /// A check under way: the stream's last sequence and message count.
    checking: Option<BoxFuture<'static, Result<StreamEnd, StoreError>>>,
}

/// What a check learns of the stream.
#[derive(Debug, Clone, Copy)]
struct StreamEnd {
    /// The stream's last sequence.
    last: u64,
    /// The messages it holds (0 after a purge, whatever `last` says).
    messages: u64,
}

impl Watchdog {
    fn new() -> Self {
        let mut tick = tokio::time::interval_at(Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog {
            tick,
            position: 0,
            idle: 0,
            suspect: false,
            repaired_at: None,
            checking: None,
        }
    }

    /// After a rebuild: the new consumer starts with a clean slate (a
    /// suspicion about the old one says nothing about it).
    fn reset(&mut self) {
        (self.idle, self.suspect, self.checking) = (0, false, None);
        self.tick.reset();
    }

    /// On a tick: whether to ask the server for the stream's last sequence.
    fn tick(&mut self, position: u64) -> bool {
        if position != self.position {
            (self.position, self.idle, self.suspect) = (position, 0, false);
            return false;
        }
        self.idle = self.idle.saturating_add(1);
        self.checking.is_none()
            && (self.suspect
                || self.idle == IDLE_BEFORE_CHECK
                || (self.idle > IDLE_BEFORE_CHECK && self.idle.is_multiple_of(CHECK_EVERY_IDLE)))
    }

    /// On a check's answer: whether the consumer is stalled (the stream
    /// held messages after `position` at this check and the one before,
    /// with none handed out between them, and no stall was repaired at
    /// this position already).
    fn checked(&mut self, position: u64, end: StreamEnd) -> bool {
        if position != self.position || end.last <= position || end.messages == 0 {
            self.suspect = false;
            return false;
        }
        if !std::mem::replace(&mut self.suspect, true) {
            return false;
        }
        self.suspect = false;
        if self.repaired_at == Some(position) {
            return false;
        }
        self.repaired_at = Some(position);
        true
    }
}

impl Follow {
    /// Follows `stream` (messages on `filter`; empty: all) after stream
    /// sequence `after`. `filter` covers all of the stream's subjects (the
    /// stall watchdog compares the position with the stream's last
    /// sequence). Nothing is read until [`Follow::next`]; a consumer
    /// that cannot be made is retried there. See [`Follow::open`] to fail
    /// fast instead.
    pub fn new(stream: stream::Stream, filter: String, after: u64, name: &'static str) -> Self {
        Follow {
            stream,
            filter,
            name,
            position: after,
            pending: 0,
            reported: None,
            messages: None,
            building: None,
            backoff: schedule(),
            backoff_used: false,
            not_before: Instant::now(),
            health: None,
            watchdog: Watchdog::new(),
        }
    }

    /// [`Follow::new`] with its consumer made now: fails if that first
    /// attempt does, so a daemon that cannot read its stream says so.
    pub async fn open(
        stream: stream::Stream,
        filter: String,
        after: u64,
        name: &'static str,
    ) -> Result<Self, StoreError> {
        let mut f = Self::new(stream, filter, after, name);
        f.messages = Some(f.build().await?);
        Ok(f)
    }

    /// Rebuilds the consumer whenever `health` comes back up: the store
    /// answers again, so a consumer lost with the broker is replaced at
    /// once instead of at async-nats's next recreate attempt.
    pub fn with_health(mut self, health: &StoreHealth) -> Self {
        let mut rx = health.subscribe();
        rx.borrow_and_update();
        self.health = Some(rx);
        self
    }

    /// The last stream sequence handed out (`after` until one is).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Where a consumer made now starts: right after the position.
    fn after_position(&self) -> DeliverPolicy {
        match self.position {
            0 => DeliverPolicy::All,
            n => DeliverPolicy::ByStartSequence {
                start_sequence: n + 1,
            },
        }
    }

    fn build(&self) -> BoxFuture<'static, Result<Ordered, StoreError>> {
        let (stream, filter) = (self.stream.clone(), self.filter.clone());
        let deliver_policy = self.after_position();
        Box::pin(async move { super::ordered_messages(&stream, deliver_policy, filter).await })
    }

    /// The next wait of the rebuild schedule.
    fn next_wait(&mut self) -> Duration {
        self.backoff_used = true;
        self.backoff.next().unwrap_or(REBUILD_MAX)
    }

    /// Starts the rebuild schedule again, if a wait was taken from it: a
    /// no-op per message in the common case.
    fn reset_backoff(&mut self) {
        if std::mem::take(&mut self.backoff_used) {
            self.backoff = schedule();
        }
    }

    /// Drops the consumer; the next read rebuilds it after `wait`.
    fn rebuild_after(&mut self, wait: Duration) {
        self.messages = None;
        self.building = None;
        self.watchdog.reset();
        self.not_before = Instant::now() + wait;
    }

    /// For tests of the stall watchdog: swaps the consumer for a real,
    /// healthy one that delivers nothing (it filters on a subject no one
    /// publishes to), as a stalled consumer looks from here.
    #[doc(hidden)]
    pub async fn wedge_for_test(&mut self, never: &str) -> Result<(), StoreError> {
        let deliver_policy = self.after_position();
        self.messages =
            Some(super::ordered_messages(&self.stream, deliver_policy, never.to_owned()).await?);
        Ok(())
    }

    /// The stream's last sequence and message count, asked of the server.
    fn stream_end(&self) -> BoxFuture<'static, Result<StreamEnd, StoreError>> {
        let stream = self.stream.clone();
        Box::pin(async move {
            stream
                .get_info()
                .await
                .map(|i| StreamEnd {
                    last: i.state.last_sequence,
                    messages: i.state.messages,
                })
                .map_err(|e| StoreError::nats("stream info", e))
        })
    }

    /// The next message after the position; waits (rebuilding the consumer
    /// as needed) until there is one. Never `None`: an `Option` so it reads
    /// like a stream's `next`. An error is the consumer's, told so the
    /// caller can log it; the consumer is being rebuilt and the next call
    /// resumes after the position. Cancel-safe: call it in a `select!`.
    pub async fn next(&mut self) -> Option<Result<jetstream::Message, StoreError>> {
        if let Some(e) = self.reported.take() {
            return Some(Err(e));
        }
        loop {
            if self.messages.is_none() {
                if self.building.is_none() {
                    tokio::time::sleep_until(self.not_before).await;
                    self.building = Some(self.build());
                }
                let built = self.building.as_mut().expect("set above").await;
                self.building = None;
                match built {
                    Ok(m) => {
                        tracing::info!(
                            reader = self.name,
                            after = self.position,
                            "ordered consumer rebuilt; resuming"
                        );
                        self.messages = Some(m);
                    }
                    Err(e) => {
                        let wait = self.next_wait();
                        tracing::warn!(reader = self.name, error = %e, ?wait, "ordered consumer cannot be rebuilt yet; retrying");
                        self.not_before = Instant::now() + wait;
                    }
                }
                continue;
            }
            let messages = self.messages.as_mut().expect("checked above");
            let (watchdog, health) = (&mut self.watchdog, &mut self.health);
            let watching = health.is_some();
            // Biased: a ready message wins before the watchdog's timer or
            // check is even polled, so the hot path pays nothing for them.
            let got = tokio::select! {
                biased;
                changed = async {
                    let h = health.as_mut().expect("guarded");
                    h.changed().await.map(|()| *h.borrow_and_update())
                }, if watching => match changed {
                    Ok(up) => Got::Health(up),
                    Err(_) => Got::HealthGone,
                },
                m = messages.next() => Got::Message(m),
                _ = watchdog.tick.tick(), if watchdog.checking.is_none() => Got::Tick,
                last = async { watchdog.checking.as_mut().expect("guarded").await },
                    if watchdog.checking.is_some() => Got::Checked(last),
            };
            match got {
                Got::Tick => {
                    let up = self.health.as_ref().is_none_or(|h| *h.borrow());
                    if self.watchdog.tick(self.position) && up {
                        self.watchdog.checking = Some(self.stream_end());
                    }
                }
                Got::Checked(last) => {
                    self.watchdog.checking = None;
                    match last {
                        Ok(end) if self.watchdog.checked(self.position, end) => {
                            tracing::warn!(
                                reader = self.name,
                                after = self.position,
                                stream_last = end.last,
                                "ordered consumer stalled: the stream holds messages after the position but none arrived; rebuilding it"
                            );
                            self.rebuild_after(Duration::ZERO);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(reader = self.name, error = %e, "stall check failed")
                        }
                    }
                }
                Got::Health(true) => {
                    tracing::info!(
                        reader = self.name,
                        after = self.position,
                        "store is back: rebuilding the ordered consumer"
                    );
                    self.reset_backoff();
                    self.rebuild_after(Duration::ZERO);
                }
                Got::Health(false) => {}
                Got::HealthGone => self.health = None,
                Got::Message(item) => {
                    if let Some(out) = self.take(item) {
                        return Some(out);
                    }
                }
            }
        }
    }

    /// The next message if one has already arrived, without waiting: what
    /// a reader draining a backlog calls between two [`Follow::next`]s.
    /// `None` when nothing is ready or the consumer needs `next` (to be
    /// rebuilt, or to report an error it met here): after a `None`, call
    /// `next`, whose waker is the one registered for what comes next.
    /// Polls the consumer directly, so catching up builds no future per
    /// message (tokio's per-task budget still ends a drain at ~128).
    pub fn next_ready(&mut self) -> Option<jetstream::Message> {
        if self.reported.is_some()
            || self
                .health
                .as_ref()
                .is_some_and(|h| h.has_changed().unwrap_or(true))
        {
            return None;
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            let item = match self.messages.as_mut()?.poll_next_unpin(&mut cx) {
                std::task::Poll::Ready(item) => item,
                std::task::Poll::Pending => return None,
            };
            match self.take(item) {
                None => {}
                Some(Ok(m)) => return Some(m),
                Some(Err(e)) => {
                    // Told by the next `next`, as if it had met it.
                    self.reported = Some(e);
                    return None;
                }
            }
        }
    }

    /// The stream's messages pending after the last one handed out, as the
    /// server counted when it sent that one (0 before any).
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// What the consumer yielded, handled: a message after the position is
    /// handed out (and moves it); one at or before it, or without metadata,
    /// is dropped (`None`); an error or the consumer's end schedules a
    /// rebuild, and an error is handed out to be logged.
    fn take(
        &mut self,
        item: Option<Result<jetstream::Message, jetstream::consumer::pull::OrderedError>>,
    ) -> Option<Result<jetstream::Message, StoreError>> {
        match item {
            Some(Ok(m)) => {
                let (seq, pending) = match m.info() {
                    Ok(info) => (info.stream_sequence, info.pending),
                    Err(e) => {
                        tracing::error!(reader = self.name, error = %e, "message without JetStream metadata skipped");
                        return None;
                    }
                };
                if seq <= self.position {
                    tracing::debug!(
                        reader = self.name,
                        seq,
                        position = self.position,
                        "already handed out; dropped"
                    );
                    return None;
                }
                (self.position, self.pending) = (seq, pending);
                self.reset_backoff();
                Some(Ok(m))
            }
            Some(Err(e)) => {
                let wait = self.next_wait();
                self.rebuild_after(wait);
                Some(Err(StoreError::nats(
                    "ordered consumer",
                    format!("{}: {e}", self.name),
                )))
            }
            None => {
                let wait = self.next_wait();
                tracing::warn!(
                    reader = self.name,
                    ?wait,
                    "ordered consumer ended; rebuilding it"
                );
                self.rebuild_after(wait);
                None
            }
        }
    }
}

/// What one wait in [`Follow::next`] brought. A stack temporary, matched at
/// once: boxing the message would cost an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
enum Got {
    Message(Option<Result<jetstream::Message, jetstream::consumer::pull::OrderedError>>),
    Health(bool),
    HealthGone,
    /// The watchdog's timer.
    Tick,
    /// The watchdog's check: the stream's end.
    Checked(Result<StreamEnd, StoreError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given a follower at `position`, when `ticks` pass without a message:
    /// the ticks on which the watchdog asks the server.
    fn checks(w: &mut Watchdog, position: u64, ticks: u32) -> Vec<u32> {
        (1..=ticks).filter(|_| w.tick(position)).collect()
    }

    /// A stream whose last sequence is `last`, none deleted.
    fn end(last: u64) -> StreamEnd {
        StreamEnd {
            last,
            messages: last,
        }
    }

    /// A watchdog that has seen `position` and found the stream beyond it
    /// once: the next check decides.
    async fn suspecting(position: u64) -> Watchdog {
        let mut w = Watchdog::new();
        w.tick(position);
        assert_eq!(checks(&mut w, position, 2), [2]);
        assert!(
            !w.checked(position, end(9)),
            "once may be messages in flight"
        );
        assert!(
            w.tick(position),
            "a suspect is checked again on the next tick"
        );
        w
    }

    #[tokio::test]
    async fn a_quiet_stream_is_checked_after_two_idle_ticks_then_every_ten() {
        let mut w = Watchdog::new();
        assert_eq!(
            checks(&mut w, 5, 1),
            Vec::<u32>::new(),
            "the position moved"
        );
        assert_eq!(checks(&mut w, 5, 30), [2, 10, 20, 30]);
        assert!(
            !w.checked(5, end(5)),
            "nothing after the position: quiet, not stalled"
        );
        assert!(!w.tick(6), "a message arrived: idle again from zero");
        assert_eq!(checks(&mut w, 6, 2), [2]);
    }

    #[tokio::test]
    async fn messages_after_the_position_at_two_checks_in_a_row_are_a_stall() {
        let mut w = suspecting(5).await;
        assert!(
            w.checked(5, end(9)),
            "still not delivered a tick later: stalled"
        );
        // The position moving between the two checks clears the suspicion.
        let mut w = suspecting(5).await;
        assert!(!w.tick(7), "messages arrived");
        assert!(!w.checked(7, end(9)), "a first check again, not a stall");
    }

    #[tokio::test]
    async fn a_purged_stream_or_a_second_stall_at_one_position_is_not_rebuilt_for() {
        let mut w = suspecting(5).await;
        let purged = StreamEnd {
            last: 9,
            messages: 0,
        };
        assert!(!w.checked(5, purged), "nothing left to deliver");
        // Repaired once at 5; the new consumer delivers nothing either (the
        // newest message was deleted): not rebuilt again until it moves.
        let mut w = suspecting(5).await;
        assert!(w.checked(5, end(9)));
        w.reset();
        assert_eq!(checks(&mut w, 5, 3), [2]);
        assert!(!w.checked(5, end(9)) && !w.checked(5, end(9)));
        assert!(!w.tick(10));
        checks(&mut w, 10, 3);
        assert!(!w.checked(10, end(12)));
        assert!(w.checked(10, end(12)), "a stall at a new position is");
    }

    #[tokio::test]
    async fn a_rebuild_clears_the_suspicion_about_the_old_consumer() {
        let mut w = suspecting(5).await;
        w.reset();
        assert_eq!(checks(&mut w, 5, 2), [2], "two idle ticks again first");
        assert!(!w.checked(5, end(9)), "the new consumer's first check");
    }
}
