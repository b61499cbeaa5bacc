//! The attempt loop: exponential backoff with jitter (`backon`'s schedule),
//! never shorter than a `Retry-After` the remote asked for, until the retry
//! deadline; and a simple per-destination rate limit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use super::channels::Attempt;

/// When to try again and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    initial: Duration,
    max: Duration,
    deadline: Duration,
}

impl Schedule {
    pub fn new(initial: Duration, max: Duration, deadline: Duration) -> Self {
        Self {
            initial,
            max,
            deadline,
        }
    }

    /// Runs `attempt` until it is delivered or permanently refused, or the
    /// next wait would end past the deadline (then the last retryable
    /// reason becomes `retries_exhausted: <reason>`). Returns the outcome
    /// and how many attempts were made.
    pub async fn run<F, Fut>(&self, mut attempt: F) -> (Attempt, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let until = Instant::now() + self.deadline;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build();
        let mut n = 0u32;
        loop {
            n += 1;
            match attempt().await {
                Attempt::Retry { reason, after } => {
                    let wait = backoff
                        .next()
                        .unwrap_or(self.max)
                        .max(after.unwrap_or_default());
                    if Instant::now() + wait > until {
                        return (
                            Attempt::Permanent {
                                reason: format!("retries_exhausted: {reason}"),
                            },
                            n,
                        );
                    }
                    tracing::debug!(attempt = n, %reason, ?wait, "delivery attempt failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                done => return (done, n),
            }
        }
    }
}

/// At most one request per `interval` to one destination: a webhook's
/// URL or the SMTP relay. Waiters are given slots in the order they ask.
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `key`'s next slot; returns at once when the slot is now
    /// (a sleep, even a zero one, would wait for the timer's next tick).
    pub async fn wait(&self, key: &str) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            // A std mutex: held for a map lookup only, never across an await.
            let mut next = self.next.lock().expect("not poisoned");
            let now = Instant::now();
            // Forget destinations idle for a while so the map stays small.
            if next.len() > 10_000 {
                next.retain(|_, t| *t > now);
            }
            let slot = next.get(key).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(key.to_string(), slot + self.interval);
            slot
        };
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_until_delivered_then_stops() {
        let s = Schedule::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        let mut calls = 0;
        let (a, n) = s
            .run(|| {
                calls += 1;
                let c = calls;
                async move {
                    if c < 3 {
                        Attempt::Retry {
                            reason: "http_500".into(),
                            after: None,
                        }
                    } else {
                        Attempt::Delivered
                    }
                }
            })
            .await;
        assert_eq!((a, n), (Attempt::Delivered, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_the_deadline_ends_it() {
        let s = Schedule::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        let start = Instant::now();
        let (a, n) = s
            .run(|| async {
                Attempt::Retry {
                    reason: "http_429".into(),
                    after: Some(Duration::from_secs(2)),
                }
            })
            .await;
        // Attempts at 0 s, 2 s, 4 s; the next would wait past 5 s.
        assert_eq!(n, 3);
        assert_eq!(
            a,
            Attempt::Permanent {
                reason: "retries_exhausted: http_429".into()
            }
        );
        assert!(start.elapsed() >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_refusal_is_not_retried() {
        let s = Schedule::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        let (a, n) = s
            .run(|| async {
                Attempt::Permanent {
                    reason: "http_400".into(),
                }
            })
            .await;
        assert_eq!(n, 1);
        assert!(matches!(a, Attempt::Permanent { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn one_destination_is_spaced_others_are_not() {
        let l = RateLimiter::new(Duration::from_millis(100));
        let start = Instant::now();
        l.wait("a").await;
        l.wait("b").await;
        assert!(start.elapsed() < Duration::from_millis(1));
        l.wait("a").await;
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
