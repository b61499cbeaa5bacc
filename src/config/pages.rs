//! `[pages]`: the page publisher and how long `BATON_PAGES` keeps pages.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::yes;

/// `[pages]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagesConfig {
    /// Run the page publisher in this process. Turn off to run it elsewhere;
    /// events still wait in the durable consumer, so nothing is lost.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long `BATON_PAGES` remembers page ids to drop duplicates. A page
    /// re-published after a crash inside this window is dropped by the server.
    #[serde(default = "default_dup_window", with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long pages are kept.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub max_age: Duration,
}

const fn default_dup_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
const fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            duplicate_window: default_dup_window(),
            max_age: default_retention(),
        }
    }
}
