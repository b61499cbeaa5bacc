//! A three-node JetStream cluster on loopback (routes between three real
//! `nats-server` processes, each with its own store under one temp dir):
//! `tests/cluster_e2e.rs` and the benchmarks' `failover` phase kill and
//! restart its nodes.
#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream;
use baton::dev::{free_port, NatsServer};

/// One cluster node: its ports and store survive a kill.
pub struct Node {
    pub name: String,
    pub port: u16,
    args: Vec<String>,
    dir: std::path::PathBuf,
    server: Option<NatsServer>,
}

impl Node {
    pub fn start(&mut self) {
        // A port freed by a kill can be reused at once; retry briefly if the
        // restart races the old process's exit.
        for _ in 0..50 {
            match NatsServer::start_with(&self.dir, self.port, &self.args) {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!("node {} does not start", self.name);
    }

    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, c)| format!("nats://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cport))| Node {
                name: format!("n{i}"),
                port: *port,
                args: vec![
                    "--name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "baton-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cport}"),
                    "--routes".into(),
                    routes.clone(),
                ],
                dir: dir.path().join(format!("n{i}")),
                server: None,
            })
            .collect();
        for n in &mut nodes {
            n.start();
        }
        Cluster { nodes, _dir: dir }
    }

    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("a node of this cluster")
    }
}

/// The server's version, from `nats-server --version`.
pub fn server_version() -> String {
    let out = std::process::Command::new(baton::dev::server_binary())
        .arg("--version")
        .output()
        .expect("nats-server runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("nats-server:")
        .trim()
        .to_string()
}

/// The node leading `stream` now, if any answers.
pub async fn leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let mut s = js.get_stream(stream).await.ok()?;
    s.info().await.ok()?.cluster.as_ref()?.leader.clone()
}

/// The server's version, and whether it may run Baton clustered
/// (`store::MIN_CLUSTER_SERVER`: Debian's 2.9.10 may not).
pub fn cluster_capable() -> (String, bool) {
    let version = server_version();
    let ok = baton::store::parse_server_version(&version)
        .is_some_and(|v| v >= baton::store::MIN_CLUSTER_SERVER);
    (version, ok)
}
