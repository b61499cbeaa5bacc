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

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
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
        Cmd::CheckConfig => {
            let cfg = load_config(&cli, false)?;
            let policy = cfg.policy();
            println!("configuration is valid");
            println!("nats: {} (prefix {})", cfg.nats.url, cfg.nats.prefix);
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
                println!(
                    "{sev}: min HCS {} ({:?}), first response {}, page {}, then {}",
                    p.min_hcs,
                    p.below_min,
                    humantime::format_duration(p.first_response),
                    p.page_routes.join("+"),
                    levels.join(" → ")
                );
            }
            println!(
                "{} ownership rules, {} runbook rules",
                policy.ownership.len(),
                policy.runbook.len()
            );
        }
        Cmd::Report { file, template } => {
            // Refuse an invalid report before needing a server.
            let cfg = load_config(&cli, false)?;
            let payload = read_input(file)?;
            baton::client::validate_report(&cfg, &payload)?;
            let client = Client::connect(cfg).await?;
            report(&client, template, &payload).await?;
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
        Cmd::Serve | Cmd::Dev { .. } | Cmd::CheckConfig | Cmd::Report { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// Publishes a report and shows what Baton made of it.
async fn report(client: &Client, template: &str, payload: &[u8]) -> anyhow::Result<()> {
    let (seq, id) = client.report(template, payload).await?;
    println!("report stored (BATON_REPORTS seq {seq}); handoff {id}");
    let started = Instant::now();
    loop {
        match client.command("get", json!({"id": id})).await {
            Ok(v) => {
                let h = &v["handoff"];
                println!(
                    "severity {} team {} status {} HCS {} missing {}",
                    h["severity"].as_str().unwrap_or("?"),
                    h["team"].as_str().unwrap_or("?"),
                    status_of(h),
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
                println!("Baton has not processed it yet ({e}); it will when it runs");
                break;
            }
        }
    }
    Ok(())
}

fn status_of(h: &Value) -> &'static str {
    if !h["resolved"].is_null() {
        "resolved"
    } else if !h["acknowledged"].is_null() {
        "acknowledged"
    } else if h["escalation_steps"].as_u64().unwrap_or(0) > 0 {
        "escalated"
    } else if !h["paged_at"].is_null() {
        "paged"
    } else {
        "held"
    }
}
