//! Handoff templates: the file format of `config/templates/<name>.toml`
//! ([`TemplateFile`]), the ones shipped there, the directory a deployment
//! loads them from, and the name of the one template every configuration
//! must have ([`AGENT_FAILURE`]).
//!
//! A file is parsed into a [`TemplateFile`] and converted into the domain's
//! [`Template`], which is what the rules read and what each `initiated`
//! event stores. The two are separate types on purpose: the file's keys
//! belong to the config and may be renamed or gain aliases; the stored
//! record's shape is forever, and only [`TemplateFile::into_template`]
//! connects them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::teamwork::{Template, TemplateEscalation, TemplateKind, TemplateSla};
use crate::domain::Severity;

use super::ConfigError;

/// The template of the agent-failure packet (always configured).
pub const AGENT_FAILURE: &str = "agent_failure";

/// One template file (`config/templates/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Transition name; also the `<template>` subject token.
    pub name: String,
    /// Bump on every change; handoffs keep the version they were opened under.
    pub version: u32,
    /// `work` (default) or `incident`.
    #[serde(default)]
    pub kind: TemplateKindFile,
    /// What this handoff is for.
    #[serde(default)]
    pub description: String,
    /// Sending team.
    pub from_team: String,
    /// Receiving team, notified on `<prefix>.page.team.<to_team>`.
    pub to_team: String,
    /// Entry criteria: a handoff cannot start without every one of these.
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// Further fields that add to the completeness score when present.
    #[serde(default)]
    pub optional_fields: Vec<String>,
    /// Exit criteria: `complete` is refused while any is unchecked.
    #[serde(default)]
    pub checklist: Vec<String>,
    /// Accept / complete SLAs (work templates).
    #[serde(default)]
    pub sla: Option<TemplateSlaFile>,
    /// Routes paged when an SLA is missed.
    #[serde(default)]
    pub escalation: TemplateEscalationFile,
    /// Who owns each step and who decides (role → who).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Completeness rubric, field → points (HCS-style score 0–100). Default:
    /// every required and optional field weighs the same.
    #[serde(default)]
    pub rubric: BTreeMap<String, u32>,
    /// Priority label used for metrics and pages (`P1`, `P2` or `P3`, the
    /// names used everywhere).
    #[serde(default = "p3")]
    pub priority: Severity,
    /// Only members of the receiving team (`[people.<id>].teams` holding
    /// `to_team`) may `accept`, `complete` and `rate` it, with a person
    /// credential. Access, not a property of the handoff: it is not stored
    /// in the `initiated` event, so changing it applies to open handoffs.
    #[serde(default)]
    pub members_only: bool,
}

const fn p3() -> Severity {
    Severity::P3
}

/// `kind` of a template file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKindFile {
    /// Reports on `<prefix>.report.<name>`, scored by HCS, gated per severity.
    Incident,
    /// Started by a person; accepted, checked off and completed by the receiver.
    #[default]
    Work,
}

/// `[sla]`: accept and complete SLAs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSlaFile {
    /// The receiving team must accept within this ("4h").
    #[serde(with = "humantime_serde")]
    pub accept: Duration,
    /// The handoff must be completed within this of being initiated ("5d").
    #[serde(with = "humantime_serde")]
    pub complete: Duration,
}

/// `[escalation]`: routes paged when an SLA is missed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateEscalationFile {
    /// Routes paged when nobody accepted in time.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Routes paged when it was not completed in time.
    #[serde(default)]
    pub complete: Vec<String>,
}

impl TemplateFile {
    /// The template the rules read and `initiated` events store. Checking it
    /// is [`Template::validate`]'s (run by `Config::validate` with every
    /// other problem), so that `check-config` lists them all at once.
    pub fn into_template(self) -> Template {
        Template {
            name: self.name,
            version: self.version,
            kind: match self.kind {
                TemplateKindFile::Incident => TemplateKind::Incident,
                TemplateKindFile::Work => TemplateKind::Work,
            },
            description: self.description,
            from_team: self.from_team,
            to_team: self.to_team,
            required_fields: self.required_fields,
            optional_fields: self.optional_fields,
            checklist: self.checklist,
            sla: self.sla.map(|s| TemplateSla {
                accept: s.accept,
                complete: s.complete,
            }),
            escalation: TemplateEscalation {
                accept: self.escalation.accept,
                complete: self.escalation.complete,
            },
            roles: self.roles,
            rubric: self.rubric,
            priority: self.priority,
        }
    }
}

/// Parses one template file's text.
fn parse(text: &str) -> Result<Template, toml::de::Error> {
    toml::from_str::<TemplateFile>(text).map(TemplateFile::into_template)
}

/// The templates shipped in `config/templates/`, built in for a daemon
/// started without a config file.
pub fn builtin_templates() -> BTreeMap<String, Template> {
    [
        include_str!("../../config/templates/agent_failure.toml"),
        include_str!("../../config/templates/sales_to_onboarding.toml"),
        include_str!("../../config/templates/design_to_development.toml"),
    ]
    .iter()
    .map(|t| parse(t).expect("shipped templates parse"))
    .map(|t| (t.name.clone(), t))
    .collect()
}

/// Every `*.toml` in `dir`, parsed, in name order; errors name the file.
fn read_files(dir: &Path) -> Result<Vec<(PathBuf, TemplateFile)>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let file = toml::from_str::<TemplateFile>(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((path, file))
        })
        .collect()
}

/// Loads every `*.toml` in `dir` as a template; errors name the file.
pub fn load_templates(dir: &Path) -> Result<BTreeMap<String, Template>, ConfigError> {
    let mut out = BTreeMap::new();
    for (path, file) in read_files(dir)? {
        let t = file.into_template();
        if let Some(prev) = out.insert(t.name.clone(), t) {
            return Err(ConfigError::Invalid(vec![format!(
                "template {:?} is defined twice ({})",
                prev.name,
                path.display()
            )]));
        }
    }
    Ok(out)
}

/// The names of the templates in `dir` that say `members_only = true`.
pub fn members_only_templates(
    dir: &Path,
) -> Result<std::collections::BTreeSet<String>, ConfigError> {
    Ok(read_files(dir)?
        .into_iter()
        .filter(|(_, f)| f.members_only)
        .map(|(_, f)| f.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain's test fixtures build the shipped templates in code (the
    /// domain cannot read the config format); they must stay what the
    /// shipped files load into.
    #[test]
    fn the_testkit_templates_are_the_shipped_files() {
        assert_eq!(builtin_templates(), crate::testkit::templates());
    }

    /// The `initiated` event a shipped template is stored in, as JSON.
    fn stored(t: &Template) -> String {
        serde_json::to_string(&crate::domain::EventData::Initiated {
            template: Box::new(t.clone()),
            by: "sam".into(),
            fields: BTreeMap::new(),
            completeness: Default::default(),
            notice: Box::new(crate::domain::Notice {
                routes: vec![],
                team: t.to_team.clone(),
                severity: t.priority,
                template: t.name.clone(),
                hcs: Default::default(),
                packet: Default::default(),
                incomplete: false,
                respond_by: None,
                work: None,
            }),
        })
        .unwrap()
    }

    /// Issue #11: a config key rename never changes stored bytes. The file
    /// is read into `TemplateFile`; what an `initiated` event stores is
    /// `Template`'s serde shape, pinned here. A later config that renames a
    /// key (here `checklist` → `exit_criteria`, read into the same DTO the
    /// way an alias or a migration would) changes the DTO side only: the
    /// stored bytes stay these. Note the duration: the file says `"5d"`,
    /// the record says what it has always said, `"5days"`.
    #[test]
    fn a_renamed_config_key_does_not_change_the_bytes_stored_in_an_initiated_event() {
        const STORED: &str = r#"{"type":"initiated","data":{"template":{"name":"sales_to_onboarding","version":1,"kind":"work","description":"A signed client moves from sales to onboarding","from_team":"sales","to_team":"onboarding","required_fields":["client_name","contract_value","start_date","key_contacts","special_requirements","goals"],"optional_fields":["crm_link","renewal_date"],"checklist":["Contract signed and filed","Kickoff meeting scheduled","Client portal access created","Welcome email sent"],"sla":{"accept":"4h","complete":"5days"},"escalation":{"accept":["team_lead"],"complete":["team_lead","manager"]},"roles":{"decider":"onboarding-lead","manager":"head-of-customer-success","receiver":"onboarding manager","sender":"account executive","team_lead":"onboarding-lead"},"rubric":{"client_name":10,"contract_value":10,"crm_link":5,"goals":20,"key_contacts":20,"renewal_date":5,"special_requirements":15,"start_date":15},"priority":"P3"},"by":"sam","fields":{},"completeness":{"score":0.0,"context":0,"ownership":0,"next_action":0,"reproducibility":0,"missing":[]},"notice":{"routes":[],"team":"onboarding","severity":"P3","template":"sales_to_onboarding","hcs":{"score":0.0,"context":0,"ownership":0,"next_action":0,"reproducibility":0,"missing":[]},"packet":{},"incomplete":false}}}"#;
        let shipped = include_str!("../../config/templates/sales_to_onboarding.toml");
        assert_eq!(stored(&parse(shipped).unwrap()), STORED);

        /// The same file format with one key renamed: `checklist` is
        /// spelled `exit_criteria`.
        #[derive(Deserialize)]
        struct Renamed {
            exit_criteria: Vec<String>,
            #[serde(flatten)]
            file: TemplateFile,
        }
        let renamed_text = shipped.replacen("checklist = [", "exit_criteria = [", 1);
        assert!(parse(&renamed_text).is_err(), "today's key is `checklist`");
        let renamed: Renamed = toml::from_str(&renamed_text).unwrap();
        let file = TemplateFile {
            checklist: renamed.exit_criteria,
            ..renamed.file
        };
        assert_eq!(stored(&file.into_template()), STORED);
    }
}
