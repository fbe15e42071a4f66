//! Bottomline relay: store-and-forward custody of children's links to their parent across
//! networks (e.g. a county intranet and the e-government network), the library behind the
//! `bottomline-relay` binary.
//!
//! Children (county nodes) dial the relay exactly as if it were their parent (the same
//! `bottomline.v1.Sync/Link`); the relay dials the real parent over mTLS with its own relay
//! certificate and opens one upstream `Link` per child (a **lane**), starting it with the
//! child's own signed Hello. It takes custody of the traffic in its own sled-backed store and
//! acks only what a flush covered; it forwards both ways whenever the far side is reachable
//! and deletes an entry only after the next hop acked it. It cannot alter or forge anything:
//! envelopes are stored and forwarded exactly as received (the child signs its Hello, cell
//! and ticket batches, each ticket event carries its creator's seal, the parent verifies).
//!
//! Layout, bottom up:
//! - [`config`]: the relay's TOML configuration.
//! - [`custody`]: the durable queues over the node's `Store` (key layout documented there),
//!   group commit, the index in memory.
//! - `state`: what the tasks share (lanes' live state, the parent channel, task count).
//! - `upstream`: each lane's link to the parent.
//! - `auth`: who calls (from the verified certificate), refusals to the audit log.
//! - `child`: the `Sync` service the children dial (`Link`, `Status`, `Stats`).
//! - `status`: what `Status` reports (per lane: child link, custody both ways, upstream).
//! - [`Relay::start`] / [`run`]: the server, the upstreams, one ordered shutdown.
//!
//! Invariants: nothing is acked before a flush covered it; nothing is deleted before the next
//! hop acked it; everything stays in order per lane and direction; envelopes are never
//! rebuilt or re-signed; sled is reached only through `bottomline::store`.

pub mod config;
pub mod custody;

mod auth;
mod child;
mod state;
mod status;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bottomline::security::tls::{self, ClientTls, ServerTls, TlsError};
use bottomline::security::Identity;
use bottomline_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
pub use custody::CustodyError;
pub use state::SOFTWARE;

use child::RelayService;
use state::{blocking, Shared, MAX_MESSAGE};

/// Errors starting or running a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The relay's own certificate does not name a relay.
    #[error(
        "{path}: the certificate is {found}, not a relay (issue one with \
         `bottomline pki issue --relay NAME`)"
    )]
    NotARelay {
        /// The certificate file.
        path: PathBuf,
        /// Whom it names.
        found: String,
    },
    /// The custody store failed.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(String),
}

/// A relay running in this process.
pub struct RunningRelay {
    addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// The bound listen address (the real port when the config said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR`, what a child's `parent` setting names (for a relay bound to a
    /// specific address such as 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stop in order (stop accepting, end the links and upstreams, flush the custody store)
    /// and wait for it.
    pub async fn shutdown(self) -> Result<(), RelayError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| RelayError::Server(e.to_string()))?
    }
}

/// Starting a relay.
pub struct Relay;

impl Relay {
    /// Check the certificate, open the custody store, bind the listener and start serving;
    /// returns once the relay accepts connections.
    pub async fn start(config: Config) -> Result<RunningRelay, RelayError> {
        let tls = ServerTls::load(&config.tls)?;
        let name = match &tls.own().identity {
            Identity::Relay { name } => name.clone(),
            other => {
                return Err(RelayError::NotARelay {
                    path: config.tls.cert.clone(),
                    found: other.to_string(),
                })
            }
        };
        // The client side (towards the parent) must load too: fail now, not at the first dial.
        ClientTls::load(&config.tls)?;
        let (dir, opts) = (config.data_dir.clone(), config.store_options());
        let custody = blocking(move || custody::Custody::open(&dir, &opts)).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| RelayError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| RelayError::Listen {
            addr: config.listen,
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let shared = Arc::new(Shared::new(config, custody, name, tls.revoked(), stop_rx));
        let task = tokio::spawn(serve(shared, tls, listener, stop_tx.clone()));
        Ok(RunningRelay {
            addr,
            stop: stop_tx,
            task,
        })
    }
}

/// Run a relay until `shutdown` turns true, then stop it in order.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), RelayError> {
    let mut relay = Relay::start(config).await?;
    tracing::info!(addr = %relay.addr(), "listening");
    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => relay.shutdown().await,
        r = &mut relay.task => r.map_err(|e| RelayError::Server(e.to_string()))?,
    }
}

async fn serve(
    shared: Arc<Shared>,
    tls: Arc<ServerTls>,
    listener: TcpListener,
    stop_tx: Arc<watch::Sender<bool>>,
) -> Result<(), RelayError> {
    let stop = shared.stop.clone();
    let custody = shared.custody.clone();
    let lanes = custody.lanes();
    tracing::info!(
        relay = %shared.name,
        parent = %shared.parent.url(),
        parent_division = %shared.parent_division(),
        lanes = lanes.len(),
        "relay running"
    );
    let crl = tokio::spawn(tls.clone().watch(stop.clone()));
    // Every lane with a stored Hello links upstream at once: custody both ways, also for
    // a child that is offline now.
    for lane in lanes {
        if lane.hello().is_some() {
            upstream::ensure(&shared, &shared.live(lane.code()));
        }
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::sync_server::SyncServer<RelayService>>()
        .await;
    let server_result = async {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bottomline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| RelayError::Server(e.to_string()))?;
        // Python's grpcio-reflection, Postman and older grpcurl ask v1alpha only.
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bottomline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| RelayError::Server(e.to_string()))?;
        let sync = pb::sync_server::SyncServer::new(RelayService::new(shared.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut until_stop = stop.clone();
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(sync)
            .serve_with_incoming_shutdown(tls::incoming(listener, Some(tls)), async move {
                let _ = until_stop.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| RelayError::Server(e.to_string()))
    }
    .await;
    if let Err(e) = &server_result {
        tracing::error!(cause = %e, "the gRPC server failed; stopping");
    }
    // Whatever ended the server, everything else stops now.
    let _ = stop_tx.send(true);
    tracing::info!("shutting down: stopped accepting");
    shared.tasks.wait().await;
    tracing::info!("shutting down: child links and upstreams stopped");
    let _ = crl.await;
    blocking(move || custody.flush()).await?;
    tracing::info!("shutting down: custody flushed");
    server_result
}
