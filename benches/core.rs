//! Core micro-benchmarks: the pure domain (HCS, `decide`, `apply`) and the
//! projection step the projector runs per stored commit. No NATS here; the
//! end-to-end harness (`benches/e2e`) measures the broker-bound paths.
//!
//! `cargo bench --bench core` (criterion; per-operation times, and elements
//! per second for the batch benchmarks).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use baton::domain::{
    apply, decide, parse_report, score, Command, Commit, Handoff, IncidentCommand, ParseLimits,
    Policy, Severity,
};
use baton::metrics::Metrics;
use baton::projector::{Projection, Select};
use baton::sla;
use baton::testkit::{full_packet, policy, report};
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use uuid::Uuid;

/// The allocator `baton serve` runs with (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LIMITS: ParseLimits = ParseLimits {
    max_report_bytes: 64 * 1024,
    max_field_bytes: 4096,
};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

fn open(report: baton::domain::Report) -> Command {
    Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report,
        warnings: vec![],
        source: Some("report:1".into()),
    })
}

/// A complete P1 report for run `i`: a distinct handoff per `i`.
fn p1(i: usize) -> baton::domain::Report {
    let mut r = report(Severity::P1);
    r.packet.run_id = Some(format!("run-{i}"));
    r
}

/// The commit a complete P1 report stores (opened, scored, paged).
fn open_commit(policy: &Policy, i: usize, now: DateTime<Utc>) -> Commit {
    let r = p1(i);
    let id = baton::domain::handoff_id_for("agent_failure", &r).expect("keyed");
    let events = decide(None, &open(r), now, policy)
        .expect("opens")
        .into_iter()
        .map(|e| e.seal(Uuid::now_v7(), id, now))
        .collect();
    Commit { events }
}

fn state_of(commit: &Commit) -> Handoff {
    let mut h = None;
    for e in &commit.events {
        apply(&mut h, e);
    }
    h.expect("opened")
}

/// `n` handoffs' whole lives in stream order: each opened (and paged) a
/// second after the last, escalated past its first-response deadline,
/// acknowledged, then resolved. Four commits per handoff, as a replay
/// meets them, unlike the opens-only batches (every commit a new handoff).
fn lifecycle_commits(policy: &Policy, n: usize) -> Vec<Commit> {
    let ack = Command::Incident(IncidentCommand::Acknowledge { by: "al".into() });
    let resolve = Command::Incident(IncidentCommand::Resolve {
        by: "al".into(),
        note: None,
    });
    let mut timed = Vec::new();
    for i in 0..n {
        let opened = t0() + chrono::Duration::seconds(i as i64);
        let first = open_commit(policy, i, opened);
        let mut state = Some(state_of(&first));
        let id = first.events[0].handoff_id;
        timed.push((opened, first));
        let due = state
            .as_ref()
            .and_then(|h| h.next_deadline(policy))
            .expect("armed");
        for (at, cmd) in [
            (due, Command::Tick),
            (due + chrono::Duration::seconds(30), ack.clone()),
            (due + chrono::Duration::seconds(60), resolve.clone()),
        ] {
            let events: Vec<_> = decide(state.as_ref(), &cmd, at, policy)
                .expect("accepted")
                .into_iter()
                .map(|e| e.seal(Uuid::now_v7(), id, at))
                .collect();
            for e in &events {
                apply(&mut state, e);
            }
            timed.push((at, Commit { events }));
        }
    }
    timed.sort_by_key(|(at, _)| *at);
    timed.into_iter().map(|(_, c)| c).collect()
}

fn projection(policy: &Arc<Policy>) -> Projection {
    // The timer's receiver is dropped: arming is a failed channel send, so
    // this measures the projection alone.
    Projection::new(policy.clone(), sla::channel().0, Arc::new(Metrics::new()))
}

fn hcs(c: &mut Criterion) {
    let mut g = c.benchmark_group("hcs");
    let complete = full_packet();
    let mut incomplete = full_packet();
    incomplete.run_id = None;
    incomplete.rollback_command = None;
    g.bench_function("score_complete", |b| {
        b.iter(|| score(black_box(&complete), black_box(Some("payments"))))
    });
    g.bench_function("score_incomplete", |b| {
        b.iter(|| score(black_box(&incomplete), black_box(Some("payments"))))
    });
    let payload = serde_json::to_vec(&p1(1)).expect("serializes");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("parse_report", |b| {
        b.iter(|| parse_report(black_box(&payload), LIMITS).expect("valid"))
    });
    g.finish();
}

fn decide_bench(c: &mut Criterion) {
    let policy = policy();
    let now = t0();
    let mut g = c.benchmark_group("decide");
    let complete = open(p1(1));
    g.bench_function("open_complete", |b| {
        b.iter(|| decide(None, black_box(&complete), now, &policy).expect("opens"))
    });
    // Missing run_id and rollback: auto-enriched from the runbook, then held.
    let mut r = p1(1);
    r.packet.run_id = None;
    r.packet.rollback_command = None;
    let incomplete = open(r);
    g.bench_function("open_incomplete", |b| {
        b.iter(|| decide(None, black_box(&incomplete), now, &policy).expect("opens"))
    });
    let paged = state_of(&open_commit(&policy, 1, now));
    let due = paged.next_deadline(&policy).expect("armed") + Duration::from_millis(1);
    g.bench_function("tick_escalation", |b| {
        b.iter(|| {
            let out = decide(Some(black_box(&paged)), &Command::Tick, due, &policy).expect("ok");
            debug_assert_eq!(out.len(), 1);
            out
        })
    });
    g.bench_function("tick_nothing_due", |b| {
        b.iter(|| decide(Some(black_box(&paged)), &Command::Tick, now, &policy).expect("ok"))
    });
    g.finish();
}

fn apply_bench(c: &mut Criterion) {
    let policy = policy();
    let commit = open_commit(&policy, 1, t0());
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(commit.events.len() as u64));
    g.bench_function("open_commit", |b| {
        b.iter(|| {
            let mut h = None;
            for e in black_box(&commit.events) {
                apply(&mut h, e);
            }
            h
        })
    });
    g.finish();
}

/// What the projector does per stored commit, over a batch of distinct
/// handoffs: with and without decoding the stored JSON.
fn projection_bench(c: &mut Criterion) {
    const BATCH: usize = 1000;
    let policy = Arc::new(policy());
    let commits: Vec<Commit> = (0..BATCH).map(|i| open_commit(&policy, i, t0())).collect();
    let payloads: Vec<Vec<u8>> = commits
        .iter()
        .map(|c| serde_json::to_vec(c).expect("serializes"))
        .collect();
    let mut g = c.benchmark_group("projection");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Each batch alone, then the same followed by a list read: the read
    // settles the list index the applies only noted (`projector::listing`),
    // so `_then_list` is the whole cost of keeping the list ordered.
    let lives = lifecycle_commits(&policy, BATCH / 4);
    for (name, batch) in [("opens", &commits), ("lifecycle", &lives)] {
        for then_list in [false, true] {
            let id = format!(
                "apply_commit_1000_{name}{}",
                if then_list { "_then_list" } else { "" }
            );
            g.bench_function(id, |b| {
                b.iter_batched(
                    || projection(&policy),
                    |p| {
                        for (i, commit) in batch.iter().enumerate() {
                            let slot = p.slot(commit.events[0].handoff_id);
                            p.apply_commit(&slot, i as u64 + 1, commit, true);
                        }
                        if then_list {
                            black_box(p.page(&Select::all(), None, 1));
                        }
                        p
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    // The stored JSON alone: Baton's decoder, and serde's derived one it
    // replaced (which buffers each flattened event into `Content` first).
    g.bench_function("decode_commit_1000_opens", |b| {
        b.iter(|| {
            for (i, bytes) in payloads.iter().enumerate() {
                black_box(baton::store::decode_commit(i as u64, bytes).expect("decodes"));
            }
        })
    });
    // The floor of any serde_json reader: scanning and validating the
    // bytes without building anything.
    g.bench_function("scan_ignored_any_1000_opens", |b| {
        b.iter(|| {
            for bytes in &payloads {
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(bytes).expect("scans"));
            }
        })
    });
    g.bench_function("decode_serde_derived_1000_opens", |b| {
        b.iter(|| {
            for bytes in &payloads {
                black_box(serde_json::from_slice::<Commit>(bytes).expect("decodes"));
            }
        })
    });
    g.bench_function("decode_and_apply_1000_opens", |b| {
        b.iter_batched(
            || projection(&policy),
            |p| {
                for (i, bytes) in payloads.iter().enumerate() {
                    let seq = i as u64 + 1;
                    let commit = baton::store::decode_commit(seq, bytes).expect("decodes");
                    let slot = p.slot(commit.events[0].handoff_id);
                    p.apply_commit(&slot, seq, &commit, true);
                }
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("decode_and_apply_1000_opens_then_list", |b| {
        b.iter_batched(
            || projection(&policy),
            |p| {
                for (i, bytes) in payloads.iter().enumerate() {
                    let seq = i as u64 + 1;
                    let commit = baton::store::decode_commit(seq, bytes).expect("decodes");
                    let slot = p.slot(commit.events[0].handoff_id);
                    p.apply_commit(&slot, seq, &commit, true);
                }
                black_box(p.page(&Select::all(), None, 1));
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A restart from a snapshot, per handoff: decoding the chunks and loading
/// the entries into an empty projection.
fn snapshot_bench(c: &mut Criterion) {
    const BATCH: usize = 1000;
    let policy = Arc::new(policy());
    let states: Vec<Handoff> = (0..BATCH)
        .map(|i| state_of(&open_commit(&policy, i, t0())))
        .collect();
    let mut enc = baton::snapshot::Encoder::new(baton::snapshot::CHUNK_BYTES);
    for (i, h) in states.iter().enumerate() {
        enc.push(h, i as u64 + 1);
    }
    let (manifest, chunks) = enc.finish(Uuid::now_v7(), BATCH as u64, "bench".into(), t0());
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("encode_1000_handoffs", |b| {
        b.iter(|| {
            let mut enc = baton::snapshot::Encoder::new(baton::snapshot::CHUNK_BYTES);
            for (i, h) in states.iter().enumerate() {
                enc.push(h, i as u64 + 1);
            }
            black_box(enc.finish(Uuid::nil(), BATCH as u64, "bench".into(), t0()))
        })
    });
    g.bench_function("decode_1000_handoffs", |b| {
        b.iter(|| black_box(baton::snapshot::decode(&manifest, &chunks).expect("decodes")))
    });
    g.bench_function("import_1000_handoffs", |b| {
        b.iter_batched(
            || {
                let entries = baton::snapshot::decode(&manifest, &chunks).expect("decodes");
                (projection(&policy), entries)
            },
            |(p, entries)| {
                p.import(entries, BATCH as u64);
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    hcs,
    decide_bench,
    apply_bench,
    projection_bench,
    snapshot_bench
);
criterion_main!(benches);
