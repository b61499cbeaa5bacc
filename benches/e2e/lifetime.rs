//! Memory over a lifetime (issue #15, bounded memory): `n` handoffs opened
//! and resolved one after another with `m` open at any time, the
//! projection evicting each closed one after the retention. RSS is read at
//! `m` open (the baseline), sampled through the run and at its end; the
//! target is the issue's: RSS stays within 20 % of the baseline.
//!
//! The clock is synthetic (one millisecond per handoff, retention one
//! second), so about a thousand closed handoffs are held at any time
//! beside the `m` open ones, and the run costs CPU, not wall time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use baton::domain::{decide, Command, Commit, IncidentCommand};
use baton::metrics::Metrics;
use baton::projector::Projection;
use baton::sla;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fixtures::{config, open_commit};
use crate::report::{Section, Target};
use crate::sys::rss_bytes;

/// How long a closed handoff is held, on the synthetic clock.
const RETENTION: Duration = Duration::from_secs(1);
/// Handoffs between two eviction ticks (and two yields to the timer).
const TICK_EVERY: usize = 1024;
/// RSS samples over the run.
const SAMPLES: usize = 50;

/// Overrides the handoffs opened over the run, for a mid-size run between
/// `--quick` and the full one.
const SIZE_ENV: &str = "BATON_BENCH_LIFETIME_N";

pub async fn run(n: usize, m: usize) -> anyhow::Result<Section> {
    let n = std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    anyhow::ensure!(n > m, "more handoffs over the run than open at once");
    let policy = Arc::new(config("nats://unused:1", "")?.policy());
    let metrics = Arc::new(Metrics::new());
    let (timer, queue) = sla::channel();
    let projection =
        Projection::new(policy.clone(), timer, metrics.clone()).with_retention(RETENTION);
    // The real timer task, never ready, so it only holds the deadlines.
    let (_ready_tx, ready) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let timer_task = tokio::spawn(sla::run(
        queue,
        |_| async { Ok::<Option<DateTime<Utc>>, String>(None) },
        ready,
        1,
        metrics.clone(),
        shutdown.clone(),
    ));

    let start = Utc::now() - chrono::Duration::milliseconds(n as i64 + 60_000);
    let at = |i: usize| start + chrono::Duration::milliseconds(i as i64);
    let mut seq = 0u64;
    let mut open_ids: VecDeque<Uuid> = VecDeque::with_capacity(m + 1);
    let open = |i: usize, open_ids: &mut VecDeque<Uuid>, seq: &mut u64| {
        let (id, commit) = open_commit(&policy, i, at(i));
        *seq += 1;
        projection.apply_commit(&projection.slot(id), *seq, &commit, true);
        open_ids.push_back(id);
    };
    let resolve = |id: Uuid, now: DateTime<Utc>, seq: &mut u64| -> anyhow::Result<()> {
        let slot = projection.slot(id);
        let state = slot.entry.lock().expect("not poisoned").state.clone();
        let cmd = Command::Incident(IncidentCommand::Resolve {
            by: "bench".into(),
            note: None,
        });
        let events = decide(state.as_ref(), &cmd, now, &policy)?;
        let commit = Commit {
            events: events
                .into_iter()
                .map(|e| e.seal(Uuid::now_v7(), id, now))
                .collect(),
        };
        *seq += 1;
        projection.apply_commit(&slot, *seq, &commit, true);
        Ok(())
    };
    // Let the timer drain its queue before a reading.
    let settle = || tokio::time::sleep(Duration::from_millis(500));

    for i in 0..m {
        open(i, &mut open_ids, &mut seq);
        if i.is_multiple_of(TICK_EVERY) {
            tokio::task::yield_now().await;
        }
    }
    projection.evict_due(at(m));
    settle().await;
    let baseline = rss_bytes();

    let every = ((n - m) / SAMPLES).max(1);
    let mut samples = Vec::with_capacity(SAMPLES + 2);
    for i in m..n {
        open(i, &mut open_ids, &mut seq);
        let oldest = open_ids.pop_front().expect("m open");
        resolve(oldest, at(i), &mut seq)?;
        if i.is_multiple_of(TICK_EVERY) {
            projection.evict_due(at(i));
            tokio::task::yield_now().await;
        }
        if (i - m).is_multiple_of(every) {
            samples.push(rss_bytes());
        }
    }
    projection.evict_due(at(n));
    settle().await;
    let end = rss_bytes();
    samples.push(end);
    let held = projection.len();
    let evicted = metrics.handoffs_evicted_total.get();
    anyhow::ensure!(
        held >= m && held < m + 2 * RETENTION.as_millis() as usize + TICK_EVERY,
        "the open ones and those closed within the retention are held ({held})"
    );
    shutdown.cancel();
    timer_task.await?;
    drop(projection);

    let peak = samples.iter().copied().max().unwrap_or(end);
    let ratio = peak as f64 / baseline as f64;
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / 1048576.0);
    let mut s = Section::new("lifetime");
    s.row(
        format!("{n} handoffs opened and resolved, {m} open at once: RSS at {m} open / peak / end"),
        format!("{} / {} / {}", mib(baseline), mib(peak), mib(end)),
        Target::None,
    );
    s.row(
        format!(
            "  held at the end / evicted (retention {RETENTION:?} on a 1 ms-per-handoff clock)"
        ),
        format!("{held} / {evicted}"),
        Target::None,
    );
    s.row(
        "  peak RSS over the run ÷ RSS at the open figure",
        format!("{ratio:.3}"),
        Target::AtMost(ratio, 1.2, "≤ 1.2"),
    );
    s.json = json!({
        "handoffs": n,
        "open": m,
        "rss_bytes_at_open": baseline,
        "rss_bytes_peak": peak,
        "rss_bytes_end": end,
        "rss_samples": samples,
        "peak_over_open": ratio,
        "held_at_end": held,
        "evicted": evicted,
    });
    Ok(s)
}
