//! A PagerDuty Events API v2 endpoint (`POST /v2/enqueue`): any PagerDuty
//! client pointed at Baton works unchanged.
//!
//! The `routing_key` picks a configured integration (and is all that
//! authenticates the event, as at PagerDuty). `trigger` becomes a native
//! report with `dedup_key` `pd:<integration>:<dedup_key>` (a key is
//! generated and returned when the event has none); `acknowledge` and
//! `resolve` act on that key's current handoff as `pagerduty:<integration>`
//! (an unknown key is accepted and does nothing, as at PagerDuty).
//!
//! Mapping of a trigger: `payload.summary` → `error_summary` (with the
//! `custom_details` left over, bounded); `payload.group` (else the
//! integration's `workflow`) → `workflow_id`; `class` → `failure_class`;
//! `component` on `source` → `failing_step`; links → `recommended_action`;
//! `payload.severity` through the severity map. `custom_details` keys that
//! are packet fields (`run_id`, `objective`, `recommended_action`,
//! `rollback_command`, `owner`, `blast_radius`, …) fill them, so a sender
//! that knows Baton can send a complete packet. `timestamp`, `images`,
//! `client` and `client_url` are checked and not kept.
//!
//! Answers are PagerDuty's: 202 `{"status":"success","message":"Event
//! processed","dedup_key":…}`; 400 `{"status":"invalid event","message":
//! "Event object is invalid","errors":[…]}` for an event that can never be
//! accepted (also for a body over 512 KB, which PagerDuty refuses as an
//! invalid event); 429 over the integration's `rate_limit`; 5xx when
//! JetStream is unavailable (clients retry those).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::rate::Bucket;
use super::{bounded, field_budget, fit, Intake};
use crate::app::{AppError, Handoffs};
use crate::config::{PagerDutyConfig, PD_SEVERITIES};
use crate::domain::{DomainError, FieldError, IncidentCommand, ParseLimits};

/// PagerDuty's limit on an event's size.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// PagerDuty's limit on `dedup_key`.
pub const MAX_DEDUP_KEY: usize = 255;

/// PagerDuty's limit on `payload.summary` (longer ones are cut, as there).
pub const MAX_SUMMARY: usize = 1024;

/// What the event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open (or join) the handoff of the dedup key.
    Trigger,
    /// Acknowledge it.
    Acknowledge,
    /// Resolve it.
    Resolve,
}

/// A checked event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `trigger`, `acknowledge` or `resolve`.
    pub action: Action,
    /// As sent (trimmed); required unless `trigger`.
    pub dedup_key: Option<String>,
    /// `payload` (required for `trigger`).
    pub payload: Map<String, Value>,
    /// `links`.
    pub links: Vec<Value>,
}

/// The answer, in PagerDuty's shape.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = PagerDutyResponse)]
pub struct Response {
    /// HTTP status (not serialized).
    #[serde(skip)]
    pub http: u16,
    /// `success`, `invalid event`, `throttle event` or `unavailable`.
    pub status: String,
    /// `Event processed`, `Event object is invalid`, …
    pub message: String,
    /// The event's dedup key (generated for a trigger without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Every problem of an invalid event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Response {
    /// 202 `success`.
    pub fn success(dedup_key: String) -> Self {
        Self {
            http: 202,
            status: "success".into(),
            message: "Event processed".into(),
            dedup_key: Some(dedup_key),
            errors: Vec::new(),
        }
    }

    /// 400 `invalid event`.
    pub fn invalid(errors: Vec<String>) -> Self {
        Self {
            http: 400,
            status: "invalid event".into(),
            message: "Event object is invalid".into(),
            dedup_key: None,
            errors,
        }
    }

    /// 429 `throttle event`.
    pub fn throttled() -> Self {
        Self {
            http: 429,
            status: "throttle event".into(),
            message: "Requests for this service are arriving too quickly. Please retry later."
                .into(),
            dedup_key: None,
            errors: Vec::new(),
        }
    }

    /// 503: the store is unavailable; clients retry 5xx.
    pub fn unavailable() -> Self {
        Self {
            http: 503,
            status: "unavailable".into(),
            message: "The event store is unavailable. Please retry later.".into(),
            dedup_key: None,
            errors: Vec::new(),
        }
    }
}

/// The configured integrations, with their rate budgets.
pub(super) struct Integrations {
    all: Vec<(String, PagerDutyConfig)>,
    budgets: Mutex<BTreeMap<String, Bucket>>,
}

impl Integrations {
    pub(super) fn new(cfg: BTreeMap<String, PagerDutyConfig>) -> Self {
        Self {
            all: cfg.into_iter().collect(),
            budgets: Mutex::new(BTreeMap::new()),
        }
    }

    /// The integration whose routing key is `key`. The key is a credential:
    /// compared in constant time against every configured one, as
    /// `http::auth` compares bearer tokens, so timing tells nothing.
    fn find(&self, key: &str) -> Option<&(String, PagerDutyConfig)> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for entry in &self.all {
            if bool::from(entry.1.routing_key.as_bytes().ct_eq(key.as_bytes())) {
                found = Some(entry);
            }
        }
        found
    }
}

/// The event's routing key, when it has a usable one.
pub fn routing_key(body: &Value) -> Result<&str, Response> {
    match body.get("routing_key") {
        Some(Value::String(k)) if !k.trim().is_empty() => Ok(k.trim()),
        _ => Err(Response::invalid(vec![
            "'routing_key' is missing or blank".into()
        ])),
    }
}

/// Parses the body far enough to find the routing key: size, JSON, object.
pub fn parse_body(body: &[u8]) -> Result<Value, Response> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(Response::invalid(vec![format!(
            "Event payload is {} bytes; the limit is {MAX_EVENT_BYTES} (512 KB)",
            body.len()
        )]));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Response::invalid(
            vec!["Event must be a JSON object".into()],
        )),
        Err(_) => Err(Response::invalid(vec!["Malformed JSON".into()])),
    }
}

/// Checks an event as PagerDuty does, collecting every problem.
pub fn check_event(body: &Value) -> Result<Event, Vec<String>> {
    let mut errors = Vec::new();
    let action = match body.get("event_action").and_then(Value::as_str) {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        None => {
            errors.push("'event_action' is missing or blank".into());
            None
        }
        Some(_) => {
            errors.push(
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
                    .into(),
            );
            None
        }
    };
    let dedup_key = match body.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.trim().is_empty() => None,
        Some(Value::String(k)) if k.chars().count() > MAX_DEDUP_KEY => {
            errors.push(format!(
                "'dedup_key' is too long (maximum length is {MAX_DEDUP_KEY} characters)"
            ));
            None
        }
        Some(Value::String(k)) => Some(k.trim().to_string()),
        Some(_) => {
            errors.push("'dedup_key' must be a string".into());
            None
        }
    };
    if dedup_key.is_none()
        && matches!(action, Some(Action::Acknowledge | Action::Resolve))
        && !errors.iter().any(|e| e.starts_with("'dedup_key'"))
    {
        errors.push("'dedup_key' is missing or blank".into());
    }
    let payload = match body.get("payload") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            errors.push("'payload' must be an object".into());
            Map::new()
        }
    };
    if action == Some(Action::Trigger) {
        for f in ["summary", "source"] {
            match payload.get(f) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    errors.push(format!("'payload.{f}' is missing or blank"))
                }
                Some(_) => errors.push(format!("'payload.{f}' must be a string")),
            }
        }
        match payload.get("severity") {
            Some(Value::String(s)) if PD_SEVERITIES.contains(&s.as_str()) => {}
            None | Some(Value::Null) => errors.push("'payload.severity' is missing or blank".into()),
            Some(_) => errors.push(
                "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"
                    .into(),
            ),
        }
        for f in ["timestamp", "component", "group", "class"] {
            if !matches!(payload.get(f), None | Some(Value::Null | Value::String(_))) {
                errors.push(format!("'payload.{f}' must be a string"));
            }
        }
    }
    for (f, inner) in [("links", "href"), ("images", "src")] {
        match body.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items
                    .iter()
                    .any(|i| !i.get(inner).is_some_and(Value::is_string))
                {
                    errors.push(format!("each of '{f}' needs a string '{inner}'"));
                }
            }
            Some(_) => errors.push(format!("'{f}' must be an array")),
        }
    }
    match (action, errors.is_empty()) {
        (Some(action), true) => Ok(Event {
            action,
            dedup_key,
            payload,
            links: body
                .get("links")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }),
        _ => Err(errors),
    }
}

/// The packet fields a `custom_details` object may fill directly.
const PACKET_STRINGS: [&str; 9] = [
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

/// Maps a trigger of integration `name` into a native report payload with
/// dedup key `pd:<name>:<dedup_key>`. Pure.
pub fn map_trigger(
    cfg: &PagerDutyConfig,
    name: &str,
    event: &Event,
    dedup_key: &str,
    limits: ParseLimits,
) -> Vec<u8> {
    let budget = field_budget(limits);
    let p = &event.payload;
    let text = |f: &str| {
        p.get(f)
            .and_then(Value::as_str)
            .and_then(|s| bounded(s, budget))
    };
    let severity = p
        .get("severity")
        .and_then(Value::as_str)
        .and_then(|s| cfg.severity(s))
        .expect("checked: one of PagerDuty's severities");
    let mut report = Map::new();
    report.insert("severity".into(), severity.to_string().into());
    report.insert("dedup_key".into(), format!("pd:{name}:{dedup_key}").into());
    if let Some(t) = &cfg.team {
        report.insert("team".into(), t.clone().into());
    }
    let put = |report: &mut Map<String, Value>, k: &str, v: Option<String>| {
        if let Some(v) = v {
            report.insert(k.into(), v.into());
        }
    };
    put(
        &mut report,
        "workflow_id",
        text("group").or_else(|| cfg.workflow.clone()),
    );
    put(&mut report, "failure_class", text("class"));
    let source = text("source");
    put(
        &mut report,
        "failing_step",
        match (text("component"), &source) {
            (Some(c), Some(s)) => Some(format!("{c} on {s}")),
            (c, s) => c.or(s.clone()),
        },
    );
    let links: Vec<String> = event
        .links
        .iter()
        .filter_map(|l| {
            let href = l.get("href")?.as_str()?;
            Some(match l.get("text").and_then(Value::as_str) {
                Some(t) => format!("{t}: {href}"),
                None => href.to_string(),
            })
        })
        .collect();
    if !links.is_empty() {
        put(
            &mut report,
            "recommended_action",
            bounded(&format!("see {}", links.join("; ")), budget),
        );
    }
    // custom_details: packet fields fill the packet (and win), the rest is
    // context appended to the summary.
    let mut rest = Map::new();
    match p.get("custom_details") {
        Some(Value::Object(details)) => {
            for (k, v) in details {
                match (k.as_str(), v) {
                    (k, Value::String(s)) if PACKET_STRINGS.contains(&k) => {
                        put(&mut report, k, bounded(s, budget))
                    }
                    ("owner", Value::Object(o)) => {
                        let o: Map<String, Value> = ["primary", "backup"]
                            .into_iter()
                            .filter_map(|f| {
                                let s = bounded(o.get(f)?.as_str()?, budget)?;
                                Some((f.to_string(), Value::String(s)))
                            })
                            .collect();
                        report.insert("owner".into(), o.into());
                    }
                    ("blast_radius", Value::Object(b)) => {
                        let b: Map<String, Value> = ["users", "jobs"]
                            .into_iter()
                            .filter_map(|f| Some((f.to_string(), b.get(f)?.as_u64()?.into())))
                            .collect();
                        report.insert("blast_radius".into(), b.into());
                    }
                    _ => {
                        rest.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => {
            rest.insert("custom_details".into(), other.clone());
        }
    }
    let summary = text("summary")
        .and_then(|s| bounded(&s, MAX_SUMMARY))
        .unwrap_or_default();
    let summary = if report.contains_key("error_summary") {
        None
    } else if rest.is_empty() {
        Some(summary)
    } else {
        bounded(
            &format!("{summary} | details: {}", Value::Object(rest)),
            budget,
        )
    };
    put(&mut report, "error_summary", summary);
    fit(report, limits.max_report_bytes)
}

impl Intake {
    /// Handles one `POST /v2/enqueue` body.
    pub async fn pagerduty(&self, app: &Handoffs, body: &[u8], now: Instant) -> Response {
        let value = match parse_body(body) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let key = match routing_key(&value) {
            Ok(k) => k,
            Err(r) => return r,
        };
        // Unauthenticated callers are answered, never recorded.
        let Some((name, cfg)) = self.pagerduty.find(key) else {
            tracing::info!("pagerduty event with an unknown routing key");
            return Response::invalid(vec!["'routing_key' is invalid".into()]);
        };
        let allowed = {
            let mut budgets = self
                .pagerduty
                .budgets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            budgets
                .entry(name.clone())
                .or_insert_with(Bucket::new)
                .take(now, cfg.rate_limit)
        };
        if !allowed {
            tracing::info!(integration = %name, "pagerduty event over rate_limit");
            return Response::throttled();
        }
        let event = match check_event(&value) {
            Ok(e) => e,
            Err(errors) => {
                let reasons: Vec<FieldError> = errors
                    .iter()
                    .map(|e| FieldError::new("", "invalid_event", e))
                    .collect();
                if let Err(e) = app.record_rejection(&cfg.template, body, &reasons).await {
                    tracing::warn!(error = %e, "pagerduty rejection record not stored");
                }
                return Response::invalid(errors);
            }
        };
        let actor = format!("pagerduty:{name}");
        match event.action {
            Action::Trigger => {
                let dedup_key = event
                    .dedup_key
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
                let payload = map_trigger(cfg, name, &event, &dedup_key, app.limits());
                match app.submit_report(&cfg.template, payload.into(), None).await {
                    Ok(a) => {
                        tracing::info!(integration = %name, handoff_id = %a.handoff_id, outcome = ?a.outcome, "pagerduty trigger");
                        Response::success(dedup_key)
                    }
                    // Recorded by `submit_report`.
                    Err(AppError::InvalidReport(reasons)) => Response::invalid(
                        reasons
                            .iter()
                            .map(|r| format!("'{}' {}", r.field, r.message))
                            .collect(),
                    ),
                    Err(e) => {
                        e.log("pagerduty");
                        Response::unavailable()
                    }
                }
            }
            Action::Acknowledge | Action::Resolve => {
                let dedup_key = event.dedup_key.clone().expect("checked");
                let cmd = if event.action == Action::Acknowledge {
                    IncidentCommand::Acknowledge { by: actor }
                } else {
                    IncidentCommand::Resolve {
                        by: actor,
                        note: Some("resolved through the PagerDuty Events API".into()),
                    }
                };
                let key = format!("pd:{name}:{dedup_key}");
                match app.command_by_key(&cfg.template, &key, cmd).await {
                    Ok(Some(_)) => Response::success(dedup_key),
                    Ok(None) => {
                        tracing::info!(integration = %name, dedup_key, action = ?event.action, "pagerduty event for an unknown dedup key: nothing to do");
                        Response::success(dedup_key)
                    }
                    Err(e @ (AppError::Unavailable(_) | AppError::Contended(_))) => {
                        e.log("pagerduty");
                        Response::unavailable()
                    }
                    // Already acknowledged or resolved: PagerDuty accepts
                    // the event and changes nothing.
                    Err(AppError::Domain(
                        DomainError::Resolved | DomainError::AlreadyAcknowledged { .. },
                    )) => Response::success(dedup_key),
                    Err(e) => {
                        tracing::warn!(integration = %name, dedup_key, code = e.code(), error = %e, "pagerduty event changed nothing");
                        Response::success(dedup_key)
                    }
                }
            }
        }
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
    const KEY: &str = "R0123456789abcdef0123456789abcde";

    fn cfg() -> PagerDutyConfig {
        PagerDutyConfig {
            routing_key: KEY.into(),
            team: Some("payments".into()),
            ..PagerDutyConfig::default()
        }
    }

    /// PagerDuty's documented trigger example.
    fn trigger() -> Value {
        json!({
          "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "severity": "critical",
            "source": "prod-datapipe03.example.com",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {
              "free space": "1%",
              "ping time": "1500ms",
              "load avg": 0.75
            }
          },
          "routing_key": KEY,
          "dedup_key": "samplekeyhere",
          "images": [{
            "src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png",
            "href": "https://example.com/",
            "alt": "Example text"
          }],
          "links": [{"href": "https://example.com/", "text": "Link text"}],
          "event_action": "trigger",
          "client": "Sample Monitoring Service",
          "client_url": "https://monitoring.service.com"
        })
    }

    #[test]
    fn the_documented_trigger_maps_to_a_valid_native_report() {
        let body = trigger();
        assert_eq!(routing_key(&body).unwrap(), KEY);
        let event = check_event(&body).unwrap();
        assert_eq!(event.action, Action::Trigger);
        let payload = map_trigger(&cfg(), "ops", &event, "samplekeyhere", LIMITS);
        let r = parse_report(&payload, LIMITS).unwrap().report;
        assert_eq!(r.severity, Severity::P1);
        assert_eq!(r.dedup_key.as_deref(), Some("pd:ops:samplekeyhere"));
        assert_eq!(r.team.as_deref(), Some("payments"));
        assert_eq!(r.packet.workflow_id.as_deref(), Some("prod-datapipe"));
        assert_eq!(r.packet.failure_class.as_deref(), Some("disk"));
        assert_eq!(
            r.packet.failing_step.as_deref(),
            Some("mysql on prod-datapipe03.example.com")
        );
        assert_eq!(
            r.packet.recommended_action.as_deref(),
            Some("see Link text: https://example.com/")
        );
        let summary = r.packet.error_summary.unwrap();
        assert!(
            summary.starts_with("DISK at 99% on machine prod-datapipe03.example.com | details: ")
                && summary.contains("\"free space\":\"1%\""),
            "{summary}"
        );
    }

    #[test]
    fn custom_details_with_packet_fields_fill_the_packet() {
        let mut body = trigger();
        body["payload"]["custom_details"] = json!({
            "run_id": "run-7", "objective": "Nightly ledger sync",
            "owner": {"primary": "alice", "extra": 1}, "blast_radius": {"users": 10, "jobs": "x"}
        });
        let event = check_event(&body).unwrap();
        let r = parse_report(&map_trigger(&cfg(), "ops", &event, "k", LIMITS), LIMITS)
            .unwrap()
            .report;
        assert_eq!(r.packet.run_id.as_deref(), Some("run-7"));
        assert_eq!(r.packet.primary(), Some("alice"));
        assert_eq!(r.packet.blast_radius.unwrap().users, Some(10));
        assert_eq!(
            r.packet.error_summary.as_deref(),
            Some("DISK at 99% on machine prod-datapipe03.example.com")
        );
    }

    #[test]
    fn the_documented_acknowledge_and_resolve_bodies_check() {
        for (action, want) in [
            ("acknowledge", Action::Acknowledge),
            ("resolve", Action::Resolve),
        ] {
            let body =
                json!({"routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": action});
            let e = check_event(&body).unwrap();
            assert_eq!(
                (e.action, e.dedup_key.as_deref()),
                (want, Some("samplekeyhere"))
            );
            let body = json!({"routing_key": KEY, "event_action": action});
            assert_eq!(
                check_event(&body).unwrap_err(),
                vec!["'dedup_key' is missing or blank"]
            );
        }
    }

    #[test]
    fn invalid_events_get_every_error_in_pagerdutys_words() {
        let mut body = trigger();
        body["payload"]["severity"] = json!("fatal");
        body["payload"].as_object_mut().unwrap().remove("summary");
        body["dedup_key"] = json!("k".repeat(256));
        let errors = check_event(&body).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.starts_with("'payload.severity' is invalid")));
        assert!(errors.contains(&"'payload.summary' is missing or blank".to_string()));
        assert!(errors
            .iter()
            .any(|e| e.starts_with("'dedup_key' is too long")));
        let mut body = trigger();
        body["event_action"] = json!("escalate");
        assert!(check_event(&body).unwrap_err()[0].starts_with("'event_action' is invalid"));

        let mut body = trigger();
        body.as_object_mut().unwrap().remove("routing_key");
        let r = routing_key(&body).unwrap_err();
        assert_eq!((r.http, r.status.as_str()), (400, "invalid event"));
        assert_eq!(r.errors, vec!["'routing_key' is missing or blank"]);
        let shown = serde_json::to_value(&r).unwrap();
        assert_eq!(
            shown,
            json!({"status": "invalid event", "message": "Event object is invalid",
                   "errors": ["'routing_key' is missing or blank"]})
        );
    }

    #[test]
    fn bodies_over_512_kb_and_non_json_are_invalid_events() {
        let mut body = trigger();
        body["payload"]["custom_details"] = json!({"blob": "x".repeat(MAX_EVENT_BYTES)});
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = parse_body(&bytes).unwrap_err();
        assert_eq!(r.http, 400);
        assert!(r.errors[0].contains("512 KB"), "{:?}", r.errors);
        assert_eq!(
            parse_body(b"nope").unwrap_err().errors,
            vec!["Malformed JSON"]
        );
        assert_eq!(parse_body(b"[]").unwrap_err().http, 400);
        // Just under the limit is read, and its report still fits.
        body["payload"]["custom_details"] = json!({"blob": "\u{1}".repeat(80_000)});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(bytes.len() <= MAX_EVENT_BYTES);
        let event = check_event(&parse_body(&bytes).unwrap()).unwrap();
        let payload = map_trigger(&cfg(), "ops", &event, "k", LIMITS);
        assert!(parse_report(&payload, LIMITS).is_ok());
    }

    #[test]
    fn the_success_body_is_pagerdutys() {
        assert_eq!(
            serde_json::to_value(Response::success("abc".into())).unwrap(),
            json!({"status": "success", "message": "Event processed", "dedup_key": "abc"})
        );
    }
}
