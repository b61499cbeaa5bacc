//! The one wait schedule between attempts to rebuild a consumer after a
//! broker loss, shared by [`super::Follow`] and [`super::Durable`]: capped
//! exponential backoff from [`REBUILD_MIN`] to [`REBUILD_MAX`], with jitter
//! (so daemons that lost the same broker do not retry in step) and no limit
//! on attempts (a reader never gives up on its stream).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The first wait between two rebuild attempts.
pub(crate) const REBUILD_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two rebuild attempts (also the wait should the
/// schedule ever run out, which it does not: it has no max times).
pub(crate) const REBUILD_MAX: Duration = Duration::from_millis(500);

/// A fresh schedule, starting again at [`REBUILD_MIN`].
pub(crate) fn schedule() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(REBUILD_MIN)
        .with_max_delay(REBUILD_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}
