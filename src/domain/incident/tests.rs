//! Given/when/then tests for every rule, and property tests over the aggregate.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use crate::domain::testkit::{full_packet, policy, report};
use crate::domain::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap() + Duration::seconds(secs)
}

/// `given(history).when(command, at).then(...)`, after cqrs-es's TestFramework.
struct Given {
    policy: Policy,
    state: Option<Handoff>,
}

fn given(history: &[(Command, i64)]) -> Given {
    given_with(policy(), history)
}

fn given_with(policy: Policy, history: &[(Command, i64)]) -> Given {
    let mut g = Given {
        policy,
        state: None,
    };
    for (cmd, at) in history {
        let events = g.run(cmd, *at).expect("history command is accepted");
        g.apply_all(events, *at);
    }
    g
}

impl Given {
    fn run(&self, cmd: &Command, at: i64) -> Result<Vec<NewEvent>, DomainError> {
        decide(self.state.as_ref(), cmd, t(at), &self.policy)
    }
    fn apply_all(&mut self, events: Vec<NewEvent>, at: i64) {
        for e in events {
            apply(&mut self.state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(at)));
        }
    }
    fn when(mut self, cmd: Command, at: i64) -> Then {
        let result = self.run(&cmd, at);
        if let Ok(events) = &result {
            self.apply_all(events.clone(), at);
        }
        Then {
            result,
            state: self.state,
        }
    }
}

struct Then {
    result: Result<Vec<NewEvent>, DomainError>,
    state: Option<Handoff>,
}

impl Then {
    fn kinds(&self) -> Vec<&'static str> {
        self.result
            .as_ref()
            .expect("command accepted")
            .iter()
            .map(|e| e.data.kind())
            .collect()
    }
    fn then_expect(self, kinds: &[&str]) -> Self {
        assert_eq!(self.kinds(), kinds);
        self
    }
    fn then_error(self, code: &str) {
        assert_eq!(self.result.expect_err("command refused").code(), code);
    }
    fn event(&self, kind: &str) -> &EventData {
        &self
            .result
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.data.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind} event"))
            .data
    }
    fn state(&self) -> &Incident {
        self.state.as_ref().and_then(Handoff::as_incident).unwrap()
    }
}

fn open(r: Report) -> Command {
    Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report: r,
        warnings: vec![],
        source: None,
    })
}

fn ack(by: &str) -> Command {
    Command::Incident(IncidentCommand::Acknowledge { by: by.into() })
}

#[test]
fn complete_p1_is_scored_and_paged_on_call() {
    let then = given(&[])
        .when(open(report(Severity::P1)), 0)
        .then_expect(&["opened", "scored", "paged"]);
    let EventData::Paged { reason, notice } = then.event("paged") else {
        unreachable!()
    };
    assert_eq!(*reason, PageReason::GatePassed);
    assert_eq!(notice.routes[0].route, "oncall");
    assert_eq!(notice.hcs.score, 100.0);
    assert_eq!(notice.respond_by, Some(t(300)));
    assert_eq!(then.state().status(), Status::Paged);
}

#[test]
fn no_ack_escalates_at_the_first_response_deadline_and_then_per_policy() {
    let g = given(&[(open(report(Severity::P1)), 0)]);
    assert!(g.run(&Command::Tick, 299).unwrap().is_empty());
    let then = g.when(Command::Tick, 300).then_expect(&["escalated"]);
    let EventData::Escalated {
        step,
        level,
        deadline,
        notice,
        ..
    } = then.event("escalated")
    else {
        unreachable!()
    };
    assert_eq!((*step, *level, *deadline), (1, 1, t(300)));
    let routes: Vec<_> = notice.routes.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(routes, ["oncall", "incident_captain"]);
    assert_eq!(then.state().next_deadline(&policy()), Some(t(600)));
}

#[test]
fn a_late_tick_fires_every_missed_step_each_at_its_own_deadline() {
    let then = given(&[(open(report(Severity::P1)), 0)])
        .when(Command::Tick, 10_000)
        .then_expect(&["escalated", "escalated", "escalated", "expired"]);
    let deadlines: Vec<_> = then
        .result
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.data {
            EventData::Escalated { deadline, .. } => Some(*deadline),
            _ => None,
        })
        .collect();
    assert_eq!(deadlines, [t(300), t(600), t(900)]);
    assert_eq!(then.state().next_deadline(&policy()), None);
}

#[test]
fn ack_before_the_deadline_stops_escalation_and_records_mtta() {
    let then = given(&[(open(report(Severity::P1)), 0)])
        .when(ack("alice"), 42)
        .then_expect(&["acknowledged"]);
    let EventData::Acknowledged {
        mtta_ms, breached, ..
    } = then.event("acknowledged")
    else {
        unreachable!()
    };
    assert_eq!((*mtta_ms, *breached), (42_000, false));
    assert_eq!(then.state().next_deadline(&policy()), None);
    given(&[(open(report(Severity::P1)), 0), (ack("alice"), 42)])
        .when(Command::Tick, 10_000)
        .then_expect(&[]);
}

#[test]
fn late_ack_is_a_breach_and_a_second_ack_is_refused() {
    let then = given(&[(open(report(Severity::P2)), 0)]).when(ack("bob"), 901);
    assert!(matches!(
        then.event("acknowledged"),
        EventData::Acknowledged { breached: true, .. }
    ));
    given(&[(open(report(Severity::P2)), 0), (ack("bob"), 1)])
        .when(ack("carol"), 2)
        .then_error("already_acknowledged");
}

#[test]
fn p1_missing_run_id_and_rollback_is_enriched_from_the_runbook_then_held() {
    let mut r = report(Severity::P1);
    r.packet.run_id = None;
    r.packet.rollback_command = None;
    r.dedup_key = Some("k".into());
    let then = given(&[])
        .when(open(r), 0)
        .then_expect(&["opened", "enriched", "scored", "held"]);
    let EventData::Enriched {
        fields, sources, ..
    } = then.event("enriched")
    else {
        unreachable!()
    };
    assert_eq!(fields, &["rollback_command"]);
    assert_eq!(sources, &["runbook:billing-*"]);
    let EventData::Held { until, missing, .. } = then.event("held") else {
        unreachable!()
    };
    assert_eq!(*until, Some(t(60)));
    assert_eq!(missing, &["run_id"]);
    assert_eq!(then.state().next_deadline(&policy()), Some(t(60)));
}

#[test]
fn held_p1_pages_flagged_incomplete_after_max_hold() {
    let mut r = report(Severity::P1);
    r.packet.run_id = None;
    let g = given(&[(open(r), 0)]);
    assert!(g.run(&Command::Tick, 59).unwrap().is_empty());
    let then = g.when(Command::Tick, 60).then_expect(&["paged"]);
    let EventData::Paged { reason, notice } = then.event("paged") else {
        unreachable!()
    };
    assert_eq!(*reason, PageReason::MaxHold);
    assert!(notice.incomplete);
    assert!(then.state().incomplete);
}

#[test]
fn p2_incomplete_is_queued_until_an_enrich_completes_it() {
    let mut r = report(Severity::P2);
    r.packet.recommended_action = None;
    r.packet.owner = None;
    r.packet.workflow_id = Some("search-index".into());
    let g = given(&[(open(r), 0)]);
    let s = g.state.as_ref().and_then(Handoff::as_incident).unwrap();
    assert_eq!(s.held, Some(BelowMin::Queue));
    // Partial enrichment re-scores but still holds.
    let partial = Command::Incident(IncidentCommand::Enrich {
        by: "dana".into(),
        fields: Packet {
            recommended_action: Some("restart the indexer".into()),
            ..Default::default()
        },
        team: None,
    });
    let g = given(&[(g_open_p2_incomplete(), 0), (partial, 10)]);
    assert_eq!(
        g.state.as_ref().unwrap().status_str(),
        Status::Held.as_str()
    );
    let then = g
        .when(
            Command::Incident(IncidentCommand::Enrich {
                by: "dana".into(),
                fields: Packet {
                    owner: Some(Owner {
                        primary: Some("erin".into()),
                        backup: Some("frank".into()),
                    }),
                    ..Default::default()
                },
                team: None,
            }),
            20,
        )
        .then_expect(&["enriched", "scored", "paged"]);
    assert!(matches!(
        then.event("paged"),
        EventData::Paged {
            reason: PageReason::Enriched,
            ..
        }
    ));
}

fn g_open_p2_incomplete() -> Command {
    let mut r = report(Severity::P2);
    r.packet.recommended_action = None;
    r.packet.owner = None;
    r.packet.workflow_id = Some("search-index".into());
    open(r)
}

#[test]
fn p2_queue_hold_sends_a_ticket_to_the_owner_queue() {
    let then = given(&[]).when(g_open_p2_incomplete(), 0);
    let EventData::Held { ticket, action, .. } = then.event("held") else {
        unreachable!()
    };
    assert_eq!(*action, BelowMin::Queue);
    assert_eq!(ticket.as_ref().unwrap().routes[0].route, ROUTE_QUEUE);
}

#[test]
fn held_handoffs_still_escalate_because_the_clock_started_at_open() {
    given(&[(g_open_p2_incomplete(), 0)])
        .when(Command::Tick, 900)
        .then_expect(&["escalated"]);
}

#[test]
fn override_pages_a_held_report_at_once_and_is_refused_once_paged() {
    let mut r = report(Severity::P1);
    r.packet.run_id = None;
    let then = given(&[(open(r), 0)])
        .when(
            Command::Incident(IncidentCommand::Override {
                by: "ic".into(),
                reason: "checkout is down".into(),
            }),
            5,
        )
        .then_expect(&["overridden", "paged"]);
    assert!(then.state().overridden.is_some());
    given(&[(open(report(Severity::P1)), 0)])
        .when(
            Command::Incident(IncidentCommand::Override {
                by: "ic".into(),
                reason: "x".into(),
            }),
            5,
        )
        .then_error("already_paged");
}

#[test]
fn ownership_map_fills_owner_and_team_and_records_its_source() {
    let mut r = report(Severity::P3);
    r.packet.owner = None;
    r.team = None;
    let then = given(&[])
        .when(open(r), 0)
        .then_expect(&["opened", "enriched", "scored", "paged"]);
    let EventData::Enriched {
        fields,
        team,
        values,
        ..
    } = then.event("enriched")
    else {
        unreachable!()
    };
    assert_eq!(fields, &["owner.primary", "owner.backup", "team"]);
    assert_eq!(team.as_deref(), Some("payments"));
    assert_eq!(values.primary(), Some("alice"));
    assert_eq!(then.state().team, "payments");
}

#[test]
fn duplicate_report_joins_the_handoff_without_paging_again() {
    given(&[(open(report(Severity::P1)), 0)])
        .when(open(report(Severity::P1)), 1)
        .then_expect(&["reported_again"]);
}

#[test]
fn packet_ttl_expiry_asks_the_owner_to_refresh_once() {
    let mut r = report(Severity::P3);
    r.packet.ttl_seconds = Some(60);
    let g = given(&[(open(r.clone()), 0)]);
    let then = g.when(Command::Tick, 60).then_expect(&["expired"]);
    let EventData::Expired { notice, .. } = then.event("expired") else {
        unreachable!()
    };
    assert_eq!(notice.routes[0].target, "alice");
    given(&[(open(r), 0), (Command::Tick, 60)])
        .when(Command::Tick, 61)
        .then_expect(&[]);
}

#[test]
fn resolved_handoffs_refuse_commands_and_never_fire() {
    let g = || {
        given(&[
            (open(report(Severity::P1)), 0),
            (
                Command::Incident(IncidentCommand::Resolve {
                    by: "alice".into(),
                    note: None,
                }),
                10,
            ),
        ])
    };
    g().when(ack("alice"), 11).then_error("resolved");
    g().when(Command::Tick, 100_000).then_expect(&[]);
    assert_eq!(g().state.unwrap().status_str(), Status::Resolved.as_str());
}

#[test]
fn commands_for_unknown_handoffs_are_not_found() {
    given(&[]).when(ack("x"), 0).then_error("not_found");
    given(&[]).when(Command::Tick, 0).then_error("not_found");
}

#[test]
fn enrich_that_changes_nothing_is_refused() {
    given(&[(open(report(Severity::P1)), 0)])
        .when(
            Command::Incident(IncidentCommand::Enrich {
                by: "x".into(),
                fields: Packet {
                    run_id: full_packet().run_id,
                    ..Default::default()
                },
                team: None,
            }),
            1,
        )
        .then_error("invalid");
}

#[test]
fn handoff_ids_are_stable_per_template_and_dedup_key() {
    let r = report(Severity::P1);
    let a = handoff_id_for("agent_failure", &r).unwrap();
    assert_eq!(a, handoff_id_for("agent_failure", &r).unwrap());
    assert_ne!(a, handoff_id_for("other", &r).unwrap());
    let mut no_run = r.clone();
    no_run.packet.run_id = None;
    assert_eq!(handoff_id_for("agent_failure", &no_run), None);
}

#[test]
fn events_round_trip_through_json_with_type_and_version() {
    let events = decide(None, &open(report(Severity::P1)), t(0), &policy()).unwrap();
    for e in events {
        let sealed = e.seal(Uuid::now_v7(), Uuid::now_v7(), t(0));
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["type"], sealed.kind());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, sealed);
    }
}

fn arb_command() -> impl Strategy<Value = (u8, i64)> {
    (0u8..7, 0i64..20_000)
}

fn to_command(kind: u8) -> Command {
    crate::domain::testkit::incident_command(kind)
}

proptest! {
    /// Replaying any accepted event sequence from its stored form (each
    /// event through its JSON) yields the live state, and the state never
    /// pages twice at level 0 or repeats a step. (The store's own decoder is
    /// checked the same way in `store`'s tests: `domain` does not import it.)
    #[test]
    fn replaying_stored_events_rebuilds_the_live_state(mut cmds in proptest::collection::vec(arb_command(), 1..30)) {
        cmds.sort_by_key(|c| c.1);
        let policy = policy();
        let mut state = None;
        let mut log = Vec::new();
        for (kind, at) in cmds {
            if let Ok(events) = decide(state.as_ref(), &to_command(kind), t(at), &policy) {
                for e in events {
                    let e = e.seal(Uuid::now_v7(), Uuid::nil(), t(at));
                    apply(&mut state, &e);
                    log.push(e);
                }
            }
        }
        // What the log holds is the JSON, not the value `decide` built: a
        // field that does not survive the round trip changes the replay.
        let mut stored = None;
        for e in &log {
            let back: Event = serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap();
            apply(&mut stored, &back);
        }
        prop_assert_eq!(stored, state);
        // An incident decides only incident events.
        prop_assert!(log.iter().all(|e| e.data.aggregate() == Kind::Incident));
        let pages = log.iter().filter(|e| e.kind() == "paged").count();
        prop_assert!(pages <= 1);
        let mut steps: Vec<u32> = log.iter().filter_map(|e| match e.data {
            EventData::Escalated { step, .. } => Some(step), _ => None }).collect();
        let n = steps.len();
        steps.dedup();
        prop_assert_eq!(steps.len(), n);
    }
}

#[test]
fn regression_an_absurd_ttl_is_refused_at_parse_and_never_panics_on_replay() {
    let body = br#"{"severity":"P1","ttl_seconds":10000000000000}"#;
    let limits = ParseLimits {
        max_report_bytes: 65536,
        max_field_bytes: 4096,
    };
    assert_eq!(
        parse_report(body, limits).unwrap_err()[0].code,
        "out_of_range"
    );
    // A stored event is replayed forever, validated or not: apply and the
    // deadline computation must survive any value.
    let mut r = report(Severity::P1);
    r.packet.ttl_seconds = Some(u64::MAX);
    let mut state = None;
    for e in decide(None, &open(r), t(0), &policy()).unwrap() {
        apply(&mut state, &e.seal(Uuid::now_v7(), Uuid::nil(), t(0)));
    }
    let h = state.unwrap();
    assert_eq!(
        h.next_deadline(&policy()),
        Some(t(300)),
        "no expiry, no panic"
    );
    assert!(decide(Some(&h), &Command::Tick, t(10_000), &policy()).is_ok());
}

#[test]
fn regression_absurd_policy_durations_mean_no_deadline_not_a_panic() {
    let mut p = policy();
    p.severities.get_mut(&Severity::P1).unwrap().first_response = std::time::Duration::MAX;
    assert_eq!(p.severity(Severity::P1).step(t(0), 1), None);
    assert!(!p.validate().is_empty(), "validation names it first");
    let mut r = report(Severity::P1);
    r.packet.ttl_seconds = None;
    let h = given_with(p.clone(), &[(open(r), 0)]).state.unwrap();
    assert_eq!(h.next_deadline(&p), None);
}

#[test]
fn regression_ack_during_a_p1_hold_stops_the_max_hold_page() {
    let mut r = report(Severity::P1);
    r.packet.run_id = None;
    let g = given(&[(open(r), 0), (ack("alice"), 5)]);
    assert_eq!(g.state.as_ref().unwrap().next_deadline(&policy()), None);
    g.when(Command::Tick, 61).then_expect(&[]);
}

#[test]
fn regression_a_redelivered_report_changes_nothing_but_a_new_one_joins() {
    let from = |seq: u64| {
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: report(Severity::P1),
            warnings: vec![],
            source: Some(format!("report:{seq}")),
        })
    };
    let g = given(&[(from(7), 0)]);
    assert!(
        g.run(&from(7), 1).unwrap().is_empty(),
        "redelivery of seq 7"
    );
    let then = given(&[(from(7), 0)])
        .when(from(9), 2)
        .then_expect(&["reported_again"]);
    assert_eq!(then.state().recent_reports, [7, 9]);
    // Stored out of order (concurrent ingest): an earlier sequence still joins.
    given(&[(from(7), 0), (from(9), 2)])
        .when(from(8), 3)
        .then_expect(&["reported_again"]);
    assert!(given(&[(from(7), 0), (from(9), 2)])
        .run(&from(9), 3)
        .unwrap()
        .is_empty());
}

#[test]
fn a_long_outage_fires_missed_steps_in_bounded_commits() {
    let mut p = policy();
    p.severities.get_mut(&Severity::P1).unwrap().escalation[0].repeat = 100;
    let g = given_with(p.clone(), &[(open(report(Severity::P1)), 0)]);
    let first = g.run(&Command::Tick, 1_000_000).unwrap();
    let steps = first
        .iter()
        .filter(|e| e.data.kind() == "escalated")
        .count();
    assert_eq!(steps, MAX_STEPS_PER_TICK as usize);
    let mut g = g;
    g.apply_all(first, 1_000_000);
    assert_eq!(
        g.state.as_ref().unwrap().next_deadline(&p),
        Some(t(300 + 32 * 300)),
        "the rest are due now"
    );
}

fn report_from(seq: u64) -> Command {
    Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report: report(Severity::P1),
        warnings: vec![],
        source: Some(format!("report:{seq}")),
    })
}

fn resolve(by: &str) -> Command {
    Command::Incident(IncidentCommand::Resolve {
        by: by.into(),
        note: None,
    })
}

#[test]
fn a_report_for_a_resolved_handoff_is_refused_so_the_engine_opens_a_new_occurrence() {
    // Given a resolved handoff, when a new report of its key arrives, the
    // rules refuse to join it: a recurrence is never swallowed.
    given(&[(report_from(7), 0), (resolve("alice"), 10)])
        .when(report_from(9), 20)
        .then_error("resolved");
    // Its own redelivered report still changes nothing.
    assert!(given(&[(report_from(7), 0), (resolve("alice"), 10)])
        .run(&report_from(7), 20)
        .unwrap()
        .is_empty());
}

#[test]
fn a_recurrence_opens_gated_and_paged_and_names_the_previous_occurrence() {
    let prev = Uuid::now_v7();
    let recur = Command::Incident(IncidentCommand::Recur {
        template: "agent_failure".into(),
        report: report(Severity::P1),
        warnings: vec![],
        source: Some("report:12".into()),
        of: prev,
        occurrence: 3,
    });
    let then = given(&[])
        .when(recur.clone(), 0)
        .then_expect(&["opened", "scored", "paged"]);
    let EventData::Opened {
        recurrence_of,
        occurrence,
        ..
    } = then.event("opened")
    else {
        unreachable!()
    };
    assert_eq!((*recurrence_of, *occurrence), (Some(prev), Some(3)));
    let h = then.state();
    assert_eq!((h.occurrence, h.recurrence_of), (3, Some(prev)));
    assert_eq!(h.first_report, Some(12));
    // The other daemon opened it first: the same report changes nothing,
    // another one joins.
    let g = || given(&[(recur.clone(), 0)]);
    assert!(g().run(&recur, 1).unwrap().is_empty());
    g().when(report_from(13), 1)
        .then_expect(&["reported_again"]);
}

#[test]
fn has_report_is_exact_above_the_highest_sequence_and_unsure_below_it() {
    let g = given(&[(report_from(7), 0), (report_from(9), 1)]);
    let h = g.state.as_ref().and_then(Handoff::as_incident).unwrap();
    assert_eq!(h.has_report(7), Seen::Yes);
    assert_eq!(h.has_report(9), Seen::Yes);
    assert_eq!(h.has_report(10), Seen::No);
    assert_eq!(h.has_report(8), Seen::Unsure, "only the log can tell");
    assert_eq!(h.max_report, 9);
    assert_eq!((h.occurrence, h.first_report), (1, Some(7)));
}

fn delivered() -> Command {
    Command::Delivery(EventData::Delivered {
        page_id: "e:oncall".into(),
        channel: "slack".into(),
        destination: "hooks.slack.com".into(),
        person: Some("alice".into()),
        attempts: 2,
        latency_ms: 1200,
    })
}

#[test]
fn delivery_outcomes_are_recorded_without_moving_any_deadline() {
    let g = given(&[(open(report(Severity::P1)), 0)]);
    let before = g.state.as_ref().unwrap().next_deadline(&g.policy);
    assert!(before.is_some());
    let then = g.when(delivered(), 1);
    let events = then.result.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "baton");
    assert_eq!(events[0].data.kind(), "delivered");
    let h = then.state.unwrap();
    assert_eq!(
        h.next_deadline(&policy()),
        before,
        "escalation is not delayed"
    );
    assert_eq!(h.status_str(), "paged");
}

#[test]
fn delivery_outcomes_are_taken_after_resolve_and_only_delivery_kinds_are() {
    let g = given(&[
        (open(report(Severity::P1)), 0),
        (
            Command::Incident(IncidentCommand::Resolve {
                by: "a".into(),
                note: None,
            }),
            1,
        ),
    ]);
    let undelivered = Command::Delivery(EventData::Undelivered {
        page_id: "e:oncall".into(),
        reason: "no_contact".into(),
    });
    assert_eq!(g.run(&undelivered, 2).unwrap().len(), 1);
    let wrong = Command::Delivery(EventData::Resolved {
        by: "mallory".into(),
        note: None,
    });
    assert!(matches!(g.run(&wrong, 2), Err(DomainError::Invalid { .. })));
    assert_eq!(
        decide(None, &delivered(), t(0), &policy()),
        Err(DomainError::NotFound)
    );
}

#[test]
fn the_same_opening_decided_again_changes_nothing_whatever_its_source() {
    let open_from = |source: &str| {
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: report(Severity::P1),
            warnings: vec![],
            source: Some(source.into()),
        })
    };
    // Another daemon's timer decided the same heartbeat miss.
    let g = given(&[(open_from("heartbeat:etl:missed:7"), 0)]);
    assert!(g
        .run(&open_from("heartbeat:etl:missed:7"), 1)
        .unwrap()
        .is_empty());
    // Another opening of the same outage joins it.
    given(&[(open_from("heartbeat:etl:missed:7"), 0)])
        .when(open_from("heartbeat:etl:fail:9"), 1)
        .then_expect(&["reported_again"]);
}
