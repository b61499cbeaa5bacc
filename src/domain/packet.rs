//! The playbook's 10-field handoff packet and the report that carries it.
//!
//! Parsing is strict and collects every problem at once: a runner that sends a
//! typo'd field (`rollback_cmd`) would otherwise be silently scored as missing
//! that field and held at the gate, which is worse than a clear rejection.
//! Values that say "nothing" (`""`, `"unknown"`, `"n/a"`, …) count as missing,
//! and overfilled strings are truncated with a warning: more text is not more
//! context.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{FieldError, Severity};

/// Blast-radius estimate (packet field 6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Users affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// Jobs affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u64>,
}

/// Primary and backup owner (packet field 9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Who is paged first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Who takes over when the primary cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

/// The handoff packet. Every field is optional on the wire; HCS measures how
/// many are there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

impl Packet {
    /// The owner's primary, if any.
    pub fn primary(&self) -> Option<&str> {
        self.owner.as_ref().and_then(|o| o.primary.as_deref())
    }

    /// The owner's backup, if any.
    pub fn backup(&self) -> Option<&str> {
        self.owner.as_ref().and_then(|o| o.backup.as_deref())
    }

    /// Copies every field that is set in `other` into `self`; returns the
    /// dotted names of the fields that changed.
    pub fn merge_from(&mut self, other: &Packet, only_missing: bool) -> Vec<String> {
        let mut changed = Vec::new();
        macro_rules! take {
            ($f:ident) => {
                if let Some(v) = &other.$f {
                    if (!only_missing || self.$f.is_none()) && self.$f.as_ref() != Some(v) {
                        self.$f = Some(v.clone());
                        changed.push(stringify!($f).to_string());
                    }
                }
            };
        }
        take!(run_id);
        take!(workflow_id);
        take!(objective);
        take!(failure_class);
        take!(last_successful_step);
        take!(failing_step);
        take!(error_summary);
        take!(blast_radius);
        take!(recommended_action);
        take!(rollback_command);
        take!(ttl_seconds);
        if let Some(o) = &other.owner {
            let mine = self.owner.get_or_insert_with(Owner::default);
            for (name, theirs, ours) in [
                ("owner.primary", &o.primary, &mut mine.primary),
                ("owner.backup", &o.backup, &mut mine.backup),
            ] {
                if let Some(v) = theirs {
                    if (!only_missing || ours.is_none()) && ours.as_ref() != Some(v) {
                        *ours = Some(v.clone());
                        changed.push(name.to_string());
                    }
                }
            }
            if mine.primary.is_none() && mine.backup.is_none() {
                self.owner = None;
            }
        }
        changed
    }
}

/// A validated failure report: the packet plus routing facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub severity: Severity,
    #[serde(flatten)]
    pub packet: Packet,
    /// Groups repeated reports of one failure into one handoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Receiving team; filled from the ownership map when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// A synthetic drill: paged on the drill route, kept out of production figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}

/// A report that parsed, with the warnings it earned (truncations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    pub report: Report,
    pub warnings: Vec<String>,
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Whole payload, bytes.
    pub max_report_bytes: usize,
    /// One string field, bytes; longer values are truncated with a warning.
    pub max_field_bytes: usize,
}

const STRING_FIELDS: [&str; 9] = [
    "run_id",
    "workflow_id",
    "objective",
    "failure_class",
    "last_successful_step",
    "failing_step",
    "error_summary",
    "recommended_action",
    "rollback_command",
];

/// Strings that mean "I don't know"; they score as missing.
const PLACEHOLDERS: [&str; 11] = [
    "", "unknown", "n/a", "na", "none", "null", "tbd", "todo", "-", "?", "...",
];

/// True when a value carries no information.
pub fn is_placeholder(s: &str) -> bool {
    let t = s.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&t.as_str())
}

/// True when `s` can be one token of a NATS subject: non-empty, no `.`, `*`,
/// `>` or whitespace, at most 128 bytes.
pub fn is_subject_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
}

/// Cuts `s` to at most `max` bytes on a char boundary; true if it cut.
/// Every string field limit is in bytes and goes through this (report
/// fields here, team-handoff fields in `app::requests`).
pub(crate) fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// Parses and validates a report payload, collecting every field error.
pub fn parse_report(bytes: &[u8], limits: ParseLimits) -> Result<ParsedReport, Vec<FieldError>> {
    if bytes.len() > limits.max_report_bytes {
        return Err(vec![FieldError::new(
            "",
            "too_large",
            format!(
                "report is {} bytes; the limit is {}",
                bytes.len(),
                limits.max_report_bytes
            ),
        )]);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        vec![FieldError::new(
            "",
            "malformed_json",
            format!("not valid JSON: {e}"),
        )]
    })?;
    let Value::Object(obj) = value else {
        return Err(vec![FieldError::new(
            "",
            "not_an_object",
            "a report must be a JSON object",
        )]);
    };
    parse_object(&obj, limits.max_field_bytes, true)
}

/// Parses the fields of a report or of an `enrich` command's partial packet.
/// With `need_severity` false, `severity` is not allowed.
pub fn parse_object(
    obj: &Map<String, Value>,
    max_field_bytes: usize,
    need_severity: bool,
) -> Result<ParsedReport, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut packet = Packet::default();
    let mut severity = None;

    for key in obj.keys() {
        let known = STRING_FIELDS.contains(&key.as_str())
            || matches!(
                key.as_str(),
                "blast_radius" | "owner" | "ttl_seconds" | "dedup_key" | "team"
            )
            || (need_severity && (key == "severity" || key == "drill"));
        if !known {
            errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("`{key}` is not a packet field"),
            ));
        }
    }

    if need_severity {
        match obj.get("severity") {
            None | Some(Value::Null) => errors.push(FieldError::new(
                "severity",
                "missing_field",
                "severity is required: \"P1\", \"P2\" or \"P3\"",
            )),
            Some(Value::String(s)) => match s.parse::<Severity>() {
                Ok(sev) => severity = Some(sev),
                Err(_) => errors.push(FieldError::new(
                    "severity",
                    "invalid_severity",
                    format!("unknown severity {s:?}; expected \"P1\", \"P2\" or \"P3\""),
                )),
            },
            Some(_) => errors.push(FieldError::new(
                "severity",
                "wrong_type",
                "severity must be a string: \"P1\", \"P2\" or \"P3\"",
            )),
        }
    }

    let mut string = |name: &str, errors: &mut Vec<FieldError>| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if is_placeholder(s) => None,
            Some(Value::String(s)) => {
                let mut s = s.trim().to_string();
                if truncate(&mut s, max_field_bytes) {
                    warnings.push(format!(
                        "{name} truncated to {max_field_bytes} bytes: more text is not more context"
                    ));
                }
                Some(s)
            }
            Some(_) => {
                errors.push(FieldError::new(
                    name,
                    "wrong_type",
                    format!("{name} must be a string"),
                ));
                None
            }
        }
    };
    packet.run_id = string("run_id", &mut errors);
    packet.workflow_id = string("workflow_id", &mut errors);
    packet.objective = string("objective", &mut errors);
    packet.failure_class = string("failure_class", &mut errors);
    packet.last_successful_step = string("last_successful_step", &mut errors);
    packet.failing_step = string("failing_step", &mut errors);
    packet.error_summary = string("error_summary", &mut errors);
    packet.recommended_action = string("recommended_action", &mut errors);
    packet.rollback_command = string("rollback_command", &mut errors);
    let dedup_key = string("dedup_key", &mut errors);
    let team = string("team", &mut errors);
    if let Some(t) = &team {
        if !is_subject_token(t) {
            errors.push(FieldError::new(
                "team",
                "invalid_token",
                "team becomes a subject token: no '.', '*', '>' or whitespace, 1-128 bytes",
            ));
        }
    }

    let drill = match obj.get("drill") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(
                "drill",
                "wrong_type",
                "drill must be true or false",
            ));
            false
        }
    };

    match obj.get("ttl_seconds") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 && n <= super::MAX_DURATION.as_secs() => packet.ttl_seconds = Some(n),
            Some(n) if n > 0 => errors.push(FieldError::new(
                "ttl_seconds",
                "out_of_range",
                format!(
                    "ttl_seconds is at most {} (10 years); got {n}",
                    super::MAX_DURATION.as_secs()
                ),
            )),
            _ => errors.push(FieldError::new(
                "ttl_seconds",
                "wrong_type",
                "ttl_seconds must be a positive whole number",
            )),
        },
    }

    match obj.get("blast_radius") {
        None | Some(Value::Null) => {}
        Some(Value::Object(b)) => {
            let mut br = BlastRadius::default();
            for (k, v) in b {
                let slot = match k.as_str() {
                    "users" => &mut br.users,
                    "jobs" => &mut br.jobs,
                    _ => {
                        errors.push(FieldError::new(
                            format!("blast_radius.{k}"),
                            "unknown_field",
                            "blast_radius takes `users` and `jobs`",
                        ));
                        continue;
                    }
                };
                match v {
                    Value::Null => {}
                    v => match v.as_u64() {
                        Some(n) => *slot = Some(n),
                        None => errors.push(FieldError::new(
                            format!("blast_radius.{k}"),
                            "wrong_type",
                            format!("blast_radius.{k} must be a whole number ≥ 0"),
                        )),
                    },
                }
            }
            if br.users.is_some() || br.jobs.is_some() {
                packet.blast_radius = Some(br);
            }
        }
        Some(_) => errors.push(FieldError::new(
            "blast_radius",
            "wrong_type",
            "blast_radius must be an object {\"users\":N,\"jobs\":N}",
        )),
    }

    match obj.get("owner") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            let mut owner = Owner::default();
            for (k, v) in o {
                let slot = match k.as_str() {
                    "primary" => &mut owner.primary,
                    "backup" => &mut owner.backup,
                    _ => {
                        errors.push(FieldError::new(
                            format!("owner.{k}"),
                            "unknown_field",
                            "owner takes `primary` and `backup`",
                        ));
                        continue;
                    }
                };
                match v {
                    Value::Null => {}
                    Value::String(s) if is_placeholder(s) => {}
                    Value::String(s) => {
                        let mut s = s.trim().to_string();
                        truncate(&mut s, max_field_bytes);
                        *slot = Some(s);
                    }
                    _ => errors.push(FieldError::new(
                        format!("owner.{k}"),
                        "wrong_type",
                        format!("owner.{k} must be a string"),
                    )),
                }
            }
            if owner.primary.is_some() || owner.backup.is_some() {
                packet.owner = Some(owner);
            }
        }
        Some(_) => errors.push(FieldError::new(
            "owner",
            "wrong_type",
            "owner must be an object {\"primary\":..,\"backup\":..}",
        )),
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ParsedReport {
        report: Report {
            // Only reachable without a severity when the caller did not ask for one.
            severity: severity.unwrap_or(Severity::P3),
            packet,
            dedup_key,
            team,
            drill,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_report_bytes: 65536,
        max_field_bytes: 64,
    };

    #[test]
    fn collects_every_field_error_at_once() {
        let errs = parse_report(
            br#"{"severity":"P9","ttl_seconds":"soon","owner":"me","rollback_cmd":"x","team":"a.b"}"#,
            LIMITS,
        )
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in ["severity", "ttl_seconds", "owner", "rollback_cmd", "team"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn malformed_and_oversized_payloads_are_named() {
        assert_eq!(
            parse_report(b"{", LIMITS).unwrap_err()[0].code,
            "malformed_json"
        );
        assert_eq!(
            parse_report(b"[1]", LIMITS).unwrap_err()[0].code,
            "not_an_object"
        );
        let big = vec![b' '; 70000];
        assert_eq!(parse_report(&big, LIMITS).unwrap_err()[0].code, "too_large");
        assert_eq!(
            parse_report(br#"{"run_id":"r"}"#, LIMITS).unwrap_err()[0].code,
            "missing_field"
        );
    }

    #[test]
    fn placeholders_count_as_missing_and_long_fields_are_truncated() {
        let long = "x".repeat(100);
        let body = format!(r#"{{"severity":"P2","run_id":"unknown","objective":"{long}"}}"#);
        let parsed = parse_report(body.as_bytes(), LIMITS).unwrap();
        assert_eq!(parsed.report.packet.run_id, None);
        assert_eq!(parsed.report.packet.objective.as_deref().unwrap().len(), 64);
        assert_eq!(parsed.warnings.len(), 1);
    }

    #[test]
    fn merge_fills_only_missing_when_asked() {
        let mut p = Packet {
            run_id: Some("a".into()),
            ..Default::default()
        };
        let other = Packet {
            run_id: Some("b".into()),
            rollback_command: Some("undo".into()),
            ..Default::default()
        };
        assert_eq!(p.merge_from(&other, true), vec!["rollback_command"]);
        assert_eq!(p.run_id.as_deref(), Some("a"));
        assert_eq!(p.merge_from(&other, false), vec!["run_id"]);
    }
}
