//! Replication: Baton on one node next to Baton on a three-node cluster,
//! on the same server binary, in one run.
//!
//! - R1: one `nats-server -js` ([`Broker`]), Baton with `replicas = 1`;
//! - R3: three nodes on loopback with routes (`tests/support/cluster.rs`,
//!   as the `failover` phase runs it), Baton with `replicas = 3` and every
//!   node's URL.
//!
//! On each, two measurements, each by a daemon of its own under a prefix of
//! its own: Baton's ingest rate (reports/s from the first publish to the
//! last page stored, as the `ingest` phase measures it, [`ingest::drive`])
//! and escalation lateness at a steady deadline rate (`n` complete P1
//! reports published at `rate`/s, first response just past that; deadline
//! → `escalated` event stored and → each escalation page stored, as the
//! `escalation` phase measures it, [`escalation_lateness`]). Then R3 ÷ R1
//! for reports/s.
//!
//! Baton refuses `replicas > 1` below nats-server 2.9.21
//! (`store::MIN_CLUSTER_SERVER`, nats-server #4320): on such a server the
//! R3 rows say so and R1 still runs.

use std::time::{Duration, Instant};

use anyhow::ensure;
use async_nats::jetstream;
use baton::config::Config;
use baton::store::Names;
use serde_json::{json, Value};

#[path = "../../tests/support/cluster.rs"]
mod cluster;

use crate::broker::{stream_state, wait_for_count, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{
    config, escalating_p1, escalation_lateness, first_response_after, publish_at_rate, wait_open,
    Lateness, TEMPLATE,
};
use crate::ingest::{self, Run};
use crate::report::{Section, Target};
use crate::sys::{nats_server_pid, process_cpu, Spread};

/// What one topology achieved.
struct Figures {
    ingest: Run,
    lateness: Lateness,
}

/// `urls` (comma-separated) with `replicas`, under its own `prefix`.
fn cfg(urls: &str, replicas: usize, prefix: &str, extra: &str) -> anyhow::Result<Config> {
    let mut cfg = config(urls, extra)?;
    cfg.nats.prefix = prefix.to_string();
    cfg.nats.replicas = replicas;
    cfg.validate()?;
    Ok(cfg)
}

/// Starts the daemon; a fresh cluster elects its meta leader after its
/// nodes are ready, so the start is retried for a while (as `failover`).
async fn start(daemon_rt: &tokio::runtime::Handle, cfg: Config) -> anyhow::Result<Daemon> {
    let started = Instant::now();
    loop {
        match Daemon::start(daemon_rt, cfg.clone()).await {
            Ok((d, _)) => return Ok(d),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = %e, "broker not ready yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Both measurements against the broker at `urls`.
async fn measure(
    daemon_rt: &tokio::runtime::Handle,
    urls: &str,
    replicas: usize,
    server_cpu: &(dyn Fn() -> Duration + Sync),
    (ingest_n, escalation_n, rate): (usize, usize, usize),
) -> anyhow::Result<Figures> {
    let client = async_nats::ConnectOptions::new()
        .connect(urls.split(',').collect::<Vec<_>>().as_slice())
        .await?;
    let js = jetstream::new(client);

    // Ingest: a backlog of reports, publish → paged + page stored.
    let c = cfg(urls, replicas, "ingest", "")?;
    let names = Names::new(&c.nats.prefix);
    let daemon = start(daemon_rt, c).await?;
    let run = ingest::drive(&js, server_cpu, &names.prefix, ingest_n).await?;
    let (events, _) = stream_state(&js, &names.events_stream()).await?;
    let (pages, _) = stream_state(&js, &names.pages_stream()).await?;
    let (rejected, _) = stream_state(&js, &names.rejected_stream()).await?;
    daemon.stop().await?;
    ensure!(rejected == 0, "{rejected} bench reports were rejected");
    ensure!(
        events == ingest_n as u64 && pages == ingest_n as u64,
        "one commit and one page per report"
    );

    // Lateness: `escalation_n` open, ~`rate` deadlines firing per second.
    let first_response = first_response_after(escalation_n, rate);
    let c = cfg(urls, replicas, "escal", &escalating_p1(first_response))?;
    let names = Names::new(&c.nats.prefix);
    let daemon = start(daemon_rt, c).await?;
    publish_at_rate(&js, &names.report(TEMPLATE), escalation_n, rate, |_| {}).await?;
    wait_open(&daemon, escalation_n, first_response).await?;
    let n = escalation_n as u64;
    let limit = first_response + Duration::from_secs(60) + Duration::from_millis(n * 2);
    wait_for_count(&js, &names.events_stream(), limit, |m| m >= 2 * n).await?;
    wait_for_count(&js, &names.pages_stream(), limit, |m| m >= 3 * n).await?;
    daemon.stop().await?;
    let lateness = escalation_lateness(&js, &names, escalation_n).await?;
    Ok(Figures {
        ingest: run,
        lateness,
    })
}

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    ingest_n: usize,
    escalation_n: usize,
    rate: usize,
) -> anyhow::Result<Section> {
    let sizes = (ingest_n, escalation_n, rate);
    let r1 = {
        let broker = Broker::start()?;
        let url = broker.url().to_string();
        measure(daemon_rt, &url, 1, &|| broker.cpu(), sizes).await?
    };
    eprintln!(
        "[e2e] replication: R1 {:.0} reports/s",
        r1.ingest.reports_per_s
    );
    let (version, capable) = cluster::cluster_capable();
    let r3 = if capable {
        let cluster = tokio::task::block_in_place(cluster::Cluster::start);
        let pids: Vec<u32> = cluster
            .nodes
            .iter()
            .filter_map(|n| nats_server_pid(n.port))
            .collect();
        let cpu = || pids.iter().map(|p| process_cpu(*p)).sum();
        let r3 = measure(daemon_rt, &cluster.urls(), 3, &cpu, sizes).await?;
        eprintln!(
            "[e2e] replication: R3 {:.0} reports/s",
            r3.ingest.reports_per_s
        );
        Ok(r3)
    } else {
        let why = format!(
            "n/a: {} is below the cluster minimum 2.9.21",
            version.trim_start_matches('v')
        );
        eprintln!("[e2e] replication: R3 skipped, {why}");
        Err(why)
    };

    let ms = |s: &Spread| format!("{:.2} / {:.2} / {:.2} ms", s.p50, s.p99, s.max);
    let rate_of = |f: &Figures| {
        format!(
            "{:.0} reports/s (daemon {:.0} + nats-server {:.0} µs CPU/report)",
            f.ingest.reports_per_s, f.ingest.client_us, f.ingest.server_us
        )
    };
    let or_why = |f: &dyn Fn(&Figures) -> String| match &r3 {
        Ok(r3) => f(r3),
        Err(why) => why.clone(),
    };
    let mut s = Section::new("replication");
    let tops = [
        ("single node (R1, replicas = 1)", Some(&r1)),
        ("three-node cluster (R3, replicas = 3)", r3.as_ref().ok()),
    ];
    for (top, f) in &tops {
        let value = |g: &dyn Fn(&Figures) -> String| f.map_or_else(|| or_why(g), g);
        s.row(
            format!("{top}: Baton, {ingest_n} P1 reports, publish → paged + page stored"),
            value(&rate_of),
            Target::None,
        );
        s.row(
            format!("{top}: {escalation_n} open handoffs, deadlines firing at"),
            value(&|f| {
                format!(
                    "{:.0} /s over {:.1} s",
                    f.lateness.fire_rate, f.lateness.span_s
                )
            }),
            Target::None,
        );
        s.row(
            format!("{top}: lateness deadline → event stored, p50 / p99 / max"),
            value(&|f| ms(&f.lateness.stored)),
            Target::None,
        );
        s.row(
            format!("{top}: lateness deadline → page stored, p50 / p99 / max"),
            value(&|f| ms(&f.lateness.paged)),
            Target::None,
        );
    }
    let ratio = r3
        .as_ref()
        .ok()
        .map(|r3| r3.ingest.reports_per_s / r1.ingest.reports_per_s);
    s.row(
        "cluster ÷ single node (R3 ÷ R1), Baton reports/s",
        ratio.map_or_else(|| or_why(&|_| String::new()), |r| format!("{r:.2}")),
        Target::None,
    );
    let figures = |f: &Figures| {
        json!({
            "reports_per_s": f.ingest.reports_per_s,
            "daemon_cpu_us_per_report": f.ingest.client_us,
            "server_cpu_us_per_report": f.ingest.server_us,
            "fires_per_s": f.lateness.fire_rate,
            "lateness_event_stored_ms": f.lateness.stored,
            "lateness_page_stored_ms": f.lateness.paged,
        })
    };
    s.json = json!({
        "reports": ingest_n,
        "escalations": escalation_n,
        "rate": rate,
        "r1": figures(&r1),
        "r3": r3.as_ref().map_or_else(|why| Value::String(why.clone()), figures),
        "ratio_r3_to_r1_reports_per_s": ratio,
    });
    Ok(s)
}
