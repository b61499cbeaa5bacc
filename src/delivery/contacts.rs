//! Who a page goes to and how, in order: the page's person's
//! `[people.<id>].contact`, then its route's `[routes.<name>].contact` as
//! the fallback. Pure: config in, a list out.

use std::collections::BTreeMap;

use crate::config::{ContactConfig, PersonConfig, RouteConfig};
use crate::pages::Page;

/// One way to reach the page's target, with its place in the list (the
/// idempotency key's last part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Position in the combined list: stable while the config is.
    pub index: usize,
    /// The person it reaches (`None`: the route's own contact).
    pub person: Option<String>,
    pub method: ContactConfig,
}

impl Contact {
    /// `slack`, `webhook` or `email`.
    pub fn channel(&self) -> &'static str {
        match self.method {
            ContactConfig::Email { .. } => "email",
            ContactConfig::Slack { .. } => "slack",
            ContactConfig::Webhook { .. } => "webhook",
        }
    }

    /// Where it goes, safe to store and show: a URL's host only (a Slack or
    /// webhook URL's path is its secret), an address masked (`a***@example.com`).
    pub fn destination(&self) -> String {
        match &self.method {
            ContactConfig::Email { to } => mask_address(to),
            ContactConfig::Slack { webhook_url, .. } if webhook_url.starts_with("env:") => {
                // The variable's name is not secret; its value is.
                webhook_url.clone()
            }
            ContactConfig::Slack {
                webhook_url: url, ..
            }
            | ContactConfig::Webhook { url } => host_of(url),
        }
    }
}

/// The person a page is for, if it names one in `[people]`: the person
/// its target resolved to when the event was decided (`page.person`: the
/// on-call person of a `rotation:` target, or the route's fallback), else
/// a `person:<id>` target, or a bare id (the `owner` and `backup` routes
/// target the packet's owner by id).
pub fn target_person<'a>(
    page: &'a Page,
    people: &BTreeMap<String, PersonConfig>,
) -> Option<&'a str> {
    let id = match page.person.as_deref() {
        Some(p) => p,
        None => page.target.strip_prefix("person:").unwrap_or(&page.target),
    };
    people.contains_key(id).then_some(id)
}

/// Every contact method for `page`, in the order they are tried.
pub fn contacts_for(
    page: &Page,
    people: &BTreeMap<String, PersonConfig>,
    routes: &BTreeMap<String, RouteConfig>,
) -> Vec<Contact> {
    let person = target_person(page, people);
    let own = person
        .and_then(|p| people.get(p))
        .map(|p| p.contact.as_slice())
        .unwrap_or_default();
    let fallback = routes
        .get(&page.route)
        .map(|r| r.contact.as_slice())
        .unwrap_or_default();
    own.iter()
        .map(|m| (person.map(String::from), m))
        .chain(fallback.iter().map(|m| (None, m)))
        .enumerate()
        .map(|(index, (person, method))| Contact {
            index,
            person,
            method: method.clone(),
        })
        .collect()
}

/// `https://hooks.slack.com/services/T/B/X` → `hooks.slack.com`.
pub fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "<invalid url>".into())
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_address(to: &str) -> String {
    match to.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> BTreeMap<String, PersonConfig> {
        let alice = PersonConfig {
            contact: vec![
                ContactConfig::Slack {
                    webhook_url: "https://hooks.slack.com/services/T0/B0/SECRET".into(),
                    member: Some("U1".into()),
                },
                ContactConfig::Email {
                    to: "alice@example.com".into(),
                },
            ],
            ..PersonConfig::default()
        };
        BTreeMap::from([("alice".to_string(), alice)])
    }

    fn routes() -> BTreeMap<String, RouteConfig> {
        BTreeMap::from([(
            "oncall".to_string(),
            RouteConfig {
                target: "person:alice".into(),
                fallback: None,
                contact: vec![ContactConfig::Webhook {
                    url: "http://ops.internal:8080/hook?token=SECRET".into(),
                }],
            },
        )])
    }

    #[test]
    fn a_persons_contacts_come_first_then_the_routes_in_order() {
        let mut page = crate::delivery::testpage();
        page.target = "person:alice".into();
        let c = contacts_for(&page, &people(), &routes());
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.index, c.channel(), c.person.as_deref(), c.destination()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "slack", Some("alice"), "hooks.slack.com".to_string()),
                (1, "email", Some("alice"), "a***@example.com".to_string()),
                (2, "webhook", None, "ops.internal:8080".to_string()),
            ]
        );
        assert!(!format!("{got:?}").contains("SECRET"));
    }

    #[test]
    fn the_person_a_rotation_resolved_to_is_reached_first() {
        let mut page = crate::delivery::testpage();
        page.target = "rotation:payments".into();
        page.person = Some("alice".into());
        let c = contacts_for(&page, &people(), &routes());
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].person.as_deref(), Some("alice"));
    }

    #[test]
    fn a_target_that_names_no_person_gets_the_routes_contacts_only() {
        let mut page = crate::delivery::testpage();
        page.target = "oncall:payments".into();
        let c = contacts_for(&page, &people(), &routes());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].person, None);
        page.route = "nowhere".into();
        assert!(contacts_for(&page, &people(), &routes()).is_empty());
    }
}
