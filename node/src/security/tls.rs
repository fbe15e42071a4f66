//! mTLS with rustls (ring provider) for every listener and every dial.
//!
//! Server side: [`ServerTls`] holds the node's `ServerConfig` (client certificates required,
//! verified against the provincial CA and the CRL) behind a lock, so that a new `crl.pem` is
//! picked up while running ([`ServerTls::watch`]); [`incoming`] accepts TCP connections, sets
//! TCP_NODELAY, runs each handshake on its own task and hands finished streams to tonic with a
//! [`Peer`] (address and verified certificate identity) that handlers read from the request's
//! extensions. Revoked serials are also published, so links opened before a revocation end.
//!
//! Client side: [`ClientTls`] (the same files) and [`channel`], which dials through a
//! connector that verifies the server's chain, host name and CRL, then checks the server's
//! identity against what the caller [`Expect`]s (the uplink wants its parent or a relay).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::either::Either;

use super::identity::{serial_hex, CertInfo, Identity};
use crate::division::Code;

/// The files of a node's (or a CLI user's) TLS identity: a node config's `[tls]` section.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The provincial CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate chain (PEM, leaf first; `bottomline pki issue` writes it).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
    /// The CA's revocation list (PEM); reloaded while running when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
    /// Seconds between checks of the revocation list for changes (a serving node).
    #[serde(default = "default_crl_reload_secs")]
    pub crl_reload_secs: f64,
}

fn default_crl_reload_secs() -> f64 {
    5.0
}

impl TlsFiles {
    /// The files, with the default reload interval.
    pub fn new(ca: PathBuf, cert: PathBuf, key: PathBuf, crl: Option<PathBuf>) -> TlsFiles {
        TlsFiles {
            ca,
            cert,
            key,
            crl,
            crl_reload_secs: default_crl_reload_secs(),
        }
    }

    /// The `[tls]` section of a node config naming these files.
    pub fn to_toml_section(&self) -> String {
        let body = toml::to_string(self).expect("paths and a number always serialize to TOML");
        format!("[tls]\n{body}")
    }

    /// Interval between checks of the revocation list.
    pub fn crl_reload(&self) -> Duration {
        Duration::from_secs_f64(self.crl_reload_secs.max(0.05))
    }
}

/// Errors loading TLS material or dialling.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM object.
    #[error("{what} {path}: {message}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The material does not make a TLS configuration (e.g. key and certificate differ).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A connection could not be made or was refused.
    #[error("{0}")]
    Connect(String),
}

/// The ring provider: pure Rust and assembly, no C toolchain or aws-lc (the project's rule).
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange; X25519/P-256 are what
/// the province's clients (grpcurl, grpcio) speak today.
#[allow(deprecated)]
pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn file_err(what: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Everything read from a [`TlsFiles`].
struct Material {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    revoked: BTreeSet<String>,
    crl_next_update: Option<i64>,
    own: CertInfo,
}

pub(super) fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path, e))?;
    if certs.is_empty() {
        return Err(file_err(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// What [`read_crls`] reads: the lists, the serials they revoke, and the earliest
/// nextUpdate among them (Unix seconds; `None` when no list declares one).
type Crls = (
    Vec<CertificateRevocationListDer<'static>>,
    BTreeSet<String>,
    Option<i64>,
);

/// Read the revocation lists of `path`, the serials they revoke and when they are due to be
/// replaced.
fn read_crls(path: &Path) -> Result<Crls, TlsError> {
    let what = "revocation list";
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| file_err(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path, e))?;
    if crls.is_empty() {
        return Err(file_err(what, path, "no PEM X509 CRL in it"));
    }
    let mut revoked = BTreeSet::new();
    let mut next_update: Option<i64> = None;
    for crl in &crls {
        let (_, parsed) =
            x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| file_err(what, path, e))?;
        for r in parsed.iter_revoked_certificates() {
            revoked.insert(serial_hex(r.raw_serial()));
        }
        if let Some(t) = parsed.next_update() {
            let t = t.timestamp();
            next_update = Some(next_update.map_or(t, |n| n.min(t)));
        }
    }
    Ok((crls, revoked, next_update))
}

/// How a revocation list stands against its nextUpdate at `now` (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlFreshness {
    /// No list, or none declares a nextUpdate.
    Undated,
    /// Before its nextUpdate by more than [`CRL_DUE_SOON_SECS`].
    Fresh,
    /// Its nextUpdate is less than [`CRL_DUE_SOON_SECS`] away.
    DueSoon,
    /// Past its nextUpdate: revocations made since may be missing here. Connections are
    /// still verified against it (refusing every link because nobody re-signed the list
    /// would cut the province off); the node warns and `/metrics` shows it.
    Stale,
}

/// How long before its nextUpdate a list counts as due soon: three days, time for the CA's
/// holder to run `bottomline pki refresh-crl` and publish it.
pub const CRL_DUE_SOON_SECS: i64 = 3 * 86_400;

impl CrlFreshness {
    /// `next_update` (Unix seconds) against `now`.
    pub fn at(next_update: Option<i64>, now: i64) -> CrlFreshness {
        match next_update {
            None => CrlFreshness::Undated,
            Some(t) if now >= t => CrlFreshness::Stale,
            Some(t) if t - now < CRL_DUE_SOON_SECS => CrlFreshness::DueSoon,
            Some(_) => CrlFreshness::Fresh,
        }
    }
}

fn unix_now() -> i64 {
    crate::ledger::unix_ms_now() / 1000
}

impl Material {
    fn load(files: &TlsFiles) -> Result<Material, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in read_certs("CA certificate", &files.ca)? {
            roots
                .add(c)
                .map_err(|e| file_err("CA certificate", &files.ca, e))?;
        }
        let chain = read_certs("certificate", &files.cert)?;
        let own = CertInfo::from_der(chain[0].as_ref())
            .map_err(|e| file_err("certificate", &files.cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| file_err("private key", &files.key, e))?;
        let (crls, revoked, crl_next_update) = match &files.crl {
            Some(p) => read_crls(p)?,
            None => Default::default(),
        };
        Ok(Material {
            roots: Arc::new(roots),
            chain,
            key,
            crls,
            revoked,
            crl_next_update,
            own,
        })
    }

    fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .with_crls(self.crls.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .with_crls(self.crls.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// How often a node repeats its warning about a revocation list past or near its
/// nextUpdate.
pub const CRL_WARN_EVERY: Duration = Duration::from_secs(3600);

/// Revoked serials (lowercase hex), as published to open links.
pub type Revoked = Arc<BTreeSet<String>>;

/// A node's server-side TLS: the current config and the revoked serials, reloadable.
pub struct ServerTls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    revoked: watch::Sender<Revoked>,
    crl_stamp: Mutex<Option<(SystemTime, u64)>>,
    /// The loaded list's nextUpdate (Unix seconds), `i64::MIN` for none.
    crl_next_update: AtomicI64,
    own: CertInfo,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl ServerTls {
    /// Load the files; an unreadable or inconsistent file is an error naming it.
    pub fn load(files: &TlsFiles) -> Result<Arc<ServerTls>, TlsError> {
        let m = Material::load(files)?;
        let config = m.server_config()?;
        let tls = Arc::new(ServerTls {
            files: files.clone(),
            config: RwLock::new(Arc::new(config)),
            revoked: watch::channel(Arc::new(m.revoked)).0,
            crl_stamp: Mutex::new(files.crl.as_deref().and_then(stamp)),
            crl_next_update: AtomicI64::new(m.crl_next_update.unwrap_or(i64::MIN)),
            own: m.own,
        });
        tls.warn_if_due(unix_now());
        Ok(tls)
    }

    /// The loaded revocation list's nextUpdate (Unix seconds).
    pub fn crl_next_update(&self) -> Option<i64> {
        Some(self.crl_next_update.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// How the loaded revocation list stands at `now` (Unix seconds).
    pub fn crl_freshness(&self, now: i64) -> CrlFreshness {
        CrlFreshness::at(self.crl_next_update(), now)
    }

    /// Log a warning when the list is past or near its nextUpdate.
    fn warn_if_due(&self, now: i64) {
        let crl = self.files.crl.as_deref().unwrap_or(Path::new("-"));
        let next = self
            .crl_next_update()
            .and_then(|t| jiff::Timestamp::from_second(t).ok())
            .map(|t| t.to_string())
            .unwrap_or_default();
        match self.crl_freshness(now) {
            CrlFreshness::Stale => tracing::warn!(
                crl = %crl.display(),
                next_update = %next,
                "the revocation list is past its nextUpdate: certificates revoked since may                  still be accepted here; re-sign it (`bottomline pki refresh-crl`) and publish it"
            ),
            CrlFreshness::DueSoon => tracing::warn!(
                crl = %crl.display(),
                next_update = %next,
                "the revocation list is due to be re-signed within three days                  (`bottomline pki refresh-crl`, then publish it)"
            ),
            CrlFreshness::Fresh | CrlFreshness::Undated => {}
        }
    }

    /// The identity of this node's own certificate.
    pub fn own(&self) -> &CertInfo {
        &self.own
    }

    /// Revoked serials now and on every reload.
    pub fn revoked(&self) -> watch::Receiver<Revoked> {
        self.revoked.subscribe()
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-read the files if the CRL changed; new connections use the new config at once and
    /// links of revoked certificates are told. Returns whether anything was reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let Some(crl) = &self.files.crl else {
            return Ok(false);
        };
        let now = stamp(crl);
        if *self.crl_stamp.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(false);
        }
        // A file caught half copied fails here and is read again at the next check.
        let m = Material::load(&self.files)?;
        let config = Arc::new(m.server_config()?);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        *self.crl_stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
        self.crl_next_update
            .store(m.crl_next_update.unwrap_or(i64::MIN), Ordering::Relaxed);
        tracing::info!(
            crl = %crl.display(),
            revoked = m.revoked.len(),
            "revocation list reloaded"
        );
        self.revoked.send_replace(Arc::new(m.revoked));
        Ok(true)
    }

    /// Check the CRL file every `crl_reload_secs` until `stop` turns true; while the list is
    /// past or near its nextUpdate, warn again every [`CRL_WARN_EVERY`] (and at each reload).
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.files.crl_reload();
        let mut warned = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let reloaded = self.reload_if_changed().unwrap_or_else(|e| {
                tracing::error!(cause = %e, "cannot reload the revocation list; keeping the previous one");
                false
            });
            if reloaded || warned.elapsed() >= CRL_WARN_EVERY {
                self.warn_if_due(unix_now());
                warned = std::time::Instant::now();
            }
        }
    }
}

/// Who is on the other side of a server connection (in every request's extensions).
#[derive(Clone, Debug)]
pub struct Peer {
    /// Remote address.
    pub addr: Option<SocketAddr>,
    /// The verified client certificate; `None` only on a node configured `insecure`.
    pub cert: Option<Arc<CertInfo>>,
}

/// An accepted connection, plaintext (insecure nodes only) or TLS, with its [`Peer`].
pub struct Conn {
    io: Either<TcpStream, Box<tokio_rustls::server::TlsStream<TcpStream>>>,
    peer: Peer,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections on `listener` until the stream is dropped: TCP_NODELAY on each, the TLS
/// handshake (when `tls` is set) on its own task, refusals logged to the audit log.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> ReceiverStream<Result<Conn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, keep serving.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls.clone() else {
                let peer = Peer {
                    addr: Some(addr),
                    cert: None,
                };
                let conn = Conn {
                    io: Either::Left(tcp),
                    peer,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if is_plaintext(&tcp).await {
                    let why = "a plaintext client: this node accepts mutual TLS only";
                    super::audit("-", "-", &format!("connect from {addr}"), why);
                    refuse_plaintext(tcp).await;
                    return;
                }
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&tls, tcp, addr)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(why)) => {
                        super::audit("-", "-", &format!("connect from {addr}"), &why);
                    }
                    Err(_) => super::audit(
                        "-",
                        "-",
                        &format!("connect from {addr}"),
                        "the TLS handshake did not finish within 10 s",
                    ),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A TLS client starts with a handshake record (0x16); a plaintext HTTP/2 client with its
/// preface ("PRI * HTTP/2.0").
async fn is_plaintext(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] != 0x16
    )
}

/// Answer every call of a plaintext gRPC client with `UNAUTHENTICATED` and a message saying
/// what to do, instead of a bare connection reset.
async fn refuse_plaintext(tcp: TcpStream) {
    let service = hyper::service::service_fn(|_req| async {
        http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "16")
            .header(
                "grpc-message",
                "this node accepts mutual TLS only: call https:// with a certificate \
                 (--ca, --cert, --key)",
            )
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
    });
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn).await;
}

/// The identity and serial of the peer's verified leaf certificate after a handshake (rustls
/// has checked the chain; `side` names the peer in errors).
fn peer_info(conn: &rustls::CommonState, side: &str) -> Result<CertInfo, String> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("the {side} sent no certificate"))?;
    CertInfo::from_der(leaf.as_ref())
        .map_err(|e| format!("{side} certificate without a usable identity: {e}"))
}

async fn handshake(tls: &ServerTls, tcp: TcpStream, addr: SocketAddr) -> Result<Conn, String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let stream = acceptor
        .accept(tcp)
        .await
        .map_err(|e| format!("TLS handshake refused: {e}"))?;
    let info = peer_info(stream.get_ref().1, "client")?;
    Ok(Conn {
        io: Either::Right(Box::new(stream)),
        peer: Peer {
            addr: Some(addr),
            cert: Some(Arc::new(info)),
        },
    })
}

/// A client's TLS identity (the uplink, the CLI, tests, the relay).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    own: CertInfo,
}

impl ClientTls {
    /// Load the files.
    pub fn load(files: &TlsFiles) -> Result<ClientTls, TlsError> {
        let m = Material::load(files)?;
        Ok(ClientTls {
            config: Arc::new(m.client_config()?),
            own: m.own,
        })
    }

    /// The identity of the client's own certificate.
    pub fn own(&self) -> &CertInfo {
        &self.own
    }
}

/// Which server a client accepts, beyond a valid chain and host name.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Any identity of the CA (the CLI talks to whichever node it names).
    Any,
    /// The parent of this division, or a relay in front of it.
    ParentOf(Code),
}

impl Expect {
    fn check(self, id: &Identity) -> Result<(), String> {
        match (self, id) {
            (Expect::Any, _) => Ok(()),
            (Expect::ParentOf(_), Identity::Relay { .. }) => Ok(()),
            (Expect::ParentOf(me), Identity::Node { division })
                if me.parent() == Some(*division) =>
            {
                Ok(())
            }
            (Expect::ParentOf(me), other) => Err(format!(
                "the server's certificate is {other}, not the parent of {me} (nor a relay)"
            )),
        }
    }
}

/// The endpoint URL as dialled: `host:port`, `http://host:port` or `https://host:port`.
fn normalise(url: &str, tls: bool) -> String {
    if url.contains("://") {
        url.to_string()
    } else if tls {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    }
}

/// A gRPC channel to `url`, over mTLS when `tls` is given (the server's chain, host name and
/// revocation checked, then its identity against `expect`); `call_timeout` bounds each call.
pub async fn channel(
    url: &str,
    tls: Option<&ClientTls>,
    expect: Expect,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<tonic::transport::Channel, TlsError> {
    let url = normalise(url, tls.is_some());
    if tls.is_none() && url.starts_with("https://") {
        return Err(TlsError::Connect(format!(
            "{url} speaks mutual TLS: give a certificate (--ca, --cert, --key, or \
             BOTTOMLINE_CA, BOTTOMLINE_CERT, BOTTOMLINE_KEY, or a node's [tls] section)"
        )));
    }
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| TlsError::Connect(format!("bad address {url:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    let endpoint = match call_timeout {
        Some(t) => endpoint.timeout(t),
        None => endpoint,
    };
    let tls = tls.map(|t| tokio_rustls::TlsConnector::from(t.config.clone()));
    let connector = tower::service_fn(move |uri: tonic::codegen::http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| TlsError::Connect(format!("{uri}: no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| TlsError::Connect(format!("cannot reach {host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls else {
                return Ok::<_, TlsError>(hyper_util::rt::TokioIo::new(Either::Left(tcp)));
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| TlsError::Connect(format!("bad server name {host:?}: {e}")))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| TlsError::Connect(format!("TLS with {host}:{port} failed: {e}")))?;
            let id = peer_info(stream.get_ref().1, "server")
                .map_err(TlsError::Connect)?
                .identity;
            expect
                .check(&id)
                .map_err(|e| TlsError::Connect(format!("{host}:{port}: {e}")))?;
            Ok(hyper_util::rt::TokioIo::new(Either::Right(Box::new(
                stream,
            ))))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            use std::error::Error;
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            TlsError::Connect(msg)
        })
}
