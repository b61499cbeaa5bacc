//! Bounded memory against a real `nats-server`: a closed handoff leaves the
//! projection after `limits.closed_retention` (a few hundred ms here) and
//! still answers exactly as before — `get` over NATS and HTTP, its events,
//! commands, a recurrence of its dedup key, a retried start with its dedup
//! key — and a restart (snapshot, then the tail) does not bring it back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use baton::domain::{occurrence_id, EventData};
use common::*;
use serde_json::{json, Value};
use uuid::Uuid;

#[path = "support/http.rs"]
mod http;

const TEMPLATE: &str = "agent_failure";
const TOKEN: &str = "eviction-token-0123456789";
const BEARER: &str = "Authorization: Bearer eviction-token-0123456789";

fn evicting(url: &str) -> baton::config::Config {
    let mut cfg = config(url);
    cfg.limits.closed_retention = Duration::from_millis(300);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    cfg
}

fn http_addr(d: &Daemon) -> SocketAddr {
    d.running.as_ref().unwrap().http_addr.expect("HTTP is on")
}

async fn ok(client: &async_nats::Client, verb: &str, body: Value) -> Value {
    let r = command(client, verb, body.clone()).await;
    assert_eq!(r["ok"], true, "{verb} {body}: {r}");
    r
}

/// Waits until the daemon no longer holds `id` in memory.
async fn evicted(d: &Daemon, id: Uuid) {
    let shared = d.shared();
    eventually("the handoff is evicted", || async {
        (shared.engine.projection().get(id).is_none()
            && shared.metrics.handoffs_evicted_total.get() > 0)
            .then_some(())
    })
    .await
}

/// What every read path answers for `id`: NATS `get`, HTTP `GET`, and its
/// events over HTTP.
async fn reads(client: &async_nats::Client, addr: SocketAddr, id: Uuid) -> (Value, Value, Value) {
    let nats = ok(client, "get", json!({"id": id})).await["handoff"].clone();
    let (status, http) =
        http::json(addr, "GET", &format!("/v1/handoffs/{id}"), &[BEARER], None).await;
    assert_eq!(status, 200, "{http}");
    let (status, events) = http::json(
        addr,
        "GET",
        &format!("/v1/handoffs/{id}/events"),
        &[BEARER],
        None,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    (nats, http, events)
}

fn opened_link(events: &[baton::domain::Event]) -> Option<(Option<Uuid>, Option<u32>)> {
    events.iter().find_map(|e| match &e.data {
        EventData::Opened {
            recurrence_of,
            occurrence,
            ..
        } => Some((*recurrence_of, *occurrence)),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_incident_is_evicted_answers_as_before_recurs_and_stays_evicted_across_a_restart(
) {
    let nats = Nats::start();
    let daemon = Daemon::start(evicting(&nats.url)).await;
    let (client, js) = nats.client().await;
    let addr = http_addr(&daemon);
    let first = p1_id("evict");
    assert_eq!(first, occurrence_id(TEMPLATE, "billing-sync/evict", 1));

    publish_report(&js, TEMPLATE, &p1("evict")).await;
    eventually("the report opens the handoff", || async {
        (!events_of(&js, first).await.is_empty()).then_some(())
    })
    .await;
    // The reply is the state in memory when the command ran: "before".
    let resolved = ok(&client, "resolve", json!({"id": first, "by": "alice"})).await;
    let before = resolved["handoff"].clone();
    let refused_before = command(&client, "ack", json!({"id": first, "by": "bob"})).await;
    assert_eq!(
        refused_before["error"]["code"], "resolved",
        "{refused_before}"
    );

    evicted(&daemon, first).await;
    let (by_nats, by_http, events) = reads(&client, addr, first).await;
    assert_eq!(by_nats, before, "NATS get answers as before eviction");
    assert_eq!(by_http, before, "HTTP get answers as before eviction");
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(events_of(&js, first).await.len()),
        "{events}"
    );
    let list = ok(&client, "list", json!({})).await;
    assert!(
        !list.to_string().contains(&first.to_string()),
        "the list shows what is held: {list}"
    );
    // Stats over a window longer than the retention say they are cut.
    let stats = ok(&client, "stats", json!({"days": 1})).await;
    assert!(
        stats["stats"]["closed_evicted_before"].is_string(),
        "{stats}"
    );
    // A command on it loads it through the write path: the same refusal.
    let refused = command(&client, "ack", json!({"id": first, "by": "bob"})).await;
    assert_eq!(refused["error"], refused_before["error"]);
    // Reads leave nothing behind (the refused command's load is evicted
    // again by the next tick).
    evicted(&daemon, first).await;

    // The key again: occurrence 2, linked to the evicted first one.
    publish_report(&js, TEMPLATE, &p1("evict")).await;
    let second = occurrence_id(TEMPLATE, "billing-sync/evict", 2);
    let link = eventually("occurrence 2 opens", || async {
        opened_link(&events_of(&js, second).await)
    })
    .await;
    assert_eq!(link, (Some(first), Some(2)));
    let third = occurrence_id(TEMPLATE, "billing-sync/evict", 3);
    assert!(events_of(&js, third).await.is_empty());

    // A restart restores the snapshot written at stop (which holds the
    // open second occurrence, not the evicted first) and keeps it so.
    daemon.stop().await.unwrap();
    let daemon = Daemon::start(evicting(&nats.url)).await;
    let shared = daemon.shared();
    assert!(shared.metrics.snapshot_restored_seq.get() > 0, "restored");
    assert!(shared.engine.projection().get(second).is_some());
    assert!(shared.engine.projection().get(first).is_none());
    let (by_nats, by_http, _) = reads(&client, http_addr(&daemon), first).await;
    assert_eq!((by_nats, by_http), (before.clone(), before));
    assert_eq!(
        shared.metrics.handoffs_evicted_total.get(),
        0,
        "the snapshot held nothing to evict again"
    );
    // Another report joins occurrence 2: no duplicate, never occurrence 1.
    publish_report(&js, TEMPLATE, &p1("evict")).await;
    eventually("the report joins occurrence 2", || async {
        kinds(&events_of(&js, second).await)
            .contains(&"reported_again")
            .then_some(())
    })
    .await;
    assert!(events_of(&js, third).await.is_empty());
    daemon.stop().await.unwrap();
}

fn fields() -> Value {
    json!({
        "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
        "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_team_handoff_is_evicted_and_its_start_key_and_commands_answer_as_before() {
    let nats = Nats::start();
    let daemon = Daemon::start(evicting(&nats.url)).await;
    let (client, _js) = nats.client().await;
    let addr = http_addr(&daemon);
    let start = json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields(), "dedup_key": "acme-evict"});
    let r = ok(&client, "start", start.clone()).await;
    let id: Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    ok(&client, "accept", json!({"id": id, "by": "olga"})).await;
    for item in 1..=4 {
        ok(
            &client,
            "check",
            json!({"id": id, "by": "olga", "item": item}),
        )
        .await;
    }
    let done = ok(&client, "complete", json!({"id": id, "by": "olga"})).await;
    let before = done["handoff"].clone();
    let again_before = command(&client, "start", start.clone()).await;

    evicted(&daemon, id).await;
    let (by_nats, by_http, _) = reads(&client, addr, id).await;
    assert_eq!((&by_nats, &by_http), (&before, &before));
    // The same start (its dedup key names this handoff) answers the same.
    let again = command(&client, "start", start).await;
    assert_eq!(again, again_before);
    // A command still due on it (a rating) is stored after its last commit.
    let rated = ok(
        &client,
        "rate",
        json!({"id": id, "by": "olga", "rating": 5, "comment": "smooth"}),
    )
    .await;
    assert_eq!(rated["handoff"]["status"], before["status"]);
    assert!(rated["seq"].as_u64().is_some(), "{rated}");
    evicted(&daemon, id).await;
    let (by_nats, _, _) = reads(&client, addr, id).await;
    assert_eq!(
        by_nats, rated["handoff"],
        "the rating is read back from the log"
    );
    daemon.stop().await.unwrap();
}
