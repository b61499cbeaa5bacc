//! One-click actions: links `<public_url>/a/<token>` whose token is an
//! HMAC-SHA256-signed, expiring capability (handoff, person, action,
//! expiry). An incident's page carries acknowledge and resolve; a team
//! handoff's page accept and complete (a returned one none: resubmitting
//! needs its fields). Pure: signing and checking, no HTTP (`http::links`
//! serves them).
//!
//! Token: `<hex of "v1|<handoff>|<person>|<action>|<expiry unix s>">.<hex
//! HMAC-SHA256 of that payload>`. Keys come from `BATON_ACK_KEYS`, newest
//! first: links are signed with the first and accepted under any, so a key
//! is rotated by putting a new one in front and dropping the old one after
//! the link TTL. A used link needs no record of its own: the action it
//! names is refused once done (already acknowledged, resolved), and that
//! refusal is the page the person sees.

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::channels::webhook::hex;
use super::channels::{Link, Links};

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An incident: `ack`.
    Acknowledge,
    /// An incident: `resolve`.
    Resolve,
    /// A team handoff: `accept`.
    Accept,
    /// A team handoff: `complete`.
    Complete,
}

impl Action {
    /// Every action, in token order.
    const ALL: [Action; 4] = [
        Action::Acknowledge,
        Action::Resolve,
        Action::Accept,
        Action::Complete,
    ];

    /// The token's word, which is also the command verb it runs
    /// (`app::requests::VERBS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "ack",
            Action::Resolve => "resolve",
            Action::Accept => "accept",
            Action::Complete => "complete",
        }
    }

    /// "acknowledge", "resolve", "accept", "complete", for the pages
    /// people read.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
            Action::Accept => "accept",
            Action::Complete => "complete",
        }
    }

    /// "acknowledged", …: what the handoff is once it is done.
    pub fn done(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledged",
            Action::Resolve => "resolved",
            Action::Accept => "accepted",
            Action::Complete => "completed",
        }
    }

    /// A button's or a line's label: "Acknowledge", ….
    pub fn label(self) -> &'static str {
        match self {
            Action::Acknowledge => "Acknowledge",
            Action::Resolve => "Resolve",
            Action::Accept => "Accept",
            Action::Complete => "Complete",
        }
    }

    /// The links a page carries: an incident's, or a team handoff's (`work`,
    /// and its `kind`: a `returned` page carries none).
    pub fn for_page(work: bool, kind: &str) -> &'static [Action] {
        match (work, kind) {
            (false, _) => &[Action::Acknowledge, Action::Resolve],
            (true, "returned") => &[],
            (true, _) => &[Action::Accept, Action::Complete],
        }
    }
}

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub handoff: Uuid,
    /// The person the link was sent to: the event's actor.
    pub person: String,
    pub action: Action,
    pub expires: DateTime<Utc>,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token at all (cut off in a mail client, typed by hand).
    #[error("this link is incomplete or malformed")]
    Malformed,
    /// Well-formed, but no current key signed it: altered, or signed with
    /// a key that has been retired.
    #[error("this link is not valid (altered, or its key was retired)")]
    Tampered,
    /// Signed, but past its expiry.
    #[error("this link expired at {0}")]
    Expired(DateTime<Utc>),
    /// No key is configured: links are off.
    #[error("one-click links are not enabled here")]
    Disabled,
}

const VERSION: &str = "v1";

fn payload(c: &Capability) -> String {
    format!(
        "{VERSION}|{}|{}|{}|{}",
        c.handoff,
        c.person,
        c.action.as_str(),
        c.expires.timestamp()
    )
}

fn mac(key: &str, payload: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    m.update(payload);
    m
}

/// The token for `c`, signed with `key`.
pub fn sign(c: &Capability, key: &str) -> String {
    let p = payload(c);
    format!(
        "{}.{}",
        hex(p.as_bytes()),
        hex(&mac(key, p.as_bytes()).finalize().into_bytes())
    )
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `token` against every key (constant-time per key) and `now`.
pub fn verify(token: &str, keys: &[String], now: DateTime<Utc>) -> Result<Capability, LinkError> {
    if keys.is_empty() {
        return Err(LinkError::Disabled);
    }
    let (p, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let (p, sig) = (
        unhex(p).ok_or(LinkError::Malformed)?,
        unhex(sig).ok_or(LinkError::Malformed)?,
    );
    if !keys.iter().any(|k| mac(k, &p).verify_slice(&sig).is_ok()) {
        return Err(LinkError::Tampered);
    }
    // Signed by us: a malformed payload now is a bug, still never a panic.
    let text = String::from_utf8(p).map_err(|_| LinkError::Malformed)?;
    let parts: Vec<&str> = text.split('|').collect();
    let [VERSION, handoff, person, action, expires] = parts[..] else {
        return Err(LinkError::Malformed);
    };
    let c = Capability {
        handoff: handoff.parse().map_err(|_| LinkError::Malformed)?,
        person: person.to_string(),
        action: Action::ALL
            .into_iter()
            .find(|a| a.as_str() == action)
            .ok_or(LinkError::Malformed)?,
        expires: expires
            .parse::<i64>()
            .ok()
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
            .ok_or(LinkError::Malformed)?,
    };
    if now >= c.expires {
        return Err(LinkError::Expired(c.expires));
    }
    Ok(c)
}

/// One link per action for `person` on `handoff`, valid for `ttl`,
/// signed with the first key; `None` without a key or actions.
pub fn links_for(
    public_url: &str,
    keys: &[String],
    handoff: Uuid,
    person: &str,
    actions: &[Action],
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> Option<Links> {
    let key = keys.first()?;
    if actions.is_empty() {
        return None;
    }
    let expires = crate::domain::later(now, ttl)?;
    let base = public_url.trim_end_matches('/');
    Some(Links(
        actions
            .iter()
            .map(|&action| {
                let token = sign(
                    &Capability {
                        handoff,
                        person: person.to_string(),
                        action,
                        expires,
                    },
                    key,
                );
                Link {
                    action,
                    url: format!("{base}/a/{token}"),
                }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(now: DateTime<Utc>) -> Capability {
        Capability {
            handoff: Uuid::nil(),
            person: "alice".into(),
            action: Action::Acknowledge,
            expires: now + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn a_signed_link_verifies_under_any_current_key_until_it_expires() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let t = sign(&cap(now), "old");
        let keys = vec!["new".to_string(), "old".to_string()];
        assert_eq!(verify(&t, &keys, now), Ok(cap(now)));
        assert_eq!(
            verify(&t, &["new".to_string()], now),
            Err(LinkError::Tampered),
            "a retired key's links stop working"
        );
        let later = now + chrono::Duration::hours(2);
        assert!(matches!(
            verify(&t, &keys, later),
            Err(LinkError::Expired(_))
        ));
        assert_eq!(verify(&t, &[], now), Err(LinkError::Disabled));
    }

    #[test]
    fn a_changed_byte_or_a_cut_link_is_refused_never_a_panic() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let keys = vec!["k".to_string()];
        let t = sign(&cap(now), "k");
        // Another person, same signature.
        let mut forged = cap(now);
        forged.person = "mallory".into();
        let (_, sig) = t.split_once('.').unwrap();
        let (p, _) = sign(&forged, "other")
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert_eq!(
            verify(&format!("{p}.{sig}"), &keys, now),
            Err(LinkError::Tampered)
        );
        for bad in ["", ".", "zz.zz", &t[..t.len() / 2], "abc", &format!("{t}0")] {
            assert!(verify(bad, &keys, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn links_carry_the_public_url_and_one_token_per_action() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let keys = vec!["k".to_string()];
        let ttl = std::time::Duration::from_secs(3600);
        for (work, kind, want) in [
            (false, "page", &[Action::Acknowledge, Action::Resolve][..]),
            (true, "initiated", &[Action::Accept, Action::Complete][..]),
        ] {
            let l = links_for(
                "https://baton.example.com/",
                &keys,
                Uuid::nil(),
                "alice",
                Action::for_page(work, kind),
                now,
                ttl,
            )
            .unwrap();
            let got: Vec<Action> =
                l.0.iter()
                    .map(|link| {
                        let token = link
                            .url
                            .strip_prefix("https://baton.example.com/a/")
                            .unwrap();
                        let cap = verify(token, &keys, now).unwrap();
                        assert_eq!(cap.action, link.action);
                        cap.action
                    })
                    .collect();
            assert_eq!(got, want);
        }
        assert!(Action::for_page(true, "returned").is_empty());
        assert!(links_for("https://x", &keys, Uuid::nil(), "a", &[], now, ttl).is_none());
        assert!(links_for(
            "https://x",
            &[],
            Uuid::nil(),
            "a",
            Action::for_page(false, "page"),
            now,
            ttl
        )
        .is_none());
    }
}
