//! `[people.<id>]` and `[rotations.<id>]`: who can be paged, how to reach
//! them, and who is on call when.
//!
//! The file's own types. They are converted into the domain's directory
//! (people, rotations) at start-up; what a page stores is the person id a
//! target resolved to, never these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::oncall::{Directory, Rotation, RotationKind};

/// A person (or a service account, with `service = true`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// Display name ("Alice Example"); default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// IANA time zone for showing their shifts ("Europe/Berlin"); default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Roles they hold (`incident_captain`, `lead:payments`, …): what
    /// actions they may take where the config limits one to roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Teams they belong to (team-handoff actions limited to the receiving
    /// team's members).
    #[serde(default)]
    pub teams: Vec<String>,
    /// How to reach them, tried in this order until one succeeds.
    #[serde(default)]
    pub contact: Vec<ContactConfig>,
    /// A service account (runners, integrations): its credentials may
    /// report but never acknowledge, resolve or override.
    #[serde(default)]
    pub service: bool,
}

/// One way to reach a person. `Debug` is written by hand: a Slack webhook
/// or a webhook URL can carry a secret, so only its host is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContactConfig {
    /// E-mail over SMTP.
    Email {
        /// The address ("alice@example.com").
        to: String,
    },
    /// A Slack message through an incoming webhook.
    Slack {
        /// The incoming-webhook URL (or `env:VAR` to read it from the
        /// environment: it is a secret).
        webhook_url: String,
        /// Their Slack member id (`U012AB3CD`), mentioned in the message.
        #[serde(default)]
        member: Option<String>,
    },
    /// An HTTP POST of the page JSON.
    Webhook {
        /// Where to POST.
        url: String,
    },
}

impl std::fmt::Debug for ContactConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContactConfig::Email { to } => f.debug_struct("Email").field("to", to).finish(),
            ContactConfig::Slack {
                webhook_url,
                member,
            } => f
                .debug_struct("Slack")
                .field("webhook_url", &redact_url(webhook_url))
                .field("member", member)
                .finish(),
            ContactConfig::Webhook { url } => f
                .debug_struct("Webhook")
                .field("url", &redact_url(url))
                .finish(),
        }
    }
}

/// A URL as logs may show it: `env:VAR` as is, else the scheme and host
/// with the rest (path, query: where webhook secrets live) redacted.
fn redact_url(url: &str) -> String {
    if url.starts_with("env:") {
        return url.to_string();
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/[redacted]")
        }
        None => "[redacted]".into(),
    }
}

/// How often a rotation hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationKindConfig {
    /// Every `shift_length` hours.
    Hourly,
    /// Every `shift_length` days, at the handoff's local wall time.
    Daily,
    /// Every `shift_length` weeks, at the handoff's local wall time.
    Weekly,
}

/// A rotation: participants taking shifts in turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// IANA time zone of `handoff` ("Europe/Berlin"); shifts keep its
    /// local wall time across daylight-saving changes.
    pub time_zone: String,
    /// `hourly`, `daily` or `weekly`.
    pub kind: RotationKindConfig,
    /// Units of `kind` per shift (default 1).
    #[serde(default = "one")]
    pub shift_length: u32,
    /// The anchor: when the first participant's first shift starts, as a
    /// local wall time in `time_zone` ("2026-11-02T09:00:00").
    pub handoff: String,
    /// Person ids, in turn order. The one after the person on call is the
    /// rotation's `backup`.
    pub participants: Vec<String>,
}

fn one() -> u32 {
    1
}

/// Whether a contact names somewhere to send to (people's and routes').
pub(super) fn contact_has_address(c: &ContactConfig) -> bool {
    match c {
        ContactConfig::Email { to } => to.contains('@'),
        ContactConfig::Slack { webhook_url, .. } => !webhook_url.is_empty(),
        ContactConfig::Webhook { url } => !url.is_empty(),
    }
}

/// `handoff`'s formats: `2026-11-02T09:00:00`, `2026-11-02T09:00`, or with
/// a space instead of the `T`.
fn parse_handoff(s: &str) -> Option<chrono::NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s.trim(), f).ok())
}

impl RotationConfig {
    /// The domain's rotation, or `None` when its zone or handoff does not
    /// parse (validation names which).
    pub fn to_rotation(&self, id: &str) -> Option<Rotation> {
        Some(Rotation {
            id: id.to_string(),
            tz: self.time_zone.parse::<chrono_tz::Tz>().ok()?,
            kind: match self.kind {
                RotationKindConfig::Hourly => RotationKind::Hourly,
                RotationKindConfig::Daily => RotationKind::Daily,
                RotationKindConfig::Weekly => RotationKind::Weekly,
            },
            shift_length: self.shift_length,
            anchor: parse_handoff(&self.handoff)?,
            participants: self.participants.clone(),
        })
    }
}

/// The on-call directory the file describes: its people and the rotations
/// that parse.
pub fn directory(
    people: &BTreeMap<String, PersonConfig>,
    rotations: &BTreeMap<String, RotationConfig>,
) -> Directory {
    Directory::new(
        people.keys().cloned(),
        rotations
            .iter()
            .filter_map(|(id, r)| r.to_rotation(id))
            .collect(),
    )
}

/// `[people.*]` and `[rotations.*]` together, for validation.
pub fn problems(
    people: &BTreeMap<String, PersonConfig>,
    rotations: &BTreeMap<String, RotationConfig>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, p) in people {
        if !crate::domain::is_subject_token(id) {
            out.push(format!("people.{id}: person ids are subject tokens"));
        }
        for (i, c) in p.contact.iter().enumerate() {
            if !contact_has_address(c) {
                out.push(format!("people.{id}.contact[{i}]: no address"));
            }
        }
    }
    for (id, r) in rotations {
        if !crate::domain::is_subject_token(id) {
            out.push(format!("rotations.{id}: rotation ids are subject tokens"));
        }
        if r.participants.is_empty() {
            out.push(format!("rotations.{id}.participants: nobody is on call"));
        }
        if r.time_zone.parse::<chrono_tz::Tz>().is_err() {
            out.push(format!(
                "rotations.{id}.time_zone: {:?} is not an IANA zone (\"Europe/Berlin\")",
                r.time_zone
            ));
        }
        if parse_handoff(&r.handoff).is_none() {
            out.push(format!(
                "rotations.{id}.handoff: {:?} is not a local date and time (\"2026-11-02T09:00:00\")",
                r.handoff
            ));
        }
        if r.shift_length > 9000 {
            out.push(format!("rotations.{id}.shift_length: at most 9000"));
        }
        if r.shift_length == 0 {
            out.push(format!("rotations.{id}.shift_length: must be at least 1"));
        }
        for p in &r.participants {
            if !people.contains_key(p) {
                out.push(format!(
                    "rotations.{id}.participants: {p:?} is not in [people]"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_webhook_secret() {
        let c = ContactConfig::Slack {
            webhook_url: "https://hooks.slack.com/services/T000/B000/SECRET".into(),
            member: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("hooks.slack.com"),
            "{shown}"
        );
        let w = ContactConfig::Webhook {
            url: "https://user:pw@example.com/hook?token=SECRET".into(),
        };
        let shown = format!("{w:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("pw"),
            "{shown}"
        );
        assert!(format!(
            "{:?}",
            ContactConfig::Webhook {
                url: "env:HOOK".into()
            }
        )
        .contains("env:HOOK"));
    }
}
