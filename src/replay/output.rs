//! Rendering replayed state and exports: `table` for people, `json` /
//! `jsonl` for tools, `csv` (one row per handoff) for spreadsheets and BI.
//!
//! The CSV columns are a contract for whoever imports them: `id`, `opened_at`,
//! `severity`, `template`, `team`, `status`, `hcs`, `missing`, `paged_at`,
//! `acknowledged_at`, `acknowledged_by`, `mtta_ms`, `escalation_level`,
//! `escalation_steps`, `overridden_by`, `resolved_at`, `resolved_by`,
//! `reports`, `last_seq`. Times are RFC 3339 UTC; empty means "never". Quoting
//! follows RFC 4180.

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::Rebuilt;
use crate::domain::{Event, Handoff, Incident, TeamHandoff};

/// Output format of `replay` and `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(format!(
                "unknown format {s:?}: use table, json, jsonl or csv"
            )),
        }
    }
}

/// The CSV header.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "opened_at",
    "severity",
    "template",
    "team",
    "status",
    "hcs",
    "missing",
    "paged_at",
    "acknowledged_at",
    "acknowledged_by",
    "mtta_ms",
    "escalation_level",
    "escalation_steps",
    "overridden_by",
    "resolved_at",
    "resolved_by",
    "reports",
    "last_seq",
    "kind",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// An incident's columns (all but `last_seq` and `kind`).
fn incident_row(h: &Incident) -> [String; 18] {
    [
        h.id.to_string(),
        time(Some(h.opened_at)),
        h.severity.to_string(),
        h.template.clone(),
        h.team.clone(),
        h.status().as_str().to_string(),
        format!("{:.2}", h.hcs.score),
        h.hcs.missing.join(" "),
        time(h.paged_at),
        time(h.acknowledged.as_ref().map(|a| a.at)),
        h.acknowledged
            .as_ref()
            .map(|a| a.by.clone())
            .unwrap_or_default(),
        h.mtta_ms.map(|m| m.to_string()).unwrap_or_default(),
        h.escalation_level.to_string(),
        h.escalation_steps.to_string(),
        h.overridden
            .as_ref()
            .map(|o| o.by.clone())
            .unwrap_or_default(),
        time(h.resolved.as_ref().map(|r| r.at)),
        h.resolved
            .as_ref()
            .map(|r| r.by.clone())
            .unwrap_or_default(),
        h.reports.to_string(),
    ]
}

/// A team handoff's columns: the incident-only ones (severity, paging,
/// acknowledgement, escalation, override, reports) stay empty; `team` is
/// the receiving team, `hcs` the completeness score, `resolved_*` the
/// completion or cancellation.
fn team_row(t: &TeamHandoff) -> [String; 18] {
    let closed = t.completed.as_ref().or(t.cancelled.as_ref());
    [
        t.id.to_string(),
        time(Some(t.opened_at)),
        String::new(),
        t.template.name.clone(),
        t.template.to_team.clone(),
        t.status.as_str().to_string(),
        format!("{:.2}", t.completeness.score),
        t.completeness.missing.join(" "),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        time(closed.map(|c| c.at)),
        closed.map(|c| c.by.clone()).unwrap_or_default(),
        String::new(),
    ]
}

/// One CSV row per handoff, with the header first.
pub fn export_rows<'a>(rows: impl IntoIterator<Item = &'a Rebuilt>) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\n";
    for r in rows {
        let fields = match &r.handoff {
            Handoff::Incident(h) => incident_row(h),
            Handoff::Team(t) => team_row(t),
        };
        let mut fields = fields.to_vec();
        fields.push(r.last_seq.to_string());
        fields.push(r.handoff.kind().as_str().to_string());
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Events as stored, one JSON object per line.
pub fn events_jsonl<'a>(events: impl IntoIterator<Item = &'a Event>) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&serde_json::to_string(e).expect("events serialize"));
        out.push('\n');
    }
    out
}

/// Replayed handoffs in the chosen format.
pub fn render_handoffs(rows: &[&Rebuilt], format: Format) -> String {
    match format {
        Format::Csv => export_rows(rows.iter().copied()),
        Format::Json => {
            let all: Vec<_> = rows.iter().map(|r| state_json(&r.handoff)).collect();
            serde_json::to_string_pretty(&all).expect("state serializes") + "\n"
        }
        Format::Jsonl => rows
            .iter()
            .map(|r| {
                serde_json::to_string(&state_json(&r.handoff)).expect("state serializes") + "\n"
            })
            .collect(),
        Format::Table => table(rows),
    }
}

/// A replayed state as JSON: the aggregate's own fields plus `kind`.
fn state_json(h: &Handoff) -> serde_json::Value {
    let mut v = match h {
        Handoff::Incident(i) => serde_json::to_value(i),
        Handoff::Team(t) => serde_json::to_value(t),
    }
    .expect("state serializes");
    if let Some(o) = v.as_object_mut() {
        o.insert("kind".into(), h.kind().as_str().into());
    }
    v
}

fn table(rows: &[&Rebuilt]) -> String {
    let mut out = format!(
        "{:<36}  {:<3}  {:<12}  {:<16}  {:>6}  {:<24}  {:>3}  {:<12}  {:>8}\n",
        "ID", "SEV", "STATUS", "TEAM", "HCS", "OPENED", "LVL", "ACKED BY", "MTTA"
    );
    for r in rows {
        let line = match &r.handoff {
            Handoff::Incident(h) => format!(
                "{:<36}  {:<3}  {:<12}  {:<16}  {:>6.2}  {:<24}  {:>3}  {:<12}  {:>8}",
                h.id,
                h.severity,
                h.status().as_str(),
                h.team,
                h.hcs.score,
                time(Some(h.opened_at)),
                h.escalation_level,
                h.acknowledged
                    .as_ref()
                    .map(|a| a.by.as_str())
                    .unwrap_or("-"),
                h.mtta_ms
                    .map(super::timeline::human)
                    .unwrap_or_else(|| "-".into()),
            ),
            // A team handoff has no severity, level or MTTA: its own state,
            // the receiving team, completeness and who accepted.
            Handoff::Team(t) => format!(
                "{:<36}  {:<3}  {:<12}  {:<16}  {:>6.2}  {:<24}  {:>3}  {:<12}  {:>8}",
                t.id,
                "-",
                t.status.as_str(),
                t.template.to_team,
                t.completeness.score,
                time(Some(t.opened_at)),
                "-",
                t.accepted.as_ref().map(|a| a.by.as_str()).unwrap_or("-"),
                "-",
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{} handoff(s)", rows.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
    }
}
