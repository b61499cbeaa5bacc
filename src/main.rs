//! The `baton` binary: parses the command line, loads config, sets up
//! logging, and hands off to the library. `anyhow` lives only here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use baton::client::Client;
use baton::config::Config;

/// mimalloc, not glibc's malloc: the daemon allocates and frees on every
/// runtime thread, and glibc's per-arena locks and heap growth cost ingest
/// a third of its CPU per report (`cargo bench --bench e2e`, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that ends the process quietly when stdout is a closed pipe
/// (`baton get … | head`), as ripgrep does, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with [`out!`]'s handling of a closed pipe.
macro_rules! out_raw {
    ($($arg:tt)*) => { $crate::emit(format_args!($($arg)*)) };
}

pub(crate) fn emit(text: std::fmt::Arguments) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        stdout_failed(e)
    }
}

pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

pub(crate) fn print_json(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).expect("json"));
}

// After the macros: `out!` is in scope in the CLI's modules.
mod cli;

use cli::args::{Cli, Cmd, LogFormat};
use cli::replay::replay_command;
use cli::verbs::{client_command, report};

/// The config file a command reads: `--config`/`BATON_CONFIG`, else
/// `config/baton.toml` (`config/dev.toml` for `baton dev`) if present.
fn config_path(cli: &Cli, dev: bool) -> Option<PathBuf> {
    cli.config.clone().or_else(|| {
        let name = if dev {
            "config/dev.toml"
        } else {
            "config/baton.toml"
        };
        let p = PathBuf::from(name);
        p.exists().then_some(p)
    })
}

fn load_config(cli: &Cli, dev: bool) -> anyhow::Result<Config> {
    Ok(match config_path(cli, dev) {
        Some(p) => Config::load(&p)?,
        None => Config::from_env()?,
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,async_nats=warn,tokio_cron_scheduler=warn")
    });
    // Colour only for a person at a terminal: a log file or journald
    // gets no escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    baton::allocator::tune();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => cli::exit::report(&e),
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
        Cmd::Deliver => {
            let cfg = load_config(&cli, false)?;
            let token = CancellationToken::new();
            tokio::spawn(baton::server::shutdown_on_signals(token.clone()));
            baton::server::deliver(cfg, token).await?;
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
            // The lock first: a second `baton dev` must never start a
            // nats-server on a store another one has open.
            let mut lock = baton::dev::DevLock::acquire(data_dir)?;
            let server = baton::dev::NatsServer::start_locked(data_dir, port, &lock)?;
            lock.record(&format!(
                "pid {}, its nats-server pid {} on {}",
                std::process::id(),
                server.pid(),
                server.url
            ))?;
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
            // Before the lock: the store is closed when the lock is free.
            server.stop();
            drop(lock);
            result?;
        }
        Cmd::Diagram { format } => {
            let cfg = load_config(&cli, false)?;
            out_raw!("{}", baton::teams::diagram::render(&cfg.policy(), *format));
        }
        Cmd::CheckConfig => return check_config(&cli),
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
            // A person credential: commands act as its person (docs/people.md,
            // "People and credentials"). Never printed.
            let token = std::env::var("BATON_TOKEN").ok();
            let client = Client::connect(cfg).await?.with_token(token);
            client_command(&client, cmd).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `baton check-config`: every problem on its own line and exit 3, or the
/// effective policy.
fn check_config(cli: &Cli) -> anyhow::Result<ExitCode> {
    let path = config_path(cli, false);
    let cfg = match load_config(cli, false) {
        Ok(cfg) => cfg,
        Err(e) => match e.downcast_ref::<baton::config::ConfigError>() {
            Some(baton::config::ConfigError::Invalid(problems)) => {
                return Ok(config_problems(&path, problems))
            }
            _ => return Err(e),
        },
    };
    let mut problems = cfg.reference_problems();
    if let Some(p) = &path {
        let dir = cfg.templates_dir_for(p);
        if !dir.is_dir() {
            problems.push(format!(
                "templates_dir: {} does not exist (built-in templates are used); \
                 create it or set templates_dir",
                dir.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Ok(config_problems(&path, &problems));
    }
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
    Ok(ExitCode::SUCCESS)
}

/// One line per problem on stderr, each naming the file; exit 3.
fn config_problems(path: &Option<PathBuf>, problems: &[String]) -> ExitCode {
    let file = path
        .as_ref()
        .map_or("built-in defaults".into(), |p| p.display().to_string());
    for p in problems {
        eprintln!("{file}: {p}");
    }
    eprintln!(
        "{} problem(s): the configuration is invalid",
        problems.len()
    );
    ExitCode::from(cli::exit::CONFIG)
}
