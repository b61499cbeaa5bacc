//! People and credentials end to end, over a real socket and a real
//! nats-server: a person credential makes the person the actor; a revoked
//! one is refused; roles and scopes answer 403 and store nothing; a
//! credential survives a restart and works on every daemon; NATS commands
//! take the person from the `Authorization` header.

mod common;

use std::net::SocketAddr;

use baton::config::Config;
use baton::domain::EventData;
use baton::identity::{credentials, Scope};
use baton::store::Names;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const SHARED: &str = "shared-token-0123456789";

const PEOPLE: &str = r#"
[authz]
override = ["incident_captain"]

[people.alice]
name = "Alice Example"
roles = ["oncall"]
teams = ["payments"]
contact = [ { kind = "email", to = "alice@example.com" } ]

[people.carol]
roles = ["incident_captain"]
contact = [ { kind = "email", to = "carol@example.com" } ]

[people.dana]
teams = ["onboarding"]
contact = [ { kind = "email", to = "dana@example.com" } ]

[people.ci-runner]
service = true
"#;

fn identity_config(url: &str) -> Config {
    let text = format!("{TEST_CONFIG}\n{PEOPLE}").replacen(
        "[http]\nenabled = false",
        "[http]\nenabled = true\nlisten = \"127.0.0.1:0\"",
        1,
    );
    let mut cfg = Config::parse(&text).expect("parses");
    cfg.nats.url = url.to_string();
    cfg.http.tokens = vec![SHARED.into()];
    cfg.validate().expect("valid");
    cfg
}

/// One HTTP/1.1 exchange with `token` as the bearer: status and JSON body.
async fn call(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn addr(d: &Daemon) -> SocketAddr {
    d.running.as_ref().unwrap().http_addr.expect("HTTP is on")
}

async fn token(nats: &Nats, person: &str, scope: Scope) -> (String, String) {
    let (_, js) = nats.client().await;
    let (minted, record) = credentials::create(
        &js,
        &Names::new("baton"),
        person,
        scope,
        Some("test".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("created");
    (minted.token, record.id)
}

/// Reports `run` over HTTP with the shared token and waits for its handoff.
async fn open(nats: &Nats, a: SocketAddr, run: &str) -> Uuid {
    let report: Value = serde_json::from_slice(&p1(run)).unwrap();
    let (status, _) = call(a, SHARED, "POST", "/v1/reports/agent_failure", Some(report)).await;
    assert_eq!(status, 202);
    let id = p1_id(run);
    let (_, js) = nats.client().await;
    eventually("the handoff is opened", || {
        let js = js.clone();
        async move { (!events_of(&js, id).await.is_empty()).then_some(()) }
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_credential_acts_as_its_person_and_roles_scopes_and_revocation_hold() {
    let nats = Nats::start();
    let daemon = Daemon::start(identity_config(&nats.url)).await;
    let a = addr(&daemon);
    let (_, js) = nats.client().await;
    let (client, _) = nats.client().await;
    let id = open(&nats, a, "identity-1").await;
    let (alice, alice_id) = token(&nats, "alice", Scope::Person).await;

    // A `by` naming someone else is refused; nothing is stored.
    let before = events_of(&js, id).await.len();
    let (status, body) = call(
        a,
        &alice,
        "POST",
        &format!("/v1/handoffs/{id}/ack"),
        Some(json!({"by": "mallory"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("by")),
        "{body}"
    );

    // A forbidden override answers 403 naming the role, and stores nothing.
    let (status, body) = call(
        a,
        &alice,
        "POST",
        &format!("/v1/handoffs/{id}/override"),
        Some(json!({"reason": "it is urgent"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("incident_captain"),
        "{body}"
    );
    // So does a shared token, which cannot prove a role.
    let (status, _) = call(
        a,
        SHARED,
        "POST",
        &format!("/v1/handoffs/{id}/override"),
        Some(json!({"by": "carol", "reason": "it is urgent"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(events_of(&js, id).await.len(), before, "nothing stored");

    // An ack with Alice's credential (no `by`) records Alice.
    let (status, body) = call(
        a,
        &alice,
        "POST",
        &format!("/v1/handoffs/{id}/ack"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = events_of(&js, id).await;
    let ack = events
        .iter()
        .find(|e| matches!(e.data, EventData::Acknowledged { .. }))
        .expect("acknowledged");
    assert_eq!(ack.actor, "alice");
    assert!(matches!(&ack.data, EventData::Acknowledged { by, .. } if by == "alice"));

    // A report-only credential of a service account reports, never acks.
    let (runner, _) = token(&nats, "ci-runner", Scope::Report).await;
    let id2 = p1_id("identity-2");
    let report: Value = serde_json::from_slice(&p1("identity-2")).unwrap();
    let (status, body) = call(
        a,
        &runner,
        "POST",
        "/v1/reports/agent_failure",
        Some(report),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the runner's handoff is opened", || {
        let js = js.clone();
        async move { (!events_of(&js, id2).await.is_empty()).then_some(()) }
    })
    .await;
    let before2 = events_of(&js, id2).await.len();
    let (status, body) = call(
        a,
        &runner,
        "POST",
        &format!("/v1/handoffs/{id2}/ack"),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(events_of(&js, id2).await.len(), before2);

    // NATS: the person comes from the Authorization header.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Authorization", format!("Bearer {alice}").as_str());
    let reply = client
        .request_with_headers(
            "baton.cmd.resolve",
            headers,
            json!({"id": id2, "note": "fixed"}).to_string().into(),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let resolved = events_of(&js, id2).await;
    assert!(resolved
        .iter()
        .any(|e| matches!(&e.data, EventData::Resolved { by, .. } if by == "alice")));
    let mut bad = async_nats::HeaderMap::new();
    bad.insert(
        "Authorization",
        format!("Bearer baton_{}_{}", alice_id, "0".repeat(64)).as_str(),
    );
    let reply = client
        .request_with_headers("baton.cmd.ack", bad, json!({"id": id}).to_string().into())
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");

    // GET /v1/people/alice: the person, what she owns, her credentials.
    let (status, person) = call(a, SHARED, "GET", "/v1/people/alice", None).await;
    assert_eq!(status, 200, "{person}");
    assert_eq!(person["name"], "Alice Example");
    assert_eq!(person["contact"], json!(["email"]));
    let owned: Vec<&str> = person["open_handoffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert!(owned.contains(&id.to_string().as_str()), "{person}");
    assert!(
        !owned.contains(&id2.to_string().as_str()),
        "resolved: {person}"
    );
    assert_eq!(person["credentials"][0]["id"], alice_id.as_str());
    assert!(!person.to_string().contains("argon2"));
    assert_eq!(
        call(a, SHARED, "GET", "/v1/people/nobody", None).await.0,
        404
    );

    // The credential survives a restart of the daemon.
    daemon.stop().await.unwrap();
    let daemon = Daemon::start(identity_config(&nats.url)).await;
    let a = addr(&daemon);
    let (status, body) = call(
        a,
        &alice,
        "POST",
        &format!("/v1/handoffs/{id}/resolve"),
        Some(json!({"note": "after restart"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A revoked credential is refused (401) once the daemon follows it.
    credentials::revoke(&js, &Names::new("baton"), &alice_id, chrono::Utc::now())
        .await
        .unwrap();
    let alice = &alice;
    eventually("the revocation takes effect", || async move {
        // Auth comes before the id is even parsed: 401, not 422.
        let (status, _) = call(a, alice, "POST", "/v1/handoffs/x/ack", Some(json!({}))).await;
        (status == 401).then_some(())
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_accept_the_same_credential() {
    let nats = Nats::start();
    let one = Daemon::start(identity_config(&nats.url)).await;
    let two = Daemon::start(identity_config(&nats.url)).await;
    let (_, js) = nats.client().await;
    let id = open(&nats, addr(&one), "identity-two-daemons").await;
    // Created after both started: neither has followed it yet when asked.
    let (carol, _) = token(&nats, "carol", Scope::Person).await;
    let (status, body) = call(
        addr(&two),
        &carol,
        "POST",
        &format!("/v1/handoffs/{id}/ack"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        addr(&one),
        &carol,
        "POST",
        &format!("/v1/handoffs/{id}/resolve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let actors: Vec<String> = events_of(&js, id)
        .await
        .iter()
        .filter(|e| {
            matches!(
                e.data,
                EventData::Acknowledged { .. } | EventData::Resolved { .. }
            )
        })
        .map(|e| e.actor.clone())
        .collect();
    assert_eq!(actors, ["carol", "carol"]);
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

/// A NATS request as the person of `token` (none: the compatibility mode).
async fn nats_as(
    client: &async_nats::Client,
    token: Option<&str>,
    verb: &str,
    body: Value,
) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(t) = token {
        headers.insert("Authorization", format!("Bearer {t}").as_str());
    }
    let reply = client
        .request_with_headers(
            format!("baton.cmd.{verb}"),
            headers,
            body.to_string().into(),
        )
        .await
        .expect("reply");
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_only_template_lets_only_the_receiving_team_accept() {
    let nats = Nats::start();
    let mut cfg = identity_config(&nats.url);
    cfg.members_only_templates
        .insert("sales_to_onboarding".into());
    let daemon = Daemon::start(cfg).await;
    let (client, js) = nats.client().await;
    let fields = json!({
        "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
        "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
    });
    let r = nats_as(
        &client,
        None,
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let id: Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    let before = events_of(&js, id).await.len();

    let (alice, _) = token(&nats, "alice", Scope::Person).await;
    let (dana, _) = token(&nats, "dana", Scope::Person).await;
    for who in [Some(alice.as_str()), None] {
        let r = nats_as(&client, who, "accept", json!({"id": id, "by": "alice"})).await;
        assert_eq!(r["error"]["code"], "forbidden", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("onboarding"),
            "{r}"
        );
    }
    assert_eq!(events_of(&js, id).await.len(), before, "nothing stored");
    let r = nats_as(&client, Some(&dana), "accept", json!({"id": id})).await;
    assert_eq!(r["ok"], true, "{r}");
    let last = events_of(&js, id).await.pop().unwrap();
    assert_eq!((last.kind(), last.actor.as_str()), ("accepted", "dana"));
    daemon.stop().await.unwrap();
}
