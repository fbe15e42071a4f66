//! Helpers shared by the multi-node test binaries: in-process nodes started from generated
//! TOML on 127.0.0.1:0, each stopped by its own shutdown signal.
// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod procs;

use std::path::Path;

use bottomline::config::Config;
use bottomline::ledger::Ledger;
use bottomline::node::{self, NodeHandle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A node running in this process.
pub struct Running {
    /// Its shared state.
    pub handle: NodeHandle,
    /// `http://127.0.0.1:port` when it listens.
    pub addr: Option<String>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The node's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.handle.ledger
    }
}

/// Start the node of `division` with its data dir under `dir`, dialling `parent` if given,
/// listening on a free port if `listen`; `sync` is the body of its `[sync]` section. The node
/// is `insecure` (plaintext); [`start_secure`] runs one over mTLS.
pub async fn start(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
) -> Running {
    start_with(dir, division, parent, listen, sync, None, "").await
}

/// [`start`] over mTLS: the node's certificate from the test CA in `dir/pki` (made on first
/// use; [`tls_files`]), its revocation list checked every 0.1 s; `addr` is `https://…`.
pub async fn start_secure(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
) -> Running {
    let code = bottomline::division::Code::parse(division).expect("division");
    let files = tls_files(
        dir,
        &bottomline::security::Identity::Node { division: code },
    );
    start_with(dir, division, parent, listen, sync, Some(&files), "").await
}

/// [`start`] (insecure) with more top-level config keys (e.g. `check_secs = 0.2`).
pub async fn start_with_top(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
    top: &str,
) -> Running {
    start_with(dir, division, parent, listen, sync, None, top).await
}

/// A division code.
/// Print why a test (or part of one) is skipped where CI's log shows it: straight to stderr,
/// past the test harness's capture (which hides what a passing test prints).
#[allow(dead_code)]
pub fn skip(why: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{why}");
}

pub fn code(s: &str) -> bottomline::division::Code {
    bottomline::division::Code::parse(s).expect("division code")
}

/// [`start_secure`] with more top-level config keys (e.g. `inbox = "…"`).
pub async fn start_secure_with(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
    top: &str,
) -> Running {
    let code = bottomline::division::Code::parse(division).expect("division");
    let files = tls_files(
        dir,
        &bottomline::security::Identity::Node { division: code },
    );
    start_with(dir, division, parent, listen, sync, Some(&files), top).await
}

/// The files of `identity`'s certificate from the test CA in `dir/pki` (CA and certificate
/// made on first use).
pub fn tls_files(
    dir: &Path,
    identity: &bottomline::security::Identity,
) -> bottomline::security::tls::TlsFiles {
    bottomline::security::pki::Pki::open_or_init(&dir.join("pki"), "Bottomline test")
        .and_then(|mut pki| pki.files_for(identity))
        .expect("test PKI")
}

async fn start_with(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
    tls: Option<&bottomline::security::tls::TlsFiles>,
    extra_top: &str,
) -> Running {
    let data = dir.join(division);
    let mut toml = format!(
        "division = \"{division}\"\ndata_dir = {:?}\n",
        data.display().to_string()
    );
    match tls {
        None => toml.push_str("insecure = true\n"),
        Some(t) => {
            let t = bottomline::security::tls::TlsFiles {
                crl_reload_secs: 0.1,
                ..t.clone()
            };
            toml.push_str(&t.to_toml_section());
        }
    }
    // Top-level keys go before the [tls] table.
    let mut top = extra_top.to_string();
    if let Some(p) = parent {
        top.push_str(&format!("parent = \"{p}\"\n"));
    }
    if listen {
        top.push_str("listen = \"127.0.0.1:0\"\n");
    }
    toml.insert_str(0, &top);
    toml.push_str("[sync]\n");
    toml.push_str(sync);
    let config = Config::parse(&toml).expect("config");
    let handle = node::open(&config).expect("open node");
    let listener = if listen {
        Some(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    } else {
        None
    };
    let addr = listener.as_ref().map(|l| {
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", l.local_addr().expect("addr"))
    });
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(node::run(config, handle.clone(), listener, async move {
        let _ = rx.await;
    }));
    Running {
        handle,
        addr,
        stop,
        task,
    }
}

/// Stop a node and wait for its ordered shutdown to finish cleanly.
pub async fn stop(n: Running) {
    let _ = n.stop.send(());
    n.task.await.expect("join").expect("clean shutdown");
}

/// The interchange files of one generated county under `files`, in dependency order.
pub fn county_files(files: &Path, county: &str) -> Vec<std::path::PathBuf> {
    bottomline::import::FILE_ORDER
        .iter()
        .map(|k| files.join(county).join(format!("{k}.csv")))
        .collect()
}

/// Import the generated files of `county` under `files` into `ledger`, validated as of `today`.
pub fn import_generated(ledger: &Ledger, files: &Path, county: &str, today: jiff::civil::Date) {
    bottomline::import::import_files(
        ledger,
        &county_files(files, county),
        None,
        today,
        &mut |_| {},
        &mut |_| {},
    )
    .expect("import");
}

/// Generate one county `code` (`households`, `seed`, data up to 2026-11-20) under `files`.
pub fn generate_county(files: &Path, code: &str, seed: u64, households: u32) {
    let summary = bottomline::gen::generate(
        &bottomline::gen::GenOptions {
            seed,
            out: files.to_path_buf(),
            scope: bottomline::gen::GenScope::County(code.into()),
            end: jiff::civil::date(2026, 11, 20),
            households_per_county: Some(households),
        },
        &mut |_| {},
    )
    .expect("gen");
    assert_eq!(summary.counties, vec![code.to_string()]);
}

/// Interval between two polls of a condition.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How long a condition may take before the test fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Poll `f` every [`POLL`] until it returns true; fail after [`DEADLINE`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that has to await (an RPC, a lock in a task).
pub async fn eventually_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + DEADLINE;
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
