//! Fixtures shared by the domain's unit tests, the integration tests and the
//! benchmarks: a complete packet, a report, the default policy with the
//! shipped templates, and the command generators the replay properties
//! draw from. Not used by the daemon.
//!
//! The templates are built here in code, not parsed from
//! `config/templates/*.toml`: the domain knows nothing of the config file
//! format (`config::TemplateFile` parses it). A config test checks that these
//! copies equal what the shipped files load into.

use std::collections::BTreeMap;
use std::time::Duration;

use super::teamwork::{Template, TemplateEscalation, TemplateKind, TemplateSla};
use super::*;

/// A packet with every field set: HCS 100 with a team.
pub fn full_packet() -> Packet {
    Packet {
        run_id: Some("run-42".into()),
        workflow_id: Some("billing-sync".into()),
        objective: Some("Sync invoices to the ledger".into()),
        failure_class: Some("dependency_timeout".into()),
        last_successful_step: Some("fetch_invoices".into()),
        failing_step: Some("post_ledger".into()),
        error_summary: Some("ledger API timed out after 30s (3 retries)".into()),
        blast_radius: Some(BlastRadius {
            users: Some(1200),
            jobs: Some(3),
        }),
        recommended_action: Some("Pause the sync and fail over to the standby ledger".into()),
        rollback_command: Some("billing-sync rollback --to last-good".into()),
        owner: Some(Owner {
            primary: Some("alice".into()),
            backup: Some("bob".into()),
        }),
        ttl_seconds: Some(3600),
    }
}

/// A complete report of the given severity.
pub fn report(severity: Severity) -> Report {
    Report {
        severity,
        packet: full_packet(),
        dedup_key: None,
        team: Some("payments".into()),
        drill: false,
    }
}

/// The default policy with one ownership and one runbook rule.
pub fn policy() -> Policy {
    Policy {
        severities: default_severities(),
        ownership: vec![OwnershipRule {
            workflow: "billing-*".into(),
            team: "payments".into(),
            primary: "alice".into(),
            backup: Some("bob".into()),
        }],
        runbook: vec![RunbookRule {
            workflow: "billing-*".into(),
            rollback_command: "billing-sync rollback --to last-good".into(),
            tested: true,
        }],
        routes: Default::default(),
        default_team: "unassigned".into(),
        drill_route: Some("drill".into()),
        templates: templates(),
    }
}

/// The templates shipped in `config/templates/`, by name: the incident
/// template every report uses and the two example team handoffs.
pub fn templates() -> BTreeMap<String, Template> {
    [
        agent_failure(),
        sales_to_onboarding(),
        design_to_development(),
    ]
    .into_iter()
    .map(|t| (t.name.clone(), t))
    .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs<V: Copy, T: From<V>>(items: &[(&str, V)]) -> BTreeMap<String, T> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), T::from(*v)))
        .collect()
}

/// `config/templates/agent_failure.toml`.
fn agent_failure() -> Template {
    Template {
        name: "agent_failure".into(),
        version: 1,
        kind: TemplateKind::Incident,
        description: "An automated workflow failed and needs a human owner".into(),
        from_team: "agents".into(),
        to_team: "owners".into(),
        required_fields: vec![],
        optional_fields: strings(&[
            "run_id",
            "workflow_id",
            "objective",
            "failure_class",
            "last_successful_step",
            "failing_step",
            "error_summary",
            "blast_radius",
            "recommended_action",
            "rollback_command",
            "owner",
            "ttl_seconds",
        ]),
        checklist: strings(&[
            "Acknowledged within the SLA band",
            "Contained (rollback or fix)",
            "Resolved with a note",
        ]),
        sla: None,
        escalation: TemplateEscalation::default(),
        roles: pairs(&[
            ("sender", "agent runner"),
            ("receiver", "on-call owner"),
            ("decider", "incident captain"),
        ]),
        rubric: BTreeMap::new(),
        priority: Severity::P3,
    }
}

/// `config/templates/sales_to_onboarding.toml`.
fn sales_to_onboarding() -> Template {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    Template {
        name: "sales_to_onboarding".into(),
        version: 1,
        kind: TemplateKind::Work,
        description: "A signed client moves from sales to onboarding".into(),
        from_team: "sales".into(),
        to_team: "onboarding".into(),
        required_fields: strings(&[
            "client_name",
            "contract_value",
            "start_date",
            "key_contacts",
            "special_requirements",
            "goals",
        ]),
        optional_fields: strings(&["crm_link", "renewal_date"]),
        checklist: strings(&[
            "Contract signed and filed",
            "Kickoff meeting scheduled",
            "Client portal access created",
            "Welcome email sent",
        ]),
        sla: Some(TemplateSla {
            accept: hours(4),
            complete: hours(5 * 24),
        }),
        escalation: TemplateEscalation {
            accept: strings(&["team_lead"]),
            complete: strings(&["team_lead", "manager"]),
        },
        roles: pairs(&[
            ("sender", "account executive"),
            ("receiver", "onboarding manager"),
            ("team_lead", "onboarding-lead"),
            ("manager", "head-of-customer-success"),
            ("decider", "onboarding-lead"),
        ]),
        rubric: pairs(&[
            ("client_name", 10u32),
            ("contract_value", 10),
            ("start_date", 15),
            ("key_contacts", 20),
            ("special_requirements", 15),
            ("goals", 20),
            ("crm_link", 5),
            ("renewal_date", 5),
        ]),
        priority: Severity::P3,
    }
}

/// `config/templates/design_to_development.toml`.
fn design_to_development() -> Template {
    let days = |d: u64| Duration::from_secs(d * 24 * 3600);
    Template {
        name: "design_to_development".into(),
        version: 1,
        kind: TemplateKind::Work,
        description: "Finished designs move from design to development".into(),
        from_team: "design".into(),
        to_team: "development".into(),
        required_fields: strings(&[
            "project_name",
            "design_files_url",
            "specifications",
            "breakpoints",
            "interactions",
            "assets_exported",
        ]),
        optional_fields: strings(&["accessibility_notes"]),
        checklist: strings(&[
            "All screens designed",
            "Asset export complete",
            "Interaction notes documented",
            "Design review approved",
        ]),
        sla: Some(TemplateSla {
            accept: days(1),
            complete: days(10),
        }),
        escalation: TemplateEscalation {
            accept: strings(&["team_lead"]),
            complete: strings(&["team_lead"]),
        },
        roles: pairs(&[
            ("sender", "product designer"),
            ("receiver", "tech lead"),
            ("team_lead", "engineering-manager"),
            ("decider", "tech lead"),
        ]),
        rubric: BTreeMap::new(),
        priority: Severity::P3,
    }
}

/// One of seven incident commands by number (open complete, open without
/// `run_id`, ack, tick, override, enrich, resolve): what the replay
/// properties draw from.
pub fn incident_command(kind: u8) -> Command {
    let open = |report| {
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report,
            warnings: vec![],
            source: None,
        })
    };
    let mut incomplete = report(Severity::P1);
    incomplete.packet.run_id = None;
    match kind {
        0 => open(report(Severity::P1)),
        1 => open(incomplete),
        2 => Command::Incident(IncidentCommand::Acknowledge { by: "a".into() }),
        3 => Command::Tick,
        4 => Command::Incident(IncidentCommand::Override {
            by: "o".into(),
            reason: "r".into(),
        }),
        5 => Command::Incident(IncidentCommand::Enrich {
            by: "e".into(),
            fields: Packet {
                run_id: Some("r2".into()),
                ..Default::default()
            },
            team: None,
        }),
        _ => Command::Incident(IncidentCommand::Resolve {
            by: "z".into(),
            note: None,
        }),
    }
}

/// One of twelve team-handoff commands by number, under `template`: start
/// with every required field, accept, check item 1–4, complete, return,
/// resubmit, cancel, rate, tick: what the team properties draw from. The
/// fields take every JSON shape (a number past `i64`, a negative, a float,
/// nested objects, arrays, booleans, text), so a stored form that loses or
/// alters one shows.
pub fn team_command(kind: u8, template: &teamwork::Template) -> Command {
    use serde_json::{json, Value};
    let value = |i: usize| -> Value {
        match i % 7 {
            0 => json!("Acme — ✓"),
            1 => json!(u64::MAX),
            2 => json!(-42),
            3 => json!(1.5),
            4 => json!({"nested": {"list": [1, "two", null, true]}}),
            5 => json!(["ann@acme.test", "bo@acme.test"]),
            _ => json!(true),
        }
    };
    let by = |who: &str| who.to_string();
    let last = template.required_fields.last().cloned().unwrap_or_default();
    let team = |c| Command::Team(c);
    match kind % 12 {
        0 => team(TeamCommand::Initiate {
            template: Box::new(template.clone()),
            fields: template
                .required_fields
                .iter()
                .chain(&template.optional_fields)
                .enumerate()
                .map(|(i, f)| (f.clone(), value(i)))
                .collect(),
            by: by("sam"),
        }),
        1 => team(TeamCommand::Accept { by: by("rita") }),
        k @ 2..=5 => team(TeamCommand::Check {
            by: by("rita"),
            item: (k - 1).to_string(),
        }),
        6 => team(TeamCommand::Complete { by: by("rita") }),
        7 => team(TeamCommand::Return {
            by: by("rita"),
            missing: vec![last],
            reason: "which goals?".into(),
        }),
        8 => team(TeamCommand::Resubmit {
            by: by("sam"),
            fields: [(last, json!({"goals": ["go live", 2027]}))].into(),
        }),
        9 => team(TeamCommand::Cancel {
            by: by("sam"),
            reason: "deal fell through".into(),
        }),
        10 => team(TeamCommand::Rate {
            by: by("rita"),
            rating: 4,
            comment: Some("clear".into()),
        }),
        _ => Command::Tick,
    }
}
