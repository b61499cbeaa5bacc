//! The daily review: what a team lead reads in the playbook's 15 minutes.
//!
//! A pure function of the projected handoffs, the policy and the end of the
//! window: the top escalations of the prior 24 h (by level reached, then by
//! how late the acknowledgement came), each with its HCS and missing fields;
//! MTTA by severity (mean, p90) against the SLA band; and the single most
//! frequent missing field with the templates, teams and workflows it comes
//! from — "fix one recurring missing field in templates".

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Handoff, Incident, Policy, Severity};

/// One escalated handoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationItem {
    pub handoff_id: Uuid,
    pub severity: Severity,
    pub team: String,
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Highest escalation level reached.
    pub level: u32,
    /// Escalation steps stored.
    pub steps: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// Seconds the first response came after its deadline (still unacknowledged:
    /// measured to the end of the window).
    pub ack_late_seconds: f64,
    pub hcs: f64,
    pub missing: Vec<String>,
}

/// MTTA of one severity over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MttaRow {
    pub severity: Severity,
    pub acknowledged: usize,
    pub mean_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    /// The first-response target.
    pub sla_seconds: f64,
    /// Acknowledged within the target.
    pub within_sla: usize,
}

/// The field most often missing, and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingField {
    pub field: String,
    pub count: usize,
    pub templates: BTreeMap<String, usize>,
    pub teams: BTreeMap<String, usize>,
    pub workflows: BTreeMap<String, usize>,
}

/// A drill's figures (weekly synthetic P1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRow {
    pub handoff_id: Uuid,
    pub opened_at: DateTime<Utc>,
    pub hcs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_page_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment_seconds: Option<f64>,
    /// `passed`, `failed` (not acknowledged within the P1 band) or `running`.
    pub result: String,
}

/// The review record published on `<prefix>.digest.daily`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub opened: usize,
    pub escalated: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    pub top_escalations: Vec<EscalationItem>,
    pub mtta: Vec<MttaRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_missing_field: Option<MissingField>,
    /// Drills opened in the 7 days before the window's end.
    pub drills: Vec<DrillRow>,
}

fn secs(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The earliest opening the review of the 24 h before `end` reads: drills
/// are listed over the week before `end`, the production figures cover its
/// last day. The job hands the review only incidents opened since then.
pub fn reads_since(end: DateTime<Utc>) -> DateTime<Utc> {
    end - Duration::days(7)
}

/// The review of the 24 h before `end`. `is_drill` tells drills apart (they
/// are excluded from the production figures and listed on their own).
/// `handoffs` may hold more than [`reads_since`] asks for: the rest is left
/// out.
pub fn daily_review(
    handoffs: &[Handoff],
    policy: &Policy,
    end: DateTime<Utc>,
    is_drill: impl Fn(&Incident) -> bool,
) -> Review {
    let start = end - Duration::hours(24);
    // Incidents only: team handoffs have their own figures (`baton teams`),
    // and their template fields are not packet fields.
    let incidents: Vec<&Incident> = handoffs.iter().filter_map(Handoff::as_incident).collect();
    let in_window: Vec<&Incident> = incidents
        .iter()
        .copied()
        .filter(|h| h.opened_at >= start && h.opened_at < end && !is_drill(h))
        .collect();

    let mut top: Vec<EscalationItem> = in_window
        .iter()
        .filter(|h| h.escalation_steps > 0)
        .map(|h| {
            let due = h.first_response_due(policy);
            let answered = h.acknowledged.as_ref().map(|a| a.at).unwrap_or(end);
            EscalationItem {
                handoff_id: h.id,
                severity: h.severity,
                team: h.team.clone(),
                template: h.template.clone(),
                workflow_id: h.packet.workflow_id.clone(),
                level: h.escalation_level,
                steps: h.escalation_steps,
                acknowledged_by: h.acknowledged.as_ref().map(|a| a.by.clone()),
                ack_late_seconds: secs(answered - due).max(0.0),
                hcs: h.hcs.score,
                missing: h.hcs.missing.clone(),
            }
        })
        .collect();
    top.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then(b.steps.cmp(&a.steps))
            .then(b.ack_late_seconds.total_cmp(&a.ack_late_seconds))
            .then(a.handoff_id.cmp(&b.handoff_id))
    });
    let escalated = top.len();
    top.truncate(10);

    let mtta = Severity::ALL
        .iter()
        .map(|sev| {
            let sla = policy.severity(*sev).first_response.as_secs_f64();
            let mut v: Vec<f64> = in_window
                .iter()
                .filter(|h| h.severity == *sev)
                .filter_map(|h| h.mtta_ms)
                .map(|ms| ms as f64 / 1000.0)
                .collect();
            v.sort_by(f64::total_cmp);
            MttaRow {
                severity: *sev,
                acknowledged: v.len(),
                mean_seconds: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
                p90_seconds: percentile(&v, 90.0),
                sla_seconds: sla,
                within_sla: v.iter().filter(|s| **s <= sla).count(),
            }
        })
        .collect();

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &in_window {
        for f in &h.hcs.missing {
            *counts.entry(f).or_default() += 1;
        }
    }
    // Most frequent; ties go to the field named first alphabetically.
    let top_missing_field = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(field, count)| {
            let mut mf = MissingField {
                field: field.to_string(),
                count: *count,
                templates: BTreeMap::new(),
                teams: BTreeMap::new(),
                workflows: BTreeMap::new(),
            };
            for h in in_window
                .iter()
                .filter(|h| h.hcs.missing.iter().any(|m| m == field))
            {
                *mf.templates.entry(h.template.clone()).or_default() += 1;
                *mf.teams.entry(h.team.clone()).or_default() += 1;
                let wf = h
                    .packet
                    .workflow_id
                    .clone()
                    .unwrap_or_else(|| "(none)".into());
                *mf.workflows.entry(wf).or_default() += 1;
            }
            mf
        });

    let p1_band = policy.severity(Severity::P1).first_response;
    let mut drills: Vec<DrillRow> = incidents
        .iter()
        .copied()
        .filter(|h| is_drill(h) && h.opened_at >= reads_since(end) && h.opened_at < end)
        .map(|h| {
            let ack = h.acknowledged.as_ref().map(|a| secs(a.at - h.opened_at));
            let result = match ack {
                Some(s) if s <= p1_band.as_secs_f64() => "passed",
                Some(_) => "failed",
                None if end - h.opened_at > Duration::from_std(p1_band).unwrap_or_default() => {
                    "failed"
                }
                None => "running",
            };
            DrillRow {
                handoff_id: h.id,
                opened_at: h.opened_at,
                hcs: h.hcs.score,
                first_page_seconds: h.paged_at.map(|t| secs(t - h.opened_at)),
                ack_seconds: ack,
                containment_seconds: h.resolved.as_ref().map(|r| secs(r.at - h.opened_at)),
                result: result.into(),
            }
        })
        .collect();
    drills.sort_by_key(|d| d.opened_at);

    Review {
        window_start: start,
        window_end: end,
        opened: in_window.len(),
        escalated,
        acknowledged: in_window
            .iter()
            .filter(|h| h.acknowledged.is_some())
            .count(),
        resolved: in_window.iter().filter(|h| h.resolved.is_some()).count(),
        top_escalations: top,
        mtta,
        top_missing_field,
        drills,
    }
}

fn dur(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0}s")
    } else if s < 5400.0 {
        format!("{:.1}m", s / 60.0)
    } else {
        format!("{:.1}h", s / 3600.0)
    }
}

/// The review as Markdown.
pub fn render_markdown(r: &Review) -> String {
    let mut out = format!(
        "# Daily handoff review — {} → {} (UTC)\n\n{} opened · {} escalated · {} acknowledged · {} resolved\n\n",
        r.window_start.format("%Y-%m-%d %H:%M"),
        r.window_end.format("%Y-%m-%d %H:%M"),
        r.opened,
        r.escalated,
        r.acknowledged,
        r.resolved
    );
    out.push_str("## Top escalations\n\n");
    if r.top_escalations.is_empty() {
        out.push_str("None: every handoff was answered within its first-response target.\n\n");
    } else {
        out.push_str("| handoff | sev | team | level (steps) | ack | late by | HCS | missing |\n|---|---|---|---|---|---|---|---|\n");
        for e in &r.top_escalations {
            out.push_str(&format!(
                "| `{}` | {} | {} | L{} ({}) | {} | {} | {:.2} | {} |\n",
                e.handoff_id,
                e.severity,
                e.team,
                e.level,
                e.steps,
                e.acknowledged_by.as_deref().unwrap_or("**nobody**"),
                dur(e.ack_late_seconds),
                e.hcs,
                if e.missing.is_empty() {
                    "—".to_string()
                } else {
                    e.missing.join(", ")
                }
            ));
        }
        out.push('\n');
    }
    out.push_str("## MTTA by severity\n\n| sev | acked | mean | p90 | target | within |\n|---|---|---|---|---|---|\n");
    for m in &r.mtta {
        let f = |v: Option<f64>| v.map(dur).unwrap_or_else(|| "—".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{} |\n",
            m.severity,
            m.acknowledged,
            f(m.mean_seconds),
            f(m.p90_seconds),
            dur(m.sla_seconds),
            m.within_sla,
            m.acknowledged
        ));
    }
    out.push_str("\n## Fix one recurring missing field\n\n");
    match &r.top_missing_field {
        None => out.push_str("No packet was missing a field.\n"),
        Some(m) => {
            let list = |map: &BTreeMap<String, usize>| {
                let mut v: Vec<_> = map.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                v.iter()
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "`{}` was missing from {} packets. Templates: {}. Teams: {}. Workflows: {}.\n",
                m.field,
                m.count,
                list(&m.templates),
                list(&m.teams),
                list(&m.workflows)
            ));
        }
    }
    if !r.drills.is_empty() {
        out.push_str("\n## Drills (last 7 days)\n\n| handoff | opened | HCS | first page | ack | contained | result |\n|---|---|---|---|---|---|---|\n");
        for d in &r.drills {
            let f = |v: Option<f64>| v.map(dur).unwrap_or_else(|| "—".into());
            out.push_str(&format!(
                "| `{}` | {} | {:.2} | {} | {} | {} | {} |\n",
                d.handoff_id,
                d.opened_at.format("%Y-%m-%d %H:%M"),
                d.hcs,
                f(d.first_page_seconds),
                f(d.ack_seconds),
                f(d.containment_seconds),
                d.result
            ));
        }
    }
    out
}
