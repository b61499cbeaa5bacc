//! `/handoffs/{id}`: an incident's packet and HCS, or a team handoff's
//! fields, checklist and feedback; the timeline; the actions offered.

use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;

use super::views::{age, badge, countdown, layout, Detail, Viewer};
use crate::app::views::{HandoffView, IncidentView, TeamHandoffView};

/// A JSON value in words: strings as they are, the rest as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fields_list(fields: &[(String, String)]) -> Markup {
    html! {
        dl {
            @for (k, v) in fields { dt { (k) } dd { (v) } }
        }
    }
}

/// A packet or a team handoff's fields, flattened to `a.b → value`.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), plain(other))),
    }
}

/// `/handoffs/{id}`.
pub fn handoff(d: &Detail, viewer: Option<&Viewer>) -> Markup {
    let title = match &d.view {
        HandoffView::Incident(i) => format!("{} incident — {}", i.severity, i.team),
        HandoffView::Team(t) => format!("{} handoff — {} → {}", t.template, t.from_team, t.to_team),
    };
    let body = html! {
        p.muted { "Handoff " code { (d.view.id()) } }
        @match &d.view {
            HandoffView::Incident(i) => (incident(i, d)),
            HandoffView::Team(t) => (team(t, d)),
        }
        section aria-labelledby="timeline" {
            h2 id="timeline" { "Timeline" }
            ol {
                @for l in &d.lines {
                    li {
                        time datetime=(l.at.to_rfc3339()) { (l.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        " (+" (l.offset) ") " (l.text)
                    }
                }
            }
            details {
                summary { "The whole story, as " code { "baton timeline" } " prints it" }
                pre { (d.story) }
            }
        }
    };
    layout(&title, viewer, body)
}

fn sign_in_to_act(d: &Detail) -> Markup {
    html! {
        @if !d.signed_in {
            p { a href="/login" { "Sign in" } " to act on this handoff." }
        }
    }
}

fn action_form(id: Uuid, verb: &str, label: &str, inputs: Markup) -> Markup {
    html! {
        form method="post" action=(format!("/handoffs/{id}/{verb}")) {
            (inputs)
            button type="submit" { (label) }
        }
    }
}

fn incident(i: &IncidentView, d: &Detail) -> Markup {
    let a = &d.actions;
    let mut packet = Vec::new();
    flatten(
        "",
        &serde_json::to_value(&i.packet).unwrap_or(Value::Null),
        &mut packet,
    );
    html! {
        dl {
            dt { "State" } dd { (badge(&format!("st-{}", i.status.as_str()), i.status.as_str())) }
            dt { "Severity" } dd { (i.severity.to_string()) }
            dt { "Team" } dd { (i.team) }
            dt { "Opened" } dd { (i.opened_at.format("%Y-%m-%d %H:%M:%S UTC")) " (" (age(i.opened_at, d.now)) " ago)" }
            dt { "Next escalation" } dd { (countdown(i.next_deadline, d.now)) }
            dt { "Acknowledged" } dd {
                @match &i.acknowledged { Some(s) => { (s.by) " at " (s.at.format("%H:%M:%S UTC")) } None => { "not yet" } }
            }
            dt { "Occurrence" } dd {
                "#" (i.occurrence)
                @if let Some(prev) = i.recurrence_of {
                    " — recurrence of " a href=(format!("/handoffs/{prev}")) { (prev) }
                }
            }
        }
        section aria-labelledby="hcs" {
            h2 id="hcs" { "Packet — HCS " (format!("{:.0}", i.hcs.score)) " (gate " (format!("{:.0}", i.gate.min_hcs)) ", "
                @if i.gate.passed { "passed" } @else { "not passed" } ")" }
            table {
                thead { tr { th scope="col" { "Component" } th scope="col" { "Score" } } }
                tbody {
                    tr { td { "Context (30 %)" } td { (i.hcs.components.context) } }
                    tr { td { "Ownership (25 %)" } td { (i.hcs.components.ownership) } }
                    tr { td { "Next action (25 %)" } td { (i.hcs.components.next_action) } }
                    tr { td { "Reproducibility (20 %)" } td { (i.hcs.components.reproducibility) } }
                }
            }
            p { "Missing: "
                @if i.hcs.missing.is_empty() { "nothing" } @else { (i.hcs.missing.join(", ")) } }
            (fields_list(&packet))
        }
        section.actions aria-labelledby="act" {
            h2 id="act" { "Act" }
            (sign_in_to_act(d))
            @if a.ack { (action_form(i.id, "ack", "Acknowledge", html! {})) }
            @if a.resolve {
                (action_form(i.id, "resolve", "Resolve", html! {
                    label for="note" { "Resolution note" }
                    textarea id="note" name="note" rows="2" {}
                }))
            }
            @if a.override_gate {
                (action_form(i.id, "override", "Override the hold and page", html! {
                    label for="reason" { "Reason (required)" }
                    input id="reason" name="reason" required;
                }))
            }
            @if a.enrich && !i.hcs.missing.is_empty() {
                (action_form(i.id, "enrich", "Enrich", html! {
                    @for m in &i.hcs.missing {
                        label for=(format!("f-{m}")) { (m) }
                        input id=(format!("f-{m}")) name=(format!("field.{m}"));
                    }
                }))
            }
        }
    }
}

fn team(t: &TeamHandoffView, d: &Detail) -> Markup {
    let a = &d.actions;
    let mut fields = Vec::new();
    for (k, v) in &t.fields {
        flatten(k, v, &mut fields);
    }
    html! {
        dl {
            dt { "State" } dd { (badge(&format!("st-{}", t.status.as_str()), t.status.as_str())) }
            dt { "Started by" } dd { (t.initiated_by) }
            dt { "Completeness" } dd { (format!("{:.0}", t.completeness.score))
                @if !t.completeness.missing.is_empty() { " — missing " (t.completeness.missing.join(", ")) } }
            dt { "Next SLA" } dd { (countdown(t.next_deadline, d.now)) }
            dt { "Returns" } dd { (t.returns) }
        }
        section aria-labelledby="fields" { h2 id="fields" { "Fields" } (fields_list(&fields)) }
        section aria-labelledby="checklist" {
            h2 id="checklist" { "Checklist" }
            ol {
                @for (n, c) in t.checklist.iter().enumerate() {
                    li {
                        @match &c.checked {
                            Some(s) => { "☑ done: " (c.item) " — " (s.by) }
                            None => {
                                "☐ to do: " (c.item)
                                @if a.check {
                                    " " form.inline method="post" action=(format!("/handoffs/{}/check", t.id)) {
                                        input type="hidden" name="item" value=(n + 1);
                                        button type="submit" aria-label=(format!("Check item {}", n + 1)) { "Check" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="feedback" {
            h2 id="feedback" { "Feedback" }
            @match &t.rating {
                Some(r) => p { (r.rating) "/5 from " (r.by) @if let Some(c) = &r.comment { ": “" (c) "”" } },
                None => p { "Not rated." },
            }
        }
        section.actions aria-labelledby="act" {
            h2 id="act" { "Act" }
            (sign_in_to_act(d))
            @if a.accept { (action_form(t.id, "accept", "Accept", html! {})) }
            @if a.complete { (action_form(t.id, "complete", "Complete", html! {})) }
            @if a.return_ {
                (action_form(t.id, "return", "Return to sender", html! {
                    label for="missing" { "Missing fields (comma-separated)" }
                    input id="missing" name="missing";
                    label for="rreason" { "Reason" }
                    input id="rreason" name="reason";
                }))
            }
            @if a.rate {
                (action_form(t.id, "rate", "Rate", html! {
                    label for="rating" { "Rating (1–5)" }
                    input id="rating" name="rating" type="number" min="1" max="5" required;
                    label for="comment" { "Comment" }
                    input id="comment" name="comment";
                }))
            }
        }
    }
}
