//! Severity policy: HCS gates, SLA bands, escalation levels, enrichment maps.
//! Defaults are the playbook's.
//!
//! The config file's `[severity.*]`, `[[ownership]]`, `[[runbook]]` and
//! `[routes.*]` sections are the config's own types (`config::policy`),
//! converted into these at start-up, so nothing here carries the file's
//! serde attributes. Only [`Severity`] and [`BelowMin`] are serialized: events
//! store them (`opened`, `held`), so their spelling is a stored format.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{is_subject_token, Packet};

/// Incident severity. Stored in events (`"P1"`…); the same names in pages,
/// the API and the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    P1,
    P2,
    P3,
}

impl Severity {
    /// All severities, most urgent first.
    pub const ALL: [Severity; 3] = [Severity::P1, Severity::P2, Severity::P3];

    /// `"P1"`, `"P2"` or `"P3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "P1" => Ok(Severity::P1),
            "P2" => Ok(Severity::P2),
            "P3" => Ok(Severity::P3),
            _ => Err(()),
        }
    }
}

/// What happens when a report scores below its severity's `min_hcs`.
/// Stored as the `action` of `held` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BelowMin {
    /// P1: enrich, then page; if still incomplete, page anyway after
    /// `max_hold`, flagged `incomplete`.
    EnrichThenPage,
    /// P2: route to the owner queue until an `enrich` completes the packet.
    Queue,
    /// P3: open an async ticket on the queue route asking for the missing
    /// fields; page when completed.
    Ticket,
}

/// One escalation level: who is paged, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Routes paged at this level (each becomes `<prefix>.page.<route>.<team>`).
    pub routes: Vec<String>,
    /// Time to wait for an acknowledgement after each page of this level
    /// before the next step.
    pub delay: Duration,
    /// Extra times this level is paged again, `delay` apart, before moving on.
    pub repeat: u32,
}

/// Gate and SLA for one severity.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityPolicy {
    /// Minimum HCS (0–100) to page at once.
    pub min_hcs: f64,
    /// What happens below `min_hcs`: `enrich_then_page`, `queue` or `ticket`.
    pub below_min: BelowMin,
    /// With `enrich_then_page`: the longest a report is held before it pages
    /// anyway, flagged incomplete.
    pub max_hold: Duration,
    /// First-response target, counted from when the report is opened (a gate
    /// hold does not stop the clock). The first escalation fires then.
    pub first_response: Duration,
    /// Routes paged when the gate passes (level 0).
    pub page_routes: Vec<String>,
    /// Escalation levels, fired in order from the `first_response` deadline.
    pub escalation: Vec<Level>,
}

/// Who owns workflows matching a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnershipRule {
    /// Glob over `workflow_id` (`*` and `?`), e.g. `"billing-*"`.
    pub workflow: String,
    /// Team that receives the handoff.
    pub team: String,
    /// Primary owner.
    pub primary: String,
    /// Backup owner.
    pub backup: Option<String>,
}

/// The rollback command for workflows matching a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct RunbookRule {
    /// Glob over `workflow_id` (`*` and `?`).
    pub workflow: String,
    /// Rollback or fallback command filled into packets that lack one.
    pub rollback_command: String,
    /// Whether this rollback has been exercised; untested rollbacks make
    /// "complete" packets fail in practice (the ownership audit lists them).
    pub tested: bool,
}

/// Who a named route reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Who is reached (a rota, a person, a queue); shown in the page as `target`.
    /// `rotation:<id>`, `person:<id>`, `owner` and `backup` are resolved to
    /// a person when the page is decided; anything else is a label.
    pub target: String,
    /// Paged instead when `target` resolves to nobody at run time
    /// (`person:<id>` or `rotation:<id>`).
    pub fallback: Option<String>,
}

/// Everything `decide` needs to know besides the state and the command.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub severities: BTreeMap<Severity, SeverityPolicy>,
    pub ownership: Vec<OwnershipRule>,
    pub runbook: Vec<RunbookRule>,
    pub routes: BTreeMap<String, Route>,
    /// Team used when neither the report nor the ownership map names one.
    pub default_team: String,
    /// Where drill handoffs page instead of their real routes (`None`: the
    /// real routes).
    pub drill_route: Option<String>,
    /// Handoff templates by name.
    pub templates: BTreeMap<String, super::teamwork::Template>,
}

/// Most repeats one escalation level may have.
pub const MAX_REPEAT: u32 = 1000;

/// The route name that reaches the packet's primary owner.
pub const ROUTE_OWNER: &str = "owner";
/// The route name that reaches the packet's backup owner.
pub const ROUTE_BACKUP: &str = "backup";
/// The asynchronous owner queue, where tickets and refresh requests go.
pub const ROUTE_QUEUE: &str = "queue";

impl Policy {
    /// The policy for a severity (every severity is always present).
    pub fn severity(&self, s: Severity) -> &SeverityPolicy {
        &self.severities[&s]
    }

    /// Who a route reaches for this packet.
    pub fn target(&self, route: &str, team: &str, packet: &Packet) -> String {
        let person = match route {
            ROUTE_OWNER => packet.primary(),
            ROUTE_BACKUP => packet.backup(),
            _ => None,
        };
        if let Some(p) = person {
            return p.to_string();
        }
        match self.routes.get(route) {
            Some(r) => r.target.clone(),
            None => format!("{route}:{team}"),
        }
    }

    /// First ownership rule matching the workflow.
    pub fn ownership_for(&self, workflow_id: &str) -> Option<&OwnershipRule> {
        self.ownership
            .iter()
            .find(|r| glob_match(&r.workflow, workflow_id))
    }

    /// First runbook rule matching the workflow.
    pub fn runbook_for(&self, workflow_id: &str) -> Option<&RunbookRule> {
        self.runbook
            .iter()
            .find(|r| glob_match(&r.workflow, workflow_id))
    }

    /// Checks what the config file's types cannot: tokens, thresholds,
    /// non-empty routes.
    /// Returns every problem, each naming its config key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for sev in Severity::ALL {
            let Some(p) = self.severities.get(&sev) else {
                problems.push(format!("severity.{sev}: missing"));
                continue;
            };
            if !(0.0..=100.0).contains(&p.min_hcs) {
                problems.push(format!("severity.{sev}.min_hcs: must be within 0..=100"));
            }
            if p.first_response.is_zero() {
                problems.push(format!("severity.{sev}.first_response: must be > 0"));
            }
            let too_long = |d: &Duration| *d > super::MAX_DURATION;
            if too_long(&p.first_response)
                || too_long(&p.max_hold)
                || p.escalation.iter().any(|l| too_long(&l.delay))
            {
                problems.push(format!(
                    "severity.{sev}: durations must be at most 10 years"
                ));
            }
            if p.escalation.iter().any(|l| l.repeat > MAX_REPEAT) {
                problems.push(format!(
                    "severity.{sev}.escalation: repeat must be at most {MAX_REPEAT}"
                ));
            }
            if p.page_routes.is_empty() {
                problems.push(format!("severity.{sev}.page_routes: must name a route"));
            }
            let routes = p
                .page_routes
                .iter()
                .chain(p.escalation.iter().flat_map(|l| l.routes.iter()));
            for r in routes {
                if !is_subject_token(r) {
                    problems.push(format!(
                        "severity.{sev}: route {r:?} is not a subject token (no '.', '*', '>' or spaces)"
                    ));
                }
            }
            for (i, l) in p.escalation.iter().enumerate() {
                if l.routes.is_empty() {
                    problems.push(format!("severity.{sev}.escalation[{i}].routes: empty"));
                }
                if l.delay.is_zero() && (l.repeat > 0 || i + 1 < p.escalation.len()) {
                    problems.push(format!(
                        "severity.{sev}.escalation[{i}].delay: must be > 0 when another step follows"
                    ));
                }
            }
        }
        for (i, o) in self.ownership.iter().enumerate() {
            if !is_subject_token(&o.team) {
                problems.push(format!(
                    "ownership[{i}].team: {:?} is not a subject token",
                    o.team
                ));
            }
            if glob::Pattern::new(&o.workflow).is_err() {
                problems.push(format!("ownership[{i}].workflow: bad pattern"));
            }
        }
        for (i, r) in self.runbook.iter().enumerate() {
            if glob::Pattern::new(&r.workflow).is_err() {
                problems.push(format!("runbook[{i}].workflow: bad pattern"));
            }
        }
        if !is_subject_token(&self.default_team) {
            problems.push("default_team: not a subject token".into());
        }
        problems
    }
}

fn glob_match(pattern: &str, value: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(value))
}

/// The playbook's defaults.
pub fn default_severities() -> BTreeMap<Severity, SeverityPolicy> {
    let m = |n: u64| Duration::from_secs(60 * n);
    let level = |routes: &[&str], delay, repeat| Level {
        routes: routes.iter().map(|s| s.to_string()).collect(),
        delay,
        repeat,
    };
    BTreeMap::from([
        (
            Severity::P1,
            SeverityPolicy {
                min_hcs: 90.0,
                below_min: BelowMin::EnrichThenPage,
                max_hold: Duration::from_secs(60),
                first_response: m(5),
                page_routes: vec!["oncall".into()],
                escalation: vec![level(&["oncall", "incident_captain"], m(5), 2)],
            },
        ),
        (
            Severity::P2,
            SeverityPolicy {
                min_hcs: 85.0,
                below_min: BelowMin::Queue,
                max_hold: Duration::from_secs(60),
                first_response: m(15),
                page_routes: vec![ROUTE_OWNER.into()],
                escalation: vec![level(&[ROUTE_OWNER, "platform_support"], m(15), 1)],
            },
        ),
        (
            Severity::P3,
            SeverityPolicy {
                min_hcs: 70.0,
                below_min: BelowMin::Ticket,
                max_hold: Duration::from_secs(60),
                first_response: m(240),
                page_routes: vec![ROUTE_QUEUE.into()],
                escalation: vec![level(&["team_lead"], m(240), 0)],
            },
        ),
    ])
}

/// One scheduled escalation step of a severity's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// 1-based index over all steps of the policy.
    pub step: u32,
    /// 1-based level.
    pub level: u32,
    /// 0 for a level's first page, then 1..=repeat.
    pub repeat: u32,
    /// When it is due. Computed from `opened_at` and the policy alone, never
    /// from when an earlier step ran, so lateness cannot accumulate.
    pub due: DateTime<Utc>,
}

impl SeverityPolicy {
    /// Step number `step` (1-based), or `None` past the last one.
    pub fn step(&self, opened_at: DateTime<Utc>, step: u32) -> Option<Step> {
        let mut due = super::later(opened_at, self.first_response)?;
        let mut n = 0;
        for (li, level) in self.escalation.iter().enumerate() {
            for r in 0..=level.repeat {
                n += 1;
                if n == step {
                    return Some(Step {
                        step,
                        level: li as u32 + 1,
                        repeat: r,
                        due,
                    });
                }
                due = super::later(due, level.delay)?;
            }
        }
        None
    }

    /// Routes of a 1-based level.
    pub fn level_routes(&self, level: u32) -> &[String] {
        self.escalation
            .get(level.saturating_sub(1) as usize)
            .map(|l| l.routes.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_computed_from_the_schedule() {
        let p = &default_severities()[&Severity::P1];
        let t0 = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        let s: Vec<_> = (1..=4).map(|i| p.step(t0, i)).collect();
        assert_eq!(s[0].unwrap().due, t0 + Duration::from_secs(300));
        assert_eq!(s[1].unwrap().due, t0 + Duration::from_secs(600));
        assert_eq!((s[2].unwrap().level, s[2].unwrap().repeat), (1, 2));
        assert_eq!(s[3], None);
    }

    #[test]
    fn targets_resolve_people_then_config_then_route_and_team() {
        let mut policy = crate::testkit::policy();
        policy.routes.insert(
            "oncall".into(),
            Route {
                target: "rota:primary".into(),
                fallback: None,
            },
        );
        let p = crate::testkit::full_packet();
        assert_eq!(policy.target("owner", "t", &p), "alice");
        assert_eq!(policy.target("oncall", "t", &p), "rota:primary");
        assert_eq!(policy.target("team_lead", "t", &p), "team_lead:t");
    }

    #[test]
    fn validation_names_bad_routes_and_teams() {
        let mut policy = crate::testkit::policy();
        policy
            .severities
            .get_mut(&Severity::P2)
            .unwrap()
            .page_routes = vec!["a.b".into()];
        let problems = policy.validate();
        assert!(problems[0].contains("severity.P2"), "{problems:?}");
    }
}
