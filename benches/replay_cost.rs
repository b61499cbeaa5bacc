//! The projector's replay cost without NATS: decodes and applies `N` stored
//! commits shaped as the e2e `replay` phase stores them (whole P1 lives,
//! four commits each, a thousand handoffs interleaved per block), as the
//! projector's applier does. For profiling the decode and apply path
//! repeatably: instruction counts under callgrind do not depend on what
//! else the machine runs, unlike the e2e phase's rates.
//!
//! `cargo bench --bench replay_cost -- 40000` prints wall time per commit;
//! the binary it builds (`target/release/deps/replay_cost-*`) under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*replay_cost::replay' <binary> 20000` counts the
//! instructions of the decode and apply alone.

use std::sync::Arc;
use std::time::Instant;

use baton::metrics::Metrics;
use baton::projector::{Projection, Select};
use baton::store::{decode_commit, decode_commit_skimmed, Names};
use baton::testkit::policy;
use chrono::Utc;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BLOCK: usize = 1000;

/// The e2e harness's stored lives (`lifecycle`), so both replay the same
/// commits.
#[path = "e2e/history.rs"]
mod history;

/// The measured part (a function of its own, for callgrind's
/// `--toggle-collect=*replay_cost::replay`).
#[inline(never)]
fn replay(names: &Names, stored: &[(String, Vec<u8>)]) -> (Projection, std::time::Duration) {
    let (timer, _queue) = baton::sla::channel();
    let projection = Projection::new(Arc::new(policy()), timer, Arc::new(Metrics::new()));
    // The projector's decoder; `REPLAY_COST_FULL=1`: the full one, to compare.
    let decode = match std::env::var_os("REPLAY_COST_FULL") {
        Some(_) => decode_commit,
        None => decode_commit_skimmed,
    };
    let started = Instant::now();
    for (i, (subject, payload)) in stored.iter().enumerate() {
        let seq = i as u64 + 1;
        let commit = decode(seq, payload).expect("decodes");
        let id: Uuid = names
            .handoff_of(subject)
            .and_then(|s| s.parse().ok())
            .expect("filed");
        assert!(commit.events.iter().all(|e| e.handoff_id == id));
        projection.apply_stored(id, seq, &commit);
        // The applier settles the list index once notes pile up.
        if seq.is_multiple_of(baton::projector::SETTLE_AT as u64) {
            std::hint::black_box(projection.page(&Select::all(), None, 1));
        }
    }
    let took = started.elapsed();
    (projection, took)
}

fn main() {
    // `cargo bench` passes `--bench`; the first number is the commits.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40_000);
    let names = Names::new("baton");
    let policy = policy();
    let start = Utc::now() - chrono::Duration::days(30);
    let mut stored: Vec<(String, Vec<u8>)> = Vec::with_capacity(n);
    let lives = n / 4;
    for block in (0..lives).step_by(BLOCK) {
        let block: Vec<_> = (block..(block + BLOCK).min(lives))
            .map(|i| history::lifecycle(&policy, i, start + chrono::Duration::seconds(i as i64)))
            .collect();
        for stage in 0..4 {
            for (id, lives) in &block {
                let payload = baton::wire::events::encode_commit(&lives[stage]);
                stored.push((names.events(*id), payload));
            }
        }
    }
    let bytes: usize = stored.iter().map(|(_, p)| p.len()).sum();
    let (projection, took) = replay(&names, &stored);
    assert_eq!(projection.len(), lives);
    println!(
        "{} commits ({} B avg): {:.0} ns/commit",
        stored.len(),
        bytes / stored.len().max(1),
        took.as_nanos() as f64 / stored.len().max(1) as f64
    );
}
