//! `[alertmanager.<integration>]` and `[pagerduty.<name>]`: the alert
//! intakes. Each section names the incident template its alerts become
//! reports of and how their labels, annotations or fields fill the packet;
//! the `intake` module does the mapping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{is_subject_token, Severity};

use super::templates::AGENT_FAILURE;

/// `[alertmanager.<integration>]`: one Alertmanager webhook receiver,
/// served at `POST /v1/alertmanager/<integration>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The incident template the alerts are reports of.
    #[serde(default = "agent_failure")]
    pub template: String,
    /// The label whose value names the alert's severity.
    #[serde(default = "severity_label")]
    pub severity_label: String,
    /// Label value → severity, matched ignoring ASCII case; entries here
    /// add to or replace the defaults `critical` → P1, `warning` → P2,
    /// `info` → P3.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// Severity of an alert whose severity label is absent or not in the
    /// map. Without it such an alert is refused (and recorded).
    #[serde(default)]
    pub default_severity: Option<Severity>,
    /// The label naming the receiving team; without it (or the label), the
    /// ownership map decides.
    #[serde(default = "team_label")]
    pub team_label: String,
    /// Labels tried in order for the packet's `workflow_id`: the first one
    /// present wins. Default `job` (the service, which the ownership and
    /// runbook maps match), then `alertname`.
    #[serde(default = "workflow_labels")]
    pub workflow_labels: Vec<String>,
    /// Annotations tried in order for `error_summary`: the first present.
    #[serde(default = "summary_annotations")]
    pub summary_annotations: Vec<String>,
    /// The annotation giving the packet's `objective`.
    #[serde(default = "objective_annotation")]
    pub objective_annotation: String,
    /// The annotation giving `recommended_action`.
    #[serde(default = "recommended_action_annotation")]
    pub recommended_action_annotation: String,
    /// The annotation holding a runbook link; the packet has no link
    /// field, so it is appended to `recommended_action` (or becomes it).
    #[serde(default = "runbook_annotation")]
    pub runbook_annotation: String,
    /// The annotation giving `rollback_command`.
    #[serde(default = "rollback_annotation")]
    pub rollback_annotation: String,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// `[pagerduty.<name>]`: one PagerDuty Events API v2 integration, chosen by
/// the event's `routing_key` at `POST /v2/enqueue`.
///
/// `Debug` is written by hand so the routing key never reaches a log line.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration key senders put in `routing_key`: 32 characters, as
    /// at PagerDuty, which is all that authenticates these events. Env:
    /// `BATON_PAGERDUTY_<NAME>_ROUTING_KEY` (name upper-cased, `-` → `_`).
    /// Never serialized or logged.
    #[serde(default, skip_serializing)]
    pub routing_key: String,
    /// The incident template the events are reports of.
    #[serde(default = "agent_failure")]
    pub template: String,
    /// The receiving team; without it, the ownership map decides.
    #[serde(default)]
    pub team: Option<String>,
    /// `workflow_id` for events whose `payload.group` is empty.
    #[serde(default)]
    pub workflow: Option<String>,
    /// `payload.severity` → severity; entries here replace the defaults
    /// `critical` and `error` → P1, `warning` → P2, `info` → P3.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// Events accepted per minute for this routing key (per daemon); more
    /// are answered 429 as PagerDuty does. 0 = no limit.
    #[serde(default = "rate_limit")]
    pub rate_limit: u32,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

impl std::fmt::Debug for PagerDutyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyConfig")
            .field("routing_key", &"<redacted>")
            .field("template", &self.template)
            .field("team", &self.team)
            .field("workflow", &self.workflow)
            .field("severity_map", &self.severity_map)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// PagerDuty's four `payload.severity` values.
pub const PD_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

fn agent_failure() -> String {
    AGENT_FAILURE.into()
}
fn severity_label() -> String {
    "severity".into()
}
fn team_label() -> String {
    "team".into()
}
fn workflow_labels() -> Vec<String> {
    vec!["job".into(), "alertname".into()]
}
fn summary_annotations() -> Vec<String> {
    vec!["summary".into(), "description".into()]
}
fn objective_annotation() -> String {
    "objective".into()
}
fn recommended_action_annotation() -> String {
    "recommended_action".into()
}
fn runbook_annotation() -> String {
    "runbook_url".into()
}
fn rollback_annotation() -> String {
    "rollback_command".into()
}
const fn rate_limit() -> u32 {
    120
}

impl AlertmanagerConfig {
    /// The severity for a label value: the map (ignoring case), then the
    /// defaults, then `default_severity`.
    pub fn severity(&self, value: Option<&str>) -> Option<Severity> {
        let mapped = value.and_then(|v| {
            self.severity_map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(v))
                .map(|(_, s)| *s)
                .or_else(|| match v.to_ascii_lowercase().as_str() {
                    "critical" => Some(Severity::P1),
                    "warning" => Some(Severity::P2),
                    "info" => Some(Severity::P3),
                    _ => None,
                })
        });
        mapped.or(self.default_severity)
    }
}

impl PagerDutyConfig {
    /// The severity for one of [`PD_SEVERITIES`]; `None` for anything else.
    pub fn severity(&self, value: &str) -> Option<Severity> {
        if !PD_SEVERITIES.contains(&value) {
            return None;
        }
        self.severity_map.get(value).copied().or(match value {
            "critical" | "error" => Some(Severity::P1),
            "warning" => Some(Severity::P2),
            _ => Some(Severity::P3),
        })
    }

    /// The environment variable that overrides `routing_key` for `name`.
    pub fn routing_key_env(name: &str) -> String {
        format!(
            "BATON_PAGERDUTY_{}_ROUTING_KEY",
            name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// Checks both sections against the incident templates there are; one
/// message per problem, naming the key (never a routing key's value).
pub fn validate(
    alertmanager: &BTreeMap<String, AlertmanagerConfig>,
    pagerduty: &BTreeMap<String, PagerDutyConfig>,
    is_incident_template: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    for (name, am) in alertmanager {
        let at = format!("alertmanager.{name}");
        if !name_ok(name) {
            problems.push(format!(
                "{at}: integration names are 1-64 letters, digits, '-' or '_' (they are URL path segments)"
            ));
        }
        if !is_incident_template(&am.template) {
            problems.push(format!(
                "{at}.template: {:?} is not an incident template",
                am.template
            ));
        }
        if am.workflow_labels.is_empty() || am.summary_annotations.is_empty() {
            problems.push(format!(
                "{at}: workflow_labels and summary_annotations need at least one name"
            ));
        }
    }
    let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, pd) in pagerduty {
        let at = format!("pagerduty.{name}");
        if !name_ok(name) {
            problems.push(format!(
                "{at}: integration names are 1-64 letters, digits, '-' or '_'"
            ));
        }
        if pd.routing_key.len() != 32 || !pd.routing_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            problems.push(format!(
                "{at}.routing_key: 32 letters or digits, as PagerDuty's (or set {})",
                PagerDutyConfig::routing_key_env(name)
            ));
        } else if let Some(other) = keys.insert(&pd.routing_key, name) {
            problems.push(format!("{at}.routing_key: the same as pagerduty.{other}'s"));
        }
        if !is_incident_template(&pd.template) {
            problems.push(format!(
                "{at}.template: {:?} is not an incident template",
                pd.template
            ));
        }
        if let Some(t) = &pd.team {
            if !is_subject_token(t) {
                problems.push(format!("{at}.team: {t:?} must be a subject token"));
            }
        }
        for k in pd.severity_map.keys() {
            if !PD_SEVERITIES.contains(&k.as_str()) {
                problems.push(format!(
                    "{at}.severity_map: {k:?} is not a PagerDuty severity (critical, error, warning, info)"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_defaults_map_the_usual_severity_labels() {
        let am = AlertmanagerConfig::default();
        assert_eq!(am.template, "agent_failure");
        assert_eq!(am.severity(Some("Critical")), Some(Severity::P1));
        assert_eq!(am.severity(Some("warning")), Some(Severity::P2));
        assert_eq!(am.severity(Some("page")), None);
        assert_eq!(am.severity(None), None);
        let am: AlertmanagerConfig = toml::from_str(
            "severity_map = { page = \"P1\", warning = \"P3\" }\ndefault_severity = \"P2\"",
        )
        .unwrap();
        assert_eq!(am.severity(Some("PAGE")), Some(Severity::P1));
        assert_eq!(am.severity(Some("warning")), Some(Severity::P3));
        assert_eq!(am.severity(Some("whatever")), Some(Severity::P2));
        assert!(toml::from_str::<AlertmanagerConfig>("severity_lable = \"x\"").is_err());
    }

    #[test]
    fn pagerduty_severities_and_validation() {
        let pd: PagerDutyConfig = toml::from_str(
            "routing_key = \"0123456789abcdef0123456789abcdef\"\nseverity_map = { error = \"P2\" }",
        )
        .unwrap();
        assert_eq!(pd.severity("critical"), Some(Severity::P1));
        assert_eq!(pd.severity("error"), Some(Severity::P2));
        assert_eq!(pd.severity("info"), Some(Severity::P3));
        assert_eq!(pd.severity("fatal"), None);
        assert!(!format!("{pd:?}").contains("0123456789"));
        let mut bad = pd.clone();
        bad.routing_key = "short".into();
        bad.severity_map.insert("fatal".into(), Severity::P1);
        let pds = BTreeMap::from([("ops".to_string(), bad), ("b".to_string(), pd.clone())]);
        let problems = validate(&BTreeMap::new(), &pds, |t| t == "agent_failure");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains("short")));
        let twice = BTreeMap::from([("a".to_string(), pd.clone()), ("b".to_string(), pd)]);
        assert_eq!(validate(&BTreeMap::new(), &twice, |_| true).len(), 1);
        assert_eq!(
            PagerDutyConfig::routing_key_env("data-team"),
            "BATON_PAGERDUTY_DATA_TEAM_ROUTING_KEY"
        );
    }

    #[test]
    fn the_documented_integration_snippets_parse_and_validate() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/integrations.md"))
                .unwrap();
        let mut n = 0;
        for block in readme.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap();
            if block.contains("[alertmanager.") || block.contains("[pagerduty.") {
                let cfg = crate::config::Config::parse(block).unwrap_or_else(|e| panic!("{e}"));
                cfg.validate().unwrap_or_else(|e| panic!("{e}\n{block}"));
                n += 1;
            }
        }
        assert_eq!(n, 2);
    }
}
