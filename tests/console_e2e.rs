//! The web console driven through `router(state)` with `oneshot` (no
//! socket, no browser) on a real daemon and nats-server: every page
//! renders, sign-in sets a strict cookie that does not hold the token,
//! actions go through the one write path as the signed-in person, and the
//! refusals hold (no session: 401; no role: 403 and no button; another
//! origin: 403; a revoked credential: signed out). The live stream nudges
//! when the projection moves.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use baton::config::Config;
use baton::http::router;
use baton::identity::{credentials, Scope};
use baton::store::Names;
use common::*;
use http_body_util::BodyExt;
use tower::ServiceExt;
use uuid::Uuid;

const HOST: &str = "baton.test:9464";

const PEOPLE: &str = r#"
[authz]
override = ["incident_captain"]
resolve = ["oncall", "incident_captain"]

[people.alice]
name = "Alice Example"
roles = ["oncall"]
teams = ["onboarding"]

[people.dana]
name = "Dana Nobody"

[people.ci-runner]
service = true

[rotations.payments-primary]
time_zone = "UTC"
kind = "weekly"
handoff = "2020-01-06T09:00:00"
participants = ["alice"]

[routes.oncall]
target = "rotation:payments-primary"
"#;

fn console_config(url: &str) -> Config {
    let text = format!("{TEST_CONFIG}\n{PEOPLE}");
    let mut cfg = Config::parse(&text).expect("parses");
    cfg.nats.url = url.to_string();
    cfg.validate().expect("valid");
    cfg
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// One request: `cookie` is the session value; `origin` sends a
/// same-origin `Origin` (a browser's form post); `form` is url-encoded.
async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("other=1; baton_session={c}"));
    }
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const SAME: Option<&str> = Some("http://baton.test:9464");

async fn get(app: &Router, uri: &str, cookie: Option<&str>) -> Reply {
    send(app, Method::GET, uri, cookie, None, None).await
}

async fn post(app: &Router, uri: &str, cookie: Option<&str>, form: &str) -> Reply {
    send(app, Method::POST, uri, cookie, SAME, Some(form)).await
}

async fn token(nats: &Nats, person: &str, scope: Scope) -> (String, String) {
    let (_, js) = nats.client().await;
    let (minted, record) = credentials::create(
        &js,
        &Names::new("baton"),
        person,
        scope,
        Some("console test".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("created");
    (minted.token, record.id)
}

/// Signs in with `token` and returns the session cookie's value.
async fn sign_in(app: &Router, token: &str) -> String {
    let r = post(app, "/login", None, &format!("token={token}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP by default: {set}");
    let value = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("baton_session=")
        .unwrap()
        .to_string();
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !value.contains(secret),
        "the cookie must not hold the token"
    );
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renders_signs_in_acts_as_the_person_and_refuses_what_it_must() {
    let nats = Nats::start();
    let daemon = Daemon::start(console_config(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let (_, js) = nats.client().await;

    // Anonymous: the board renders, offers sign-in, and needs no bearer token.
    let r = get(&app, "/", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for needle in [
        "Open handoffs",
        "href=\"/login\"",
        "id=\"stale\"",
        "viewport",
    ] {
        assert!(r.body.contains(needle), "missing {needle:?}");
    }
    assert!(r.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(
        get(&app, "/console/app.js", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/console/app.css", None).await.status,
        StatusCode::OK
    );
    assert_eq!(get(&app, "/login", None).await.status, StatusCode::OK);

    // A P1 appears in the rows, paged to alice (the stored notice's person).
    publish_report(&js, "agent_failure", &p1("console-1")).await;
    let id = p1_id("console-1");
    let rows = eventually("the P1 is listed", || {
        let app = app.clone();
        async move {
            let r = get(&app, "/console/rows", None).await;
            (r.body.contains(&id.to_string()) && r.body.contains(">alice<")).then_some(r.body)
        }
    })
    .await;
    assert!(
        rows.contains("ledger API timed out") && rows.contains(">P1<"),
        "{rows}"
    );
    let filtered = get(&app, "/console/rows?severity=P2", None).await;
    assert!(!filtered.body.contains(&id.to_string()));
    let bad = get(&app, "/?severity=P9", None).await;
    assert!(bad.body.contains("unknown severity"), "{}", bad.body);

    // Sign-in: wrong, report-only and cross-site attempts are refused.
    let (alice, alice_cred) = token(&nats, "alice", Scope::Person).await;
    let (dana, _) = token(&nats, "dana", Scope::Person).await;
    let (runner, _) = token(&nats, "ci-runner", Scope::Person).await;
    let wrong = post(&app, "/login", None, "token=baton_nope_nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&app, "/login", None, &format!("token={runner}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let cross = send(
        &app,
        Method::POST,
        "/login",
        None,
        Some("https://evil.test"),
        Some(&format!("token={alice}")),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(cross.headers.get(header::SET_COOKIE).is_none());
    let a = sign_in(&app, &alice).await;
    let d = sign_in(&app, &dana).await;
    let board = get(&app, "/?mine=1", Some(&a)).await;
    assert!(board.body.contains("Signed in as") && board.body.contains("Alice Example"));
    assert!(board.body.contains(&id.to_string()), "alice is paged: mine");
    let dboard = get(&app, "/console/rows?mine=1", Some(&d)).await;
    assert!(!dboard.body.contains(&id.to_string()));
    assert!(get(&app, "/", Some("v1.forged.9999999999.AAAA"))
        .await
        .body
        .contains("href=\"/login\""));

    // The handoff's page: packet, HCS, timeline words, and the buttons
    // each person's roles allow.
    let page = get(&app, &format!("/handoffs/{id}"), Some(&a)).await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "HCS",
        "Reproducibility",
        "as P1 (agent_failure) for team payments",
        "Paged level 0 → alice (rotation payments-primary, route oncall)",
        "baton timeline",
        "Occurrence",
        "Acknowledge",
        "/ack\"",
        "/resolve\"",
    ] {
        assert!(
            page.body.contains(needle),
            "missing {needle:?} in {}",
            page.body
        );
    }
    let dpage = get(&app, &format!("/handoffs/{id}"), Some(&d)).await;
    assert!(dpage.body.contains("/ack\""), "anyone may acknowledge");
    assert!(
        !dpage.body.contains("/resolve\""),
        "dana has no resolve role"
    );
    let anon = get(&app, &format!("/handoffs/{id}"), None).await;
    assert!(anon.body.contains("to act on this handoff") && !anon.body.contains("/ack\""));
    assert_eq!(
        get(&app, "/handoffs/not-a-uuid", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &format!("/handoffs/{}", Uuid::nil()), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Refusals store nothing: no session, another origin, no role.
    let ack = format!("/handoffs/{id}/ack");
    assert_eq!(
        post(&app, &ack, None, "").await.status,
        StatusCode::UNAUTHORIZED
    );
    let cross = send(
        &app,
        Method::POST,
        &ack,
        Some(&a),
        Some("https://evil.test"),
        Some(""),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let no_origin = send(&app, Method::POST, &ack, Some(&a), None, Some("")).await;
    assert_eq!(no_origin.status, StatusCode::FORBIDDEN);
    let forbidden = post(&app, &format!("/handoffs/{id}/resolve"), Some(&d), "note=x").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(forbidden.body.contains("Not allowed"), "{}", forbidden.body);
    assert!(!kinds(&events_of(&js, id).await).contains(&"acknowledged"));

    // Alice acknowledges and resolves: stored as her, told in the timeline.
    let r = post(&app, &ack, Some(&a), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/handoffs/{id}"));
    let page = get(&app, &format!("/handoffs/{id}"), Some(&a)).await;
    assert!(page.body.contains("Acknowledged by alice"), "{}", page.body);
    assert!(page.body.contains(">acknowledged<"));
    let again = post(&app, &ack, Some(&a), "").await;
    assert!(again.status.is_client_error(), "{}", again.status);
    let r = post(
        &app,
        &format!("/handoffs/{id}/resolve"),
        Some(&a),
        "note=failed+over+%3Cfast%3E&by=mallory",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = get(&app, &format!("/handoffs/{id}"), Some(&a)).await;
    assert!(
        page.body
            .contains("Resolved by alice: &quot;failed over &lt;fast&gt;&quot;"),
        "{}",
        page.body
    );
    let events = events_of(&js, id).await;
    let acked = events.iter().find(|e| e.kind() == "acknowledged").unwrap();
    assert_eq!(acked.actor, "alice");
    assert_eq!(
        get(&app, &format!("/handoffs/{id}/nope"), Some(&a))
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        post(&app, &format!("/handoffs/{id}/nope"), Some(&a), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A team handoff: the tab, the checklist, accept and check as alice
    // (onboarding), rate after completion.
    let started = daemon
        .shared()
        .app()
        .start(
            serde_json::from_value(serde_json::json!({
                "template": "sales_to_onboarding", "by": "sam",
                "fields": {"client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
                           "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live"}
            }))
            .unwrap(),
        )
        .await
        .expect("started");
    let tid = started.handoff.unwrap().id();
    let tab = eventually("the team handoff is listed", || {
        let app = app.clone();
        async move {
            let r = get(&app, "/?tab=team", None).await;
            r.body.contains(&tid.to_string()).then_some(r.body)
        }
    })
    .await;
    assert!(
        tab.contains("sales → onboarding") && tab.contains("0/"),
        "{tab}"
    );
    let tpage = format!("/handoffs/{tid}");
    assert!(get(&app, &tpage, Some(&a)).await.body.contains("/accept\""));
    assert_eq!(
        post(&app, &format!("{tpage}/accept"), Some(&a), "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let page = get(&app, &tpage, Some(&a)).await;
    assert!(page.body.contains("Checklist") && page.body.contains("Check item 1"));
    assert_eq!(
        post(&app, &format!("{tpage}/check"), Some(&a), "item=1")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let page = get(&app, &tpage, Some(&a)).await;
    assert!(page.body.contains("☑ done"), "{}", page.body);
    assert!(page.body.contains("alice accepted it"), "{}", page.body);
    for item in 2..=4 {
        let r = post(
            &app,
            &format!("{tpage}/check"),
            Some(&a),
            &format!("item={item}"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let r = post(&app, &format!("{tpage}/complete"), Some(&a), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(get(&app, &tpage, Some(&a)).await.body.contains("/rate\""));
    let r = post(
        &app,
        &format!("{tpage}/rate"),
        Some(&a),
        "rating=4&comment=clear+handoff",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = get(&app, &tpage, Some(&a)).await;
    assert!(
        page.body.contains("4/5 from alice") && page.body.contains("clear handoff"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("/rate\""), "rated once");

    // On call: now, next, and the ?at= lookup (and its refusal).
    let oc = get(&app, "/oncall", Some(&a)).await;
    assert_eq!(oc.status, StatusCode::OK);
    assert!(oc.body.contains("payments-primary") && oc.body.contains("alice"));
    let at = get(&app, "/oncall?at=2026-11-03T00%3A00%3A00Z", None).await;
    assert!(
        at.body.contains("payments-primary: <strong>alice</strong>"),
        "{}",
        at.body
    );
    let r = daemon
        .shared()
        .app()
        .oncall()
        .create_override(
            serde_json::from_value(serde_json::json!({
                "rotation": "payments-primary", "by": "dana",
                "from": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z",
                "created_by": "alice"
            }))
            .unwrap(),
        )
        .await;
    r.expect("override stored");
    let oc = eventually("the override is listed", || {
        let app = app.clone();
        async move {
            let r = get(&app, "/oncall", None).await;
            r.body.contains("dana instead of").then_some(r.body)
        }
    })
    .await;
    assert!(oc.contains("Overrides, current and upcoming"), "{oc}");
    let bad = get(&app, "/oncall?at=yesterday", None).await;
    assert!(bad.body.contains("RFC 3339"), "{}", bad.body);

    // Revoking the credential ends the session at its next request.
    credentials::revoke(&js, &Names::new("baton"), &alice_cred, chrono::Utc::now())
        .await
        .expect("revoked");
    eventually("the revoked session is refused", || {
        let app = app.clone();
        let (a, ack) = (a.clone(), ack.clone());
        async move {
            let r = post(&app, &ack, Some(&a), "").await;
            (r.status == StatusCode::UNAUTHORIZED).then_some(())
        }
    })
    .await;

    // Sign out clears the cookie.
    let out = post(&app, "/logout", Some(&d), "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    daemon.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_nudges_when_the_projection_moves_and_reads_can_be_closed() {
    let nats = Nats::start();
    let daemon = Daemon::start(console_config(&nats.url)).await;
    let app = router(daemon.shared().app_state());
    let (_, js) = nats.client().await;

    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/console/stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    publish_report(&js, "agent_failure", &p1("stream-1")).await;
    let frame = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let f = body.frame().await.expect("open").expect("frame");
            if let Some(data) = f.data_ref() {
                let text = String::from_utf8_lossy(data).into_owned();
                if text.contains("data:") {
                    return text;
                }
            }
        }
    })
    .await
    .expect("a nudge within 20 s");
    assert!(frame.starts_with("data: "), "{frame}");

    // With `protect_reads`, the pages need a session too.
    let mut cfg = (*daemon.shared().cfg).clone();
    cfg.http.protect_reads = true;
    let closed = router(
        baton::server::Shared {
            cfg: std::sync::Arc::new(cfg),
            ..daemon.shared().clone()
        }
        .app_state(),
    );
    let r = get(&closed, "/", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    assert_eq!(
        get(&closed, "/console/rows", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&closed, "/login", None).await.status, StatusCode::OK);

    drop(body);
    daemon.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_incident_offers_enrich_to_anyone_and_override_only_to_the_role() {
    let nats = Nats::start();
    let text = format!("{TEST_CONFIG}\n{PEOPLE}\n[people.carol]\nroles = [\"incident_captain\"]\n");
    let mut cfg = Config::parse(&text).expect("parses");
    cfg.nats.url = nats.url.clone();
    cfg.validate().expect("valid");
    let daemon = Daemon::start(cfg).await;
    let app = router(daemon.shared().app_state());
    let (_, js) = nats.client().await;

    let mut report: serde_json::Value = serde_json::from_slice(&p1("held-1")).unwrap();
    report["severity"] = "P2".into();
    let r = report.as_object_mut().unwrap();
    r.remove("recommended_action");
    r.remove("blast_radius");
    let report = serde_json::to_vec(&report).unwrap();
    publish_report(&js, "agent_failure", &report).await;
    let parsed = baton::domain::parse_report(
        &report,
        baton::domain::ParseLimits {
            max_report_bytes: 65536,
            max_field_bytes: 4096,
        },
    )
    .unwrap();
    let id = baton::domain::handoff_id_for("agent_failure", &parsed.report).unwrap();
    let (alice, _) = token(&nats, "alice", Scope::Person).await;
    let (carol, _) = token(&nats, "carol", Scope::Person).await;
    let a = sign_in(&app, &alice).await;
    let c = sign_in(&app, &carol).await;
    let url = format!("/handoffs/{id}");
    let page = eventually("the held incident", || {
        let (app, a, url) = (app.clone(), a.clone(), url.clone());
        async move {
            let r = get(&app, &url, Some(&a)).await;
            r.body.contains(">held<").then_some(r.body)
        }
    })
    .await;
    assert!(page.contains("name=\"field.recommended_action\""), "{page}");
    assert!(
        !page.contains("/override\""),
        "alice is no incident captain"
    );
    let cpage = get(&app, &url, Some(&c)).await;
    assert!(cpage.body.contains("/override\""), "{}", cpage.body);

    let refused = post(&app, &format!("{url}/override"), Some(&a), "reason=now").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let r = post(
        &app,
        &format!("{url}/override"),
        Some(&c),
        "reason=checkout+down",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = get(&app, &url, Some(&c)).await;
    assert!(
        page.body
            .contains("Override by carol: &quot;checkout down&quot;"),
        "{}",
        page.body
    );
    let r = post(
        &app,
        &format!("{url}/enrich"),
        Some(&a),
        "field.recommended_action=fail+over&field.blast_radius=%7B%22users%22%3A+5%7D",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = get(&app, &url, Some(&a)).await;
    assert!(page.body.contains("Enriched by alice"), "{}", page.body);
    let events = events_of(&js, id).await;
    assert!(events
        .iter()
        .any(|e| e.kind() == "enriched" && e.actor == "alice"));

    daemon.stop().await.expect("clean stop");
}
