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
/// listening on a free port if `listen`; `sync` is the body of its `[sync]` section.
pub async fn start(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: bool,
    sync: &str,
) -> Running {
    let data = dir.join(division);
    let mut toml = format!(
        "division = \"{division}\"\ndata_dir = {:?}\n",
        data.display().to_string()
    );
    if let Some(p) = parent {
        toml.push_str(&format!("parent = \"{p}\"\n"));
    }
    if listen {
        toml.push_str("listen = \"127.0.0.1:0\"\n");
    }
    toml.push_str("[sync]\n");
    toml.push_str(sync);
    let config = Config::parse(&toml).expect("config");
    let handle = node::open(&config).expect("open node");
    let listener = if listen {
        Some(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    } else {
        None
    };
    let addr = listener
        .as_ref()
        .map(|l| format!("http://{}", l.local_addr().expect("addr")));
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
