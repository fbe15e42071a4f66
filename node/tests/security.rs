//! mTLS and certificate-based authorization (issue #15, point 7), with real nodes over mTLS on
//! 127.0.0.1:0 (province 61 ← cities 6101, 6102 ← county 610102), all certificates from one
//! test CA. Every refusal has a clear expected outcome, and where something could have been
//! written, the test checks that nothing was stored.
//!
//! TLS-level refusals (no client certificate, another CA, expired, revoked) fail at the dial
//! or as a transport error of the first call; authorization refusals are `PermissionDenied`
//! naming the reason; a plaintext client gets `Unauthenticated` saying "mutual TLS".
//!
//! The two tests at the end were found failing while writing these tests and fixed in the
//! product: an API connection opened before a revocation kept acting, and refusals by the
//! ledger's rules (a foreign cell, acting for a division another node serves) wrote no audit
//! line.

mod common;
use common::{eventually, eventually_async, stop, Running, DEADLINE};

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::domain::{Cents, Record, RecordKind};
use bottomline::ledger::{Act, CellValue, Change, Ledger};
use bottomline::period::{today_in_china, Period};
use bottomline::rpc::envelope::Seals;
use bottomline::rpc::tickets_api::parse_key;
use bottomline::rpc::tickets_client::{ListFilter, NewTicket, TicketsClient};
use bottomline::security::pki::{IssueOptions, Pki};
use bottomline::security::tls::{self, ClientTls, Expect, TlsFiles};
use bottomline::security::{Identity, Role};
use bottomline::stats::{CellKey, Stored};
use bottomline::tickets::State;
use bottomline_proto::v1 as pb;
use jiff::civil::date;
use pb::envelope::Payload;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code as Grpc;

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.5\n";

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn node(division: &str) -> Identity {
    Identity::Node {
        division: c(division),
    }
}

fn person(name: &str, division: &str, role: Role) -> Identity {
    Identity::Operator {
        name: name.into(),
        division: c(division),
        role,
    }
}

/// The client TLS of `id`, from the test CA in `dir/pki`.
fn client(dir: &Path, id: &Identity) -> ClientTls {
    ClientTls::load(&common::tls_files(dir, id)).expect("client TLS")
}

/// The signing key of node `division` (issued by the test CA).
fn seals(dir: &Path, division: &str) -> Arc<Seals> {
    Seals::load(&common::tls_files(dir, &node(division))).expect("node key")
}

// ------------------------------------------------------------------------------------------
// The audit log, captured (target "audit" only) for the whole test binary
// ------------------------------------------------------------------------------------------

struct AuditBuf(Mutex<Vec<u8>>);

impl std::io::Write for &AuditBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged to the audit log so far (by every test of this binary).
fn audit_log() -> String {
    static BUF: OnceLock<Arc<AuditBuf>> = OnceLock::new();
    let buf = BUF.get_or_init(|| {
        let buf = Arc::new(AuditBuf(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("audit=warn"))
            .try_init();
        buf
    });
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}

// ------------------------------------------------------------------------------------------
// The tree
// ------------------------------------------------------------------------------------------

/// Province 61, cities 6101 and 6102 (listening), and county 610102 under 6101 if asked.
struct Tree {
    province: Running,
    cities: Vec<Running>,
    county: Option<Running>,
}

async fn tree(dir: &Path, with_county: bool) -> Tree {
    audit_log();
    let province = common::start_secure(dir, "61", None, true, SYNC).await;
    let p = province.addr.clone().expect("addr");
    let c1 = common::start_secure(dir, "6101", Some(&p), true, SYNC).await;
    let c2 = common::start_secure(dir, "6102", Some(&p), true, SYNC).await;
    let county = match with_county {
        true => Some(common::start_secure(dir, "610102", c1.addr.as_deref(), false, SYNC).await),
        false => None,
    };
    Tree {
        province,
        cities: vec![c1, c2],
        county,
    }
}

impl Tree {
    fn province_addr(&self) -> &str {
        self.province.addr.as_deref().expect("addr")
    }
    fn city_addr(&self, i: usize) -> &str {
        self.cities[i].addr.as_deref().expect("addr")
    }
    fn county(&self) -> &Running {
        self.county.as_ref().expect("a county in this tree")
    }
    /// A province operator issues ticket `id` to `target` through the API; returns its key
    /// once `at` (the target's node) and the province hold it delivered.
    async fn issue(&self, dir: &Path, id: &str, target: &str, at: &Ledger) -> String {
        let op = client(dir, &person("prov.op", "61", Role::Operator));
        let mut api = tickets(self.province_addr(), &op).await;
        let keys = api.issue(None, vec![new_ticket(id, target)]).await;
        let key = keys.expect("issue").remove(0);
        assert_eq!(key, format!("61/{id}"));
        for l in [at, self.province.ledger()] {
            eventually(
                &format!("{key} delivered, seen at {}", l.division()),
                || state_of(l, &key) == Some(State::Delivered),
            )
            .await;
        }
        key
    }

    async fn stop(self) {
        if let Some(n) = self.county {
            stop(n).await;
        }
        for n in self.cities {
            stop(n).await;
        }
        stop(self.province).await;
    }
}

/// Generate a small county 610102 and import it at `county`.
fn import_county(dir: &Path, county: &Ledger) {
    let files = dir.join("files");
    common::generate_county(&files, "610102", 15, 150);
    common::import_generated(county, &files, "610102", date(2026, 11, 24));
}

/// The cells `l` holds for `top`'s subtree.
fn cells_under(l: &Ledger, top: &str) -> std::collections::BTreeMap<CellKey, i64> {
    let mut cells = l.all_cells().expect("cells");
    cells.retain(|k, _| c(top).contains(k.division));
    cells
}

/// `node` stored nothing from (or about) `child`: no cell, no durable link position, no live
/// link.
fn assert_nothing_from(node: &Running, child: &str) {
    let l = node.ledger();
    assert!(cells_under(l, child).is_empty(), "cells of {child} stored");
    let known = l.known_children().expect("known children");
    assert!(
        known.iter().all(|k| k.division != c(child)),
        "{child} known"
    );
    let live = node.handle.children.lock().unwrap();
    assert!(
        live.get(&c(child)).is_none_or(|s| !s.connected),
        "{child} linked"
    );
}

/// City 6101 alone (no parent), and its address.
async fn city_alone(dir: &Path) -> (Running, String) {
    audit_log();
    let city = common::start_secure(dir, "6101", None, true, SYNC).await;
    let addr = city.addr.clone().expect("addr");
    (city, addr)
}

// ------------------------------------------------------------------------------------------
// Clients
// ------------------------------------------------------------------------------------------

/// How a call was refused: at the dial (TLS), or with a gRPC status.
#[derive(Debug)]
enum Refusal {
    Dial(String),
    Status(tonic::Status),
}

async fn dial(addr: &str, tls: &ClientTls) -> Result<Channel, Refusal> {
    let (connect, call) = (Duration::from_secs(5), Some(Duration::from_secs(30)));
    let r = tls::channel(addr, Some(tls), Expect::Any, connect, call).await;
    r.map_err(|e| Refusal::Dial(e.to_string()))
}

/// A channel over TLS with a hand-made rustls config (e.g. without a client certificate).
async fn dial_with(addr: &str, config: rustls::ClientConfig) -> Result<Channel, Refusal> {
    let port: u16 = addr.rsplit(':').next().unwrap().parse().expect("port");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connect = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    tonic::transport::Endpoint::from_shared(addr.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect_with_connector(connect)
        .await
        .map_err(|e| Refusal::Dial(format!("{e}: {:?}", std::error::Error::source(&e))))
}

/// A `Status` call on the channel just dialled.
async fn status_on(ch: Result<Channel, Refusal>) -> Result<pb::StatusReply, Refusal> {
    let mut client = pb::sync_client::SyncClient::new(ch?);
    let r = client.status(pb::StatusRequest {}).await;
    r.map(|r| r.into_inner()).map_err(Refusal::Status)
}

/// A `Status` call on a new connection with `tls`.
async fn status_of(addr: &str, tls: &ClientTls) -> Result<pb::StatusReply, Refusal> {
    status_on(dial(addr, tls).await).await
}

async fn stats_of(addr: &str, tls: &ClientTls, division: &str) -> Result<pb::StatsReply, Refusal> {
    let mut client = pb::sync_client::SyncClient::new(dial(addr, tls).await?);
    let req = pb::StatsRequest {
        division: division.into(),
        period: "2026".into(),
    };
    client
        .stats(req)
        .await
        .map(|r| r.into_inner())
        .map_err(Refusal::Status)
}

/// A refusal before any handler ran (TLS); returns its text.
fn tls_refused<T: std::fmt::Debug>(what: &str, r: Result<T, Refusal>) -> String {
    let text = match r {
        Ok(v) => panic!("{what}: accepted ({v:?})"),
        Err(Refusal::Dial(e)) => e,
        Err(Refusal::Status(s)) => {
            assert!(
                matches!(
                    s.code(),
                    Grpc::Unavailable | Grpc::Unknown | Grpc::Cancelled
                ),
                "{what}: expected a transport failure, got {s:?}"
            );
            format!("{:?}: {} ({s:?})", s.code(), s.message())
        }
    };
    println!("{what}: refused: {text}");
    text
}

/// A `PermissionDenied` whose message contains every word of `words`; returns the message.
fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>, words: &[&str]) -> String {
    let s = match r {
        Ok(v) => panic!("{what}: accepted ({v:?})"),
        Err(s) => s,
    };
    assert_eq!(s.code(), Grpc::PermissionDenied, "{what}: {s:?}");
    for w in words {
        assert!(
            s.message().contains(w),
            "{what}: {w:?} not in {:?}",
            s.message()
        );
    }
    println!("{what}: {}", s.message());
    s.message().to_string()
}

/// A refusal with any code (printed); returns it.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) -> tonic::Status {
    let s = r.map(|v| panic!("{what}: accepted ({v:?})")).unwrap_err();
    println!("{what}: {:?}: {}", s.code(), s.message());
    s
}

fn envelope(origin: &str, seq: u64, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: origin.into(),
        seq,
        payload: Some(payload),
        ..Default::default()
    }
}

/// A batch of one cell of `division` (measures of 2026) with `value` at `version`, read up to
/// position `pos` with floor `pos`.
fn cell_batch_at(origin: &str, division: &str, value: i64, version: u64, pos: u64) -> pb::Envelope {
    let key = CellKey {
        division: c(division),
        period: Period::parse("2026").expect("period"),
        indicator: Stored::Measures,
        dim: 1,
    };
    let value = CellValue {
        value,
        seq: pos,
        version,
    };
    let batch = pb::CellBatch {
        cells: vec![bottomline::rpc::cell_to_pb(&key, &value)],
        floor: pos,
        ..Default::default()
    };
    envelope(origin, pos, Payload::Cells(batch))
}

/// A batch of one cell of `division` (measures of 2026), at position 1.
fn cell_batch(origin: &str, division: &str) -> pb::Envelope {
    let key = CellKey {
        division: c(division),
        period: Period::parse("2026").expect("period"),
        indicator: Stored::Measures,
        dim: 1,
    };
    let value = CellValue {
        value: 7,
        seq: 1,
        version: 1,
    };
    let batch = pb::CellBatch {
        cells: vec![bottomline::rpc::cell_to_pb(&key, &value)],
        floor: 1,
        ..Default::default()
    };
    envelope(origin, 1, Payload::Cells(batch))
}

/// A raw `Link` client.
struct RawLink {
    _tx: mpsc::Sender<pb::Envelope>,
    inbound: tonic::Streaming<pb::Envelope>,
}

/// Open a `Link` on `ch` with Hello `me`, then `then` queued at once; the link once welcomed,
/// or the refusal.
/// Every envelope is signed with `seals` (the key of the node the test speaks as; none for
/// [`Seals::insecure`]).
async fn open_link(
    ch: Channel,
    me: &str,
    seals: &Seals,
    then: Vec<pb::Envelope>,
) -> Result<RawLink, tonic::Status> {
    let (tx, rx) = mpsc::channel(16);
    let hello = pb::Hello {
        division: me.into(),
        software: "security test".into(),
        certificate: seals.certificate(),
        ..Default::default()
    };
    tx.send(seals.envelope(c(me), 0, Payload::Hello(hello)))
        .await
        .expect("queue");
    for e in then {
        // Envelopes that carry a signature already go as they are (forwarded, or tampered).
        let e = match e.signature.is_empty() {
            true => seals.envelope(c(&e.origin), e.seq, e.payload.expect("payload")),
            false => e,
        };
        tx.send(e).await.expect("queue");
    }
    let mut client = pb::sync_client::SyncClient::new(ch);
    let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();
    match tokio::time::timeout(DEADLINE, inbound.message()).await {
        Ok(Ok(Some(pb::Envelope {
            payload: Some(Payload::Welcome(_)),
            ..
        }))) => Ok(RawLink { _tx: tx, inbound }),
        Ok(Err(s)) => Err(s),
        other => panic!("expected Welcome or a refusal, got {other:?}"),
    }
}

impl RawLink {
    /// The next ack (cells), skipping anything else.
    async fn next_ack(&mut self) -> pb::Ack {
        loop {
            match tokio::time::timeout(DEADLINE, self.inbound.message()).await {
                Ok(Ok(Some(pb::Envelope {
                    payload: Some(Payload::Ack(a)),
                    ..
                }))) => return a,
                Ok(Ok(Some(_))) => continue,
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }

    /// The status the link ends with (no ack may come first).
    async fn refusal(mut self) -> tonic::Status {
        loop {
            match tokio::time::timeout(DEADLINE, self.inbound.message()).await {
                Ok(Err(s)) => return s,
                Ok(Ok(Some(pb::Envelope {
                    payload: Some(Payload::Ack(a)),
                    ..
                }))) => panic!("a batch was acked: {a:?}"),
                Ok(Ok(Some(_))) => continue,
                other => panic!("expected the link to end with an error, got {other:?}"),
            }
        }
    }
}

/// A `Link` as `me` on the channel just dialled: Hello, then a batch of one of its cells.
async fn link_on(ch: Result<Channel, Refusal>, me: &str) -> Result<&'static str, Refusal> {
    let r = open_link(ch?, me, &Seals::insecure(), vec![cell_batch(me, me)]).await;
    r.map(|_| "welcomed").map_err(Refusal::Status)
}

fn new_ticket(id: &str, target: &str) -> NewTicket {
    let deadline = today_in_china()
        .checked_add(jiff::Span::new().days(30))
        .expect("date");
    NewTicket {
        id: id.into(),
        target: target.into(),
        category: "housing safety".into(),
        source: "inspection".into(),
        severity: "high".into(),
        deadline: deadline.to_string(),
        description: "roof of a monitored household leaks".into(),
        ..Default::default()
    }
}

async fn tickets(addr: &str, tls: &ClientTls) -> TicketsClient {
    TicketsClient::connect(addr, Some(tls))
        .await
        .expect("connect")
}

/// `Result` of a ticket call as a gRPC status (a dial failure panics).
fn grpc<T>(r: Result<T, bottomline::rpc::tickets_client::ClientError>) -> Result<T, tonic::Status> {
    r.map_err(|e| match e {
        bottomline::rpc::tickets_client::ClientError::Refused(s) => s,
        other => panic!("not a gRPC refusal: {other}"),
    })
}

/// Revoke `stem`'s certificate in the test CA (rewrites `crl.pem`).
fn revoke(dir: &Path, stem: &str) {
    let mut pki = Pki::open(&dir.join("pki")).expect("open CA");
    let serials = pki.revoke(stem, Some("test")).expect("revoke");
    assert_eq!(serials.len(), 1, "{stem}");
}

fn state_of(l: &Ledger, key: &str) -> Option<State> {
    let key = parse_key(key).expect("key");
    l.ticket(&key).expect("ticket").map(|s| s.state)
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_tree_syncs_and_delivers_tickets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t = tree(dir, true).await;
    let county = t.county().ledger();
    import_county(dir, county);
    let prov = t.province.ledger();
    eventually("the county's cells reach the province over mTLS", || {
        cells_under(prov, "610102") == county.upward_cells().expect("cells")
    })
    .await;
    for period in ["2026", "2026-11", "2026-W47"] {
        let p = Period::parse(period).expect("period");
        let here = county.indicators(c("610102"), p).expect("indicators");
        assert_eq!(prov.indicators(c("610102"), p).expect("indicators"), here);
    }
    let year = county.indicators(c("610102"), Period::parse("2026").unwrap());
    assert!(year.unwrap().count("monitored_households", "total") > 0);
    // A viewer of the province reads the county's statistics through the API.
    let viewer = client(dir, &person("viewer.61", "61", Role::Viewer));
    let stats = stats_of(t.province_addr(), &viewer, "610102").await;
    assert!(!stats.expect("stats").indicators.is_empty());
    // The node knows when its revocation list is due (for /metrics and its warnings): the
    // CA signs it fresh for 30 days.
    let tls = t
        .province
        .handle
        .tls
        .get()
        .expect("a secure node keeps its TLS");
    let next = tls.crl_next_update().expect("a nextUpdate");
    let now = jiff::Timestamp::now().as_second();
    assert!(
        next > now + 29 * 86_400 && next <= now + 30 * 86_400 + 60,
        "{next} vs now {now}"
    );

    // A province operator issues through the API; the county's node delivers.
    let key = t.issue(dir, "S1", "610102", county).await;
    // The county's delivery reaches the province with the county's seal, which the province
    // (the issuer) checks with nothing but the CA: it knows who acted, whoever forwarded it.
    let key = parse_key(&key).expect("key");
    let verifier = bottomline::security::sign::Verifier::load(&common::tls_files(dir, &node("61")))
        .expect("verifier");
    let held = prov.sealed_events(&key).expect("events");
    assert_eq!(held.len(), 2, "issued and delivered");
    for e in &held {
        let seal = e.seal.as_ref().expect("every event is sealed");
        let der = prov
            .certificate(&seal.signer)
            .expect("cert")
            .expect("signer held");
        let signer = verifier.signer(&der).expect("a certificate of the CA");
        assert_eq!(signer.node_division(), Some(e.event.id.origin));
        let root = seal.root(&e.body).expect("path");
        verifier
            .verify_root(&signer, &root, &seal.signature)
            .expect("the creator's signature");
    }
    assert!(held.iter().any(|e| e.event.id.origin == c("610102")));
    // And the API shows it: who sealed each event of the history, verified.
    let op = client(dir, &person("prov.op", "61", Role::Operator));
    let shown = tickets(t.province_addr(), &op)
        .await
        .show(&key.to_string())
        .await
        .expect("show");
    let by = |action: &str| {
        shown
            .history
            .iter()
            .find(|h| h.action == action)
            .map(|h| h.signed_by.clone())
            .unwrap_or_default()
    };
    assert!(
        by("issue").starts_with("node 61 ") && by("issue").ends_with("verified"),
        "{shown:?}"
    );
    assert!(
        by("deliver").starts_with("node 610102 ") && by("deliver").ends_with("verified"),
        "{shown:?}"
    );
    t.stop().await;
}

#[allow(deprecated)]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_is_refused() {
    use rustls::pki_types::pem::PemObject;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let ca = common::tls_files(dir, &node("6101")).ca;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).expect("CA") {
        roots.add(cert.expect("CA")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];

    let r = status_on(dial_with(&addr, config.clone()).await).await;
    tls_refused("Status without a client certificate", r);
    let r = link_on(dial_with(&addr, config).await, "610102").await;
    tls_refused("Link without a client certificate", r);
    assert_nothing_from(&city, "610102");
    // The same CA with a certificate is served.
    let op = client(dir, &person("ok.op", "6101", Role::Operator));
    status_of(&addr, &op).await.expect("with a certificate");
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let real = common::tls_files(dir, &node("6101"));
    let mut other = Pki::init(&dir.join("other-ca"), "Impostor CA").expect("other CA");
    let issued = other
        .issue(&node("610102"), &IssueOptions::default())
        .expect("issue");
    // Trusts the real CA (so the client accepts the city), presents the other CA's certificate.
    let forged = ClientTls::load(&TlsFiles::new(
        real.ca.clone(),
        issued.cert_path,
        issued.key_path,
        None,
    ))
    .expect("load");
    let r = link_on(dial(&addr, &forged).await, "610102").await;
    tls_refused("Link, another CA", r);
    tls_refused(
        "Stats, another CA",
        stats_of(&addr, &forged, "610102").await,
    );
    assert_nothing_from(&city, "610102");
    // The real county certificate is welcomed (the refusal above is the CA's).
    let county = client(dir, &node("610102"));
    let ch = dial(&addr, &county).await.expect("dial");
    let link = open_link(ch, "610102", &seals(dir, "610102"), vec![])
        .await
        .expect("welcomed");
    drop(link);
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let files = {
        let mut pki = Pki::open(&dir.join("pki")).expect("open CA");
        let ten_days = jiff::SignedDuration::from_hours(240);
        let opts = IssueOptions {
            days: 1,
            valid_from: Some(jiff::Timestamp::now().checked_sub(ten_days).expect("time")),
            ..Default::default()
        };
        let issued = pki
            .issue(&person("expired.op", "6101", Role::Operator), &opts)
            .expect("issue");
        TlsFiles::new(
            pki.ca_path(),
            issued.cert_path,
            issued.key_path,
            Some(pki.crl_path()),
        )
    };
    let expired = ClientTls::load(&files).expect("load");
    let text = tls_refused("Status, expired", status_of(&addr, &expired).await);
    let fresh = client(dir, &person("fresh.op", "6101", Role::Operator));
    status_of(&addr, &fresh)
        .await
        .expect("a valid one is served");
    assert!(
        audit_log().contains("certificate expired"),
        "the audit log names the expiry ({text})"
    );
    stop(city).await;
}

/// Tests that revoke certificates run one at a time (the audit log is shared by the binary).
static REVOKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_while_running() {
    // Counts "Revoked" audit lines below: no other revoking test may run meanwhile.
    let _one_at_a_time = REVOKING.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t = tree(dir, true).await;
    let (city, county) = (&t.cities[0], t.county());
    let city_addr = t.city_addr(0).to_string();
    import_county(dir, county.ledger());
    eventually("the county's cells reach its city", || {
        cells_under(city.ledger(), "610102") == county.ledger().upward_cells().expect("cells")
    })
    .await;

    // An operator certificate works, then is revoked: new connections are refused.
    let op = client(dir, &person("rev.op", "6101", Role::Operator));
    status_of(&city_addr, &op).await.expect("status before");
    let revoke = |stem: &str| revoke(dir, stem);
    revoke("operator-rev.op");
    eventually_async(
        "a new connection with the revoked certificate is refused",
        || async { status_of(&city_addr, &op).await.is_err() },
    )
    .await;
    tls_refused("Status after revocation", status_of(&city_addr, &op).await);
    // (A connection opened before the revocation: see the test at the end.)

    // The county's own node certificate revoked: its open link ends, redials are refused.
    let connected = |n: &Running, child: &str| {
        let live = n.handle.children.lock().unwrap();
        live.get(&c(child)).is_some_and(|s| s.connected)
    };
    eventually("the county is linked", || connected(city, "610102")).await;
    revoke("node-610102");
    eventually("the county's link ends at the city", || {
        !connected(city, "610102")
    })
    .await;
    eventually("the county sees its uplink down", || {
        let up = county.handle.uplink.lock().unwrap();
        !up.connected && up.last_error.is_some()
    })
    .await;
    let log = audit_log();
    assert!(
        log.contains("the certificate was revoked while the link was open"),
        "audit"
    );
    eventually("the county's redial is refused as revoked", || {
        let up = county.handle.uplink.lock().unwrap();
        up.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Revoked"))
    })
    .await;

    // Nothing more is accepted from it: a change at the county, then three more refused
    // redials, and the city's copy is unchanged.
    let before = cells_under(city.ledger(), "610102");
    let acked = city.ledger().child_acked(c("610102")).expect("acked");
    let mut m = match county.ledger().records(RecordKind::Measure).next() {
        Some(Ok(Record::Measure(m))) => m,
        other => panic!("a measure: {other:?}"),
    };
    m.amount = Cents(m.amount.0 + 12_345);
    county
        .ledger()
        .apply(&[Change::Put(Record::Measure(m))], date(2026, 11, 24))
        .expect("change");
    assert_ne!(county.ledger().all_cells().expect("cells"), before);
    let refusals = || audit_log().matches("Revoked").count();
    let n = refusals();
    eventually("three more refused redials of the county", || {
        refusals() >= n + 3
    })
    .await;
    assert_eq!(
        cells_under(city.ledger(), "610102"),
        before,
        "nothing applied"
    );
    assert_eq!(
        city.ledger().child_acked(c("610102")).expect("acked"),
        acked
    );
    assert!(!connected(city, "610102"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_cannot_push_another_countys_cells() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let county = client(dir, &node("610102"));
    // Claiming another county in Hello.
    let ch = dial(&addr, &county).await.expect("dial");
    let own_key = seals(dir, "610102");
    let r = open_link(ch, "610103", &own_key, vec![cell_batch("610103", "610103")]).await;
    denied(
        "Hello 610103 as 610102",
        r.map(|_| ()),
        &["610102", "610103"],
    );
    assert_nothing_from(&city, "610103");
    // Its own Hello, then a batch holding a cell of 610103.
    let ch = dial(&addr, &county).await.expect("dial");
    let link = open_link(ch, "610102", &own_key, vec![cell_batch("610102", "610103")])
        .await
        .expect("welcomed as 610102");
    denied(
        "a cell of 610103",
        Err::<(), _>(link.refusal().await),
        &["610103"],
    );
    assert_nothing_from(&city, "610103");
    assert!(cells_under(city.ledger(), "610102").is_empty());
    assert_eq!(city.ledger().child_acked(c("610102")).expect("acked"), 0);
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_certificate_claiming_a_city_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    audit_log();
    let province = common::start_secure(dir, "61", None, true, SYNC).await;
    let addr = province.addr.clone().expect("addr");
    let county = client(dir, &node("610102"));
    let ch = dial(&addr, &county).await.expect("dial");
    let own_key = seals(dir, "610102");
    let r = open_link(ch, "6101", &own_key, vec![cell_batch("6101", "6101")]).await;
    denied("Hello 6101 as 610102", r.map(|_| ()), &["610102", "6101"]);
    // Its own division is not a child of the province either.
    let ch = dial(&addr, &county).await.expect("dial");
    let r = open_link(ch, "610102", &own_key, vec![cell_batch("610102", "610102")]).await;
    denied("Hello 610102 at 61", r.map(|_| ()), &["not a direct child"]);
    assert_nothing_from(&province, "6101");
    assert!(province.ledger().all_cells().expect("cells").is_empty());
    stop(province).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn city_cannot_issue_into_another_city() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t = tree(dir, false).await;
    let city_node = client(dir, &node("6101"));
    let city_op = client(dir, &person("city.op", "6101", Role::Operator));
    let mut at_province = tickets(t.province_addr(), &city_node).await;
    let r = at_province
        .issue(Some(c("6102")), vec![new_ticket("X1", "610202")])
        .await;
    denied("node 6101 issuing as 6102", grpc(r), &["6101", "6102"]);
    let mut at_province = tickets(t.province_addr(), &city_op).await;
    let r = at_province
        .issue(Some(c("61")), vec![new_ticket("X2", "6102")])
        .await;
    denied(
        "op of 6101 issuing as 61",
        grpc(r),
        &["may act only for 6101"],
    );
    // At its own city's node, as itself, into the other city.
    let mut at_city = tickets(t.city_addr(0), &city_op).await;
    let r = grpc(at_city.issue(None, vec![new_ticket("X3", "610202")]).await);
    refused("6101 issuing into 610202 at 6101", r);
    // At the other city's node, as itself.
    let mut at_other = tickets(t.city_addr(1), &city_op).await;
    let r = grpc(at_other.issue(None, vec![new_ticket("X4", "610202")]).await);
    refused("6101 issuing into 610202 at 6102", r);
    for n in [&t.province, &t.cities[0], &t.cities[1]] {
        let held = n.ledger().tickets().expect("tickets");
        assert!(held.is_empty(), "{}: {held:?}", n.ledger().division());
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_cannot_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t = tree(dir, true).await;
    let (prov, county) = (t.province.ledger(), t.county().ledger());
    let keys = vec![t.issue(dir, "V1", "610102", county).await];
    let key = parse_key(&keys[0]).expect("key");
    let one = std::slice::from_ref(&key);
    county
        .act_on_tickets(c("610102"), one, &Act::Accept)
        .expect("accept");
    county
        .act_on_tickets(c("610102"), one, &Act::Start)
        .expect("start");
    let note = "roof repaired".to_string();
    county
        .act_on_tickets(c("610102"), one, &Act::Rectify { note })
        .expect("rectify");
    eventually("rectified at the province", || {
        state_of(prov, &keys[0]) == Some(State::Rectified)
    })
    .await;
    let events = prov.ticket_events(&key).expect("events").len();

    let viewer = client(dir, &person("viewer.61", "61", Role::Viewer));
    let mut api = tickets(t.province_addr(), &viewer).await;
    let r = grpc(api.act(None, &keys, &Act::Verify).await);
    denied("a viewer verifying", r, &["may read but not act"]);
    let r = grpc(api.act(Some(c("61")), &keys, &Act::Verify).await);
    denied("a viewer verifying as 61", r, &["may read but not act"]);
    assert_eq!(state_of(prov, &keys[0]), Some(State::Rectified));
    assert_eq!(prov.ticket_events(&key).expect("events").len(), events);
    // A viewer reads it.
    let (rows, total) = api.list(&ListFilter::default()).await.expect("list");
    assert_eq!(total, 1);
    assert_eq!(
        (rows[0].key.as_str(), rows[0].state.as_str()),
        ("61/V1", "rectified")
    );
    // The audit log names who (the viewer), what, and why.
    let log = audit_log();
    let line = log
        .lines()
        .find(|l| l.contains("viewer.61") && l.contains("not act"));
    let line = line.unwrap_or_else(|| panic!("no audit line for the viewer in:\n{log}"));
    assert!(line.contains("verify") && line.contains("61/V1"), "{line}");
    println!("audit: {line}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_of_6101_cannot_act_on_a_6102_ticket() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t = tree(dir, false).await;
    let (prov, other) = (t.province.ledger(), t.cities[1].ledger());
    let keys = vec![t.issue(dir, "W1", "6102", other).await];
    let key = parse_key(&keys[0]).expect("key");
    let counts = |l: &Ledger| l.ticket_events(&key).expect("events").len();
    let (at_prov, at_other) = (counts(prov), counts(other));

    let op = client(dir, &person("city.op", "6101", Role::Operator));
    let mut api = tickets(t.city_addr(1), &op).await;
    let r = grpc(api.act(None, &keys, &Act::Accept).await);
    denied("6101 accepting at 6102's node", r, &["6101"]);
    let r = grpc(api.act(Some(c("6102")), &keys, &Act::Accept).await);
    denied("6101 accepting as 6102", r, &["may act only for 6101"]);
    let mut api = tickets(t.province_addr(), &op).await;
    let r = grpc(api.act(None, &keys, &Act::Supervise { on: true }).await);
    denied("6101 supervising at the province", r, &["6101"]);
    let r = grpc(api.act(Some(c("61")), &keys, &Act::Verify).await);
    denied("6101 verifying as 61", r, &["may act only for 6101"]);

    for l in [prov, other] {
        assert_eq!(state_of(l, &keys[0]), Some(State::Delivered));
        assert!(l.ticket(&key).unwrap().unwrap().supervised_by.is_none());
    }
    assert_eq!((counts(prov), counts(other)), (at_prov, at_other));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_client_against_secure_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let plain = addr.replace("https://", "http://");
    let expect_refused = |what: &str, s: tonic::Status| {
        assert_eq!(s.code(), Grpc::Unauthenticated, "{what}: {s:?}");
        assert!(s.message().contains("mutual TLS"), "{what}: {s:?}");
        println!("{what}: {}", s.message());
    };
    let mut sync = pb::sync_client::SyncClient::connect(plain.clone())
        .await
        .expect("TCP connect");
    let r = sync.status(pb::StatusRequest {}).await;
    expect_refused("plaintext Status", r.expect_err("status answered"));
    let ch = Channel::from_shared(plain.clone()).unwrap().connect().await;
    let batch = vec![cell_batch("610102", "610102")];
    let r = open_link(ch.expect("connect"), "610102", &Seals::insecure(), batch).await;
    expect_refused("plaintext Link", r.map(|_| ()).expect_err("link welcomed"));
    let mut api = TicketsClient::connect(&plain, None).await.expect("connect");
    let r = grpc(api.issue(None, vec![new_ticket("P1", "610102")]).await);
    expect_refused("plaintext Issue", r.expect_err("issued"));
    assert_nothing_from(&city, "610102");
    assert!(city.ledger().tickets().expect("tickets").is_empty());
    assert!(audit_log().contains("plaintext client"));
    stop(city).await;
}

// ------------------------------------------------------------------------------------------
// Gaps found while writing these tests (they failed, and were fixed in the product)
// ------------------------------------------------------------------------------------------

/// The audit lines naming the certificate `serial`.
fn audit_lines_of(serial: &str) -> Vec<String> {
    let needle = format!("cert=\"{serial}\"");
    audit_log()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_operator_cannot_keep_using_an_open_connection() {
    let _one_at_a_time = REVOKING.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let op = client(dir, &person("kept.op", "6101", Role::Operator));
    let mut api = tickets(&addr, &op).await;
    api.issue(None, vec![new_ticket("K1", "610102")])
        .await
        .expect("issue before the revocation");
    revoke(dir, "operator-kept.op");
    eventually_async("new connections with it are refused", || async {
        status_of(&addr, &op).await.is_err()
    })
    .await;
    let r = api.issue(None, vec![new_ticket("K2", "610102")]).await;
    let held = city.ledger().tickets().expect("tickets").len();
    stop(city).await;
    assert!(
        r.is_err(),
        "a revoked operator issued a ticket on a connection opened before the revocation \
         ({held} tickets held)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_refusals_are_audited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    // A county's batch holding another county's cell.
    let county = client(dir, &node("610102"));
    let ch = dial(&addr, &county).await.expect("dial");
    let link = open_link(
        ch,
        "610102",
        &seals(dir, "610102"),
        vec![cell_batch("610102", "610103")],
    )
    .await;
    let s = link.expect("welcomed").refusal().await;
    denied("a cell of 610103", Err::<(), _>(s), &[]);
    // An operator of the city acting for a county, which has a node of its own.
    let op = client(dir, &person("audit.op", "6101", Role::Operator));
    let r = tickets(&addr, &op)
        .await
        .issue(Some(c("610102")), vec![new_ticket("A1", "610102001")])
        .await;
    denied("6101 issuing as 610102 at 6101", grpc(r), &[]);
    stop(city).await;
    let (by_county, by_op) = (
        audit_lines_of(&county.own().serial),
        audit_lines_of(&op.own().serial),
    );
    let batch_audited = by_county.iter().any(|l| l.contains("610103"));
    let issue_audited = by_op.iter().any(|l| l.contains("610102"));
    assert!(
        batch_audited && issue_audited,
        "refusals without an audit line: batch {batch_audited}, issue {issue_audited} \
         (lines of the county: {by_county:?}; of the operator: {by_op:?})"
    );
}

// ------------------------------------------------------------------------------------------
// Signed envelopes and sealed ticket events (point 4), through a relay's certificate
// ------------------------------------------------------------------------------------------

/// `env` with one bit of one byte of its payload flipped, still decoding as the same kind of
/// envelope with the same signature (what a relay tampering with a batch would forward).
fn flip_one_byte(env: &pb::Envelope) -> pb::Envelope {
    use prost::Message;
    let bytes = env.encode_to_vec();
    let payload_end = bytes.len() - env.signature.len() - 2;
    for i in (0..payload_end).rev() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if let Ok(e) = pb::Envelope::decode(&b[..]) {
                if e.signature == env.signature
                    && matches!(e.payload, Some(Payload::Cells(_)))
                    && e != *env
                {
                    return e;
                }
            }
        }
    }
    panic!("no single-byte change of {env:?} decodes");
}

fn relay_client(dir: &Path, name: &str) -> ClientTls {
    client(dir, &Identity::Relay { name: name.into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_flipping_one_byte_of_a_batch_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let relay = relay_client(dir, "relay-a");
    let county = seals(dir, "610102");
    let signed = county.envelope(
        c("610102"),
        1,
        cell_batch("610102", "610102").payload.expect("payload"),
    );
    // The county's signed Hello passes the relay; its batch with one byte flipped does not.
    let ch = dial(&addr, &relay).await.expect("dial");
    let link = open_link(ch, "610102", &county, vec![flip_one_byte(&signed)])
        .await
        .expect("the county's Hello is welcomed through the relay");
    denied(
        "a flipped byte",
        Err::<(), _>(link.refusal().await),
        &["altered or forged", "610102"],
    );
    eventually("the refused link is closed", || {
        let live = city.handle.children.lock().unwrap();
        live.get(&c("610102")).is_none_or(|s| !s.connected)
    })
    .await;
    assert_nothing_from(&city, "610102");
    assert!(audit_log().contains("altered or forged"), "audited");

    // The relay cannot speak for the county: a Hello it signs itself, or an unsigned one.
    let relay_key = Seals::load(&common::tls_files(
        dir,
        &Identity::Relay {
            name: "relay-a".into(),
        },
    ))
    .expect("relay key");
    let ch = dial(&addr, &relay).await.expect("dial");
    let r = open_link(ch, "610102", &relay_key, vec![]).await;
    denied(
        "a Hello signed by the relay",
        r.map(|_| ()),
        &["relay-a", "610102"],
    );
    let ch = dial(&addr, &relay).await.expect("dial");
    let r = open_link(ch, "610102", &Seals::insecure(), vec![]).await;
    denied("an unsigned Hello", r.map(|_| ()), &["not signed"]);
    assert_nothing_from(&city, "610102");

    // The unaltered envelope through the same relay is applied, and the city shows the relay.
    let ch = dial(&addr, &relay).await.expect("dial");
    let mut link = open_link(ch, "610102", &county, vec![signed])
        .await
        .expect("welcomed");
    assert_eq!(link.next_ack().await.seq, 1);
    assert_eq!(
        cells_under(city.ledger(), "610102").values().sum::<i64>(),
        7
    );
    let via = city.handle.children.lock().unwrap()[&c("610102")]
        .via_relay
        .clone();
    assert_eq!(via.as_deref(), Some("relay-a"));
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_envelope_changes_nothing_and_is_logged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let tls = client(dir, &node("610102"));
    let county = seals(dir, "610102");
    let sign = |e: pb::Envelope| county.envelope(c(&e.origin), e.seq, e.payload.expect("payload"));
    let old = sign(cell_batch_at("610102", "610102", 7, 1, 1));
    let new = sign(cell_batch_at("610102", "610102", 9, 2, 2));
    let ch = dial(&addr, &tls).await.expect("dial");
    let mut link = open_link(ch, "610102", &county, vec![old.clone(), new])
        .await
        .expect("welcomed");
    assert_eq!(link.next_ack().await.seq, 1);
    assert_eq!(link.next_ack().await.seq, 2);
    drop(link);
    let before = cells_under(city.ledger(), "610102");
    assert_eq!(before.values().sum::<i64>(), 9);
    // The old envelope again, verbatim, on a new link: acked, and nothing changes.
    let ch = dial(&addr, &tls).await.expect("dial");
    let mut link = open_link(ch, "610102", &county, vec![old])
        .await
        .expect("welcomed");
    assert_eq!(link.next_ack().await.seq, 1);
    assert_eq!(cells_under(city.ledger(), "610102"), before);
    assert_eq!(city.ledger().child_acked(c("610102")).expect("acked"), 2);
    assert!(
        audit_log().contains("replayed envelope"),
        "the replay is logged"
    );
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_events_must_carry_their_creators_seal() {
    use bottomline::tickets::codec;
    use bottomline::tickets::{Event, EventId, EventKind, Severity, Ticket, TicketSource};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (city, addr) = city_alone(dir).await;
    let tls = client(dir, &node("610102"));
    let county = seals(dir, "610102");
    let other = seals(dir, "610103");
    let issue = |seq: u64, id: &str| Event {
        id: EventId {
            origin: c("610102"),
            seq,
        },
        ticket: bottomline::tickets::TicketKey::new(c("610102"), id),
        lamport: seq,
        at_unix_ms: bottomline::ledger::unix_ms_now(),
        actor: c("610102"),
        kind: EventKind::Issued(Ticket {
            issuer: c("610102"),
            id: id.into(),
            target: c("610102001"),
            category: "housing safety".into(),
            source: TicketSource::parse("inspection").expect("source"),
            severity: Severity::parse("high").expect("severity"),
            deadline: today_in_china(),
            description: "roof leaks".into(),
            household_code: None,
            parent: None,
            inventory: None,
            spot_check: None,
        }),
    };
    let batch = |events: Vec<pb::TicketEvent>, certs: Vec<Vec<u8>>, upto: u64| {
        envelope(
            "610102",
            upto,
            Payload::Tickets(pb::TicketBatch {
                events,
                upto,
                certificates: certs,
                ..Default::default()
            }),
        )
    };
    let sealed_by = |s: &Seals, e: &Event| {
        let body = codec::encode_body(e);
        let key = s.key().expect("key");
        let seal = bottomline::security::sign::seal(key, &[&body]);
        codec::to_pb(&body, seal.first())
    };
    let cert = |s: &Seals| s.certificate();
    let refused_with = |what: &'static str, words: &'static [&'static str], env: pb::Envelope| {
        let (addr, tls, county) = (addr.clone(), tls.clone(), county.clone());
        async move {
            let ch = dial(&addr, &tls).await.expect("dial");
            let link = open_link(ch, "610102", &county, vec![env])
                .await
                .expect("welcomed");
            let s = link.refusal().await;
            denied(what, Err::<(), _>(s), words);
        }
    };
    let e1 = issue(1, "S1");
    // Unsigned.
    let unsigned = codec::to_pb(&codec::encode_body(&e1), None);
    refused_with(
        "an unsigned event",
        &["not signed"],
        batch(vec![unsigned], vec![], 1),
    )
    .await;
    // Sealed by another county's node.
    let forged = sealed_by(&other, &e1);
    refused_with(
        "an event sealed by 610103",
        &["created by 610102", "610103"],
        batch(vec![forged], vec![cert(&other)], 1),
    )
    .await;
    // Its body changed after sealing.
    let mut altered = sealed_by(&county, &e1);
    let mut changed = e1.clone();
    changed.lamport = 99;
    altered.body = codec::encode_body(&changed);
    refused_with(
        "an altered event",
        &["altered or forged"],
        batch(vec![altered], vec![cert(&county)], 1),
    )
    .await;
    assert!(city.ledger().tickets().expect("tickets").is_empty());
    // Sealed by the county itself: stored with its seal, which the city can show to anyone.
    let good = sealed_by(&county, &e1);
    let ch = dial(&addr, &tls).await.expect("dial");
    let _link = open_link(
        ch,
        "610102",
        &county,
        vec![batch(vec![good.clone()], vec![cert(&county)], 1)],
    )
    .await
    .expect("welcomed");
    eventually("the sealed event is stored", || {
        city.ledger().tickets().expect("tickets").len() == 1
    })
    .await;
    stop(city).await;
}
