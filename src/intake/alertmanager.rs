//! The Alertmanager webhook (payload version 4): one handoff per alert.
//!
//! Each alert of a notification is mapped on its own into a native report
//! whose `dedup_key` is `am:<integration>:<fingerprint>`: the fingerprint is
//! the alert's identity (a hash of its labels), stable across Alertmanager's
//! repeat sends and restarts. The group key is not used: it names the
//! notification's group, and a key derived from it (or from the summary)
//! merges distinct alerts into one handoff. A firing alert becomes a report
//! (a repeat send joins the open handoff and pages nobody); a resolved one
//! resolves that key's current handoff as `alertmanager` (nothing to do if
//! it is already resolved or was never opened).
//!
//! Mapping: the severity label through the integration's map; `team` from
//! the team label; `workflow_id` from the first of the workflow labels
//! present (`job`, then `alertname`); `failure_class` the `alertname`;
//! `run_id` `<fingerprint>@<startsAt>`, one per firing; `error_summary`,
//! `objective`, `recommended_action` (with the runbook link) and
//! `rollback_command` from annotations.
//!
//! Answers follow Alertmanager's retry rule (it retries 5xx and connection
//! errors, never 4xx): 200 when every alert is stored; 503 when JetStream
//! is unavailable (a retry resends the batch; stored alerts then join, so
//! it is idempotent); 4xx for what no retry can fix: a body that is not a
//! v4 notification (400/422), an unknown integration (404), and a batch
//! with refused alerts (422, the other alerts *are* stored: Alertmanager
//! logs the notification as failed, which is how the operator learns, and
//! sends the group again at its next interval, when stored alerts join).
//! Every refusal is recorded on the rejected stream. Unknown and newer
//! fields (`truncatedAlerts`, `notification_reason`, …) are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{bounded, field_budget, fit, Intake};
use crate::app::views::ReportOutcome;
use crate::app::{AppError, Handoffs};
use crate::config::AlertmanagerConfig;
use crate::domain::{DomainError, FieldError, IncidentCommand, ParseLimits};

/// The actor of resolutions sent by Alertmanager.
pub const ACTOR: &str = "alertmanager";

/// The template named on records of bodies for no known integration.
const UNKNOWN_TEMPLATE: &str = "alertmanager";

/// The notification's envelope: only what is read. No
/// `deny_unknown_fields`: Alertmanager adds fields over time.
#[derive(Debug, Deserialize)]
struct Message {
    version: String,
    #[serde(default)]
    alerts: Vec<Value>,
    /// Alerts left out by the receiver's `max_alerts`: never sent at all.
    #[serde(default, rename = "truncatedAlerts")]
    truncated_alerts: u64,
}

/// One alert as Alertmanager sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: String,
}

/// What one alert asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A firing alert: the native report to submit.
    Firing {
        /// Its fingerprint.
        fingerprint: String,
        /// The report payload (JSON), with `dedup_key` set.
        payload: Vec<u8>,
    },
    /// A resolved alert: resolve the handoff of `dedup_key`.
    Resolved {
        /// Its fingerprint.
        fingerprint: String,
        /// `am:<integration>:<fingerprint>`.
        dedup_key: String,
        /// The resolution's note.
        note: String,
    },
}

/// A notification refused as a whole: nothing of it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// 400 (not a notification), 404 (unknown integration), 422 (wrong
    /// version).
    pub status: u16,
    /// The problem's code.
    pub code: &'static str,
    /// What is wrong.
    pub detail: String,
    /// Every reason.
    pub reasons: Vec<FieldError>,
}

/// What became of one alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertResult {
    /// The alert's fingerprint (empty if it had none).
    pub fingerprint: String,
    /// `firing` or `resolved`, as sent.
    pub status: String,
    /// What was done.
    pub outcome: AlertOutcome,
    /// Its handoff, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_id: Option<Uuid>,
    /// The same in words.
    pub message: String,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

/// What became of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    /// Firing: opened a new handoff.
    Opened,
    /// Firing: joined its open handoff (a repeat send; nobody paged).
    Joined,
    /// Firing: a new occurrence after its last handoff was resolved.
    Recurred,
    /// Resolved: its handoff is now resolved.
    Resolved,
    /// Resolved: its handoff already was.
    AlreadyResolved,
    /// Resolved: no handoff has its key; nothing to do.
    Unknown,
    /// Refused for good (recorded on the rejected stream); see `errors`.
    Refused,
    /// Not stored: JetStream is unavailable; a retry can help.
    Unavailable,
}

impl From<ReportOutcome> for AlertOutcome {
    fn from(o: ReportOutcome) -> Self {
        match o {
            ReportOutcome::Opened => AlertOutcome::Opened,
            ReportOutcome::Joined => AlertOutcome::Joined,
            ReportOutcome::Recurred => AlertOutcome::Recurred,
        }
    }
}

/// The answer to a notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AlertmanagerReply)]
pub struct Batch {
    /// The integration.
    pub integration: String,
    /// Each alert, in the order sent.
    pub alerts: Vec<AlertResult>,
}

impl Batch {
    /// The HTTP status, by Alertmanager's retry rule: 503 if a retry can
    /// help (the store was unavailable), 422 if an alert was refused (a
    /// retry cannot help; the rest is stored), else 200.
    pub fn status(&self) -> u16 {
        if self
            .alerts
            .iter()
            .any(|a| a.outcome == AlertOutcome::Unavailable)
        {
            503
        } else if self
            .alerts
            .iter()
            .any(|a| a.outcome == AlertOutcome::Refused)
        {
            422
        } else {
            200
        }
    }
}

/// Parses a notification's envelope; the alerts stay raw so that one bad
/// alert does not refuse the others.
fn parse_message(body: &[u8]) -> Result<Vec<Value>, Refusal> {
    let refuse = |status, code, detail: String| Refusal {
        status,
        code,
        reasons: vec![FieldError::new("", code, detail.clone())],
        detail,
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(400, "malformed_json", format!("not valid JSON: {e}")))?;
    let msg: Message = serde_json::from_value(value).map_err(|e| {
        refuse(
            400,
            "not_a_notification",
            format!("not an Alertmanager webhook notification: {e}"),
        )
    })?;
    if msg.version != "4" {
        return Err(refuse(
            422,
            "unsupported_version",
            format!(
                "webhook payload version {:?}; this receiver reads version \"4\"",
                msg.version
            ),
        ));
    }
    if msg.truncated_alerts > 0 {
        tracing::warn!(
            truncated = msg.truncated_alerts,
            "Alertmanager left alerts out of this notification (webhook max_alerts): they open no handoff"
        );
    }
    Ok(msg.alerts)
}

/// Maps one alert of `integration`. Pure: the same alert always maps to
/// the same report, so repeat sends are the same report again.
pub fn map_alert(
    cfg: &AlertmanagerConfig,
    integration: &str,
    alert: &Value,
    limits: ParseLimits,
) -> Result<Mapped, Vec<FieldError>> {
    let alert: Alert = serde_json::from_value(alert.clone()).map_err(|e| {
        vec![FieldError::new(
            "",
            "not_an_alert",
            format!("not an Alertmanager alert: {e}"),
        )]
    })?;
    let fp = alert.fingerprint.trim();
    if fp.is_empty() || fp.len() > 128 || fp.chars().any(|c| c.is_whitespace()) {
        return Err(vec![FieldError::new(
            "fingerprint",
            "missing_field",
            "an alert needs its `fingerprint` (Alertmanager 0.19 and later send it)",
        )]);
    }
    let dedup_key = format!("am:{integration}:{fp}");
    match alert.status.as_str() {
        "resolved" => {
            let at = alert.ends_at.as_deref().unwrap_or("an unknown time");
            return Ok(Mapped::Resolved {
                fingerprint: fp.to_string(),
                dedup_key,
                note: format!("resolved in Alertmanager at {at}"),
            });
        }
        "firing" => {}
        other => {
            return Err(vec![FieldError::new(
                "status",
                "invalid_value",
                format!("alert status {other:?}; expected \"firing\" or \"resolved\""),
            )])
        }
    }
    let sev_value = alert.labels.get(&cfg.severity_label).map(String::as_str);
    let Some(severity) = cfg.severity(sev_value) else {
        let field = format!("labels.{}", cfg.severity_label);
        let message = match sev_value {
            Some(v) => format!(
                "severity label {v:?} is not in alertmanager.{integration}.severity_map and no default_severity is set"
            ),
            None => format!(
                "the alert has no `{}` label and alertmanager.{integration} sets no default_severity",
                cfg.severity_label
            ),
        };
        return Err(vec![FieldError::new(field, "unmapped_severity", message)]);
    };

    let budget = field_budget(limits);
    let label = |name: &str| alert.labels.get(name).and_then(|v| bounded(v, budget));
    let annotation = |name: &str| alert.annotations.get(name).and_then(|v| bounded(v, budget));
    let mut report = Map::new();
    report.insert("severity".into(), severity.to_string().into());
    report.insert("dedup_key".into(), dedup_key.into());
    let starts = alert.starts_at.as_deref().unwrap_or("");
    report.insert("run_id".into(), format!("{fp}@{starts}").into());
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            report.insert(k.into(), v.into());
        }
    };
    put("team", label(&cfg.team_label));
    put(
        "workflow_id",
        cfg.workflow_labels.iter().find_map(|l| label(l)),
    );
    put("failure_class", label("alertname"));
    put(
        "error_summary",
        cfg.summary_annotations.iter().find_map(|a| annotation(a)),
    );
    put("objective", annotation(&cfg.objective_annotation));
    put("rollback_command", annotation(&cfg.rollback_annotation));
    let action = annotation(&cfg.recommended_action_annotation);
    let runbook = annotation(&cfg.runbook_annotation);
    put(
        "recommended_action",
        match (action, runbook) {
            (Some(a), Some(r)) => bounded(&format!("{a} (runbook: {r})"), budget),
            (None, Some(r)) => Some(format!("follow the runbook: {r}")),
            (a, None) => a,
        },
    );
    Ok(Mapped::Firing {
        fingerprint: fp.to_string(),
        payload: fit(report, limits.max_report_bytes),
    })
}

impl Intake {
    /// Whether `integration` is configured.
    pub fn has_alertmanager(&self, integration: &str) -> bool {
        self.alertmanager.contains_key(integration)
    }

    /// Receives one webhook notification for `integration`: each alert
    /// submitted or resolved in order; refusals recorded on the rejected
    /// stream. Stops at the first unavailable store (the retry resends all).
    pub async fn alertmanager(
        &self,
        app: &Handoffs,
        integration: &str,
        body: &[u8],
    ) -> Result<Batch, Refusal> {
        let Some(cfg) = self.alertmanager.get(integration) else {
            let detail = format!(
                "no Alertmanager integration {integration:?}; configured: {}",
                self.alertmanager
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let refusal = Refusal {
                status: 404,
                code: "unknown_integration",
                reasons: vec![FieldError::new(
                    "integration",
                    "unknown_integration",
                    &detail,
                )],
                detail,
            };
            record(app, UNKNOWN_TEMPLATE, body, &refusal.reasons).await;
            return Err(refusal);
        };
        let alerts = match parse_message(body) {
            Ok(a) => a,
            Err(refusal) => {
                record(app, &cfg.template, body, &refusal.reasons).await;
                return Err(refusal);
            }
        };
        let mut out = Vec::with_capacity(alerts.len());
        for raw in &alerts {
            let result = self.one(app, cfg, integration, raw).await;
            let stop = result.outcome == AlertOutcome::Unavailable;
            out.push(result);
            if stop {
                break;
            }
        }
        Ok(Batch {
            integration: integration.to_string(),
            alerts: out,
        })
    }

    async fn one(
        &self,
        app: &Handoffs,
        cfg: &AlertmanagerConfig,
        integration: &str,
        raw: &Value,
    ) -> AlertResult {
        let status = raw["status"].as_str().unwrap_or("").to_string();
        let fp_of = |raw: &Value| raw["fingerprint"].as_str().unwrap_or("").to_string();
        let mut result = AlertResult {
            fingerprint: fp_of(raw),
            status,
            outcome: AlertOutcome::Unknown,
            handoff_id: None,
            message: String::new(),
            errors: Vec::new(),
        };
        let unavailable = |mut r: AlertResult, e: &AppError| {
            e.log("alertmanager");
            r.outcome = AlertOutcome::Unavailable;
            r.message = e.to_string();
            r
        };
        match map_alert(cfg, integration, raw, app.limits()) {
            Err(reasons) => {
                let bytes = serde_json::to_vec(raw).unwrap_or_default();
                record(app, &cfg.template, &bytes, &reasons).await;
                result.outcome = AlertOutcome::Refused;
                result.message = reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                result.errors = reasons;
                result
            }
            Ok(Mapped::Firing { payload, .. }) => {
                match app.submit_report(&cfg.template, payload.into(), None).await {
                    Ok(a) => {
                        result.outcome = a.outcome.into();
                        result.handoff_id = Some(a.handoff_id);
                        result.message = a.message;
                        result
                    }
                    Err(AppError::InvalidReport(reasons)) => {
                        // Recorded by `submit_report`.
                        result.outcome = AlertOutcome::Refused;
                        result.message = "the mapped report is invalid; see `errors`".into();
                        result.errors = reasons;
                        result
                    }
                    Err(e) => unavailable(result, &e),
                }
            }
            Ok(Mapped::Resolved {
                dedup_key, note, ..
            }) => {
                let cmd = IncidentCommand::Resolve {
                    by: ACTOR.into(),
                    note: Some(note),
                };
                let id = crate::domain::keyed_handoff_id(&cfg.template, &dedup_key);
                match app.command_by_key(&cfg.template, &dedup_key, cmd).await {
                    Ok(Some(reply)) => {
                        let id = reply.handoff.as_ref().map(|h| h.id()).unwrap_or(id);
                        result.outcome = AlertOutcome::Resolved;
                        result.handoff_id = Some(id);
                        result.message = format!("resolved handoff {id}");
                        result
                    }
                    Ok(None) => {
                        tracing::info!(integration, dedup_key, "resolved alert for no handoff");
                        result.outcome = AlertOutcome::Unknown;
                        result.message = "no handoff for this alert: nothing to resolve".into();
                        result
                    }
                    Err(AppError::Domain(DomainError::Resolved)) => {
                        result.outcome = AlertOutcome::AlreadyResolved;
                        result.message = "its handoff is already resolved".into();
                        result
                    }
                    Err(e @ (AppError::Unavailable(_) | AppError::Contended(_))) => {
                        unavailable(result, &e)
                    }
                    Err(e) => {
                        e.log("alertmanager");
                        let reasons = vec![FieldError::new("", e.code(), e.to_string())];
                        let bytes = serde_json::to_vec(raw).unwrap_or_default();
                        record(app, &cfg.template, &bytes, &reasons).await;
                        result.outcome = AlertOutcome::Refused;
                        result.message = e.to_string();
                        result.errors = reasons;
                        result
                    }
                }
            }
        }
    }
}

/// Records a refusal; a record that cannot be stored is logged, and the
/// sender still learns what is wrong.
async fn record(app: &Handoffs, template: &str, payload: &[u8], reasons: &[FieldError]) {
    if let Err(e) = app.record_rejection(template, payload, reasons).await {
        tracing::warn!(error = %e, template, "alertmanager rejection record not stored");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{parse_report, Severity};

    const LIMITS: ParseLimits = ParseLimits {
        max_report_bytes: 65536,
        max_field_bytes: 4096,
    };

    /// A notification as Alertmanager 0.27 sends it, with fields this
    /// receiver does not know.
    fn notification() -> Value {
        json!({
            "receiver": "baton",
            "status": "firing",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "LedgerDown", "job": "billing-sync", "severity": "critical", "team": "payments"},
                "annotations": {"summary": "ledger API timed out", "runbook_url": "https://runbooks/ledger", "objective": "Sync invoices"},
                "startsAt": "2026-11-28T06:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "c4f1a2b3d4e5f607",
                "notification_reason": "new"
            }],
            "groupLabels": {"alertname": "LedgerDown"},
            "commonLabels": {"alertname": "LedgerDown"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}:{alertname=\"LedgerDown\"}",
            "truncatedAlerts": 0,
            "routeLabels": {"x": "y"}
        })
    }

    #[test]
    fn a_firing_alert_with_unknown_fields_maps_to_a_valid_native_report() {
        let body = serde_json::to_vec(&notification()).unwrap();
        let alerts = parse_message(&body).unwrap();
        let cfg = AlertmanagerConfig::default();
        let Mapped::Firing {
            fingerprint,
            payload,
        } = map_alert(&cfg, "prod", &alerts[0], LIMITS).unwrap()
        else {
            panic!("firing")
        };
        assert_eq!(fingerprint, "c4f1a2b3d4e5f607");
        let r = parse_report(&payload, LIMITS).unwrap().report;
        assert_eq!(r.severity, Severity::P1);
        assert_eq!(r.dedup_key.as_deref(), Some("am:prod:c4f1a2b3d4e5f607"));
        assert_eq!(r.team.as_deref(), Some("payments"));
        assert_eq!(r.packet.workflow_id.as_deref(), Some("billing-sync"));
        assert_eq!(r.packet.failure_class.as_deref(), Some("LedgerDown"));
        assert_eq!(r.packet.objective.as_deref(), Some("Sync invoices"));
        assert_eq!(
            r.packet.error_summary.as_deref(),
            Some("ledger API timed out")
        );
        assert_eq!(
            r.packet.recommended_action.as_deref(),
            Some("follow the runbook: https://runbooks/ledger")
        );
        assert_eq!(
            r.packet.run_id.as_deref(),
            Some("c4f1a2b3d4e5f607@2026-11-28T06:00:00Z")
        );
        // Repeat sends are the same report.
        assert_eq!(
            map_alert(&cfg, "prod", &alerts[0], LIMITS).unwrap(),
            map_alert(&cfg, "prod", &alerts[0], LIMITS).unwrap()
        );
    }

    #[test]
    fn a_resolved_alert_resolves_its_fingerprints_key() {
        let mut n = notification();
        n["alerts"][0]["status"] = json!("resolved");
        n["alerts"][0]["endsAt"] = json!("2026-11-28T06:05:00Z");
        let m = map_alert(
            &AlertmanagerConfig::default(),
            "prod",
            &n["alerts"][0],
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            m,
            Mapped::Resolved {
                fingerprint: "c4f1a2b3d4e5f607".into(),
                dedup_key: "am:prod:c4f1a2b3d4e5f607".into(),
                note: "resolved in Alertmanager at 2026-11-28T06:05:00Z".into(),
            }
        );
    }

    #[test]
    fn unmapped_severity_and_missing_fingerprint_are_refused_with_reasons() {
        let n = notification();
        let mut a = n["alerts"][0].clone();
        a["labels"]["severity"] = json!("page");
        let errs = map_alert(&AlertmanagerConfig::default(), "prod", &a, LIMITS).unwrap_err();
        assert_eq!(errs[0].code, "unmapped_severity");
        assert_eq!(errs[0].field, "labels.severity");
        let with_default = AlertmanagerConfig {
            default_severity: Some(Severity::P3),
            ..AlertmanagerConfig::default()
        };
        assert!(map_alert(&with_default, "prod", &a, LIMITS).is_ok());
        a["fingerprint"] = json!("");
        let errs = map_alert(&with_default, "prod", &a, LIMITS).unwrap_err();
        assert_eq!(errs[0].field, "fingerprint");
        assert_eq!(
            map_alert(&with_default, "prod", &json!([1]), LIMITS).unwrap_err()[0].code,
            "not_an_alert"
        );
    }

    #[test]
    fn envelopes_that_no_retry_can_fix_are_refused_as_a_whole() {
        assert_eq!(parse_message(b"{").unwrap_err().status, 400);
        assert_eq!(parse_message(b"[]").unwrap_err().code, "not_a_notification");
        let mut n = notification();
        n["version"] = json!("3");
        let r = parse_message(&serde_json::to_vec(&n).unwrap()).unwrap_err();
        assert_eq!((r.status, r.code), (422, "unsupported_version"));
    }

    #[test]
    fn batch_status_follows_alertmanagers_retry_rule() {
        use AlertOutcome::*;
        let r = |outcome: AlertOutcome| AlertResult {
            fingerprint: "f".into(),
            status: "firing".into(),
            outcome,
            handoff_id: None,
            message: String::new(),
            errors: vec![],
        };
        let b = |o: &[AlertOutcome]| Batch {
            integration: "x".into(),
            alerts: o.iter().map(|o| r(*o)).collect(),
        };
        assert_eq!(
            b(&[Opened, Joined, Resolved, AlreadyResolved]).status(),
            200
        );
        assert_eq!(b(&[Opened, Refused]).status(), 422);
        assert_eq!(b(&[Refused, Unavailable]).status(), 503);
        assert_eq!(b(&[]).status(), 200);
    }
}
