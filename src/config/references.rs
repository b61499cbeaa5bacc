//! The stricter checks of `baton check-config`: every route a severity or a
//! template names must be one Baton knows, and the templates folder must
//! exist. `serve` does not require them (an unnamed route still pages as
//! `<route>:<team>`), but in a file they are almost always typos.

use std::path::Path;

use super::Config;
use crate::domain::teamwork::ROUTE_TEAM;
use crate::domain::{ROUTE_BACKUP, ROUTE_OWNER, ROUTE_QUEUE};

/// Routes that need no `[routes.<name>]`: they reach the packet's owners,
/// its owner queue, or a team handoff's team.
pub const BUILTIN_ROUTES: [&str; 4] = [ROUTE_OWNER, ROUTE_BACKUP, ROUTE_QUEUE, ROUTE_TEAM];

impl Config {
    /// Routes named in the file that are neither built in nor under
    /// `[routes]` (a template's escalation may also name one of its
    /// `roles`), one line per problem with the closest known name. The
    /// playbook defaults of keys left out are not checked.
    pub fn reference_problems(&self) -> Vec<String> {
        let known: Vec<&str> = BUILTIN_ROUTES
            .into_iter()
            .chain(self.routes.keys().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        let mut check = |key: String, route: &str, also: &[&str]| {
            if known.contains(&route) || also.contains(&route) {
                return;
            }
            let mut candidates: Vec<&str> = known.iter().chain(also).copied().collect();
            candidates.sort_unstable();
            let hint = match closest(route, &candidates) {
                Some(c) => format!("did you mean {c:?}?"),
                None => format!("known: {}", candidates.join(", ")),
            };
            out.push(format!(
                "{key}: route {route:?} is not built in (owner, backup, queue, team) nor under [routes]; {hint}"
            ));
        };
        for (sev, s) in &self.severity {
            for r in s.page_routes.iter().flatten() {
                check(format!("severity.{sev}.page_routes"), r, &[]);
            }
            for (i, level) in s.escalation.iter().flatten().enumerate() {
                for r in &level.routes {
                    check(format!("severity.{sev}.escalation[{i}].routes"), r, &[]);
                }
            }
        }
        for (name, t) in &self.templates {
            let roles: Vec<&str> = t.roles.keys().map(String::as_str).collect();
            for (stage, routes) in [
                ("accept", &t.escalation.accept),
                ("complete", &t.escalation.complete),
            ] {
                for r in routes {
                    check(format!("templates.{name}.escalation.{stage}"), r, &roles);
                }
            }
        }
        out
    }

    /// The folder [`Config::load`] reads templates from for a file at
    /// `path`: `templates_dir` (relative to the file), else `templates/`
    /// beside it.
    pub fn templates_dir_for(&self, path: &Path) -> std::path::PathBuf {
        let beside = path.parent().unwrap_or(Path::new("."));
        match &self.templates_dir {
            Some(d) if d.is_relative() => beside.join(d),
            Some(d) => d.clone(),
            None => beside.join("templates"),
        }
    }
}

/// The candidate nearest to `name` by edit distance, if it is near (at
/// most a third of the name's length, and at least 1).
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_name_typo_is_named_with_the_route_meant() {
        let cfg = Config::parse(
            "[severity.P1]\npage_routes = [\"oncal\"]\n[routes.oncall]\ntarget = \"person:alice\"\n",
        )
        .unwrap();
        let problems = cfg.reference_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("severity.P1.page_routes: route \"oncal\"")
                && problems[0].ends_with("did you mean \"oncall\"?"),
            "{problems:?}"
        );
    }

    #[test]
    fn defaults_builtins_and_template_roles_are_known_routes() {
        let mut cfg =
            Config::parse("[severity.P2]\npage_routes = [\"owner\", \"queue\"]\n").unwrap();
        assert_eq!(cfg.reference_problems(), Vec::<String>::new());
        let t = cfg.templates.values_mut().next().unwrap();
        t.escalation.accept = vec!["nobody_here".into()];
        assert_eq!(cfg.reference_problems().len(), 1);
    }

    #[test]
    fn the_shipped_configs_name_only_known_routes() {
        for name in ["config/baton.toml", "config/dev.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
            let cfg = Config::load(&path).unwrap();
            assert_eq!(cfg.reference_problems(), Vec::<String>::new(), "{name}");
            assert!(cfg.templates_dir_for(&path).is_dir(), "{name}");
        }
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("oncal", "oncall"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("zzz", &["oncall"]), None);
    }
}
