//! Team handoffs at the edges: the sender-quality figures a team lead reads
//! ([`work_stats`]) and the workflow diagrams ([`diagram`]). Both are pure
//! functions of projected state and config; the lifecycle rules themselves
//! live in `domain::teamwork`.

pub mod diagram;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Handoff, TeamHandoff, TeamStatus};

/// Figures for one template and sending team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkStats {
    pub template: String,
    pub from_team: String,
    pub to_team: String,
    pub total: usize,
    pub completed: usize,
    pub cancelled: usize,
    pub open: usize,
    /// Completed ÷ total, 0–100.
    pub completion_rate: f64,
    pub avg_accept_hours: Option<f64>,
    pub avg_complete_hours: Option<f64>,
    /// Times sent back for missing context ÷ handoffs: the back-and-forth.
    pub returns_per_handoff: f64,
    /// Mean completeness score at the latest submission.
    pub avg_completeness: f64,
    pub avg_rating: Option<f64>,
    pub ratings: usize,
    pub accept_sla_missed: usize,
    pub complete_sla_missed: usize,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64 * 100.0).round() / 100.0)
}

/// Per (template, sending team), sorted by template then team. Incidents
/// in `handoffs` are skipped.
pub fn work_stats<'a>(handoffs: impl IntoIterator<Item = &'a Handoff>) -> Vec<WorkStats> {
    let mut groups: BTreeMap<(String, String), Vec<&TeamHandoff>> = BTreeMap::new();
    for w in handoffs.into_iter().filter_map(Handoff::as_team) {
        groups
            .entry((w.template.name.clone(), w.template.from_team.clone()))
            .or_default()
            .push(w);
    }
    groups
        .into_iter()
        .map(|((template, from_team), works)| {
            let hours = |ms: i64| ms as f64 / 3_600_000.0;
            let accept: Vec<f64> = works
                .iter()
                .filter_map(|w| {
                    w.accepted
                        .as_ref()
                        .map(|a| hours((a.at - w.submitted_at).num_milliseconds()))
                })
                .collect();
            let complete: Vec<f64> = works
                .iter()
                .filter_map(|w| {
                    w.completed
                        .as_ref()
                        .map(|c| hours((c.at - w.opened_at).num_milliseconds()))
                })
                .collect();
            let ratings: Vec<f64> = works
                .iter()
                .filter_map(|w| w.rating.as_ref().map(|r| f64::from(r.rating)))
                .collect();
            let total = works.len();
            let count = |s: TeamStatus| works.iter().filter(|w| w.status == s).count();
            let completed = count(TeamStatus::Completed);
            let cancelled = count(TeamStatus::Cancelled);
            WorkStats {
                to_team: works[0].template.to_team.clone(),
                template,
                from_team,
                total,
                completed,
                cancelled,
                open: total - completed - cancelled,
                completion_rate: (completed as f64 * 10000.0 / total as f64).round() / 100.0,
                avg_accept_hours: mean(&accept),
                avg_complete_hours: mean(&complete),
                returns_per_handoff: (works.iter().map(|w| f64::from(w.returns)).sum::<f64>()
                    / total as f64
                    * 100.0)
                    .round()
                    / 100.0,
                avg_completeness: mean(
                    &works
                        .iter()
                        .map(|w| w.completeness.score)
                        .collect::<Vec<_>>(),
                )
                .unwrap_or(0.0),
                avg_rating: mean(&ratings),
                ratings: ratings.len(),
                accept_sla_missed: works.iter().filter(|w| w.accept_missed).count(),
                complete_sla_missed: works.iter().filter(|w| w.complete_missed).count(),
            }
        })
        .collect()
}

/// A plain-text table for `baton stats`.
pub fn render_table(stats: &[WorkStats]) -> String {
    let mut out = String::from(
        "template               from → to                  total  done%  accept h  complete h  returns/handoff  completeness  rating\n",
    );
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into());
    for s in stats {
        out.push_str(&format!(
            "{:<22} {:<26} {:>5}  {:>5.1}  {:>8}  {:>10}  {:>15.2}  {:>12.1}  {:>6}\n",
            s.template,
            format!("{} → {}", s.from_team, s.to_team),
            s.total,
            s.completion_rate,
            f(s.avg_accept_hours),
            f(s.avg_complete_hours),
            s.returns_per_handoff,
            s.avg_completeness,
            f(s.avg_rating),
        ));
    }
    if stats.is_empty() {
        out.push_str("(no team handoffs yet)\n");
    }
    out
}
