//! Given/when/then tests of the team-handoff rules.

use super::*;
use crate::domain::testkit::policy;
use crate::domain::{apply as apply_event, decide as decide_cmd, Command};
use crate::domain::{DomainError, EventData, Handoff};
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use serde_json::json;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn sales() -> Template {
    policy().templates["sales_to_onboarding"].clone()
}

fn full_fields() -> BTreeMap<String, Value> {
    [
        ("client_name", json!("Acme")),
        ("contract_value", json!(120000)),
        ("start_date", json!("2026-12-01")),
        ("key_contacts", json!(["ann@acme.test"])),
        ("special_requirements", json!("SSO")),
        ("goals", json!("Go live in Q1")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The team handoff in a state.
fn team(s: &Option<Handoff>) -> &TeamHandoff {
    s.as_ref()
        .and_then(Handoff::as_team)
        .expect("a team handoff")
}

/// Given commands at times, the state after them.
fn given(cmds: &[(i64, TeamCommand)]) -> Option<Handoff> {
    let mut state = None;
    for (at, c) in cmds {
        let events = decide_cmd(state.as_ref(), &Command::Team(c.clone()), t(*at), &policy())
            .expect("accepted");
        for e in events {
            apply_event(&mut state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(*at)));
        }
    }
    state
}

fn when(
    state: &Option<Handoff>,
    at: i64,
    c: TeamCommand,
) -> Result<Vec<&'static str>, DomainError> {
    decide_cmd(state.as_ref(), &Command::Team(c), t(at), &policy())
        .map(|v| v.iter().map(|e| e.data.kind()).collect())
}

fn start(fields: BTreeMap<String, Value>) -> TeamCommand {
    TeamCommand::Initiate {
        template: Box::new(sales()),
        fields,
        by: "sam".into(),
    }
}
fn by(who: &str) -> String {
    who.to_string()
}

#[test]
fn initiate_with_a_missing_required_field_names_it() {
    let mut f = full_fields();
    f.remove("goals");
    f.insert("key_contacts".into(), json!("tbd"));
    let err = when(&None, 0, start(f)).unwrap_err();
    assert_eq!(
        err,
        DomainError::MissingFields(vec!["key_contacts".into(), "goals".into()])
    );
}

#[test]
fn initiate_notifies_the_receiving_team_with_a_completeness_score() {
    let s = given(&[(0, start(full_fields()))]);
    let w = team(&s);
    // Its own workflow state: a team handoff is never an incident status.
    assert_eq!(w.status, TeamStatus::Initiated);
    assert_eq!(w.template.to_team, "onboarding");
    // crm_link (5) and renewal_date (5) are optional and absent.
    assert_eq!(w.completeness.score, 90.0);
    let events = decide_cmd(None, &Command::Team(start(full_fields())), t(0), &policy()).unwrap();
    let (kind, notice) = events[0].data.notice().unwrap();
    assert_eq!(
        (kind, notice.routes[0].route.as_str(), notice.team.as_str()),
        ("handoff", "team", "onboarding")
    );
}

#[test]
fn accept_late_escalates_once_through_the_templates_routes() {
    let s = given(&[(0, start(full_fields()))]);
    let h = s.as_ref().unwrap();
    assert_eq!(h.next_deadline(&policy()), Some(t(4 * 3600)));
    let tick = decide_cmd(s.as_ref(), &Command::Tick, t(4 * 3600), &policy()).unwrap();
    let EventData::SlaMissed { stage, notice, .. } = &tick[0].data else {
        panic!("{tick:?}")
    };
    assert_eq!(stage, "accept");
    assert_eq!(notice.routes[0].target, "onboarding-lead");
    let mut s2 = s.clone();
    apply_event(
        &mut s2,
        &tick[0]
            .clone()
            .seal(Uuid::now_v7(), Uuid::nil(), t(4 * 3600)),
    );
    assert!(
        decide_cmd(s2.as_ref(), &Command::Tick, t(4 * 3600 + 1), &policy())
            .unwrap()
            .is_empty()
    );
    // Accepting after the miss is allowed and marked as a breach.
    let accepted = decide_cmd(
        s2.as_ref(),
        &Command::Team(TeamCommand::Accept { by: by("olga") }),
        t(5 * 3600),
        &policy(),
    )
    .unwrap();
    assert!(matches!(
        accepted[0].data,
        EventData::Accepted { breached: true, .. }
    ));
}

#[test]
fn complete_with_unchecked_items_is_refused_naming_them() {
    let s = given(&[
        (0, start(full_fields())),
        (10, TeamCommand::Accept { by: by("olga") }),
        (
            20,
            TeamCommand::Check {
                by: by("olga"),
                item: "1".into(),
            },
        ),
        (
            30,
            TeamCommand::Check {
                by: by("olga"),
                item: "welcome email sent".into(),
            },
        ),
    ]);
    let err = when(&s, 40, TeamCommand::Complete { by: by("olga") }).unwrap_err();
    assert_eq!(
        err,
        DomainError::Unchecked(vec![
            "Kickoff meeting scheduled".into(),
            "Client portal access created".into()
        ])
    );
    let s = given(&[
        (0, start(full_fields())),
        (10, TeamCommand::Accept { by: by("olga") }),
        (
            20,
            TeamCommand::Check {
                by: by("olga"),
                item: "1".into(),
            },
        ),
        (
            21,
            TeamCommand::Check {
                by: by("olga"),
                item: "2".into(),
            },
        ),
        (
            22,
            TeamCommand::Check {
                by: by("olga"),
                item: "3".into(),
            },
        ),
        (
            23,
            TeamCommand::Check {
                by: by("olga"),
                item: "4".into(),
            },
        ),
    ]);
    assert_eq!(
        when(&s, 40, TeamCommand::Complete { by: by("olga") }).unwrap(),
        ["completed"]
    );
    assert_eq!(
        when(
            &s,
            40,
            TeamCommand::Check {
                by: by("x"),
                item: "9".into()
            }
        )
        .unwrap_err()
        .code(),
        "invalid"
    );
}

#[test]
fn return_is_counted_and_resubmit_restarts_the_accept_clock() {
    let s = given(&[
        (0, start(full_fields())),
        (
            60,
            TeamCommand::Return {
                by: by("olga"),
                missing: vec!["crm_link".into()],
                reason: "no CRM record".into(),
            },
        ),
    ]);
    let w = team(&s);
    assert_eq!((w.status, w.returns), (TeamStatus::Returned, 1));
    assert_eq!(
        s.as_ref().unwrap().next_deadline(&policy()),
        None,
        "the clock is on the sender"
    );
    assert_eq!(
        when(&s, 70, TeamCommand::Accept { by: by("olga") })
            .unwrap_err()
            .code(),
        "wrong_state"
    );
    let fields: BTreeMap<String, Value> =
        [("crm_link".to_string(), json!("https://crm/acme"))].into();
    let s = given(&[
        (0, start(full_fields())),
        (
            60,
            TeamCommand::Return {
                by: by("olga"),
                missing: vec!["crm_link".into()],
                reason: String::new(),
            },
        ),
        (
            120,
            TeamCommand::Resubmit {
                by: by("sam"),
                fields,
            },
        ),
    ]);
    assert_eq!(team(&s).completeness.score, 95.0);
    let h = s.unwrap();
    assert_eq!(h.next_deadline(&policy()), Some(t(120 + 4 * 3600)));
}

#[test]
fn rating_needs_completion_and_happens_once() {
    let mut cmds = vec![
        (0, start(full_fields())),
        (10, TeamCommand::Accept { by: by("olga") }),
    ];
    for i in 1..=4 {
        cmds.push((
            20,
            TeamCommand::Check {
                by: by("olga"),
                item: i.to_string(),
            },
        ));
    }
    let open = given(&cmds);
    let rate = || TeamCommand::Rate {
        by: by("olga"),
        rating: 4,
        comment: Some("clear".into()),
    };
    assert_eq!(when(&open, 30, rate()).unwrap_err().code(), "wrong_state");
    cmds.push((40, TeamCommand::Complete { by: by("olga") }));
    cmds.push((50, rate()));
    let done = given(&cmds);
    assert_eq!(when(&done, 60, rate()).unwrap_err().code(), "wrong_state");
    assert_eq!(team(&done).rating.as_ref().unwrap().rating, 4);
}

#[test]
fn a_template_edited_after_start_does_not_change_the_open_handoff() {
    let s = given(&[
        (0, start(full_fields())),
        (10, TeamCommand::Accept { by: by("olga") }),
    ]);
    // Version 2 adds a fifth exit criterion; the open handoff keeps v1's four.
    let mut v2 = sales();
    v2.version = 2;
    v2.checklist.push("Security review done".into());
    let mut p = policy();
    p.templates.insert(v2.name.clone(), v2);
    let w = team(&s);
    assert_eq!((w.template.version, w.template.checklist.len()), (1, 4));
    assert_eq!(w.unchecked().len(), 4);
}

#[test]
fn incident_commands_on_team_handoffs_are_refused() {
    let s = given(&[(0, start(full_fields()))]);
    let err = decide_cmd(
        s.as_ref(),
        &Command::Incident(crate::domain::IncidentCommand::Acknowledge { by: by("x") }),
        t(1),
        &policy(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid");
}

#[test]
fn none_is_an_answer_but_tbd_is_not() {
    let mut f = full_fields();
    f.insert("special_requirements".into(), json!("none"));
    assert!(when(&None, 0, start(f.clone())).is_ok());
    f.insert("special_requirements".into(), json!("TBD"));
    assert_eq!(
        when(&None, 0, start(f)).unwrap_err(),
        DomainError::MissingFields(vec!["special_requirements".into()])
    );
}

/// Every shipped work template: missing entry criterion named, late
/// accept escalates, unchecked exit criteria named, return counted,
/// rating recorded and reflected in the stats.
#[test]
fn every_work_template_follows_the_lifecycle_rules() {
    let p = policy();
    let works: Vec<&Template> = p
        .templates
        .values()
        .filter(|t| t.kind == TemplateKind::Work)
        .collect();
    assert!(works.len() >= 2);
    for tpl in works {
        let full: BTreeMap<String, Value> = tpl
            .required_fields
            .iter()
            .map(|f| (f.clone(), json!(format!("{f} value"))))
            .collect();
        let run = |cmds: &[(i64, TeamCommand)]| {
            let mut state = None;
            for (at, c) in cmds {
                for e in decide_cmd(state.as_ref(), &Command::Team(c.clone()), t(*at), &p)
                    .expect("accepted")
                {
                    apply_event(&mut state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(*at)));
                }
            }
            state
        };
        let start = |f: BTreeMap<String, Value>| TeamCommand::Initiate {
            template: Box::new(tpl.clone()),
            fields: f,
            by: by("s"),
        };
        // Entry criteria.
        let mut short = full.clone();
        let last = tpl.required_fields.last().unwrap().clone();
        short.remove(&last);
        assert_eq!(
            decide_cmd(None, &Command::Team(start(short)), t(0), &p).unwrap_err(),
            DomainError::MissingFields(vec![last.clone()]),
            "{}",
            tpl.name
        );
        // Late accept escalates on the template's routes.
        let opened = run(&[(0, start(full.clone()))]);
        let due = tpl.sla.as_ref().unwrap().accept.as_secs() as i64;
        let tick = decide_cmd(opened.as_ref(), &Command::Tick, t(due), &p).unwrap();
        let EventData::SlaMissed { stage, notice, .. } = &tick[0].data else {
            panic!("{}", tpl.name)
        };
        assert_eq!(stage, "accept");
        let routes: Vec<_> = notice.routes.iter().map(|r| r.route.clone()).collect();
        assert_eq!(routes, tpl.escalation.accept, "{}", tpl.name);
        // Exit criteria.
        let accepted = run(&[
            (0, start(full.clone())),
            (1, TeamCommand::Accept { by: by("r") }),
        ]);
        assert_eq!(
            decide_cmd(
                accepted.as_ref(),
                &Command::Team(TeamCommand::Complete { by: by("r") }),
                t(2),
                &p
            )
            .unwrap_err(),
            DomainError::Unchecked(tpl.checklist.clone()),
            "{}",
            tpl.name
        );
        // Return counted; completion and rating reach the stats.
        let mut cmds = vec![
            (0, start(full.clone())),
            (
                1,
                TeamCommand::Return {
                    by: by("r"),
                    missing: vec![last.clone()],
                    reason: String::new(),
                },
            ),
            (
                2,
                TeamCommand::Resubmit {
                    by: by("s"),
                    fields: BTreeMap::new(),
                },
            ),
            (3, TeamCommand::Accept { by: by("r") }),
        ];
        for i in 1..=tpl.checklist.len() {
            cmds.push((
                4,
                TeamCommand::Check {
                    by: by("r"),
                    item: i.to_string(),
                },
            ));
        }
        cmds.push((5, TeamCommand::Complete { by: by("r") }));
        cmds.push((
            6,
            TeamCommand::Rate {
                by: by("r"),
                rating: 3,
                comment: None,
            },
        ));
        let done = run(&cmds).unwrap();
        // What the sender's figures (`teams::work_stats`) are made of.
        let done = Some(done);
        let w = team(&done);
        assert_eq!(
            (w.status, w.returns, w.rating.as_ref().map(|r| r.rating)),
            (TeamStatus::Completed, 1, Some(3)),
            "{}",
            tpl.name
        );
    }
}

#[test]
fn shipped_templates_validate() {
    for t in policy().templates.values() {
        assert!(t.validate().is_empty(), "{}: {:?}", t.name, t.validate());
    }
}

#[test]
fn regression_accept_time_after_a_resubmission_runs_from_the_resubmission() {
    let s = given(&[
        (0, start(full_fields())),
        (
            60,
            TeamCommand::Return {
                by: by("olga"),
                missing: vec!["crm_link".into()],
                reason: String::new(),
            },
        ),
        (
            120,
            TeamCommand::Resubmit {
                by: by("sam"),
                fields: [("crm_link".to_string(), json!("https://crm/acme"))].into(),
            },
        ),
    ]);
    let events = decide_cmd(
        s.as_ref(),
        &Command::Team(TeamCommand::Accept { by: by("olga") }),
        t(150),
        &policy(),
    )
    .unwrap();
    match &events[0].data {
        EventData::Accepted {
            accept_ms,
            breached,
            ..
        } => assert_eq!((*accept_ms, *breached), (30_000, false)),
        other => panic!("{other:?}"),
    }
}

fn arb_team_command() -> impl proptest::strategy::Strategy<Value = (u8, i64)> {
    // (which command, seconds after the start: up to 30 days, past every
    // shipped template's accept and complete SLAs)
    (0u8..12, 0i64..30 * 86_400)
}

proptest::proptest! {
    /// Replaying any accepted team-handoff history from its stored form
    /// (each event through its JSON) yields the live state, and no SLA
    /// stage is missed twice for one submission (a resubmission restarts
    /// the accept clock; the complete clock runs from the start).
    #[test]
    fn replaying_stored_team_events_rebuilds_the_live_state(
        which in 0usize..8,
        mut cmds in proptest::collection::vec(arb_team_command(), 1..40),
    ) {
        cmds.sort_by_key(|c| c.1);
        let p = policy();
        let works: Vec<&Template> = p.templates.values().filter(|t| t.kind == TemplateKind::Work).collect();
        let template = works[which % works.len()];
        let mut state = None;
        let mut log = Vec::new();
        for (kind, at) in cmds {
            let cmd = crate::domain::testkit::team_command(kind, template);
            if let Ok(events) = decide_cmd(state.as_ref(), &cmd, t(at), &p) {
                for e in events {
                    let e = e.seal(Uuid::now_v7(), Uuid::nil(), t(at));
                    apply_event(&mut state, &e);
                    log.push(e);
                }
            }
        }
        let mut stored = None;
        for e in &log {
            let back: crate::domain::Event =
                serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap();
            apply_event(&mut stored, &back);
        }
        proptest::prop_assert_eq!(&stored, &state);
        let mut missed = Vec::new();
        for e in &log {
            match &e.data {
                EventData::Initiated { .. } | EventData::Resubmitted { .. } => missed.clear(),
                EventData::SlaMissed { stage, .. } => {
                    proptest::prop_assert!(!missed.contains(stage), "{stage} missed twice: {log:?}");
                    missed.push(stage.clone());
                }
                _ => {}
            }
        }
    }
}
