//! The docs cannot drift from the code: every block the README or `docs/`
//! marks with `<!-- snippet: PATH -->` is that file, word for word, and the
//! runner snippets (shell, Python, Rust) are run here against a real daemon.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const TOKEN: &str = "docs-test-token";

/// The repository root (the tests' working directory under cargo).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Markdown files that may carry snippet markers.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        let mut docs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

/// `(marked path, fenced block body)` for every `<!-- snippet: PATH -->`
/// followed by a fenced code block.
fn snippets(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- snippet:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a code fence must follow the marker for {path}"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push((path.trim().to_string(), body.join("\n")));
    }
    out
}

#[test]
fn marked_blocks_are_the_files_they_name() {
    let mut seen = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (path, body) in snippets(&text) {
            let want = std::fs::read_to_string(root().join(&path))
                .unwrap_or_else(|e| panic!("{}: snippet {path}: {e}", file.display()));
            assert_eq!(
                body.trim_end(),
                want.trim_end(),
                "{}: the block marked {path} differs from the file; copy the file into the doc",
                file.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "the runner snippets are marked in the README");
}

/// The compiled `examples/runner_report.rs` (`cargo test` builds examples).
fn rust_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("examples").join("runner_report");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds it; alone, run `cargo build --example runner_report` first",
        bin.display()
    );
    bin
}

/// `python3` can import nats-py (on `PYTHONPATH`).
fn python_has_nats() -> bool {
    Command::new("python3")
        .args(["-c", "import nats"])
        .status()
        .is_ok_and(|s| s.success())
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.current_dir(root()).output().expect(what);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_snippets_report_as_documented() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    let daemon = Daemon::start(cfg).await;
    let addr = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let (_c, js) = nats.client().await;

    // Shell (curl over HTTP): the reply is the report's outcome.
    let shell = run(
        "examples/runner/report.sh",
        Command::new("bash")
            .arg("examples/runner/report.sh")
            .env("BATON_URL", format!("http://{addr}"))
            .env("BATON_TOKEN", TOKEN),
    );
    let reply: serde_json::Value = serde_json::from_str(&shell).expect("JSON reply");
    assert_eq!(reply["outcome"], "opened", "{reply}");
    let id: uuid::Uuid = reply["handoff_id"].as_str().unwrap().parse().unwrap();

    // Rust (async-nats): stored on BATON_REPORTS, then joins the handoff.
    let rust = run(
        "examples/runner_report.rs",
        Command::new(rust_example()).env("NATS_URL", &nats.url),
    );
    assert!(rust.starts_with("stored: BATON_REPORTS seq "), "{rust}");

    // Python (nats-py), when it is installed; `.ci/run` installs it and
    // sets BATON_DOCS_REQUIRE_PYTHON so CI never skips it.
    if python_has_nats() {
        let py = run(
            "examples/runner/report.py",
            Command::new("python3")
                .arg("examples/runner/report.py")
                .env("NATS_URL", &nats.url),
        );
        // The same run id within the 2-minute window: JetStream dedupes it.
        assert!(py.starts_with("stored: BATON_REPORTS seq "), "{py}");
        assert_eq!(py, rust, "nats-py's retry is the Rust runner's message");
    } else {
        assert!(
            std::env::var_os("BATON_DOCS_REQUIRE_PYTHON").is_none(),
            "nats-py is required here but python3 cannot import nats"
        );
        eprintln!(
            "skipped the Python snippet: `python3 -c 'import nats'` fails (pip install nats-py)"
        );
    }

    // The HTTP report opened the handoff; the JetStream one joined it.
    eventually("the JetStream report joined the handoff", || async {
        kinds(&events_of(&js, id).await)
            .contains(&"reported_again")
            .then_some(())
    })
    .await;
    assert!(!pages_of(&js, id).await.is_empty(), "the report paged");
    daemon.stop().await.unwrap();
}

/// The fenced blocks that follow a line starting with `marker`.
fn marked_blocks(text: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with(marker) {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "a code fence follows {marker}");
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push(body.join("\n"));
    }
    out
}

#[test]
fn marked_config_blocks_parse_and_validate() {
    let mut seen = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in marked_blocks(&text, "<!-- config") {
            let cfg = baton::config::Config::parse(&block)
                .unwrap_or_else(|e| panic!("{}: {e}\n{block}", file.display()));
            cfg.validate()
                .unwrap_or_else(|e| panic!("{}: {e}\n{block}", file.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "the README's delivery example is marked");
}

/// Every relative link in the README and `docs/` names a file that exists
/// and, with `#anchor`, a heading of that file.
#[test]
fn relative_links_resolve() {
    fn anchors(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| {
                l.trim_start_matches('#')
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect()
            })
            .collect()
    }
    let mut broken = vec![];
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let link = &rest[..end];
            if link.contains("://") || link.starts_with("mailto:") || link.contains(' ') {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", file.display()));
                continue;
            }
            if !anchor.is_empty() && target.extension().is_some_and(|x| x == "md") {
                let t = std::fs::read_to_string(&target).unwrap();
                if !anchors(&t).iter().any(|a| a == anchor) {
                    broken.push(format!("{}: {link}: no such heading", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
