//! Handoff templates: the ones shipped in `config/templates/`, the
//! directory a deployment loads them from, and the name of the one template
//! every configuration must have ([`AGENT_FAILURE`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::domain::teamwork::Template;

use super::ConfigError;

/// The template of the agent-failure packet (always configured).
pub const AGENT_FAILURE: &str = "agent_failure";

/// The templates shipped in `config/templates/`, built in for a daemon
/// started without a config file.
pub fn builtin_templates() -> BTreeMap<String, Template> {
    crate::domain::teamwork::builtin_templates()
}

/// Loads every `*.toml` in `dir` as a template; errors name the file.
pub fn load_templates(dir: &Path) -> Result<BTreeMap<String, Template>, ConfigError> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let t: Template = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
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
