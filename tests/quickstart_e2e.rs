//! The README's tour runs as written: every `sh` block after the
//! `<!-- tour -->` marker is run line by line against `baton dev` (the real
//! binary, in a copy of `config/` and `examples/` whose dev ports are free
//! ones), and every `# ` line under a command is its output, matched with
//! `…` standing for anything, digits for any digits and spaces for any
//! spaces. A command's comment `(exit N)` is the exit status it must have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::dev::free_port;

/// One command of the tour and the output lines documented under it.
#[derive(Debug)]
struct Step {
    line: String,
    expect: Vec<String>,
}

/// The tour: the `sh` blocks that follow the marker, up to the next `## `.
fn tour(readme: &str) -> Vec<Step> {
    let start = readme.find("<!-- tour").expect("the README marks its tour");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut steps: Vec<Step> = vec![];
    let mut in_sh = false;
    for raw in section.lines() {
        if raw.starts_with("```") {
            in_sh = !in_sh && raw.trim() == "```sh";
            continue;
        }
        if !in_sh || raw.trim().is_empty() {
            continue;
        }
        if let Some(out) = raw.strip_prefix("# ") {
            steps
                .last_mut()
                .expect("an output line follows a command")
                .expect
                .push(out.to_string());
        } else {
            steps.push(Step {
                line: raw.to_string(),
                expect: vec![],
            });
        }
    }
    assert!(steps.len() >= 8, "the tour has its commands: {steps:?}");
    steps
}

/// A documented output line as a pattern: `…` any text, a run of digits
/// any digits, a run of spaces any whitespace; the rest literal.
fn pattern(doc: &str) -> String {
    let mut re = String::new();
    let mut chars = doc.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '…' => re.push_str(".*"),
            d if d.is_ascii_digit() => {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                re.push_str(r"\d+");
            }
            ' ' => {
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
                re.push_str(r"\s+");
            }
            c => re.push_str(&regex_escape(c)),
        }
    }
    re
}

fn regex_escape(c: char) -> String {
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// Whether some line of `text` matches the documented `line`.
fn shows(text: &str, line: &str) -> bool {
    let re = regex::Regex::new(&format!("^{}$", pattern(line))).unwrap();
    text.lines().any(|l| re.is_match(l.trim_end()))
}

/// Children killed on drop: a failed assertion leaves no daemon behind.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The command with its comment removed, and the exit status the comment
/// documents (`(exit N)`, else 0).
fn command_of(line: &str) -> (String, i32) {
    let (cmd, comment) = match line.find("  #") {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    let exit = comment
        .split("(exit ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (cmd.trim().to_string(), exit)
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let steps = tour(&readme);

    // A copy of the repository's config and examples, with free ports in
    // place of the dev ones (4223, 9464), as a user's checkout would be.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("config"), &dir.path().join("config"));
    copy_dir(&root.join("examples"), &dir.path().join("examples"));
    let dev = dir.path().join("config/dev.toml");
    let text = std::fs::read_to_string(&dev).unwrap();
    let (nats, http) = (free_port(), free_port());
    assert!(text.contains(":4223") && text.contains(":9464"));
    std::fs::write(
        &dev,
        text.replace(":4223", &format!(":{nats}"))
            .replace(":9464", &format!(":{http}")),
    )
    .unwrap();

    // `baton` on PATH is the binary under test.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_baton"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env: HashMap<String, String> = HashMap::from([("PATH".into(), path)]);
    let mut kids = Kids(vec![]);
    let dev_log = dir.path().join("dev.log");
    kids.0.push(
        Command::new(&bin)
            .arg("dev")
            .current_dir(dir.path())
            .env("PATH", &env["PATH"])
            .env_remove("BATON_CONFIG")
            .env_remove("BATON_NATS_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&dev_log).unwrap())
            .spawn()
            .expect("baton dev starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            Instant::now() < deadline,
            "baton dev did not serve HTTP: {}",
            std::fs::read_to_string(&dev_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Output of background commands (`… &`), read while waiting for lines.
    let mut background: Vec<PathBuf> = vec![];
    for (i, step) in steps.iter().enumerate() {
        let (cmd, exit) = command_of(&step.line);
        if let Some(assign) = cmd.strip_prefix("export ") {
            let (k, v) = assign.split_once('=').expect("export K=V");
            env.insert(k.into(), v.into());
            continue;
        }
        if let Some(cmd) = cmd.strip_suffix('&') {
            let log = dir.path().join(format!("background-{i}.log"));
            let err = dir.path().join(format!("background-{i}.err"));
            kids.0.push(
                Command::new("bash")
                    .args(["-c", &format!("exec {cmd}")])
                    .current_dir(dir.path())
                    .envs(&env)
                    .stdout(std::fs::File::create(&log).unwrap())
                    .stderr(std::fs::File::create(&err).unwrap())
                    .spawn()
                    .unwrap(),
            );
            // A person types the next command seconds later; here, wait
            // until `pages --follow` says it is following.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !std::fs::read_to_string(&err).is_ok_and(|e| e.contains("following")) {
                assert!(Instant::now() < deadline, "`{cmd}` did not start following");
                std::thread::sleep(Duration::from_millis(20));
            }
            background.push(log);
            continue;
        }
        let out = Command::new("bash")
            .args(["-c", &cmd])
            .current_dir(dir.path())
            .envs(&env)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(exit),
            "`{cmd}` exited {:?}, the tour says {exit}:\n{text}",
            out.status
        );
        for line in &step.expect {
            // Its own output, or (pages --follow) a background command's,
            // which may arrive a moment later.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let seen = shows(&text, line)
                    || background
                        .iter()
                        .any(|log| shows(&std::fs::read_to_string(log).unwrap_or_default(), line));
                if seen {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "`{cmd}`: the tour shows\n  {line}\nbut the output was:\n{text}\nbackground:\n{}",
                    background
                        .iter()
                        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                        .collect::<String>()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn documented_lines_become_patterns() {
    assert!(shows(
        "report stored (BATON_REPORTS seq 12); opened handoff 10e6a924",
        "report stored (BATON_REPORTS seq 1); opened handoff 10e6a924"
    ));
    assert!(shows("a  P1   paged", "a P1 paged"));
    assert!(shows("missing [\"x\",\"y\"]", "missing […]"));
    assert!(!shows("status held", "status paged"));
    assert_eq!(
        command_of("baton x  # refused (exit 4)"),
        ("baton x".into(), 4)
    );
    assert_eq!(command_of("baton y"), ("baton y".into(), 0));
}
