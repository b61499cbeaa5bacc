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
    let get = baton(&cfg, &["get", &id.to_string(), "--json"])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(state["acknowledged"]["by"], "alice");
    // Without --json a person reads a few lines, not the JSON.
    let human = baton(&cfg, &["get", &id.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success());
    assert!(text.lines().count() <= 6, "{text}");
    assert!(text.contains("P1 ACKNOWLEDGED team payments"), "{text}");
    assert!(text.contains("acknowledged by alice at"), "{text}");
    // `list`: acknowledged is still open; resolved is not, unless asked.
    let list = baton(&cfg, &["list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains(&id.to_string()), "{text}");
    let resolve = baton(&cfg, &["resolve", &id.to_string(), "--by", "alice"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&resolve.stdout).starts_with("resolve: stored resolved"));
    let open = baton(&cfg, &["list", "--json"]).output().unwrap();
    let page: serde_json::Value = serde_json::from_slice(&open.stdout).unwrap();
    assert_eq!(page["items"], serde_json::json!([]), "{page}");
    let resolved = baton(
        &cfg,
        &["list", "--status", "resolved", "--severity", "P1", "--json"],
    )
    .output()
    .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&resolved.stdout).unwrap();
    assert_eq!(page["items"][0]["id"], id.to_string(), "{page}");
    // A refusal exits 4 (docs/cli.md).
    assert_eq!(again.status.code(), Some(4));

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

    // check-config also wants the templates folder the file names.
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
    let with_templates = dir.path().join("with-templates.toml");
    std::fs::write(
        &with_templates,
        format!(
            "templates_dir = {:?}\n{}",
            templates.display().to_string(),
            std::fs::read_to_string(&cfg).unwrap()
        ),
    )
    .unwrap();
    let ok = baton(&with_templates, &["check-config"]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let no_templates = baton(&cfg, &["check-config"]).output().unwrap();
    assert_eq!(no_templates.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_templates.stderr).contains("templates_dir:"));
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

/// Issue #16: `page_routes = ["oncal"]` was "valid". Each problem is one
/// line naming the key and the route meant, and the exit status is 3.
#[test]
fn check_config_names_a_route_typo_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/baton.toml"))
            .unwrap()
            .replace(r#"page_routes = ["oncall"]"#, r#"page_routes = ["oncal"]"#);
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for t in [
        "agent_failure",
        "sales_to_onboarding",
        "design_to_development",
    ] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/templates/{t}.toml"));
        std::fs::copy(from, dir.path().join(format!("templates/{t}.toml"))).unwrap();
    }
    let out = baton(&path, &["check-config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let problems: Vec<&str> = err.lines().filter(|l| l.contains("page_routes")).collect();
    assert_eq!(problems.len(), 1, "{err}");
    assert!(problems[0].contains(r#"route "oncal""#), "{err}");
    assert!(problems[0].contains(r#"did you mean "oncall"?"#), "{err}");
}

/// `baton dev`, stopped by its signals: pid still running?
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits (millisecond deadline) for `f` to give a value.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Issue #16: a second `baton dev` on the same data dir opened the first
/// one's live store and failed vaguely; closing the terminal (SIGHUP)
/// orphaned nats-server. Now the second is refused naming the first's pid,
/// and SIGHUP stops both processes.
#[test]
fn a_second_baton_dev_is_refused_and_sighup_stops_its_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = baton::dev::free_port();
    let cfg = dir.path().join("dev.toml");
    std::fs::write(
        &cfg,
        format!("{TEST_CONFIG}\n[nats]\nurl = \"nats://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let dev = |cfg: &Path| {
        let mut c = baton(cfg, &["dev", "--data-dir"]);
        c.arg(&data).stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let mut first = Serve(dev(&cfg).stderr(Stdio::null()).spawn().unwrap());
    let lock = data.join(baton::dev::DevLock::FILE);
    // The lock file names the nats-server once it is ready.
    let server_pid: u32 = wait_for("the dev lock names its nats-server", || {
        let text = std::fs::read_to_string(&lock).ok()?;
        let pid = text.split("nats-server pid ").nth(1)?.split(' ').next()?;
        pid.parse().ok()
    });
    assert!(alive(server_pid));

    let second = dev(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(err.contains("in use by another `baton dev`"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    assert!(Command::new("kill")
        .args(["-HUP", &first.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = first.wait().unwrap();
    assert!(status.success(), "SIGHUP stops cleanly, got {status}");
    wait_for("its nats-server is gone", || {
        (!alive(server_pid)).then_some(())
    });
    wait_for("its port is free", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });

    // The lock went with them: a new dev starts on the same dir.
    let mut again = Serve(dev(&cfg).stderr(Stdio::null()).spawn().unwrap());
    let pid = again.id();
    wait_for("a new dev takes the lock", || {
        let text = std::fs::read_to_string(&lock).ok()?;
        (text.starts_with(&format!("pid {pid},")) && text.contains("nats-server")).then_some(())
    });
    again.kill().unwrap();
    again.wait().unwrap();
}

/// Issue #16: a nats-server that could not start said only "did not become
/// ready within 10s"; `serve` without NATS gave no hint where the URL comes
/// from.
#[test]
fn dev_names_why_its_nats_server_failed_and_serve_names_the_url_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = write_config(dir.path(), &format!("nats://127.0.0.1:{port}"));
    let data = dir.path().join("data");
    let out = baton(&cfg, &["dev", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("address already in use"), "{err}");
    assert!(err.contains("nats-server.log"), "{err}");

    // Nothing listens on a port just freed: serve names it and hints.
    drop(taken);
    let out = baton(&cfg, &["serve"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("nats://127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("hint:") && err.contains("BATON_CONFIG"),
        "{err}"
    );
}
