//! The command line: every verb, flag and its help text (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use baton::replay::{Format, Position};

/// `baton --version`: the crate version and the git commit it was built
/// from ("unknown" outside a git checkout; see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BATON_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "baton",
    version = VERSION,
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
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// `--json`: the daemon's reply as it comes, for scripts; without it a
/// person gets a few readable lines.
#[derive(Args, Clone, Copy)]
pub struct Output {
    /// Print the daemon's raw JSON reply instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

/// `--json` for a verb with subcommands (`baton handoff accept … --json`).
#[derive(Args, Clone, Copy)]
pub struct GlobalOutput {
    /// Print the daemon's raw JSON reply instead of readable lines.
    #[arg(long, global = true)]
    pub json: bool,
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
        /// The report: a JSON file, or - for stdin.
        file: PathBuf,
        /// The incident template the report follows.
        #[arg(long, default_value = "agent_failure")]
        template: String,
    },
    /// Acknowledge a handoff: stops escalation, records MTTA.
    /// With BATON_TOKEN (a person credential) `--by` may be left out: the
    /// credential's person acts.
    Ack {
        /// The handoff id.
        id: String,
        /// Who acknowledges (a person id); default: BATON_TOKEN's person.
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Page a held handoff at once despite the HCS gate.
    Override {
        /// The handoff id.
        id: String,
        /// Who overrides the gate (a person id); default: BATON_TOKEN's person.
        #[arg(long)]
        by: Option<String>,
        /// Why it must page now (kept in the event).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        output: Output,
    },
    /// Fill packet fields (a JSON object file, or - for stdin); re-scores and may release a hold.
    Enrich {
        /// The handoff id.
        id: String,
        /// Who fills the fields (a person id); default: BATON_TOKEN's person.
        #[arg(long)]
        by: Option<String>,
        /// A JSON object of packet fields, or - for stdin.
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Close a handoff.
    Resolve {
        /// The handoff id.
        id: String,
        /// Who resolves it (a person id); default: BATON_TOKEN's person.
        #[arg(long)]
        by: Option<String>,
        /// A closing note (kept in the event).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Show a handoff's current state (status, severity, owners, deadlines, HCS).
    Get {
        /// The handoff id.
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// List handoffs, newest first: open ones by default (the filters of
    /// `GET /v1/handoffs`).
    List {
        /// A status (held, paged, escalated, acknowledged, resolved,
        /// initiated, accepted, returned, completed, cancelled), `open`, or
        /// `all`.
        #[arg(long, default_value = "open")]
        status: String,
        /// P1, P2 or P3 (incidents only).
        #[arg(long)]
        severity: Option<String>,
        /// An incident's team, or either team of a team handoff.
        #[arg(long)]
        team: Option<String>,
        /// `incident` or `team` (default: both).
        #[arg(long)]
        kind: Option<String>,
        /// A template name.
        #[arg(long)]
        template: Option<String>,
        /// How many, 1-500.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page (`next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Print pages: new ones as they arrive with --follow; stored ones too with --all.
    Pages {
        /// Keep printing new pages as they arrive.
        #[arg(long)]
        follow: bool,
        /// Print the stored pages too, from the first.
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
        /// The handoff id.
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
        /// Only this handoff.
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
    Timeline {
        /// The handoff id.
        id: uuid::Uuid,
    },
    /// Audit the event log and the pages against the daemon.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Export raw events (jsonl) or one row per handoff (csv).
    Export {
        /// From this RFC 3339 time or stream sequence.
        #[arg(long)]
        since: Option<Position>,
        /// Up to this RFC 3339 time or stream sequence.
        #[arg(long)]
        until: Option<Position>,
        /// Only this handoff.
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
        #[command(flatten)]
        output: GlobalOutput,
    },
    /// Per template and sending team: completion rate, acceptance and completion
    /// hours, returns, completeness, rating; over the team handoffs started in
    /// the last `--days` days (the window of `GET /v1/stats`).
    Stats {
        /// Window in days, 1-365.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw every template and the incident escalation chains.
    Diagram {
        /// Output format.
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
        /// The reply as JSON (also for `override`, `cancel`, `participants`).
        #[arg(long, global = true)]
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
        /// The team-handoff template (a file in the templates folder).
        template: String,
        /// Who acts (a person id).
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
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
    },
    /// Check off an exit criterion by number (1-based) or text.
    Check {
        /// The handoff id.
        id: String,
        /// The exit criterion: its number (1-based) or its text.
        item: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
    },
    /// Complete it (refused while any checklist item is unchecked).
    Complete {
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
    },
    /// Send it back to the sender, naming what is missing.
    Return {
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
        /// Missing field names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        missing: Vec<String>,
        /// Why it goes back.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Fill in what was missing and send a returned handoff again.
    Resubmit {
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
        /// key=value (repeatable); the value is JSON if it parses, else text.
        #[arg(long = "field", value_name = "KEY=VALUE")]
        field: Vec<String>,
        /// A JSON object of fields (or - for stdin).
        #[arg(long)]
        fields: Option<PathBuf>,
    },
    /// Call it off.
    Cancel {
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
        /// Why it is called off.
        #[arg(long)]
        reason: String,
    },
    /// Rate a completed handoff's quality, 1-5.
    Rate {
        /// The handoff id.
        id: String,
        /// Who acts (a person id).
        #[arg(long)]
        by: String,
        /// 1 (poor) to 5 (excellent).
        #[arg(long)]
        rating: u8,
        /// A remark kept with the rating.
        #[arg(long)]
        comment: Option<String>,
    },
}

impl HandoffCmd {
    /// The NATS verb it sends (`baton.cmd.<verb>`).
    pub fn verb(&self) -> &'static str {
        match self {
            HandoffCmd::Start { .. } => "start",
            HandoffCmd::Accept { .. } => "accept",
            HandoffCmd::Check { .. } => "check",
            HandoffCmd::Complete { .. } => "complete",
            HandoffCmd::Return { .. } => "return",
            HandoffCmd::Resubmit { .. } => "resubmit",
            HandoffCmd::Cancel { .. } => "cancel",
            HandoffCmd::Rate { .. } => "rate",
        }
    }
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
    Revoke {
        /// The credential id (from `token list`).
        id: String,
    },
    /// List credentials (ids, scopes, last use; never secrets).
    List {
        /// Only this person's credentials.
        person: Option<String>,
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum OncallCmd {
    /// `--by` takes `--rotation` from `--from` until `--until`.
    Override {
        /// The rotation (`[rotations.<id>]`).
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
        /// The override id.
        id: String,
        /// Who withdraws it (a person id).
        #[arg(long)]
        by: Option<String>,
        /// Why (kept in the event).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a rotation's participants from `--effective` (now or later).
    Participants {
        /// The rotation (`[rotations.<id>]`).
        #[arg(long)]
        rotation: String,
        /// Person ids in turn order, comma-separated.
        #[arg(long, value_delimiter = ',')]
        participants: Vec<String>,
        /// From when: RFC 3339 or `now`.
        #[arg(long, default_value = "now")]
        effective: String,
        /// Who records the change (a person id).
        #[arg(long)]
        by: String,
    },
}

#[derive(Subcommand)]
pub enum JobCmd {
    /// Run a job now through the daemon and print its outcome.
    Run {
        /// daily-review, weekly-drill or ownership-audit.
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every argument and subcommand a user can reach says what it is in
    /// `--help` (a bare `<ID>` or `--by <BY>` told a newcomer nothing).
    #[test]
    fn every_argument_and_subcommand_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{sub_path} (subcommand)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        walk(&cli, "baton", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
