//! Workflow diagrams: every template as a flow between teams with its handoff
//! point, entry/exit criteria counts, SLAs and escalation routes, plus the
//! incident escalation chain per severity. Mermaid (renders on the code host)
//! or Graphviz DOT.

use std::fmt::Write;

use crate::domain::teamwork::TemplateKind;
use crate::domain::Policy;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Node ids: letters, digits and `_` only, valid in both formats.
fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

struct Edge {
    from: String,
    to: String,
    label: String,
    dashed: bool,
}

/// Teams and routes as nodes, handoff points and escalations as edges.
fn edges(policy: &Policy) -> (Vec<(String, String)>, Vec<Edge>) {
    let mut nodes: Vec<(String, String)> = Vec::new();
    let add = |n: &str, label: String, nodes: &mut Vec<(String, String)>| {
        if !nodes.iter().any(|(i, _)| *i == id(n)) {
            nodes.push((id(n), label));
        }
    };
    let mut out = Vec::new();
    for t in policy
        .templates
        .values()
        .filter(|t| t.kind == TemplateKind::Work)
    {
        add(
            &format!("team_{}", t.from_team),
            format!("team {}", t.from_team),
            &mut nodes,
        );
        add(
            &format!("team_{}", t.to_team),
            format!("team {}", t.to_team),
            &mut nodes,
        );
        let sla = t
            .sla
            .as_ref()
            .map(|s| {
                format!(
                    "accept ≤ {}, complete ≤ {}",
                    human(s.accept),
                    human(s.complete)
                )
            })
            .unwrap_or_default();
        out.push(Edge {
            from: id(&format!("team_{}", t.from_team)),
            to: id(&format!("team_{}", t.to_team)),
            label: format!(
                "{} v{}: {} entry / {} exit criteria; {}",
                t.name,
                t.version,
                t.required_fields.len(),
                t.checklist.len(),
                sla
            ),
            dashed: false,
        });
        for (stage, routes) in [
            ("accept", &t.escalation.accept),
            ("complete", &t.escalation.complete),
        ] {
            for r in routes {
                let node = format!("route_{r}");
                add(&node, format!("route {r}"), &mut nodes);
                out.push(Edge {
                    from: id(&format!("team_{}", t.to_team)),
                    to: id(&node),
                    label: format!("{} {stage} SLA missed", t.name),
                    dashed: true,
                });
            }
        }
    }
    for (sev, p) in &policy.severities {
        let start = format!("incident_{sev}");
        add(
            &start,
            format!("{sev} report (min HCS {})", p.min_hcs),
            &mut nodes,
        );
        let mut prev = start.clone();
        let first = p.page_routes.join(" + ");
        let page = format!("{sev}_page");
        add(&page, format!("{sev} page: {first}"), &mut nodes);
        out.push(Edge {
            from: id(&prev),
            to: id(&page),
            label: format!(
                "HCS ≥ {} pages; below: {}",
                p.min_hcs,
                serde_json::to_value(p.below_min)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ),
            dashed: false,
        });
        prev = page;
        let mut after = p.first_response;
        for (i, l) in p.escalation.iter().enumerate() {
            let n = format!("{sev}_L{}", i + 1);
            add(
                &n,
                format!("{sev} L{}: {}", i + 1, l.routes.join(" + ")),
                &mut nodes,
            );
            out.push(Edge {
                from: id(&prev),
                to: id(&n),
                label: format!(
                    "no ack in {}{}",
                    human(after),
                    if l.repeat > 0 {
                        format!(", repeats {}x every {}", l.repeat, human(l.delay))
                    } else {
                        String::new()
                    }
                ),
                dashed: true,
            });
            after = l.delay * (l.repeat + 1);
            prev = n;
        }
    }
    (nodes, out)
}

fn escape(s: &str) -> String {
    s.replace('"', "'")
}

/// Renders every template and severity chain.
pub fn render(policy: &Policy, format: Format) -> String {
    let (nodes, edges) = edges(policy);
    let mut out = String::new();
    match format {
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, label) in &nodes {
                let _ = writeln!(out, "    {i}[\"{}\"]", escape(label));
            }
            for e in &edges {
                let arrow = if e.dashed { "-.->" } else { "-->" };
                let _ = writeln!(
                    out,
                    "    {} {arrow}|\"{}\"| {}",
                    e.from,
                    escape(&e.label),
                    e.to
                );
            }
        }
        Format::Dot => {
            out.push_str(
                "digraph baton {\n    rankdir=LR;\n    node [shape=box, style=rounded];\n",
            );
            for (i, label) in &nodes {
                let _ = writeln!(out, "    {i} [label=\"{}\"];", escape(label));
            }
            for e in &edges {
                let style = if e.dashed { ", style=dashed" } else { "" };
                let _ = writeln!(
                    out,
                    "    {} -> {} [label=\"{}\"{style}];",
                    e.from,
                    e.to,
                    escape(&e.label)
                );
            }
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_and_severity_appears_in_both_formats() {
        let policy = crate::testkit::policy();
        for f in [Format::Mermaid, Format::Dot] {
            let d = render(&policy, f);
            for name in [
                "sales_to_onboarding",
                "design_to_development",
                "P1 L1",
                "team_onboarding",
            ] {
                assert!(d.contains(name), "{f:?} lacks {name}:\n{d}");
            }
        }
    }

    #[test]
    fn dot_output_is_accepted_by_graphviz_when_installed() {
        let d = render(&crate::testkit::policy(), Format::Dot);
        let Ok(mut child) = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("graphviz `dot` not installed; structural checks only");
            assert!(d.starts_with("digraph baton {") && d.trim_end().ends_with('}'));
            return;
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(d.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dot rejected it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
