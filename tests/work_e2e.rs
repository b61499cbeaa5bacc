//! Team handoffs end to end over NATS: sales → onboarding with its
//! notification, checklist, completion, rating and the sender's figures; a
//! late accept escalating; a template edited under an open handoff.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn fields() -> Value {
    json!({
        "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
        "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
    })
}

async fn ok(client: &async_nats::Client, verb: &str, body: Value) -> Value {
    let r = command(client, verb, body.clone()).await;
    assert_eq!(r["ok"], true, "{verb} {body}: {r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_to_onboarding_from_start_to_rating_and_the_senders_figures() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;

    let mut missing = fields();
    missing.as_object_mut().unwrap().remove("goals");
    let r = command(
        &client,
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": missing}),
    )
    .await;
    assert_eq!(r["error"]["code"], "missing_required_fields");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("goals"),
        "{r}"
    );

    let r = command(
        &client,
        "start",
        json!({"template": "no_such", "by": "sam", "fields": fields()}),
    )
    .await;
    assert_eq!(r["error"]["code"], "unknown_template");

    let r = ok(
        &client,
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields()}),
    )
    .await;
    let id: uuid::Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    let note = eventually("onboarding notified", || async {
        pages_of(&js, id).await.into_iter().next()
    })
    .await;
    assert_eq!(
        (note.kind.as_str(), note.route.as_str(), note.team.as_str()),
        ("handoff", "team", "onboarding")
    );
    let subjects: Vec<String> = stream_json(&js, "BATON_PAGES")
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(subjects.contains(&"baton.page.team.onboarding".to_string()));
    assert_eq!(note.work.as_ref().unwrap().checklist.len(), 4);

    ok(&client, "accept", json!({"id": id, "by": "olga"})).await;
    ok(&client, "check", json!({"id": id, "by": "olga", "item": 1})).await;
    ok(
        &client,
        "check",
        json!({"id": id, "by": "olga", "item": "Welcome email sent"}),
    )
    .await;
    let r = command(&client, "complete", json!({"id": id, "by": "olga"})).await;
    assert_eq!(r["error"]["code"], "checklist_incomplete");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Kickoff meeting scheduled") && msg.contains("Client portal access created"),
        "{msg}"
    );
    ok(&client, "check", json!({"id": id, "by": "olga", "item": 2})).await;
    ok(&client, "check", json!({"id": id, "by": "olga", "item": 3})).await;
    ok(&client, "complete", json!({"id": id, "by": "olga"})).await;
    ok(
        &client,
        "rate",
        json!({"id": id, "by": "olga", "rating": 4, "comment": "clear packet"}),
    )
    .await;

    // A second handoff from sales that comes back once for missing context.
    let r = ok(
        &client,
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields()}),
    )
    .await;
    let second = r["handoff"]["id"].as_str().unwrap().to_string();
    ok(
        &client,
        "return",
        json!({"id": second, "by": "olga", "missing": ["crm_link"], "reason": "no CRM record"}),
    )
    .await;
    let back = eventually("sales told it came back", || async {
        pages(&js).await.into_iter().find(|p| p.kind == "returned")
    })
    .await;
    assert_eq!(back.team, "sales");
    ok(
        &client,
        "resubmit",
        json!({"id": second, "by": "sam", "fields": {"crm_link": "https://crm/acme"}}),
    )
    .await;

    // The same figures as `GET /v1/stats`: the team handoffs are in `work`.
    let stats = ok(&client, "stats", json!({})).await;
    assert_eq!(stats["stats"]["days"], 30);
    let row = stats["stats"]["work"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"] == "sales_to_onboarding")
        .unwrap()
        .clone();
    assert_eq!(row["from_team"], "sales");
    assert_eq!(row["total"], 2);
    assert_eq!(row["completed"], 1);
    assert_eq!(row["completion_rate"], 50.0);
    assert_eq!(row["returns_per_handoff"], 0.5);
    assert_eq!(row["avg_rating"], 4.0);
    assert!(row["avg_accept_hours"].as_f64().is_some());

    let metrics = eventually("work metrics", || async {
        let m = daemon.shared().metrics.render();
        m.contains(
            "baton_work_returns_total{from_team=\"sales\",template=\"sales_to_onboarding\"} 1",
        )
        .then_some(m)
    })
    .await;
    assert!(
        metrics.contains(
            "baton_work_rating_count{from_team=\"sales\",template=\"sales_to_onboarding\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains("baton_mtta_seconds_count"),
        "team handoffs stay out of incident MTTA"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_accept_escalates_and_a_template_edit_does_not_rewrite_an_open_handoff() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    let t = cfg.templates.get_mut("sales_to_onboarding").unwrap();
    t.sla.as_mut().unwrap().accept = Duration::from_millis(300);
    let daemon = Daemon::start(cfg.clone()).await;
    let (client, js) = nats.client().await;
    let r = ok(&client, "start", json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields(), "dedup_key": "acme-2026"})).await;
    let id: uuid::Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    let esc = eventually("accept SLA escalation", || async {
        pages_of(&js, id)
            .await
            .into_iter()
            .find(|p| p.kind == "sla_missed")
    })
    .await;
    assert_eq!(
        (esc.route.as_str(), esc.target.as_str()),
        ("team_lead", "onboarding-lead")
    );
    let again = ok(&client, "start", json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields(), "dedup_key": "acme-2026"})).await;
    assert_eq!(
        again["handoff"]["id"],
        id.to_string(),
        "a retried start joins the same handoff"
    );
    assert_eq!(again["events"], json!([]));
    ok(&client, "accept", json!({"id": id, "by": "olga"})).await;
    daemon.stop().await.unwrap();

    // v2 adds an exit criterion; the open handoff keeps v1's four.
    let mut cfg2 = cfg.clone();
    let t2 = cfg2.templates.get_mut("sales_to_onboarding").unwrap();
    t2.version = 2;
    t2.checklist.push("Security review done".into());
    let daemon = Daemon::start(cfg2).await;
    for i in 1..=4 {
        ok(&client, "check", json!({"id": id, "by": "olga", "item": i})).await;
    }
    let done = ok(&client, "complete", json!({"id": id, "by": "olga"})).await;
    assert_eq!(done["handoff"]["template_version"], 1);
    let r = ok(
        &client,
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields()}),
    )
    .await;
    assert_eq!(
        r["handoff"]["template_version"], 2,
        "new handoffs use the new version"
    );
    daemon.stop().await.unwrap();
}
