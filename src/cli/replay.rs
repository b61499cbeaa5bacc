//! `replay`, `timeline`, `audit verify`, `export`: the read-only tools over
//! the log, run from the CLI.

use std::process::ExitCode;

use baton::config::Config;

use super::args::{AuditCmd, Cmd};
use crate::stdout_failed;

/// `replay`, `timeline`, `audit verify`, `export`: read-only over the log.
/// Data goes to stdout; the progress bar (on a terminal) and the audit's
/// summary to stderr. `audit verify` exits 2 on any violation.
pub(crate) async fn replay_command(cfg: &Config, cmd: &Cmd) -> anyhow::Result<ExitCode> {
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
            command:
                AuditCmd::Verify {
                    grace,
                    no_daemon,
                    paged,
                },
        } => {
            let report = run::audit_verify(cfg, *grace, !no_daemon, true).await?;
            let violations = report.violations();
            // A reader that leaves early (`| head`) must not turn a failed
            // audit into a pass: stop printing, keep the summary and code.
            let mut stdout = std::io::stdout().lock();
            let paged_lines = report
                .paged
                .iter()
                .filter(|_| *paged)
                .map(|p| format!("paged {p}"));
            let finding_lines = report.findings.iter().map(|f| f.to_string());
            for f in finding_lines.chain(paged_lines) {
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
                ExitCode::from(super::exit::USAGE)
            });
        }
        _ => unreachable!("only the replay commands come here"),
    };
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        stdout_failed(e);
    }
    Ok(ExitCode::SUCCESS)
}
