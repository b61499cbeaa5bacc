//! End-to-end load harness: Baton against the broker's own limits, on one
//! machine, in one run.
//!
//! `cargo bench --bench e2e` (full sizes, several minutes) or
//! `cargo bench --bench e2e -- --quick` (small sizes, CI). Each phase starts
//! its own `nats-server -js` (file storage, temp dir) and runs the daemon
//! in-process on a runtime of its own. Prints a Markdown table on stdout and
//! writes every figure to `target/bench/e2e.json` (`e2e-quick.json` with
//! `--quick`). It asserts nothing about speed; it fails only if Baton loses
//! or rejects work, or a phase does not complete.
//!
//! Flags: `--quick`; `--only memory,lifetime,ingest,replay,escalation,intake,delivery,replication,failover,crash`;
//! `--servers <nats-server>[,<nats-server>…]` runs every phase on each
//! server binary in turn, in the same run, and prints one column per server
//! (default: `$BATON_NATS_SERVER`, else `nats-server` from `PATH`; `memory` and
//! `lifetime` run once, on the first, while the heap is clean); `--json <path>`.
//! Anything else (cargo's own `--bench`) is ignored.
//!
//! # Layout
//! - [`memory`] — RSS per open handoff (runs first, on a clean heap).
//! - [`lifetime`] — RSS while many handoffs open and close with a fixed
//!   number open, closed ones evicted (`--only lifetime` for a clean heap).
//! - [`ingest`] — raw publish rate, a bare client doing Baton's JetStream
//!   operations ([`pipeline`]), and Baton's reports/s to page stored.
//! - [`replay`] — raw ordered-consumer rate vs the projector; restart to ready.
//! - [`intake`] — alerts/s over HTTP: native reports, Alertmanager
//!   batches, PagerDuty events.
//! - [`delivery`] — deadline → webhook request received at a local sink,
//!   with `[delivery]` on; deliveries/s; the worker's capacity draining a
//!   backlog alone.
//! - [`escalation`] — lateness at ~1,000 deadlines/s with `n` open; daemon CPU.
//! - [`replication`] — a single node (R1) next to a three-node cluster
//!   (R3, `replicas = 3`): Baton's reports/s and escalation lateness on
//!   each, and R3 ÷ R1 (R3 needs nats-server ≥ 2.9.21; `n/a` below).
//! - [`recovery`] — `failover` (stream leader killed in a three-node
//!   cluster → escalations and pages again) and `crash` (a daemon killed
//!   with SIGKILL → its in-flight escalations paged).
//! - [`broker`] / [`daemon`] / [`fixtures`] / [`sys`] / [`report`] — the
//!   private server and raw figures, Baton in-process, inputs, `/proc`, output.

mod broker;
mod daemon;
mod delivery;
mod escalation;
mod fixtures;
mod history;
mod ingest;
mod intake;
mod lifetime;
mod memory;
mod pipeline;
mod recovery;
mod replay;
mod replication;
mod report;
mod sys;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

/// The allocator `baton serve` runs with (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    /// Open handoffs at the two memory readings.
    memory: (usize, usize),
    /// Handoffs opened and resolved over the lifetime run, and open at once.
    lifetime: (usize, usize),
    /// Messages for the raw publish rate.
    raw_publish: usize,
    /// Reports through the full ingest path.
    ingest: usize,
    /// Commits in `BATON_EVENTS` for replay and restart.
    replay: usize,
    /// Open handoffs whose deadlines fire in the precision phase.
    escalation: usize,
    /// Reports (and later deadlines) per second in that phase.
    rate: usize,
    /// Alerts per kind in the intake phase (native, Alertmanager, PagerDuty).
    intake: usize,
    /// Escalations in the delivery phase (two webhook pages each).
    delivery: usize,
    /// Reports (and later deadlines) per second in that phase.
    delivery_rate: usize,
    /// Pages in the backlog the delivery worker drains alone (capacity).
    delivery_backlog: usize,
    /// Reports through the full ingest path, and open handoffs whose
    /// deadlines fire at `rate`/s, on one node and on three (R1 vs R3).
    replication: (usize, usize),
    /// Handoffs escalating through a stream-leader kill.
    failover: usize,
    /// Handoffs escalating through a daemon's SIGKILL.
    crash: usize,
}

const FULL: Sizes = Sizes {
    memory: (100_000, 1_000_000),
    lifetime: (10_000_000, 100_000),
    raw_publish: 200_000,
    ingest: 100_000,
    replay: 1_000_000,
    escalation: 100_000,
    rate: 1_000,
    intake: 20_000,
    delivery: 10_000,
    delivery_rate: 1_000,
    delivery_backlog: 20_000,
    replication: (50_000, 20_000),
    failover: 200,
    crash: 200,
};

const QUICK: Sizes = Sizes {
    memory: (10_000, 50_000),
    lifetime: (200_000, 10_000),
    raw_publish: 20_000,
    ingest: 5_000,
    replay: 20_000,
    escalation: 2_000,
    rate: 1_000,
    intake: 1_000,
    delivery: 400,
    delivery_rate: 200,
    delivery_backlog: 2_000,
    replication: (5_000, 1_500),
    failover: 20,
    crash: 20,
};

/// Thread name of the load generator's runtime.
pub const LOAD_THREADS: &str = "bench-load";

const PHASES: [&str; 10] = [
    "memory",
    "lifetime",
    "ingest",
    "replay",
    "escalation",
    "intake",
    "delivery",
    "replication",
    "failover",
    "crash",
];

/// A phase, boxed so the four run through one closure.
type Phase = Pin<Box<dyn Future<Output = anyhow::Result<report::Section>> + Send>>;

struct Args {
    quick: bool,
    only: Vec<String>,
    json: Option<PathBuf>,
    /// nats-server binaries to run every phase on, in order.
    servers: Vec<std::ffi::OsString>,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        quick: false,
        only: PHASES.map(String::from).to_vec(),
        json: None,
        servers: vec![baton::dev::server_binary()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => out.quick = true,
            "--only" => {
                let list = it.next().unwrap_or_default();
                out.only = list.split(',').map(str::to_string).collect();
                if let Some(bad) = out.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    anyhow::bail!(
                        "--only: unknown phase {bad:?}; phases: {}",
                        PHASES.join(",")
                    );
                }
            }
            "--json" => out.json = it.next().map(PathBuf::from),
            "--servers" => {
                let list = it.next().unwrap_or_default();
                out.servers = list.split(',').map(Into::into).collect();
                if let Some(bad) = out
                    .servers
                    .iter()
                    .find(|s| sys::server_version(s).is_none())
                {
                    anyhow::bail!("--servers: {bad:?} does not run (`--version` failed)");
                }
            }
            // cargo bench passes `--bench`, and maybe a name filter.
            _ => {}
        }
    }
    Ok(out)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The daemon logs as `baton serve` does by default (text, `info`), to a
/// file, so its logging costs what it costs in production.
fn log_to(path: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let file = std::fs::File::create(path)?;
    tracing_subscriber::fmt()
        // `RUST_LOG` overrides, to diagnose a run (`async_nats=debug`).
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn")),
        )
        .with_writer(Arc::new(file))
        .with_ansi(false)
        .init();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    baton::allocator::tune();
    let args = args()?;
    let sizes = if args.quick { QUICK } else { FULL };
    let mode = if args.quick { "quick" } else { "full" };
    let out_dir = target_dir().join("bench");
    let json_path = args.json.clone().unwrap_or_else(|| {
        out_dir.join(format!(
            "e2e{}.json",
            if args.quick { "-quick" } else { "" }
        ))
    });
    log_to(&out_dir.join("e2e-daemon.log"))?;
    let machine = sys::machine();
    let started_at = chrono::Utc::now();
    eprintln!(
        "[e2e] {mode} run on {} × {}, {} GiB; {sizes:?}",
        machine.nproc, machine.cpu, machine.ram_gib
    );

    let daemon_rt = daemon::runtime()?;
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(LOAD_THREADS)
        .enable_all()
        .build()?;
    let d = daemon_rt.handle().clone();
    // Each phase runs as a task on the load runtime, not on this thread, so
    // all of the load side's CPU shows up under its thread name.
    let on_load = |phase: Phase| load_rt.block_on(load_rt.spawn(phase))?;
    let clock = Instant::now();
    let mut columns = vec![];
    for (i, server) in args.servers.iter().enumerate() {
        // Every phase starts its brokers with `dev::server_binary()`.
        std::env::set_var(baton::dev::SERVER_ENV, server);
        let label = sys::server_version(server).unwrap_or_default();
        eprintln!("[e2e] phases on {label}");
        let once = |p: &str| p == "memory" || p == "lifetime";
        let runs = |p: &str| args.only.iter().any(|o| o == p) && (!once(p) || i == 0);
        let sections = run_phases(&runs, &on_load, &d, sizes)?;
        columns.push(report::Column {
            server: label,
            sections,
        });
    }
    let took = clock.elapsed().as_secs_f64();

    // The servers the phases ran on, not only the default one.
    let servers: Vec<&str> = columns
        .iter()
        .map(|c| c.server.trim_start_matches("nats-server: "))
        .collect();
    println!(
        "\nBaton e2e ({mode}, {took:.0} s), {}: {} × {}, {} GiB RAM, nats-server {}; broker store in {}\n",
        started_at.format("%Y-%m-%d %H:%M UTC"),
        machine.nproc,
        machine.cpu,
        machine.ram_gib,
        servers.join(", "),
        machine.store
    );
    report::print_table(&columns);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let meta = json!({
        "mode": mode,
        "started_at": started_at,
        "seconds": took,
        "commit": commit,
        "machine": machine,
        "sizes": sizes,
    });
    report::write_json(&json_path, meta, &columns)?;
    println!("\nfigures: {}", json_path.display());
    Ok(())
}

/// Every selected phase, in order, on the broker binary set for this run.
fn run_phases(
    runs: &dyn Fn(&str) -> bool,
    on_load: &dyn Fn(Phase) -> anyhow::Result<report::Section>,
    d: &tokio::runtime::Handle,
    sizes: Sizes,
) -> anyhow::Result<Vec<report::Section>> {
    let mut sections = vec![];
    if runs("memory") {
        sections.push(on_load(Box::pin(memory::run(
            sizes.memory.0,
            sizes.memory.1,
        )))?);
    }
    if runs("lifetime") {
        sections.push(on_load(Box::pin(lifetime::run(
            sizes.lifetime.0,
            sizes.lifetime.1,
        )))?);
    }
    if runs("ingest") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            ingest::run(&d, sizes.raw_publish, sizes.ingest).await
        }))?);
    }
    if runs("replay") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            replay::run(&d, sizes.replay).await
        }))?);
    }
    if runs("escalation") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            escalation::run(&d, sizes.escalation, sizes.rate).await
        }))?);
    }
    if runs("intake") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            intake::run(&d, sizes.intake).await
        }))?);
    }
    if runs("delivery") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            delivery::run(
                &d,
                sizes.delivery,
                sizes.delivery_rate,
                sizes.delivery_backlog,
            )
            .await
        }))?);
    }
    if runs("replication") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            replication::run(&d, sizes.replication.0, sizes.replication.1, sizes.rate).await
        }))?);
    }
    if runs("failover") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            recovery::failover(&d, sizes.failover).await
        }))?);
    }
    if runs("crash") {
        let d = d.clone();
        sections.push(on_load(Box::pin(async move {
            recovery::crash(&d, sizes.crash).await
        }))?);
    }
    Ok(sections)
}
