//! The footprint benchmark's processes: `bottomline` CLI runs measured with `wait4` (peak RSS
//! from the kernel's `ru_maxrss`, wall and CPU time), the configs of its `bottomline serve`
//! nodes (started, watched and stopped by `common::procs`, shared with the ticket benchmark),
//! the problems their logs report, PSS, and a sampler thread reading every node's `VmRSS` at
//! a fixed interval.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::security::tls::TlsFiles;

use crate::common::procs::{die_with_parent, strip_ansi, NodeProc};
use crate::common::Res;

pub use crate::common::procs::{mem_of, mib, Mem, Tree};

/// The `bottomline` binary (see [`crate::common::procs::binary`]).
pub fn binary() -> Res<PathBuf> {
    crate::common::procs::binary("footprint")
}

fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// A CLI run (gen, import, check) started by [`Job::start`], reaped by [`Job::finish`].
pub struct Job {
    /// What it is, for messages and file names.
    pub what: String,
    pid: libc::pid_t,
    started: Instant,
    out: PathBuf,
    err: PathBuf,
}

/// How a [`Job`] ended and what it cost.
pub struct Finished {
    pub what: String,
    pub success: bool,
    /// From spawning to reaping.
    pub wall_s: f64,
    /// The kernel's peak resident set size of the process (`ru_maxrss`).
    pub peak_rss_mib: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// An error naming the run and the end of its stderr, unless it succeeded.
    pub fn ok(self) -> Res<Finished> {
        if self.success {
            return Ok(self);
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        Err(format!("{} failed:\n{tail}", self.what).into())
    }
}

impl Job {
    /// Start `cmd` with its stdout and stderr in `logs/<what>.out|.err`.
    pub fn start(mut cmd: Command, logs: &Path, what: &str) -> Res<Job> {
        std::fs::create_dir_all(logs)?;
        let out = logs.join(format!("{what}.out"));
        let err = logs.join(format!("{what}.err"));
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .env("NO_COLOR", "1");
        die_with_parent(&mut cmd);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        // Reaped with wait4 below, not through `Child` (dropping a `Child` neither waits
        // nor kills).
        Ok(Job {
            what: what.to_string(),
            pid: child.id() as libc::pid_t,
            started,
            out,
            err,
        })
    }

    /// Reap it if it ended (`wait4` with `WNOHANG`, which also gives its resource usage).
    pub fn try_finish(&self) -> Res<Option<Finished>> {
        let mut status = 0;
        // SAFETY: wait4 fills the two values we hand it; the pid is our unreaped child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            return Err(format!("wait4 {}: {}", self.what, std::io::Error::last_os_error()).into());
        }
        let wall_s = self.started.elapsed().as_secs_f64();
        Ok(Some(Finished {
            what: self.what.clone(),
            success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            wall_s,
            // KiB on Linux.
            peak_rss_mib: ru.ru_maxrss as f64 / 1024.0,
            user_s: secs(ru.ru_utime),
            sys_s: secs(ru.ru_stime),
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        }))
    }

    /// Wait for it to end.
    pub async fn finish(self) -> Res<Finished> {
        loop {
            if let Some(f) = self.try_finish()? {
                return Ok(f);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Run `cmds` (command, what), at most `parallel` at a time, each checked to succeed; calls
/// `done` as each ends. Returns them in the order given.
pub async fn run_all(
    cmds: Vec<(Command, String)>,
    logs: &Path,
    parallel: usize,
    mut done: impl FnMut(&Finished, usize, usize),
) -> Res<Vec<Finished>> {
    let total = cmds.len();
    let mut out: Vec<Option<Finished>> = (0..total).map(|_| None).collect();
    let mut queue = cmds.into_iter().enumerate();
    let mut running: Vec<(usize, Job)> = Vec::new();
    let mut finished = 0;
    loop {
        while running.len() < parallel.max(1) {
            let Some((i, (cmd, what))) = queue.next() else {
                break;
            };
            running.push((i, Job::start(cmd, logs, &what)?));
        }
        if running.is_empty() {
            break;
        }
        let mut still = Vec::new();
        for (i, job) in running {
            match job.try_finish()? {
                Some(f) => {
                    let f = f.ok()?;
                    finished += 1;
                    done(&f, finished, total);
                    out[i] = Some(f);
                }
                None => still.push((i, job)),
            }
        }
        running = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(out.into_iter().flatten().collect())
}

/// Proportional set size of `pid` in KiB (shared pages divided among their users).
pub fn pss_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    line["Pss:".len()..].split_whitespace().next()?.parse().ok()
}

/// One look of the sampler: seconds since its start, (pid, VmRSS KiB) of every tracked
/// process that was alive.
pub struct Tick {
    pub t: f64,
    pub rss: Vec<(u32, u64)>,
}

#[derive(Default)]
struct Samples {
    pids: Vec<u32>,
    ticks: Vec<Tick>,
}

/// A thread that reads the `VmRSS` of the tracked processes every interval.
pub struct Sampler {
    t0: Instant,
    shared: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(every: Duration) -> Sampler {
        let t0 = Instant::now();
        let shared = Arc::new(Mutex::new(Samples::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let pids = s.lock().map(|g| g.pids.clone()).unwrap_or_default();
                let t = t0.elapsed().as_secs_f64();
                let rss = pids
                    .iter()
                    .filter_map(|&p| mem_of(p).map(|m| (p, m.rss)))
                    .collect();
                if let Ok(mut g) = s.lock() {
                    g.ticks.push(Tick { t, rss });
                }
                std::thread::sleep(every);
            }
        });
        Sampler {
            t0,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Sample `pid` from now on.
    pub fn track(&self, pid: u32) {
        if let Ok(mut g) = self.shared.lock() {
            g.pids.push(pid);
        }
    }

    /// Seconds from the sampler's start to `at`.
    pub fn t(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// Apply `f` to the ticks taken so far.
    pub fn with<T>(&self, f: impl FnOnce(&[Tick]) -> T) -> T {
        let g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&g.ticks)
    }

    /// The smallest and the largest `VmRSS` of `pid` sampled in [from, to] (seconds), in MiB.
    pub fn range_mib(&self, pid: u32, from: f64, to: f64) -> Option<(f64, f64)> {
        self.with(|ticks| {
            let rss = ticks
                .iter()
                .filter(|k| k.t >= from && k.t <= to)
                .filter_map(|k| k.rss.iter().find(|(p, _)| *p == pid).map(|(_, r)| *r));
            rss.fold(None, |acc: Option<(u64, u64)>, r| {
                Some(acc.map_or((r, r), |(lo, hi)| (lo.min(r), hi.max(r))))
            })
            .map(|(lo, hi)| (mib(lo), mib(hi)))
        })
    }

    /// The largest sum of `VmRSS` over `pids` at one tick in [from, to] (seconds; ticks that
    /// sampled every one of them), in MiB: what the processes held together at one moment.
    pub fn max_sum_mib(&self, pids: &[u32], from: f64, to: f64) -> Option<f64> {
        self.with(|ticks| {
            ticks
                .iter()
                .filter(|k| k.t >= from && k.t <= to)
                .filter_map(|k| {
                    let v: Vec<u64> = pids
                        .iter()
                        .filter_map(|p| k.rss.iter().find(|(q, _)| q == p).map(|(_, r)| *r))
                        .collect();
                    (v.len() == pids.len()).then(|| v.iter().sum::<u64>())
                })
                .max()
                .map(mib)
        })
    }

    /// The largest `VmRSS` of `pid` sampled in [from, to] (seconds), in MiB.
    pub fn max_mib(&self, pid: u32, from: f64, to: f64) -> Option<f64> {
        self.range_mib(pid, from, to).map(|(_, hi)| hi)
    }

    /// Per bucket of `step` seconds from `from`: [bucket start, the largest sampled value of
    /// `f(tick)` in it, MiB], for the ticks where `f` gives a value.
    pub fn series(&self, from: f64, step: f64, f: impl Fn(&Tick) -> Option<u64>) -> Vec<[f64; 2]> {
        self.with(|ticks| {
            let mut out: Vec<[f64; 2]> = Vec::new();
            for k in ticks.iter().filter(|k| k.t >= from) {
                let Some(v) = f(k) else { continue };
                let b = ((k.t - from) / step).floor() * step;
                let b = (b * 10.0).round() / 10.0;
                match out.last_mut() {
                    Some(last) if last[0] == b => last[1] = last[1].max(mib(v)),
                    _ => out.push([b, mib(v)]),
                }
            }
            for p in &mut out {
                p[1] = (p[1] * 10.0).round() / 10.0;
            }
            out
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a node is configured: the deployment samples' settings (`deploy/*.toml`) with
/// `listen = "127.0.0.1:0"`.
pub struct NodeSpec<'a> {
    pub code: Code,
    pub data_dir: &'a Path,
    pub parent: Option<&'a str>,
    /// sled's page cache (`cache_mib`).
    pub cache_mib: u64,
    pub inbox: Option<&'a Path>,
    /// `check_secs`, when the benchmark overrides the node's default.
    pub check_secs: Option<f64>,
    /// The dashboard, HTTP API and `/metrics` on a free loopback port (`http_listen`;
    /// the address is in the node's log, [`http_addr`]).
    pub http: bool,
    pub tls: &'a TlsFiles,
}

impl NodeSpec<'_> {
    /// Its config file.
    pub fn toml(&self) -> String {
        let code = self.code;
        let path = |p: &Path| format!("{:?}", p.display().to_string());
        // Top-level keys first: the [tls] table follows.
        let mut toml = format!(
            "division = \"{code}\"\ndata_dir = {}\nlisten = \"127.0.0.1:0\"\ncache_mib = {}\n",
            path(self.data_dir),
            self.cache_mib
        );
        if let Some(p) = self.parent {
            toml.push_str(&format!("parent = \"{p}\"\n"));
        }
        if let Some(i) = self.inbox {
            toml.push_str(&format!("inbox = {}\n", path(i)));
        }
        if let Some(c) = self.check_secs {
            toml.push_str(&format!("check_secs = {c:?}\n"));
        }
        if self.http {
            toml.push_str("http_listen = \"127.0.0.1:0\"\n");
        }
        toml.push_str(&self.tls.to_toml_section());
        toml
    }
}

/// The ERROR and WARN lines of node `n`'s log.
pub fn log_problems(n: &NodeProc) -> LogProblems {
    let text = std::fs::read_to_string(n.log()).unwrap_or_default();
    let lines = |level: &str| -> Vec<String> {
        let v = text.lines().filter(|l| l.contains(level));
        v.map(strip_ansi).collect()
    };
    let (errors, warnings) = (lines(" ERROR "), lines(" WARN "));
    LogProblems {
        errors: errors.len(),
        warnings: warnings.len(),
        first_error: errors.into_iter().next(),
        first_warning: warnings.into_iter().next(),
    }
}

/// Where node `n`'s HTTP listener is (`host:port`), once its log said so (`dashboard and
/// HTTP API on http://ADDR/`).
#[allow(dead_code)] // the soak benchmark's
pub fn http_addr(n: &NodeProc) -> Option<String> {
    let text = std::fs::read_to_string(n.log()).ok()?;
    let marker = "HTTP API on http://";
    text.lines().map(strip_ansi).find_map(|l| {
        let rest = &l[l.find(marker)? + marker.len()..];
        Some(rest[..rest.find('/')?].to_string())
    })
}

/// What a node's log says went wrong.
pub struct LogProblems {
    pub errors: usize,
    pub warnings: usize,
    pub first_error: Option<String>,
    pub first_warning: Option<String>,
}
