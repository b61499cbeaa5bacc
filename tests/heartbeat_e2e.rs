//! Heartbeat monitors end to end on a private nats-server, with millisecond
//! periods: a miss pages, the next ok resolves; a fail pages at once; a
//! deadline missed while the daemon was down fires on start; two daemons
//! open one handoff per miss; HTTP pings; bad pings are counted, not fatal.

mod common;

use std::net::SocketAddr;

use async_nats::jetstream;
use baton::config::Config;
use baton::domain::{keyed_handoff_id, Event, EventData};
use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const TOKEN: &str = "heartbeat-token-0123456789";

/// `etl`: pinged every 300 ms with 100 ms grace; `slow`: 2 s in all, time
/// enough to stop a daemon before it; `quiet`: never pinged and not
/// configured to alert; `hourly`: a long period, for fails.
const MONITORS: &str = r#"
[[heartbeat]]
name = "etl"
period = "300ms"
grace = "100ms"
severity = "P1"
team = "payments"
workflow = "billing-etl"

[[heartbeat]]
name = "slow"
period = "1500ms"
grace = "500ms"
severity = "P1"
team = "payments"
workflow = "billing-etl"

[[heartbeat]]
name = "quiet"
period = "100ms"
grace = "0s"
severity = "P1"
team = "payments"
workflow = "billing-etl"

[[heartbeat]]
name = "hourly"
period = "1h"
grace = "5m"
severity = "P1"
team = "payments"
workflow = "billing-etl"
"#;

fn hb_config(url: &str) -> Config {
    let mut cfg = Config::parse(&format!("{TEST_CONFIG}{MONITORS}")).expect("parses");
    cfg.nats.url = url.to_string();
    cfg.validate().expect("valid");
    cfg
}

/// Publishes a ping through JetStream; its stream sequence and time.
async fn ping(js: &jetstream::Context, name: &str, body: &str) -> (u64, DateTime<Utc>) {
    let ack = js
        .publish(format!("baton.heartbeat.{name}"), body.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let stream = js.get_stream("BATON_HEARTBEATS").await.unwrap();
    let msg = stream.get_raw_message(ack.sequence).await.unwrap();
    let at = DateTime::from_timestamp_nanos(msg.time.unix_timestamp_nanos() as i64);
    (ack.sequence, at)
}

/// The handoff of monitor `name`'s outage after the ok at `last_ok_seq`.
fn outage(name: &str, last_ok_seq: u64) -> Uuid {
    keyed_handoff_id("agent_failure", &format!("heartbeat:{name}:{last_ok_seq}"))
}

/// Waits until the handoff's events include `kind`; returns them all.
async fn wait_for(js: &jetstream::Context, id: Uuid, kind: &str) -> Vec<Event> {
    eventually(kind, || async {
        let events = events_of(js, id).await;
        kinds(&events).contains(&kind).then_some(events)
    })
    .await
}

fn opened_packet(events: &[Event]) -> baton::domain::Packet {
    events
        .iter()
        .find_map(|e| match &e.data {
            EventData::Opened { packet, .. } => Some(baton::domain::Packet::clone(packet)),
            _ => None,
        })
        .expect("an opened event")
}

fn count(events: &[Event], kind: &str) -> usize {
    kinds(events).iter().filter(|k| **k == kind).count()
}

fn misses(d: &Daemon, name: &str) -> u64 {
    d.shared()
        .metrics
        .heartbeat_misses_total
        .with_label_values(&[name])
        .get()
}

fn pings_seen(d: &Daemon, name: &str, status: &str) -> u64 {
    d.shared()
        .metrics
        .heartbeat_pings_total
        .with_label_values(&[name, status])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_pages_and_the_next_ok_resolves_it_by_heartbeat() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let daemon = Daemon::start(hb_config(&nats.url)).await;

    let (seq, at) = ping(&js, "etl", "").await;
    let id = outage("etl", seq);
    let events = wait_for(&js, id, "paged").await;
    assert_eq!(count(&events, "opened"), 1);
    let opened_at = events[0].occurred_at;
    assert!(
        opened_at >= at + chrono::Duration::milliseconds(400),
        "not before the deadline: ping {at}, opened {opened_at}"
    );
    let packet = opened_packet(&events);
    assert_eq!(packet.objective.as_deref(), Some("heartbeat etl"));
    assert_eq!(packet.failure_class.as_deref(), Some("heartbeat_missed"));
    let summary = packet.error_summary.unwrap();
    assert!(
        summary.contains("last seen") && summary.contains("expected by"),
        "{summary}"
    );
    assert!(!pages_of(&js, id).await.is_empty(), "a page on BATON_PAGES");
    assert_eq!(misses(&daemon, "etl"), 1);

    let (next, _) = ping(&js, "etl", r#"{"status":"ok","message":"back"}"#).await;
    let events = wait_for(&js, id, "resolved").await;
    let resolved = events.iter().find(|e| e.kind() == "resolved").unwrap();
    assert_eq!(resolved.actor, "heartbeat");
    // The next outage is another handoff, opened by the next miss.
    wait_for(&js, outage("etl", next), "opened").await;
    // `quiet` was never pinged and does not alert.
    assert!(events_of(&js, outage("quiet", 0)).await.is_empty());
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_pages_at_once_with_its_message_and_an_ok_resolves_it() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let daemon = Daemon::start(hb_config(&nats.url)).await;

    let (seq, _) = ping(&js, "hourly", "").await;
    ping(&js, "hourly", r#"{"status":"start"}"#).await;
    ping(
        &js,
        "hourly",
        r#"{"status":"fail","message":"exit 3: disk full"}"#,
    )
    .await;
    let id = outage("hourly", seq);
    let events = wait_for(&js, id, "paged").await;
    let packet = opened_packet(&events);
    assert_eq!(packet.failure_class.as_deref(), Some("heartbeat_failed"));
    assert!(packet.error_summary.unwrap().ends_with("exit 3: disk full"));
    assert_eq!(misses(&daemon, "hourly"), 0, "a fail is not a miss");

    ping(&js, "hourly", "").await;
    let events = wait_for(&js, id, "resolved").await;
    assert_eq!(count(&events, "opened"), 1);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_missed_while_baton_was_down_fires_on_start_and_only_once() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let daemon = Daemon::start(hb_config(&nats.url)).await;
    let (seq, at) = ping(&js, "slow", "").await;
    eventually("the ping is read", || async {
        (pings_seen(&daemon, "slow", "ok") == 1).then_some(())
    })
    .await;
    daemon.stop().await.unwrap();

    let due = at + chrono::Duration::milliseconds(2_000);
    eventually("the deadline passes while down", || async {
        (Utc::now() > due).then_some(())
    })
    .await;
    let id = outage("slow", seq);
    assert!(
        events_of(&js, id).await.is_empty(),
        "nobody was up to see it"
    );

    let daemon = Daemon::start(hb_config(&nats.url)).await;
    let events = wait_for(&js, id, "paged").await;
    assert_eq!(count(&events, "opened"), 1);
    daemon.stop().await.unwrap();

    // Started again, the same missed deadline is the same outage: not reopened.
    let daemon = Daemon::start(hb_config(&nats.url)).await;
    eventually("the restarted daemon armed its monitors", || async {
        (*daemon.shared().ready.borrow()).then_some(())
    })
    .await;
    ping(&js, "hourly", "").await;
    eventually("the daemon follows the stream", || async {
        (pings_seen(&daemon, "hourly", "ok") == 1).then_some(())
    })
    .await;
    assert_eq!(misses(&daemon, "slow"), 0);
    let events = events_of(&js, id).await;
    assert_eq!(count(&events, "opened"), 1, "{:?}", kinds(&events));
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_open_one_handoff_per_miss_and_per_fail() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let a = Daemon::start(hb_config(&nats.url)).await;
    let b = Daemon::start(hb_config(&nats.url)).await;

    for round in 0..2 {
        let (seq, _) = ping(&js, "etl", "").await;
        let id = outage("etl", seq);
        let events = wait_for(&js, id, "paged").await;
        // Both daemons' timers fired (each took the tick, or saw it open).
        eventually("both daemons handled the miss", || async {
            (misses(&a, "etl") + misses(&b, "etl") == round + 1).then_some(())
        })
        .await;
        assert_eq!(
            count(&events, "opened"),
            1,
            "round {round}: {:?}",
            kinds(&events)
        );
        // The loser of the race decided the same opening again: nothing.
        let all = events_of(&js, id).await;
        assert_eq!(count(&all, "reported_again"), 0, "{:?}", kinds(&all));
        let opened = a
            .shared()
            .engine
            .projection()
            .all()
            .into_iter()
            .filter(|h| {
                h.as_incident()
                    .is_some_and(|i| i.packet.objective.as_deref() == Some("heartbeat etl"))
            })
            .count() as u64;
        assert_eq!(opened, round + 1, "one handoff per miss");
    }
    // Both daemons read the same `fail` ping: one opening, nothing joined.
    let (seq, _) = ping(&js, "hourly", "").await;
    ping(&js, "hourly", r#"{"status":"fail"}"#).await;
    let id = outage("hourly", seq);
    wait_for(&js, id, "paged").await;
    eventually("both daemons read the fail", || async {
        (pings_seen(&a, "hourly", "fail") == 1 && pings_seen(&b, "hourly", "fail") == 1)
            .then_some(())
    })
    .await;
    let events = events_of(&js, id).await;
    assert_eq!(count(&events, "opened"), 1, "{:?}", kinds(&events));
    assert_eq!(count(&events, "reported_again"), 0, "{:?}", kinds(&events));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_unknown_pings_are_counted_and_change_nothing() {
    let nats = Nats::start();
    let (client, js) = nats.client().await;
    let daemon = Daemon::start(hb_config(&nats.url)).await;
    client
        .publish("baton.heartbeat.nobody", "".into())
        .await
        .unwrap();
    client
        .publish("baton.heartbeat.hourly", "{not json".into())
        .await
        .unwrap();
    client
        .publish("baton.heartbeat.hourly", r#"{"status":"done"}"#.into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let rejected = |reason: &str| {
        daemon
            .shared()
            .metrics
            .heartbeat_pings_rejected_total
            .with_label_values(&[reason])
            .get()
    };
    eventually("the bad pings are counted", || async {
        (rejected("unknown_monitor") == 1 && rejected("invalid_body") == 2).then_some(())
    })
    .await;
    // The reader goes on: a good ping after them is taken.
    ping(&js, "hourly", "").await;
    eventually("a good ping after them", || async {
        (pings_seen(&daemon, "hourly", "ok") == 1).then_some(())
    })
    .await;
    daemon.stop().await.unwrap();
}

/// A minimal HTTP/1.1 exchange (`Connection: close`): status and body.
async fn http(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let method = if path == "/openapi.json" {
        "GET"
    } else {
        "POST"
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a full reply");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pings_fail_and_resolve_and_refuse_unknown_monitors_and_bad_bodies() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let mut cfg = hb_config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    let daemon = Daemon::start(cfg).await;
    let addr = daemon
        .running
        .as_ref()
        .unwrap()
        .http_addr
        .expect("listening");

    let (status, ok) = http(addr, "/v1/heartbeats/hourly", Some(TOKEN), "").await;
    assert_eq!(status, 202, "{ok}");
    assert_eq!(ok["monitor"], "hourly");
    assert_eq!(ok["status"], "ok");
    let seq = ok["seq"].as_u64().unwrap();

    let (status, failed) = http(
        addr,
        "/v1/heartbeats/hourly/fail",
        Some(TOKEN),
        r#"{"message":"exit 3"}"#,
    )
    .await;
    assert_eq!(status, 202, "{failed}");
    assert_eq!(failed["status"], "fail");
    let id = outage("hourly", seq);
    let events = wait_for(&js, id, "paged").await;
    assert!(opened_packet(&events)
        .error_summary
        .unwrap()
        .ends_with("exit 3"));

    let (status, started) = http(addr, "/v1/heartbeats/hourly/start", Some(TOKEN), "").await;
    assert_eq!((status, &started["status"]), (202, &json!("start")));
    let (status, _) = http(addr, "/v1/heartbeats/hourly", Some(TOKEN), "").await;
    assert_eq!(status, 202);
    wait_for(&js, id, "resolved").await;

    let (status, problem) = http(addr, "/v1/heartbeats/nobody", Some(TOKEN), "").await;
    assert_eq!((status, &problem["code"]), (404, &json!("unknown_monitor")));
    let (status, problem) = http(addr, "/v1/heartbeats/hourly", Some(TOKEN), "{nope").await;
    assert_eq!(
        (status, &problem["code"]),
        (422, &json!("invalid_heartbeat"))
    );
    let (status, problem) = http(
        addr,
        "/v1/heartbeats/hourly/start",
        Some(TOKEN),
        r#"{"status":"fail"}"#,
    )
    .await;
    assert_eq!(
        (status, &problem["code"]),
        (422, &json!("invalid_heartbeat"))
    );
    let (status, _) = http(addr, "/v1/heartbeats/hourly", None, "").await;
    assert_eq!(status, 401);

    let (status, doc) = http(addr, "/openapi.json", None, "").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/heartbeats/{name}",
        "/v1/heartbeats/{name}/start",
        "/v1/heartbeats/{name}/fail",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} documented");
    }
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_never_pinged_alerts_only_when_configured_to() {
    let nats = Nats::start();
    let (_c, js) = nats.client().await;
    let mut cfg = hb_config(&nats.url);
    let mut expected = cfg.heartbeat[0].clone();
    expected.name = "expected".into();
    expected.alert_if_never_pinged = true;
    cfg.heartbeat.push(expected);
    let daemon = Daemon::start(cfg).await;

    let events = wait_for(&js, outage("expected", 0), "opened").await;
    let summary = opened_packet(&events).error_summary.unwrap();
    assert!(summary.contains("last seen never"), "{summary}");
    // `quiet`'s 100 ms passed long before `expected`'s 400 ms: still silent.
    assert!(events_of(&js, outage("quiet", 0)).await.is_empty());
    assert_eq!(misses(&daemon, "quiet"), 0);
    daemon.stop().await.unwrap();
}
