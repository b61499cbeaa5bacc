//! A three-node JetStream cluster on loopback (routes between three real
//! `nats-server` processes), Baton with `replicas = 3` and every URL, two
//! daemons, steady report load; the `BATON_EVENTS` leader is killed with
//! SIGKILL and restarted, then a follower. Nothing may be lost or doubled:
//! every acknowledged report opens its handoff, every escalation is stored
//! once, every page is stored once. How late escalations were is printed
//! (measured, not asserted: timing belongs to the benchmarks).
//!
//! Needs a server that enforces expected sequences when clustered
//! (≥ 2.9.21): on an older one (Debian's 2.9.10) the test says so and
//! passes without running; CI runs the suite again on v2.15.1.

#[path = "support/cluster.rs"]
mod cluster;
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use baton::domain::EventData;
use cluster::{cluster_capable, leader, Cluster};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_and_follower_kills_lose_no_report_and_double_no_page() {
    let (version, supported) = cluster_capable();
    if !supported {
        eprintln!(
            "skipped: nats-server {version} does not enforce expected sequences when clustered \
             (needs >= 2.9.21); run with BATON_NATS_SERVER=<a current nats-server>"
        );
        return;
    }
    let mut cluster = Cluster::start();
    let urls = cluster.urls();
    let mut cfg = config(&urls);
    cfg.nats.replicas = 3;
    cfg.nats.request_timeout = Duration::from_secs(2);
    // The cluster elects its JetStream meta leader after "ready": retry
    // until the daemons can create their replicated streams.
    let a = eventually("a daemon starts on the cluster", || async {
        let token = tokio_util::sync::CancellationToken::new();
        let running = baton::server::start(cfg.clone(), token.clone())
            .await
            .ok()?;
        Some(Daemon {
            running: Some(running),
            token,
        })
    })
    .await;
    let b = Daemon::start(cfg.clone()).await;
    let client = async_nats::ConnectOptions::new()
        .connect(urls.split(',').collect::<Vec<_>>().as_slice())
        .await
        .expect("connect");
    let js = jetstream::new(client);

    // Steady load: a report every 20 ms, each retried under its own msg-id
    // until JetStream acknowledges it (a retry the broker already has is
    // deduplicated). `acked` is what Baton owes.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (js, stop, acked) = (js.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let run = format!("c{i}");
                i += 1;
                loop {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, run.as_str());
                    let sent = async {
                        js.publish_with_headers(
                            "baton.report.agent_failure",
                            headers,
                            p1(&run).into(),
                        )
                        .await?
                        .await
                    }
                    .await;
                    if sent.is_ok() {
                        acked.lock().unwrap().push(run.clone());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let acked_now = |n: usize| {
        let acked = acked.clone();
        move || {
            let acked = acked.clone();
            async move { (acked.lock().unwrap().len() >= n).then_some(()) }
        }
    };
    eventually("load flows", acked_now(20)).await;

    // Kill -9 the events stream's leader, restart it once a new one leads.
    let first = eventually("an events leader", || leader(&js, "BATON_EVENTS")).await;
    cluster.node(&first).kill();
    let second = eventually("a new events leader", || async {
        leader(&js, "BATON_EVENTS").await.filter(|l| *l != first)
    })
    .await;
    let before = acked.lock().unwrap().len();
    eventually("load flows after the leader kill", acked_now(before + 20)).await;
    cluster.node(&first).start();

    // Then a follower.
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != second)
        .expect("a follower");
    cluster.node(&follower).kill();
    let before = acked.lock().unwrap().len();
    eventually("load flows after the follower kill", acked_now(before + 20)).await;
    cluster.node(&follower).start();
    let before = acked.lock().unwrap().len();
    eventually("load flows after the restarts", acked_now(before + 20)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let runs = acked.lock().unwrap().clone();

    // Every acknowledged report: opened once, both escalation steps stored
    // once, paged once.
    let mut lateness_ms = Vec::new();
    for run in &runs {
        let id = p1_id(run);
        let events = eventually("both escalation steps stored", || async {
            let ev = events_of(&js, id).await;
            (kinds(&ev).iter().filter(|k| **k == "escalated").count() >= 2).then_some(ev)
        })
        .await;
        let k = kinds(&events);
        assert_eq!(
            k.iter().filter(|k| **k == "opened").count(),
            1,
            "{run}: {k:?}"
        );
        assert_eq!(
            k.iter().filter(|k| **k == "paged").count(),
            1,
            "{run}: {k:?}"
        );
        let steps: Vec<u32> = events
            .iter()
            .filter_map(|e| match &e.data {
                EventData::Escalated { step, deadline, .. } => {
                    lateness_ms.push((e.occurred_at - *deadline).num_milliseconds());
                    Some(*step)
                }
                _ => None,
            })
            .collect();
        assert_eq!(steps, [1, 2], "{run}: each step stored once");
    }
    let all = eventually("every page stored", || async {
        let p = pages(&js).await;
        (p.len() >= runs.len() * 5).then_some(p)
    })
    .await;
    let mut seen: HashMap<_, usize> = HashMap::new();
    for p in &all {
        *seen
            .entry((p.handoff_id, p.kind.clone(), p.step, p.route.clone()))
            .or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a page was stored twice");
    assert_eq!(all.len(), runs.len() * 5);
    lateness_ms.sort_unstable();
    let pct = |p: f64| lateness_ms[((lateness_ms.len() - 1) as f64 * p) as usize];
    eprintln!(
        "cluster on nats-server {version}: {} reports, leader {first} then follower {follower} killed; \
         escalation lateness p50 {} ms, p99 {} ms, max {} ms",
        runs.len(),
        pct(0.5),
        pct(0.99),
        lateness_ms.last().unwrap()
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
