//! The four read-only commands, end to end: connect, read, hand the records
//! to the pure functions, return text. `main` only prints the text and maps
//! the outcome to an exit code.
//!
//! Each command reads the log once up to the stream's last sequence at the
//! moment it starts. `audit verify` reads the daemon's digests after its own
//! read, so a daemon that moved on in between shows up as "changed after the
//! audit's read" notices rather than as divergences.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::audit::{verify, Audit, Finding};
use super::compare::{compare, local_buckets};
use super::output::{events_jsonl, export_rows, render_handoffs, Format};
use super::read::{daemon_digests, read_events, read_handoff, read_pages, ReadRange};
use super::{events_of, rebuild, timeline, Filter, Position, ReplayError};
use crate::config::Config;
use crate::store::{self, Names};

async fn connect(
    cfg: &Config,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), ReplayError> {
    let client = store::connect(&cfg.nats).await?;
    let js = store::jetstream(client.clone(), &cfg.nats);
    Ok((client, js))
}

/// The records a filter needs: one handoff's by direct get, else the stream
/// (only a sequence bound limits what is read; time bounds filter after).
async fn records_for(
    js: &async_nats::jetstream::Context,
    names: &Names,
    filter: &Filter,
    from_since: bool,
    progress: bool,
) -> Result<Vec<super::Record>, ReplayError> {
    match filter.handoff {
        Some(id) => read_handoff(js, names, id).await,
        None => read_events(js, names, range(filter, from_since), progress).await,
    }
}

/// Only a sequence bound can limit what is read; time bounds filter after.
fn range(filter: &Filter, from_since: bool) -> ReadRange {
    ReadRange {
        from: match filter.since {
            Some(Position::Seq(s)) if from_since => Some(s),
            _ => None,
        },
        to: match filter.until {
            Some(Position::Seq(s)) => Some(s),
            _ => None,
        },
    }
}

/// `baton replay`: state as of `filter.until`, for handoffs matching the
/// filter (and active since `filter.since`).
pub async fn replay(
    cfg: &Config,
    filter: &Filter,
    format: Format,
    progress: bool,
) -> Result<String, ReplayError> {
    let (_client, js) = connect(cfg).await?;
    let names = Names::new(&cfg.nats.prefix);
    let records = records_for(&js, &names, filter, false, progress).await?;
    let state = rebuild(&records, filter);
    let rows: Vec<_> = state.values().filter(|r| r.active_since).collect();
    Ok(render_handoffs(&rows, format))
}

/// `baton timeline ID`.
/// A commit that does not decode is named, not hidden.
pub async fn timeline_of(cfg: &Config, id: Uuid) -> Result<String, ReplayError> {
    let (_client, js) = connect(cfg).await?;
    let names = Names::new(&cfg.nats.prefix);
    let records = read_handoff(&js, &names, id).await?;
    let mut text = timeline(&events_of(&records, id), &cfg.policy(), Utc::now());
    for r in records.iter().filter(|r| r.commit.is_err()) {
        text.push_str(&format!(
            "  WARNING: the commit at seq {} does not decode and is missing above; run `baton audit verify`\n",
            r.seq
        ));
    }
    Ok(text)
}

/// `baton export`: raw events (JSONL) in the window, or one CSV row per
/// handoff active in it, as of its end.
pub async fn export(
    cfg: &Config,
    filter: &Filter,
    format: Format,
    progress: bool,
) -> Result<String, ReplayError> {
    let (_client, js) = connect(cfg).await?;
    let names = Names::new(&cfg.nats.prefix);
    match format {
        Format::Jsonl => {
            let records = records_for(&js, &names, filter, true, progress).await?;
            let events = records
                .iter()
                .filter(|r| r.at_or_before(filter.until) && r.at_or_after(filter.since))
                .filter_map(|r| r.commit.as_ref().ok())
                .flat_map(|c| c.events.iter())
                .filter(|e| filter.handoff.is_none_or(|h| h == e.handoff_id));
            Ok(events_jsonl(events))
        }
        Format::Csv => {
            let records = records_for(&js, &names, filter, false, progress).await?;
            let state = rebuild(&records, filter);
            Ok(export_rows(state.values().filter(|r| r.active_since)))
        }
        other => Err(ReplayError::Usage(format!(
            "export writes jsonl or csv, not {other:?}"
        ))),
    }
}

/// What `audit verify` found, and how far it read.
#[derive(Debug)]
pub struct AuditReport {
    pub findings: Vec<Finding>,
    pub commits: usize,
    pub handoffs: usize,
    pub pages: usize,
    /// `None` when the daemon was not asked.
    pub daemon_applied_seq: Option<u64>,
    /// Every page and the person it reached, as stored in its event.
    pub paged: Vec<super::audit::Paged>,
}

impl AuditReport {
    pub fn violations(&self) -> usize {
        self.findings.iter().filter(|f| f.violation).count()
    }
}

/// `baton audit verify`: the invariants over the whole log and the pages,
/// then (with `daemon`) the comparison with the running daemon's state.
pub async fn audit_verify(
    cfg: &Config,
    grace: Duration,
    daemon: bool,
    progress: bool,
) -> Result<AuditReport, ReplayError> {
    let (client, js) = connect(cfg).await?;
    let names = Names::new(&cfg.nats.prefix);
    let records = read_events(&js, &names, ReadRange::default(), progress).await?;
    let pages = read_pages(&js, &names).await?;
    let state = rebuild(&records, &Filter::default());
    let policy = cfg.policy();
    let audit = Audit {
        policy: &policy,
        names: &names,
        now: Utc::now(),
        grace: chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
        first_seq: 1,
    };
    let mut findings = verify(&audit, &records, &state, &pages);
    let mut daemon_applied_seq = None;
    if daemon {
        let upto = records.last().map_or(0, |r| r.seq);
        let theirs = daemon_digests(
            &client,
            &names,
            |evicted_before| local_buckets(&state, evicted_before),
            cfg.nats.request_timeout,
        )
        .await?;
        daemon_applied_seq = Some(theirs.applied_seq);
        findings.extend(compare(&state, upto, &theirs));
    }
    findings.sort_by_key(|f| (!f.violation, f.handoff, f.seq));
    Ok(AuditReport {
        findings,
        commits: records.len(),
        handoffs: state.len(),
        pages: pages.len(),
        daemon_applied_seq,
        paged: super::audit::who_was_paged(&records),
    })
}
