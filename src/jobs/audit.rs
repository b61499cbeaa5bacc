//! The ownership audit: "ownership maps decay quickly; audit coverage weekly".
//!
//! A pure function of the policy, the projected handoffs and a clock: routing
//! rules that matched no report within `stale_after`; owners with no backup
//! and backups equal to the primary; teams that received handoffs without an
//! ownership rule naming them; rollback commands never marked tested ("if
//! rollback commands are untested, complete packets still fail"); and,
//! from the on-call roster ([`oncall_findings`]), rotations with fewer than
//! two participants and targets that resolve to nobody.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::oncall::{Directory, Resolution, Target};
use crate::domain::{Handoff, Policy};

/// A routing rule and the last time it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleRule {
    pub workflow: String,
    pub team: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_match: Option<DateTime<Utc>>,
}

/// An ownership rule with a backup problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerGap {
    pub workflow: String,
    pub team: String,
    pub primary: String,
}

/// An untested rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UntestedRollback {
    pub workflow: String,
    pub rollback_command: String,
}

/// A credential nobody used for [`UNUSED_CREDENTIAL_DAYS`] (never used:
/// counted from its creation). Revoked ones are not flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnusedCredential {
    pub id: String,
    pub person: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
}

/// Days without use after which an active credential is flagged.
pub const UNUSED_CREDENTIAL_DAYS: i64 = 90;

/// People without a contact method (ids, sorted) and active credentials
/// unused for [`UNUSED_CREDENTIAL_DAYS`] at `now`.
pub fn people_findings<'a>(
    people: impl IntoIterator<Item = &'a crate::identity::Person>,
    credentials: &[crate::identity::CredentialRecord],
    now: DateTime<Utc>,
) -> (Vec<String>, Vec<UnusedCredential>) {
    let mut unreachable: Vec<String> = people
        .into_iter()
        .filter(|p| p.contact.is_empty())
        .map(|p| p.id.clone())
        .collect();
    unreachable.sort();
    let since = now - chrono::Duration::days(UNUSED_CREDENTIAL_DAYS);
    let unused = credentials
        .iter()
        .filter(|c| c.is_active() && c.last_used.unwrap_or(c.created_at) < since)
        .map(|c| UnusedCredential {
            id: c.id.clone(),
            person: c.person.clone(),
            created_at: c.created_at,
            last_used: c.last_used,
        })
        .collect();
    (unreachable, unused)
}

/// The audit record published on `<prefix>.digest.audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipAudit {
    pub generated_at: DateTime<Utc>,
    pub stale_after_days: f64,
    pub stale_rules: Vec<StaleRule>,
    pub no_backup: Vec<OwnerGap>,
    pub backup_is_primary: Vec<OwnerGap>,
    pub teams_without_rule: Vec<String>,
    pub untested_rollbacks: Vec<UntestedRollback>,
    /// People with no contact method (absent from records made before
    /// people were audited, and when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people_without_contact: Vec<String>,
    /// Active credentials unused for [`UNUSED_CREDENTIAL_DAYS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unused_credentials: Vec<UnusedCredential>,
    /// Rotations with fewer than two participants in force: nobody backs
    /// up the person on call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_rotations: Vec<ShortRotation>,
    /// Targets (routes, fallbacks, ownership, template roles) that resolve
    /// to nobody at the audit's instant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_targets: Vec<UnresolvedTarget>,
}

/// A rotation with fewer than two participants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortRotation {
    pub rotation: String,
    pub participants: usize,
}

/// A configured target that resolves to nobody.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnresolvedTarget {
    /// Where it is configured (`routes.oncall.target`).
    pub key: String,
    pub target: String,
    /// Why nobody is there.
    pub reason: String,
}

/// The on-call part of the audit: short rotations and targets that resolve
/// to nobody at `now` (with every override stored so far).
pub fn oncall_findings(
    dir: &Directory,
    policy: &Policy,
    now: DateTime<Utc>,
) -> (Vec<ShortRotation>, Vec<UnresolvedTarget>) {
    let short = dir
        .rotations
        .iter()
        .map(|(id, r)| (id, r.participants_at(now, now).len()))
        .filter(|(_, n)| *n < 2)
        .map(|(id, n)| ShortRotation {
            rotation: id.clone(),
            participants: n,
        })
        .collect();
    let mut targets: Vec<(String, &str)> = Vec::new();
    for (name, r) in &policy.routes {
        targets.push((format!("routes.{name}.target"), &r.target));
        if let Some(f) = &r.fallback {
            targets.push((format!("routes.{name}.fallback"), f));
        }
    }
    for o in &policy.ownership {
        targets.push((format!("ownership[{}].primary", o.workflow), &o.primary));
        if let Some(b) = &o.backup {
            targets.push((format!("ownership[{}].backup", o.workflow), b));
        }
    }
    for (name, t) in &policy.templates {
        for (role, target) in &t.roles {
            targets.push((format!("templates.{name}.roles.{role}"), target));
        }
    }
    let unresolved = targets
        .into_iter()
        // `owner`/`backup` depend on each packet: not a config finding.
        .filter(|(_, t)| !matches!(Target::parse(t), Target::Owner | Target::Backup))
        .filter_map(|(key, target)| match dir.resolve(target, None, None, now) {
            Resolution::Nobody(reason) => Some(UnresolvedTarget {
                key,
                target: target.to_string(),
                reason,
            }),
            _ => None,
        })
        .collect();
    (short, unresolved)
}

impl OwnershipAudit {
    /// `(kind, count)` pairs: the metric `baton_ownership_audit_findings{kind}`.
    pub fn counts(&self) -> [(&'static str, usize); 9] {
        [
            ("person_without_contact", self.people_without_contact.len()),
            ("unused_credential", self.unused_credentials.len()),
            ("stale_rule", self.stale_rules.len()),
            ("no_backup", self.no_backup.len()),
            ("backup_is_primary", self.backup_is_primary.len()),
            ("team_without_rule", self.teams_without_rule.len()),
            ("untested_rollback", self.untested_rollbacks.len()),
            ("short_rotation", self.short_rotations.len()),
            ("unresolved_target", self.unresolved_targets.len()),
        ]
    }
}

/// Picks what [`ownership_audit`] reads from incidents visited newest
/// first, so that a run walks back only as far as it must instead of
/// copying all history: every incident opened in the audit's window, and,
/// for a routing rule nothing in the window matched, the newest incident
/// it did match (its `last_match`). [`Evidence::visit`] breaks once nothing
/// older can change the audit; a rule that never matched walks to the end.
///
/// The audit of the picked incidents equals the audit of all of them.
#[derive(Debug)]
pub struct Evidence {
    since: DateTime<Utc>,
    /// Each rule's pattern, until an incident matched it.
    unmatched: Vec<glob::Pattern>,
    /// The incidents picked, newest first.
    pub picked: Vec<Handoff>,
}

impl Evidence {
    /// Nothing picked yet, for the audit at `now`.
    pub fn new(policy: &Policy, now: DateTime<Utc>, stale_after: std::time::Duration) -> Self {
        Self {
            since: window_start(now, stale_after),
            // A rule whose pattern does not parse is never stale: nothing
            // to look for.
            unmatched: policy
                .ownership
                .iter()
                .filter_map(|r| glob::Pattern::new(&r.workflow).ok())
                .collect(),
            picked: Vec::new(),
        }
    }

    /// Takes the next older handoff; `Break` once nothing older matters.
    pub fn visit(&mut self, h: &Handoff) -> ControlFlow<()> {
        let Some(i) = h.as_incident().filter(|i| !i.drill) else {
            return ControlFlow::Continue(());
        };
        let before = self.unmatched.len();
        if let Some(w) = i.packet.workflow_id.as_deref() {
            self.unmatched.retain(|p| !p.matches(w));
        }
        let in_window = i.opened_at >= self.since;
        if in_window || self.unmatched.len() < before {
            self.picked.push(h.clone());
        }
        if !in_window && self.unmatched.is_empty() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

fn window_start(now: DateTime<Utc>, stale_after: std::time::Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(stale_after).unwrap_or_default()
}

/// Runs the audit at `now`. `handoffs` may be all of them or what
/// [`Evidence`] picked: the audit is the same.
pub fn ownership_audit(
    policy: &Policy,
    handoffs: &[Handoff],
    now: DateTime<Utc>,
    stale_after: std::time::Duration,
) -> OwnershipAudit {
    let since = window_start(now, stale_after);
    // Ownership rules are about incidents: a team handoff's receiving team
    // needs no rule. Drills are synthetic: they neither keep a rule alive
    // nor reveal a team.
    let handoffs: Vec<&crate::domain::Incident> = handoffs
        .iter()
        .filter_map(Handoff::as_incident)
        .filter(|h| !h.drill)
        .collect();
    let stale_rules = policy
        .ownership
        .iter()
        .filter_map(|rule| {
            let pattern = glob::Pattern::new(&rule.workflow).ok()?;
            let last = handoffs
                .iter()
                .filter(|h| {
                    h.packet
                        .workflow_id
                        .as_deref()
                        .is_some_and(|w| pattern.matches(w))
                })
                .map(|h| h.opened_at)
                .max();
            last.is_none_or(|t| t < since).then(|| StaleRule {
                workflow: rule.workflow.clone(),
                team: rule.team.clone(),
                last_match: last,
            })
        })
        .collect();
    let gap = |r: &crate::domain::OwnershipRule| OwnerGap {
        workflow: r.workflow.clone(),
        team: r.team.clone(),
        primary: r.primary.clone(),
    };
    let no_backup = policy
        .ownership
        .iter()
        .filter(|r| r.backup.as_deref().is_none_or(|b| b.trim().is_empty()))
        .map(gap)
        .collect();
    let backup_is_primary = policy
        .ownership
        .iter()
        .filter(|r| {
            r.backup
                .as_deref()
                .is_some_and(|b| b.eq_ignore_ascii_case(&r.primary))
        })
        .map(gap)
        .collect();
    let ruled: BTreeSet<&str> = policy.ownership.iter().map(|r| r.team.as_str()).collect();
    let teams_without_rule = handoffs
        .iter()
        .filter(|h| h.opened_at >= since && !ruled.contains(h.team.as_str()))
        .map(|h| h.team.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let untested_rollbacks = policy
        .runbook
        .iter()
        .filter(|r| !r.tested)
        .map(|r| UntestedRollback {
            workflow: r.workflow.clone(),
            rollback_command: r.rollback_command.clone(),
        })
        .collect();
    OwnershipAudit {
        generated_at: now,
        stale_after_days: stale_after.as_secs_f64() / 86400.0,
        stale_rules,
        no_backup,
        backup_is_primary,
        teams_without_rule,
        untested_rollbacks,
        people_without_contact: Vec::new(),
        unused_credentials: Vec::new(),
        short_rotations: Vec::new(),
        unresolved_targets: Vec::new(),
    }
}

/// The audit as Markdown.
pub fn render_markdown(a: &OwnershipAudit) -> String {
    let mut out = format!(
        "# Ownership audit — {} (UTC)\n\n",
        a.generated_at.format("%Y-%m-%d %H:%M")
    );
    let section = |out: &mut String, title: &str, items: Vec<String>| {
        out.push_str(&format!("## {title} ({})\n\n", items.len()));
        if items.is_empty() {
            out.push_str("None.\n\n");
        } else {
            for i in items {
                out.push_str(&format!("- {i}\n"));
            }
            out.push('\n');
        }
    };
    let days = match a.stale_after_days {
        d if (d - 1.0).abs() < f64::EPSILON => "1 day".to_string(),
        d => format!("{d:.0} days"),
    };
    section(
        &mut out,
        &format!("Rules that matched nothing in {days}"),
        a.stale_rules
            .iter()
            .map(|r| {
                let last = r
                    .last_match
                    .map(|t| format!("last matched {}", t.format("%Y-%m-%d")))
                    .unwrap_or_else(|| "never matched".into());
                format!("`{}` → {} ({last})", r.workflow, r.team)
            })
            .collect(),
    );
    section(
        &mut out,
        "Owners with no backup",
        a.no_backup
            .iter()
            .map(|g| format!("`{}` → {} (primary {})", g.workflow, g.team, g.primary))
            .collect(),
    );
    section(
        &mut out,
        "Backup equals primary",
        a.backup_is_primary
            .iter()
            .map(|g| format!("`{}` → {} ({})", g.workflow, g.team, g.primary))
            .collect(),
    );
    section(
        &mut out,
        "Teams receiving handoffs with no ownership rule",
        a.teams_without_rule.iter().map(|t| t.to_string()).collect(),
    );
    section(
        &mut out,
        "Rollback commands never marked tested",
        a.untested_rollbacks
            .iter()
            .map(|r| format!("`{}`: `{}`", r.workflow, r.rollback_command))
            .collect(),
    );
    // Only when there are findings: audits of deployments without people
    // read as they always have.
    if !a.people_without_contact.is_empty() {
        section(
            &mut out,
            "People without a contact method",
            a.people_without_contact.clone(),
        );
    }
    if !a.unused_credentials.is_empty() {
        section(
            &mut out,
            &format!("Credentials unused for {UNUSED_CREDENTIAL_DAYS} days"),
            a.unused_credentials
                .iter()
                .map(|c| {
                    let last = c
                        .last_used
                        .map(|t| format!("last used {}", t.format("%Y-%m-%d")))
                        .unwrap_or_else(|| "never used".into());
                    format!("`{}` of {} ({last})", c.id, c.person)
                })
                .collect(),
        );
    }
    // Shown only when there is something: audits of deployments without
    // rotations read as they always did.
    if !a.short_rotations.is_empty() {
        section(
            &mut out,
            "Rotations with fewer than two participants",
            a.short_rotations
                .iter()
                .map(|r| format!("`{}` ({} participant(s))", r.rotation, r.participants))
                .collect(),
        );
    }
    if !a.unresolved_targets.is_empty() {
        section(
            &mut out,
            "Targets that resolve to nobody",
            a.unresolved_targets
                .iter()
                .map(|t| format!("`{}` = `{}`: {}", t.key, t.target, t.reason))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod people_tests {
    use super::*;
    use crate::identity::{CredentialRecord, Scope};

    fn person(id: &str, contact: &[&str]) -> crate::identity::Person {
        crate::identity::Person {
            id: id.into(),
            name: id.into(),
            time_zone: "UTC".into(),
            roles: Default::default(),
            teams: Default::default(),
            contact: contact.iter().map(|c| c.to_string()).collect(),
            service: false,
        }
    }

    fn cred(id: &str, created: &str, used: Option<&str>, revoked: bool) -> CredentialRecord {
        CredentialRecord {
            version: 1,
            id: id.into(),
            person: "alice".into(),
            scope: Scope::Person,
            name: None,
            hash: String::new(),
            created_at: created.parse().unwrap(),
            revoked_at: revoked.then(|| created.parse().unwrap()),
            last_used: used.map(|u| u.parse().unwrap()),
        }
    }

    #[test]
    fn people_without_contact_and_credentials_unused_for_90_days_are_flagged() {
        let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let people = [
            person("zed", &[]),
            person("alice", &["email"]),
            person("bob", &[]),
        ];
        let creds = [
            cred("a", "2026-01-01T00:00:00Z", None, false),
            cred(
                "b",
                "2026-01-01T00:00:00Z",
                Some("2026-11-01T00:00:00Z"),
                false,
            ),
            cred(
                "c",
                "2026-01-01T00:00:00Z",
                Some("2026-08-01T00:00:00Z"),
                false,
            ),
            cred("d", "2026-01-01T00:00:00Z", None, true),
            cred("e", "2026-11-20T00:00:00Z", None, false),
        ];
        let (unreachable, unused) = people_findings(&people, &creds, now);
        assert_eq!(unreachable, ["bob", "zed"]);
        let ids: Vec<&str> = unused.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let policy = crate::config::Config::default().policy();
        let mut a = ownership_audit(&policy, &[], now, std::time::Duration::from_secs(86400));
        assert!(!render_markdown(&a).contains("contact method"));
        let empty = serde_json::to_value(&a).unwrap();
        assert!(empty.get("people_without_contact").is_none());
        a.people_without_contact = unreachable;
        a.unused_credentials = unused;
        let md = render_markdown(&a);
        assert!(md.contains("People without a contact method (2)"), "{md}");
        assert!(md.contains("`a` of alice (never used)"), "{md}");
        assert_eq!(a.counts()[0], ("person_without_contact", 2));
    }
}

#[cfg(test)]
mod oncall_tests {
    use super::*;
    use crate::domain::oncall::{Rotation, RotationKind};
    use crate::domain::Route;

    #[test]
    fn the_audit_flags_short_rotations_and_targets_resolving_to_nobody() {
        let rotation = |id: &str, participants: &[&str]| Rotation {
            id: id.into(),
            tz: chrono_tz::UTC,
            kind: RotationKind::Weekly,
            shift_length: 1,
            anchor: chrono::NaiveDate::from_ymd_opt(2026, 1, 5)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
            participants: participants.iter().map(|p| p.to_string()).collect(),
        };
        let dir = Directory::new(
            ["alice".to_string(), "bob".to_string()],
            vec![
                rotation("solo", &["alice"]),
                rotation("empty", &[]),
                rotation("pair", &["alice", "bob"]),
            ],
        );
        let mut policy = crate::testkit::policy();
        for (name, target) in [
            ("a", "rotation:pair"),
            ("b", "rotation:empty"),
            ("c", "person:ghost"),
            ("d", "rota:label"),
            ("e", "owner"),
        ] {
            policy.routes.insert(
                name.into(),
                Route {
                    target: target.into(),
                    fallback: None,
                },
            );
        }
        let now = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let (short, unresolved) = oncall_findings(&dir, &policy, now);
        let short: Vec<_> = short
            .iter()
            .map(|s| (s.rotation.as_str(), s.participants))
            .collect();
        assert_eq!(short, [("empty", 0), ("solo", 1)]);
        let keys: Vec<_> = unresolved.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["routes.b.target", "routes.c.target"]);
    }
}
