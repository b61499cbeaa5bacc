//! Whether Baton can write to JetStream now: the state behind `/readyz`'s
//! store check and `baton_store_up`.
//!
//! [`StoreHealth`] goes down at once when the connection drops, or after
//! [`FAILURES_TO_DOWN`] JetStream calls in a row fail (so one slow request
//! does not flap it), and up again on the first call that succeeds: an
//! append, or the probe [`run`] sends (every [`PROBE_UP`] while up, every
//! [`PROBE_DOWN`] while down, so readiness comes back within a fraction of
//! a second of the broker answering even when nothing else writes).
//! Each transition is logged once and handed to the caller's observer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Failed JetStream calls in a row that mark the store down.
pub const FAILURES_TO_DOWN: u32 = 2;
/// How often the probe runs while the store is up.
pub const PROBE_UP: Duration = Duration::from_secs(1);
/// How often the probe runs while the store is down.
pub const PROBE_DOWN: Duration = Duration::from_millis(100);
/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Up or down, shared by everything that talks to JetStream.
#[derive(Debug)]
pub struct StoreHealth {
    up: watch::Sender<bool>,
    failures: AtomicU32,
}

impl StoreHealth {
    /// Starts up: a daemon is built on a connection that just worked.
    pub fn new() -> Arc<Self> {
        Arc::new(StoreHealth {
            up: watch::Sender::new(true),
            failures: AtomicU32::new(0),
        })
    }

    /// Whether the last word on the store was good.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Follows up/down transitions.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// A JetStream call succeeded (a conflict counts: the server answered).
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.set(true, "a JetStream call succeeded");
    }

    /// A JetStream call failed; the store is down once enough fail in a row.
    pub fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_TO_DOWN {
            self.set(false, "JetStream calls are failing");
        }
    }

    /// The connection dropped: down at once.
    pub fn disconnected(&self) {
        self.set(false, "disconnected from NATS");
    }

    fn set(&self, up: bool, why: &'static str) {
        let changed = self.up.send_if_modified(|cur| {
            let changed = *cur != up;
            *cur = up;
            changed
        });
        if changed && up {
            tracing::info!(why, "store is up: Baton can write again");
        } else if changed {
            tracing::warn!(why, "store is down: Baton cannot write; not ready");
        }
    }
}

/// Probes `stream` (a JetStream API call its leader answers) until
/// shutdown, and tells `observe` every state, the current one first.
pub async fn run(
    health: Arc<StoreHealth>,
    js: jetstream::Context,
    stream: String,
    observe: impl Fn(bool),
    shutdown: CancellationToken,
) {
    let mut states = health.subscribe();
    observe(*states.borrow_and_update());
    loop {
        let every = if health.is_up() { PROBE_UP } else { PROBE_DOWN };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = states.changed() => {
                if r.is_err() { return; }
                observe(*states.borrow_and_update());
            }
            _ = tokio::time::sleep(every) => {
                match tokio::time::timeout(PROBE_TIMEOUT, js.get_stream(&stream)).await {
                    Ok(Ok(_)) => health.succeeded(),
                    _ => health.failed(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failure_does_not_flap_a_disconnect_does_and_a_success_heals() {
        let h = StoreHealth::new();
        assert!(h.is_up());
        h.failed();
        assert!(h.is_up(), "one slow request is not an outage");
        h.succeeded();
        h.failed();
        assert!(h.is_up(), "the count restarts after a success");
        h.failed();
        assert!(!h.is_up(), "two in a row: down");
        h.succeeded();
        assert!(h.is_up());
        h.disconnected();
        assert!(!h.is_up(), "a dropped connection: down at once");
        h.succeeded();
        assert!(h.is_up());
    }
}
