//! The policy sections of the config file: `[severity.*]`, `[[ownership]]`,
//! `[[runbook]]` and `[routes.*]`, and [`Config::policy`], which converts
//! them (with the templates and the drill route) into the
//! [`domain::Policy`](Policy) that `decide` reads.
//!
//! These are the file's shapes only. The domain's policy types carry no
//! serde attributes of the file, so a key can be renamed here without the
//! domain noticing; the severity names (`P1`…) and `below_min`'s values are
//! spelled the same as in events, but read into this module's own types.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{
    default_severities, BelowMin, Level, OwnershipRule, Policy, Route, RunbookRule,
};

use super::Config;

/// `[severity.P1]` etc. Every field is optional; what is left out keeps the
/// playbook default (see `domain::default_severities`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// Minimum HCS to page at once (P1 90, P2 85, P3 70).
    pub min_hcs: Option<f64>,
    /// Below the minimum: `enrich_then_page` (P1), `queue` (P2), `ticket` (P3).
    pub below_min: Option<BelowMinConfig>,
    /// Longest hold before an incomplete `enrich_then_page` report pages anyway (60s).
    #[serde(default, with = "humantime_serde")]
    pub max_hold: Option<Duration>,
    /// First-response target (P1 5m, P2 15m, P3 4h).
    #[serde(default, with = "humantime_serde")]
    pub first_response: Option<Duration>,
    /// Routes paged when the gate passes (P1 oncall, P2 owner, P3 queue).
    pub page_routes: Option<Vec<String>>,
    /// Escalation levels, replacing the default list when given.
    pub escalation: Option<Vec<LevelConfig>>,
}

/// `below_min`: what happens when a report scores below its severity's
/// `min_hcs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BelowMinConfig {
    /// P1: enrich, then page; if still incomplete, page anyway after
    /// `max_hold`, flagged `incomplete`.
    EnrichThenPage,
    /// P2: route to the owner queue until an `enrich` completes the packet.
    Queue,
    /// P3: open an async ticket on the queue route asking for the missing
    /// fields; page when completed.
    Ticket,
}

/// One entry of `escalation = [...]` in `[severity.*]`: one escalation
/// level, who is paged and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// Routes paged at this level (each becomes `<prefix>.page.<route>.<team>`).
    pub routes: Vec<String>,
    /// Time to wait for an acknowledgement after each page of this level
    /// before the next step ("5m", "300ms").
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Extra times this level is paged again, `delay` apart, before moving on.
    #[serde(default)]
    pub repeat: u32,
}

/// `[[ownership]]`: who owns workflows matching a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipConfig {
    /// Glob over `workflow_id` (`*` and `?`), e.g. `"billing-*"`.
    pub workflow: String,
    /// Team that receives the handoff.
    pub team: String,
    /// Primary owner.
    pub primary: String,
    /// Backup owner.
    #[serde(default)]
    pub backup: Option<String>,
}

/// `[[runbook]]`: the rollback command for workflows matching a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    /// Glob over `workflow_id` (`*` and `?`).
    pub workflow: String,
    /// Rollback or fallback command filled into packets that lack one.
    pub rollback_command: String,
    /// Whether this rollback has been exercised; untested rollbacks make
    /// "complete" packets fail in practice (the ownership audit lists them).
    #[serde(default)]
    pub tested: bool,
}

/// `[routes.<name>]`: who a route reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Who is reached (a rota, a person, a queue); shown in the page as `target`.
    /// `rotation:<id>`, `person:<id>`, `owner` and `backup` are resolved to
    /// the person on call when the page is decided; anything else
    /// (`rota:primary`) is an opaque label.
    pub target: String,
    /// How to reach the route itself when its page names no person, or
    /// when every contact method of the person failed: the same shape as
    /// `[people.<id>].contact` (`[{ kind = "slack", webhook_url = "env:OPS_SLACK" }]`),
    /// tried in order. Used by the delivery worker only; never stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<super::ContactConfig>,
    /// Who is paged when `target` resolves to nobody at run time (everyone
    /// overridden away, an empty participant list): `person:<id>` or
    /// `rotation:<id>`. Counted in `baton_unresolved_targets_total{route}`.
    #[serde(default)]
    pub fallback: Option<String>,
}

impl From<BelowMinConfig> for BelowMin {
    fn from(c: BelowMinConfig) -> Self {
        match c {
            BelowMinConfig::EnrichThenPage => BelowMin::EnrichThenPage,
            BelowMinConfig::Queue => BelowMin::Queue,
            BelowMinConfig::Ticket => BelowMin::Ticket,
        }
    }
}

impl From<&LevelConfig> for Level {
    fn from(c: &LevelConfig) -> Self {
        Level {
            routes: c.routes.clone(),
            delay: c.delay,
            repeat: c.repeat,
        }
    }
}

impl From<&OwnershipConfig> for OwnershipRule {
    fn from(c: &OwnershipConfig) -> Self {
        OwnershipRule {
            workflow: c.workflow.clone(),
            team: c.team.clone(),
            primary: c.primary.clone(),
            backup: c.backup.clone(),
        }
    }
}

impl From<&RunbookConfig> for RunbookRule {
    fn from(c: &RunbookConfig) -> Self {
        RunbookRule {
            workflow: c.workflow.clone(),
            rollback_command: c.rollback_command.clone(),
            tested: c.tested,
        }
    }
}

impl From<&RouteConfig> for Route {
    fn from(c: &RouteConfig) -> Self {
        Route {
            target: c.target.clone(),
            fallback: c.fallback.clone(),
        }
    }
}

impl Config {
    /// The domain policy this config describes: the playbook's severity
    /// defaults with the file's `[severity.*]` fields laid over them, the
    /// ownership, runbook and route maps, the templates, and where drills
    /// page.
    pub fn policy(&self) -> Policy {
        let mut severities = default_severities();
        for (sev, c) in &self.severity {
            let p = severities.get_mut(sev).expect("all severities");
            if let Some(v) = c.min_hcs {
                p.min_hcs = v;
            }
            if let Some(v) = c.below_min {
                p.below_min = v.into();
            }
            if let Some(v) = c.max_hold {
                p.max_hold = v;
            }
            if let Some(v) = c.first_response {
                p.first_response = v;
            }
            if let Some(v) = &c.page_routes {
                p.page_routes = v.clone();
            }
            if let Some(v) = &c.escalation {
                p.escalation = v.iter().map(Level::from).collect();
            }
        }
        Policy {
            severities,
            ownership: self.ownership.iter().map(OwnershipRule::from).collect(),
            runbook: self.runbook.iter().map(RunbookRule::from).collect(),
            routes: self
                .routes
                .iter()
                .map(|(name, r)| (name.clone(), Route::from(r)))
                .collect(),
            default_team: self.default_team.clone(),
            drill_route: (!self.jobs.weekly_drill.page_real_routes)
                .then(|| self.jobs.weekly_drill.route.clone()),
            templates: self.templates.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;

    #[test]
    fn every_policy_section_reaches_the_domain_policy() {
        let cfg = Config::parse(
            r#"
[severity.P2]
below_min = "ticket"
escalation = [{ routes = ["owner", "lead"], delay = "2m", repeat = 3 }]

[[ownership]]
workflow = "billing-*"
team = "payments"
primary = "alice"

[[runbook]]
workflow = "billing-*"
rollback_command = "billing rollback"
tested = true

[routes.oncall]
target = "rota:payments"
"#,
        )
        .unwrap();
        let p = cfg.policy();
        let p2 = p.severity(Severity::P2);
        assert_eq!(p2.below_min, BelowMin::Ticket);
        assert_eq!(
            p2.escalation,
            [Level {
                routes: vec!["owner".into(), "lead".into()],
                delay: Duration::from_secs(120),
                repeat: 3,
            }]
        );
        assert_eq!(p2.min_hcs, 85.0, "the rest keeps the playbook default");
        assert_eq!(
            p.ownership,
            [OwnershipRule {
                workflow: "billing-*".into(),
                team: "payments".into(),
                primary: "alice".into(),
                backup: None,
            }]
        );
        assert_eq!(
            p.runbook,
            [RunbookRule {
                workflow: "billing-*".into(),
                rollback_command: "billing rollback".into(),
                tested: true,
            }]
        );
        assert_eq!(p.routes["oncall"].target, "rota:payments");
    }

    #[test]
    fn below_min_values_are_the_documented_ones() {
        for (text, want) in [
            ("enrich_then_page", BelowMin::EnrichThenPage),
            ("queue", BelowMin::Queue),
            ("ticket", BelowMin::Ticket),
        ] {
            let cfg = Config::parse(&format!("[severity.P3]\nbelow_min = {text:?}\n")).unwrap();
            assert_eq!(cfg.policy().severity(Severity::P3).below_min, want);
        }
    }
}
