//! Delivery end to end: a private nats-server, in-process daemons with
//! `[delivery] enabled`, and local sinks (HTTP, a closing listener, SMTP)
//! started by the test. Each outcome is recorded in the handoff's log as
//! specified; a crash between the remote accepting and the record sends
//! once more under the same key; two daemons deliver each page once.

mod common;
#[allow(dead_code)]
#[path = "common/sinks.rs"]
mod sinks;

use std::collections::BTreeMap;

use baton::config::Config;
use baton::domain::{Event, EventData};
use common::*;
use sinks::{closing_listener, HttpSink, SmtpSink};
use uuid::Uuid;

/// Millisecond retries; `oncall` reaches alice (a 400, then a flaky
/// webhook), `incident_captain` a hanging webhook, a closing port and
/// e-mail, `lead` a 429 with `Retry-After`, `broken` only a 400, `nobody`
/// nothing at all.
fn config(nats: &str, sink: &HttpSink, closing: std::net::SocketAddr, smtp: &SmtpSink) -> Config {
    let cfg = Config::parse(&config_text(nats, sink, closing, smtp)).expect("config parses");
    cfg.validate().expect("config is valid");
    cfg
}

fn config_text(
    nats: &str,
    sink: &HttpSink,
    closing: std::net::SocketAddr,
    smtp: &SmtpSink,
) -> String {
    format!(
        r#"
[nats]
url = "{nats}"

[http]
enabled = false

[jobs]
enabled = false

[delivery]
enabled = true
retry_deadline = "1500ms"
initial_backoff = "20ms"
max_backoff = "100ms"
connect_timeout = "200ms"
timeout = "300ms"
per_destination_interval = "1ms"

[delivery.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
from = "Baton <baton@example.com>"

[severity.P1]
max_hold = "400ms"
first_response = "700ms"
escalation = [ {{ routes = ["incident_captain", "lead", "broken", "nobody"], delay = "200ms" }} ]

[[ownership]]
workflow = "billing-*"
team = "payments"
primary = "alice"
backup = "bob"

[people.alice]
contact = [
  {{ kind = "webhook", url = "{bad}" }},
  {{ kind = "webhook", url = "{flaky}" }},
]

[routes.oncall]
target = "person:alice"

[routes.incident_captain]
target = "captains"
contact = [
  {{ kind = "webhook", url = "{hang}" }},
  {{ kind = "webhook", url = "http://{closing}/x" }},
  {{ kind = "email", to = "captain@example.com" }},
]

[routes.lead]
target = "leads"
contact = [ {{ kind = "slack", webhook_url = "{limited}" }} ]

[routes.broken]
target = "broken"
contact = [ {{ kind = "slack", webhook_url = "{gone}" }} ]
"#,
        smtp_port = smtp.addr.port(),
        bad = sink.url("bad"),
        flaky = sink.url("flaky"),
        hang = sink.url("hang"),
        limited = sink.url("limited"),
        gone = sink.url("slack_gone"),
    )
}

/// Runs the `baton` binary with this test's config.
fn baton(config_text: &str, args: &[&str]) -> (i32, String, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), config_text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--config")
        .arg(f.path())
        .args(args)
        .env("BATON_LOG", "warn")
        .output()
        .expect("baton runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The delivery events of one handoff, by page route.
fn deliveries(events: &[Event]) -> BTreeMap<String, Vec<EventData>> {
    let mut out: BTreeMap<String, Vec<EventData>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.data.is_delivery()) {
        let page_id = match &e.data {
            EventData::Delivered { page_id, .. }
            | EventData::DeliveryFailed { page_id, .. }
            | EventData::Undelivered { page_id, .. } => page_id,
            _ => unreachable!(),
        };
        let route = page_id.split_once(':').unwrap().1.to_string();
        out.entry(route).or_default().push(e.data.clone());
    }
    out
}

/// Waits until every page of the handoff has a final outcome.
async fn settled(js: &async_nats::jetstream::Context, id: Uuid, pages: usize) -> Vec<Event> {
    eventually("every page delivered or given up", || async {
        let events = events_of(js, id).await;
        let done = events
            .iter()
            .filter(|e| {
                matches!(
                    e.data,
                    EventData::Delivered { .. } | EventData::Undelivered { .. }
                )
            })
            .count();
        (done >= pages).then_some(events)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_recorded_in_the_log_and_escalation_is_not_delayed() {
    let nats = Nats::start();
    let sink = HttpSink::start().await;
    let smtp = SmtpSink::start().await;
    let closing = closing_listener().await;
    let daemon = Daemon::start(config(&nats.url, &sink, closing, &smtp)).await;
    let (_client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("deliver-1")).await;
    let id = p1_id("deliver-1");
    // The page (oncall) and the one escalation (four routes).
    let events = settled(&js, id, 5).await;
    let d = deliveries(&events);

    // oncall → alice: the 400 is permanent, the flaky one takes the 2nd try.
    let oncall = &d["oncall"];
    assert!(
        matches!(&oncall[0], EventData::DeliveryFailed { channel, reason, attempts: 1, person: Some(p), destination, .. }
            if channel == "webhook" && reason == "http_400" && p == "alice" && destination == &sink.addr.to_string()),
        "{oncall:?}"
    );
    assert!(
        matches!(&oncall[1], EventData::Delivered { attempts: 2, person: Some(p), .. } if p == "alice"),
        "{oncall:?}"
    );
    assert_eq!(oncall.len(), 2, "{oncall:?}");

    // incident_captain: a timeout and a closed connection exhaust their
    // retries, then the e-mail goes through.
    let cap = &d["incident_captain"];
    assert!(
        matches!(&cap[0], EventData::DeliveryFailed { reason, attempts, .. } if reason == "retries_exhausted: timeout" && *attempts >= 2),
        "{cap:?}"
    );
    assert!(
        matches!(&cap[1], EventData::DeliveryFailed { reason, .. } if reason.starts_with("retries_exhausted: conn")),
        "{cap:?}"
    );
    assert!(
        matches!(&cap[2], EventData::Delivered { channel, destination, attempts: 1, person: None, .. }
            if channel == "email" && destination == "c***@example.com"),
        "{cap:?}"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "captain@example.com");
    assert!(
        mails[0]
            .data
            .contains("Subject: [P1] payments: ledger API timed out"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].data.contains("text/html"), "{}", mails[0].data);

    // lead: Slack's 429 waits for Retry-After (1 s), then delivers.
    let lead = &d["lead"];
    assert!(
        matches!(&lead[0], EventData::Delivered { channel, attempts: 2, latency_ms, .. } if channel == "slack" && *latency_ms >= 1000),
        "{lead:?}"
    );
    let slack = sink.on("limited");
    assert_eq!(slack.len(), 2);
    let body: serde_json::Value = serde_json::from_slice(&slack[0].body).unwrap();
    assert!(
        body["blocks"].is_array() && body["text"].is_string(),
        "{body}"
    );

    // broken: Slack's channel_not_found is permanent; nothing else to try.
    assert!(
        matches!(&d["broken"][..], [EventData::DeliveryFailed { reason, attempts: 1, .. }, EventData::Undelivered { reason: why, .. }]
            if reason == "channel_not_found" && why == "all_methods_failed"),
        "{:?}",
        d["broken"]
    );
    // nobody: no contact at all.
    assert!(
        matches!(&d["nobody"][..], [EventData::Undelivered { reason, .. }] if reason == "no_contact"),
        "{:?}",
        d["nobody"]
    );

    // Every webhook attempt of a page carried the same key.
    for r in sink.on("flaky") {
        assert!(
            r.key.starts_with(&r.page_id) && r.key.ends_with(":1"),
            "{r:?}"
        );
    }

    // Escalation was not held up by delivery: the step fired 200 ms after
    // the page, while the page's own retries were still running.
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind() == kind)
            .unwrap()
            .occurred_at
    };
    let gap = at("escalated") - at("paged");
    assert!(
        gap.num_milliseconds() < 1000,
        "escalated {gap} after the page"
    );

    let m = &daemon.shared().metrics;
    assert!(
        m.delivery_attempts_total
            .with_label_values(&["webhook"])
            .get()
            >= 6
    );
    assert_eq!(
        m.delivery_failures_total
            .with_label_values(&["slack", "channel_not_found"])
            .get(),
        1
    );
    assert_eq!(
        m.delivery_seconds
            .with_label_values(&["email"])
            .get_sample_count(),
        1
    );

    // The timeline tells it; the audit accepts it.
    let text = config_text(&nats.url, &sink, closing, &smtp);
    let (code, story, err) = baton(&text, &["timeline", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "Webhook gave up on page oncall to alice at",
        "after 1 attempt(s): http_400.",
        "Webhook accepted ",
        "(attempt 2): page oncall to alice at",
        "E-mail accepted ",
        "Slack accepted ",
        "Page nobody reached nobody (no contact); escalation goes on regardless.",
    ] {
        assert!(story.contains(needle), "missing {needle:?} in:\n{story}");
    }
    let (code, out, err) = baton(&text, &["audit", "verify"]);
    assert_eq!(code, 0, "delivery events pass the audit:\n{out}\n{err}");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_record_sends_again_under_the_same_key_and_two_daemons_deliver_once() {
    let nats = Nats::start();
    let sink = HttpSink::start().await;
    let smtp = SmtpSink::start().await;
    let closing = closing_listener().await;
    let mut cfg = config(&nats.url, &sink, closing, &smtp);
    // One page per report, to alice's one webhook, which holds its first
    // request until the test lets it go.
    cfg.people.get_mut("alice").unwrap().contact = vec![baton::config::ContactConfig::Webhook {
        url: sink.url("hold"),
    }];
    cfg.severity.insert(
        baton::domain::Severity::P1,
        Config::parse(
            "[severity.P1]\nescalation = [ { routes = [\"oncall\"], delay = \"1h\" } ]\n",
        )
        .unwrap()
        .severity[&baton::domain::Severity::P1]
            .clone(),
    );
    let a = Daemon::start(cfg.clone()).await;
    let (_client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("crash-1")).await;
    let id = p1_id("crash-1");
    eventually("the sink holds the first request", || async {
        (!sink.on("hold").is_empty()).then_some(())
    })
    .await;
    // The remote has the page; the daemon dies before it hears back.
    a.crash();
    sink.release();

    // Two daemons now share the delivery consumer.
    let b = Daemon::start(cfg.clone()).await;
    let c = Daemon::start(cfg.clone()).await;
    let events = settled(&js, id, 1).await;
    let held = sink.on("hold");
    assert_eq!(held.len(), 2, "one more attempt after the crash: {held:?}");
    assert_eq!(held[0].key, held[1].key, "the same idempotency key");
    assert_eq!(held[0].body, held[1].body, "the same page");
    let delivered: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.data, EventData::Delivered { .. }))
        .collect();
    assert_eq!(delivered.len(), 1, "recorded once");

    // More pages with both daemons up: each is sent once, recorded once.
    for n in 0..4 {
        publish_report(&js, "agent_failure", &p1(&format!("two-{n}"))).await;
    }
    for n in 0..4 {
        let id = p1_id(&format!("two-{n}"));
        let events = settled(&js, id, 1).await;
        let d = events
            .iter()
            .filter(|e| matches!(e.data, EventData::Delivered { .. }))
            .count();
        assert_eq!(d, 1, "{n}");
    }
    let mut keys: Vec<String> = sink.on("hold").into_iter().map(|r| r.key).collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(total, 6, "1 + 1 after the crash + 4");
    assert_eq!(keys.len(), 5, "one key per page and method");
    b.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_links_get_shows_a_form_post_acts_as_the_person_and_bad_links_are_refused() {
    let (nats, sink, _smtp, daemon, port) = with_links("", |cfg, sink| {
        cfg.people.get_mut("alice").unwrap().contact = vec![baton::config::ContactConfig::Slack {
            webhook_url: sink.url("ok"),
            member: Some("U012AB3CD".into()),
        }];
    })
    .await;
    let (_client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("links-1")).await;
    let id = p1_id("links-1");
    let body: serde_json::Value = eventually("alice's Slack message", || async {
        let r = sink.on("ok");
        r.first().map(|r| serde_json::from_slice(&r.body).unwrap())
    })
    .await;
    let actions = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons")
        .clone();
    let ack = actions["elements"][0]["url"].as_str().unwrap().to_string();
    let resolve = actions["elements"][1]["url"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();

    // GET (a link previewer, a mail scanner) only shows the form.
    let r = http.get(&ack).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"") && html.contains("as alice"),
        "{html}"
    );
    assert!(!kinds(&events_of(&js, id).await).contains(&"acknowledged"));

    // Tampered and expired links are refused, with a page saying so.
    altered_is_refused(&http, &ack).await;
    let expired = baton::delivery::links::sign(
        &baton::delivery::links::Capability {
            handoff: id,
            person: "alice".into(),
            action: baton::delivery::links::Action::Acknowledge,
            expires: chrono::Utc::now() - chrono::Duration::minutes(1),
        },
        "key-new",
    );
    let r = http
        .post(format!("http://127.0.0.1:{port}/a/{expired}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(!kinds(&events_of(&js, id).await).contains(&"acknowledged"));

    // POST acts, as the person the link was sent to; a second use is refused.
    let r = http.post(&ack).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let events = events_of(&js, id).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.data, EventData::Acknowledged { by, .. } if by == "alice")),
        "{:?}",
        kinds(&events)
    );
    let r = http.post(&ack).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("used already"));
    let r = http.post(&resolve).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(events_of(&js, id)
        .await
        .iter()
        .any(|e| matches!(&e.data, EventData::Resolved { by, .. } if by == "alice")));
    daemon.stop().await.unwrap();
}

/// A daemon with HTTP and one-click links on (signed with `key-new`, also
/// accepting `key-old`): this file's config plus `extra` (`SINK_OK` in it
/// becomes the sink's `ok` URL), then `tweak`. Returns the nats-server, the
/// sinks, the daemon and its HTTP port.
async fn with_links(
    extra: &str,
    tweak: impl FnOnce(&mut Config, &HttpSink),
) -> (Nats, HttpSink, SmtpSink, Daemon, u16) {
    let nats = Nats::start();
    let sink = HttpSink::start().await;
    let smtp = SmtpSink::start().await;
    let closing = closing_listener().await;
    let port = baton::dev::free_port();
    let text =
        config_text(&nats.url, &sink, closing, &smtp) + &extra.replace("SINK_OK", &sink.url("ok"));
    let mut cfg = Config::parse(&text).expect("config parses");
    cfg.validate().expect("config is valid");
    cfg.http.enabled = true;
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.delivery.public_url = Some(format!("http://127.0.0.1:{port}"));
    cfg.delivery.ack_keys = vec!["key-new".into(), "key-old".into()];
    tweak(&mut cfg, &sink);
    (nats, sink, smtp, Daemon::start(cfg).await, port)
}

/// A copy of `link` with its last character changed is refused (400) with
/// a page saying so.
async fn altered_is_refused(http: &reqwest::Client, link: &str) {
    let mut tampered = link.to_string();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let r = http.post(&tampered).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not valid"));
}

/// POSTing `link` acts (200) and stores an event `done` recognises; a
/// second POST changes nothing and says the link was used already (409).
async fn acts_once(
    http: &reqwest::Client,
    link: &str,
    js: &async_nats::jetstream::Context,
    id: Uuid,
    done: impl Fn(&EventData) -> bool,
) {
    let r = http.post(link).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let events = events_of(js, id).await;
    assert!(events.iter().any(|e| done(&e.data)), "{:?}", kinds(&events));
    let r = http.post(link).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("used already"));
}

/// The Slack message's link buttons: (label, url).
fn buttons(body: &serde_json::Value) -> Vec<(String, String)> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons")["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["text"]["text"].as_str().unwrap().to_string(),
                b["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_handoff_pages_carry_accept_and_complete_links_that_act_as_the_person() {
    // The team route reaches olga, whose only contact is Slack (the
    // sink's `ok` path, filled in by `with_links`).
    let olga = "\n[people.olga]\ncontact = [ { kind = \"slack\", webhook_url = \"SINK_OK\" } ]\n\
                \n[routes.team]\ntarget = \"person:olga\"\n";
    let (nats, sink, _smtp, daemon, _port) = with_links(olga, |_, _| {}).await;
    let (client, js) = nats.client().await;
    let r = command(
        &client,
        "start",
        serde_json::json!({"template": "sales_to_onboarding", "by": "sam", "fields": {
            "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
            "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
        }}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let id: Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    let body: serde_json::Value = eventually("olga's Slack message", || async {
        let r = sink.on("ok");
        r.first().map(|r| serde_json::from_slice(&r.body).unwrap())
    })
    .await;
    let links = buttons(&body);
    let labels: Vec<&str> = links.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["Accept", "Complete"], "{body}");
    let (accept, complete) = (links[0].1.clone(), links[1].1.clone());
    let http = reqwest::Client::new();

    // GET only shows the form; nothing is accepted.
    let r = http.get(&accept).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"")
            && html.contains("Accept as olga?")
            && html.contains("sales_to_onboarding from sales to onboarding, now initiated"),
        "{html}"
    );
    assert!(!kinds(&events_of(&js, id).await).contains(&"accepted"));

    // Complete before accepting: refused as not done, not as used.
    let r = http.post(&complete).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Not done") && html.contains("accepted"),
        "{html}"
    );

    altered_is_refused(&http, &accept).await;

    // POST accepts as olga; a second use says the link was used.
    acts_once(
        &http,
        &accept,
        &js,
        id,
        |e| matches!(e, EventData::Accepted { by, .. } if by == "olga"),
    )
    .await;

    // Once the checklist is done, the complete link completes it as olga.
    for item in 1..=4 {
        let r = command(
            &client,
            "check",
            serde_json::json!({"id": id, "by": "olga", "item": item}),
        )
        .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    acts_once(
        &http,
        &complete,
        &js,
        id,
        |e| matches!(e, EventData::Completed { by, .. } if by == "olga"),
    )
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_deliver_runs_the_worker_alone_and_baton_deliveries_lists_the_outcomes() {
    let nats = Nats::start();
    let sink = HttpSink::start().await;
    let smtp = SmtpSink::start().await;
    let closing = closing_listener().await;
    let text = config_text(&nats.url, &sink, closing, &smtp);
    // The daemon escalates and pages but does not deliver.
    let mut cfg = config(&nats.url, &sink, closing, &smtp);
    cfg.delivery.enabled = false;
    let daemon = Daemon::start(cfg).await;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &text).unwrap();
    let probes = format!("127.0.0.1:{}", baton::dev::free_port());
    let _deliverer = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--config")
        .arg(f.path())
        .arg("deliver")
        .env("BATON_LOG", "warn")
        .env("BATON_DELIVERY_LISTEN", &probes)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baton deliver runs");
    let (_client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("alone-1")).await;
    let id = p1_id("alone-1");
    settled(&js, id, 5).await;
    assert_eq!(sink.on("flaky").len(), 2, "alice's page: 500, then 200");

    // Run alone, it serves its probes and metrics on `[delivery] listen`.
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{probes}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    // Every page finished: the queue depth's channels are back to 0 (each
    // page leaves it just after its outcome is stored, hence the wait).
    let metrics = eventually("the queue depth back to 0", || async {
        let m = get("/metrics").await.ok()?.text().await.ok()?;
        m.contains("baton_delivery_queue_depth{channel=\"webhook\"} 0")
            .then_some(m)
    })
    .await;
    assert!(
        metrics.contains("baton_delivery_attempts_total{channel=\"webhook\"}"),
        "{metrics}"
    );
    // Its projection (no projector feeds it) keeps nothing once the pages
    // are done: the handoff it loaded to record 5 outcomes is forgotten,
    // so it no longer counts it open (it did while it held it).
    let open = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("baton_open_handoffs{"))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    eventually("the lone worker holds no handoff", || async {
        let m = get("/metrics").await.ok()?.text().await.ok()?;
        let values = open(&m);
        (!values.is_empty() && values.iter().all(|v| v == "0")).then_some(())
    })
    .await;

    let (code, out, err) = baton(&text, &["deliveries", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "FAILED ",
        "via webhook to ",
        ": http_400 after 1 attempt(s)",
        "DELIVERED ",
        "via email to c***@example.com (attempt 1,",
        "UNDELIVERED ",
        ":nobody: no_contact",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    daemon.stop().await.unwrap();
}
