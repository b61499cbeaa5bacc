//! `[[heartbeat]]`: monitors of runners that must ping
//! `<prefix>.heartbeat.<name>` at least every `period` (+ `grace`).
//!
//! The file's own type; the daemon converts it into the heartbeat module's
//! settings at start-up (`heartbeat::run::monitors`). Nothing of it is
//! stored: the incidents it opens carry a generated report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::teamwork::{Template, TemplateKind};
use crate::domain::{is_subject_token, Severity, MAX_DURATION};

use super::AGENT_FAILURE;

/// One `[[heartbeat]]` monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The monitor's name: one subject token (`nightly-etl` is pinged on
    /// `<prefix>.heartbeat.nightly-etl` and `POST /v1/heartbeats/nightly-etl`).
    pub name: String,
    /// How often the runner pings `ok` ("24h", "5m", "250ms").
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// How late an `ok` may come before the monitor alerts ("10m").
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Severity of the incidents it opens (`P1`, `P2` or `P3`).
    pub severity: Severity,
    /// Team that receives them (a subject token, like every team).
    pub team: String,
    /// Workflow they are about; ownership and runbook rules match it.
    pub workflow: String,
    /// Incident template they are opened under (default `agent_failure`).
    #[serde(default)]
    pub template: Option<String>,
    /// Alert when no ping ever came, counting from the daemon's start
    /// (default false: a monitor never pinged stays silent).
    #[serde(default)]
    pub alert_if_never_pinged: bool,
}

impl HeartbeatConfig {
    /// The incident template it opens incidents under.
    pub fn template(&self) -> &str {
        self.template.as_deref().unwrap_or(AGENT_FAILURE)
    }
}

/// Every problem with the monitors, each naming `heartbeat[<i>]` and its key.
pub fn validate(
    monitors: &[HeartbeatConfig],
    templates: &BTreeMap<String, Template>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for (i, m) in monitors.iter().enumerate() {
        let at = format!("heartbeat[{i}]");
        if !is_subject_token(&m.name) {
            problems.push(format!("{at}.name: {:?} must be one subject token", m.name));
        } else if !names.insert(m.name.as_str()) {
            problems.push(format!("{at}.name: {:?} is configured twice", m.name));
        }
        if m.period.is_zero() {
            problems.push(format!("{at}.period: must be > 0"));
        }
        if m.period.saturating_add(m.grace) > MAX_DURATION {
            problems.push(format!("{at}: period + grace must be at most ten years"));
        }
        if !is_subject_token(&m.team) {
            problems.push(format!("{at}.team: {:?} must be one subject token", m.team));
        }
        if m.workflow.trim().is_empty() {
            problems.push(format!("{at}.workflow: must not be empty"));
        }
        match templates.get(m.template()) {
            Some(t) if t.kind == TemplateKind::Incident => {}
            Some(_) => problems.push(format!(
                "{at}.template: {:?} is not an incident template",
                m.template()
            )),
            None => problems.push(format!("{at}.template: no template {:?}", m.template())),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const ONE: &str = r#"
[[heartbeat]]
name = "nightly-etl"
period = "24h"
grace = "30m"
severity = "P2"
team = "data"
workflow = "etl-nightly"
"#;

    #[test]
    fn a_monitor_parses_with_its_defaults() {
        let cfg = Config::parse(ONE).unwrap();
        cfg.validate().unwrap();
        let m = &cfg.heartbeat[0];
        assert_eq!(m.period, std::time::Duration::from_secs(24 * 3600));
        assert_eq!(m.template(), "agent_failure");
        assert!(!m.alert_if_never_pinged);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::parse(&format!("{ONE}perod = \"1m\"\n")).unwrap_err();
        assert!(err.contains("perod"), "{err}");
    }

    #[test]
    fn validation_names_every_bad_monitor_field() {
        let text = format!(
            "{ONE}{}",
            ONE.replace("\"24h\"", "\"0s\"")
                .replace("\"data\"", "\"a.b\"")
                .replace(
                    "workflow = \"etl-nightly\"",
                    "workflow = \" \"\ntemplate = \"sales_to_onboarding\""
                )
        );
        let err = Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        for want in [
            "heartbeat[1].name: \"nightly-etl\" is configured twice",
            "heartbeat[1].period: must be > 0",
            "heartbeat[1].team",
            "heartbeat[1].workflow",
            "heartbeat[1].template: \"sales_to_onboarding\" is not an incident template",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
        let err = Config::parse(&ONE.replace("workflow", "template = \"nope\"\nworkflow"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("heartbeat[0].template: no template \"nope\""),
            "{err}"
        );
    }
}
