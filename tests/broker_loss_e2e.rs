//! The broker is killed (SIGKILL) under a running daemon with open
//! incidents whose escalation deadlines fall due while it is gone, then
//! restarted on the same port and store. `/readyz` must go false while
//! Baton cannot write and true again after; every overdue escalation is
//! stored exactly once after the restart, no page is doubled, and a report
//! sent after the restart is paged. How long the daemon took to resume is
//! printed (measured, not asserted: timing belongs to the benchmarks).
//!
//! With two daemons on one broker, writes the other daemon makes after the
//! restart (an acknowledgement, an on-call override) reach this daemon's
//! reads, each applied once: its projection ends equal to a fresh replay's.
//! A follower started after a position and restarted with the broker
//! before it read anything resumes right after that position (async-nats's
//! own recreate would start over from the stream's first message).

mod common;
#[path = "support/http.rs"]
mod http;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton::dev::NatsServer;
use baton::domain::EventData;
use common::*;
use uuid::Uuid;

/// Escalations 1.5 s apart, the first 1.5 s after opening: it falls due
/// during the outage.
fn outage_config(url: &str) -> baton::config::Config {
    let toml = TEST_CONFIG
        .replace(
            r#"first_response = "700ms""#,
            r#"first_response = "1500ms""#,
        )
        .replace(r#"delay = "400ms""#, r#"delay = "1500ms""#);
    let mut cfg = baton::config::Config::parse(&toml).expect("test config parses");
    cfg.nats.url = url.to_string();
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.validate().expect("test config is valid");
    cfg
}

/// Restarts the server on its port and store (the port may take a moment
/// to be free again after the kill).
fn restart(nats: &mut Nats) {
    let port = nats.server.port;
    for _ in 0..100 {
        if let Ok(s) = NatsServer::start(nats.dir.path(), port) {
            nats.server = s;
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nats-server does not restart on port {port}");
}

async fn ready(addr: std::net::SocketAddr) -> bool {
    http::send(addr, "GET", "/readyz", &[], b"").await.status == 200
}

/// The escalation steps stored for `id`.
async fn steps(js: &async_nats::jetstream::Context, id: Uuid) -> Vec<u32> {
    events_of(js, id)
        .await
        .iter()
        .filter_map(|e| match &e.data {
            EventData::Escalated { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_resumes_escalations_once_and_readiness_follows_it() {
    let mut nats = Nats::start();
    let daemon = Daemon::start(outage_config(&nats.url)).await;
    let addr = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let metrics = daemon.shared().metrics.clone();
    let (_, js) = nats.client().await;
    eventually("ready at start", || async {
        ready(addr).await.then_some(())
    })
    .await;

    let runs = ["outage-1", "outage-2", "outage-3"];
    for run in runs {
        publish_report(&js, "agent_failure", &p1(run)).await;
    }
    for run in runs {
        let id = p1_id(run);
        eventually("the first page stored", || async {
            let p = pages_of(&js, id).await;
            (!p.is_empty()).then_some(())
        })
        .await;
    }

    nats.server.kill();
    eventually("not ready while the broker is gone", || async {
        (!ready(addr).await).then_some(())
    })
    .await;
    assert_eq!(
        metrics.store_up.get(),
        0,
        "baton_store_up follows readiness"
    );
    // Each incident's first escalation falls due while the broker is down.
    eventually("the escalations overdue", || async {
        (metrics.overdue_deadlines.get() >= runs.len() as i64).then_some(())
    })
    .await;

    restart(&mut nats);
    let back = Instant::now();
    let (_, js) = nats.client().await;
    let (mut to_ready, mut to_first) = (None, None);
    let deadline = back + Duration::from_secs(20);
    while to_ready.is_none() || to_first.is_none() {
        assert!(Instant::now() < deadline, "not resumed after the restart");
        if to_ready.is_none() && ready(addr).await {
            to_ready = Some(back.elapsed());
        }
        if to_first.is_none() && !steps(&js, p1_id(runs[0])).await.is_empty() {
            to_first = Some(back.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.store_up.get(), 1);

    // Every escalation step stored once (the second falls due after the
    // restart), and no page stored twice.
    for run in runs {
        let id = p1_id(run);
        let s = eventually("both escalation steps stored", || async {
            let s = steps(&js, id).await;
            (s.len() >= 2).then_some(s)
        })
        .await;
        assert_eq!(s, [1, 2], "{run}: each step stored once");
        eventually("the escalations paged", || async {
            let p = pages_of(&js, id).await;
            (p.iter().filter(|p| p.kind == "escalation").count() >= 2).then_some(())
        })
        .await;
    }
    let all = pages(&js).await;
    let mut seen: HashMap<_, usize> = HashMap::new();
    for p in &all {
        *seen
            .entry((p.handoff_id, p.kind.clone(), p.step, p.route.clone()))
            .or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a page was stored twice");
    // Their lateness, outage included, is in the histogram.
    assert!(metrics.escalation_lateness_seconds.get_sample_count() >= 6);

    // A report sent after the restart is paged.
    publish_report(&js, "agent_failure", &p1("after-outage")).await;
    eventually("a report after the restart paged", || async {
        (!pages_of(&js, p1_id("after-outage")).await.is_empty()).then_some(())
    })
    .await;

    eprintln!(
        "broker restart: ready again {} ms and first overdue escalation stored {} ms after \
         nats-server was ready",
        to_ready.unwrap().as_millis(),
        to_first.unwrap().as_millis()
    );
    daemon.stop().await.unwrap();
}

const PEOPLE: &str = r#"
[people.alice]
[people.carol]
[people.dave]

[rotations.incident-captains]
time_zone = "UTC"
kind = "daily"
handoff = "2020-01-01T00:00:00"
participants = ["carol", "dave"]
"#;

fn two_daemon_config(url: &str, http: bool) -> baton::config::Config {
    let mut cfg = baton::config::Config::parse(&format!("{TEST_CONFIG}\n{PEOPLE}"))
        .expect("test config parses");
    cfg.nats.url = url.to_string();
    cfg.http.enabled = http;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.validate().expect("test config is valid");
    cfg
}

/// The last sequence of a stream now.
async fn last_seq(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info")
        .state
        .last_sequence
}

/// Who `addr`'s daemon says captains the incidents now.
async fn captain(addr: std::net::SocketAddr) -> Option<String> {
    let r = http::send(
        addr,
        "GET",
        "/v1/oncall?rotation=incident-captains",
        &[],
        b"",
    )
    .await;
    (r.status == 200).then(|| r.json()["oncall"][0]["person"].as_str().map(String::from))?
}

/// The projection's digests (handoffs held and the 256 bucket digests) and
/// the sequence they were taken at.
fn digests(d: &Daemon) -> (u64, serde_json::Value) {
    let v = serde_json::to_value(d.shared().app().digest(&Default::default())).unwrap();
    let seq = v["applied_seq"].as_u64().unwrap();
    (seq, serde_json::json!([v["handoffs"], v["buckets"]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_another_daemons_writes_reach_this_one_each_once() {
    let mut nats = Nats::start();
    let a = Daemon::start(two_daemon_config(&nats.url, true)).await;
    let b = Daemon::start(two_daemon_config(&nats.url, false)).await;
    let addr = a.running.as_ref().unwrap().http_addr.unwrap();
    let names = baton::store::Names::new("baton");
    let (_, js) = nats.client().await;

    let run = "readers-1";
    let id = p1_id(run);
    publish_report(&js, "agent_failure", &p1(run)).await;
    let path = format!("/v1/handoffs/{id}");
    eventually("the incident paged, as this daemon reads it", || async {
        let r = http::send(addr, "GET", &path, &[], b"").await;
        (r.status == 200 && r.json()["status"] != "held").then_some(())
    })
    .await;
    let scheduled = captain(addr).await.expect("a captain is scheduled");
    let stand_in = if scheduled == "carol" {
        "dave"
    } else {
        "carol"
    };

    nats.server.kill();
    for d in [&a, &b] {
        let m = d.shared().metrics.clone();
        eventually("both daemons see the broker gone", || async {
            (m.store_up.get() == 0).then_some(())
        })
        .await;
    }
    restart(&mut nats);
    let back = Instant::now();

    // The other daemon writes as soon as its store takes writes again.
    let (app_b, oncall_b) = (b.shared().app(), b.shared().app().oncall());
    let acked = eventually("the other daemon acknowledges", || async {
        let body = serde_json::json!({"by": "alice"});
        let r = app_b
            .command("ack", id, body.as_object().unwrap().clone())
            .await;
        r.ok().map(|_| back.elapsed())
    })
    .await;
    let now = chrono::Utc::now();
    let overridden = eventually("the other daemon overrides the captain", || async {
        let body = baton::app::oncall::OverrideCreateBody {
            rotation: "incident-captains".into(),
            by: stand_in.into(),
            replaces: None,
            from: "now".into(),
            until: (now + chrono::Duration::hours(1)).to_rfc3339(),
            created_by: None,
        };
        oncall_b
            .create_override(body)
            .await
            .ok()
            .map(|_| back.elapsed())
    })
    .await;

    // This daemon's reads see both (each written after the restart, so
    // only its followers, rebuilt after the outage, can bring them).
    let seen_ack = eventually("this daemon reads the acknowledgement", || async {
        let r = http::send(addr, "GET", &path, &[], b"").await;
        (r.status == 200 && r.json()["status"] == "acknowledged").then(|| back.elapsed())
    })
    .await;
    let seen_override = eventually("this daemon pages the stand-in", || async {
        (captain(addr).await.as_deref() == Some(stand_in)).then(|| back.elapsed())
    })
    .await;

    // Nothing missed, nothing applied twice: every stored on-call event and
    // commit is applied, and the projection equals a fresh replay's.
    let oncall_last = last_seq(&js, &names.oncall_stream()).await;
    eventually("every on-call event followed", || async {
        (a.shared().engine.roster().last_seq() == oncall_last).then_some(())
    })
    .await;
    let c = Daemon::start(two_daemon_config(&nats.url, false)).await;
    eventually("this daemon's projection equals a fresh replay", || async {
        let last = last_seq(&js, &names.events_stream()).await;
        let (seq_a, da) = digests(&a);
        let (seq_c, dc) = digests(&c);
        (seq_a == last && seq_c == last && da == dc).then_some(())
    })
    .await;

    eprintln!(
        "two daemons, broker restart: the other daemon's ack stored {} ms and override {} ms \
         after nats-server was ready; this daemon read the ack at {} ms and the override at {} ms",
        acked.as_millis(),
        overridden.as_millis(),
        seen_ack.as_millis(),
        seen_override.as_millis()
    );
    for d in [a, b, c] {
        d.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resumes_after_its_position_not_from_the_start() {
    let mut nats = Nats::start();
    let cfg = config(&nats.url);
    let health = baton::store::StoreHealth::new();
    let client = baton::store::connect_watched(&cfg.nats, Some(health.clone()))
        .await
        .unwrap();
    let js = baton::store::jetstream(client, &cfg.nats);
    let stream = stream_of(&js, "FOLLOW", "follow", 3).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let probe = tokio::spawn(baton::store::health::run(
        health.clone(),
        js.clone(),
        "FOLLOW".into(),
        |_| {},
        shutdown.clone(),
    ));
    let mut follow = baton::store::Follow::open(stream, "follow.>".into(), 3, "test")
        .await
        .unwrap()
        .with_health(&health);

    nats.server.kill();
    eventually("the store is down", || async {
        (!health.is_up()).then_some(())
    })
    .await;
    restart(&mut nats);
    for n in 4..=6 {
        eventually("published after the restart", || async {
            let ack = js.publish(format!("follow.{n}"), "new".into()).await.ok()?;
            ack.await.ok()
        })
        .await;
    }
    let seqs = next_seqs(&mut follow, 3, "the follower resumes").await;
    assert_eq!(seqs, [4, 5, 6], "each message after the position, once");
    assert_eq!(follow.position(), 6);
    shutdown.cancel();
    probe.await.unwrap();
}

/// A consumer that goes quiet while the broker is healthy (async-nats once
/// sent no pull request for 30 s in the replay benchmark) is noticed by
/// `Follow`'s watchdog and rebuilt after the position: the messages after
/// it arrive within seconds, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_consumer_goes_quiet_rebuilds_it() {
    let nats = Nats::start();
    let (_client, js) = nats.client().await;
    let stream = stream_of(&js, "QUIET", "quiet", 4).await;
    let mut follow = baton::store::Follow::open(stream, "quiet.>".into(), 0, "test")
        .await
        .unwrap();
    let first = follow.next().await.unwrap().unwrap();
    assert_eq!(first.info().unwrap().stream_sequence, 1);
    // From here on its consumer delivers nothing, as the stalled one did.
    follow.wedge_for_test("quiet.never").await.unwrap();
    let seqs = next_seqs(&mut follow, 3, "the watchdog rebuilds the quiet consumer").await;
    assert_eq!(seqs, [2, 3, 4], "each message after the position, once");
}

/// A stream `name` on `<prefix>.>` holding `n` messages, `<prefix>.1` to
/// `<prefix>.n` (stream sequences 1 to n).
async fn stream_of(
    js: &async_nats::jetstream::Context,
    name: &str,
    prefix: &str,
    n: u64,
) -> async_nats::jetstream::stream::Stream {
    let config = async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    };
    let stream = js.create_stream(config).await.unwrap();
    for i in 1..=n {
        js.publish(format!("{prefix}.{i}"), "old".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    stream
}

/// The stream sequences of the next `n` messages `follow` hands out, each
/// within 20 s (errors are logged: the follower resumes after them).
async fn next_seqs(follow: &mut baton::store::Follow, n: usize, what: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(20), follow.next())
            .await
            .expect(what)
            .expect("never ends");
        match m {
            Ok(m) => seqs.push(m.info().unwrap().stream_sequence),
            Err(e) => eprintln!("follower error (it resumes): {e}"),
        }
    }
    seqs
}
