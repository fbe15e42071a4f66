//! Real `bottomline serve` processes for crash tests: spawned from a config file, their log
//! captured, killed with SIGKILL (`kill -9`) or stopped with SIGTERM.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{DEADLINE, POLL};

/// The `bottomline` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bottomline");

/// A `bottomline serve` process; killed (SIGKILL) if still running when dropped, and its log
/// printed when the test is failing.
pub struct Proc {
    /// Name used in messages.
    pub name: String,
    /// The process.
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// Remove ANSI escape sequences (in case the subscriber colours its output).
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

/// The value of `field=` in a log line.
pub fn log_field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let pat = format!(" {field}=");
    let start = line.find(&pat)? + pat.len();
    line[start..].split_whitespace().next()
}

impl Proc {
    pub fn serve(name: &str, config: &Path) -> Proc {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bottomline serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(strip_ansi(&line));
            }
        });
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Lines containing every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    /// Wait until the log has more than `after` lines containing every one of `needles`;
    /// returns the newest.
    pub async fn wait_for_line(&mut self, needles: &[&str], after: usize) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let m = self.matching(needles);
            if m.len() > after {
                return m[m.len() - 1].clone();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}) before logging {needles:?}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {needles:?}",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The address the node listens on, from its "listening" log line.
    pub async fn addr(&mut self) -> String {
        let line = self.wait_for_line(&["listening", "addr="], 0).await;
        let addr: SocketAddr = log_field(&line, "addr")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        format!("http://{addr}")
    }

    /// SIGKILL: no destructors, no flush.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let st = self.child.wait().expect("wait");
        assert!(!st.success(), "{} was killed", self.name);
    }

    /// SIGTERM, then wait for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(r, 0, "SIGTERM to {}", self.name);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let lines = self.lines();
            let from = lines.len().saturating_sub(40);
            eprintln!("---- last log lines of {} ----", self.name);
            for l in &lines[from..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Spawn `cmd` (a `bottomline serve`, possibly behind a wrapper that execs it) with its log
/// captured like [`Proc::serve`].
fn spawn_logged(name: &str, mut cmd: Command) -> Proc {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bottomline serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let log: Arc<Mutex<Vec<String>>> = Default::default();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(strip_ansi(&line));
        }
    });
    Proc {
        name: name.to_string(),
        child,
        log,
    }
}

impl Proc {
    /// [`Proc::serve`] inside the network namespace `netns`: `ip netns exec` enters it and
    /// execs the node in place, so the pid is the node's own and [`Proc::kill9`] and
    /// [`Proc::terminate`] reach the node itself.
    pub fn serve_in_netns(name: &str, config: &Path, netns: &str) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, BIN, "serve", "--config"])
            .arg(config);
        spawn_logged(name, cmd)
    }
}
