//! The `baton` binary: parses the command line, loads config, sets up
//! logging, and hands off to the library. `anyhow` lives only here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use baton::client::{Client, ClientError, REPORT_WAIT};
use baton::config::Config;
use baton::replay::{Format, Position};

/// mimalloc, not glibc's malloc: the daemon allocates and frees on every
/// runtime thread, and glibc's per-arena locks and heap growth cost ingest
/// a third of its CPU per report (`cargo bench --bench e2e`, README
/// *Performance*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Event-sourced handoff and incident escalation on NATS JetStream"
)]
struct Cli {
    /// Config file. Default: config/baton.toml if present (config/dev.toml
    /// for `baton dev`), else built-in defaults.
    #[arg(long, short, global = true, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon against the configured NATS server.
    Serve,
    /// Start a private nats-server (JetStream, store under --data-dir) and serve against it.
    Dev {
        /// Where the dev server keeps its JetStream store and log.
        #[arg(long, default_value = ".baton-data")]
        data_dir: PathBuf,
    },
    /// Publish a report (JSON file, or - for stdin) and show what Baton made of it.
    Report {
        file: PathBuf,
        #[arg(long, default_value = "agent_failure")]
        template: String,
    },
    /// Acknowledge a handoff: stops escalation, records MTTA.
    Ack {
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Page a held handoff at once despite the HCS gate.
    Override {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// Fill packet fields (a JSON object file, or - for stdin); re-scores and may release a hold.
    Enrich {
        id: String,
        #[arg(long)]
        by: String,
        file: PathBuf,
    },
    /// Close a handoff.
    Resolve {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Show a handoff's current state (JSON).
    Get { id: String },
    /// Print pages: new ones as they arrive with --follow; stored ones too with --all.
    Pages {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        all: bool,
        /// Raw page JSON, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Parse and validate the config, print the effective policy, exit non-zero on errors.
    CheckConfig,
    /// Rebuild state as of a moment from BATON_EVENTS (read-only: never appends, never pages).
    Replay {
        /// Up to this RFC 3339 time or stream sequence (default: now).
        #[arg(long)]
        until: Option<Position>,
        /// Only handoffs with events from this time or sequence on.
        #[arg(long)]
        since: Option<Position>,
        #[arg(long)]
        handoff: Option<uuid::Uuid>,
        /// P1, P2 or P3.
        #[arg(long, value_parser = parse_severity)]
        severity: Option<baton::domain::Severity>,
        /// table, json, jsonl or csv.
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Tell one handoff's story in plain words, from its events.
    Timeline { id: uuid::Uuid },
    /// Audit the event log and the pages against the daemon.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Export raw events (jsonl) or one row per handoff (csv).
    Export {
        #[arg(long)]
        since: Option<Position>,
        #[arg(long)]
        until: Option<Position>,
        #[arg(long)]
        handoff: Option<uuid::Uuid>,
        /// jsonl (events) or csv (one row per handoff).
        #[arg(long, default_value = "jsonl")]
        format: Format,
    },
    /// Team handoffs: start, accept, check, complete, return, resubmit, cancel, rate.
    Handoff {
        #[command(subcommand)]
        action: HandoffCmd,
    },
    /// Per template and sending team: completion rate, acceptance and completion
    /// hours, returns, completeness, rating; over the team handoffs started in
    /// the last `--days` days (the window of `GET /v1/stats`).
    Stats {
        /// Window in days, 1-365.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Draw every template and the incident escalation chains.
    Diagram {
        #[arg(long, value_enum, default_value = "mermaid")]
        format: baton::teams::diagram::Format,
    },
    /// Scheduled jobs: `baton job run daily-review|weekly-drill|ownership-audit`.
    Job {
        #[command(subcommand)]
        action: JobCmd,
    },
    /// Print the daily review (the 24 h before today's review time, or --date's).
    Review {
        /// YYYY-MM-DD, in the jobs' time zone.
        #[arg(long)]
        date: Option<String>,
        /// The review record as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HandoffCmd {
    /// Start a team handoff from a template; fields as --field key=value and/or --fields FILE.json.
    Start {
        template: String,
        #[arg(long)]
        by: String,
        /// key=value (repeatable); the value is JSON if it parses, else text.
        #[arg(long = "field", value_name = "KEY=VALUE")]
        field: Vec<String>,
        /// A JSON object of fields (or - for stdin).
        #[arg(long)]
        fields: Option<PathBuf>,
        /// Makes a retried start join the same handoff.
        #[arg(long)]
        dedup_key: Option<String>,
    },
    /// The receiving team takes it.
    Accept {
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Check off an exit criterion by number (1-based) or text.
    Check {
        id: String,
        item: String,
        #[arg(long)]
        by: String,
    },
    /// Complete it (refused while any checklist item is unchecked).
    Complete {
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Send it back to the sender, naming what is missing.
    Return {
        id: String,
        #[arg(long)]
        by: String,
        /// Missing field names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        missing: Vec<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Fill in what was missing and send a returned handoff again.
    Resubmit {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long = "field", value_name = "KEY=VALUE")]
        field: Vec<String>,
        #[arg(long)]
        fields: Option<PathBuf>,
    },
    /// Call it off.
    Cancel {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// Rate a completed handoff's quality, 1-5.
    Rate {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        rating: u8,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand)]
enum JobCmd {
    /// Run a job now through the daemon and print its outcome.
    Run {
        name: String,
        /// The run record as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check every invariant; exit 2 naming each handoff on a violation.
    Verify {
        /// How long after a deadline its escalation or page may still be in flight.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Skip the comparison with the running daemon's state.
        #[arg(long)]
        no_daemon: bool,
    },
}

fn parse_severity(s: &str) -> Result<baton::domain::Severity, String> {
    s.parse().map_err(|_| format!("{s:?} is not P1, P2 or P3"))
}

fn load_config(cli: &Cli, dev: bool) -> anyhow::Result<Config> {
    let path = cli.config.clone().or_else(|| {
        let name = if dev {
            "config/dev.toml"
        } else {
            "config/baton.toml"
        };
        let p = PathBuf::from(name);
        p.exists().then_some(p)
    });
    Ok(match path {
        Some(p) => Config::load(&p)?,
        None => Config::from_env()?,
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// `println!` that ends the process quietly when stdout is a closed pipe
/// (`baton get … | head`), as ripgrep does, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with [`out!`]'s handling of a closed pipe.
macro_rules! out_raw {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

fn emit(text: std::fmt::Arguments) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        stdout_failed(e)
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

fn print_json(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).expect("json"));
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            if let Some(ClientError::Refused { code, message }) = e.downcast_ref::<ClientError>() {
                eprintln!("refused ({code}): {message}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Cmd::Serve => {
            let cfg = load_config(&cli, false)?;
            let token = CancellationToken::new();
            tokio::spawn(baton::server::shutdown_on_signals(token.clone()));
            baton::server::run(cfg, token).await?;
        }
        Cmd::Dev { data_dir } => {
            let mut cfg = load_config(&cli, true)?;
            let port = cfg
                .nats
                .url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_matches('/').parse().ok())
                .unwrap_or(4223);
            let server = baton::dev::NatsServer::start(data_dir, port)?;
            cfg.nats.url = server.url.clone();
            eprintln!(
                "dev nats-server (JetStream) on {} with its store in {}\n\
                 in another terminal: export BATON_NATS_URL={}",
                server.url,
                data_dir.display(),
                server.url
            );
            let token = CancellationToken::new();
            tokio::spawn(baton::server::shutdown_on_signals(token.clone()));
            let result = baton::server::run(cfg, token).await;
            drop(server);
            result?;
        }
        Cmd::Diagram { format } => {
            let cfg = load_config(&cli, false)?;
            out_raw!("{}", baton::teams::diagram::render(&cfg.policy(), *format));
        }
        Cmd::CheckConfig => {
            let cfg = load_config(&cli, false)?;
            let policy = cfg.policy();
            out!("configuration is valid");
            out!("nats: {} (prefix {})", cfg.nats.url, cfg.nats.prefix);
            for (sev, p) in &policy.severities {
                let levels: Vec<String> = p
                    .escalation
                    .iter()
                    .map(|l| {
                        format!(
                            "[{}] every {} x{}",
                            l.routes.join("+"),
                            humantime::format_duration(l.delay),
                            l.repeat + 1
                        )
                    })
                    .collect();
                out!(
                    "{sev}: min HCS {} ({:?}), first response {}, page {}, then {}",
                    p.min_hcs,
                    p.below_min,
                    humantime::format_duration(p.first_response),
                    p.page_routes.join("+"),
                    levels.join(" → ")
                );
            }
            out!(
                "{} ownership rules, {} runbook rules",
                policy.ownership.len(),
                policy.runbook.len()
            );
        }
        Cmd::Report { file, template } => {
            // Refuse an invalid report before needing a server.
            let cfg = load_config(&cli, false)?;
            let payload = read_input(file)?;
            baton::client::validate_report(&cfg, template, &payload)?;
            let client = Client::connect(cfg).await?;
            report(&client, template, &payload).await?;
        }
        cmd @ (Cmd::Replay { .. }
        | Cmd::Timeline { .. }
        | Cmd::Audit { .. }
        | Cmd::Export { .. }) => {
            return replay_command(&load_config(&cli, false)?, cmd).await;
        }
        cmd => {
            let cfg = load_config(&cli, false)?;
            let client = Client::connect(cfg).await?;
            client_command(&client, cmd).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn client_command(client: &Client, cmd: &Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Ack { id, by } => {
            print_json(&client.command("ack", json!({"id": id, "by": by})).await?)
        }
        Cmd::Override { id, by, reason } => print_json(
            &client
                .command("override", json!({"id": id, "by": by, "reason": reason}))
                .await?,
        ),
        Cmd::Enrich { id, by, file } => {
            let fields: Value =
                serde_json::from_slice(&read_input(file)?).context("fields file is not JSON")?;
            print_json(
                &client
                    .command("enrich", json!({"id": id, "by": by, "fields": fields}))
                    .await?,
            )
        }
        Cmd::Resolve { id, by, note } => print_json(
            &client
                .command("resolve", json!({"id": id, "by": by, "note": note}))
                .await?,
        ),
        Cmd::Get { id } => print_json(&client.command("get", json!({"id": id})).await?["handoff"]),
        Cmd::Pages { follow, all, json } => client.pages(*follow, *all, *json).await?,
        Cmd::Job {
            action: JobCmd::Run { name, json },
        } => print_job(&client.job(name, json!({})).await?, *json),
        Cmd::Handoff { action } => print_json(&handoff(client, action).await?),
        Cmd::Stats {
            days,
            json: as_json,
        } => {
            // The reply carries every figure of `/v1/stats`; this command
            // shows the team-handoff ones.
            let v = client.command("stats", json!({"days": days})).await?;
            let work = &v["stats"]["work"];
            if *as_json {
                print_json(work);
            } else {
                let stats: Vec<baton::teams::WorkStats> = serde_json::from_value(work.clone())?;
                out_raw!("{}", baton::teams::render_table(&stats));
            }
        }
        Cmd::Review { date, json } => print_job(
            &client.job("daily-review", json!({"date": date})).await?,
            *json,
        ),
        Cmd::Serve
        | Cmd::Dev { .. }
        | Cmd::CheckConfig
        | Cmd::Report { .. }
        | Cmd::Diagram { .. } => {
            unreachable!("handled above")
        }
        Cmd::Replay { .. } | Cmd::Timeline { .. } | Cmd::Audit { .. } | Cmd::Export { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// `--field k=v` pairs and `--fields FILE` merged into one JSON object.
fn fields_arg(pairs: &[String], file: &Option<PathBuf>) -> anyhow::Result<Value> {
    let mut obj = match file {
        Some(f) => {
            match serde_json::from_slice(&read_input(f)?).context("fields file is not JSON")? {
                Value::Object(o) => o,
                _ => anyhow::bail!("the fields file must hold a JSON object"),
            }
        }
        None => serde_json::Map::new(),
    };
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--field {p:?}: expected KEY=VALUE"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        obj.insert(k.to_string(), v);
    }
    Ok(Value::Object(obj))
}

async fn handoff(client: &Client, action: &HandoffCmd) -> anyhow::Result<Value> {
    let (verb, body) = match action {
        HandoffCmd::Start {
            template,
            by,
            field,
            fields,
            dedup_key,
        } => (
            "start",
            json!({"template": template, "by": by, "fields": fields_arg(field, fields)?, "dedup_key": dedup_key}),
        ),
        HandoffCmd::Accept { id, by } => ("accept", json!({"id": id, "by": by})),
        HandoffCmd::Check { id, item, by } => ("check", json!({"id": id, "item": item, "by": by})),
        HandoffCmd::Complete { id, by } => ("complete", json!({"id": id, "by": by})),
        HandoffCmd::Return {
            id,
            by,
            missing,
            reason,
        } => (
            "return",
            json!({"id": id, "by": by, "missing": missing, "reason": reason}),
        ),
        HandoffCmd::Resubmit {
            id,
            by,
            field,
            fields,
        } => (
            "resubmit",
            json!({"id": id, "by": by, "fields": fields_arg(field, fields)?}),
        ),
        HandoffCmd::Cancel { id, by, reason } => {
            ("cancel", json!({"id": id, "by": by, "reason": reason}))
        }
        HandoffCmd::Rate {
            id,
            by,
            rating,
            comment,
        } => (
            "rate",
            json!({"id": id, "by": by, "rating": rating, "comment": comment}),
        ),
    };
    Ok(client.command(verb, body).await?)
}

/// Prints a job run: its Markdown digest, or the record as JSON.
fn print_job(reply: &Value, as_json: bool) {
    let record = &reply["record"];
    match record["markdown"].as_str() {
        Some(md) if !as_json => out!("{md}"),
        _ => print_json(record),
    }
}

/// Publishes a report and shows what Baton made of it.
async fn report(client: &Client, template: &str, payload: &[u8]) -> anyhow::Result<()> {
    let (seq, id) = client.report(template, payload).await?;
    out!("report stored (BATON_REPORTS seq {seq}); handoff {id}");
    let started = Instant::now();
    loop {
        match client.command("get", json!({"id": id})).await {
            Ok(v) => {
                let h = &v["handoff"];
                out!(
                    "severity {} team {} status {} HCS {} missing {}",
                    h["severity"].as_str().unwrap_or("?"),
                    h["team"].as_str().unwrap_or("?"),
                    h["status"].as_str().unwrap_or("?"),
                    h["hcs"]["score"],
                    h["hcs"]["missing"]
                );
                break;
            }
            Err(ClientError::Refused { code, .. })
                if code == "not_found" && started.elapsed() < REPORT_WAIT =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                out!("Baton has not processed it yet ({e}); it will when it runs");
                break;
            }
        }
    }
    Ok(())
}

/// `replay`, `timeline`, `audit verify`, `export`: read-only over the log.
/// Data goes to stdout; the progress bar (on a terminal) and the audit's
/// summary to stderr. `audit verify` exits 2 on any violation.
async fn replay_command(cfg: &Config, cmd: &Cmd) -> anyhow::Result<ExitCode> {
    use baton::replay::{run, Filter};
    use std::io::Write as _;
    let text = match cmd {
        Cmd::Replay {
            until,
            since,
            handoff,
            severity,
            format,
        } => {
            let filter = Filter {
                until: *until,
                since: *since,
                handoff: *handoff,
                severity: *severity,
            };
            run::replay(cfg, &filter, *format, true).await?
        }
        Cmd::Timeline { id } => run::timeline_of(cfg, *id).await?,
        Cmd::Export {
            since,
            until,
            handoff,
            format,
        } => {
            let filter = Filter {
                until: *until,
                since: *since,
                handoff: *handoff,
                severity: None,
            };
            run::export(cfg, &filter, *format, true).await?
        }
        Cmd::Audit {
            command: AuditCmd::Verify { grace, no_daemon },
        } => {
            let report = run::audit_verify(cfg, *grace, !no_daemon, true).await?;
            let violations = report.violations();
            // A reader that leaves early (`| head`) must not turn a failed
            // audit into a pass: stop printing, keep the summary and code.
            let mut stdout = std::io::stdout().lock();
            for f in &report.findings {
                match writeln!(stdout, "{f}") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(e.into()),
                }
            }
            drop(stdout);
            eprintln!(
                "audit: {} commits, {} handoffs, {} pages{}; {violations} violation(s), {} notice(s)",
                report.commits,
                report.handoffs,
                report.pages,
                report
                    .daemon_applied_seq
                    .map(|s| format!(", daemon at seq {s}"))
                    .unwrap_or_default(),
                report.findings.len() - violations,
            );
            return Ok(if violations == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
        _ => unreachable!("only the replay commands come here"),
    };
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        stdout_failed(e);
    }
    Ok(ExitCode::SUCCESS)
}
