//! Who may do what: one pure rule, [`authorize`], that every transport
//! calls with the actor, the action and the handoff's facts. No I/O: the
//! caller resolves the credential ([`super::Credentials`]) and loads the
//! facts; this only decides.
//!
//! - A **report** needs only an authenticated caller (any credential,
//!   `report` scope and service accounts included, or a shared token).
//! - A **shared token** (`http.tokens`, or a NATS request without a
//!   credential) cannot prove who acts: it may do what needs no role and no
//!   team, as before, and nothing once `authz.require_person` is set.
//! - A **person credential** of `report` scope, or any credential of a
//!   service account (`[people.x] service = true`), may only report.
//! - Otherwise `acknowledge`, `override`, `resolve` and `enrich` need one of
//!   the roles `[authz]` lists for them (none listed: anyone), and a team
//!   handoff's `accept`, `complete` and `rate` need membership of the
//!   receiving team when its template says `members_only = true`.

use std::collections::BTreeSet;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Act as the person: commands and reports.
    Person,
    /// Reports only (runners, CI).
    Report,
}

impl Scope {
    /// `person` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Person => "person",
            Scope::Report => "report",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "person" => Ok(Scope::Person),
            "report" => Ok(Scope::Report),
            _ => Err(format!("{s:?} is not a scope (person or report)")),
        }
    }
}

/// A person proven by a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The person id (`[people.<id>]`): the events' actor and `by`.
    pub person: String,
    /// The credential used (never its secret).
    pub credential: String,
    pub scope: Scope,
    /// `[people.<id>] service = true`.
    pub service: bool,
    /// Roles held now: `[people.<id>].roles` today; rotation memberships
    /// (`rotation:<id>`) can be added by whoever builds the principal,
    /// without changing the rule.
    pub roles: BTreeSet<String>,
    /// Teams they belong to (`[people.<id>].teams`).
    pub teams: BTreeSet<String>,
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person credential.
    Person(Principal),
    /// A shared token or an anonymous NATS request: the compatibility mode,
    /// acting as the `by` of the body, which nothing proves.
    Shared,
}

impl Actor {
    /// The person id, for a person credential.
    pub fn person(&self) -> Option<&str> {
        match self {
            Actor::Person(p) => Some(&p.person),
            Actor::Shared => None,
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A report (HTTP `POST /v1/reports`, NATS `cmd.report`).
    Report,
    /// Start a team handoff.
    Start,
    Acknowledge,
    Override,
    Resolve,
    Enrich,
    /// Team handoff verbs limited to members under `members_only`.
    Accept,
    Complete,
    Rate,
    /// `check`, `return`, `resubmit`, `cancel`.
    OtherTeamCommand,
    /// An on-call change: an override made or cancelled, a rotation's
    /// participants changed.
    OncallChange,
}

impl Action {
    /// The action a command verb asks for; `None` for reads.
    pub fn of_verb(verb: &str) -> Option<Action> {
        Some(match verb {
            "report" => Action::Report,
            "start" => Action::Start,
            "ack" => Action::Acknowledge,
            "override" => Action::Override,
            "resolve" => Action::Resolve,
            "enrich" => Action::Enrich,
            "accept" => Action::Accept,
            "complete" => Action::Complete,
            "rate" => Action::Rate,
            "check" | "return" | "resubmit" | "cancel" => Action::OtherTeamCommand,
            "oncall_override" | "oncall_cancel" | "oncall_participants" => Action::OncallChange,
            _ => return None,
        })
    }

    /// Its name in refusals and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Start => "start",
            Action::Acknowledge => "acknowledge",
            Action::Override => "override",
            Action::Resolve => "resolve",
            Action::Enrich => "enrich",
            Action::Accept => "accept",
            Action::Complete => "complete",
            Action::Rate => "rate",
            Action::OtherTeamCommand => "a team-handoff command",
            Action::OncallChange => "an on-call change",
        }
    }

    /// Whether `members_only` applies to it.
    pub fn is_members_only_kind(self) -> bool {
        matches!(self, Action::Accept | Action::Complete | Action::Rate)
    }
}

/// `[authz]`, converted: the roles each limited action needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Refuse shared tokens and anonymous NATS commands.
    pub require_person: bool,
    pub acknowledge: Vec<String>,
    pub override_gate: Vec<String>,
    pub resolve: Vec<String>,
    pub enrich: Vec<String>,
}

impl Rules {
    /// The roles `action` is limited to (empty: anyone authenticated).
    pub fn roles_for(&self, action: Action) -> &[String] {
        match action {
            Action::Acknowledge => &self.acknowledge,
            Action::Override => &self.override_gate,
            Action::Resolve => &self.resolve,
            Action::Enrich => &self.enrich,
            _ => &[],
        }
    }
}

/// What the rule needs to know of the handoff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The receiving team, when the handoff's template is `members_only`.
    pub members_only_team: Option<String>,
}

/// The rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; `needed` says what would have been allowed, for the 403.
    Forbidden {
        needed: String,
    },
}

/// Decides whether `actor` may do `action` on a handoff with `facts`.
pub fn authorize(actor: &Actor, action: Action, facts: &Facts, rules: &Rules) -> Decision {
    let roles = rules.roles_for(action);
    let team = facts
        .members_only_team
        .as_deref()
        .filter(|_| action.is_members_only_kind());
    let forbid = |needed: String| Decision::Forbidden { needed };
    let p = match actor {
        Actor::Shared if rules.require_person => {
            return forbid("a person credential (authz.require_person is set)".into())
        }
        Actor::Shared if !roles.is_empty() => {
            return forbid(format!(
                "a person credential with role {}",
                roles.join(" or ")
            ))
        }
        Actor::Shared => {
            return match team {
                Some(t) => forbid(format!("a person credential of a member of team {t}")),
                None => Decision::Allow,
            }
        }
        Actor::Person(p) => p,
    };
    if action == Action::Report {
        return Decision::Allow;
    }
    if p.scope == Scope::Report || p.service {
        return forbid("a person-scope credential of a person (this one may only report)".into());
    }
    if !roles.is_empty() && !roles.iter().any(|r| p.roles.contains(r)) {
        return forbid(format!("role {}", roles.join(" or ")));
    }
    if let Some(t) = team {
        if !p.teams.contains(t) {
            return forbid(format!("membership of team {t}"));
        }
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(roles: &[&str], teams: &[&str]) -> Actor {
        Actor::Person(Principal {
            person: "alice".into(),
            credential: "0123456789abcdef".into(),
            scope: Scope::Person,
            service: false,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            teams: teams.iter().map(|t| t.to_string()).collect(),
        })
    }

    fn rules() -> Rules {
        Rules {
            override_gate: vec!["incident_captain".into()],
            resolve: vec!["incident_captain".into(), "lead".into()],
            ..Rules::default()
        }
    }

    fn needed(d: Decision) -> String {
        match d {
            Decision::Forbidden { needed } => needed,
            Decision::Allow => panic!("allowed"),
        }
    }

    const NONE: Facts = Facts {
        members_only_team: None,
    };

    #[test]
    fn anyone_authenticated_acknowledges_when_no_role_is_listed() {
        for actor in [person(&[], &[]), Actor::Shared] {
            assert_eq!(
                authorize(&actor, Action::Acknowledge, &NONE, &rules()),
                Decision::Allow
            );
        }
    }

    #[test]
    fn a_limited_action_needs_one_of_its_roles_and_the_refusal_names_them() {
        let r = rules();
        assert_eq!(
            needed(authorize(&person(&[], &[]), Action::Override, &NONE, &r)),
            "role incident_captain"
        );
        assert_eq!(
            authorize(
                &person(&["incident_captain"], &[]),
                Action::Override,
                &NONE,
                &r
            ),
            Decision::Allow
        );
        assert_eq!(
            authorize(&person(&["lead"], &[]), Action::Resolve, &NONE, &r),
            Decision::Allow
        );
        assert_eq!(
            needed(authorize(&person(&["x"], &[]), Action::Resolve, &NONE, &r)),
            "role incident_captain or lead"
        );
    }

    #[test]
    fn a_shared_token_cannot_take_a_limited_action_nor_anything_under_require_person() {
        let mut r = rules();
        assert!(
            needed(authorize(&Actor::Shared, Action::Override, &NONE, &r))
                .contains("person credential with role incident_captain")
        );
        assert_eq!(
            authorize(&Actor::Shared, Action::Report, &NONE, &r),
            Decision::Allow
        );
        r.require_person = true;
        for a in [Action::Report, Action::Acknowledge, Action::Start] {
            assert!(needed(authorize(&Actor::Shared, a, &NONE, &r)).contains("require_person"));
        }
        assert_eq!(
            authorize(&person(&[], &[]), Action::Acknowledge, &NONE, &r),
            Decision::Allow
        );
    }

    #[test]
    fn report_scope_and_service_credentials_may_only_report() {
        let Actor::Person(mut p) = person(&["incident_captain"], &[]) else {
            unreachable!()
        };
        p.scope = Scope::Report;
        let report_only = Actor::Person(p.clone());
        p.scope = Scope::Person;
        p.service = true;
        let service = Actor::Person(p);
        for actor in [report_only, service] {
            assert_eq!(
                authorize(&actor, Action::Report, &NONE, &rules()),
                Decision::Allow
            );
            for a in [
                Action::Acknowledge,
                Action::Override,
                Action::Resolve,
                Action::Start,
                Action::Accept,
                Action::OncallChange,
            ] {
                assert!(needed(authorize(&actor, a, &NONE, &rules())).contains("only report"));
            }
        }
    }

    #[test]
    fn any_person_may_change_on_call_and_the_verbs_say_so() {
        for verb in ["oncall_override", "oncall_cancel", "oncall_participants"] {
            assert_eq!(Action::of_verb(verb), Some(Action::OncallChange));
        }
        assert_eq!(Action::of_verb("oncall"), None, "a read");
        assert_eq!(
            authorize(&person(&[], &[]), Action::OncallChange, &NONE, &rules()),
            Decision::Allow
        );
    }

    #[test]
    fn members_only_limits_accept_complete_and_rate_to_the_receiving_team() {
        let facts = Facts {
            members_only_team: Some("onboarding".into()),
        };
        let r = Rules::default();
        for a in [Action::Accept, Action::Complete, Action::Rate] {
            assert_eq!(
                needed(authorize(&person(&[], &["sales"]), a, &facts, &r)),
                "membership of team onboarding"
            );
            assert_eq!(
                authorize(&person(&[], &["onboarding"]), a, &facts, &r),
                Decision::Allow
            );
            assert!(needed(authorize(&Actor::Shared, a, &facts, &r)).contains("team onboarding"));
        }
        // Other verbs are not limited by the flag.
        assert_eq!(
            authorize(&person(&[], &[]), Action::OtherTeamCommand, &facts, &r),
            Decision::Allow
        );
    }

    #[test]
    fn every_command_verb_maps_to_an_action_and_reads_to_none() {
        for v in [
            "ack", "override", "enrich", "resolve", "start", "accept", "check", "complete",
            "return", "resubmit", "cancel", "rate", "report",
        ] {
            assert!(Action::of_verb(v).is_some(), "{v}");
        }
        for v in ["get", "list", "stats", "digest"] {
            assert!(Action::of_verb(v).is_none(), "{v}");
        }
    }
}
