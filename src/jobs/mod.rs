//! The operations playbook on a schedule: daily review, weekly synthetic P1
//! drill, ownership audit.
//!
//! Job bodies are pure functions over projected state plus a clock
//! ([`review::daily_review`], [`audit::ownership_audit`],
//! [`drill::drill_report`]); this module is their edge. Schedules are cron
//! expressions (with seconds) in a configured time zone, fired by
//! `tokio-cron-scheduler`.
//!
//! **Once per schedule, even with several daemons.** Before a run, a daemon
//! claims it in `BATON_JOBS` on `<prefix>.jobs.<job>.claim` with the
//! subject's last sequence as `Nats-Expected-Last-Subject-Sequence` and
//! `Nats-Msg-Id = <job>:<scheduled time>`. Only one claim per scheduled time
//! can win; the others see a conflict or a duplicate and skip.
//!
//! **Missed runs.** On start, a job whose latest scheduled time is newer than
//! its last claim (the daemon was down) runs at once, marked `late`. A job
//! that has never run is not caught up: there is no evidence it was missed.
//!
//! Each run's outcome (duration, error) is a record on
//! `<prefix>.jobs.<job>.run` and a count in `baton_job_runs_total{job,outcome}`;
//! digests go to `<prefix>.digest.daily` and `<prefix>.digest.audit`
//! (`BATON_DIGESTS`). `<prefix>.job.<name>` (request/reply, served by
//! `api::nats` with the commands) runs a job on demand through
//! [`run_on_demand`]: `baton job run <name>`, `baton review`.

pub mod audit;
pub mod drill;
pub mod review;

use std::sync::Arc;
use std::time::Instant;

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::HeaderMap;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, Handoffs};
use crate::config::{JobsConfig, AGENT_FAILURE};
use crate::domain::Kind;
use crate::metrics::Metrics;
use crate::projector::Select;
use crate::store::{Names, StoreError};

pub use crate::config::{parse_schedule, Job};

/// What the jobs need from a running daemon, and nothing more; `server`
/// builds it.
#[derive(Clone)]
pub struct JobContext {
    /// `[jobs]`: schedules, time zone, the drill and the audit.
    pub cfg: Arc<JobsConfig>,
    /// Projected state and policy for the job bodies; the store's names.
    pub app: Handoffs,
    /// `baton_job_runs_total` and `baton_ownership_audit_findings`.
    pub metrics: Arc<Metrics>,
    /// Claims, run records, digests and the drill's report.
    pub js: async_nats::jetstream::Context,
    /// People and credentials, for the audit's people findings.
    pub identity: crate::identity::Identity,
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    /// A missed scheduled run, caught up on start.
    CatchUp,
    /// `baton job run` / `baton review`.
    Manual,
}

/// The outcome record on `<prefix>.jobs.<job>.run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    /// Ran after its scheduled time because the daemon was down.
    pub late: bool,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `ok` or `error`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The digest (review, audit) or the drill's handoff.
    pub result: Value,
    /// The digest as Markdown, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    job: String,
    scheduled_for: DateTime<Utc>,
    claimed_by: String,
    claimed_at: DateTime<Utc>,
}

/// The outcome of trying to claim a scheduled run.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    Won,
    /// Someone already ran (or is running) this or a later scheduled time.
    Taken,
}

fn claim_subject(names: &Names, job: Job) -> String {
    names.job_claim(job.as_str())
}

/// The last claim of a job and its sequence.
async fn last_claim(ctx: &JobContext, job: Job) -> Result<Option<(u64, Claim)>, StoreError> {
    let names = ctx.app.names();
    let stream = ctx
        .js
        .get_stream(names.jobs_stream())
        .await
        .map_err(|e| StoreError::nats("get stream", e))?;
    match stream
        .direct_get_last_for_subject(claim_subject(names, job))
        .await
    {
        Ok(m) => {
            let c: Claim = serde_json::from_slice(&m.payload).map_err(|e| StoreError::Decode {
                seq: m.sequence,
                message: e.to_string(),
            })?;
            Ok(Some((m.sequence, c)))
        }
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::nats("direct get", e)),
    }
}

/// Claims the run of `job` scheduled for `at`; exactly one caller wins.
pub async fn claim(ctx: &JobContext, job: Job, at: DateTime<Utc>) -> Result<Claimed, StoreError> {
    let last = last_claim(ctx, job).await?;
    if last.as_ref().is_some_and(|(_, c)| c.scheduled_for >= at) {
        return Ok(Claimed::Taken);
    }
    let names = ctx.app.names();
    let mut headers = HeaderMap::new();
    headers.insert(
        NATS_MESSAGE_ID,
        format!("{}:{}", job.as_str(), at.to_rfc3339()).as_str(),
    );
    headers.insert(
        NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        last.as_ref().map_or(0, |(s, _)| *s).to_string().as_str(),
    );
    // A nonce makes "is the stored claim mine?" answerable after an
    // ambiguous publish (ack lost, or a duplicate of our own retry).
    let me = format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        uuid::Uuid::now_v7()
    );
    let claim = Claim {
        job: job.as_str().into(),
        scheduled_for: at,
        claimed_by: me.clone(),
        claimed_at: Utc::now(),
    };
    let ack = ctx
        .js
        .publish_with_headers(
            claim_subject(names, job),
            headers,
            serde_json::to_vec(&claim).expect("json").into(),
        )
        .await
        .map_err(|e| StoreError::nats("publish claim", e))?
        .await;
    match ack {
        Ok(a) if !a.duplicate => Ok(Claimed::Won),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(Claimed::Taken),
        // Ambiguous: read back what is stored.
        ambiguous => match last_claim(ctx, job).await {
            Ok(Some((_, c))) if c.scheduled_for == at && c.claimed_by == me => Ok(Claimed::Won),
            Ok(_) if ambiguous.is_ok() => Ok(Claimed::Taken),
            Ok(_) => Err(StoreError::nats(
                "publish claim",
                ambiguous.err().map(|e| e.to_string()).unwrap_or_default(),
            )),
            Err(e) => Err(e),
        },
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "baton".into())
}

/// Runs a job body and publishes its digest; `window_end` overrides the
/// review's window (for `baton review --date`).
async fn body(
    ctx: &JobContext,
    job: Job,
    now: DateTime<Utc>,
    scheduled_for: DateTime<Utc>,
    window_end: Option<DateTime<Utc>>,
) -> Result<(Value, Option<String>), String> {
    let cfg = &ctx.cfg;
    let names = ctx.app.names();
    // The bodies read only the handoffs their windows reach, walked from the
    // projection's index on a blocking thread.
    let incidents = Select::kind(Kind::Incident);
    let (subject, value, md) = match job {
        Job::DailyReview => {
            let end = window_end.unwrap_or(now);
            let r = ctx
                .app
                .read(move |projection, policy| {
                    let since = review::reads_since(end);
                    let handoffs = projection.opened_in(&incidents, Some(since), Some(end));
                    review::daily_review(&handoffs, policy, end, |h| h.drill)
                })
                .await;
            let md = review::render_markdown(&r);
            (
                names.daily_digest(),
                serde_json::to_value(&r).expect("json"),
                Some(md),
            )
        }
        Job::OwnershipAudit => {
            let stale_after = cfg.ownership_audit.stale_after;
            let a = ctx
                .app
                .read(move |projection, policy| {
                    let mut evidence = audit::Evidence::new(policy, now, stale_after);
                    projection.walk(&incidents, None, None, |h| evidence.visit(h));
                    audit::ownership_audit(policy, &evidence.picked, now, stale_after)
                })
                .await;
            let mut a = a;
            let credentials = ctx
                .identity
                .credentials()
                .map(|c| c.list(None))
                .unwrap_or_default();
            (a.people_without_contact, a.unused_credentials) =
                audit::people_findings(ctx.identity.people(), &credentials, now);
            let policy = ctx.app.policy();
            (a.short_rotations, a.unresolved_targets) = ctx
                .app
                .oncall()
                .roster()
                .read(|dir| audit::oncall_findings(dir, policy, now));
            for (kind, n) in a.counts() {
                ctx.metrics
                    .ownership_audit_findings
                    .with_label_values(&[kind])
                    .set(n as i64);
            }
            let md = audit::render_markdown(&a);
            (
                names.audit_digest(),
                serde_json::to_value(&a).expect("json"),
                Some(md),
            )
        }
        Job::WeeklyDrill => {
            let report = drill::drill_report(&cfg.weekly_drill, scheduled_for);
            let payload = serde_json::to_vec(&report).expect("json");
            let mut headers = HeaderMap::new();
            headers.insert(
                NATS_MESSAGE_ID,
                format!("drill:{}", scheduled_for.to_rfc3339()).as_str(),
            );
            let ack = ctx
                .js
                .publish_with_headers(names.report(AGENT_FAILURE), headers, payload.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let id = crate::domain::handoff_id_for(AGENT_FAILURE, &report.report())
                .expect("drills carry a dedup key");
            return Ok((
                json!({"handoff_id": id, "report_seq": ack.sequence, "route": cfg.weekly_drill.route}),
                None,
            ));
        }
    };
    let mut record = value.clone();
    if let (Value::Object(o), Some(md)) = (&mut record, &md) {
        o.insert("markdown".into(), Value::String(md.clone()));
    }
    ctx.js
        .publish(subject, serde_json::to_vec(&record).expect("json").into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok((value, md))
}

/// Claims (unless manual), runs, records. Returns `None` when another daemon
/// has the run.
pub async fn run_job(
    ctx: &JobContext,
    job: Job,
    scheduled_for: DateTime<Utc>,
    trigger: Trigger,
    window_end: Option<DateTime<Utc>>,
) -> Result<Option<JobRecord>, StoreError> {
    if trigger != Trigger::Manual && claim(ctx, job, scheduled_for).await? == Claimed::Taken {
        tracing::debug!(job = job.as_str(), %scheduled_for, "run claimed elsewhere");
        return Ok(None);
    }
    let started_at = Utc::now();
    let clock = Instant::now();
    let result = body(ctx, job, started_at, scheduled_for, window_end).await;
    let (outcome, error, result, markdown) = match result {
        Ok((v, md)) => ("ok", None, v, md),
        Err(e) => ("error", Some(e), Value::Null, None),
    };
    let record = JobRecord {
        job: job.as_str().into(),
        scheduled_for,
        trigger,
        late: trigger == Trigger::CatchUp,
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        outcome: outcome.into(),
        error,
        result,
        markdown,
    };
    ctx.metrics
        .job_runs_total
        .with_label_values(&[job.as_str(), outcome])
        .inc();
    let names = ctx.app.names();
    ctx.js
        .publish(
            names.job_run(job.as_str()),
            serde_json::to_vec(&record).expect("json").into(),
        )
        .await
        .map_err(|e| StoreError::nats("publish job record", e))?
        .await
        .map_err(|e| StoreError::nats("publish job record", e))?;
    tracing::info!(
        job = job.as_str(),
        ?trigger,
        outcome,
        duration_ms = record.duration_ms,
        "job ran"
    );
    Ok(Some(record))
}

/// Runs the scheduler until shutdown.
pub async fn run(ctx: JobContext, shutdown: CancellationToken) -> Result<(), String> {
    let cfg = ctx.cfg.clone();
    let tz = cfg.tz();
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let mut scheduler = None;
    if cfg.enabled {
        // Catch up what was missed while no daemon ran.
        for job in Job::ALL.into_iter().filter(|j| cfg.job_enabled(*j)) {
            let cron = parse_schedule(cfg.schedule(job))?;
            let Ok(prev) = cron.find_previous_occurrence(&Utc::now().with_timezone(&tz), true)
            else {
                continue;
            };
            let prev = prev.with_timezone(&Utc);
            match last_claim(&ctx, job).await {
                Ok(Some((_, last))) if last.scheduled_for < prev => {
                    tracing::warn!(job = job.as_str(), scheduled_for = %prev, "missed run; running it now, marked late");
                    if let Err(e) = run_job(&ctx, job, prev, Trigger::CatchUp, None).await {
                        tracing::error!(job = job.as_str(), error = %e, "catch-up run failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(job = job.as_str(), error = %e, "cannot read job claims"),
            }
        }
        let sched = tokio_cron_scheduler::JobScheduler::new()
            .await
            .map_err(|e| e.to_string())?;
        for job in Job::ALL.into_iter().filter(|j| cfg.job_enabled(*j)) {
            let tx = tx.clone();
            let j = tokio_cron_scheduler::Job::new_async_tz(cfg.schedule(job), tz, move |_, _| {
                let tx = tx.clone();
                Box::pin(async move {
                    let _ = tx.send(job);
                })
            })
            .map_err(|e| format!("jobs.{}: {e}", job.config_key()))?;
            sched.add(j).await.map_err(|e| e.to_string())?;
        }
        sched.start().await.map_err(|e| e.to_string())?;
        scheduler = Some(sched);
    }
    let mut running = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(job) = rx.recv() => {
                // The scheduled time this firing stands for, in the job's zone.
                let Ok(cron) = parse_schedule(cfg.schedule(job)) else { continue };
                let Ok(at) = cron.find_previous_occurrence(&Utc::now().with_timezone(&tz), true) else { continue };
                let ctx = ctx.clone();
                running.spawn(async move {
                    if let Err(e) = run_job(&ctx, job, at.with_timezone(&Utc), Trigger::Schedule, None).await {
                        tracing::error!(job = job.as_str(), error = %e, "scheduled run failed");
                    }
                });
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    if let Some(mut s) = scheduler {
        let _ = s.shutdown().await;
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

/// Runs `name` now (`<prefix>.job.<name>`): for the review, over the day
/// `date` names (`YYYY-MM-DD`), else the last 24 h.
pub async fn run_on_demand(
    ctx: &JobContext,
    name: &str,
    date: Option<&str>,
) -> Result<JobRecord, AppError> {
    let job: Job = name.parse().map_err(AppError::UnknownJob)?;
    let end = window_end(date, &ctx.cfg).map_err(|message| AppError::invalid("date", message))?;
    match run_job(ctx, job, Utc::now(), Trigger::Manual, end).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(AppError::ClaimedElsewhere),
        Err(e) => Err(AppError::Unavailable(e)),
    }
}

/// `YYYY-MM-DD` → the end of that day's review window (the review's
/// scheduled time of day on that date, in the jobs' time zone).
fn window_end(date: Option<&str>, cfg: &JobsConfig) -> Result<Option<DateTime<Utc>>, String> {
    let Some(date) = date else {
        return Ok(None);
    };
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| format!("date {date:?} is not YYYY-MM-DD"))?;
    let tz = cfg.tz();
    let start = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(tz)
        .earliest()
        .ok_or("no such local time")?;
    let cron = parse_schedule(&cfg.daily_review.schedule)?;
    let at = cron
        .find_next_occurrence(&start, true)
        .map_err(|e| e.to_string())?;
    Ok(Some(at.with_timezone(&Utc)))
}
