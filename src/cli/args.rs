//! The command line: every verb, flag and its help text (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use baton::replay::{Format, Position};

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Event-sourced handoff and incident escalation on NATS JetStream"
)]
pub struct Cli {
    /// Config file. Default: config/baton.toml if present (config/dev.toml
    /// for `baton dev`), else built-in defaults.
    #[arg(long, short, global = true, env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// With BATON_TOKEN (a person credential) `--by` may be left out: the
    /// credential's person acts.
    Ack {
        id: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// Page a held handoff at once despite the HCS gate.
    Override {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Fill packet fields (a JSON object file, or - for stdin); re-scores and may release a hold.
    Enrich {
        id: String,
        #[arg(long)]
        by: Option<String>,
        file: PathBuf,
    },
    /// Close a handoff.
    Resolve {
        id: String,
        #[arg(long)]
        by: Option<String>,
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
    /// Run only the delivery worker (pages to Slack, webhooks, e-mail), apart
    /// from `serve`; as many as wanted share the work.
    Deliver,
    /// What delivery recorded for one handoff: delivered, failed, undelivered.
    Deliveries {
        id: uuid::Uuid,
        /// Keep printing new ones (survives daemon and broker restarts).
        #[arg(long)]
        follow: bool,
        /// Raw events, one per line.
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
    /// People's credentials: `baton person token create|revoke|list`.
    Person {
        #[command(subcommand)]
        action: PersonCmd,
    },
    /// Who is on call (`--at` an instant, default now), and overrides:
    /// `baton oncall override …`, `baton oncall cancel <id>`.
    Oncall {
        #[command(subcommand)]
        action: Option<OncallCmd>,
        /// The instant asked about: RFC 3339 (`2026-11-24T02:13:00Z`) or `now`.
        #[arg(long)]
        at: Option<String>,
        /// One rotation (default: every rotation).
        #[arg(long)]
        rotation: Option<String>,
        /// Believe the log as it was at this instant (RFC 3339): without
        /// overrides recorded later.
        #[arg(long)]
        known: Option<String>,
        /// The reply as JSON.
        #[arg(long)]
        json: bool,
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
pub enum HandoffCmd {
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
pub enum PersonCmd {
    /// API credentials of people (`[people.<id>]`), stored hashed in BATON_CREDENTIALS.
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make a credential and print its token once (it is stored only hashed).
    Create {
        /// The person id (`[people.<id>]`).
        person: String,
        /// person (act as them) or report (may only submit reports).
        #[arg(long, default_value = "person")]
        scope: baton::identity::Scope,
        /// A label ("laptop", "ci-runner-3").
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a credential by id: it never authenticates again.
    Revoke { id: String },
    /// List credentials (ids, scopes, last use; never secrets).
    List {
        person: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum OncallCmd {
    /// `--by` takes `--rotation` from `--from` until `--until`.
    Override {
        #[arg(long)]
        rotation: String,
        /// Who is on call instead (a person id).
        #[arg(long)]
        by: String,
        /// The scheduled person replaced (default: whoever is on call).
        #[arg(long)]
        replaces: Option<String>,
        /// RFC 3339 or `now`.
        #[arg(long, default_value = "now")]
        from: String,
        /// RFC 3339.
        #[arg(long)]
        until: String,
        /// Who records it (default: `--by`).
        #[arg(long)]
        created_by: Option<String>,
    },
    /// Withdraw an override from now on.
    Cancel {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a rotation's participants from `--effective` (now or later).
    Participants {
        #[arg(long)]
        rotation: String,
        /// Person ids in turn order, comma-separated.
        #[arg(long, value_delimiter = ',')]
        participants: Vec<String>,
        #[arg(long, default_value = "now")]
        effective: String,
        #[arg(long)]
        by: String,
    },
}

#[derive(Subcommand)]
pub enum JobCmd {
    /// Run a job now through the daemon and print its outcome.
    Run {
        name: String,
        /// The run record as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check every invariant; exit 2 naming each handoff on a violation.
    Verify {
        /// How long after a deadline its escalation or page may still be in flight.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Skip the comparison with the running daemon's state.
        #[arg(long)]
        no_daemon: bool,
        /// Also list every page and who was on call for it (the person
        /// stored in its event).
        #[arg(long)]
        paged: bool,
    },
}

pub fn parse_severity(s: &str) -> Result<baton::domain::Severity, String> {
    s.parse().map_err(|_| format!("{s:?} is not P1, P2 or P3"))
}
