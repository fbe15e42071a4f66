//! Helpers of the relay's tests: a test CA, relay configs on 127.0.0.1:0, a raw child client
//! that speaks `Link` like a county, and a fake parent (a `Sync` server over mTLS with a city
//! certificate) that records every envelope it receives, acks on demand, pushes ticket
//! batches down, and can go down and come back on the same port.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::security::pki::Pki;
use bottomline::security::tls::{self, ClientTls, Expect, Peer, ServerTls, TlsFiles};
use bottomline::security::{Identity, Role};
use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// The parent every test relays to, and two of its counties.
pub const CITY: &str = "6101";
pub const COUNTY: &str = "610102";
pub const COUNTY2: &str = "610103";

pub fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

/// The files of `identity`'s certificate from the test CA in `dir/pki`.
pub fn files(dir: &Path, identity: &Identity) -> TlsFiles {
    let mut files = Pki::open_or_init(&dir.join("pki"), "Relay test")
        .and_then(|mut pki| pki.files_for(identity))
        .expect("test PKI");
    files.crl_reload_secs = 0.1;
    files
}

pub fn node(dir: &Path, division: &str) -> TlsFiles {
    files(
        dir,
        &Identity::Node {
            division: code(division),
        },
    )
}

pub fn operator(dir: &Path) -> TlsFiles {
    files(
        dir,
        &Identity::Operator {
            name: "ops".into(),
            division: code(CITY),
            role: Role::Operator,
        },
    )
}

pub fn relay_files(dir: &Path) -> TlsFiles {
    files(dir, &Identity::Relay { name: "r1".into() })
}

/// The TOML of a relay listening on 127.0.0.1:`port` with its data in `dir/relay`.
pub fn relay_toml(dir: &Path, parent: &str, port: u16) -> String {
    let tls = relay_files(dir);
    format!(
        "listen = \"127.0.0.1:{port}\"\nparent = \"{parent}\"\nparent_division = \"{CITY}\"\n\
         data_dir = {:?}\nconnect_timeout_secs = 1.0\nreconnect_secs = 0.05\n{}",
        dir.join("relay").display().to_string(),
        tls.to_toml_section()
    )
}

pub fn relay_config(dir: &Path, parent: &str) -> bottomline_relay::Config {
    bottomline_relay::Config::parse(&relay_toml(dir, parent, 0)).expect("relay config")
}

/// A channel to `url` with `files`' certificate (any server identity).
pub async fn dial(url: &str, files: &TlsFiles) -> Result<Channel, String> {
    let tls = ClientTls::load(files).map_err(|e| e.to_string())?;
    tls::channel(url, Some(&tls), Expect::Any, Duration::from_secs(5), None)
        .await
        .map_err(|e| e.to_string())
}

pub fn envelope(origin: &str, seq: u64, payload: Payload, signature: &[u8]) -> pb::Envelope {
    pb::Envelope {
        origin: origin.into(),
        seq,
        payload: Some(payload),
        signature: signature.to_vec(),
    }
}

/// A child's Hello as a county sends it (with a stand-in signature the relay must keep).
pub fn hello(division: &str, head: u64) -> pb::Envelope {
    let h = pb::Hello {
        division: division.into(),
        head,
        software: "relay test".into(),
        backlog: 3,
        ticket_backlog: 2,
        certificate: b"county certificate".to_vec(),
        sent_unix_ms: 1_790_000_000_000 + head as i64,
        ..Default::default()
    };
    envelope(
        division,
        0,
        Payload::Hello(h),
        format!("hello-sig-{head}").as_bytes(),
    )
}

/// A cell batch read up to `seq` with `floor`.
pub fn cells(origin: &str, seq: u64, floor: u64) -> pb::Envelope {
    let cell = pb::Cell {
        division: origin.into(),
        period: Some(pb::Period {
            kind: pb::period::Kind::Month as i32,
            year: 2026,
            index: 11,
        }),
        indicator: 1,
        dimension: 0,
        value: seq as i64,
        version: seq,
    };
    let batch = pb::CellBatch {
        cells: vec![cell],
        floor,
        ..Default::default()
    };
    envelope(
        origin,
        seq,
        Payload::Cells(batch),
        format!("cells-sig-{seq}").as_bytes(),
    )
}

/// A ticket batch of `origin`'s log up to `upto` (one sealed event).
pub fn tickets(origin: &str, upto: u64) -> pb::Envelope {
    let event = pb::TicketEvent {
        body: format!("event {origin}#{upto}").into_bytes(),
        seal: Some(pb::Seal {
            signer: vec![7; 32],
            signature: b"seal".to_vec(),
            index: 0,
            count: 1,
            path: vec![],
        }),
    };
    let batch = pb::TicketBatch {
        events: vec![event],
        upto,
        certificates: vec![b"signer certificate".to_vec()],
        ..Default::default()
    };
    envelope(
        origin,
        upto,
        Payload::Tickets(batch),
        format!("tickets-sig-{upto}").as_bytes(),
    )
}

/// A raw `Link` client, as a county speaks it.
pub struct Child {
    pub tx: mpsc::Sender<pb::Envelope>,
    pub inbound: Streaming<pb::Envelope>,
    pub welcome: pb::Welcome,
}

impl Child {
    /// Open a link with `hello` as the first message; the link once welcomed, or the refusal.
    pub async fn link(ch: Channel, first: pb::Envelope) -> Result<Child, Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("queue");
        let mut client = pb::sync_client::SyncClient::new(ch);
        let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::internal("closed before Welcome"))?;
        match first.payload {
            Some(Payload::Welcome(welcome)) => {
                assert_eq!(first.origin, CITY, "the Welcome comes in the parent's name");
                Ok(Child {
                    tx,
                    inbound,
                    welcome,
                })
            }
            other => Err(Status::internal(format!("not a Welcome: {other:?}"))),
        }
    }

    pub async fn send(&self, e: pb::Envelope) {
        self.tx.send(e).await.expect("link open");
    }

    /// The next message, within 30 s.
    pub async fn next(&mut self) -> pb::Envelope {
        tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
            .await
            .expect("a message within 30 s")
            .expect("link open")
            .expect("not closed")
    }
}

/// The relay's status as a reply.
pub async fn status(url: &str, files: &TlsFiles) -> Result<pb::StatusReply, String> {
    let ch = dial(url, files).await?;
    pb::sync_client::SyncClient::new(ch)
        .status(pb::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// The status line of one child.
pub fn child_of<'a>(s: &'a pb::StatusReply, division: &str) -> Option<&'a pb::ChildStatus> {
    s.children.iter().find(|c| c.division == division)
}

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);
/// How long a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Poll `f` every [`POLL`] until it returns true; fail after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut f: F)
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

/// What the fake parent saw and how it behaves.
#[derive(Default)]
pub struct ParentLog {
    /// Every envelope received, with the child its link is for (from its Hello).
    pub received: Vec<(String, pb::Envelope)>,
    /// The identity of each link's caller.
    pub callers: Vec<String>,
    /// Welcome answered per child (default: all zero).
    pub welcome: HashMap<String, pb::Welcome>,
    /// Senders of the open links, per child.
    links: HashMap<String, mpsc::Sender<Result<pb::Envelope, Status>>>,
    /// Ack what arrives.
    pub acking: bool,
}

/// A fake parent (city 6101) over mTLS.
#[derive(Clone)]
pub struct FakeParent {
    pub log: Arc<Mutex<ParentLog>>,
    /// False: links are refused and the open ones end.
    up: Arc<watch::Sender<bool>>,
    pub url: String,
}

impl FakeParent {
    /// Start it on a free port of 127.0.0.1, acking.
    pub async fn start(dir: &Path) -> FakeParent {
        let tls = ServerTls::load(&node(dir, CITY)).expect("parent TLS");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let parent = FakeParent {
            log: Arc::new(Mutex::new(ParentLog {
                acking: true,
                ..Default::default()
            })),
            up: Arc::new(watch::channel(true).0),
            url,
        };
        let svc = pb::sync_server::SyncServer::new(parent.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tls::incoming(listener, Some(tls))),
        );
        parent
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, ParentLog> {
        self.log.lock().unwrap()
    }

    /// Go down (refuse links, end the open ones) or come back.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    pub fn set_acking(&self, acking: bool) {
        self.log().acking = acking;
    }

    /// Envelopes received for `child` other than Hellos.
    pub fn batches(&self, child: &str) -> Vec<pb::Envelope> {
        self.log()
            .received
            .iter()
            .filter(|(c, e)| c == child && !matches!(e.payload, Some(Payload::Hello(_))))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Hellos received for `child`.
    pub fn hellos(&self, child: &str) -> Vec<pb::Envelope> {
        self.log()
            .received
            .iter()
            .filter(|(c, e)| c == child && matches!(e.payload, Some(Payload::Hello(_))))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Push an envelope down the open link of `child`; false when there is none.
    pub async fn push(&self, child: &str, e: pb::Envelope) -> bool {
        let tx = self.log().links.get(child).cloned();
        match tx {
            Some(tx) => tx.send(Ok(e)).await.is_ok(),
            None => false,
        }
    }

    pub fn linked(&self, child: &str) -> bool {
        self.log()
            .links
            .get(child)
            .is_some_and(|tx| !tx.is_closed())
    }
}

#[tonic::async_trait]
impl pb::sync_server::Sync for FakeParent {
    type LinkStream = ReceiverStream<Result<pb::Envelope, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        if !*self.up.borrow() {
            return Err(Status::unavailable("the fake parent is down"));
        }
        let caller = request
            .extensions()
            .get::<Peer>()
            .and_then(|p| p.cert.clone())
            .map(|c| c.identity.to_string())
            .unwrap_or_default();
        let mut inbound = request.into_inner();
        let hello = inbound
            .message()
            .await?
            .ok_or(Status::cancelled("no Hello"))?;
        let child = match &hello.payload {
            Some(Payload::Hello(h)) => h.division.clone(),
            _ => return Err(Status::invalid_argument("no Hello")),
        };
        let (tx, rx) = mpsc::channel(64);
        let welcome = {
            let mut log = self.log();
            log.callers.push(caller);
            log.received.push((child.clone(), hello));
            log.links.insert(child.clone(), tx.clone());
            log.welcome.get(&child).cloned().unwrap_or(pb::Welcome {
                division: CITY.into(),
                ..Default::default()
            })
        };
        tx.send(Ok(envelope(CITY, 0, Payload::Welcome(welcome), b"")))
            .await
            .map_err(|_| Status::cancelled("closed"))?;
        let (log, mut up) = (self.log.clone(), self.up.subscribe());
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = inbound.message() => m,
                    _ = async { up.wait_for(|u| !*u).await.map(|_| ()) } => {
                        let _ = tx.send(Err(Status::unavailable("the fake parent went down"))).await;
                        break;
                    }
                };
                let Ok(Some(env)) = m else { break };
                let ack = {
                    let mut log = log.lock().unwrap();
                    log.received.push((child.clone(), env.clone()));
                    match (&env.payload, log.acking) {
                        (Some(Payload::Cells(_)), true) => Some(Payload::Ack(pb::Ack {
                            origin: env.origin.clone(),
                            seq: env.seq,
                        })),
                        (Some(Payload::Tickets(b)), true) => {
                            Some(Payload::TicketAck(pb::TicketAck { upto: b.upto }))
                        }
                        _ => None,
                    }
                };
                if let Some(a) = ack {
                    if tx.send(Ok(envelope(CITY, 0, a, b""))).await.is_err() {
                        break;
                    }
                }
            }
            let mut log = log.lock().unwrap();
            if log.links.get(&child).is_some_and(|t| t.same_channel(&tx)) {
                log.links.remove(&child);
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        Err(Status::unimplemented("fake parent"))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        Err(Status::unimplemented("fake parent"))
    }

    async fn report(
        &self,
        _request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportReply>, Status> {
        Err(Status::unimplemented("fake parent"))
    }
}

// ------------------------------------------------------------------------------------------
// The relay binary as a process
// ------------------------------------------------------------------------------------------

use std::process::{Child as Process, Command, Stdio};
use std::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_bottomline-relay");

/// A free port of 127.0.0.1 (bound and released: the relay binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay process, killed (SIGKILL) and reaped when dropped: a failing test leaves none
/// behind.
pub struct RelayProcess(Process);

impl std::ops::Deref for RelayProcess {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for RelayProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn spawn(config: &Path, log: &Path) -> RelayProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    RelayProcess(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bottomline-relay"),
    )
}

/// Wait until the relay answers `Status`.
pub async fn ready(url: &str, dir: &Path, p: &mut RelayProcess) -> pb::StatusReply {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = status(url, &operator(dir)).await {
            return s;
        }
        assert!(p.try_wait().unwrap().is_none(), "the relay exited");
        assert!(Instant::now() < deadline, "the relay did not come up");
        tokio::time::sleep(POLL).await;
    }
}
