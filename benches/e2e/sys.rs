//! What the harness reads from Linux's `/proc`: resident memory, CPU time
//! per process and per named thread, and the machine it ran on. Plain file
//! reads, so no new crate is needed for `getrusage`.

use std::time::Duration;

/// `/proc` reports CPU time in `USER_HZ` ticks, which Linux fixes at 100.
const TICK: Duration = Duration::from_millis(10);
/// x86-64 and aarch64 Linux default; `statm` counts pages.
const PAGE: u64 = 4096;

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * PAGE
}

/// `(comm, utime + stime)` from one `stat` file.
fn stat_cpu(path: &str) -> Option<(String, Duration)> {
    let text = std::fs::read_to_string(path).ok()?;
    // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat(5); index 0 here is field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, TICK * ticks as u32))
}

/// CPU time (user + system) of a process so far.
pub fn process_cpu(pid: u32) -> Duration {
    stat_cpu(&format!("/proc/{pid}/stat")).map_or(Duration::ZERO, |(_, d)| d)
}

/// CPU time of this process's live threads whose name starts with `prefix`
/// (the daemon's runtime threads are named, so they can be told apart from
/// the load generator's in one process).
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| stat_cpu(&format!("{}/stat", e.path().display())))
        .filter(|(comm, _)| comm.starts_with(prefix))
        .map(|(_, d)| d)
        .sum()
}

/// The pid of the `nats-server` listening on `port` (our child).
pub fn nats_server_pid(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_ours = args.first()?.ends_with(b"nats-server")
            && args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == port.as_bytes());
        is_ours.then_some(pid)
    })
}

/// The machine, for the record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub ram_gib: f64,
    pub kernel: String,
    pub nats_server: String,
    /// Where the brokers keep their streams (the temp dir, `TMPDIR`) and
    /// that file system's type: a tmpfs and this VM's disk give different
    /// maxima (docs/performance.md).
    pub store: String,
}

/// The file system type `path` is on, from `/proc/self/mounts` (the
/// longest mount point that contains it).
fn fs_type(path: &std::path::Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, at, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(at).then(|| (at.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let nats_server = server_version(&baton::dev::server_binary()).unwrap_or_default();
    let tmp = std::env::temp_dir();
    let store = format!(
        "{} ({})",
        tmp.display(),
        fs_type(&tmp).unwrap_or_else(|| "unknown".into())
    );
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        ram_gib: (kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        kernel,
        nats_server,
        store,
    }
}

/// p50, p99 and max of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Spread {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut samples: Vec<f64>) -> Spread {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Spread {
            n: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What `<binary> --version` prints (`nats-server: v2.15.1`), if it runs.
pub fn server_version(binary: &std::ffi::OsStr) -> Option<String> {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
