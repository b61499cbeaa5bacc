//! Resident memory per open handoff: the daemon's in-memory state (the
//! projection plus the SLA timer's heap and armed map) for 0, then `n1`,
//! then `n2` open handoffs, read from `/proc/self/statm`.
//!
//! Runs first, before any other phase has grown (and freed into) the heap,
//! so the deltas are this state's own.

use std::sync::Arc;
use std::time::Duration;

use baton::metrics::Metrics;
use baton::projector::Projection;
use baton::sla;
use baton::testkit::full_packet;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{config, open_commit};
use crate::report::{Section, Target};
use crate::sys::rss_bytes;

pub async fn run(n1: usize, n2: usize) -> anyhow::Result<Section> {
    let policy = Arc::new(config("nats://unused:1", "")?.policy());
    let metrics = Arc::new(Metrics::new());
    let (timer, queue) = sla::channel();
    let projection = Projection::new(policy.clone(), timer, metrics.clone());
    // The real timer task, never ready, so it only holds the deadlines.
    let (_ready_tx, ready) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let timer_task = tokio::spawn(sla::run(
        queue,
        |_| async { Ok::<Option<chrono::DateTime<chrono::Utc>>, String>(None) },
        ready,
        1,
        metrics,
        shutdown.clone(),
    ));

    let now = Utc::now();
    let open = |from: usize, to: usize| {
        for i in from..to {
            let (id, commit) = open_commit(&policy, i, now);
            let slot = projection.slot(id);
            projection.apply_commit(&slot, i as u64 + 1, &commit, true);
        }
    };
    // Let the timer drain its queue before each reading.
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    open(0, 1);
    settle().await;
    let rss0 = rss_bytes();
    open(1, n1 + 1);
    settle().await;
    let rss1 = rss_bytes();
    open(n1 + 1, n2 + 1);
    settle().await;
    let rss2 = rss_bytes();
    anyhow::ensure!(projection.len() == n2 + 1, "every handoff is held");
    shutdown.cancel();
    timer_task.await?;
    drop(projection);

    let mut packet = full_packet();
    packet.run_id = Some(format!("bench-run-{n2}"));
    let packet_bytes = serde_json::to_vec(&packet)?.len() as f64;
    let per1 = rss1.saturating_sub(rss0) as f64 / n1 as f64;
    let per2 = rss2.saturating_sub(rss0) as f64 / n2 as f64;
    let beyond = per2 - packet_bytes;
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / 1048576.0);
    let mut s = Section::new("memory");
    s.row(
        format!("RSS at 0 / {n1} / {n2} open handoffs"),
        format!("{} / {} / {}", mib(rss0), mib(rss1), mib(rss2)),
        Target::None,
    );
    s.row(
        format!("RSS per open handoff (at {n1} / at {n2})"),
        format!("{per1:.0} B / {per2:.0} B"),
        Target::None,
    );
    s.row(
        "  of which beyond the packet's own bytes",
        format!("{beyond:.0} B (packet JSON {packet_bytes:.0} B)"),
        Target::AtMost(beyond, 2048.0, "≤ 2048 B"),
    );
    s.json = json!({
        "open": [0, n1, n2],
        "rss_bytes": [rss0, rss1, rss2],
        "bytes_per_handoff": [per1, per2],
        "packet_json_bytes": packet_bytes,
        "bytes_per_handoff_beyond_packet": beyond,
    });
    Ok(s)
}
