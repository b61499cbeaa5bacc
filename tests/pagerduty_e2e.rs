//! The PagerDuty Events API v2 endpoint over a real socket, against a
//! daemon on its own nats-server: PagerDuty's documented trigger,
//! acknowledge and resolve bodies, no bearer token (the routing key is the
//! credential), PagerDuty's error bodies, the 512 KB limit and 429.

mod common;
#[path = "support/http.rs"]
mod http;

use std::net::SocketAddr;

use baton::config::PagerDutyConfig;
use baton::domain::{keyed_handoff_id, occurrence_id, Severity};
use common::*;
use serde_json::{json, Value};

const KEY: &str = "R015ABCDEF0123456789abcdef01234a";
const TIGHT_KEY: &str = "R015ABCDEF0123456789abcdef01234b";

async fn enqueue(addr: SocketAddr, body: &Value) -> (u16, Value) {
    http::json(addr, "POST", "/v2/enqueue", &[], Some(body)).await
}

fn trigger(dedup_key: Option<&str>) -> Value {
    let mut v = json!({
      "payload": {
        "summary": "DISK at 99% on machine prod-datapipe03.example.com",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "severity": "warning",
        "source": "prod-datapipe03.example.com",
        "component": "mysql",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75}
      },
      "routing_key": KEY,
      "images": [{"src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png",
                  "href": "https://example.com/", "alt": "Example text"}],
      "links": [{"href": "https://example.com/", "text": "Link text"}],
      "event_action": "trigger",
      "client": "Sample Monitoring Service",
      "client_url": "https://monitoring.service.com"
    });
    if let Some(k) = dedup_key {
        v["dedup_key"] = json!(k);
    }
    v
}

async fn status_of(addr: SocketAddr, id: uuid::Uuid) -> Value {
    http::json(addr, "GET", &format!("/v1/handoffs/{id}"), &[], None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_clients_trigger_acknowledge_and_resolve_unchanged() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec!["pd-e2e-token-0123456789".into()];
    // Page every P2 at once: this test is about the intake, not the gate.
    cfg.severity.get_mut(&Severity::P2).unwrap().min_hcs = Some(0.0);
    cfg.pagerduty.insert(
        "ops".into(),
        PagerDutyConfig {
            routing_key: KEY.into(),
            team: Some("data".into()),
            ..PagerDutyConfig::default()
        },
    );
    cfg.pagerduty.insert(
        "tight".into(),
        PagerDutyConfig {
            routing_key: TIGHT_KEY.into(),
            rate_limit: 2,
            ..PagerDutyConfig::default()
        },
    );
    cfg.validate().unwrap();
    let daemon = Daemon::start(cfg).await;
    let addr = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let (_, js) = nats.client().await;

    // Trigger: PagerDuty's exact success body; the handoff opens and pages.
    let (status, body) = enqueue(addr, &trigger(Some("samplekeyhere"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "samplekeyhere"})
    );
    let id = keyed_handoff_id("agent_failure", "pd:ops:samplekeyhere");
    eventually("the trigger is paged", || async {
        (status_of(addr, id).await["status"] == "paged").then_some(())
    })
    .await;
    let h = status_of(addr, id).await;
    assert_eq!(h["team"], "data", "{h}");
    assert_eq!(h["severity"], "P2");
    let paged = pages_of(&js, id).await.len();
    assert!(paged >= 1);

    // The same trigger again joins: recorded, nobody paged anew.
    assert_eq!(enqueue(addr, &trigger(Some("samplekeyhere"))).await.0, 202);
    eventually("the repeat is recorded", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"reported_again")
            .then_some(())
    })
    .await;
    assert_eq!(pages_of(&js, id).await.len(), paged);

    // No dedup_key: one is generated and returned.
    let (status, body) = enqueue(addr, &trigger(None)).await;
    assert_eq!(status, 202, "{body}");
    let generated = body["dedup_key"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "{body}");

    // Acknowledge and resolve, PagerDuty's documented bodies, under both paths.
    let ack =
        json!({"routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": "acknowledge"});
    let (status, body) = enqueue(addr, &ack).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &json!("success")),
        "{body}"
    );
    eventually("acknowledged", || async {
        (status_of(addr, id).await["status"] == "acknowledged").then_some(())
    })
    .await;
    assert_eq!(
        enqueue(addr, &ack).await.0,
        202,
        "a second ack changes nothing"
    );
    let resolve =
        json!({"routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": "resolve"});
    let (status, body) =
        http::json(addr, "POST", "/v1/pagerduty/enqueue", &[], Some(&resolve)).await;
    assert_eq!(status, 202, "{body}");
    eventually("resolved", || async {
        (status_of(addr, id).await["status"] == "resolved").then_some(())
    })
    .await;
    let events = events_of(&js, id).await;
    let actor = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind() == kind)
            .map(|e| e.actor.clone())
    };
    assert_eq!(actor("acknowledged").as_deref(), Some("pagerduty:ops"));
    assert_eq!(actor("resolved").as_deref(), Some("pagerduty:ops"));
    assert_eq!(
        enqueue(addr, &resolve).await.0,
        202,
        "resolving twice is fine"
    );
    // Triggered again after the resolve: a new occurrence, paged anew.
    assert_eq!(enqueue(addr, &trigger(Some("samplekeyhere"))).await.0, 202);
    let second = occurrence_id("agent_failure", "pd:ops:samplekeyhere", 2);
    eventually("the second occurrence is paged", || async {
        (status_of(addr, second).await["status"] == "paged").then_some(())
    })
    .await;
    // Acknowledge and resolve act on the current occurrence.
    assert_eq!(enqueue(addr, &resolve).await.0, 202);
    eventually("the second occurrence is resolved", || async {
        (status_of(addr, second).await["status"] == "resolved").then_some(())
    })
    .await;
    // An unknown key: accepted, nothing to do (as at PagerDuty).
    let unknown = json!({"routing_key": KEY, "dedup_key": "never-seen", "event_action": "resolve"});
    assert_eq!(enqueue(addr, &unknown).await.0, 202);

    // PagerDuty's error bodies.
    let invalid = |errors: Value| json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
    let mut no_key = trigger(None);
    no_key.as_object_mut().unwrap().remove("routing_key");
    assert_eq!(
        enqueue(addr, &no_key).await,
        (400, invalid(json!(["'routing_key' is missing or blank"])))
    );
    let mut wrong_key = trigger(None);
    wrong_key["routing_key"] = json!("R015ABCDEF0123456789abcdef01234z");
    assert_eq!(
        enqueue(addr, &wrong_key).await,
        (400, invalid(json!(["'routing_key' is invalid"])))
    );
    let mut bad = trigger(None);
    bad["payload"]["severity"] = json!("fatal");
    bad["payload"]["source"] = json!("");
    let (status, body) = enqueue(addr, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["errors"][1]
        .as_str()
        .unwrap()
        .starts_with("'payload.severity' is invalid"));
    let mut huge = trigger(None);
    huge["payload"]["custom_details"] = json!({"blob": "x".repeat(512 * 1024)});
    let (status, body) = enqueue(addr, &huge).await;
    assert_eq!(
        (status, &body["status"]),
        (400, &json!("invalid event")),
        "{body}"
    );
    let r = http::send(addr, "POST", "/v2/enqueue", &[], b"{not json").await;
    assert_eq!(r.status, 400);
    // The invalid trigger from a known key is recorded as rejected.
    eventually("the invalid event is recorded", || async {
        let rejected = stream_json(&js, "BATON_REJECTED").await;
        rejected
            .iter()
            .any(|(_, r)| r["payload"]["payload"]["severity"] == "fatal")
            .then_some(())
    })
    .await;

    // Over the rate: 429, PagerDuty's throttle body.
    let mut tight = trigger(Some("t"));
    tight["routing_key"] = json!(TIGHT_KEY);
    assert_eq!(enqueue(addr, &tight).await.0, 202);
    assert_eq!(enqueue(addr, &tight).await.0, 202);
    let r = http::send(
        addr,
        "POST",
        "/v2/enqueue",
        &[],
        &serde_json::to_vec(&tight).unwrap(),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["status"], "throttle event");
    assert!(r.head.contains("retry-after:"));
    // Another key's budget is its own.
    assert_eq!(enqueue(addr, &ack).await.0, 202);

    // The routes are documented.
    let (_, doc) = http::json(addr, "GET", "/openapi.json", &[], None).await;
    for p in [
        "/v2/enqueue",
        "/v1/pagerduty/enqueue",
        "/v1/alertmanager/{integration}",
    ] {
        assert!(doc["paths"][p]["post"].is_object(), "{p}");
    }
    daemon.stop().await.unwrap();
}
