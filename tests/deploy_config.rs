//! The Baton configs shipped under `deploy/` (compose and Kubernetes) are
//! read by Baton's own loader and `baton check-config`, and agree with the
//! files around them: the NATS cluster, the NATS users, the image's port.
//! The YAML-level checks (compose services, probes) are `.ci/deploy-check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use baton::config::Config;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The deployed configs, each with what it must say.
const DEPLOYED: [&str; 2] = ["deploy/compose/baton.toml", "deploy/k8s/baton.toml"];

/// The secrets the deployments put in the environment (compose's `.env`,
/// the Kubernetes Secret), never in the file.
fn deployed_env(key: &str) -> Option<String> {
    (key == "BATON_NATS_PASSWORD").then(|| "from-the-environment".to_string())
}

/// A deployed config as the daemon sees it: the file, then the deployment's
/// environment, then validation (what [`Config::load`] does, with that
/// environment instead of this process's).
fn load(path: &str) -> Config {
    let mut cfg = Config::parse(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    cfg.apply_env(deployed_env)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    cfg.validate().unwrap_or_else(|e| panic!("{path}: {e}"));
    cfg
}

#[test]
fn every_deployed_config_loads_and_runs_a_cluster() {
    for path in DEPLOYED {
        let cfg = load(path);
        assert_eq!(cfg.nats.replicas, 3, "{path}: streams on three nodes");
        assert_eq!(cfg.nats.user.as_deref(), Some("baton"), "{path}");
        assert!(
            !read(path).contains("password ="),
            "{path}: the password comes from the environment, never the file"
        );
        assert!(cfg.http.enabled, "{path}: probes need HTTP");
        assert_eq!(
            cfg.http.listen.to_string(),
            "0.0.0.0:9464",
            "{path}: reachable from outside the container, on the image's port"
        );
        // The policy `check-config` prints is built without a complaint.
        assert!(!cfg.policy().severities.is_empty(), "{path}");
    }
}

#[test]
fn compose_names_every_nats_node_and_its_alertmanager_integration() {
    let cfg = load("deploy/compose/baton.toml");
    let urls: Vec<&str> = cfg.nats.url.split(',').map(str::trim).collect();
    assert_eq!(
        urls,
        [
            "nats://nats-1:4222",
            "nats://nats-2:4222",
            "nats://nats-3:4222"
        ]
    );
    let compose = read("deploy/compose.yaml");
    for node in ["nats-1:", "nats-2:", "nats-3:", "baton-1:", "baton-2:"] {
        assert!(compose.contains(&format!("\n  {node}\n")), "service {node}");
    }
    // Alertmanager posts to the integration the config defines.
    let am = read("deploy/compose/alertmanager.yml");
    for name in cfg.alertmanager.keys() {
        assert!(am.contains(&format!("/v1/alertmanager/{name}")), "{name}");
    }
    assert!(am.contains("/v1/alertmanager/compose"));
    assert!(cfg.alertmanager.contains_key("compose"));
}

#[test]
fn the_daemon_user_is_a_shipped_nats_user() {
    let accounts = read("deploy/nats/accounts.conf");
    for path in DEPLOYED {
        let cfg = load(path);
        let user = cfg.nats.user.expect("a user");
        assert!(
            accounts.contains(&format!("user: {user}\n")),
            "{path}: {user} in deploy/nats/accounts.conf"
        );
    }
}

#[test]
fn the_image_serves_and_probes_the_port_the_configs_listen_on() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("EXPOSE 9464"));
    assert!(dockerfile.contains("BATON_HTTP_LISTEN=0.0.0.0:9464"));
    assert!(dockerfile.contains("/dev/tcp/127.0.0.1/9464"));
    assert!(dockerfile.contains("GET /readyz"));
    // The builder's Rust is at least the crate's rust-version.
    let version = |s: &str| -> Vec<u32> { s.split('.').map(|n| n.parse().unwrap()).collect() };
    let builder = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|l| l.split('-').next())
        .expect("FROM rust:<version>-…");
    let manifest = read("Cargo.toml");
    let needed = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"');
    assert!(
        version(builder) >= version(needed),
        "rust:{builder} < {needed}"
    );
    assert!(dockerfile.contains("cargo build --release --locked"));
    let deployment = read("deploy/k8s/deployment.yaml");
    assert!(deployment.contains("containerPort: 9464"));
}

#[test]
fn check_config_accepts_every_deployed_config() {
    for path in DEPLOYED {
        // Where the image puts it: /etc/baton/baton.toml beside the
        // templates the Dockerfile copies to /etc/baton/templates.
        let etc = tempfile::tempdir().unwrap();
        std::fs::copy(repo(path), etc.path().join("baton.toml")).unwrap();
        std::fs::create_dir(etc.path().join("templates")).unwrap();
        for t in std::fs::read_dir(repo("config/templates")).unwrap() {
            let t = t.unwrap();
            std::fs::copy(t.path(), etc.path().join("templates").join(t.file_name())).unwrap();
        }
        assert!(read("Dockerfile").contains("COPY config/templates/ /etc/baton/templates/"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(["check-config", "--config"])
            .arg(etc.path().join("baton.toml"));
        // The file and the deployment's secrets decide, no BATON_* of the
        // caller's.
        for (k, _) in std::env::vars() {
            if k.starts_with("BATON_") {
                cmd.env_remove(k);
            }
        }
        cmd.env(
            "BATON_NATS_PASSWORD",
            deployed_env("BATON_NATS_PASSWORD").unwrap(),
        );
        let out = cmd.output().expect("baton runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{path}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("configuration is valid"), "{path}");
        assert!(
            stdout.contains("(prefix baton)"),
            "{path}: accounts.conf names baton.*"
        );
    }
}
