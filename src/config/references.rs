//! The stricter checks of `baton check-config`: a route named in the file
//! that is neither built in nor under `[routes]` but a small edit away from
//! a route that is (or that the config names elsewhere) is reported as the
//! typo it almost always is; and the templates folder must exist. A route
//! far from every other name stays what docs/wire-contract.md promises: an unnamed
//! route, paged as `<route>:<team>`. `serve` does not run these checks.

use std::path::Path;

use super::Config;
use crate::domain::teamwork::ROUTE_TEAM;
use crate::domain::{ROUTE_BACKUP, ROUTE_OWNER, ROUTE_QUEUE};

/// Routes that need no `[routes.<name>]`: they reach the packet's owners,
/// its owner queue, or a team handoff's team.
pub const BUILTIN_ROUTES: [&str; 4] = [ROUTE_OWNER, ROUTE_BACKUP, ROUTE_QUEUE, ROUTE_TEAM];

impl Config {
    /// Route names in the file that look like typos of a known or named
    /// route, one line each, naming the key and the route meant. A
    /// template's escalation may also name one of its `roles`. The playbook
    /// defaults of keys left out are not checked.
    pub fn reference_problems(&self) -> Vec<String> {
        let policy = self.policy();
        let mut named: Vec<&str> = BUILTIN_ROUTES
            .into_iter()
            .chain(self.routes.keys().map(String::as_str))
            .collect();
        for p in policy.severities.values() {
            named.extend(p.page_routes.iter().map(String::as_str));
            named.extend(
                p.escalation
                    .iter()
                    .flat_map(|l| l.routes.iter().map(String::as_str)),
            );
        }
        for t in self.templates.values() {
            named.extend(t.escalation.accept.iter().map(String::as_str));
            named.extend(t.escalation.complete.iter().map(String::as_str));
        }
        named.sort_unstable();
        named.dedup();
        let defined: Vec<&str> = BUILTIN_ROUTES
            .into_iter()
            .chain(self.routes.keys().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        let mut check = |key: String, route: &str, roles: &[&str]| {
            if defined.contains(&route) || roles.contains(&route) {
                return;
            }
            let others: Vec<&str> = named
                .iter()
                .chain(roles)
                .copied()
                .filter(|c| *c != route)
                .collect();
            if let Some(meant) = closest(route, &others) {
                out.push(format!(
                    "{key}: route {route:?} is not built in (owner, backup, queue, team) nor under [routes]; did you mean {meant:?}?"
                ));
            }
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
        // Meant: the route the escalation names, or the one under [routes].
        for text in [
            "[severity.P1]\npage_routes = [\"oncal\"]\n",
            "[severity.P1]\npage_routes = [\"oncal\"]\nescalation = []\n[routes.oncall]\ntarget = \"person:a\"\n",
        ] {
            let cfg = Config::parse(text).unwrap();
            let problems = cfg.reference_problems();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with("severity.P1.page_routes: route \"oncal\"")
                    && problems[0].ends_with("did you mean \"oncall\"?"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn an_unnamed_route_far_from_every_other_is_no_problem() {
        let cfg = Config::parse("[severity.P3]\npage_routes = [\"night_desk\"]\n").unwrap();
        assert_eq!(cfg.reference_problems(), Vec::<String>::new());
    }

    #[test]
    fn a_template_escalation_may_name_its_roles() {
        let mut cfg = Config::parse("").unwrap();
        assert_eq!(cfg.reference_problems(), Vec::<String>::new());
        let t = cfg
            .templates
            .values_mut()
            .find(|t| t.roles.contains_key("team_lead"))
            .unwrap();
        t.escalation.accept = vec!["team_leed".into()];
        let problems = cfg.reference_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with("did you mean \"team_lead\"?"),
            "{problems:?}"
        );
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
