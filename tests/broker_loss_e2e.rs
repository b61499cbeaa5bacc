//! The broker is killed (SIGKILL) under a running daemon with open
//! incidents whose escalation deadlines fall due while it is gone, then
//! restarted on the same port and store. `/readyz` must go false while
//! Baton cannot write and true again after; every overdue escalation is
//! stored exactly once after the restart, no page is doubled, and a report
//! sent after the restart is paged. How long the daemon took to resume is
//! printed (measured, not asserted: timing belongs to the benchmarks).

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
