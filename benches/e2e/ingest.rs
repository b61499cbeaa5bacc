//! Ingest, three ways on one server in one run:
//! 1. the broker's raw async publish rate of report-sized messages;
//! 2. the same JetStream operations Baton performs per report, done by a
//!    bare client ([`crate::pipeline`]): the broker's limit for this flow;
//! 3. Baton's sustained rate from a report's publish to its `paged` commit
//!    and its page both stored.
//!
//! Reports are offered as fast as the raw publisher offers its messages, so
//! each pipeline works through a backlog at its own pace. A span runs from
//! the first publish (client clock) to the last page's stored time (server
//! clock; one machine, one clock). CPU time of the pipeline's runtime
//! threads and of nats-server is read over each span.

use std::time::Duration;

use anyhow::ensure;
use baton::domain::EventData;
use baton::store::Names;
use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::broker::{
    publish_all, raw_publish_rate, stored_at, stream_state, wait_for_count, Broker,
};
use crate::daemon::{Daemon, THREAD_NAME};
use crate::fixtures::{config, open_commit, p1_payload, TEMPLATE};
use crate::report::{Section, Target};
use crate::sys::threads_cpu;

/// What one pipeline achieved.
pub struct Run {
    pub reports_per_s: f64,
    /// Daemon-runtime CPU per report, µs.
    pub client_us: f64,
    /// nats-server CPU per report, µs.
    pub server_us: f64,
}

/// Publishes `n` reports under `prefix` and waits for `n` pages;
/// `server_cpu` reads the broker's CPU time so far (every node's, summed,
/// for a cluster: the `replication` phase drives Baton through here too).
pub async fn drive(
    js: &async_nats::jetstream::Context,
    server_cpu: &(dyn Fn() -> Duration + Sync),
    prefix: &str,
    n: usize,
) -> anyhow::Result<Run> {
    let names = Names::new(prefix);
    let reports: Vec<_> = (0..n)
        .map(|i| (names.report(TEMPLATE), p1_payload(i)))
        .collect();
    let (client0, server0) = (threads_cpu(THREAD_NAME), server_cpu());
    let started = Utc::now();
    publish_all(js, reports).await?;
    let limit = Duration::from_secs(60) + Duration::from_millis(n as u64 * 5);
    wait_for_count(js, &names.pages_stream(), limit, |m| m >= n as u64).await?;
    let (client1, server1) = (threads_cpu(THREAD_NAME), server_cpu());
    let (_, last_page) = stream_state(js, &names.pages_stream()).await?;
    let finished = stored_at(js, &names.pages_stream(), last_page).await?;
    let span = (finished - i128::from(started.timestamp_nanos_opt().unwrap_or(0))) as f64 / 1e9;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Ok(Run {
        reports_per_s: n as f64 / span,
        client_us: per(client1.saturating_sub(client0)),
        server_us: per(server1.saturating_sub(server0)),
    })
}

/// The opening commit and its page as Baton stores them, for the bare
/// pipeline's payload sizes.
fn real_payloads(url: &str) -> anyhow::Result<(Bytes, Bytes)> {
    let policy = config(url, "")?.policy();
    let (_, commit) = open_commit(&policy, 0, Utc::now());
    let paged = commit
        .events
        .iter()
        .find(|e| matches!(e.data, EventData::Paged { .. }))
        .expect("a complete P1 pages");
    let (_, _, page) = baton::pages::pages_for(paged, &Names::new("baton")).remove(0);
    Ok((
        serde_json::to_vec(&commit)?.into(),
        serde_json::to_vec(&page)?.into(),
    ))
}

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    raw_n: usize,
    n: usize,
) -> anyhow::Result<Section> {
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let server0 = broker.cpu();
    let raw = raw_publish_rate(&js, p1_payload(0), raw_n).await?;
    let raw_server_us = (broker.cpu() - server0).as_secs_f64() * 1e6 / raw_n as f64;
    eprintln!("[e2e] ingest: raw async publish {raw:.0} msg/s");

    let (commit, page) = real_payloads(broker.url())?;
    let (commit_len, page_len) = (commit.len(), page.len());
    let stop = CancellationToken::new();
    let url = broker.url().to_string();
    daemon_rt
        .spawn(crate::pipeline::start(
            url,
            "bare",
            commit,
            page,
            stop.clone(),
        ))
        .await??;
    let bare = drive(&js, &|| broker.cpu(), "bare", n).await?;
    stop.cancel();
    eprintln!(
        "[e2e] ingest: bare pipeline {:.0} reports/s",
        bare.reports_per_s
    );

    let cfg = config(broker.url(), "")?;
    let names = Names::new(&cfg.nats.prefix);
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let baton = drive(&js, &|| broker.cpu(), &names.prefix, n).await?;
    let (events, _) = stream_state(&js, &names.events_stream()).await?;
    let (pages, _) = stream_state(&js, &names.pages_stream()).await?;
    let (rejected, _) = stream_state(&js, &names.rejected_stream()).await?;
    daemon.stop().await?;
    ensure!(rejected == 0, "{rejected} bench reports were rejected");
    ensure!(
        events == n as u64 && pages == n as u64,
        "one commit and one page per report"
    );
    eprintln!("[e2e] ingest: Baton {:.0} reports/s", baton.reports_per_s);

    let writes = (events + pages) as f64 / n as f64;
    let per_s = baton.reports_per_s;
    let vs_raw = per_s * writes / raw;
    let vs_bare = per_s / bare.reports_per_s;
    let ceiling = 1e6 * crate::sys::machine().nproc as f64 / baton.server_us;
    let mut s = Section::new("ingest");
    s.row(
        format!(
            "raw JetStream async publish, {} B messages",
            p1_payload(0).len()
        ),
        format!("{raw:.0} msg/s (nats-server {raw_server_us:.1} µs CPU/msg)"),
        Target::None,
    );
    s.row(
        format!("bare client, Baton's JetStream operations per report ({commit_len} B commit, {page_len} B page)"),
        format!(
            "{:.0} reports/s (client {:.0} + nats-server {:.0} µs CPU/report)",
            bare.reports_per_s, bare.client_us, bare.server_us
        ),
        Target::None,
    );
    s.row(
        format!("Baton, {n} P1 reports, publish → paged + page stored"),
        format!(
            "{per_s:.0} reports/s (daemon {:.0} + nats-server {:.0} µs CPU/report)",
            baton.client_us, baton.server_us
        ),
        Target::None,
    );
    s.row(
        "JetStream writes per report by Baton (event commit + page)",
        format!(
            "{writes:.2} ({:.2} + {:.2}; +1 report write by the runner)",
            events as f64 / n as f64,
            pages as f64 / n as f64
        ),
        Target::None,
    );
    s.row(
        "Baton writes/s ÷ raw publish/s (the issue's ratio)",
        format!("{vs_raw:.2} ({:.0} writes/s)", per_s * writes),
        Target::AtLeast(vs_raw, 0.7, "≥ 0.70"),
    );
    s.row(
        "Baton reports/s ÷ bare client reports/s (same broker work)",
        format!("{vs_bare:.2}"),
        Target::AtLeast(vs_bare, 0.7, "≥ 0.70 (broker-bound)"),
    );
    s.row(
        "ceiling if Baton cost no CPU: nproc ÷ nats-server CPU/report",
        format!(
            "{ceiling:.0} reports/s = {:.2} × raw in writes",
            ceiling * writes / raw
        ),
        Target::None,
    );
    s.json = json!({
        "raw_publish_msgs_per_s": raw,
        "raw_messages": raw_n,
        "raw_server_cpu_us_per_msg": raw_server_us,
        "report_bytes": p1_payload(0).len(),
        "commit_bytes": commit_len,
        "page_bytes": page_len,
        "reports": n,
        "bare_reports_per_s": bare.reports_per_s,
        "bare_client_cpu_us_per_report": bare.client_us,
        "bare_server_cpu_us_per_report": bare.server_us,
        "baton_reports_per_s": per_s,
        "baton_daemon_cpu_us_per_report": baton.client_us,
        "baton_server_cpu_us_per_report": baton.server_us,
        "event_commits": events,
        "pages": pages,
        "baton_writes_per_report": writes,
        "baton_writes_per_s": per_s * writes,
        "ratio_writes_to_raw": vs_raw,
        "ratio_to_bare": vs_bare,
        "ceiling_reports_per_s": ceiling,
    });
    Ok(s)
}
