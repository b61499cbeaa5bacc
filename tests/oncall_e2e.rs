//! End to end: pages resolve `rotation:` targets to the person on call at
//! the decision's instant and store that person; overrides made
//! mid-incident change who the next escalation reaches; overrides survive a
//! restart (rebuilt from `BATON_ONCALL`); `GET /v1/oncall` answers from the
//! config and the log. Each test has its own nats-server.

mod common;

use axum::body::Body;
use baton::config::Config;
use baton::domain::{Event, RouteTarget};
use chrono::{DateTime, Utc};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const PEOPLE: &str = r#"
[people.alice]
[people.bob]
[people.carol]
[people.dave]
[people.erin]

[rotations.payments-primary]
time_zone = "Europe/Berlin"
kind = "weekly"
handoff = "2020-01-06T09:00:00"
participants = ["alice", "bob"]

[rotations.incident-captains]
time_zone = "UTC"
kind = "daily"
handoff = "2020-01-01T00:00:00"
participants = ["carol", "dave"]

[routes.oncall]
target = "rotation:payments-primary"
fallback = "person:erin"

[routes.incident_captain]
target = "rotation:incident-captains"
fallback = "person:erin"
"#;

fn oncall_config(url: &str, first_response: &str) -> Config {
    let text = format!("{TEST_CONFIG}\n{PEOPLE}").replace(
        "first_response = \"700ms\"",
        &format!("first_response = \"{first_response}\""),
    );
    let mut cfg = Config::parse(&text).expect("parses");
    cfg.nats.url = url.to_string();
    cfg.validate().expect("valid");
    cfg
}

/// Who the config's rotations schedule at `t` (no overrides).
fn scheduled(cfg: &Config, rotation: &str, t: DateTime<Utc>) -> String {
    cfg.directory()
        .on_call(rotation, t, t)
        .unwrap()
        .person
        .unwrap()
}

fn route<'a>(e: &'a Event, name: &str) -> Option<&'a RouteTarget> {
    e.data.notice()?.1.routes.iter().find(|r| r.route == name)
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["ok"], json!(true), "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p1_pages_the_on_call_person_and_an_override_mid_incident_reaches_the_next_escalation() {
    let nats = Nats::start();
    // Long enough to store an override between the page and the first step.
    let cfg = oncall_config(&nats.url, "1500ms");
    let daemon = Daemon::start(cfg.clone()).await;
    let (client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("oc1")).await;
    let id = p1_id("oc1");

    let paged = eventually("the page", || async {
        events_of(&js, id)
            .await
            .into_iter()
            .find(|e| e.kind() == "paged")
    })
    .await;
    let oncall = route(&paged, "oncall").expect("oncall route");
    let expected = scheduled(&cfg, "payments-primary", paged.occurred_at);
    assert_eq!(oncall.person.as_deref(), Some(expected.as_str()));
    assert_eq!(oncall.rotation.as_deref(), Some("payments-primary"));
    let other = if expected == "alice" { "bob" } else { "alice" };
    assert_eq!(
        oncall.backup.as_deref(),
        Some(other),
        "backup: the next participant"
    );
    assert_eq!(
        oncall.target, "rotation:payments-primary",
        "the target is kept"
    );

    // Mid-incident, erin takes the primary rotation.
    let reply = command(
        &client,
        "oncall_override",
        json!({"rotation": "payments-primary", "by": "erin", "from": "now",
               "until": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
               "created_by": "carol"}),
    )
    .await;
    let created_at: DateTime<Utc> =
        serde_json::from_value(ok(&reply)["override"]["created_at"].clone()).unwrap();
    assert_eq!(reply["override"]["created_by"], "carol");

    let escalations = eventually("two escalations", || async {
        let ev: Vec<Event> = events_of(&js, id)
            .await
            .into_iter()
            .filter(|e| e.kind() == "escalated")
            .collect();
        (ev.len() == 2).then_some(ev)
    })
    .await;
    for e in &escalations {
        assert!(e.occurred_at > created_at, "the override came first");
        let oncall = route(e, "oncall").unwrap();
        assert_eq!(oncall.person.as_deref(), Some("erin"), "{e:?}");
        let captain = route(e, "incident_captain").unwrap();
        let want = scheduled(&cfg, "incident-captains", e.occurred_at);
        assert_eq!(captain.person.as_deref(), Some(want.as_str()));
        assert_eq!(captain.rotation.as_deref(), Some("incident-captains"));
    }
    // The first page still says who was paged then.
    let again = events_of(&js, id).await;
    let first = again.iter().find(|e| e.kind() == "paged").unwrap();
    assert_eq!(
        route(first, "oncall").unwrap().person.as_deref(),
        Some(expected.as_str())
    );

    // Pages carry the person.
    let pages = eventually("the pages", || async {
        let p = pages_of(&js, id).await;
        (p.len() == 5).then_some(p)
    })
    .await;
    let page = pages.iter().find(|p| p.kind == "page").unwrap();
    assert_eq!(page.person.as_deref(), Some(expected.as_str()));
    assert!(pages
        .iter()
        .filter(|p| p.kind == "escalation" && p.route == "oncall")
        .all(|p| p.person.as_deref() == Some("erin")));

    // The people it reached, as `/v1/people/{id}` lists them (`paged`).
    let h = daemon.shared().engine.get(id).unwrap();
    let reached = &h.as_incident().unwrap().paged_people;
    assert!(
        reached.contains(&expected) && reached.contains(&"erin".to_string()),
        "{reached:?}"
    );
    let assigned = daemon.shared().app().owned_by("erin".into()).await;
    assert!(
        assigned.iter().any(|o| o.id == id && o.role == "paged"),
        "{assigned:?}"
    );
    daemon.stop().await.unwrap();
}

async fn get(app: axum::Router, uri: &str) -> (u16, Value) {
    let res = app
        .oneshot(
            axum::http::Request::builder()
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_survive_a_restart_and_get_oncall_answers_from_config_and_log() {
    let nats = Nats::start();
    let cfg = oncall_config(&nats.url, "700ms");
    let daemon = Daemon::start(cfg.clone()).await;
    let (client, _js) = nats.client().await;
    let from = Utc::now() - chrono::Duration::minutes(5);
    let until = Utc::now() + chrono::Duration::hours(2);
    let scheduled_now = scheduled(&cfg, "incident-captains", Utc::now());
    let reply = command(
        &client,
        "oncall_override",
        json!({"rotation": "incident-captains", "by": "erin", "replaces": scheduled_now,
               "from": from.to_rfc3339(), "until": until.to_rfc3339()}),
    )
    .await;
    let override_id = ok(&reply)["override"]["id"].as_str().unwrap().to_string();
    // Refusals keep their codes.
    let bad = command(
        &client,
        "oncall_override",
        json!({"rotation": "nope", "by": "erin", "from": "now", "until": until.to_rfc3339()}),
    )
    .await;
    assert_eq!(bad["error"]["code"], "unknown_rotation", "{bad}");
    let bad = command(
        &client,
        "oncall_override",
        json!({"rotation": "incident-captains", "by": "erin", "from": "yesterday", "until": until.to_rfc3339()}),
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid_value", "{bad}");
    daemon.stop().await.unwrap();

    // A new daemon rebuilds the override from BATON_ONCALL.
    let mut cfg = cfg;
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    let daemon = Daemon::start(cfg.clone()).await;
    let reply = command(&client, "oncall", json!({"rotation": "incident-captains"})).await;
    let now = &ok(&reply)["oncall"][0];
    assert_eq!(now["person"], "erin", "{reply}");
    assert_eq!(now["scheduled"], scheduled_now.as_str());
    assert_eq!(now["override"]["id"], override_id.as_str());

    let app = baton::http::router(daemon.shared().app_state());
    // Before the override's window: the schedule alone.
    let before = from - chrono::Duration::minutes(1);
    let (status, body) = get(
        app.clone(),
        &format!(
            "/v1/oncall?rotation=incident-captains&at={}",
            before.to_rfc3339().replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let want = scheduled(&cfg, "incident-captains", before);
    assert_eq!(body["oncall"][0]["person"], want.as_str(), "{body}");
    // Every rotation, now.
    let (status, body) = get(app.clone(), "/v1/oncall").await;
    assert_eq!(status, 200);
    assert_eq!(body["oncall"].as_array().unwrap().len(), 2, "{body}");
    // As known before the override was recorded: the schedule.
    let (_, body) = get(
        app.clone(),
        &format!(
            "/v1/oncall?rotation=incident-captains&known={}",
            (Utc::now() - chrono::Duration::hours(1))
                .to_rfc3339()
                .replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(
        body["oncall"][0]["person"],
        scheduled_now.as_str(),
        "{body}"
    );
    let (status, body) = get(app.clone(), "/v1/oncall?rotation=nope").await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("unknown_rotation"))
    );
    let (status, _) = get(app.clone(), "/v1/oncall?at=tuesday").await;
    assert_eq!(status, 422);
    let (_, doc) = get(app, "/openapi.json").await;
    assert!(doc["paths"]["/v1/oncall/overrides/{id}"]["delete"].is_object());

    // Cancelled: whoever is scheduled is on call again.
    let reply = command(
        &client,
        "oncall_cancel",
        json!({"id": override_id, "by": "carol"}),
    )
    .await;
    assert!(ok(&reply)["override"]["cancelled_at"].is_string());
    let reply = command(&client, "oncall", json!({"rotation": "incident-captains"})).await;
    assert_eq!(
        reply["oncall"][0]["person"],
        scheduled_now.as_str(),
        "{reply}"
    );
    daemon.stop().await.unwrap();
}

async fn send(
    app: axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = axum::http::Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A runner's packet names an owner nobody can be (`rotation:ghost`): the
/// `owner` route pages its fallback, says so in the event, and counts it.
/// Overrides over HTTP need the bearer token like every mutation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_resolving_to_nobody_pages_the_fallback_and_http_overrides_need_a_token() {
    let nats = Nats::start();
    let token = "token-oncall-aaaaaaaaaaaa";
    let mut cfg = oncall_config(&nats.url, "700ms");
    cfg.routes.insert(
        "owner".into(),
        toml::from_str("target = \"owner\"\nfallback = \"person:erin\"").unwrap(),
    );
    cfg.http.tokens = vec![token.into()];
    cfg.validate().expect("valid");
    let daemon = Daemon::start(cfg.clone()).await;
    let (client, js) = nats.client().await;

    let mut report: Value = serde_json::from_slice(&p1("ghost")).unwrap();
    report["severity"] = json!("P2");
    report["owner"] = json!({"primary": "rotation:ghost", "backup": "person:bob"});
    publish_report(&js, "agent_failure", &serde_json::to_vec(&report).unwrap()).await;
    let paged = eventually("the P2 page", || async {
        let reply = command(&client, "list", json!({})).await;
        let id = reply["page"]["items"]
            .as_array()?
            .iter()
            .find(|h| h["severity"] == "P2")?["id"]
            .as_str()?
            .parse()
            .ok()?;
        events_of(&js, id)
            .await
            .into_iter()
            .find(|e| e.kind() == "paged")
    })
    .await;
    let owner = route(&paged, "owner").expect("owner route");
    assert_eq!(owner.target, "rotation:ghost");
    assert!(owner.unresolved);
    assert_eq!(owner.person.as_deref(), Some("erin"));
    let counted = daemon
        .shared()
        .metrics
        .unresolved_targets_total
        .with_label_values(&["owner"])
        .get();
    assert_eq!(counted, 1);

    // The CLI sends absent options as null.
    let reply = command(
        &client,
        "oncall",
        json!({"at": null, "rotation": null, "known": null}),
    )
    .await;
    assert_eq!(ok(&reply)["oncall"].as_array().unwrap().len(), 2);

    let app = baton::http::router(daemon.shared().app_state());
    let body = json!({"rotation": "payments-primary", "by": "dave", "from": "now",
                      "until": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()});
    let (status, _) = send(
        app.clone(),
        "POST",
        "/v1/oncall/overrides",
        None,
        body.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, created) = send(
        app.clone(),
        "POST",
        "/v1/oncall/overrides",
        Some(token),
        body,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, bad) = send(
        app.clone(),
        "POST",
        "/v1/oncall/overrides",
        Some(token),
        json!({"rotation": "payments-primary", "by": "nobody-known", "from": "now", "until": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, bad["code"].clone()),
        (422, json!("invalid_value")),
        "{bad}"
    );
    let id = created["id"].as_str().unwrap();
    let (_, now) = get(app.clone(), "/v1/oncall?rotation=payments-primary").await;
    assert_eq!(now["oncall"][0]["person"], "dave", "{now}");
    let uri = format!("/v1/oncall/overrides/{id}");
    let (status, _) = send(app.clone(), "DELETE", &uri, None, json!({})).await;
    assert_eq!(status, 401);
    let (status, gone) = send(
        app.clone(),
        "DELETE",
        &uri,
        Some(token),
        json!({"by": "carol"}),
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    let (status, again) = send(app.clone(), "DELETE", &uri, Some(token), json!({})).await;
    assert_eq!(
        (status, again["code"].clone()),
        (404, json!("unknown_override"))
    );
    daemon.stop().await.unwrap();
}
