//! The three ways a page reaches someone, each split into a pure message
//! builder (tested against golden files, no I/O) and a thin sender that
//! answers one [`Attempt`]:
//!
//! - [`webhook`] — an HTTP POST of the page JSON, signed on request.
//! - [`slack`] — an incoming-webhook message (text fallback and blocks).
//! - [`email`] — an SMTP message (text and HTML parts) through a relay.
//!
//! The classification of answers is here too: what is delivered, what is
//! retried (and when), what is given up at once.

pub mod email;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use crate::pages::Page;

/// What one attempt on one contact method came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The remote end took it (a 2xx, or the relay queued the mail).
    Delivered,
    /// Worth trying again: 408, 429, 5xx, a timeout, a connection error,
    /// a transient SMTP answer. `after`: the `Retry-After` the remote asked for.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will never work as it is (other 4xx, Slack's `channel_not_found`,
    /// a permanent SMTP answer, a malformed address).
    Permanent { reason: String },
}

/// What every message says beyond the page itself: who it is for, the key
/// that makes a retry recognisable, who else was paged, and the links.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The idempotency key: `<page msg-id>:<contact index>`, the same on
    /// every attempt, in every daemon and after a crash.
    pub key: String,
    /// The page's `Nats-Msg-Id` (`<event id>:<route>`).
    pub page_id: String,
    /// The person it is sent to, if it names one.
    pub person: Option<String>,
    /// Their Slack member id, to mention them.
    pub slack_member: Option<String>,
    /// The other routes the same event paged (`route (target)`).
    pub also_paged: Vec<String>,
    /// One-click links, when `[delivery] public_url` and keys are set.
    pub links: Option<Links>,
}

/// One-click links for one person, in the order they are shown (the
/// first is the main one): acknowledge and resolve on an incident's page,
/// accept and complete on a team handoff's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links(pub Vec<Link>);

/// One action's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub action: super::links::Action,
    pub url: String,
}

/// An HTTP answer's classification, shared by webhooks and Slack.
pub fn classify_http(status: u16, retry_after: Option<Duration>) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Retry {
            reason: format!("http_{status}"),
            after: retry_after,
        },
        _ => Attempt::Permanent {
            reason: format!("http_{status}"),
        },
    }
}

/// A transport error's classification: timeouts and connection errors
/// are retried, a request that could not even be built is not.
pub fn classify_request_error(e: &reqwest::Error) -> Attempt {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_builder() {
        return Attempt::Permanent {
            reason: "bad_url".into(),
        };
    } else {
        "connection"
    };
    Attempt::Retry {
        reason: reason.into(),
        after: None,
    }
}

/// `Retry-After`, in seconds (the form Slack and most APIs send). An HTTP
/// date is read too; anything else is ignored (the backoff decides).
pub fn retry_after(value: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (at.to_utc() - now).to_std().ok()
}

/// `[P1] payments: ledger API timed out`: sorts by severity in a mail
/// client and reads the same in Slack's notification.
pub fn headline(page: &Page) -> String {
    let what = page
        .packet
        .error_summary
        .as_deref()
        .or(page.packet.objective.as_deref())
        .unwrap_or("needs attention");
    format!("[{}] {}: {}", page.severity.as_str(), page.team, what)
}

/// "page", "escalation (level 2, step 3)", … for the message's first line.
pub fn kind_words(page: &Page) -> String {
    match page.kind.as_str() {
        "escalation" => format!("escalation (level {}, step {})", page.level, page.step),
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_issue_says() {
        assert_eq!(classify_http(200, None), Attempt::Delivered);
        assert_eq!(classify_http(204, None), Attempt::Delivered);
        for s in [408, 429, 500, 502, 503] {
            assert!(
                matches!(classify_http(s, None), Attempt::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(classify_http(s, None), Attempt::Permanent { .. }),
                "{s}"
            );
        }
        let r = classify_http(429, Some(Duration::from_secs(3)));
        assert_eq!(
            r,
            Attempt::Retry {
                reason: "http_429".into(),
                after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_ignores_junk() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T07:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(retry_after(Some(" 7 "), now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(Some("Sat, 28 Nov 2026 07:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(None, now), None);
    }
}
