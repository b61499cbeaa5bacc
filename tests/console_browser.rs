//! The web console in headless Chromium (Debian `chromium` and
//! `chromium-driver`, which `.ci/run` installs), driven over WebDriver with
//! fantoccini against a real daemon on a real socket: sign in, see a new P1
//! appear without a reload, acknowledge it, see the state change and the
//! countdown stop, see the action in the timeline with the person's name,
//! check that the pages asked no other host for anything, and see the
//! board say "stale" when the daemon goes away. A screenshot
//! of each page lands in `target/console-screenshots/`.
//!
//! Skipped, saying so, when `chromedriver` or `chromium` is not installed.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::config::Config;
use baton::dev::free_port;
use baton::identity::{credentials, Scope};
use baton::store::Names;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const PEOPLE: &str = r#"
[people.alice]
name = "Alice Example"
roles = ["oncall"]

[rotations.payments-primary]
time_zone = "UTC"
kind = "weekly"
handoff = "2020-01-06T09:00:00"
participants = ["alice"]

[routes.oncall]
target = "rotation:payments-primary"
"#;

/// chromedriver, killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves a screenshot, after checking that every resource the page
/// loaded came from this daemon (nothing from another host).
async fn shot(c: &Client, name: &str) {
    let foreign = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => !n.startsWith(location.origin));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(foreign, json!([]), "{name}: requests to another host");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Connects once chromedriver answers (it takes a moment to listen).
async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1100,900"]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return c,
            // Refused while the driver is still starting: retry (the
            // condition is the connection itself).
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("chromedriver did not answer: {e}"),
        }
    }
}

/// Waits until `script` (a JS expression) is truthy in the page.
async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c
            .execute(&format!("return !!({script});"), vec![])
            .await
            .expect("script runs");
        if v == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_a_p1_arrive_live_acknowledge_it_and_read_the_timeline() {
    if !installed("chromedriver") || !installed("chromium") {
        eprintln!(
            "SKIPPED console_browser: chromium and chromedriver are not installed \
             (apt-get install chromium chromium-driver; .ci/run installs them)"
        );
        return;
    }
    let nats = Nats::start();
    let text = format!("{TEST_CONFIG}\n{PEOPLE}").replacen(
        "[http]\nenabled = false",
        "[http]\nenabled = true\nlisten = \"127.0.0.1:0\"",
        1,
    );
    let mut cfg = Config::parse(&text).expect("parses");
    cfg.nats.url = nats.url.clone();
    cfg.validate().expect("valid");
    let daemon = Daemon::start(cfg).await;
    let addr = daemon.running.as_ref().unwrap().http_addr.expect("HTTP on");
    let base = format!("http://{addr}");
    let (_, js) = nats.client().await;
    let (minted, _) = credentials::create(
        &js,
        &Names::new("baton"),
        "alice",
        Scope::Person,
        Some("browser".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("credential");

    let port = free_port();
    let _driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let c = browser(port).await;

    // Sign in.
    c.goto(&format!("{base}/login")).await.unwrap();
    shot(&c, "login").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&minted.token)
        .await
        .unwrap();
    c.find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("rows"))
        .await
        .expect("the board after sign-in");
    until(
        &c,
        "signed in",
        "document.body.innerText.includes('Alice Example')",
    )
    .await;

    // A new P1 appears without a reload (the marker survives).
    c.execute("window.__noReload = 42; return null;", vec![])
        .await
        .unwrap();
    publish_report(&js, "agent_failure", &p1("browser-1")).await;
    let id = p1_id("browser-1");
    let row = format!("tr[data-id='{id}']");
    until(
        &c,
        "the P1 row",
        &format!("document.querySelector(\"{row}\")"),
    )
    .await;
    let kept = c
        .execute("return window.__noReload;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, json!(42), "the page was reloaded");
    until(
        &c,
        "the stream is live",
        "document.getElementById('stale').hidden",
    )
    .await;
    shot(&c, "board").await;

    // Open it and acknowledge.
    c.find(Locator::Css(&format!("{row} a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ack = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("form[action$='/ack'] button"))
        .await
        .expect("the acknowledge button");
    ack.click().await.unwrap();
    until(
        &c,
        "the acknowledgement in the timeline",
        "document.body.innerText.includes('Acknowledged by alice')",
    )
    .await;
    let state = c
        .find(Locator::Css("dd .badge"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "acknowledged");
    until(
        &c,
        "the countdown stopped",
        "document.body.innerText.includes('none pending')",
    )
    .await;
    assert!(
        c.find_all(Locator::Css("form[action$='/ack']"))
            .await
            .unwrap()
            .is_empty(),
        "no second acknowledge button"
    );
    shot(&c, "handoff").await;

    // On call.
    c.goto(&format!("{base}/oncall")).await.unwrap();
    until(
        &c,
        "the rotation",
        "document.body.innerText.includes('payments-primary')",
    )
    .await;
    shot(&c, "oncall").await;

    // The daemon goes away under a live board: shutdown does not wait on
    // the open stream, and the page says it is stale instead of looking live.
    c.goto(&format!("{base}/")).await.unwrap();
    until(
        &c,
        "the stream is live",
        "document.getElementById('stale').hidden",
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), daemon.stop())
        .await
        .expect("shutdown does not wait on open streams")
        .expect("clean stop");
    until(
        &c,
        "the stale banner",
        "!document.getElementById('stale').hidden",
    )
    .await;
    shot(&c, "stale").await;

    c.close().await.unwrap();
}
