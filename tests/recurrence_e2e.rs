//! Recurrence and redelivery against a real `nats-server`: a report whose
//! dedup key's handoff was resolved opens a new occurrence, pages anew, and
//! is decided once — across a restart and with two daemons; a report
//! recorded already changes nothing however many reports came since.

mod common;

use baton::app::engine::ReportSource;
use baton::app::reports::Ingested;
use baton::domain::{occurrence_id, EventData, Handoff};
use common::*;
use serde_json::json;
use uuid::Uuid;

const TEMPLATE: &str = "agent_failure";

/// The dedup key of `p1(run)`: `workflow_id/run_id`.
fn key(run: &str) -> String {
    format!("billing-sync/{run}")
}

async fn resolve(client: &async_nats::Client, id: Uuid) {
    let reply = command(client, "resolve", json!({"id": id, "by": "alice"})).await;
    assert_eq!(reply["ok"], true, "{reply}");
}

/// Waits until handoff `id` has a `paged` event and returns its events.
async fn paged(js: &async_nats::jetstream::Context, id: Uuid) -> Vec<baton::domain::Event> {
    eventually("the handoff is paged", || async {
        let ev = events_of(js, id).await;
        kinds(&ev).contains(&"paged").then_some(ev)
    })
    .await
}

fn opened_link(events: &[baton::domain::Event]) -> (Option<Uuid>, Option<u32>) {
    events
        .iter()
        .find_map(|e| match &e.data {
            EventData::Opened {
                recurrence_of,
                occurrence,
                ..
            } => Some((*recurrence_of, *occurrence)),
            _ => None,
        })
        .expect("an opened event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_after_resolve_opens_a_new_occurrence_that_pages_across_a_restart() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let first = occurrence_id(TEMPLATE, &key("flap"), 1);
    assert_eq!(first, p1_id("flap"), "the first occurrence keeps its id");

    publish_report(&js, TEMPLATE, &p1("flap")).await;
    paged(&js, first).await;
    resolve(&client, first).await;

    // The same key again: a new handoff, linked, paged.
    publish_report(&js, TEMPLATE, &p1("flap")).await;
    let second = occurrence_id(TEMPLATE, &key("flap"), 2);
    let events = paged(&js, second).await;
    assert_eq!(opened_link(&events), (Some(first), Some(2)));
    assert_eq!(pages_of(&js, second).await.len(), 1);
    // The resolved one got nothing.
    assert_eq!(
        kinds(&events_of(&js, first).await).last(),
        Some(&"resolved"),
        "a recurrence is never recorded on the resolved handoff"
    );

    // Across a restart: a report joins the open occurrence…
    daemon.stop().await.unwrap();
    let daemon = Daemon::start(config(&nats.url)).await;
    publish_report(&js, TEMPLATE, &p1("flap")).await;
    eventually("the report joins occurrence 2", || async {
        kinds(&events_of(&js, second).await)
            .contains(&"reported_again")
            .then_some(())
    })
    .await;
    // …and after it is resolved, the next one is occurrence 3.
    resolve(&client, second).await;
    publish_report(&js, TEMPLATE, &p1("flap")).await;
    let third = occurrence_id(TEMPLATE, &key("flap"), 3);
    let events = paged(&js, third).await;
    assert_eq!(opened_link(&events), (Some(second), Some(3)));

    // The view says so too.
    let reply = command(&client, "get", json!({"id": third})).await;
    assert_eq!(reply["handoff"]["occurrence"], 3, "{reply}");
    assert_eq!(reply["handoff"]["recurrence_of"], second.to_string());
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_decide_a_recurrence_once() {
    let nats = Nats::start();
    let a = Daemon::start(config(&nats.url)).await;
    let b = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let first = occurrence_id(TEMPLATE, &key("race"), 1);
    publish_report(&js, TEMPLATE, &p1("race")).await;
    paged(&js, first).await;
    resolve(&client, first).await;

    // Both daemons take these reports from the shared consumer and race.
    let n = 20;
    for _ in 0..n {
        publish_report(&js, TEMPLATE, &p1("race")).await;
    }
    let second = occurrence_id(TEMPLATE, &key("race"), 2);
    let events = eventually("every report recorded", || async {
        let ev = events_of(&js, second).await;
        let recorded = kinds(&ev)
            .iter()
            .filter(|k| **k == "opened" || **k == "reported_again")
            .count();
        (recorded >= n).then_some(ev)
    })
    .await;
    let k = kinds(&events);
    assert_eq!(k.iter().filter(|k| **k == "opened").count(), 1);
    assert_eq!(k.iter().filter(|k| **k == "reported_again").count(), n - 1);
    assert_eq!(k.iter().filter(|k| **k == "paged").count(), 1);
    assert!(
        events_of(&js, occurrence_id(TEMPLATE, &key("race"), 3))
            .await
            .is_empty(),
        "no third occurrence"
    );
    assert_eq!(
        kinds(&events_of(&js, first).await).last(),
        Some(&"resolved")
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// The redelivery guard no longer forgets: a report recorded before a
/// hundred others joined the same handoff is still recognised, on the open
/// occurrence and on a resolved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_redelivered_report_changes_nothing_after_a_hundred_others_joined() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let app = daemon.shared().app();
    let payload = p1("stall");
    let at = |seq| ReportSource {
        seq,
        published_ms: 1_700_000_000_000,
    };
    // Sequences far above the real stream's, as the ingest would see them.
    let base = 1_000_000;
    let report = |seq| {
        let app = app.clone();
        let payload = payload.clone();
        async move {
            match app
                .report(TEMPLATE, &payload, at(seq))
                .await
                .expect("stored")
            {
                Ingested::Stored(r) => r,
                Ingested::Rejected(e) => panic!("rejected: {e:?}"),
            }
        }
    };
    let opened = report(base).await;
    assert!(opened.opened);
    let id = opened.outcome.handoff_id;
    for i in 1..=100 {
        assert_eq!(report(base + i).await.outcome.events.len(), 1);
    }
    // The first report and one from the middle, redelivered.
    for seq in [base, base + 30] {
        let again = report(seq).await;
        assert!(again.outcome.events.is_empty(), "seq {seq} recorded twice");
        assert_eq!(again.outcome.handoff_id, id);
    }
    assert!(
        report(base).await.opened,
        "still told as the opening report"
    );

    // Resolved: a redelivered old report does not open a recurrence.
    resolve(&client, id).await;
    let again = report(base + 50).await;
    assert!(again.outcome.events.is_empty());
    assert_eq!(again.outcome.handoff_id, id);
    let h = daemon.shared().engine.get(id).unwrap();
    let Handoff::Incident(i) = h else {
        panic!("an incident")
    };
    assert_eq!(i.reports, 101);
    assert!(events_of(&js, occurrence_id(TEMPLATE, &key("stall"), 2))
        .await
        .is_empty());
    // A new one does.
    let recurred = report(base + 101).await;
    assert!(recurred.opened);
    assert_eq!(
        recurred.outcome.handoff_id,
        occurrence_id(TEMPLATE, &key("stall"), 2)
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_verb_says_whether_a_report_opened_joined_or_recurred() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, _js) = nats.client().await;
    let report = json!({"template": TEMPLATE, "report": serde_json::from_slice::<serde_json::Value>(&p1("told")).unwrap()});
    let r = command(&client, "report", report.clone()).await;
    assert_eq!(r["outcome"], "opened", "{r}");
    let first: Uuid = r["handoff_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(r["message"], format!("opened handoff {first}"));
    let r = command(&client, "report", report.clone()).await;
    assert_eq!(r["outcome"], "joined", "{r}");
    assert_eq!(r["joins"], true);
    assert_eq!(r["message"], format!("joined open handoff {first}"));
    resolve(&client, first).await;
    let r = command(&client, "report", report.clone()).await;
    assert_eq!(r["outcome"], "recurred", "{r}");
    assert_eq!(r["occurrence"], 2);
    assert_eq!(r["recurrence_of"], first.to_string());
    let second = occurrence_id(TEMPLATE, &key("told"), 2);
    assert_eq!(
        r["message"],
        format!("new occurrence #2 ({second}) of resolved handoff {first}")
    );

    // One idempotency key, two different reports: refused, naming the first.
    let mut keyed = report.clone();
    keyed["idempotency_key"] = json!("retry-1");
    let r = command(&client, "report", keyed.clone()).await;
    assert_eq!(r["ok"], true, "{r}");
    let again = command(&client, "report", keyed.clone()).await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["handoff_id"], r["handoff_id"]);
    keyed["report"]["run_id"] = json!("another-run");
    let reused = command(&client, "report", keyed).await;
    assert_eq!(
        reused["error"]["code"], "idempotency_key_reused",
        "{reused}"
    );
    let message = reused["error"]["message"].as_str().unwrap();
    assert!(message.contains("billing-sync/told"), "{message}");
    daemon.stop().await.unwrap();
}
