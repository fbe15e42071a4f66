//! The node's HTTP face (issue #17): a JSON API over the same services as gRPC, the web
//! dashboard served from the binary, accounts and sessions for people, and `/metrics`.
//!
//! - `http/api.rs` — the JSON handlers. Each one calls the node's gRPC service in-process
//!   with the person as the caller (an operator identity carrying the account's name, role
//!   and division), so the HTTP API and gRPC share one set of rules: reads within the
//!   person's division, acts only for operators and only within it, refusals audited;
//! - `http/accounts.rs` — the accounts file (argon2 hashes, roles), `bottomline user …`;
//! - `http/sessions.rs` — login sessions and the failed-login limiter;
//! - `http/metrics.rs` — the node's Prometheus registry and the gRPC request layer;
//! - `http/assets.rs` — the dashboard's files (`node/assets/`), compiled into the binary.
//!
//! Access: the listener binds to loopback unless configured otherwise; a listener that is
//! not loopback needs accounts (the node refuses to start without any) and every request
//! but `/metrics`, the dashboard's files and the login needs a session. On loopback,
//! `http_anonymous` (the default there) lets a local user read without logging in; acting
//! always needs an operator's session.

pub mod accounts;
mod api;
mod assets;
pub mod metrics;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::division::Code;
use crate::node::NodeHandle;
use crate::rpc::tickets_api::TicketsService;
use crate::rpc::SyncService;

pub use api::router;

/// What the HTTP listener needs of the node.
pub struct HttpState {
    /// The node's shared state.
    pub handle: NodeHandle,
    /// The `Sync` service (status, statistics, report), called in-process.
    pub sync: Arc<SyncService>,
    /// The `Tickets` service, called in-process.
    pub tickets: Arc<TicketsService>,
    /// The people who may log in.
    pub accounts: accounts::Accounts,
    /// Open sessions.
    pub sessions: sessions::Sessions,
    /// Failed logins.
    pub limiter: sessions::LoginLimiter,
    /// Reading without a session is allowed (loopback only).
    pub anonymous: bool,
    /// The node's metrics.
    pub metrics: Arc<metrics::NodeMetrics>,
    /// Silent and stalled limits (for the metrics' view of the children).
    pub silent_after: Duration,
    /// See `silent_after`.
    pub stalled_after: Duration,
}

impl HttpState {
    /// The node's division.
    pub fn division(&self) -> Code {
        self.handle.ledger.division()
    }
}

/// Check the HTTP settings of `config` before anything starts: a listener that others can
/// reach needs accounts, and may not allow anonymous reading. Returns whether anonymous
/// reading is allowed.
pub fn check_access(config: &Config, accounts: &accounts::Accounts) -> anyhow::Result<bool> {
    let Some(listen) = config.http_listen else {
        return Ok(false);
    };
    let loopback = listen.ip().is_loopback();
    let anonymous = config.http_anonymous.unwrap_or(loopback);
    if !loopback {
        if anonymous {
            anyhow::bail!(
                "http_listen = \"{listen}\" is reachable from other machines: \
                 http_anonymous = true is allowed on a loopback address only"
            );
        }
        if accounts.is_empty() {
            anyhow::bail!(
                "http_listen = \"{listen}\" is reachable from other machines, and there are no \
                 accounts in {}: add one first (bottomline user add NAME --role viewer \
                 --config …), or listen on 127.0.0.1",
                accounts.path().display()
            );
        }
    }
    Ok(anonymous)
}

/// Serve the API, the dashboard and `/metrics` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        anonymous_reading = state.anonymous,
        accounts = state.accounts.len(),
        "dashboard and HTTP API on http://{addr}/"
    );
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Small JSON answers: no Nagle delay waiting for the client's ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}
