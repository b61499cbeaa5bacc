//! Escalation precision, and the daemon's CPU at a steady report rate.
//!
//! `n` complete P1 reports are published at a steady `rate` per second, with
//! P1's first response set to just over the time that takes, so every
//! handoff is open (paged, unacknowledged) when the first deadline comes and
//! the deadlines inherit the opening's spread: ~`rate` fire per second with
//! `n` open. Each escalation is one step paging two routes. Lateness is
//! measured from the step's deadline (stored on the `escalated` event) to
//! the server's stored time of the event and of each escalation page.
//!
//! The opening period doubles as the CPU window: CPU time of the daemon's
//! threads (and of nats-server) over its middle 60 %.

use std::time::{Duration, Instant};

use baton::store::Names;
use serde_json::json;

use crate::broker::{wait_for_count, Broker};
use crate::daemon::{Daemon, THREAD_NAME};
use crate::fixtures::{
    config, escalating_p1, escalation_lateness, first_response_after, publish_at_rate, wait_open,
    TEMPLATE,
};
use crate::report::{Section, Target};
use crate::sys::{threads_cpu, Spread};

#[path = "escalation_stages.rs"]
mod stages;

/// Overrides the phase's size (handoffs open and escalating), for a
/// mid-size run between `--quick` and the full one.
const SIZE_ENV: &str = "BATON_BENCH_ESCALATION_N";

fn precise(s: &Spread) -> Target {
    Target::Met(s.p99 <= 5.0 && s.max <= 50.0, "p99 ≤ 5 ms, max ≤ 50 ms")
}

struct CpuMark {
    at: Instant,
    daemon: Duration,
    process: Duration,
    nats: Duration,
    reports: usize,
}

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    n: usize,
    rate: usize,
) -> anyhow::Result<Section> {
    let n = std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let broker = Broker::start()?;
    let (client, js) = broker.connect().await?;
    let first_response = first_response_after(n, rate);
    let cfg = config(broker.url(), &escalating_p1(first_response))?;
    let names = Names::new(&cfg.nats.prefix);
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let mark = |reports| CpuMark {
        at: Instant::now(),
        daemon: threads_cpu(THREAD_NAME),
        process: crate::sys::process_cpu(std::process::id()),
        nats: broker.cpu(),
        reports,
    };

    // The middle 60 % of the publishing is the CPU window.
    let (from, to) = (n / 5, n - n / 5);
    let (mut cpu_from, mut cpu_to) = (None, None);
    publish_at_rate(&js, &names.report(TEMPLATE), n, rate, |sent| {
        if sent == from {
            cpu_from = Some(mark(sent));
        }
        if sent == to {
            cpu_to = Some(mark(sent));
        }
    })
    .await?;
    let open = wait_open(&daemon, n, first_response).await?;
    eprintln!(
        "[e2e] escalation: {n} reports published, {open} handoffs open; waiting for deadlines"
    );

    let observer = stages::observe(&client, &names).await?;
    let run_queue = stages::watch_run_queue(THREAD_NAME, broker.pid);
    let state_writes = stages::watch_state_writes(broker.store_dir().to_path_buf());
    // Opening commits, then one escalation each; one page, then two each.
    let limit = first_response + Duration::from_secs(60) + Duration::from_millis(n as u64 * 2);
    wait_for_count(&js, &names.events_stream(), limit, |m| m >= 2 * n as u64).await?;
    wait_for_count(&js, &names.pages_stream(), limit, |m| m >= 3 * n as u64).await?;
    let lateness_metric = daemon
        .shared()
        .metrics
        .escalation_lateness_seconds
        .get_sample_count();
    daemon.stop().await?;

    let read = escalation_lateness(&js, &names, n).await?;
    let (fire_rate, span_s) = (read.fire_rate, read.span_s);
    let (decided, stored, paged) = (read.decided, read.stored, read.paged);
    let split = stages::attribute(
        observer,
        run_queue,
        state_writes,
        &read.escalations,
        &read.page_stored,
    )
    .await?;
    // The broker alone, same server and streams, the daemon stopped.
    // As many as Baton's window by default, so both maxima cover the same
    // time (the broker's own bursts, once a minute or two here, were missed
    // by a 20 s baseline); `BATON_BENCH_BARE_N` to change it.
    let raw_n = std::env::var("BATON_BENCH_BARE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let raw = stages::raw_baseline(
        &js,
        &names,
        raw_n,
        rate,
        read.sample_commit,
        read.sample_page,
    )
    .await?;

    let (a, b) = (cpu_from.expect("marked"), cpu_to.expect("marked"));
    let wall = (b.at - a.at).as_secs_f64();
    let steady = (b.reports - a.reports) as f64 / wall;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall;
    let daemon_cpu = pct(b.daemon - a.daemon);
    let process_cpu = pct(b.process - a.process);
    let nats_cpu = pct(b.nats - a.nats);
    let us_per_report = (b.daemon - a.daemon).as_secs_f64() * 1e6 / (b.reports - a.reports) as f64;

    let ms = |s: &Spread| format!("{:.2} / {:.2} / {:.2} ms", s.p50, s.p99, s.max);
    let mut s = Section::new("escalation");
    s.row(
        format!("{n} open handoffs, deadlines firing at"),
        format!("{fire_rate:.0} /s over {span_s:.1} s"),
        Target::None,
    );
    s.row(
        "lateness deadline → event stored, p50 / p99 / max",
        ms(&stored),
        precise(&stored),
    );
    s.row(
        "lateness deadline → page stored, p50 / p99 / max",
        ms(&paged),
        precise(&paged),
    );
    s.row(
        "  (deadline → decided, p50 / p99 / max)",
        ms(&decided),
        Target::None,
    );
    for (stage, spread) in &split.rows {
        s.row(
            format!("  stage {stage}, p50 / p99 / max"),
            ms(spread),
            Target::None,
        );
    }
    s.row(
        format!("bare client, {raw_n} at {rate}/s: append ack, p50 / p99 / max"),
        ms(&raw.append),
        Target::None,
    );
    s.row(
        "  bare client: append → both pages acked, p50 / p99 / max",
        ms(&raw.chain),
        Target::None,
    );
    s.row(
        format!("daemon CPU at a steady {steady:.0} reports/s"),
        format!(
            "{daemon_cpu:.1} % of one core ({us_per_report:.0} µs/report); nats-server {nats_cpu:.1} %; whole harness {process_cpu:.1} %"
        ),
        Target::None,
    );
    s.json = json!({
        "open_handoffs": open,
        "escalations": n,
        "fires_per_s": fire_rate,
        "lateness_event_stored_ms": stored,
        "lateness_page_stored_ms": paged,
        "lateness_decided_ms": decided,
        "lateness_metric_samples": lateness_metric,
        "cpu_window_s": wall,
        "steady_reports_per_s": steady,
        "daemon_cpu_pct_of_core": daemon_cpu,
        "daemon_cpu_us_per_report": us_per_report,
        "nats_server_cpu_pct_of_core": nats_cpu,
        "process_cpu_pct_of_core": process_cpu,
        "stages": split.json,
        "raw_baseline": {
            "n": raw_n,
            "append_ack_ms": raw.append,
            "pages_ack_ms": raw.page,
            "chain_ms": raw.chain,
        },
    });
    Ok(s)
}
