//! `bottomline serve` nodes as their own processes, shared by the benchmarks that run them
//! (`tickets` in its process mode, `footprint`): the release binary, a node spawned from a TOML
//! config with its log in a file and `PR_SET_PDEATHSIG`, the address read from its
//! `listening addr=` line, the stop (SIGTERM, [`STOP_GRACE`] to exit, SIGKILL; also from
//! `Drop`), and the memory figures of `/proc/PID/status`.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bottomline::division::Code;

use super::Res;

/// How long the nodes get to stop on SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The `bottomline` binary: cargo's path for the package's benches, else next to the
/// benchmark's executable (`target/<profile>/deps/<bench>-…` → `target/<profile>/bottomline`).
/// `bench` names the benchmark in the error message.
pub fn binary(bench: &str) -> Res<PathBuf> {
    if let Some(p) = option_env!("CARGO_BIN_EXE_bottomline").map(PathBuf::from) {
        if p.is_file() {
            return Ok(p);
        }
    }
    let exe = std::env::current_exe()?;
    let guess = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("bottomline"));
    match guess {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(format!(
            "no bottomline binary next to {} (build it with `cargo build --release -p \
             bottomline`, or run through `cargo bench -p bottomline --bench {bench}`)",
            exe.display()
        )
        .into()),
    }
}

/// Have the child get SIGTERM when the thread that spawned it ends. Spawn from the main
/// thread only (the benchmark's `block_on` thread), so that is when the benchmark ends,
/// however it ends.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What `/proc/PID/status` says of a process's memory, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    /// Resident now (`VmRSS`).
    pub rss: u64,
    /// Peak resident since start (`VmHWM`).
    pub hwm: u64,
    /// Of `rss`: anonymous memory (heap, stacks), and file pages (the binary's text, …).
    pub anon: u64,
    pub file: u64,
}

/// KiB → MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The memory figures of process `pid`, while it runs.
pub fn mem_of(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}

/// Peak resident set size of process `pid` in MiB (`VmHWM`).
pub fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    mem_of(pid).map(|m| mib(m.hwm))
}

/// One `bottomline serve` process.
pub struct NodeProc {
    pub code: Code,
    child: Child,
    /// The binary and the config it was started with (a restart reuses them).
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// When it was spawned.
    pub spawned: Instant,
    /// Where it listens, once its log said so.
    pub url: Option<String>,
    /// Its exit, once reaped.
    exit: Option<ExitStatus>,
}

impl NodeProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file (the process's stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn running(&mut self) -> bool {
        if self.exit.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
            }
        }
        self.exit.is_none()
    }

    /// The last `n` lines of its log.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// The node processes; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Default)]
pub struct Tree {
    pub nodes: Vec<NodeProc>,
    stopped: bool,
}

impl Tree {
    /// Start the node of `code` from the config `toml`, written to `dir/<code>.toml`, its log
    /// in `dir/<code>.log`. Must run on the main thread (see [`die_with_parent`]).
    pub fn spawn(&mut self, bin: &Path, dir: &Path, code: Code, toml: &str) -> Res<()> {
        let config = dir.join(format!("{code}.toml"));
        std::fs::write(&config, toml)?;
        let log = dir.join(format!("{code}.log"));
        let child = launch(bin, code, &config, std::fs::File::create(&log)?)?;
        self.nodes.push(NodeProc {
            code,
            child,
            bin: bin.to_path_buf(),
            config,
            log,
            spawned: Instant::now(),
            url: None,
            exit: None,
        });
        Ok(())
    }

    /// Stop the node of `code` (SIGTERM, [`STOP_GRACE`] to exit, then SIGKILL) and start it
    /// again on the same store, its config passed through `edit` first (say, to pin the
    /// addresses it bound) and its log continued after a `--- restarted ---` line. Returns
    /// how the old process ended: `Ok(true)` exited 0, `Ok(false)` did not or was killed.
    /// Its `url` is kept: `edit` must keep it true. Must run on the main thread.
    pub async fn restart(&mut self, code: Code, edit: impl FnOnce(&str) -> String) -> Res<bool> {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.code == code)
            .ok_or_else(|| format!("no node {code}"))?;
        if !n.running() {
            return Err(format!("node {code} is not running").into());
        }
        // SAFETY: kill(2) on our own child, not reaped yet (it is running).
        unsafe { libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while n.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let clean = if n.running() {
            let _ = n.child.kill();
            let _ = n.child.wait();
            false
        } else {
            n.exit.is_some_and(|s| s.success())
        };
        let toml = std::fs::read_to_string(&n.config)?;
        std::fs::write(&n.config, edit(&toml))?;
        let mut log = std::fs::OpenOptions::new().append(true).open(&n.log)?;
        std::io::Write::write_all(&mut log, b"--- restarted ---\n")?;
        n.child = launch(&n.bin, code, &n.config, log)?;
        n.spawned = Instant::now();
        n.exit = None;
        Ok(clean)
    }

    /// Wait until every node from `from` on logged the address it listens on (its URL
    /// `https://` when `tls`, else `http://`).
    pub async fn wait_listening(&mut self, from: usize, tls: bool, deadline: Instant) -> Res<()> {
        let scheme = if tls { "https" } else { "http" };
        loop {
            let mut waiting = 0;
            for n in &mut self.nodes[from..] {
                if n.url.is_some() {
                    continue;
                }
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let addr = text
                    .lines()
                    .map(strip_ansi)
                    .filter(|l| l.contains("listening"))
                    .find_map(|l| {
                        let start = l.find(" addr=")? + " addr=".len();
                        l[start..].split_whitespace().next().map(str::to_string)
                    });
                match addr {
                    Some(a) => n.url = Some(format!("{scheme}://{a}")),
                    None if !n.running() => {
                        return Err(format!(
                            "node {} exited ({:?}) before listening:\n{}",
                            n.code,
                            n.exit,
                            n.tail(20)
                        )
                        .into())
                    }
                    None => waiting += 1,
                }
            }
            if waiting == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{waiting} nodes did not start listening in time").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn node(&self, code: Code) -> Res<&NodeProc> {
        self.nodes
            .iter()
            .find(|n| n.code == code)
            .ok_or_else(|| format!("no node {code}").into())
    }

    pub fn url(&self, code: Code) -> Res<String> {
        self.node(code)?
            .url
            .clone()
            .ok_or_else(|| format!("node {code} is not listening").into())
    }

    /// Any node that exited while it should run, with the end of its log.
    pub fn check_running(&mut self) -> Res<()> {
        for n in &mut self.nodes {
            if !n.running() {
                return Err(
                    format!("node {} exited ({:?}):\n{}", n.code, n.exit, n.tail(20)).into(),
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to every node, up to [`STOP_GRACE`] to exit, SIGKILL for the rest. Returns
    /// (nodes that exited unsuccessfully, nodes killed).
    pub fn stop(&mut self) -> (Vec<Code>, Vec<Code>) {
        self.stopped = true;
        for n in &mut self.nodes {
            if n.running() {
                // SAFETY: kill(2) on our own child, not reaped yet (it is running).
                unsafe { libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.nodes.iter_mut().any(NodeProc::running) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut killed = Vec::new();
        for n in &mut self.nodes {
            if n.running() {
                let _ = n.child.kill();
                n.exit = n.child.wait().ok();
                killed.push(n.code);
            }
        }
        let unclean = self
            .nodes
            .iter()
            .filter(|n| !killed.contains(&n.code) && !n.exit.is_some_and(|s| s.success()))
            .map(|n| n.code)
            .collect();
        (unclean, killed)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if !self.stopped {
            let (unclean, killed) = self.stop();
            if !unclean.is_empty() || !killed.is_empty() {
                eprintln!("stopping the nodes: unclean exits {unclean:?}, killed {killed:?}");
            }
        }
    }
}

/// `bin serve --config CONFIG`, its stderr into `log`, dying with this thread. With
/// `BENCH_WRAP=SCRIPT` and the node's code in `BENCH_WRAP_NODES` (comma-separated), the
/// command is `SCRIPT bin serve --config CONFIG` with `BENCH_NODE_CODE` set: a script that
/// `exec`s its arguments keeps the PID the benchmark samples (`benches/heaptrack-node.sh`
/// records the node's allocations, to see where its bytes go).
fn launch(bin: &Path, code: Code, config: &Path, log: std::fs::File) -> Res<Child> {
    let wrap = std::env::var_os("BENCH_WRAP").filter(|_| {
        let nodes = std::env::var("BENCH_WRAP_NODES").unwrap_or_default();
        nodes.split(',').any(|c| c.trim() == code.to_string())
    });
    let mut cmd = match &wrap {
        Some(script) => {
            let mut c = Command::new(script);
            c.arg(bin).env("BENCH_NODE_CODE", code.to_string());
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    die_with_parent(&mut cmd);
    Ok(cmd
        .spawn()
        .map_err(|e| format!("cannot start {} serve: {e}", bin.display()))?)
}

/// Remove ANSI escape sequences (in case the node colours its log).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
