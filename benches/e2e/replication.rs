//! Replication: Baton on one node next to Baton on a three-node cluster,
//! on the same server binary, in one run.
//!
//! - R1: one `nats-server -js` ([`Broker`]), Baton with `replicas = 1`;
//! - R3: three nodes on loopback with routes (`tests/support/cluster.rs`,
//!   as the `failover` phase runs it), Baton with `replicas = 3` and every
//!   node's URL.
//!
//! Both run at once (the idle one costs next to nothing); on each, two
//! measurements, each by a daemon of its own under a prefix of its own:
//! - Baton's ingest rate: reports/s from the first publish to the last page
//!   stored, as the `ingest` phase measures it ([`ingest::drive`]), in two
//!   halves ordered R1 R3 R3 R1, so a change in the machine's load over the
//!   run weighs on both alike; then R3 ÷ R1;
//! - escalation lateness at a steady deadline rate: `n` complete P1 reports
//!   published at `rate`/s, first response just past that; deadline →
//!   `escalated` event stored and → each escalation page stored, as the
//!   `escalation` phase measures it ([`escalation_lateness`]); R1, then R3.
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

use crate::broker::{stream_state, wait_for_count, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{
    config, escalating_p1, escalation_lateness, first_response_after, publish_at_rate, wait_open,
    Lateness, TEMPLATE,
};
use crate::ingest::{self, Run};
use crate::recovery::cluster;
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

/// One topology: its URLs, replicas and how to read its servers' CPU.
struct Side<'a> {
    urls: String,
    replicas: usize,
    server_cpu: &'a (dyn Fn() -> Duration + Sync),
    js: jetstream::Context,
}

impl<'a> Side<'a> {
    async fn connect(
        urls: String,
        replicas: usize,
        server_cpu: &'a (dyn Fn() -> Duration + Sync),
    ) -> anyhow::Result<Side<'a>> {
        let client = async_nats::ConnectOptions::new()
            .connect(urls.split(',').collect::<Vec<_>>().as_slice())
            .await?;
        Ok(Side {
            urls,
            replicas,
            server_cpu,
            js: jetstream::new(client),
        })
    }

    /// A backlog of `n` reports under `prefix`, publish → paged + page
    /// stored.
    async fn ingest(
        &self,
        daemon_rt: &tokio::runtime::Handle,
        prefix: &str,
        n: usize,
    ) -> anyhow::Result<Run> {
        let js = &self.js;
        let c = cfg(&self.urls, self.replicas, prefix, "")?;
        let names = Names::new(&c.nats.prefix);
        let daemon = start(daemon_rt, c).await?;
        let run = ingest::drive(js, self.server_cpu, &names.prefix, n).await?;
        let (events, _) = stream_state(js, &names.events_stream()).await?;
        let (pages, _) = stream_state(js, &names.pages_stream()).await?;
        let (rejected, _) = stream_state(js, &names.rejected_stream()).await?;
        daemon.stop().await?;
        ensure!(rejected == 0, "{rejected} bench reports were rejected");
        ensure!(
            events == n as u64 && pages == n as u64,
            "one commit and one page per report"
        );
        Ok(run)
    }

    /// `n` open, ~`rate` deadlines firing per second.
    async fn lateness(
        &self,
        daemon_rt: &tokio::runtime::Handle,
        n: usize,
        rate: usize,
    ) -> anyhow::Result<Lateness> {
        let js = &self.js;
        let first_response = first_response_after(n, rate);
        let c = cfg(
            &self.urls,
            self.replicas,
            "escal",
            &escalating_p1(first_response),
        )?;
        let names = Names::new(&c.nats.prefix);
        let daemon = start(daemon_rt, c).await?;
        publish_at_rate(js, &names.report(TEMPLATE), n, rate, |_| {}).await?;
        wait_open(&daemon, n, first_response).await?;
        let m = n as u64;
        let limit = first_response + Duration::from_secs(60) + Duration::from_millis(m * 2);
        wait_for_count(js, &names.events_stream(), limit, |c| c >= 2 * m).await?;
        wait_for_count(js, &names.pages_stream(), limit, |c| c >= 3 * m).await?;
        daemon.stop().await?;
        escalation_lateness(js, &names, n).await
    }
}

/// Two halves of one ingest run: reports/s over both spans, CPU averaged.
fn both(a: Run, b: Run) -> Run {
    Run {
        reports_per_s: 2.0 / (1.0 / a.reports_per_s + 1.0 / b.reports_per_s),
        client_us: (a.client_us + b.client_us) / 2.0,
        server_us: (a.server_us + b.server_us) / 2.0,
    }
}

pub async fn run(
    daemon_rt: &tokio::runtime::Handle,
    ingest_n: usize,
    escalation_n: usize,
    rate: usize,
) -> anyhow::Result<Section> {
    // Both topologies up at once (an idle one costs next to nothing), so
    // their measurements run back to back.
    let broker = Broker::start()?;
    let r1_cpu = || broker.cpu();
    let r1_side = Side::connect(broker.url().to_string(), 1, &r1_cpu).await?;
    let (version, capable) = cluster::cluster_capable();
    let cluster = capable.then(|| tokio::task::block_in_place(cluster::Cluster::start));
    let pids: Vec<u32> = cluster
        .iter()
        .flat_map(|c| &c.nodes)
        .filter_map(|n| nats_server_pid(n.port))
        .collect();
    let r3_cpu = || pids.iter().map(|p| process_cpu(*p)).sum();
    let r3_side = match &cluster {
        Some(c) => Some(Side::connect(c.urls(), 3, &r3_cpu).await?),
        None => None,
    };

    // Ingest in halves, R1 R3 R3 R1, so a change in the machine's load
    // over the run weighs on both alike.
    let half = ingest_n / 2;
    let r1_a = r1_side.ingest(daemon_rt, "ingest.a", half).await?;
    let r3_ingest = match &r3_side {
        Some(r3) => {
            let a = r3.ingest(daemon_rt, "ingest.a", half).await?;
            let b = r3.ingest(daemon_rt, "ingest.b", half).await?;
            Some(both(a, b))
        }
        None => None,
    };
    let r1_b = r1_side.ingest(daemon_rt, "ingest.b", half).await?;
    let r1 = Figures {
        ingest: both(r1_a, r1_b),
        lateness: r1_side.lateness(daemon_rt, escalation_n, rate).await?,
    };
    eprintln!(
        "[e2e] replication: R1 {:.0} reports/s",
        r1.ingest.reports_per_s
    );
    let r3 = match (r3_side, r3_ingest) {
        (Some(side), Some(ingest)) => {
            let lateness = side.lateness(daemon_rt, escalation_n, rate).await?;
            eprintln!(
                "[e2e] replication: R3 {:.0} reports/s",
                ingest.reports_per_s
            );
            Ok(Figures { ingest, lateness })
        }
        _ => {
            let why = format!(
                "n/a: {} is below the cluster minimum 2.9.21",
                version.trim_start_matches('v')
            );
            eprintln!("[e2e] replication: R3 skipped, {why}");
            Err(why)
        }
    };
    let ingest_n = 2 * half;

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
