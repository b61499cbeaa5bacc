//! The per-routing-key event budget: a token bucket holding a minute's
//! worth of events, refilled continuously. Time comes in as an argument so
//! the rule is tested without sleeping. Hand-written rather than a crate
//! (`governor`): one bucket per configured key, a few lines, no new
//! dependency tree.

use std::time::Instant;

/// One key's bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// A full bucket.
    pub const fn new() -> Self {
        Self {
            tokens: f64::NAN,
            last: None,
        }
    }

    /// Takes one event's token at `now` under `per_minute` (0 = no limit);
    /// false when the budget is spent.
    pub fn take(&mut self, now: Instant, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let cap = f64::from(per_minute);
        let tokens = match self.last {
            None => cap,
            Some(last) => {
                let refill = now.saturating_duration_since(last).as_secs_f64() * cap / 60.0;
                (self.tokens + refill).min(cap)
            }
        };
        self.last = Some(now);
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            true
        } else {
            self.tokens = tokens;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_minutes_budget_then_refill_at_the_configured_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new();
        for _ in 0..3 {
            assert!(b.take(t0, 3));
        }
        assert!(!b.take(t0, 3));
        assert!(!b.take(t0 + Duration::from_secs(19), 3));
        assert!(b.take(t0 + Duration::from_secs(21), 3), "one per 20 s");
        assert!(!b.take(t0 + Duration::from_secs(22), 3));
        assert!(Bucket::new().take(t0, 0));
    }
}
