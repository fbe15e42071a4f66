//! Pieces shared by the multi-node benchmarks: in-process nodes on 127.0.0.1 and percentiles.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::node::{self, NodeHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The benchmarks' error type.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A node running in the benchmark's process.
pub struct Running {
    /// Its shared state.
    pub handle: NodeHandle,
    /// Where it listens.
    pub addr: Option<SocketAddr>,
    /// Set to stop it.
    pub stop: watch::Sender<bool>,
    /// Its run task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start the node of `code` with its data dir under `dir`, dialling `parent` if given and
/// listening on a free port if `listen`.
pub async fn start_node(
    dir: &Path,
    code: Code,
    parent: Option<String>,
    listen: bool,
) -> Res<Running> {
    let mut toml = format!(
        "division = \"{code}\"\ndata_dir = {:?}\ninsecure = true\n",
        dir.join(code.to_string()).display().to_string()
    );
    if let Some(p) = parent {
        toml.push_str(&format!("parent = \"{p}\"\n"));
    }
    if listen {
        toml.push_str("listen = \"127.0.0.1:0\"\n");
    }
    toml.push_str("[sync]\nreconnect_secs = 0.05\n");
    let config = Config::parse(&toml)?;
    let handle = node::open(&config)?;
    let listener = if listen {
        Some(TcpListener::bind("127.0.0.1:0").await?)
    } else {
        None
    };
    let addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(node::run(config, handle.clone(), listener, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    Ok(Running {
        handle,
        addr,
        stop,
        task,
    })
}

/// The `p` quantile of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
