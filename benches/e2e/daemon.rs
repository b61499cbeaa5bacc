//! Baton in-process, on a runtime of its own: two workers like the binary's
//! `#[tokio::main]` on this machine, with threads named `baton-daemon` so
//! their CPU time can be told apart from the load generator's.

use std::time::{Duration, Instant};

use baton::config::Config;
use baton::server::{self, Running, ServeError, Shared};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

pub const THREAD_NAME: &str = "baton-daemon";

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
}

pub struct Daemon {
    running: Running,
    token: CancellationToken,
    rt: Handle,
}

impl Daemon {
    /// Starts the daemon; also returns how long `server::start` took (state
    /// rebuilt from the stream, every task running).
    pub async fn start(rt: &Handle, cfg: Config) -> anyhow::Result<(Daemon, Duration)> {
        let token = CancellationToken::new();
        let t = token.clone();
        let handle = rt.clone();
        // `server::start`'s future is not `Send` (it holds a watch guard
        // across an await), so it cannot be spawned; block on it from one of
        // the daemon runtime's own blocking threads instead.
        let (running, took) = rt
            .spawn_blocking(move || {
                let started = Instant::now();
                let r = handle.block_on(server::start(cfg, t));
                (r, started.elapsed())
            })
            .await?;
        Ok((
            Daemon {
                running: running?,
                token,
                rt: rt.clone(),
            },
            took,
        ))
    }

    pub fn shared(&self) -> &Shared {
        &self.running.shared
    }

    /// Graceful shutdown.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        match self.rt.spawn(self.running.wait()).await? {
            // `Running::wait` races a cancelled token against its tasks'
            // ends without `biased`, so a task that already stopped for the
            // shutdown can be reported as having stopped on its own. After
            // we asked for shutdown, that is the outcome we asked for.
            Err(ServeError::Task { message, .. }) if message == "stopped unexpectedly" => Ok(()),
            r => Ok(r?),
        }
    }
}
