//! End-to-end: reports in, gates, pages, escalations, acks, crashes and
//! races — each against its own real nats-server.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use baton::domain::{EventData, PageReason};
use common::*;
use serde_json::json;

fn with_p1(cfg: &mut baton::config::Config, first_response_ms: u64) {
    cfg.severity
        .get_mut(&baton::domain::Severity::P1)
        .unwrap()
        .first_response = Some(Duration::from_millis(first_response_ms));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_complete_report_pages_on_call_then_escalates_at_each_deadline() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("r1")).await;
    let id = p1_id("r1");

    let events = eventually("two escalation steps", || async {
        let ev = events_of(&js, id).await;
        (kinds(&ev).iter().filter(|k| **k == "escalated").count() == 2).then_some(ev)
    })
    .await;
    assert_eq!(
        kinds(&events),
        ["opened", "scored", "paged", "escalated", "escalated"]
    );
    let opened_at = events[0].occurred_at;
    for (i, e) in events[3..].iter().enumerate() {
        let EventData::Escalated { step, deadline, .. } = &e.data else {
            unreachable!()
        };
        assert_eq!(*step, i as u32 + 1);
        let expected = opened_at + Duration::from_millis(700 + 400 * i as u64);
        assert_eq!(*deadline, expected, "deadline comes from the schedule");
        assert!(e.occurred_at >= *deadline, "never early");
    }

    let pages = eventually("five pages", || async {
        let p = pages_of(&js, id).await;
        (p.len() == 5).then_some(p)
    })
    .await;
    let first = &pages[0];
    assert_eq!(
        (
            first.kind.as_str(),
            first.route.as_str(),
            first.team.as_str()
        ),
        ("page", "oncall", "payments")
    );
    assert_eq!(first.hcs.score, 100.0);
    assert_eq!(first.packet.run_id.as_deref(), Some("r1"));
    assert!(first.respond_by.is_some());
    let routes: Vec<_> = pages[1..]
        .iter()
        .map(|p| (p.step, p.route.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            (1, "oncall"),
            (1, "incident_captain"),
            (2, "oncall"),
            (2, "incident_captain")
        ]
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_before_the_deadline_stops_escalation_and_records_mtta() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    with_p1(&mut cfg, 2000);
    let daemon = Daemon::start(cfg).await;
    let (client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("acked")).await;
    publish_report(&js, "agent_failure", &p1("sentinel")).await;
    let id = p1_id("acked");
    eventually("paged", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"paged")
            .then_some(())
    })
    .await;
    let reply = command(&client, "ack", json!({"id": id, "by": "alice"})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["handoff"]["acknowledged"]["by"], "alice");
    assert!(reply["handoff"]["mtta_seconds"].as_f64().unwrap() < 2.0);

    // The unacknowledged sentinel passing both steps proves the deadlines passed.
    let sentinel = p1_id("sentinel");
    eventually("sentinel escalated twice", || async {
        let k = kinds(&events_of(&js, sentinel).await);
        (k.iter().filter(|k| **k == "escalated").count() == 2).then_some(())
    })
    .await;
    let events = events_of(&js, id).await;
    assert_eq!(
        kinds(&events),
        ["opened", "scored", "paged", "acknowledged"]
    );
    let EventData::Acknowledged { by, breached, .. } = &events[3].data else {
        unreachable!()
    };
    assert_eq!((by.as_str(), *breached), ("alice", false));
    assert!(pages_of(&js, id).await.iter().all(|p| p.kind == "page"));

    let again = command(&client, "ack", json!({"id": id, "by": "bob"})).await;
    assert_eq!(again["error"]["code"], "already_acknowledged");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_missing_run_id_and_rollback_is_enriched_held_then_paged_incomplete() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let mut report: serde_json::Value = serde_json::from_slice(&p1("x")).unwrap();
    report.as_object_mut().unwrap().remove("run_id");
    report.as_object_mut().unwrap().remove("rollback_command");
    report["dedup_key"] = json!("settlement-gap");
    publish_report(&js, "agent_failure", &serde_json::to_vec(&report).unwrap()).await;

    let reply = eventually("handoff visible", || async {
        // The id is derived from the dedup key; find it through the pages later.
        let parsed = baton::domain::parse_report(
            &serde_json::to_vec(&report).unwrap(),
            baton::domain::ParseLimits {
                max_report_bytes: 65536,
                max_field_bytes: 4096,
            },
        )
        .unwrap();
        let id = baton::domain::handoff_id_for("agent_failure", &parsed.report).unwrap();
        let r = command(&client, "get", json!({"id": id})).await;
        (r["ok"] == true).then_some(r)
    })
    .await;
    let id: uuid::Uuid = reply["handoff"]["id"].as_str().unwrap().parse().unwrap();
    let events = eventually("paged after max_hold", || async {
        let ev = events_of(&js, id).await;
        kinds(&ev).contains(&"paged").then_some(ev)
    })
    .await;
    assert_eq!(
        &kinds(&events)[..5],
        ["opened", "enriched", "scored", "held", "paged"]
    );
    let EventData::Enriched { fields, .. } = &events[1].data else {
        unreachable!()
    };
    assert_eq!(fields, &["rollback_command"]);
    let EventData::Held { missing, until, .. } = &events[3].data else {
        unreachable!()
    };
    assert_eq!(missing, &["run_id"]);
    let EventData::Paged { reason, notice } = &events[4].data else {
        unreachable!()
    };
    assert_eq!(*reason, PageReason::MaxHold);
    assert!(notice.incomplete);
    assert!(events[4].occurred_at >= until.unwrap());
    let page = eventually("page stored", || async {
        pages_of(&js, id).await.into_iter().next()
    })
    .await;
    assert!(page.incomplete);
    assert_eq!(
        page.packet.rollback_command.as_deref(),
        Some("billing-sync rollback --to last-good")
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_incomplete_is_queued_until_an_enrich_command_completes_it() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let report = json!({
        "severity": "P2", "run_id": "run-77", "workflow_id": "search-reindex",
        "objective": "Nightly reindex", "failure_class": "oom", "failing_step": "build_shards",
        "error_summary": "worker killed: out of memory", "team": "search"
    });
    publish_report(&js, "agent_failure", &serde_json::to_vec(&report).unwrap()).await;
    let id = baton::domain::handoff_id_for(
        "agent_failure",
        &baton::domain::parse_report(
            &serde_json::to_vec(&report).unwrap(),
            baton::domain::ParseLimits {
                max_report_bytes: 65536,
                max_field_bytes: 4096,
            },
        )
        .unwrap()
        .report,
    )
    .unwrap();
    let ticket = eventually("ticket on the owner queue", || async {
        pages_of(&js, id).await.into_iter().next()
    })
    .await;
    assert_eq!(
        (ticket.kind.as_str(), ticket.route.as_str()),
        ("ticket", "queue")
    );
    assert!(ticket
        .hcs
        .missing
        .contains(&"recommended_action".to_string()));

    let partial = command(
        &client,
        "enrich",
        json!({"id": id, "by": "dana", "fields": {"recommended_action": "rerun with 2x memory"}}),
    )
    .await;
    assert_eq!(partial["ok"], true, "{partial}");
    assert!(
        partial["handoff"]["paged_at"].is_null(),
        "still held: {partial}"
    );

    let done = command(
        &client,
        "enrich",
        json!({"id": id, "by": "dana", "fields": {
            "owner": {"primary": "dana", "backup": "erin"},
            "rollback_command": "search alias swap --to previous",
            "last_successful_step": "plan_shards", "ttl_seconds": 7200,
            "blast_radius": {"users": 0, "jobs": 1}
        }}),
    )
    .await;
    assert_eq!(done["ok"], true, "{done}");
    let kinds_now: Vec<_> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds_now, ["enriched", "scored", "paged"]);
    let page = eventually("owner paged", || async {
        pages_of(&js, id)
            .await
            .into_iter()
            .find(|p| p.kind == "page")
    })
    .await;
    assert_eq!(
        (page.route.as_str(), page.target.as_str()),
        ("owner", "dana")
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_report_joins_one_handoff_and_pages_once() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    with_p1(&mut cfg, 60_000);
    let daemon = Daemon::start(cfg).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("dup")).await;
    publish_report(&js, "agent_failure", &p1("dup")).await;
    let id = p1_id("dup");
    let events = eventually("second report joined", || async {
        let ev = events_of(&js, id).await;
        kinds(&ev).contains(&"reported_again").then_some(ev)
    })
    .await;
    assert_eq!(
        kinds(&events),
        ["opened", "scored", "paged", "reported_again"]
    );
    let h = daemon.shared().engine.get(id).unwrap();
    assert_eq!(h.as_incident().unwrap().reports, 2);
    // A duplicate page would come late, from the second report's commit.
    // The page publisher acks an event only once its pages are stored, so
    // when its ack floor reaches the last stored event, every page these
    // events cause is in the stream. (A later report's page alone would not
    // prove it: the publisher stores the pages of several events at once.)
    let mut stream = js.get_stream("BATON_EVENTS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    eventually("the page publisher past every event", || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(baton::pages::CONSUMER).await.ok()?;
        let info = consumer.info().await.ok()?;
        (info.ack_floor.stream_sequence >= last).then_some(())
    })
    .await;
    assert_eq!(pages_of(&js, id).await.len(), 1);
    daemon.stop().await.unwrap();
}

/// Count of pages per (handoff, kind, step, route); every one must be 1.
fn assert_each_page_once(pages: &[baton::pages::Page]) {
    let mut seen: HashMap<_, usize> = HashMap::new();
    for p in pages {
        *seen
            .entry((p.handoff_id, p.kind.clone(), p.step, p.route.clone()))
            .or_default() += 1;
    }
    for (k, n) in seen {
        assert_eq!(n, 1, "page {k:?} stored {n} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_escalation_stored_before_its_page_pages_exactly_once_after_restart() {
    let nats = Nats::start();
    // Daemon A stores events but dies before publishing any page.
    let mut cfg_a = config(&nats.url);
    cfg_a.pages.enabled = false;
    let a = Daemon::start(cfg_a).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("crash")).await;
    let id = p1_id("crash");
    eventually("escalation stored", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"escalated")
            .then_some(())
    })
    .await;
    a.crash();
    // Precondition, by construction rather than checked: A ran without a
    // page publisher (`cfg_a.pages.enabled = false`), so it stored the
    // escalation and published nothing. Every page below is B's, derived
    // from events A stored, which is the crash this test is about.

    let b = Daemon::start(config(&nats.url)).await;
    let pages = eventually("page + 2 steps x 2 routes", || async {
        let p = pages_of(&js, id).await;
        (p.len() == 5).then_some(p)
    })
    .await;
    assert_each_page_once(&pages);
    b.stop().await.unwrap();

    // Replaying the page consumer from scratch re-publishes every page under
    // the same ids: the stream must drop them all.
    let stream = js.get_stream("BATON_EVENTS").await.unwrap();
    stream
        .delete_consumer(baton::pages::CONSUMER)
        .await
        .unwrap();
    let c = Daemon::start(config(&nats.url)).await;
    eventually("all events re-processed", || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(baton::pages::CONSUMER).await.ok()?;
        let info = consumer.info().await.ok()?;
        (info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0)
            .then_some(())
    })
    .await;
    let after = pages_of(&js, id).await;
    assert_eq!(
        after.len(),
        5,
        "re-published pages were dropped as duplicates"
    );
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_page_exactly_once_per_escalation() {
    let nats = Nats::start();
    let a = Daemon::start(config(&nats.url)).await;
    let b = Daemon::start(config(&nats.url)).await;
    let (_c, js) = nats.client().await;
    let runs: Vec<String> = (0..12).map(|i| format!("race-{i}")).collect();
    for r in &runs {
        publish_report(&js, "agent_failure", &p1(r)).await;
    }
    for r in &runs {
        let id = p1_id(r);
        let events = eventually("both steps", || async {
            let ev = events_of(&js, id).await;
            (kinds(&ev).iter().filter(|k| **k == "escalated").count() >= 2).then_some(ev)
        })
        .await;
        let steps: Vec<u32> = events
            .iter()
            .filter_map(|e| match e.data {
                EventData::Escalated { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        assert_eq!(steps, [1, 2], "each step stored once for {r}");
        assert_eq!(kinds(&events).iter().filter(|k| **k == "paged").count(), 1);
    }
    let all = eventually("every page stored", || async {
        let p = pages(&js).await;
        (p.len() == runs.len() * 5).then_some(p)
    })
    .await;
    assert_each_page_once(&all);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_state_and_pending_deadlines_fire_on_time() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    with_p1(&mut cfg, 1500);
    let a = Daemon::start(cfg.clone()).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("restart")).await;
    let id = p1_id("restart");
    eventually("paged", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"paged")
            .then_some(())
    })
    .await;
    a.stop().await.unwrap();

    let b = Daemon::start(cfg).await;
    let state = b
        .shared()
        .engine
        .get(id)
        .expect("state rebuilt from the stream");
    assert_eq!(state.status_str(), baton::domain::Status::Paged.as_str());
    let events = eventually("escalated after restart", || async {
        let ev = events_of(&js, id).await;
        kinds(&ev).contains(&"escalated").then_some(ev)
    })
    .await;
    let esc = events.iter().find(|e| e.kind() == "escalated").unwrap();
    let EventData::Escalated { deadline, step, .. } = &esc.data else {
        unreachable!()
    };
    assert_eq!(*step, 1);
    assert_eq!(
        *deadline,
        events[0].occurred_at + Duration::from_millis(1500)
    );
    let late = esc.occurred_at - *deadline;
    assert!(
        late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
        "lateness {late}"
    );
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_specific_errors_and_the_daemon_keeps_running() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("agent_failure", b"{not json".to_vec(), "malformed_json"),
        ("agent_failure", b"[1,2]".to_vec(), "not_an_object"),
        (
            "agent_failure",
            br#"{"severity":"P7"}"#.to_vec(),
            "invalid_severity",
        ),
        (
            "agent_failure",
            br#"{"run_id":"x"}"#.to_vec(),
            "missing_field",
        ),
        (
            "agent_failure",
            br#"{"severity":"P1","run_id":42}"#.to_vec(),
            "wrong_type",
        ),
        (
            "agent_failure",
            br#"{"severity":"P1","team":"pay ments"}"#.to_vec(),
            "invalid_token",
        ),
        (
            "agent_failure",
            br#"{"severity":"P1","team":"a.b"}"#.to_vec(),
            "invalid_token",
        ),
        (
            "agent_failure",
            br#"{"severity":"P1","rollback_cmd":"x"}"#.to_vec(),
            "unknown_field",
        ),
        (
            "agent_failure",
            format!(
                r#"{{"severity":"P1","objective":"{}"}}"#,
                "x".repeat(70_000)
            )
            .into_bytes(),
            "too_large",
        ),
        ("no_such_template", p1("t"), "unknown_template"),
    ];
    let mut seqs = Vec::new();
    for (template, payload, _) in &cases {
        seqs.push(publish_report(&js, template, payload).await);
    }
    let rejected = eventually("every bad report rejected", || async {
        let r = stream_json(&js, "BATON_REJECTED").await;
        (r.len() == cases.len()).then_some(r)
    })
    .await;
    // Reports are processed concurrently: match each rejection by its sequence.
    let by_seq: HashMap<u64, _> = rejected
        .iter()
        .map(|(s, r)| (r["report_seq"].as_u64().unwrap(), (s, r)))
        .collect();
    for ((template, _, code), seq) in cases.iter().zip(&seqs) {
        let (subject, record) = by_seq[seq];
        assert_eq!(subject, &format!("baton.rejected.{template}"));
        let codes: Vec<_> = record["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains(code),
            "{template}: expected {code} in {codes:?}"
        );
    }
    assert_eq!(
        by_seq[&seqs[0]].1["payload"], "{not json",
        "original payload kept"
    );

    let unknown = uuid::Uuid::now_v7();
    for (verb, body, code) in [
        ("ack", json!({"id": "a.b", "by": "x"}), "invalid_id"),
        ("ack", json!({"id": "baton.>", "by": "x"}), "invalid_id"),
        ("ack", json!({"id": "* ", "by": "x"}), "invalid_id"),
        ("ack", json!({"id": unknown, "by": "x"}), "not_found"),
        ("get", json!({"id": unknown}), "not_found"),
        ("ack", json!({"id": unknown}), "missing_field"),
        ("ack", json!({"by": "x"}), "missing_field"),
        ("frobnicate", json!({"id": unknown}), "unknown_command"),
        (
            "override",
            json!({"id": unknown, "by": "x"}),
            "missing_field",
        ),
        (
            "enrich",
            json!({"id": unknown, "by": "x", "fields": {"team": "a b"}}),
            "invalid_token",
        ),
    ] {
        let r = command(&client, verb, body.clone()).await;
        assert_eq!(r["ok"], false, "{verb} {body}");
        assert_eq!(r["error"]["code"], code, "{verb} {body}: {r}");
    }
    let raw = client
        .request("baton.cmd.ack", "{oops".into())
        .await
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(r["error"]["code"], "malformed_json");

    // A resolved handoff refuses acks; and the daemon is still serving.
    publish_report(&js, "agent_failure", &p1("alive")).await;
    let id = p1_id("alive");
    eventually("good report paged", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"paged")
            .then_some(())
    })
    .await;
    let r = command(
        &client,
        "resolve",
        json!({"id": id, "by": "alice", "note": "fixed"}),
    )
    .await;
    assert_eq!(r["ok"], true);
    let r = command(&client, "ack", json!({"id": id, "by": "alice"})).await;
    assert_eq!(r["error"]["code"], "resolved");
    let text = daemon.shared().metrics.render();
    assert!(
        text.contains(
            r#"baton_reports_rejected_total{reason="malformed_json",template="agent_failure"} 1"#
        ),
        "{text}"
    );
    daemon.stop().await.unwrap();
}

/// The opening commit of a complete P1 report for `run` (it pages on-call),
/// as the engine would store it.
fn opening_commit(
    policy: &baton::domain::Policy,
    run: &str,
) -> (uuid::Uuid, baton::domain::Commit) {
    use baton::domain::{decide, Command, IncidentCommand, Severity};
    use baton::testkit;
    let mut report = testkit::report(Severity::P1);
    report.packet.run_id = Some(run.into());
    let open = Command::Incident(IncidentCommand::Open {
        template: "agent_failure".into(),
        report,
        warnings: vec![],
        source: None,
    });
    let (id, now) = (uuid::Uuid::now_v7(), chrono::Utc::now());
    let events = decide(None, &open, now, policy).expect("a complete P1 opens");
    let commit = baton::domain::Commit {
        events: events
            .into_iter()
            .map(|e| e.seal(uuid::Uuid::now_v7(), id, now))
            .collect(),
    };
    (id, commit)
}

/// R1: the page publisher acked a commit it could not decode, so during a
/// rolling upgrade an older daemon dropped a newer daemon's pages forever. A
/// newer-version commit must stay unacked on `baton-pages` (for a daemon
/// that reads it); a corrupt one is terminated; both are counted; commits
/// around them keep paging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_the_page_publisher_never_acks_a_commit_from_a_newer_baton() {
    use async_nats::jetstream::consumer::PullConsumer;
    use baton::metrics::Metrics;
    use baton::store::Names;

    let nats = Nats::start();
    let cfg = config(&nats.url);
    let (_c, js) = nats.client().await;
    let names = Names::new(&cfg.nats.prefix);
    baton::store::ensure_streams(&js, &names, &baton::server::stream_settings(&cfg))
        .await
        .unwrap();
    let metrics = std::sync::Arc::new(Metrics::new());
    let token = tokio_util::sync::CancellationToken::new();
    let publisher = tokio::spawn(baton::pages::run(
        js.clone(),
        names.clone(),
        metrics.clone(),
        token.clone(),
    ));
    let policy = cfg.policy();
    let store = |id: uuid::Uuid, body: Vec<u8>| {
        let (js, subject) = (js.clone(), names.events(id));
        async move {
            js.publish(subject, body.into())
                .await
                .unwrap()
                .await
                .unwrap()
                .sequence
        }
    };

    let (before, commit) = opening_commit(&policy, "before");
    store(before, serde_json::to_vec(&commit).unwrap()).await;
    store(uuid::Uuid::now_v7(), b"not a commit".to_vec()).await;
    let (newer, commit) = opening_commit(&policy, "from-a-newer-baton");
    let mut v = serde_json::to_value(&commit).unwrap();
    for e in v["events"].as_array_mut().unwrap() {
        e["version"] = json!(999);
    }
    let newer_seq = store(newer, serde_json::to_vec(&v).unwrap()).await;
    let (after, commit) = opening_commit(&policy, "after");
    let after_seq = store(after, serde_json::to_vec(&commit).unwrap()).await;

    eventually("the commits around it paged", || async {
        (!pages_of(&js, before).await.is_empty() && !pages_of(&js, after).await.is_empty())
            .then_some(())
    })
    .await;
    // Everything delivered and settled either way (acked, or left pending).
    let stream = js.get_stream("BATON_EVENTS").await.unwrap();
    let info = eventually("every commit handled", || async {
        let mut c: PullConsumer = stream.get_consumer(baton::pages::CONSUMER).await.ok()?;
        let info = c.info().await.ok()?.clone();
        (info.delivered.stream_sequence >= after_seq && info.num_ack_pending <= 1).then_some(info)
    })
    .await;
    assert_eq!(
        (info.num_ack_pending, info.ack_floor.stream_sequence),
        (1, newer_seq - 1),
        "the newer commit is still pending on {}: {info:?}",
        baton::pages::CONSUMER
    );
    assert!(pages_of(&js, newer).await.is_empty());
    let count = |reason: &str| {
        metrics
            .undecodable_commits_total
            .with_label_values(&[reason])
            .get()
    };
    assert_eq!((count("newer_version"), count("corrupt")), (1, 1));
    assert!(metrics.met_newer_commits(), "readiness sees it");

    token.cancel();
    publisher.await.unwrap().unwrap();
}

/// R2: the projector skipped a commit from a newer Baton yet advanced
/// `applied_seq`, and a snapshot then made the skip permanent (reads,
/// gauges and deadlines missing that commit). It must stop there instead:
/// the daemon exits with the projector's error, its snapshot stays below
/// the commit, and a restart refuses to serve rather than skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_commit_from_a_newer_baton_stops_the_daemon_instead_of_being_skipped() {
    use std::sync::atomic::Ordering;

    use baton::server::ServeError;
    use baton::store::Names;

    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    with_p1(&mut cfg, 60_000);
    let mut daemon = Daemon::start(cfg.clone()).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("before")).await;
    eventually("paged", || async {
        kinds(&events_of(&js, p1_id("before")).await)
            .contains(&"paged")
            .then_some(())
    })
    .await;
    let running = daemon.running.take().unwrap();
    let projection = running.shared.engine.projection().clone();

    let names = Names::new(&cfg.nats.prefix);
    let store = |id: uuid::Uuid, body: Vec<u8>| {
        let (js, subject) = (js.clone(), names.events(id));
        async move {
            js.publish(subject, body.into())
                .await
                .unwrap()
                .await
                .unwrap()
                .sequence
        }
    };
    let (newer, commit) = opening_commit(projection.policy(), "from-a-newer-baton");
    let mut v = serde_json::to_value(&commit).unwrap();
    v["events"][0]["version"] = json!(999);
    let newer_seq = store(newer, serde_json::to_vec(&v).unwrap()).await;
    let (later, commit) = opening_commit(projection.policy(), "later");
    store(later, serde_json::to_vec(&commit).unwrap()).await;

    // Either the projector moves past the commit (the bug) or the daemon
    // stops with its error; whichever happens first decides.
    let exited = tokio::select! {
        r = running.wait() => Some(r),
        _ = eventually("the projector past the newer commit", || async {
            (projection.applied_seq.load(Ordering::Acquire) >= newer_seq).then_some(())
        }) => None,
    };
    match exited {
        Some(Err(ServeError::Task {
            task: "projector", ..
        })) => {}
        other => panic!("the projector applied past a commit it could not apply: {other:?}"),
    }
    assert!(projection.applied_seq.load(Ordering::Acquire) < newer_seq);
    assert!(projection.get(later).is_none());

    // The shutdown snapshot stops short of it too.
    let snapshots = baton::snapshot::SnapshotStore::open(js.clone(), &names)
        .await
        .unwrap();
    let snapshot = snapshots.load().await.expect("a snapshot on shutdown");
    assert!(snapshot.manifest.seq < newer_seq, "{:?}", snapshot.manifest);

    // A restart meets the same commit and refuses to serve.
    let restarted = baton::server::start(cfg, tokio_util::sync::CancellationToken::new()).await;
    assert!(
        matches!(
            restarted,
            Err(ServeError::Task {
                task: "projector",
                ..
            })
        ),
        "{:?}",
        restarted.err()
    );
}

/// Sets a stream's largest message, as an operator (or a broker limit)
/// might: every store of a bigger one then fails.
async fn shrink_messages(js: &async_nats::jetstream::Context, stream: &str, max: i32) {
    let mut s = js.get_stream(stream).await.expect("stream");
    let mut config = s.info().await.expect("info").config.clone();
    config.max_message_size = max;
    js.update_stream(config).await.expect("stream updated");
}

/// Issue 12 §5: a report that could not be recorded was nak'd and
/// redelivered every second forever, and nothing was recorded. Now it is
/// tried `max_report_attempts` times (backing off), then recorded as
/// `unrecordable`, counted and terminated; and when even that record
/// cannot be stored, it is still terminated and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_report_that_cannot_be_stored_is_given_up_after_its_attempts() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.limits.max_report_attempts = 3;
    cfg.limits.report_retry_backoff = Duration::from_millis(5);
    cfg.limits.report_retry_backoff_max = Duration::from_millis(20);
    let daemon = Daemon::start(cfg).await;
    let (_, js) = nats.client().await;
    let terminated = || {
        daemon
            .shared()
            .metrics
            .reports_terminated_total
            .with_label_values(&["unrecordable"])
            .get()
    };
    let ingest_done_through = |seq: u64| {
        let js = js.clone();
        async move {
            let mut c: async_nats::jetstream::consumer::PullConsumer = js
                .get_stream("BATON_REPORTS")
                .await
                .unwrap()
                .get_consumer(baton::ingest::CONSUMER)
                .await
                .unwrap();
            let i = c.info().await.unwrap();
            (i.ack_floor.stream_sequence >= seq && i.num_ack_pending == 0 && i.num_pending == 0)
                .then_some(())
        }
    };

    // Every commit is now too big for the events stream.
    shrink_messages(&js, "BATON_EVENTS", 200).await;
    let seq = publish_report(&js, "agent_failure", &p1("unstorable")).await;
    let records = eventually("the report recorded as unrecordable", || async {
        let r = stream_json(&js, "BATON_REJECTED").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let (subject, r) = &records[0];
    assert_eq!(subject, "baton.rejected.agent_failure");
    assert_eq!(r["report_seq"], seq);
    assert_eq!(r["reasons"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["reasons"][0]["code"], "unrecordable");
    let why = r["reasons"][0]["message"].as_str().unwrap();
    assert!(
        why.starts_with("not stored after 3 attempts; last error: "),
        "{why}"
    );
    assert_eq!(
        r["payload"]["run_id"], "unstorable",
        "the report kept whole"
    );
    assert_eq!(r["payload_bytes"], p1("unstorable").len());
    eventually("the report terminated", || ingest_done_through(seq)).await;
    assert_eq!(terminated(), 1);
    assert!(events_of(&js, p1_id("unstorable")).await.is_empty());

    // Neither the events nor the record can be stored: terminated anyway.
    shrink_messages(&js, "BATON_REJECTED", 200).await;
    let seq = publish_report(&js, "agent_failure", &p1("unrecorded")).await;
    eventually("the unrecorded report terminated", || {
        ingest_done_through(seq)
    })
    .await;
    assert_eq!(terminated(), 2);
    assert_eq!(stream_json(&js, "BATON_REJECTED").await.len(), 1);

    // The daemon is still serving once the streams take reports again.
    shrink_messages(&js, "BATON_EVENTS", 4 * 1024 * 1024).await;
    publish_report(&js, "agent_failure", &p1("alive")).await;
    eventually("a good report stored", || async {
        (!events_of(&js, p1_id("alive")).await.is_empty()).then_some(())
    })
    .await;
    daemon.stop().await.unwrap();
}

/// A report a crashed daemon had pulled is redelivered after the short
/// ack wait (1.5 s), not the 30 s of older Batons, whose consumers are
/// updated at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_held_by_a_crashed_daemon_is_taken_over_within_the_short_ack_wait() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let nats = Nats::start();
    let cfg = config(&nats.url);
    let (_c, js) = nats.client().await;
    let names = baton::store::Names::new("baton");
    baton::store::ensure_streams(&js, &names, &baton::server::stream_settings(&cfg))
        .await
        .unwrap();
    // Consumers as an older Baton made them.
    let reports = js.get_stream("BATON_REPORTS").await.unwrap();
    let old = pull::Config {
        durable_name: Some(baton::ingest::CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let held: async_nats::jetstream::consumer::PullConsumer = reports
        .get_or_create_consumer(baton::ingest::CONSUMER, old)
        .await
        .unwrap();
    // A daemon pulls a report and dies holding it (no ack, no nak).
    publish_report(&js, "agent_failure", &p1("held")).await;
    let mut batch = held.fetch().max_messages(1).messages().await.unwrap();
    let pulled = futures::StreamExt::next(&mut batch).await.unwrap().unwrap();
    assert_eq!(pulled.info().unwrap().stream_sequence, 1);
    drop(batch);

    let daemon = Daemon::start(cfg).await;
    eventually(
        "the older consumer is updated to the short ack wait",
        || async {
            let mut consumer = reports
                .get_consumer::<pull::Config>(baton::ingest::CONSUMER)
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            (info.config.ack_wait == baton::store::ACK_WAIT).then_some(())
        },
    )
    .await;
    // Well inside the old 30 s ack wait.
    eventually("the held report is recorded", || async {
        daemon.shared().engine.get(p1_id("held"))
    })
    .await;
    daemon.stop().await.unwrap();
}
