//! `[jobs]`: the operations playbook's schedules (daily review, weekly
//! drill, ownership audit), the time zone they are in, and the drill's
//! route and team. The scheduler that fires them is the `jobs` module.

use std::str::FromStr;
use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::yes;

/// `[jobs]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Run the scheduler in this daemon (on-demand runs work either way).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// IANA time zone the schedules are in, e.g. "Europe/Berlin".
    #[serde(default = "utc")]
    pub timezone: String,
    /// The daily review (default 09:00 every day).
    #[serde(default = "default_review")]
    pub daily_review: JobSchedule,
    /// The weekly synthetic P1 drill (default Monday 10:00).
    #[serde(default)]
    pub weekly_drill: DrillConfig,
    /// The ownership audit (default 09:30 every day).
    #[serde(default)]
    pub ownership_audit: AuditConfig,
}

fn utc() -> String {
    "UTC".into()
}
fn default_review() -> JobSchedule {
    JobSchedule {
        enabled: true,
        schedule: "0 0 9 * * *".into(),
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            timezone: utc(),
            daily_review: default_review(),
            weekly_drill: DrillConfig::default(),
            ownership_audit: AuditConfig::default(),
        }
    }
}

/// `[jobs.daily_review]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSchedule {
    /// Whether the job runs on its schedule.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Cron expression with seconds: `sec min hour day month weekday`.
    pub schedule: String,
}

/// `[jobs.weekly_drill]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Whether the drill runs on its schedule.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Cron expression with seconds (default Monday 10:00).
    #[serde(default = "drill_schedule")]
    pub schedule: String,
    /// Route every drill page goes to instead of the real ones.
    #[serde(default = "drill")]
    pub route: String,
    /// Team the drill is reported for (page subjects end in it).
    #[serde(default = "drill")]
    pub team: String,
    /// `workflow_id` of the synthetic report.
    #[serde(default = "drill_workflow")]
    pub workflow_id: String,
    /// Page the real routes (on-call, incident captain) instead of `route`.
    #[serde(default)]
    pub page_real_routes: bool,
}

fn drill_schedule() -> String {
    "0 0 10 * * Mon".into()
}
fn drill() -> String {
    "drill".into()
}
fn drill_workflow() -> String {
    "baton-drill".into()
}

impl Default for DrillConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: drill_schedule(),
            route: drill(),
            team: drill(),
            workflow_id: drill_workflow(),
            page_real_routes: false,
        }
    }
}

/// `[jobs.ownership_audit]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Whether the audit runs on its schedule.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Cron expression with seconds (default 09:30 daily).
    #[serde(default = "audit_schedule")]
    pub schedule: String,
    /// A routing rule that matched no report for this long is stale.
    #[serde(default = "thirty_days", with = "humantime_serde")]
    pub stale_after: Duration,
}

fn audit_schedule() -> String {
    "0 30 9 * * *".into()
}
const fn thirty_days() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: audit_schedule(),
            stale_after: thirty_days(),
        }
    }
}

/// Parses a schedule the way `tokio-cron-scheduler` does (seconds required).
pub fn parse_schedule(s: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

impl JobsConfig {
    /// Problems with schedules and the time zone, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if chrono_tz::Tz::from_str(&self.timezone).is_err() {
            problems.push(format!(
                "jobs.timezone: unknown time zone {:?}",
                self.timezone
            ));
        }
        for job in Job::ALL {
            if let Err(e) = parse_schedule(self.schedule(job)) {
                problems.push(format!("jobs.{}.schedule: {e}", job.config_key()));
            }
        }
        if !crate::domain::is_subject_token(&self.weekly_drill.route)
            || !crate::domain::is_subject_token(&self.weekly_drill.team)
        {
            problems.push("jobs.weekly_drill: route and team are subject tokens".into());
        }
        problems
    }

    /// The cron expression of `job`.
    pub fn schedule(&self, job: Job) -> &str {
        match job {
            Job::DailyReview => &self.daily_review.schedule,
            Job::WeeklyDrill => &self.weekly_drill.schedule,
            Job::OwnershipAudit => &self.ownership_audit.schedule,
        }
    }

    /// Whether `job` runs on its schedule.
    pub fn job_enabled(&self, job: Job) -> bool {
        match job {
            Job::DailyReview => self.daily_review.enabled,
            Job::WeeklyDrill => self.weekly_drill.enabled,
            Job::OwnershipAudit => self.ownership_audit.enabled,
        }
    }

    /// The schedules' time zone (UTC if `timezone` is not one; `validate`
    /// reports that).
    pub fn tz(&self) -> chrono_tz::Tz {
        chrono_tz::Tz::from_str(&self.timezone).unwrap_or(chrono_tz::UTC)
    }
}

/// The jobs the `[jobs]` section schedules; `as_str` is also their CLI and
/// subject name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// `[jobs.daily_review]`: the digest of the prior 24 hours.
    DailyReview,
    /// `[jobs.weekly_drill]`: the synthetic P1.
    WeeklyDrill,
    /// `[jobs.ownership_audit]`: stale routing rules, owner gaps, untested
    /// rollbacks.
    OwnershipAudit,
}

impl Job {
    /// Every job, in the order they are listed.
    pub const ALL: [Job; 3] = [Job::DailyReview, Job::WeeklyDrill, Job::OwnershipAudit];

    /// The CLI and subject name.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::DailyReview => "daily-review",
            Job::WeeklyDrill => "weekly-drill",
            Job::OwnershipAudit => "ownership-audit",
        }
    }

    /// Its key under `[jobs]`.
    pub fn config_key(self) -> &'static str {
        match self {
            Job::DailyReview => "daily_review",
            Job::WeeklyDrill => "weekly_drill",
            Job::OwnershipAudit => "ownership_audit",
        }
    }
}

impl FromStr for Job {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Job::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| {
                format!("no job {s:?}; jobs: daily-review, weekly-drill, ownership-audit")
            })
    }
}
