//! The real binary: `baton serve` killed with SIGKILL and restarted, the CLI
//! as a user runs it, and SIGTERM's graceful exit.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("baton-test.toml");
    let text = format!("{TEST_CONFIG}\n[nats]\nurl = \"{url}\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn baton(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("BATON_NATS_URL");
    c
}

/// A `baton serve` child, killed and reaped on drop: a failed assertion
/// must not leave a daemon running (STYLE §9).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // A no-op for a child already waited on (std never signals a
        // reaped pid).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Serve {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn serve(config: &Path) -> Serve {
    Serve(
        baton(config, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("baton serve starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_lose_and_double_nothing() {
    let nats = Nats::start();
    let cfg = write_config(nats.dir.path(), &nats.url);
    let (_c, js) = nats.client().await;

    let mut first = serve(&cfg);
    // As a user would: wait until the daemon has created its streams.
    eventually("streams created", || async {
        js.get_stream("BATON_PAGES").await.ok().map(|_| ())
    })
    .await;
    let out = baton(&cfg, &["report", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&p1("kill9"))?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let id = p1_id("kill9");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id.to_string()));

    eventually("first page stored", || async {
        (!pages_of(&js, id).await.is_empty()).then_some(())
    })
    .await;
    first.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.wait().unwrap();

    let mut second = serve(&cfg);
    let pages = eventually("page + two steps on two routes", || async {
        let p = pages_of(&js, id).await;
        (p.len() == 5).then_some(p)
    })
    .await;
    let mut seen: HashMap<_, usize> = HashMap::new();
    for p in &pages {
        *seen
            .entry((p.kind.clone(), p.step, p.route.clone()))
            .or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let steps: Vec<_> = kinds(&events_of(&js, id).await);
    assert_eq!(
        steps,
        ["opened", "scored", "paged", "escalated", "escalated"]
    );

    // The CLI acks and reads state through the restarted daemon.
    let ack = baton(&cfg, &["ack", &id.to_string(), "--by", "alice"])
        .output()
        .unwrap();
    assert!(
        ack.status.success(),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
    let again = baton(&cfg, &["ack", &id.to_string(), "--by", "bob"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already_acknowledged"));
    let get = baton(&cfg, &["get", &id.to_string()]).output().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(state["acknowledged"]["by"], "alice");

    // SIGTERM: graceful, exit 0.
    let pid = second.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = second.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn cli_refuses_an_invalid_report_naming_every_problem_and_check_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "nats://127.0.0.1:1");
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reports/bad.json");
    let out = baton(&cfg, &["report"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for code in [
        "invalid_severity",
        "wrong_type",
        "unknown_field",
        "invalid_token",
    ] {
        assert!(err.contains(code), "{code} missing from {err}");
    }

    let ok = baton(&cfg, &["check-config"]).output().unwrap();
    assert!(ok.status.success());
    std::fs::write(dir.path().join("bad.toml"), "[nats]\nurll = 1\n").unwrap();
    let bad_cfg = baton(&dir.path().join("bad.toml"), &["check-config"])
        .output()
        .unwrap();
    assert!(!bad_cfg.status.success());
    assert!(String::from_utf8_lossy(&bad_cfg.stderr).contains("urll"));
}

/// `server::start` must be spawnable (a Send future): embedding Baton in
/// another runtime or task should not need a blocking thread.
#[test]
fn regression_server_start_is_a_send_future() {
    fn assert_send<T: Send>(_: T) {}
    let cfg = baton::config::Config::default();
    assert_send(baton::server::start(
        cfg,
        tokio_util::sync::CancellationToken::new(),
    ));
}

/// `baton … | head` closes the pipe early: the CLI must exit 0 quietly,
/// not panic with "failed printing to stdout: Broken pipe" (exit 101).
#[test]
fn regression_a_closed_stdout_pipe_ends_the_cli_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "nats://127.0.0.1:1");
    let mut child = baton(&cfg, &["diagram"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the child has written anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
