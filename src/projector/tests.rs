//! The list index the projection keeps: given/when/then over applied
//! commits, snapshots and forgotten slots, and the property that walking
//! the list page by page gives what filtering and sorting every handoff
//! gives, for both kinds and any filter.

use std::cmp::Reverse;
use std::ops::ControlFlow;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::{decide, Command, IncidentCommand, Kind, Packet, Severity};
use crate::testkit;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn projection() -> Projection {
    let (timer, _queue) = crate::sla::channel();
    Projection::new(Arc::new(testkit::policy()), timer, Arc::new(Metrics::new()))
}

/// A projection fed as the engine feeds it: each accepted command one
/// commit, at the next stream sequence.
struct Given {
    p: Projection,
    seq: u64,
}

impl Given {
    fn new() -> Self {
        Given {
            p: projection(),
            seq: 0,
        }
    }

    /// Decides `cmd` for `id` at `at`; applies the commit if accepted.
    fn run(&mut self, id: Uuid, at: i64, cmd: &Command) -> &mut Self {
        let slot = self.p.slot(id);
        let state = slot.entry.lock().unwrap().state.clone();
        if let Ok(events) = decide(state.as_ref(), cmd, t(at), self.p.policy()) {
            if !events.is_empty() {
                self.seq += 1;
                let commit = Commit {
                    events: events
                        .into_iter()
                        .map(|e| e.seal(Uuid::now_v7(), id, t(at)))
                        .collect(),
                };
                self.p.apply_commit(&slot, self.seq, &commit, true);
            }
        }
        self.p.forget_if_empty(id, slot);
        self
    }
}

fn open(severity: Severity, team: &str) -> Command {
    let mut report = testkit::report(severity);
    report.team = Some(team.into());
    Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report,
        warnings: vec![],
        source: None,
    })
}

fn incident(cmd: IncidentCommand) -> Command {
    Command::Incident(cmd)
}

fn sales() -> crate::domain::teamwork::Template {
    testkit::policy().templates["sales_to_onboarding"].clone()
}

fn select(status: &'static str) -> Select {
    Select {
        status: Some(match status {
            "open" => StatusFilter::Open,
            s => StatusFilter::Is(s),
        }),
        ..Select::all()
    }
}

fn listed(p: &Projection, select: &Select) -> Vec<Uuid> {
    p.page(select, None, 500)
        .items
        .iter()
        .map(Handoff::id)
        .collect()
}

fn index_len(p: &Projection) -> (usize, usize) {
    p.index.read().unwrap().len()
}

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);
const C: Uuid = Uuid::from_u128(0xc);

#[test]
fn an_opened_incident_is_noted_on_apply_and_listed_once_a_reader_looks() {
    let mut g = Given::new();
    g.run(A, 0, &open(Severity::P1, "payments"));
    assert_eq!(index_len(&g.p), (0, 0), "the apply path only notes");
    assert_eq!(listed(&g.p, &Select::all()), [A]);
    assert_eq!(index_len(&g.p), (1, 0), "open, listed once");
    assert_eq!(listed(&g.p, &select("paged")), [A]);
    assert_eq!(listed(&g.p, &select("open")), [A]);
}

#[test]
fn acknowledging_and_resolving_move_the_entry_from_status_to_status() {
    let mut g = Given::new();
    g.run(A, 0, &open(Severity::P1, "payments"));
    assert_eq!(listed(&g.p, &select("paged")), [A]);
    g.run(
        A,
        60,
        &incident(IncidentCommand::Acknowledge { by: "al".into() }),
    );
    assert!(listed(&g.p, &select("paged")).is_empty());
    assert_eq!(listed(&g.p, &select("acknowledged")), [A]);
    assert_eq!(listed(&g.p, &select("open")), [A]);
    g.run(
        A,
        120,
        &incident(IncidentCommand::Resolve {
            by: "al".into(),
            note: None,
        }),
    );
    assert!(listed(&g.p, &select("open")).is_empty());
    assert!(listed(&g.p, &select("acknowledged")).is_empty());
    assert_eq!(listed(&g.p, &select("resolved")), [A]);
    assert_eq!(index_len(&g.p), (0, 1), "moved to the closed ones");
}

#[test]
fn an_enrichment_that_moves_an_incident_to_another_team_moves_its_entry() {
    let mut g = Given::new();
    g.run(A, 0, &open(Severity::P2, "payments"));
    let team = |t: &str| Select {
        team: Some(t.into()),
        ..Select::all()
    };
    assert_eq!(listed(&g.p, &team("payments")), [A]);
    g.run(
        A,
        60,
        &incident(IncidentCommand::Enrich {
            by: "al".into(),
            fields: Packet {
                recommended_action: Some("rerun".into()),
                ..Default::default()
            },
            team: Some("ml".into()),
        }),
    );
    assert!(listed(&g.p, &team("payments")).is_empty());
    assert_eq!(listed(&g.p, &team("ml")), [A]);
}

#[test]
fn a_team_handoff_is_listed_under_both_teams_its_template_and_no_severity() {
    let mut g = Given::new();
    g.run(B, 0, &testkit::team_command(0, &sales()));
    g.run(A, 1, &open(Severity::P1, "payments"));
    let with = |f: fn(&mut Select)| {
        let mut s = Select::all();
        f(&mut s);
        listed(&g.p, &s)
    };
    assert_eq!(with(|s| s.team = Some("sales".into())), [B]);
    assert_eq!(with(|s| s.team = Some("onboarding".into())), [B]);
    assert_eq!(
        with(|s| s.template = Some("sales_to_onboarding".into())),
        [B]
    );
    assert_eq!(with(|s| s.kind = Some(Kind::Team)), [B]);
    assert_eq!(with(|s| s.kind = Some(Kind::Incident)), [A]);
    assert_eq!(with(|s| s.severity = Some(Severity::P1)), [A]);
    assert!(with(|s| s.team = Some("nobody".into())).is_empty());
    assert_eq!(listed(&g.p, &select("initiated")), [B]);
    assert_eq!(listed(&g.p, &Select::all()), [A, B], "newest first");
}

#[test]
fn a_snapshot_is_listed_on_import_and_a_newer_entry_replaces_an_older_one() {
    let mut source = Given::new();
    source.run(A, 0, &open(Severity::P1, "payments"));
    source.run(B, 10, &testkit::team_command(0, &sales()));
    let mut entries = Vec::new();
    source
        .p
        .visit(|_| true, |h, s| entries.push((h.clone(), s)));

    let p = projection();
    p.import(entries, source.seq);
    assert_eq!(index_len(&p), (2, 0), "listed on import, no reader needed");
    assert_eq!(listed(&p, &Select::all()), [B, A]);

    source.run(
        A,
        60,
        &incident(IncidentCommand::Resolve {
            by: "al".into(),
            note: None,
        }),
    );
    let resolved = source.p.get(A).unwrap();
    p.import(vec![(resolved.clone(), 1)], 3);
    assert_eq!(
        listed(&p, &select("resolved")),
        Vec::<Uuid>::new(),
        "seq 1 is older: ignored"
    );
    p.import(vec![(resolved, source.seq)], source.seq);
    assert_eq!(listed(&p, &select("resolved")), [A]);
    assert_eq!(index_len(&p), (1, 1));
}

#[test]
fn a_forgotten_slot_and_a_commit_that_opens_nothing_leave_nothing_listed() {
    let mut g = Given::new();
    // A command for an unknown handoff: refused, its empty slot forgotten.
    g.run(
        C,
        0,
        &incident(IncidentCommand::Acknowledge { by: "al".into() }),
    );
    assert_eq!(g.p.len(), 0);
    // A commit whose first event opens nothing (misfiled): no state.
    let mut other = Given::new();
    other.run(A, 0, &open(Severity::P1, "payments"));
    other.run(
        A,
        60,
        &incident(IncidentCommand::Acknowledge { by: "al".into() }),
    );
    let ack = other.p.get(A).unwrap();
    assert!(ack.as_incident().is_some());
    let slot = g.p.slot(C);
    let late = Commit {
        events: vec![decide(
            Some(&ack),
            &incident(IncidentCommand::Resolve {
                by: "al".into(),
                note: None,
            }),
            t(90),
            g.p.policy(),
        )
        .unwrap()
        .remove(0)
        .seal(Uuid::now_v7(), C, t(90))],
    };
    g.p.apply_commit(&slot, 1, &late, false);
    g.p.forget_if_empty(C, slot);
    assert!(listed(&g.p, &Select::all()).is_empty());
    assert_eq!(index_len(&g.p), (0, 0));
}

#[test]
fn windows_take_the_handoffs_opened_from_since_up_to_until() {
    let mut g = Given::new();
    g.run(A, 0, &open(Severity::P1, "payments"));
    g.run(B, 10, &open(Severity::P2, "payments"));
    g.run(C, 20, &testkit::team_command(0, &sales()));
    let ids = |v: Vec<Handoff>| v.iter().map(Handoff::id).collect::<Vec<_>>();
    let all = Select::all();
    assert_eq!(ids(g.p.opened_in(&all, Some(t(10)), Some(t(20)))), [B]);
    assert_eq!(ids(g.p.opened_in(&all, Some(t(10)), None)), [C, B]);
    assert_eq!(ids(g.p.opened_in(&all, None, Some(t(10)))), [A]);
    assert_eq!(
        ids(g.p.opened_in(&Select::kind(Kind::Incident), None, None)),
        [B, A]
    );
    assert!(ids(g.p.opened_in(&all, Some(t(20)), Some(t(20)))).is_empty());
    let mut seen = 0;
    g.p.walk(&all, None, None, |_| {
        seen += 1;
        ControlFlow::Break(())
    });
    assert_eq!(seen, 1, "a walk stops when told");
}

#[test]
fn the_projector_settles_the_notes_once_they_pile_up() {
    let g = Given::new();
    let commit = |id: Uuid| Commit {
        events: decide(None, &open(Severity::P2, "search"), t(1), g.p.policy())
            .unwrap()
            .into_iter()
            .map(|e| e.seal(Uuid::now_v7(), id, t(1)))
            .collect(),
    };
    for n in 1..SETTLE_AT as u128 {
        let id = Uuid::from_u128(0x1000 + n);
        g.p.apply_commit(&g.p.slot(id), 1, &commit(id), false);
    }
    g.p.settle_when_due();
    assert_eq!(index_len(&g.p), (0, 0), "not due yet");
    g.p.apply_commit(&g.p.slot(B), 1, &commit(B), false);
    g.p.settle_when_due();
    assert_eq!(index_len(&g.p), (SETTLE_AT, 0));
    assert!(g.p.changed.lock().unwrap().is_empty());
}

/// The list's filters as the handler applied them before the index: the
/// reference the index must agree with.
fn reference(s: &Select, h: &Handoff) -> bool {
    let status_ok = match s.status {
        None => true,
        Some(StatusFilter::Open) => !h.is_closed(),
        Some(StatusFilter::Is(st)) => h.status_str() == st,
    };
    let team_ok = |t: &String| match h {
        Handoff::Incident(i) => &i.team == t,
        Handoff::Team(w) => &w.template.from_team == t || &w.template.to_team == t,
    };
    status_ok
        && s.kind.is_none_or(|k| h.kind() == k)
        && s.severity
            .is_none_or(|sev| h.as_incident().is_some_and(|i| i.severity == sev))
        && s.team.as_ref().is_none_or(team_ok)
        && s.template.as_ref().is_none_or(|t| h.template() == t)
}

const TEAMS: [&str; 6] = ["payments", "search", "sales", "onboarding", "ml", "nobody"];
const TEMPLATES: [&str; 4] = [
    "agent_failure",
    "sales_to_onboarding",
    "design_to_development",
    "nope",
];
const STATUSES: [&str; 11] = [
    "open",
    "held",
    "paged",
    "escalated",
    "acknowledged",
    "resolved",
    "initiated",
    "accepted",
    "returned",
    "completed",
    "cancelled",
];

fn arb_select() -> impl Strategy<Value = Select> {
    (
        prop::option::of(prop::sample::select(vec![Kind::Incident, Kind::Team])),
        prop::option::of(prop::sample::select(STATUSES.to_vec())),
        prop::option::of(prop::sample::select(Severity::ALL.to_vec())),
        prop::option::of(prop::sample::select(TEAMS.to_vec())),
        prop::option::of(prop::sample::select(TEMPLATES.to_vec())),
    )
        .prop_map(|(kind, status, severity, team, template)| Select {
            kind,
            status: status.map(|s| match s {
                "open" => StatusFilter::Open,
                s => StatusFilter::Is(s),
            }),
            severity,
            team: team.map(String::from),
            template: template.map(String::from),
        })
}

/// One generated handoff: its id, when it opens (few distinct moments, so
/// keys tie and the id decides), its kind and details, and the commands
/// that follow, split around a snapshot.
type Spec = (u128, i64, bool, usize, Vec<u8>, Vec<u8>);

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        any::<u128>(),
        0i64..6,
        any::<bool>(),
        0usize..6,
        prop::collection::vec(0u8..12, 0..4),
        prop::collection::vec(0u8..12, 0..3),
    )
}

/// The template of a generated team handoff.
fn template_of(detail: usize) -> crate::domain::teamwork::Template {
    let name = if detail.is_multiple_of(2) {
        "sales_to_onboarding"
    } else {
        "design_to_development"
    };
    testkit::policy().templates[name].clone()
}

/// What opens a generated handoff: an incident of one of three severities
/// and teams, or a team handoff under one of two templates.
fn opening(team: bool, detail: usize) -> Command {
    if team {
        testkit::team_command(0, &template_of(detail))
    } else {
        open(Severity::ALL[detail % 3], TEAMS[detail % 3])
    }
}

/// Follow-up command `k` for a generated handoff (an incident's `0` moves
/// it to another team).
fn follow_up(team: bool, detail: usize, k: u8) -> Command {
    match (team, k) {
        (true, k) => testkit::team_command(k.max(1), &template_of(detail)),
        (false, 0) => incident(IncidentCommand::Enrich {
            by: "e".into(),
            fields: Packet {
                recommended_action: Some("rerun".into()),
                ..Default::default()
            },
            team: Some("ml".into()),
        }),
        (false, k) => testkit::incident_command(2 + k % 5),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Walking the list page by page, from a projection that took part of
    /// its state from a snapshot, gives every handoff the filter keeps,
    /// newest first, ties by id: what filtering and sorting `all()` gives.
    /// The windows agree with the same reference cut by time.
    #[test]
    fn paging_through_the_index_equals_filtering_and_sorting_everything(
        specs in prop::collection::vec(arb_spec(), 1..25),
        selects in prop::collection::vec(arb_select(), 1..6),
        limit in 1usize..6,
        window in (0i64..7, 0i64..7),
    ) {
        let mut before = Given::new();
        for (id, at, team, detail, early, _) in &specs {
            let id = Uuid::from_u128(*id);
            before.run(id, *at, &opening(*team, *detail));
            for (n, k) in early.iter().enumerate() {
                before.run(id, at + 100 + n as i64 * 600, &follow_up(*team, *detail, *k));
            }
        }
        let mut entries = Vec::new();
        before.p.visit(|_| true, |h, s| entries.push((h.clone(), s)));
        let mut g = Given::new();
        g.p.import(entries, before.seq);
        g.seq = before.seq;
        for (id, at, team, detail, _, late) in &specs {
            for (n, k) in late.iter().enumerate() {
                g.run(Uuid::from_u128(*id), at + 5000 + n as i64 * 7200, &follow_up(*team, *detail, *k));
            }
        }
        let everything = g.p.all();
        for select in selects {
            let mut expected: Vec<&Handoff> = everything.iter().filter(|h| reference(&select, h)).collect();
            expected.sort_by_key(|h| Reverse(Key::of(h)));
            let expected: Vec<Uuid> = expected.iter().map(|h| h.id()).collect();

            let mut got = Vec::new();
            let mut after = None;
            loop {
                let page = g.p.page(&select, after, limit);
                prop_assert!(page.items.len() <= limit);
                got.extend(page.items.iter().map(Handoff::id));
                if !page.more {
                    break;
                }
                prop_assert_eq!(page.items.len(), limit, "a page with more after it is full");
                after = page.items.last().map(Key::of);
            }
            prop_assert_eq!(&got, &expected, "{:?}", select);

            let (since, until) = (t(window.0.min(window.1)), t(window.0.max(window.1)));
            let windowed: Vec<Uuid> = g.p.opened_in(&select, Some(since), Some(until)).iter().map(Handoff::id).collect();
            let reference_window: Vec<Uuid> = expected
                .iter()
                .filter(|id| {
                    let at = everything.iter().find(|h| h.id() == **id).unwrap().opened_at();
                    at >= since && at < until
                })
                .copied()
                .collect();
            prop_assert_eq!(windowed, reference_window);
        }
    }
}
