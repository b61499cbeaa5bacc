//! Replay, audit and snapshot checks over hand-made histories: the engine's
//! write path simulated with `decide` + `seal`, each commit given a stream
//! sequence, pages derived with `pages_for` — no NATS anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::audit::{verify, Audit, FindingKind};
use super::compare::{compare, local_buckets};
use super::read::{DaemonDigests, PageRecord};
use super::*;
use crate::domain::{decide, Command, Commit, EventData, IncidentCommand, Policy};
use crate::store::Names;
use crate::testkit;
use crate::wire::page::pages_for;

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap()
}

/// The engine's write path, without NATS: one commit per accepted command.
struct Log {
    policy: Policy,
    records: Vec<Record>,
    live: BTreeMap<Uuid, (Option<Handoff>, u64)>,
    /// The live state after each commit (index = seq - 1).
    history: Vec<BTreeMap<Uuid, (Handoff, u64)>>,
}

impl Log {
    fn new() -> Self {
        Self {
            policy: testkit::policy(),
            records: vec![],
            live: BTreeMap::new(),
            history: vec![],
        }
    }

    fn run(&mut self, id: Uuid, at_ms: i64, cmd: Command) {
        let now = t0() + Duration::milliseconds(at_ms);
        let slot = self.live.entry(id).or_default();
        let Ok(new) = decide(slot.0.as_ref(), &cmd, now, &self.policy) else {
            return;
        };
        if new.is_empty() {
            return;
        }
        let events: Vec<_> = new
            .into_iter()
            .map(|e| e.seal(Uuid::now_v7(), id, now))
            .collect();
        for e in &events {
            apply(&mut slot.0, e);
        }
        let seq = self.records.len() as u64 + 1;
        slot.1 = seq;
        self.records.push(Record {
            seq,
            subject: Names::new("baton").events(id),
            commit: Ok(Commit { events }),
        });
        self.history.push(
            self.live
                .iter()
                .filter_map(|(id, (h, s))| Some((*id, (h.clone()?, *s))))
                .collect(),
        );
    }

    fn pages(&self) -> Vec<PageRecord> {
        let names = Names::new("baton");
        let mut out = vec![];
        for r in &self.records {
            for e in &r.commit.as_ref().unwrap().events {
                for (subject, msg_id, page) in pages_for(e, &names) {
                    out.push(PageRecord {
                        seq: out.len() as u64 + 1,
                        subject,
                        msg_id: Some(msg_id),
                        page: Ok(page),
                    });
                }
            }
        }
        out
    }
}

fn open(run: &str, severity: crate::domain::Severity) -> Command {
    let mut report = testkit::report(severity);
    report.packet.run_id = Some(run.into());
    Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report,
        warnings: vec![],
        source: Some(format!("report:{run}")),
    })
}

fn plain(state: &BTreeMap<Uuid, Rebuilt>) -> BTreeMap<Uuid, (Handoff, u64)> {
    state
        .iter()
        .map(|(id, r)| (*id, (r.handoff.clone(), r.last_seq)))
        .collect()
}

fn arb_command() -> impl Strategy<Value = (usize, i64, u8)> {
    // (which handoff: 0-2 incidents, 3-4 team handoffs; milliseconds
    // later; which command)
    (0..5usize, 0..400_000i64, 0..14u8)
}

/// The handoffs of the properties: three incidents, two team handoffs.
const IDS: [Uuid; 5] = [
    Uuid::from_u128(1),
    Uuid::from_u128(2),
    Uuid::from_u128(3),
    Uuid::from_u128(4),
    Uuid::from_u128(5),
];

/// The team handoffs' template: a shipped one with SLAs that pass within a
/// generated history (minutes, as the incidents' deadlines do).
fn quick_template() -> crate::domain::teamwork::Template {
    let mut t = testkit::policy().templates["sales_to_onboarding"].clone();
    t.sla = Some(crate::domain::teamwork::TemplateSla {
        accept: std::time::Duration::from_secs(600),
        complete: std::time::Duration::from_secs(3600),
    });
    t
}

/// Command `kind` for handoff `who` of [`IDS`].
fn command_for(who: usize, kind: u8) -> Command {
    if who < 3 {
        command_of(kind % 7, &format!("run-{who}"))
    } else {
        // 0-2 start it: a team handoff needs a start before anything else.
        testkit::team_command(kind.saturating_sub(2), &quick_template())
    }
}

fn command_of(kind: u8, run: &str) -> Command {
    let by = "alice".to_string();
    match kind {
        0 => open(run, crate::domain::Severity::P1),
        1 => open(run, crate::domain::Severity::P2),
        2 => Command::Incident(IncidentCommand::Acknowledge { by }),
        3 => Command::Incident(IncidentCommand::Resolve { by, note: None }),
        4 => Command::Incident(IncidentCommand::Override {
            by,
            reason: "now".into(),
        }),
        5 => Command::Incident(IncidentCommand::Enrich {
            by,
            fields: crate::domain::Packet {
                recommended_action: Some("rerun".into()),
                ..Default::default()
            },
            team: None,
        }),
        _ => Command::Tick,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Replay up to any sequence equals what the live projection held right
    /// after that commit.
    #[test]
    fn replay_until_any_point_equals_the_live_state_then(
        cmds in proptest::collection::vec(arb_command(), 1..40),
        cut in 0.0..1.0f64,
    ) {
        let mut log = Log::new();
        let mut at = 0;
        for (who, later, kind) in cmds {
            at += later;
            log.run(IDS[who], at, command_for(who, kind));
        }
        prop_assume!(!log.records.is_empty());
        let k = ((log.records.len() - 1) as f64 * cut) as usize;
        let filter = Filter { until: Some(Position::Seq(k as u64 + 1)), ..Default::default() };
        prop_assert_eq!(plain(&rebuild(&log.records, &filter)), log.history[k].clone());
        // And by time: everything decided up to that commit's moment.
        let moment = log.records[k].occurred_at().unwrap();
        let last_at_moment = log.records.iter().rposition(|r| r.occurred_at().unwrap() <= moment).unwrap();
        let filter = Filter { until: Some(Position::Time(moment)), ..Default::default() };
        prop_assert_eq!(plain(&rebuild(&log.records, &filter)), log.history[last_at_moment].clone());
    }

    /// A snapshot taken at any point plus the tail is the full replay, for
    /// both kinds of handoff (team fields are `serde_json::Value`s inside
    /// the MessagePack entries), gauges and list index included.
    #[test]
    fn snapshot_plus_tail_equals_full_replay(
        cmds in proptest::collection::vec(arb_command(), 1..30),
        cut in 0.0..1.0f64,
    ) {
        let mut log = Log::new();
        let mut at = 0;
        for (who, later, kind) in cmds {
            at += later;
            log.run(IDS[who], at, command_for(who, kind));
        }
        let k = (log.records.len() as f64 * cut) as usize;
        let full = projection_of(&log.records, None);
        let partial = projection_of(&log.records[..k], None);
        let mut enc = crate::wire::snapshot::Encoder::new(300);
        partial.0.visit(|_| true, |h, s| enc.push(h, s));
        let (manifest, chunks) = enc.finish(Uuid::now_v7(), k as u64, "s".into(), t0());
        let entries = crate::wire::snapshot::decode(&manifest, &chunks).unwrap();
        let restored = projection_of(&log.records[k..], Some((entries, k as u64)));
        prop_assert_eq!(entries_of(&restored), entries_of(&full));
        prop_assert_eq!(gauges(&restored), gauges(&full));
        let listed = |(p, _): &Projected| p.page(&crate::projector::Select::all(), None, 10).items;
        prop_assert_eq!(listed(&restored), listed(&full));
    }
}

type Projected = (crate::projector::Projection, Arc<crate::metrics::Metrics>);

fn projection_of(records: &[Record], snapshot: Option<(Vec<(Handoff, u64)>, u64)>) -> Projected {
    let (timer, _queue) = crate::sla::channel();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let p = crate::projector::Projection::new(Arc::new(testkit::policy()), timer, metrics.clone());
    if let Some((entries, seq)) = snapshot {
        p.import(entries, seq);
    }
    for r in records {
        let commit = r.commit.as_ref().unwrap();
        let slot = p.slot(commit.events[0].handoff_id);
        p.apply_commit(&slot, r.seq, commit, true);
    }
    (p, metrics)
}

fn entries_of((p, _): &Projected) -> BTreeMap<Uuid, (Handoff, u64)> {
    let mut out = BTreeMap::new();
    p.visit(
        |_| true,
        |h, s| {
            out.insert(h.id(), (h.clone(), s));
        },
    );
    out
}

/// The open-handoffs gauge lines of both kinds (zero-valued series
/// dropped).
fn gauges((_, m): &Projected) -> Vec<String> {
    m.render()
        .lines()
        .filter(|l| {
            (l.starts_with("baton_open_handoffs{") || l.starts_with("baton_open_team_handoffs{"))
                && !l.ends_with(" 0")
        })
        .map(String::from)
        .collect()
}

#[test]
fn team_fields_of_every_json_shape_survive_the_snapshot() {
    let mut log = Log::new();
    let id = Uuid::from_u128(44);
    log.run(id, 0, testkit::team_command(0, &quick_template()));
    log.run(id, 1_000, testkit::team_command(1, &quick_template()));
    let (h, s) = log.history.last().unwrap()[&id].clone();
    let fields = &h.as_team().expect("a team handoff").fields;
    assert!(
        fields.values().any(|v| v.is_u64() && v.as_i64().is_none()),
        "a number past i64 is among them: {fields:?}"
    );
    let mut enc = crate::snapshot::Encoder::new(1 << 20);
    enc.push(&h, s);
    let (manifest, chunks) = enc.finish(Uuid::now_v7(), s, "s".into(), t0());
    assert_eq!(
        crate::snapshot::decode(&manifest, &chunks).unwrap(),
        vec![(h, s)]
    );
}

#[test]
fn a_corrupt_snapshot_is_refused_so_the_caller_replays_in_full() {
    let mut log = Log::new();
    log.run(
        Uuid::from_u128(9),
        0,
        open("r", crate::domain::Severity::P1),
    );
    let (h, s) = log.history[0].values().next().unwrap().clone();
    let mut enc = crate::wire::snapshot::Encoder::new(1 << 20);
    enc.push(&h, s);
    let (manifest, mut chunks) = enc.finish(Uuid::now_v7(), 1, "s".into(), t0());
    assert_eq!(
        crate::wire::snapshot::decode(&manifest, &chunks).unwrap(),
        vec![(h, s)]
    );
    chunks[0][5] ^= 1;
    let err = crate::wire::snapshot::decode(&manifest, &chunks).unwrap_err();
    assert!(err.contains("checksum"), "{err}");
    let mut newer = manifest.clone();
    newer.format = crate::wire::snapshot::FORMAT + 1;
    assert!(crate::wire::snapshot::decode(&newer, &chunks).is_err());
    assert!(crate::wire::snapshot::decode::<Vec<u8>>(&manifest, &[]).is_err());
    // A format-1 (JSON lines) snapshot is refused, not misread.
    let mut json_lines = manifest.clone();
    json_lines.format = 1;
    let err = crate::wire::snapshot::decode(&json_lines, &chunks).unwrap_err();
    assert!(err.contains("format 1"), "{err}");
}

#[test]
fn every_chunk_of_a_snapshot_is_checked_and_named_when_it_fails() {
    let mut log = Log::new();
    for n in 0..6u128 {
        log.run(
            Uuid::from_u128(100 + n),
            n as i64,
            open(&format!("r{n}"), crate::domain::Severity::P2),
        );
    }
    let mut enc = crate::wire::snapshot::Encoder::new(1);
    for (h, s) in log.history.last().unwrap().values() {
        enc.push(h, *s);
    }
    let (manifest, mut chunks) = enc.finish(Uuid::now_v7(), 6, "s".into(), t0());
    assert_eq!(manifest.chunks, 6, "one entry per chunk at this size");
    let whole = crate::wire::snapshot::decode(&manifest, &chunks).unwrap();
    // Decoding in groups, as loading does, gives the same entries in order.
    let mut grouped = crate::wire::snapshot::decode_chunks(&manifest, 0, &chunks[..4]).unwrap();
    grouped.extend(crate::wire::snapshot::decode_chunks(&manifest, 4, &chunks[4..]).unwrap());
    assert_eq!(grouped, whole);
    chunks[4][7] ^= 0x40;
    let err = crate::wire::snapshot::decode(&manifest, &chunks).unwrap_err();
    assert!(err.contains("chunk 4"), "{err}");
    chunks[4].truncate(3);
    assert!(crate::wire::snapshot::decode(&manifest, &chunks).is_err());
    // A chunk whose hash matches but whose LZ4 size claims 2 GiB is refused
    // before anything is allocated for it.
    use sha2::Digest;
    let mut manifest = manifest;
    chunks[4] = [0xff, 0xff, 0xff, 0x7f, 1, 2, 3].to_vec();
    manifest.chunk_sha256[4] = sha2::Sha256::digest(&chunks[4])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    manifest.bytes = chunks.iter().map(|c| c.len() as u64).sum();
    let err = crate::wire::snapshot::decode(&manifest, &chunks).unwrap_err();
    assert!(err.contains("chunk 4 claims"), "{err}");
}

/// A P1 paged at open, escalated at its first deadline, acknowledged, and
/// the pages it derived — all healthy.
fn healthy() -> (Log, Uuid) {
    let mut log = Log::new();
    let id = Uuid::from_u128(42);
    log.run(id, 0, open("h", crate::domain::Severity::P1));
    log.run(id, 300_000, Command::Tick);
    log.run(
        id,
        420_000,
        Command::Incident(IncidentCommand::Acknowledge { by: "alice".into() }),
    );
    (log, id)
}

fn audit_of(log: &Log, pages: &[PageRecord], now_ms: i64) -> Vec<Finding> {
    let names = Names::new("baton");
    let audit = Audit {
        policy: &log.policy,
        names: &names,
        now: t0() + Duration::milliseconds(now_ms),
        grace: Duration::seconds(5),
        first_seq: 1,
    };
    let state = rebuild(&log.records, &Filter::default());
    verify(&audit, &log.records, &state, pages)
        .into_iter()
        .filter(|f| f.violation)
        .collect()
}

#[test]
fn audit_passes_on_a_healthy_history() {
    let (log, _) = healthy();
    assert_eq!(audit_of(&log, &log.pages(), 3_600_000), vec![]);
}

#[test]
fn audit_names_the_handoff_of_a_duplicate_page() {
    let (log, id) = healthy();
    let mut pages = log.pages();
    let mut copy = pages[0].clone();
    copy.seq = 99;
    copy.msg_id = Some("injected".into());
    pages.push(copy);
    let found = audit_of(&log, &pages, 3_600_000);
    assert!(
        found
            .iter()
            .any(|f| f.kind == FindingKind::DuplicatePage && f.handoff == Some(id)),
        "{found:?}"
    );
}

#[test]
fn audit_finds_a_missing_escalation_but_not_one_still_within_grace() {
    let mut log = Log::new();
    let id = Uuid::from_u128(43);
    log.run(id, 0, open("m", crate::domain::Severity::P1));
    let pages = log.pages();
    // 5 min + 2 s: the first deadline passed 2 s ago, inside the grace.
    assert_eq!(audit_of(&log, &pages, 302_000), vec![]);
    let found = audit_of(&log, &pages, 700_000);
    let missing: Vec<_> = found
        .iter()
        .filter(|f| f.kind == FindingKind::MissingEscalation)
        .collect();
    assert_eq!(missing.len(), 2, "steps 1 and 2 passed: {found:?}");
    assert!(missing.iter().all(|f| f.handoff == Some(id)));
}

#[test]
fn audit_names_the_handoff_of_a_corrupted_event() {
    let (mut log, id) = healthy();
    let pages = log.pages();
    log.records[1].commit = Err("expected value at line 1 column 1".into());
    let found = audit_of(&log, &pages, 3_600_000);
    assert!(
        found.iter().any(|f| f.kind == FindingKind::UndecodableEvent
            && f.handoff == Some(id)
            && f.seq == Some(2)),
        "{found:?}"
    );
}

#[test]
fn audit_finds_gaps_late_events_and_pages_nothing_caused() {
    let (mut log, id) = healthy();
    log.run(
        id,
        500_000,
        Command::Incident(IncidentCommand::Resolve {
            by: "alice".into(),
            note: None,
        }),
    );
    // An ack stored after the resolution (the rules would refuse it).
    let mut late = log.records[2].clone();
    late.seq = 6;
    log.records.push(late);
    let mut pages = log.pages();
    let mut orphan = pages[0].clone();
    orphan.page.as_mut().unwrap().event_id = Uuid::from_u128(1234);
    orphan.page.as_mut().unwrap().kind = "escalation".into();
    pages.push(orphan);
    let kinds: Vec<_> = audit_of(&log, &pages, 3_600_000)
        .iter()
        .map(|f| f.kind)
        .collect();
    for k in [
        FindingKind::SequenceGap,
        FindingKind::EventAfterResolved,
        FindingKind::MisfiledEvent,
        FindingKind::PageWithoutCause,
    ] {
        assert!(kinds.contains(&k), "{k:?} not in {kinds:?}");
    }
}

#[test]
fn digest_comparison_tells_divergence_from_lag() {
    let (mut log, id) = healthy();
    let other = Uuid::from_u128(77);
    log.run(other, 1000, open("o", crate::domain::Severity::P2));
    let state = rebuild(&log.records, &Filter::default());
    let upto = log.records.len() as u64;
    let all = |applied| DaemonDigests {
        applied_seq: applied,
        handoffs: state
            .iter()
            .map(|(i, r)| (*i, (r.last_seq, digest(&r.handoff, r.last_seq))))
            .collect(),
        fetched: (0..=255).collect(),
        evicted_before: None,
    };
    assert!(compare(&state, upto, &all(upto)).is_empty());

    let mut wrong = all(upto);
    wrong.handoffs.get_mut(&id).unwrap().1 = "0000".into();
    let found = compare(&state, upto, &wrong);
    assert!(
        found.iter().all(|f| f.violation && f.handoff == Some(id)),
        "{found:?}"
    );
    assert_eq!(found.len(), 1);

    // A daemon that has not applied the last commit yet is lagging, not wrong.
    let mut behind = all(upto - 1);
    behind.handoffs.remove(&other);
    assert!(compare(&state, upto, &behind).iter().all(|f| !f.violation));
    // ... but one that has applied past it and still lacks it diverges.
    let mut lost = all(upto);
    lost.handoffs.remove(&other);
    let found = compare(&state, upto, &lost);
    assert!(found
        .iter()
        .any(|f| f.violation && f.handoff == Some(other)));
}

/// A daemon evicts closed handoffs after its retention: their absence is
/// no divergence, while a handoff closed after its cutoff must be there.
#[test]
fn digest_comparison_accepts_handoffs_the_daemon_evicted_after_its_retention() {
    let (mut log, id) = healthy();
    log.run(
        id,
        500_000,
        Command::Incident(IncidentCommand::Resolve {
            by: "alice".into(),
            note: None,
        }),
    );
    let state = rebuild(&log.records, &Filter::default());
    let upto = log.records.len() as u64;
    let closed = state[&id].handoff.closed_at().expect("resolved");
    let without = |cutoff| DaemonDigests {
        applied_seq: upto,
        handoffs: state
            .iter()
            .filter(|(i, _)| **i != id)
            .map(|(i, r)| (*i, (r.last_seq, digest(&r.handoff, r.last_seq))))
            .collect(),
        fetched: (0..=255).collect(),
        evicted_before: Some(cutoff),
    };
    let after = closed + Duration::milliseconds(1);
    assert!(compare(&state, upto, &without(after)).is_empty());
    assert_eq!(
        local_buckets(&state, Some(after)),
        local_buckets(
            &state
                .iter()
                .filter(|(i, _)| **i != id)
                .map(|(i, r)| (*i, r.clone()))
                .collect(),
            None
        ),
        "the local buckets leave out what the daemon may have evicted"
    );
    let found = compare(&state, upto, &without(closed));
    assert!(
        found.iter().any(|f| f.violation && f.handoff == Some(id)),
        "closed at the cutoff, not before it: {found:?}"
    );
}

#[test]
fn positions_parse_as_sequences_or_rfc3339() {
    assert_eq!("42".parse::<Position>(), Ok(Position::Seq(42)));
    assert_eq!(
        "2023-11-14T22:13:20Z".parse::<Position>(),
        Ok(Position::Time(t0()))
    );
    assert!("yesterday".parse::<Position>().is_err());
    let _ = EventData::Resolved {
        by: String::new(),
        note: None,
    };
}
