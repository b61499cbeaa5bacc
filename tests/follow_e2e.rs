//! `baton pages --follow` and `baton deliveries --follow` keep printing
//! across a broker restart (they used to go silent and exit ~40 s later
//! with `consumer not found`).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `baton <args>` in the background; its stdout lines collect in the
/// returned vector. Killed on drop.
fn spawn_baton(
    cfg: &tempfile::NamedTempFile,
    args: &[&str],
) -> (tokio::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--config")
        .arg(cfg.path())
        .args(args)
        .env("BATON_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baton runs");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let l = lines.clone();
    tokio::spawn(async move {
        let mut r = BufReader::new(out).lines();
        while let Ok(Some(line)) = r.next_line().await {
            l.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_survives_a_broker_restart() {
    let mut nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!("[nats]\nurl = \"{}\"\n{TEST_CONFIG}", nats.url),
    )
    .unwrap();
    let (_js_client, js) = nats.client().await;
    let (mut follower, lines) = spawn_baton(&cfg, &["pages", "--follow", "--json"]);
    let seen = |id: uuid::Uuid| {
        let lines = lines.clone();
        move || {
            let hit = lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(&id.to_string()));
            async move { hit.then_some(()) }
        }
    };
    // The follower subscribes asynchronously: publish until it prints one.
    publish_report(&js, "agent_failure", &p1("follow-1")).await;
    eventually("the first page printed", seen(p1_id("follow-1"))).await;

    let port = nats.server.port;
    nats.server.kill();
    nats.server = baton::dev::NatsServer::start(nats.dir.path(), port).expect("restarts");
    let (_c2, js2) = nats.client().await;
    publish_report(&js2, "agent_failure", &p1("follow-2")).await;
    eventually("a page after the restart printed", seen(p1_id("follow-2"))).await;
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower is still running"
    );
    // Nothing printed twice: each page once per event and route.
    let all = lines.lock().unwrap().clone();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "{all:#?}");
    drop(follower);
    daemon.stop().await.unwrap();
}
