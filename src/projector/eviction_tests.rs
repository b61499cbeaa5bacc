//! Eviction as the projection does it (`evict`): given commits applied as
//! the engine applies them, when the clock passes the retention, then
//! closed handoffs leave the map, the list index and the occurrence hints,
//! and nothing brings them back but a read of the log. And `forget`
//! (`baton deliver`), which drops one handoff the same way, open or not.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::domain::{decide, Command, IncidentCommand, Severity};
use crate::testkit;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// A projection evicting a minute after close.
fn projection() -> (Projection, Arc<Metrics>) {
    let (timer, _queue) = crate::sla::channel();
    let metrics = Arc::new(Metrics::new());
    let p = Projection::new(Arc::new(testkit::policy()), timer, metrics.clone())
        .with_retention(Duration::from_secs(60));
    (p, metrics)
}

/// Decides `cmd` on `id` at `at` and applies the commit at `seq`; returns it.
fn run(p: &Projection, seq: u64, id: Uuid, at: i64, cmd: IncidentCommand) -> Commit {
    let slot = p.slot(id);
    let state = slot.entry.lock().unwrap().state.clone();
    let events = decide(state.as_ref(), &Command::Incident(cmd), t(at), p.policy()).unwrap();
    let commit = Commit {
        events: events
            .into_iter()
            .map(|e| e.seal(Uuid::now_v7(), id, t(at)))
            .collect(),
    };
    p.apply_commit(&slot, seq, &commit, true);
    commit
}

fn open() -> IncidentCommand {
    IncidentCommand::Open {
        template: "agent_failure".into(),
        report: testkit::report(Severity::P1),
        warnings: vec![],
        source: None,
    }
}

fn resolve() -> IncidentCommand {
    IncidentCommand::Resolve {
        by: "al".into(),
        note: None,
    }
}

fn listed(p: &Projection) -> Vec<Uuid> {
    p.page(&Select::all(), None, 500)
        .items
        .iter()
        .map(Handoff::id)
        .collect()
}

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);

#[test]
fn a_closed_handoff_leaves_memory_and_the_list_once_the_retention_passes_and_an_open_one_stays() {
    let (p, metrics) = projection();
    run(&p, 1, A, 0, open());
    run(&p, 2, B, 0, open());
    run(&p, 3, A, 10, resolve());
    assert_eq!(listed(&p), [B, A]);

    assert_eq!(p.evict_due(t(69)), 0, "closed 59 s ago: kept");
    assert_eq!(p.evict_due(t(70)), 1);
    assert!(p.get(A).is_none());
    assert_eq!(listed(&p), [B]);
    assert_eq!(p.index.read().unwrap().len(), (1, 0), "unlisted");
    assert_eq!(p.evict_due(t(1_000_000)), 0, "open handoffs never go");
    assert!(p.get(B).is_some());
    assert_eq!(metrics.handoffs_evicted_total.get(), 1);
    assert_eq!(metrics.handoffs_in_memory.get(), 1);
}

#[test]
fn a_handoff_a_command_holds_waits_for_the_next_tick() {
    let (p, _) = projection();
    run(&p, 1, A, 0, open());
    run(&p, 2, A, 0, resolve());
    let held = p.slot(A);
    assert_eq!(p.evict_due(t(60)), 0, "a command holds its slot");
    drop(held);
    assert_eq!(p.evict_due(t(60)), 1, "queued again for the next tick");
    assert!(p.get(A).is_none());
}

#[test]
fn a_commit_for_an_evicted_handoff_opens_nothing_and_leaves_no_slot() {
    let (p, _) = projection();
    run(&p, 1, A, 0, open());
    let resolved = run(&p, 2, A, 0, resolve());
    assert_eq!(p.evict_due(t(60)), 1);
    // Another daemon's later commit on it, as the projector reads it.
    p.apply_stored(A, 9, &resolved);
    assert!(p.get(A).is_none());
    assert_eq!(p.len(), 0, "no empty slot left behind");
    assert!(listed(&p).is_empty());
    // The same while a command holds the slot it made to load the handoff:
    // the slot stays at sequence 0, so the command's read of the log still
    // starts at the opening.
    let held = p.slot(A);
    p.apply_stored(A, 10, &resolved);
    let entry = held.entry.lock().unwrap();
    assert_eq!((entry.state.is_none(), entry.last_seq), (true, 0));
}

#[test]
fn a_restored_snapshot_queues_its_closed_entries_so_they_are_evicted_again() {
    let (old, _) = projection();
    run(&old, 1, A, 0, open());
    run(&old, 2, A, 5, resolve());
    run(&old, 3, B, 0, open());
    let mut entries = Vec::new();
    old.visit(|_| true, |h, seq| entries.push((h.clone(), seq)));

    let (p, _) = projection();
    p.import(entries, 3);
    assert_eq!(listed(&p).len(), 2);
    assert!(p.eviction_due(), "closed long before now");
    assert_eq!(p.evict_due(t(65)), 1);
    assert_eq!(listed(&p), [B]);
}

#[test]
fn an_occurrence_hint_lives_only_as_long_as_its_occurrence_is_held() {
    let (p, _) = projection();
    let first = Uuid::from_u128(0x1);
    let hint = Hint {
        n: 2,
        id: A,
        before: 7,
    };
    p.note_occurrence(first, hint);
    assert_eq!(p.occurrence_hint(first), None, "A is not held");
    run(&p, 1, A, 0, open());
    p.note_occurrence(first, hint);
    assert_eq!(p.occurrence_hint(first), Some(hint));
    run(&p, 2, A, 0, resolve());
    assert_eq!(p.evict_due(t(60)), 1);
    assert_eq!(p.occurrence_hint(first), None, "evicted with it");
}

#[test]
fn without_a_retention_nothing_is_queued_or_evicted() {
    let (timer, _queue) = crate::sla::channel();
    let p = Projection::new(Arc::new(testkit::policy()), timer, Arc::new(Metrics::new()));
    run(&p, 1, A, 0, open());
    run(&p, 2, A, 0, resolve());
    assert!(!p.eviction_due());
    assert_eq!(p.evict_due(t(1_000_000)), 0);
    assert!(p.evictions.lock().unwrap().is_empty());
    assert!(p.get(A).is_some());
}

#[test]
fn forget_leaves_nothing_of_the_handoffs_a_lone_delivery_worker_wrote_to() {
    // As `baton deliver` holds them: no retention, open, just changed.
    let (timer, _queue) = crate::sla::channel();
    let metrics = Arc::new(Metrics::new());
    let p = Projection::new(Arc::new(testkit::policy()), timer, metrics.clone());
    let ids: Vec<Uuid> = (0..5).map(|i| Uuid::from_u128(0x100 + i)).collect();
    for (seq, id) in (1..).zip(&ids) {
        run(&p, seq, *id, 0, open());
    }
    let first = Uuid::from_u128(0x1);
    let hint = Hint {
        n: 2,
        id: ids[0],
        before: 7,
    };
    p.note_occurrence(first, hint);
    assert_eq!(listed(&p).len(), 5, "listed once the index settles");
    let Gauged::Incident(sev, st) = Gauged::of(&p.get(ids[0]).unwrap()) else {
        panic!("an incident")
    };
    let open_gauge = metrics
        .open_handoffs
        .with_label_values(&[sev.as_str(), st.as_str()]);
    assert_eq!(open_gauge.get(), 5);

    // A command running on it keeps it until that command's caller forgets.
    let held = p.slot(ids[0]);
    assert!(!p.forget(ids[0]));
    assert!(p.get(ids[0]).is_some());
    drop(held);
    // A change the index has not read yet is read first, then dropped.
    run(&p, 6, ids[1], 5, resolve());
    for id in &ids {
        assert!(p.forget(*id), "{id} forgotten");
    }
    assert_eq!(p.len(), 0, "no slot left");
    assert!(listed(&p).is_empty());
    assert_eq!(p.index.read().unwrap().len(), (0, 0), "unlisted");
    assert_eq!(p.occurrence_hint(first), None, "the hint went with it");
    assert_eq!(open_gauge.get(), 0, "not counted open any more");
    assert!(!p.forget(ids[0]), "nothing left to forget");
}
