//! Replay, audit and snapshots end to end: the real `baton` binary against a
//! private nats-server and an in-process daemon; and the recorded event
//! fixtures that every future build must still replay.

mod common;

use std::collections::BTreeMap;
use std::process::Command as Process;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::HeaderMap;
use baton::domain::{apply, Event, Handoff, Status};
use baton::replay::{read_events, rebuild, Filter, ReadRange};
use baton::snapshot::SnapshotStore;
use baton::store::Names;
use common::*;
use serde_json::json;
use uuid::Uuid;

/// A config file for the binary: the tests' policy on this server.
fn config_file(url: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), format!("[nats]\nurl = \"{url}\"\n{TEST_CONFIG}")).unwrap();
    f
}

fn baton(cfg: &tempfile::NamedTempFile, args: &[&str]) -> (i32, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--config")
        .arg(cfg.path())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_tells_the_story_audit_passes_and_then_names_an_injected_duplicate_page() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("story")).await;
    let id = p1_id("story");
    eventually("page + 2 steps x 2 routes", || async {
        (pages_of(&js, id).await.len() == 5).then_some(())
    })
    .await;
    let r = command(&client, "ack", json!({"id": id, "by": "alice"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = command(
        &client,
        "resolve",
        json!({"id": id, "by": "alice", "note": "failed over"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let cfg = config_file(&nats.url);

    let (code, story, err) = baton(&cfg, &["timeline", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "Reported by report:1 as P1 (agent_failure) for team payments, workflow billing-sync run story",
        "Scored HCS 100.00 (meets the gate of 90",
        "Paged level 0 → oncall (oncall:payments) because the packet passed the gate",
        "Deadline of step 1",
        "escalated to level 1 → oncall (oncall:payments), incident_captain (incident_captain:payments)",
        "escalated to level 1, repeat 1",
        "Acknowledged by alice: MTTA",
        "late (first-response target",
        "step 2 (level 1 → oncall, incident_captain) due",
        "Resolved by alice: \"failed over\"",
        "resolved by alice after",
    ] {
        assert!(story.contains(needle), "missing {needle:?} in:\n{story}");
    }

    let (code, out, err) = baton(&cfg, &["audit", "verify"]);
    assert_eq!(code, 0, "healthy history must pass:\n{out}\n{err}");
    assert!(
        err.contains("0 violation(s)") && err.contains("daemon at seq"),
        "{err}"
    );

    let (code, csv, _) = baton(&cfg, &["replay", "--format", "csv", "--severity", "P1"]);
    assert_eq!(code, 0);
    assert!(
        csv.lines().nth(1).unwrap().starts_with(&format!("{id},")),
        "{csv}"
    );
    assert!(
        csv.contains(",resolved,") && csv.contains(",alice,"),
        "{csv}"
    );
    let (code, jsonl, _) = baton(&cfg, &["export", "--format", "jsonl"]);
    assert_eq!(code, 0);
    let kinds: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().kind().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "scored",
            "paged",
            "escalated",
            "escalated",
            "acknowledged",
            "resolved"
        ]
    );
    // State as of the first commit: paged, not yet escalated.
    let id_arg = id.to_string();
    let (_, early, _) = baton(
        &cfg,
        &[
            "replay",
            "--handoff",
            &id_arg,
            "--until",
            "1",
            "--format",
            "jsonl",
        ],
    );
    let h: Handoff = serde_json::from_str(early.trim()).unwrap();
    assert_eq!(h.status(), Status::Paged);

    // The daemon's per-bucket digests are the log's.
    let (h, seq) = rebuilt(&js).await.remove(&id).unwrap();
    let r = command(
        &client,
        "digest",
        json!({"bucket": baton::replay::bucket_of(&id)}),
    )
    .await;
    assert_eq!(
        r["digests"][id.to_string()]["digest"],
        baton::replay::digest(&h, seq),
        "{r}"
    );
    let r = command(&client, "digest", json!({"bucket": 300})).await;
    assert_eq!(r["error"]["code"], "invalid_value", "{r}");

    // Someone publishes the first page a second time under another id.
    let first = stream_json(&js, "BATON_PAGES").await.remove(0);
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, "injected-by-hand");
    js.publish_with_headers(first.0, headers, first.1.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (code, out, err) = baton(&cfg, &["audit", "verify"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("VIOLATION duplicate_page") && l.contains(&id.to_string())),
        "{out}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_the_handoff_of_a_corrupted_event_and_a_diverging_daemon() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.severity
        .get_mut(&baton::domain::Severity::P1)
        .unwrap()
        .first_response = Some(std::time::Duration::from_secs(600));
    let daemon = Daemon::start(cfg).await;
    let (_client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("corrupt")).await;
    let id = p1_id("corrupt");
    eventually("paged", || async {
        (!pages_of(&js, id).await.is_empty()).then_some(())
    })
    .await;
    // Garbage on the handoff's subject: the daemon skips it, the audit names it.
    js.publish(Names::new("baton").events(id), "{not a commit".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let file = config_file(&nats.url);
    let (code, out, _) = baton(&file, &["audit", "verify", "--no-daemon"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("VIOLATION undecodable_event handoff {id} seq 2")),
        "{out}"
    );
    let (code, story, _) = baton(&file, &["timeline", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(
        story.contains("Paged level 0") && story.contains("WARNING: the commit at seq 2"),
        "{story}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passed_while_no_daemon_ran_is_a_missing_escalation_until_one_fires_it() {
    let nats = Nats::start();
    let a = Daemon::start(config(&nats.url)).await;
    let (_c, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("down")).await;
    let id = p1_id("down");
    eventually("paged", || async {
        (!pages_of(&js, id).await.is_empty()).then_some(())
    })
    .await;
    a.crash();
    let file = config_file(&nats.url);
    let audit = || {
        baton(
            &file,
            &["audit", "verify", "--no-daemon", "--grace", "50ms"],
        )
    };
    // Step 1 is due 700 ms after open; nobody is there to fire it.
    let out = eventually("the audit reports the missed step", || async {
        let (code, out, _) = audit();
        (code == 2 && out.contains("missing_escalation")).then_some(out)
    })
    .await;
    assert!(
        out.contains(&format!("VIOLATION missing_escalation handoff {id}")),
        "{out}"
    );
    let b = Daemon::start(config(&nats.url)).await;
    eventually(
        "the restarted daemon fires both steps and pages them",
        || async {
            let (code, _, _) = audit();
            (code == 0).then_some(())
        },
    )
    .await;
    b.stop().await.unwrap();
}

async fn rebuilt(js: &async_nats::jetstream::Context) -> BTreeMap<Uuid, (Handoff, u64)> {
    let records = read_events(js, &Names::new("baton"), ReadRange::default(), false)
        .await
        .unwrap();
    rebuild(&records, &Filter::default())
        .into_iter()
        .map(|(id, r)| (id, (r.handoff, r.last_seq)))
        .collect()
}

fn live(d: &Daemon) -> BTreeMap<Uuid, (Handoff, u64)> {
    let mut out = BTreeMap::new();
    d.shared().engine.projection().visit(
        |_| true,
        |h, s| {
            out.insert(h.id, (h.clone(), s));
        },
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loads_the_snapshot_replays_the_tail_and_ignores_a_corrupt_one() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.severity
        .get_mut(&baton::domain::Severity::P1)
        .unwrap()
        .first_response = Some(std::time::Duration::from_secs(600));
    let a = Daemon::start(cfg.clone()).await;
    let (_c, js) = nats.client().await;
    for r in ["s1", "s2", "s3"] {
        publish_report(&js, "agent_failure", &p1(r)).await;
    }
    eventually("three paged", || async {
        (pages(&js).await.len() == 3).then_some(())
    })
    .await;
    a.stop().await.unwrap(); // writes the shutdown snapshot

    let names = Names::new("baton");
    let store = SnapshotStore::open(js.clone(), &names).await.unwrap();
    let snap = store
        .load()
        .await
        .expect("a snapshot was written on shutdown");
    assert_eq!((snap.manifest.seq, snap.entries.len()), (3, 3));

    // The tail: one more report while no daemon runs.
    publish_report(&js, "agent_failure", &p1("s4")).await;
    let b = Daemon::start(cfg.clone()).await;
    eventually("s4 opened", || async { b.shared().engine.get(p1_id("s4")) }).await;
    assert_eq!(
        live(&b),
        rebuilt(&js).await,
        "snapshot + tail = full replay"
    );
    let text = b.shared().metrics.render();
    assert!(
        text.contains(r#"baton_open_handoffs{severity="P1",state="paged"} 4"#),
        "gauges count the snapshot's handoffs too:\n{text}"
    );
    b.stop().await.unwrap();

    // Corrupt every chunk: both snapshots are refused, a full replay runs.
    for slot in ["a", "b"] {
        js.publish(format!("baton.snapshot.{slot}.chunk.0"), "garbage".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert!(
        store.load().await.is_none(),
        "corrupt snapshots are refused"
    );
    let c = Daemon::start(cfg).await;
    assert_eq!(
        live(&c),
        rebuilt(&js).await,
        "full replay after a corrupt snapshot"
    );
    assert_eq!(live(&c).len(), 4);
    c.stop().await.unwrap();
}

/// Events recorded from today's code (the core scenarios: paged and
/// escalated, held then paged at max_hold, queued then enriched and
/// overridden, acknowledged and resolved). Every later build must still
/// replay them: a schema change upcasts old events, it never breaks this.
#[test]
fn recorded_event_fixtures_replay_forever() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut state: BTreeMap<Uuid, Option<Handoff>> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let e: Event = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{}:{}: {err}", path.display(), n + 1));
            apply(state.entry(e.handoff_id).or_default(), &e);
        }
        assert!(!state.is_empty(), "{} holds no events", path.display());
        for (id, h) in &state {
            let h = h.as_ref().unwrap_or_else(|| panic!("{id} never opened"));
            assert!(h.events > 1 && h.hcs.score > 0.0, "{id}: {h:?}");
        }
        let expected = std::fs::read_to_string(path.with_extension("expected.json")).unwrap();
        let expected: BTreeMap<Uuid, String> = serde_json::from_str(&expected).unwrap();
        let got: BTreeMap<Uuid, String> = state
            .iter()
            .map(|(id, h)| (*id, h.as_ref().unwrap().status().as_str().to_string()))
            .collect();
        assert_eq!(got, expected, "{}", path.display());
    }
    assert!(files > 0, "no fixtures in {}", dir.display());
}

/// Writes `tests/fixtures/core_scenarios.jsonl` (and its expected statuses)
/// from a live run of today's code: `cargo test --test replay_e2e --
/// --ignored record_fixtures`. Run it only to add a new fixture file; never
/// regenerate an old one, or the test above stops guarding old events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn record_fixtures() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    // P1 complete: paged, escalated twice, acknowledged, resolved; reported again.
    publish_report(&js, "agent_failure", &p1("fx-1")).await;
    publish_report(&js, "agent_failure", &p1("fx-1")).await;
    let a = p1_id("fx-1");
    eventually("escalated twice", || async {
        let k = kinds(&events_of(&js, a).await);
        (k.iter().filter(|k| **k == "escalated").count() == 2).then_some(())
    })
    .await;
    command(&client, "ack", json!({"id": a, "by": "alice"})).await;
    command(
        &client,
        "resolve",
        json!({"id": a, "by": "alice", "note": "failed over"}),
    )
    .await;
    // P1 without run_id: enriched, held, paged at max_hold, acknowledged.
    let mut held: serde_json::Value = serde_json::from_slice(&p1("x")).unwrap();
    held.as_object_mut().unwrap().remove("run_id");
    held.as_object_mut().unwrap().remove("rollback_command");
    held["dedup_key"] = json!("fx-held");
    publish_report(&js, "agent_failure", &serde_json::to_vec(&held).unwrap()).await;
    // P2 incomplete: queued with a ticket, enriched by hand, overridden.
    let p2 = json!({
        "severity": "P2", "run_id": "fx-3", "workflow_id": "search-reindex",
        "objective": "Nightly reindex", "failure_class": "oom", "failing_step": "build_shards",
        "error_summary": "worker killed: out of memory", "team": "search"
    });
    publish_report(&js, "agent_failure", &serde_json::to_vec(&p2).unwrap()).await;
    let limits = baton::domain::ParseLimits {
        max_report_bytes: 65536,
        max_field_bytes: 4096,
    };
    let id_of = |v: &serde_json::Value| {
        let parsed = baton::domain::parse_report(&serde_json::to_vec(v).unwrap(), limits).unwrap();
        baton::domain::handoff_id_for("agent_failure", &parsed.report).unwrap()
    };
    let (b, c) = (id_of(&held), id_of(&p2));
    eventually("held one paged", || async {
        kinds(&events_of(&js, b).await)
            .contains(&"paged")
            .then_some(())
    })
    .await;
    command(&client, "ack", json!({"id": b, "by": "bob"})).await;
    eventually("p2 queued", || async {
        kinds(&events_of(&js, c).await)
            .contains(&"held")
            .then_some(())
    })
    .await;
    command(
        &client,
        "enrich",
        json!({"id": c, "by": "dana", "fields": {"recommended_action": "rerun with 2x memory"}}),
    )
    .await;
    command(
        &client,
        "override",
        json!({"id": c, "by": "dana", "reason": "customer-facing search is down"}),
    )
    .await;
    let mut lines = String::new();
    let mut expected = BTreeMap::new();
    for id in [a, b, c] {
        let events = events_of(&js, id).await;
        for e in &events {
            lines.push_str(&serde_json::to_string(e).unwrap());
            lines.push('\n');
        }
        let mut h = None;
        events.iter().for_each(|e| apply(&mut h, e));
        expected.insert(id, h.unwrap().status().as_str().to_string());
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("core_scenarios.jsonl"), lines).unwrap();
    std::fs::write(
        dir.join("core_scenarios.expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
    daemon.stop().await.unwrap();
}

/// Restart time with and without a snapshot on a generated stream:
/// `BATON_MEASURE_HANDOFFS=100000 cargo test --release --test replay_e2e --
/// --ignored --nocapture measure_restart`. Prints the timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_restart_with_and_without_a_snapshot() {
    use baton::domain::{decide, Command, Commit};
    let n: usize = std::env::var("BATON_MEASURE_HANDOFFS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // Extra commits per handoff (`reported_again`): the stream's length.
    let extra: usize = std::env::var("BATON_MEASURE_EXTRA_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.pages.enabled = false;
    for sev in baton::domain::Severity::ALL {
        cfg.severity.get_mut(&sev).unwrap().first_response =
            Some(std::time::Duration::from_secs(3600));
    }
    // Streams first, then the generated history straight into BATON_EVENTS.
    Daemon::start(cfg.clone()).await.stop().await.unwrap();
    let (_c, js) = nats.client().await;
    let policy = cfg.policy();
    let names = Names::new("baton");
    let started = std::time::Instant::now();
    let mut acks = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        let report = baton::domain::testkit::report(baton::domain::Severity::P2);
        let cmd = Command::Open {
            template: "agent_failure".into(),
            report,
            warnings: vec![],
            source: Some(format!("report:{i}")),
        };
        let now = chrono::Utc::now();
        let events = decide(None, &cmd, now, &policy)
            .unwrap()
            .into_iter()
            .map(|e| e.seal(Uuid::now_v7(), id, now))
            .collect();
        let body = serde_json::to_vec(&Commit { events }).unwrap();
        acks.push(js.publish(names.events(id), body.into()).await.unwrap());
        for _ in 0..extra {
            let again = baton::domain::Event {
                id: Uuid::now_v7(),
                handoff_id: id,
                version: baton::domain::EVENT_VERSION,
                occurred_at: now,
                actor: "baton".into(),
                data: baton::domain::EventData::ReportedAgain { report: None },
            };
            let body = serde_json::to_vec(&Commit {
                events: vec![again],
            })
            .unwrap();
            acks.push(js.publish(names.events(id), body.into()).await.unwrap());
        }
        if acks.len() >= 1000 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    println!(
        "generated {n} handoffs, {} commits in {:?}",
        n * (1 + extra),
        started.elapsed()
    );
    // Ignore the empty snapshot written at the first stop.
    for slot in ["a", "b"] {
        js.publish(format!("baton.snapshot.{slot}.manifest"), "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let t = std::time::Instant::now();
    let full = Daemon::start(cfg.clone()).await;
    let full_ms = t.elapsed().as_millis();
    assert_eq!(full.shared().engine.projection().len(), n);
    let t = std::time::Instant::now();
    full.stop().await.unwrap();
    let stop_ms = t.elapsed().as_millis();
    let store = SnapshotStore::open(js.clone(), &names).await.unwrap();
    let t = std::time::Instant::now();
    let loaded = store.load().await.expect("snapshot written at stop");
    println!(
        "snapshot: {} handoffs in {} chunks, {} bytes, loaded and verified in {} ms",
        loaded.manifest.handoffs,
        loaded.manifest.chunks,
        loaded.manifest.bytes,
        t.elapsed().as_millis()
    );
    let t = std::time::Instant::now();
    let snap = Daemon::start(cfg).await;
    let snap_ms = t.elapsed().as_millis();
    assert_eq!(snap.shared().engine.projection().len(), n);
    snap.stop().await.unwrap();
    println!(
        "{n} handoffs: start with full replay {full_ms} ms; stop incl. snapshot {stop_ms} ms; start from snapshot {snap_ms} ms"
    );
}
