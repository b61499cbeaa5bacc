//! Replay, audit and snapshots end to end: the real `baton` binary against a
//! private nats-server and an in-process daemon; and the recorded event
//! fixtures that every future build must still replay.

mod common;
#[allow(dead_code)]
#[path = "common/sinks.rs"]
mod sinks;

use std::collections::BTreeMap;
use std::process::Command as Process;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::HeaderMap;
use baton::domain::{apply, Event, Handoff, Incident, IncidentCommand, Status};
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
    let h: Incident = serde_json::from_str(early.trim()).unwrap();
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
            out.insert(h.id(), (h.clone(), s));
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

/// What a fixture pins about one replayed handoff, in the aggregate's own
/// terms: the facts that must come out the same from the same events after
/// any refactor. Apart from the sanity check in the replay test, the fixture
/// tests read `Handoff`'s fields only here, so splitting it into an incident
/// and a team aggregate means adapting this one function.
fn facts_of(h: &Handoff) -> serde_json::Value {
    match h {
        // A team handoff's own workflow status, in its own terms.
        Handoff::Team(w) => json!({
            "kind": "team",
            "status": w.status,
            "events": w.events,
            "template": w.template.name,
            "template_version": w.template.version,
            "completeness": w.completeness.score,
            "checked": w.checked.len(),
            "returns": w.returns,
            "rating": w.rating.as_ref().map(|r| r.rating),
            "accept_missed": w.accept_missed,
            "complete_missed": w.complete_missed,
        }),
        Handoff::Incident(h) => json!({
            "kind": "incident",
            "status": h.status().as_str(),
            "events": h.events,
            "reports": h.reports,
            "escalation_steps": h.escalation_steps,
            "acknowledged_by": h.acknowledged.as_ref().map(|s| s.by.as_str()),
            "expired": h.expired,
            "resolved_by": h.resolved.as_ref().map(|s| s.by.as_str()),
        }),
    }
}

/// The recorded event files, `tests/fixtures/*.jsonl`, sorted.
fn fixture_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Every event of one fixture file, decoded by today's code.
fn fixture_events(path: &std::path::Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{}:{}: {err}", path.display(), n + 1))
        })
        .collect()
}

/// Events recorded from today's code: the core scenarios (paged and
/// escalated, held then paged at max_hold, queued then enriched and
/// overridden, acknowledged and resolved), team handoffs through every step
/// of their lifecycle, and a packet whose TTL passed. Every later build must
/// still replay them to the same facts: a schema change upcasts old events,
/// it never breaks this.
///
/// An `.expected.json` maps each handoff id to either a status string (the
/// first fixture, recorded before the facts existed) or an object holding
/// some of [`facts_of`]'s fields, compared field by field.
#[test]
fn recorded_event_fixtures_replay_forever() {
    for path in fixture_files() {
        let mut state: BTreeMap<Uuid, Option<Handoff>> = BTreeMap::new();
        for e in fixture_events(&path) {
            apply(state.entry(e.handoff_id).or_default(), &e);
        }
        assert!(!state.is_empty(), "{} holds no events", path.display());
        let mut facts = BTreeMap::new();
        for (id, h) in &state {
            let h = h.as_ref().unwrap_or_else(|| panic!("{id} never opened"));
            // An incident's HCS and a team handoff's completeness are both
            // > 0 here (a team handoff's entry criteria guarantee it).
            let score = match h {
                Handoff::Incident(i) => i.hcs.score,
                Handoff::Team(t) => t.completeness.score,
            };
            assert!(h.events() > 1 && score > 0.0, "{id}: {h:?}");
            facts.insert(*id, facts_of(h));
        }
        let expected = std::fs::read_to_string(path.with_extension("expected.json")).unwrap();
        let expected: BTreeMap<Uuid, serde_json::Value> = serde_json::from_str(&expected).unwrap();
        // What was computed, cut down to what each expectation names, so a
        // mismatch shows as one readable diff of both maps.
        let got: BTreeMap<Uuid, serde_json::Value> = facts
            .iter()
            .map(|(id, f)| {
                let cut = match expected.get(id) {
                    Some(serde_json::Value::Object(fields)) => fields
                        .keys()
                        .filter_map(|k| f.get(k).map(|v| (k.clone(), v.clone())))
                        .collect::<serde_json::Map<_, _>>()
                        .into(),
                    Some(serde_json::Value::String(_)) => f["status"].clone(),
                    // An id missing from the file, or an expectation of
                    // another shape: the diff shows everything computed.
                    _ => f.clone(),
                };
                (*id, cut)
            })
            .collect();
        assert_eq!(got, expected, "{}", path.display());
    }
}

/// Every kind `EventData` can decode, read from serde's own list: an
/// unknown `type` is refused with "expected one of `opened`, ...". Taking
/// the list from the derived decoder, not from a copy kept by hand, is what
/// makes a new variant fail the test below until a fixture records it.
fn every_event_kind() -> Vec<String> {
    let err = serde_json::from_value::<baton::domain::EventData>(
        json!({"type": "no_such_kind", "data": {}}),
    )
    .expect_err("an unknown type is refused")
    .to_string();
    let kinds: Vec<String> = err
        .split_once("expected one of ")
        .map(|(_, list)| {
            list.split(", ")
                .map(|k| k.trim_matches('`').to_string())
                .collect()
        })
        .unwrap_or_default();
    // If serde ever words this differently, fail here rather than pass with
    // a short list.
    assert!(
        kinds.iter().any(|k| k == "opened") && kinds.iter().any(|k| k == "sla_missed"),
        "cannot read the kinds from serde's error {err:?}"
    );
    kinds
}

/// Stored events are forever, so every kind must have a recorded fixture
/// that keeps decoding: adding an `EventData` variant fails here until a
/// live run records one (a new `#[ignore]` recorder writing a new file).
#[test]
fn recorded_fixtures_cover_every_event_kind() {
    let seen: std::collections::BTreeSet<String> = fixture_files()
        .iter()
        .flat_map(|p| fixture_events(p))
        .map(|e| e.kind().to_string())
        .collect();
    let missing: Vec<String> = every_event_kind()
        .into_iter()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "event kinds without a recorded fixture in tests/fixtures/: {missing:?}"
    );
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
        expected.insert(id, h.unwrap().status_str().to_string());
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

/// Writes `tests/fixtures/team_scenarios.*` and `expiry_scenarios.*` from a
/// live run of today's code, for the event kinds `record_fixtures` never
/// produced: `cargo test --test replay_e2e -- --ignored
/// record_team_and_expiry_fixtures`. The same rule holds: run it only to add
/// new files, never to regenerate recorded ones.
///
/// Team handoffs: sales → onboarding misses its accept SLA, is accepted
/// late, returned for a missing field, resubmitted, accepted, checked off,
/// completed and rated; design → development is started and cancelled. An
/// incident whose packet TTL passes unacknowledged is expired (the owner is
/// asked to refresh it), then acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn record_team_and_expiry_fixtures() {
    use std::time::Duration;
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    // Short enough that the SLA timer records the miss while we wait; long
    // enough that the accept right after the resubmission is on time even
    // on a slow machine, so no second miss muddles the story.
    let sales = cfg.templates.get_mut("sales_to_onboarding").unwrap();
    sales.sla.as_mut().unwrap().accept = Duration::from_secs(1);
    let daemon = Daemon::start(cfg).await;
    let (client, js) = nats.client().await;
    let ok = |verb: &'static str, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = command(&client, verb, body.clone()).await;
            assert_eq!(r["ok"], true, "{verb} {body}: {r}");
            r
        }
    };
    let id_in =
        |r: &serde_json::Value| -> Uuid { r["handoff"]["id"].as_str().unwrap().parse().unwrap() };

    // Team handoff through every step. No `crm_link` (optional) yet: that
    // is what onboarding sends it back for.
    let fields = json!({
        "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
        "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
    });
    let started = ok(
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields}),
    )
    .await;
    let team = id_in(&started);
    eventually("the accept SLA missed", || async {
        kinds(&events_of(&js, team).await)
            .contains(&"sla_missed")
            .then_some(())
    })
    .await;
    ok("accept", json!({"id": team, "by": "olga"})).await;
    ok(
        "return",
        json!({"id": team, "by": "olga", "missing": ["crm_link"], "reason": "no CRM record"}),
    )
    .await;
    ok(
        "resubmit",
        json!({"id": team, "by": "sam", "fields": {"crm_link": "https://crm.test/acme"}}),
    )
    .await;
    ok("accept", json!({"id": team, "by": "olga"})).await;
    // By index and by text, as people do.
    for item in [
        json!(1),
        json!("Kickoff meeting scheduled"),
        json!(3),
        json!(4),
    ] {
        ok("check", json!({"id": team, "by": "olga", "item": item})).await;
    }
    ok("complete", json!({"id": team, "by": "olga"})).await;
    ok(
        "rate",
        json!({"id": team, "by": "olga", "rating": 4, "comment": "clear packet once the CRM link came"}),
    )
    .await;

    // Team handoff called off before anyone accepted it.
    let design = json!({
        "project_name": "Checkout v2", "design_files_url": "https://figma.test/checkout",
        "specifications": "specs in the file", "breakpoints": ["mobile", "desktop"],
        "interactions": "documented", "assets_exported": true
    });
    let started = ok(
        "start",
        json!({"template": "design_to_development", "by": "dina", "fields": design}),
    )
    .await;
    let called_off = id_in(&started);
    ok(
        "cancel",
        json!({"id": called_off, "by": "dina", "reason": "project shelved"}),
    )
    .await;

    // An incident whose packet goes stale: a P2 (no escalation within the
    // run) with a one-second TTL expires, then someone takes it.
    let mut stale: serde_json::Value = serde_json::from_slice(&p1("fx-ttl")).unwrap();
    stale["severity"] = json!("P2");
    stale["ttl_seconds"] = json!(1);
    let stale = serde_json::to_vec(&stale).unwrap();
    publish_report(&js, "agent_failure", &stale).await;
    let limits = baton::domain::ParseLimits {
        max_report_bytes: 65536,
        max_field_bytes: 4096,
    };
    let parsed = baton::domain::parse_report(&stale, limits).unwrap();
    let expiring = baton::domain::handoff_id_for("agent_failure", &parsed.report).unwrap();
    eventually("the packet expired", || async {
        kinds(&events_of(&js, expiring).await)
            .contains(&"expired")
            .then_some(())
    })
    .await;
    ok("ack", json!({"id": expiring, "by": "erin"})).await;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (name, ids) in [
        ("team_scenarios", vec![team, called_off]),
        ("expiry_scenarios", vec![expiring]),
    ] {
        let mut lines = String::new();
        let mut expected = BTreeMap::new();
        for id in ids {
            let events = events_of(&js, id).await;
            for e in &events {
                lines.push_str(&serde_json::to_string(e).unwrap());
                lines.push('\n');
            }
            let mut h = None;
            events.iter().for_each(|e| apply(&mut h, e));
            expected.insert(id, facts_of(&h.unwrap()));
        }
        let (jsonl, facts) = (
            dir.join(format!("{name}.jsonl")),
            dir.join(format!("{name}.expected.json")),
        );
        assert!(
            !jsonl.exists() && !facts.exists(),
            "{name} is recorded already; recorded fixtures are never regenerated"
        );
        std::fs::write(jsonl, lines).unwrap();
        std::fs::write(
            facts,
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    daemon.stop().await.unwrap();
}

/// Writes `tests/fixtures/delivery_scenarios.jsonl`: a P1 whose page to
/// alice fails on one webhook (400) and is delivered by the next, whose
/// escalation reaches a Slack webhook that answers 429 first (delivered
/// after the handoff was resolved) and a route with no contact
/// (`undelivered`). `cargo test --test replay_e2e -- --ignored
/// record_delivery_fixtures`; never regenerated once recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn record_delivery_fixtures() {
    let nats = Nats::start();
    let sink = sinks::HttpSink::start().await;
    let text = format!(
        r#"
[nats]
url = "{url}"
[http]
enabled = false
[jobs]
enabled = false
[delivery]
enabled = true
retry_deadline = "5s"
initial_backoff = "20ms"
max_backoff = "100ms"
per_destination_interval = "1ms"
[severity.P1]
max_hold = "400ms"
first_response = "700ms"
escalation = [ {{ routes = ["incident_captain", "nobody"], delay = "300ms" }} ]
[[ownership]]
workflow = "billing-*"
team = "payments"
primary = "alice"
backup = "bob"
[people.alice]
contact = [ {{ kind = "webhook", url = "{bad}" }}, {{ kind = "webhook", url = "{ok}" }} ]
[routes.oncall]
target = "person:alice"
[routes.incident_captain]
target = "captains"
contact = [ {{ kind = "slack", webhook_url = "{limited}" }} ]
"#,
        url = nats.url,
        bad = sink.url("bad"),
        ok = sink.url("ok"),
        limited = sink.url("limited"),
    );
    let cfg = baton::config::Config::parse(&text).unwrap();
    cfg.validate().unwrap();
    let daemon = Daemon::start(cfg).await;
    let (client, js) = nats.client().await;
    publish_report(&js, "agent_failure", &p1("fx-deliver")).await;
    let id = p1_id("fx-deliver");
    eventually("escalated, the page delivered", || async {
        let k = kinds(&events_of(&js, id).await);
        (k.contains(&"escalated") && k.contains(&"delivered")).then_some(())
    })
    .await;
    // Slack is still waiting out its Retry-After: resolve meanwhile.
    command(&client, "ack", json!({"id": id, "by": "alice"})).await;
    command(&client, "resolve", json!({"id": id, "by": "alice"})).await;
    let events = eventually("both pages delivered, one route undelivered", || async {
        let events = events_of(&js, id).await;
        let k = kinds(&events);
        let n = |x| k.iter().filter(|k| **k == x).count();
        (n("delivered") == 2 && n("undelivered") == 1).then_some(events)
    })
    .await;
    let k = kinds(&events);
    let resolved = k.iter().position(|k| *k == "resolved").unwrap();
    assert!(
        k[resolved..].contains(&"delivered"),
        "Slack's delivery lands after the resolve: {k:?}"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (jsonl, facts) = (
        dir.join("delivery_scenarios.jsonl"),
        dir.join("delivery_scenarios.expected.json"),
    );
    assert!(
        !jsonl.exists() && !facts.exists(),
        "delivery_scenarios is recorded already; recorded fixtures are never regenerated"
    );
    let mut lines = String::new();
    for e in &events {
        lines.push_str(&serde_json::to_string(e).unwrap());
        lines.push('\n');
    }
    let mut h = None;
    events.iter().for_each(|e| apply(&mut h, e));
    let expected = BTreeMap::from([(id, facts_of(&h.unwrap()))]);
    std::fs::write(jsonl, lines).unwrap();
    std::fs::write(
        facts,
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
        let report = baton::testkit::report(baton::domain::Severity::P2);
        let cmd = Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report,
            warnings: vec![],
            source: Some(format!("report:{i}")),
        });
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

/// A team handoff through its whole life (start → accept → return →
/// resubmit → accept → check every item → complete → rate) is its own
/// aggregate in every view: the audit passes (a resubmission's second
/// notification is not a duplicate page), `get` shows its workflow state and
/// checklist, and replay, timeline and the incident figures never show it as
/// an incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_returned_and_resubmitted_team_handoff_is_never_an_incident_and_audits_clean()
{
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let ok = |verb: &'static str, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = command(&client, verb, body.clone()).await;
            assert_eq!(r["ok"], true, "{verb} {body}: {r}");
            r
        }
    };
    let fields = json!({
        "client_name": "Acme", "contract_value": 120000, "start_date": "2026-12-01",
        "key_contacts": ["ann@acme.test"], "special_requirements": "SSO", "goals": "Live in Q1"
    });
    let r = ok(
        "start",
        json!({"template": "sales_to_onboarding", "by": "sam", "fields": fields}),
    )
    .await;
    assert_eq!(r["handoff"]["kind"], "team");
    assert_eq!(r["handoff"]["status"], "initiated");
    assert!(r["handoff"].get("severity").is_none(), "{r}");
    let id: Uuid = r["handoff"]["id"].as_str().unwrap().parse().unwrap();
    ok("accept", json!({"id": id, "by": "olga"})).await;
    ok(
        "return",
        json!({"id": id, "by": "olga", "missing": ["crm_link"], "reason": "no CRM record"}),
    )
    .await;
    ok(
        "resubmit",
        json!({"id": id, "by": "sam", "fields": {"crm_link": "https://crm/acme"}}),
    )
    .await;
    ok("accept", json!({"id": id, "by": "olga"})).await;
    for item in 1..=4 {
        ok("check", json!({"id": id, "by": "olga", "item": item})).await;
    }
    ok("complete", json!({"id": id, "by": "olga"})).await;
    let r = ok(
        "rate",
        json!({"id": id, "by": "olga", "rating": 5, "comment": "clear"}),
    )
    .await;
    let view = &r["handoff"];
    assert_eq!(view["status"], "completed");
    assert_eq!(view["returns"], 1);
    assert_eq!(view["rating"]["rating"], 5);
    assert_eq!(view["checklist"].as_array().unwrap().len(), 4);
    assert!(view["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["checked"]["by"] == "olga"));
    // A finished team handoff answers in its own words, not an incident's.
    let r = command(&client, "check", json!({"id": id, "by": "olga", "item": 1})).await;
    assert_eq!(r["error"]["code"], "finished", "{r}");
    // Both notifications (start and resubmission) reached the team.
    eventually("two team notifications", || async {
        (pages_of(&js, id)
            .await
            .iter()
            .filter(|p| p.kind == "handoff")
            .count()
            == 2)
            .then_some(())
    })
    .await;

    let cfg = config_file(&nats.url);
    let (code, out, err) = baton(&cfg, &["audit", "verify"]);
    assert_eq!(
        code, 0,
        "a clean team handoff must audit clean:\n{out}\n{err}"
    );
    assert!(err.contains("0 violation(s)"), "{err}");

    // Replay: its own status, no severity, and the `team` kind column.
    let (code, csv, _) = baton(&cfg, &["replay", "--format", "csv"]);
    assert_eq!(code, 0);
    let row = csv
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap();
    assert!(
        row.contains(",,sales_to_onboarding,onboarding,completed,"),
        "{row}"
    );
    assert!(row.ends_with(",team"), "{row}");
    let (_, p3, _) = baton(&cfg, &["replay", "--format", "csv", "--severity", "P3"]);
    assert!(!p3.contains(&id.to_string()), "not a P3 incident:\n{p3}");

    // The timeline tells a team handoff's story: SLAs, not an incident's
    // first-response deadline or escalation steps.
    let (code, story, err) = baton(&cfg, &["timeline", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(story.contains("sales_to_onboarding v1 SLAs"), "{story}");
    assert!(story.contains("accept due"), "{story}");
    assert!(story.contains("completed by olga"), "{story}");
    assert!(!story.contains("first response due"), "{story}");
    assert!(!story.contains("policy):"), "{story}");

    // The incident figures do not count it.
    let h = daemon.shared().engine.get(id).unwrap();
    assert!(h.as_incident().is_none());
    let all = daemon.shared().engine.projection().all();
    let stats = baton::stats::compute(&all, daemon.shared().engine.policy(), chrono::Utc::now(), 1);
    assert_eq!(stats.total, 0, "team handoffs are not incidents");
    assert_eq!(stats.work.len(), 1);
    let review = baton::jobs::review::daily_review(
        &all,
        daemon.shared().engine.policy(),
        chrono::Utc::now() + chrono::Duration::minutes(1),
        |h| h.drill,
    );
    assert_eq!(review.opened, 0);
    assert!(review.top_missing_field.is_none());
    let audit = baton::jobs::audit::ownership_audit(
        daemon.shared().engine.policy(),
        &all,
        chrono::Utc::now(),
        std::time::Duration::from_secs(3600),
    );
    assert!(audit.teams_without_rule.is_empty(), "{audit:?}");
    daemon.stop().await.unwrap();
}

/// On 2.9.10 a stream's `created` time changes when the server restarts,
/// so a snapshot that named its events stream by it was refused from the
/// second restart on and every start replayed in full. The snapshot now
/// names the stored commit it reflects (its sequence and stream time),
/// which no restart changes and a recreated stream does not match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_snapshot_survives_broker_restarts() {
    let mut nats = Nats::start();
    let cfg = config(&nats.url);
    let a = Daemon::start(cfg.clone()).await;
    let (_c, js) = nats.client().await;
    for r in ["k1", "k2"] {
        publish_report(&js, "agent_failure", &p1(r)).await;
    }
    eventually("both opened", || async {
        (a.shared().engine.get(p1_id("k2")).is_some()
            && a.shared().engine.get(p1_id("k1")).is_some())
        .then_some(())
    })
    .await;
    a.stop().await.unwrap(); // writes the shutdown snapshot
    let port = nats.server.port;
    for restart in 1..=3 {
        nats.server.kill();
        nats.server = baton::dev::NatsServer::start(nats.dir.path(), port).expect("restarts");
        let (_c, js) = nats.client().await;
        // A restarted server answers before its JetStream has recovered
        // every stream; under load a daemon started at once would find the
        // snapshot stream unavailable and (rightly) replay in full.
        let store = eventually("the snapshot stream is back", || async {
            SnapshotStore::open(js.clone(), &Names::new("baton"))
                .await
                .ok()
        })
        .await;
        if restart > 1 {
            // A daemon in between: it restores from the snapshot (its
            // start updates the streams, which on 2.9.10 changed their
            // `created`) and writes its own on stop.
            let d = Daemon::start(cfg.clone()).await;
            assert_eq!(
                d.shared().metrics.snapshot_restored_seq.get(),
                2,
                "restored from the snapshot after broker restart {restart}"
            );
            d.stop().await.unwrap();
        }
        let snap = store.load().await;
        assert!(
            snap.is_some_and(|s| s.entries.len() == 2),
            "snapshot refused after broker restart {restart}"
        );
    }

    // A recreated events stream does not take the old snapshot.
    let (_c, js) = nats.client().await;
    js.delete_stream("BATON_EVENTS").await.unwrap();
    baton::store::ensure_streams(
        &js,
        &Names::new("baton"),
        &baton::server::stream_settings(&cfg),
    )
    .await
    .unwrap();
    publish_report(&js, "agent_failure", &p1("k3")).await;
    let b = Daemon::start(cfg).await;
    eventually("k3 opened", || async { b.shared().engine.get(p1_id("k3")) }).await;
    assert!(
        b.shared().engine.get(p1_id("k1")).is_none(),
        "the old snapshot was not loaded"
    );
    b.stop().await.unwrap();
}
