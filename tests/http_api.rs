//! The HTTP API driven through `router(state)` with `oneshot` (no socket),
//! against a real daemon on its own nats-server: every endpoint, every
//! error shape, auth, limits, and the OpenAPI document.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use baton::config::Config;
use baton::http::router;
use baton::server::Shared;
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

const TOKEN: &str = "test-token-0123456789";

fn cfg_with_token(url: &str) -> Config {
    let mut cfg = config(url);
    cfg.http.tokens = vec![TOKEN.into()];
    cfg
}

/// The same daemon's router with a changed config (auth and limits are
/// read from it when the router is built).
fn router_with(shared: &Shared, change: impl FnOnce(&mut Config)) -> Router {
    let mut cfg = (*shared.cfg).clone();
    change(&mut cfg);
    router(
        Shared {
            cfg: Arc::new(cfg),
            ..shared.clone()
        }
        .app_state(),
    )
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts an RFC 9457 problem with this status and code.
    fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.content_type, "application/problem+json");
        let p = self.json();
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(p["type"], format!("urn:baton:problem:{code}"));
        assert_eq!(p["status"], status);
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()));
        p
    }
}

async fn call(app: &Router, method: Method, uri: &str, token: Option<&str>, body: Body) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri, None, Body::empty()).await
}

async fn post(app: &Router, uri: &str, body: Value) -> Reply {
    let body = Body::from(serde_json::to_vec(&body).unwrap());
    call(app, Method::POST, uri, Some(TOKEN), body).await
}

async fn post_report(app: &Router, payload: &[u8]) -> Reply {
    call(
        app,
        Method::POST,
        "/v1/reports/agent_failure",
        Some(TOKEN),
        Body::from(payload.to_vec()),
    )
    .await
}

/// Waits until the handoff is visible with `status`.
async fn wait_status(app: &Router, id: &str, status: &str) -> Value {
    eventually(&format!("{id} {status}"), || async {
        let r = get(app, &format!("/v1/handoffs/{id}")).await;
        (r.status == StatusCode::OK && r.json()["status"] == status).then(|| r.json())
    })
    .await
}

fn p2(run: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&p1(run)).unwrap();
    v["severity"] = json!("P2");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_openapi_are_open_and_readyz_says_why_it_is_not_ready() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let shared = daemon.shared().clone();
    let app = router(shared.app_state());

    let r = get(&app, "/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok\n"));
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = get(&app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    assert!(
        r.text().contains("baton_overdue_deadlines 0"),
        "{}",
        r.text()
    );
    let r = get(&app, "/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["info"]["title"], "Baton");

    // Even with protected reads, the probes and the scrape stay open.
    let closed = router_with(&shared, |c| c.http.protect_reads = true);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(get(&closed, path).await.status, StatusCode::OK, "{path}");
    }

    // Not caught up yet: 503 with the reason.
    let (_tx, not_caught_up) = tokio::sync::watch::channel(false);
    let replaying = router(
        Shared {
            ready: not_caught_up,
            ..shared.clone()
        }
        .app_state(),
    );
    let p = get(&replaying, "/readyz").await.problem(503, "not_ready");
    assert!(p["detail"].as_str().unwrap().contains("replaying"), "{p}");
    // A commit from a newer Baton met by the page publisher (R1): not ready.
    let metrics = Arc::new(baton::metrics::Metrics::new());
    metrics
        .undecodable_commits_total
        .with_label_values(&["newer_version"])
        .inc();
    let outdated = router(
        Shared {
            metrics,
            ..shared.clone()
        }
        .app_state(),
    );
    let p = get(&outdated, "/readyz").await.problem(503, "not_ready");
    assert!(p["detail"].as_str().unwrap().contains("newer Baton"), "{p}");
    // Streams missing (another prefix names streams that do not exist).
    let elsewhere = router_with(&shared, |c| c.nats.prefix = "nowhere".into());
    let p = get(&elsewhere, "/readyz").await.problem(503, "not_ready");
    assert!(
        p["detail"].as_str().unwrap().contains("NOWHERE_EVENTS"),
        "{p}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_every_listed_operation_is_served() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let doc = get(&app, "/openapi.json").await.json();
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    listed.sort();
    let mut expected = vec![
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /v1/handoffs",
        "GET /v1/handoffs/{id}",
        "GET /v1/handoffs/{id}/events",
        "POST /v1/handoffs/{id}/ack",
        "POST /v1/handoffs/{id}/override",
        "POST /v1/handoffs/{id}/enrich",
        "POST /v1/handoffs/{id}/resolve",
        "POST /v1/handoffs",
        "POST /v1/handoffs/{id}/accept",
        "POST /v1/handoffs/{id}/check",
        "POST /v1/handoffs/{id}/complete",
        "POST /v1/handoffs/{id}/return",
        "POST /v1/handoffs/{id}/resubmit",
        "POST /v1/handoffs/{id}/cancel",
        "POST /v1/handoffs/{id}/rate",
        "POST /v1/reports/{template}",
        "POST /v1/alertmanager/{integration}",
        "POST /v2/enqueue",
        "POST /v1/pagerduty/enqueue",
        "POST /v1/heartbeats/{name}",
        "POST /v1/heartbeats/{name}/start",
        "POST /v1/heartbeats/{name}/fail",
        "GET /v1/stats",
        "GET /a/{token}",
        "POST /a/{token}",
        "GET /v1/people/{id}",
        "GET /v1/oncall",
        "POST /v1/oncall/overrides",
        "DELETE /v1/oncall/overrides/{id}",
    ];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    // Every documented operation is routed: none falls through to the
    // router's own 404/405.
    let id = Uuid::now_v7().to_string();
    for op in &listed {
        let (method, path) = op.split_once(' ').unwrap();
        let uri = path
            .replace("{id}", &id)
            .replace("{template}", "agent_failure");
        let r = call(
            &app,
            method.parse().unwrap(),
            &uri,
            Some(TOKEN),
            Body::from("{}"),
        )
        .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{op}");
        if r.content_type == "application/problem+json" {
            assert_ne!(r.json()["code"], "no_route", "{op}");
        }
    }
    get(&app, "/v2/nothing").await.problem(404, "no_route");
    call(
        &app,
        Method::DELETE,
        "/v1/stats",
        Some(TOKEN),
        Body::empty(),
    )
    .await
    .problem(405, "method_not_allowed");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_right_token_and_reads_only_when_protected() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let shared = daemon.shared().clone();
    let app = router(shared.app_state());
    let uri = format!("/v1/handoffs/{}/ack", Uuid::now_v7());
    let body = || Body::from(r#"{"by":"alice"}"#);

    let r = call(&app, Method::POST, &uri, None, body()).await;
    r.problem(401, "unauthorized");
    assert_eq!(
        r.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"baton\""
    );
    call(
        &app,
        Method::POST,
        &uri,
        Some("test-token-0123456788"),
        body(),
    )
    .await
    .problem(401, "unauthorized");
    call(
        &app,
        Method::POST,
        &uri,
        Some("test-token-01234567899"),
        body(),
    )
    .await
    .problem(401, "unauthorized");
    // A malformed header is no token.
    let req = Request::post(&uri)
        .header(header::AUTHORIZATION, TOKEN)
        .body(body())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The right token gets through to the command (which finds nothing).
    call(&app, Method::POST, &uri, Some(TOKEN), body())
        .await
        .problem(404, "not_found");
    let lower = Request::post(&uri)
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .body(body())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(lower).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Reads are open by default, guarded with protect_reads.
    assert_eq!(get(&app, "/v1/handoffs").await.status, StatusCode::OK);
    let closed = router_with(&shared, |c| c.http.protect_reads = true);
    get(&closed, "/v1/handoffs")
        .await
        .problem(401, "unauthorized");
    let r = call(
        &closed,
        Method::GET,
        "/v1/stats",
        Some(TOKEN),
        Body::empty(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // No token configured: mutations are refused, not left open.
    let none = router_with(&shared, |c| c.http.tokens.clear());
    let p = call(&none, Method::POST, &uri, Some(TOKEN), body())
        .await
        .problem(401, "unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("none is configured"));
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_for_the_ingest_or_refused_with_every_field_error() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let shared = daemon.shared().clone();
    let app = router(shared.app_state());
    let (_c, js) = nats.client().await;

    // Valid: 202 with the id and score the ingest then records.
    let r = post_report(&app, &p1("h1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let a = r.json();
    assert_eq!(a["handoff_id"], p1_id("h1").to_string());
    assert_eq!(a["report_seq"], 1);
    assert_eq!(a["duplicate"], false);
    assert_eq!(a["gate_passed"], true);
    assert_eq!(a["hcs"]["score"], 100.0);
    assert_eq!(a["hcs"]["components"]["reproducibility"], 100);
    let view = wait_status(&app, &p1_id("h1").to_string(), "paged").await;
    assert_eq!(view["hcs"]["score"], a["hcs"]["score"]);
    assert_eq!(a["joins"], false);

    // R17: the same failure again joins that handoff; the answer says so
    // and shows its figures instead of previewing a page that never comes.
    let mut partial: Value = serde_json::from_slice(&p1("h1")).unwrap();
    partial.as_object_mut().unwrap().remove("rollback_command");
    let r = post_report(&app, &serde_json::to_vec(&partial).unwrap()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let again = r.json();
    assert_eq!(again["handoff_id"], a["handoff_id"]);
    assert_eq!(
        (&again["joins"], &again["duplicate"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        again["hcs"], view["hcs"],
        "the handoff's score, not the report's"
    );
    assert_eq!(again["gate_passed"], view["gate"]["passed"]);
    eventually("reported again", || async {
        let v = get(&app, &format!("/v1/handoffs/{}", p1_id("h1")))
            .await
            .json();
        (v["reports"] == 2).then_some(())
    })
    .await;

    // Keyless (no run_id, no dedup key): the id the ingest derives from the
    // stream sequence, and the score it records (held: 89 < 90).
    let mut keyless: Value = serde_json::from_slice(&p1("x")).unwrap();
    keyless.as_object_mut().unwrap().remove("run_id");
    let r = post_report(&app, &serde_json::to_vec(&keyless).unwrap()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let a = r.json();
    assert_eq!(a["gate_passed"], false);
    assert_eq!(a["hcs"]["missing"], json!(["run_id"]));
    let id = a["handoff_id"].as_str().unwrap().to_string();
    // Held only for the test config's 400 ms max_hold, so wait for it to
    // exist rather than for the hold: the gate decision stays recorded.
    let view = eventually("keyless handoff opened", || async {
        let r = get(&app, &format!("/v1/handoffs/{id}")).await;
        (r.status == StatusCode::OK).then(|| r.json())
    })
    .await;
    assert_eq!(view["hcs"]["score"], a["hcs"]["score"]);
    assert_eq!(view["gate"]["passed"], false);
    assert_eq!(view["gate"]["min_hcs"], 90.0);

    // Idempotency-Key: a retry stores nothing new and names the same handoff.
    let send = |key: &'static str| {
        let app = app.clone();
        let body = serde_json::to_vec(&keyless).unwrap();
        async move {
            let req = Request::post("/v1/reports/agent_failure")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header("Idempotency-Key", key)
                .body(Body::from(body))
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::ACCEPTED);
            let b = res.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&b).unwrap()
        }
    };
    let first = send("retry-1").await;
    let again = send("retry-1").await;
    assert_eq!(
        (
            again["duplicate"].clone(),
            &again["report_seq"],
            &again["handoff_id"]
        ),
        (json!(true), &first["report_seq"], &first["handoff_id"])
    );
    let bad_key = Request::post("/v1/reports/agent_failure")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("Idempotency-Key", "has space")
        .body(Body::from(p1("k")))
        .unwrap();
    let res = app.clone().oneshot(bad_key).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Invalid: 422 listing every problem, counted and recorded as rejected.
    let bad = std::fs::read("examples/reports/bad.json").unwrap();
    let p = post_report(&app, &bad).await.problem(422, "invalid_report");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["severity", "run_id", "owner", "rollback_cmd", "team"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let p = post_report(&app, b"{not json")
        .await
        .problem(422, "invalid_report");
    assert_eq!(p["errors"].as_array().unwrap().len(), 1);
    let p = post(&app, "/v1/reports/nope", json!({}))
        .await
        .problem(422, "invalid_report");
    assert_eq!(p["errors"][0]["code"], "unknown_template");
    let rejected = eventually("three rejection records", || async {
        let r = stream_json(&js, "BATON_REJECTED").await;
        (r.len() == 3).then_some(r)
    })
    .await;
    assert_eq!(rejected[0].1["report_seq"], 0);
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains(
            r#"baton_reports_rejected_total{reason="unknown_template",template="unknown"} 1"#
        ),
        "{metrics}"
    );

    // Too large for http.max_body_bytes: 413 before any parsing.
    let small = router_with(&shared, |c| {
        c.limits.max_report_bytes = 1024;
        c.http.max_body_bytes = 2048;
    });
    post_report(&small, &vec![b' '; 4096])
        .await
        .problem(413, "body_too_large");
    // Within the body limit but over the report limit: the report's own error.
    let p = post_report(
        &small,
        &[b"{\"x\":\"".as_slice(), &[b'a'; 1500], b"\"}"].concat(),
    )
    .await
    .problem(422, "invalid_report");
    assert_eq!(p["errors"][0]["code"], "too_large");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_over_http_take_the_same_path_as_over_nats() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let (client, _js) = nats.client().await;
    let id = p2_report(&app, "c1").await;
    let base = format!("/v1/handoffs/{id}");

    let r = post(&app, &format!("{base}/ack"), json!({"by": "alice"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reply = r.json();
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["handoff"]["acknowledged"]["by"], "alice");
    assert_eq!(reply["events"][0]["type"], "acknowledged");
    // The refusal is the NATS one, as a problem.
    let p = post(&app, &format!("{base}/ack"), json!({"by": "bob"}))
        .await
        .problem(409, "already_acknowledged");
    let nats_reply = command(&client, "ack", json!({"id": id, "by": "bob"})).await;
    assert_eq!(nats_reply["error"]["code"], p["code"]);

    post(&app, &format!("{base}/ack"), json!({}))
        .await
        .problem(422, "missing_field");
    let p = post(&app, &format!("{base}/override"), json!({"by": "ic"}))
        .await
        .problem(422, "missing_field");
    assert_eq!(p["field"], "reason");
    post(
        &app,
        &format!("{base}/override"),
        json!({"by": "ic", "reason": "now"}),
    )
    .await
    .problem(409, "already_paged");
    let p = post(
        &app,
        &format!("{base}/enrich"),
        json!({"by": "dana", "fields": {"ttl_seconds": "soon"}}),
    )
    .await
    .problem(422, "wrong_type");
    assert_eq!(p["field"], "fields.ttl_seconds");
    let r = post(
        &app,
        &format!("{base}/enrich"),
        json!({"by": "dana", "fields": {"recommended_action": "rerun it with twice the memory"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post(
        &app,
        &format!("{base}/resolve"),
        json!({"by": "alice", "note": "done"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    post(&app, &format!("{base}/ack"), json!({"by": "carol"}))
        .await
        .problem(409, "resolved");

    // Shapes the command never sees.
    let ack_uri = format!("{base}/ack");
    let raw =
        |body: &'static str| call(&app, Method::POST, &ack_uri, Some(TOKEN), Body::from(body));
    raw("[1]").await.problem(400, "not_an_object");
    raw("{nope").await.problem(400, "malformed_json");
    post(&app, "/v1/handoffs/not-a-uuid/ack", json!({"by": "a"}))
        .await
        .problem(422, "invalid_id");
    post(
        &app,
        &format!("/v1/handoffs/{}/ack", Uuid::now_v7()),
        json!({"by": "a"}),
    )
    .await
    .problem(404, "not_found");

    // The timeline, straight from the stream, with each commit's sequence.
    let t = get(&app, &format!("{base}/events")).await.json();
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "scored",
            "paged",
            "acknowledged",
            "enriched",
            "scored",
            "resolved"
        ]
    );
    let seqs: Vec<u64> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    get(&app, &format!("/v1/handoffs/{}/events", Uuid::now_v7()))
        .await
        .problem(404, "not_found");
    get(&app, "/v1/handoffs/xyz/events")
        .await
        .problem(422, "invalid_id");
    daemon.stop().await.unwrap();
}

/// Posts a complete P2 report and waits until its handoff is paged.
async fn p2_report(app: &Router, run: &str) -> String {
    let r = post_report(app, &serde_json::to_vec(&p2(run)).unwrap()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["handoff_id"].as_str().unwrap().to_string();
    wait_status(app, &id, "paged").await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_stably_and_stats_sum_up_the_window() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let mut ids = Vec::new();
    for run in ["l1", "l2", "l3", "l4"] {
        ids.push(p2_report(&app, run).await);
    }
    let r = post(
        &app,
        &format!("/v1/handoffs/{}/ack", ids[0]),
        json!({"by": "alice"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let one = get(&app, &format!("/v1/handoffs/{}", ids[0])).await.json();
    assert_eq!(one["status"], "acknowledged");
    assert_eq!(one["acknowledged"]["by"], "alice");
    assert!(one["mtta_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(one["owners"], json!({"primary": "alice", "backup": "bob"}));
    assert_eq!(one["severity"], "P2");
    assert_eq!(one["gate"]["min_hcs"], 85.0);
    assert_eq!(one["escalation"], json!({"level": 0, "steps": 0}));
    assert!(
        one["next_deadline"].is_null(),
        "acknowledged: nothing pending"
    );
    let paged = get(&app, &format!("/v1/handoffs/{}", ids[1])).await.json();
    assert!(paged["next_deadline"].is_string(), "{paged}");

    // Pages of two, newest first, until the cursor runs out.
    let mut seen = Vec::new();
    let mut uri = "/v1/handoffs?limit=2&severity=P2".to_string();
    loop {
        let page = get(&app, &uri).await.json();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/handoffs?limit=2&severity=P2&cursor={c}"),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every handoff exactly once");
    let acked = get(&app, "/v1/handoffs?status=acknowledged").await.json();
    assert_eq!(acked["items"].as_array().unwrap().len(), 1);
    let open = get(
        &app,
        "/v1/handoffs?status=open&team=payments&template=agent_failure",
    )
    .await
    .json();
    assert_eq!(open["items"].as_array().unwrap().len(), 4);
    assert!(get(&app, "/v1/handoffs?severity=P1").await.json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let p = get(&app, "/v1/handoffs?status=lost&limit=9999&cursor=x")
        .await
        .problem(400, "invalid_query");
    assert_eq!(p["errors"].as_array().unwrap().len(), 3);

    let s = get(&app, "/v1/stats?days=30").await.json();
    assert_eq!(
        (s["total"].clone(), s["resolved"].clone()),
        (json!(4), json!(0))
    );
    assert_eq!(s["by_severity"]["P2"]["handoffs"], 4);
    assert_eq!(s["by_severity"]["P2"]["acknowledged"], 1);
    assert!(s["by_severity"]["P2"]["mtta_seconds"]["p50"].is_number());
    assert_eq!(s["by_team"]["payments"]["mean_hcs"], 100.0);
    assert_eq!(s["days"], 30);
    assert_eq!(get(&app, "/v1/stats").await.json()["days"], 30);
    get(&app, "/v1/stats?days=0")
        .await
        .problem(400, "invalid_query");
    get(&app, "/v1/stats?days=abc")
        .await
        .problem(400, "invalid_query");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_the_timeout_gets_a_503_problem() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router_with(daemon.shared(), |c| {
        c.http.request_timeout = Duration::from_millis(200)
    });
    // A body that never finishes arriving keeps the handler waiting.
    let never = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
    call(
        &app,
        Method::POST,
        "/v1/reports/agent_failure",
        Some(TOKEN),
        never,
    )
    .await
    .problem(503, "timeout");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_handoffs_over_http_take_the_same_path_as_over_nats() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let fields = json!({
        "client_name": "Acme", "contract_value": 1, "start_date": "2026-12-01",
        "key_contacts": ["ann"], "special_requirements": "none", "goals": "live"
    });
    let p = post(
        &app,
        "/v1/handoffs",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": {"client_name": "Acme"}}),
    )
    .await
    .problem(422, "missing_required_fields");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("goals")
            || p.to_string().contains("goals"),
        "{p}"
    );
    post(
        &app,
        "/v1/handoffs",
        json!({"template": "nope", "by": "sam", "fields": fields}),
    )
    .await
    .problem(404, "unknown_template");
    let r = post(
        &app,
        "/v1/handoffs",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["handoff"]["id"].as_str().unwrap().to_string();
    let base = format!("/v1/handoffs/{id}");
    assert_eq!(
        post(&app, &format!("{base}/accept"), json!({"by": "olga"}))
            .await
            .status,
        StatusCode::OK
    );
    post(&app, &format!("{base}/complete"), json!({"by": "olga"}))
        .await
        .problem(409, "checklist_incomplete");
    for item in 1..=4 {
        let r = post(
            &app,
            &format!("{base}/check"),
            json!({"by": "olga", "item": item}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(
        post(&app, &format!("{base}/complete"), json!({"by": "olga"}))
            .await
            .status,
        StatusCode::OK
    );
    let r = post(
        &app,
        &format!("{base}/rate"),
        json!({"by": "olga", "rating": 5}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stats = get(&app, "/v1/stats").await.json();
    let row = &stats["work"][0];
    assert_eq!(
        (
            row["template"].as_str(),
            row["completed"].as_u64(),
            row["avg_rating"].as_f64()
        ),
        (Some("sales_to_onboarding"), Some(1), Some(5.0))
    );
    assert_eq!(
        stats["total"], 0,
        "team handoffs stay out of the incident figures"
    );
    daemon.stop().await.unwrap();
}

/// Issue #11: NATS and HTTP give the same answer to the same question (HTTP
/// unwrapped, NATS under `"ok": true`), and the same refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_http_answer_get_list_and_stats_the_same() {
    let nats = Nats::start();
    let daemon = Daemon::start(cfg_with_token(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let (client, _js) = nats.client().await;
    let id = p2_report(&app, "same").await;
    let r = post(
        &app,
        "/v1/handoffs",
        json!({"template": "sales_to_onboarding", "by": "sam",
        "fields": {"client_name": "Acme", "contract_value": 1, "start_date": "2026-12-01",
                   "key_contacts": ["ann"], "special_requirements": "none", "goals": "live"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let over_http = get(&app, &format!("/v1/handoffs/{id}")).await.json();
    let over_nats = command(&client, "get", json!({"id": id})).await;
    assert_eq!(over_nats["handoff"], over_http);

    let over_http = get(&app, "/v1/handoffs?kind=incident&limit=5").await.json();
    let over_nats = command(&client, "list", json!({"kind": "incident", "limit": 5})).await;
    assert_eq!(over_nats["ok"], true, "{over_nats}");
    assert_eq!(over_nats["page"], over_http);
    assert_eq!(over_http["items"].as_array().unwrap().len(), 1);

    // Incident and team figures over the same window; only `now` and
    // `since` move between the two calls.
    let without_clock = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        o.remove("now");
        o.remove("since");
        v
    };
    let over_http = get(&app, "/v1/stats?days=7").await.json();
    let over_nats = command(&client, "stats", json!({"days": 7})).await;
    assert_eq!(
        without_clock(over_nats["stats"].clone()),
        without_clock(over_http.clone())
    );
    assert_eq!(
        (&over_http["days"], &over_http["total"]),
        (&json!(7), &json!(1))
    );
    assert_eq!(over_http["work"][0]["total"], 1);

    // The same refusals, with the same codes.
    let p = get(&app, "/v1/stats?days=0")
        .await
        .problem(400, "invalid_query");
    let r = command(&client, "stats", json!({"days": 0})).await;
    assert_eq!(
        (&r["error"]["code"], &r["error"]["message"]),
        (&p["code"], &p["detail"])
    );
    let p = get(&app, "/v1/handoffs?status=lost")
        .await
        .problem(400, "invalid_query");
    let r = command(&client, "list", json!({"status": "lost"})).await;
    assert_eq!(r["error"]["code"], p["code"]);
    assert_eq!(r["error"]["errors"], p["errors"]);

    // An empty body is `{}` over NATS as over HTTP.
    let empty = client.request("baton.cmd.ack", "".into()).await.unwrap();
    let r: Value = serde_json::from_slice(&empty.payload).unwrap();
    assert_eq!(r["error"]["code"], "missing_field", "{r}");
    assert_eq!(r["error"]["field"], "id");
    let p = call(
        &app,
        Method::POST,
        &format!("/v1/handoffs/{id}/ack"),
        Some(TOKEN),
        Body::empty(),
    )
    .await
    .problem(422, "missing_field");
    assert_eq!(p["field"], "by");
    let empty = client.request("baton.cmd.stats", "".into()).await.unwrap();
    let r: Value = serde_json::from_slice(&empty.payload).unwrap();
    assert_eq!(r["stats"]["days"], 30, "{r}");
    daemon.stop().await.unwrap();
}
