//! The gRPC edge: the only module that converts `bottomline_proto` types.
//!
//! - [`SyncService`] is the parent's side of the child→parent link (`Link`) and the drill-down
//!   query (`Stats`).
//! - [`uplink`] is the child's side: it dials the parent, learns where the parent's durable
//!   copy ends (`Welcome.acked`), and streams its change log from there, woken by every flush.
//!
//! Exactly-once effect: cells travel as absolute values with the origin's version; the parent
//! keeps the higher version, so duplicates, replays and reordering never double count. The
//! parent acks a batch only after `Ledger::apply_replicas` flushed it together with the
//! child's log position, and a reconnecting child resumes from that position.

pub mod auth;
mod client;
pub mod envelope;
pub mod import_api;
pub mod spotcheck_api;
pub mod spotcheck_client;
mod stats_api;
mod ticket_flow;
pub mod tickets_api;
pub mod tickets_client;
mod uplink;
pub mod workflow_api;
pub mod workflow_client;

use ticket_flow::{receive_tickets, send_tickets, Out};
pub use uplink::{uplink, UplinkState};

pub use client::{
    fetch_report, fetch_stats, fetch_status, import_files, NodeStatus, RemoteImport,
    RemoteImported, ReportQuery,
};

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::cells::Replica;
use crate::config::SyncConfig;
use crate::division::Code;
use crate::ledger::{CellValue, Ledger, LedgerError};
use crate::period::{Kind, Period};
use crate::security::tls::{self, ClientTls, Expect, Revoked, TlsFiles};
use crate::stats::{CellKey, Stored};
use auth::Caller;
use envelope::{Refusal, Seals};

/// What a parent knows about one child's link.
#[derive(Clone, Debug, Default)]
pub struct ChildState {
    /// Last message received from the child.
    pub last_contact: Option<SystemTime>,
    /// The child's change-log position this node has made durable.
    pub acked: u64,
    /// The child's change-log head as it last reported it.
    pub head: u64,
    /// Blocks the child still had to deliver, as it last reported (heartbeat).
    pub backlog: u64,
    /// Ticket events the child still had to deliver, as it last reported (heartbeat).
    pub ticket_backlog: u64,
    /// A link is open now.
    pub connected: bool,
    /// Links opened so far (each link's number): a link that ends clears `connected` only if
    /// no newer link of the child opened meanwhile (a restarted child's new link can be up
    /// before its old, half-open one is noticed gone).
    pub links: u64,
    /// The relay the open (or last) link passes through, by its certificate name.
    pub via_relay: Option<String>,
    /// When the child's delivered position (cells or ticket events) last moved here, or when
    /// it was first heard from.
    pub progress_at: Option<SystemTime>,
}

/// Children's link states, shared between the service and status reporting.
pub type Children = Arc<Mutex<HashMap<Code, ChildState>>>;

/// The parent side of the sync protocol, the stats query and the status report.
pub struct SyncService {
    ledger: Arc<Ledger>,
    children: Children,
    uplink: Arc<Mutex<UplinkState>>,
    silent_after: Duration,
    stalled_after: Duration,
    stop: watch::Receiver<bool>,
    /// Revoked certificate serials (mTLS); `None` on an insecure node.
    revoked: Option<watch::Receiver<Revoked>>,
    /// Signing and checking envelopes and ticket events.
    seals: Arc<Seals>,
    /// The node's last check of itself (shown in `Status`).
    self_check: SelfCheckState,
}

/// The outcome of a node's last check of itself and when it ran (Unix ms).
#[derive(Clone, Debug)]
pub struct SelfCheck {
    /// When it finished.
    pub at_unix_ms: i64,
    /// What it found.
    pub report: crate::ledger::CheckReport,
}

/// Shared between the background check and `Status`.
pub type SelfCheckState = Arc<Mutex<Option<SelfCheck>>>;

impl SyncService {
    /// Serve `ledger`, recording link states in `children`; `uplink` is this node's own link
    /// state (reported by `Status`), `sync` says when a quiet child counts as silent and a child that does not move as stalled.
    /// When `stop` turns true every open link finishes the batch it is applying and ends, so
    /// that the server's graceful shutdown is not held open by children's long-lived streams.
    /// `revoked` (mTLS nodes) publishes the revoked serials: a link whose certificate is
    /// revoked while it is open ends. `seals` signs what this node sends down and checks
    /// what its children send (see [`envelope`]).
    pub fn new(
        ledger: Arc<Ledger>,
        children: Children,
        uplink: Arc<Mutex<UplinkState>>,
        sync: &SyncConfig,
        stop: watch::Receiver<bool>,
        revoked: Option<watch::Receiver<Revoked>>,
        seals: Arc<Seals>,
    ) -> Self {
        SyncService {
            ledger,
            children,
            uplink,
            silent_after: sync.silent_after(),
            stalled_after: sync.stalled_after(),
            stop,
            revoked,
            seals,
            self_check: Default::default(),
        }
    }

    /// Report the background self-check kept in `state` in `Status`.
    pub fn with_self_check(mut self, state: SelfCheckState) -> Self {
        self.self_check = state;
        self
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        Caller::of(request, self.revoked.as_ref())
    }
}

/// One child's link as `Status` reports it: durable position merged with the live state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildReport {
    /// The child.
    pub division: Code,
    /// A link is open now.
    pub connected: bool,
    /// Last contact (Unix ms; 0 = never).
    pub last_contact_unix_ms: i64,
    /// Durable floor of the child's log here.
    pub acked: u64,
    /// The child's head as last reported.
    pub head: u64,
    /// Blocks still to deliver, as last reported.
    pub backlog: u64,
    /// Quiet for longer than the configured limit (or never heard from since it was known).
    pub silent: bool,
    /// Tickets up: the child's ticket-log position stored here.
    pub ticket_acked_up: u64,
    /// Tickets up: ticket events the child still has to deliver, as it last reported.
    pub ticket_backlog_up: u64,
    /// Tickets down: this node's ticket-log position the child acked.
    pub ticket_acked_down: u64,
    /// Tickets down: this node's ticket events after `ticket_acked_down` that are for the
    /// child (not yet delivered, or not yet acked).
    pub ticket_backlog_down: u64,
    /// `ticket_backlog_down` is a lower bound: the child's cursor is more than
    /// [`crate::ledger::MAX_BACKLOG_SCAN`] entries behind (only the most recent are counted).
    pub ticket_backlog_down_at_least: bool,
    /// The relay the child's link passes through (its certificate name), if any.
    pub via_relay: Option<String>,
    /// It has something to deliver and its delivered position has not moved for longer than
    /// the configured limit, whatever heartbeats arrive.
    pub stalled: bool,
    /// What a relay holds for this child (only in a relay's status).
    pub custody: Option<Custody>,
}

/// A relay's custody for one child, as its `Status` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Custody {
    /// Envelopes from the child not yet acked by the parent.
    pub up: u64,
    /// Envelopes from the parent not yet acked by the child.
    pub down: u64,
    /// The relay's link to the parent for this child is open.
    pub parent_connected: bool,
}

impl ChildReport {
    fn new(division: Code) -> ChildReport {
        ChildReport {
            division,
            connected: false,
            last_contact_unix_ms: 0,
            acked: 0,
            head: 0,
            backlog: 0,
            silent: false,
            ticket_acked_up: 0,
            ticket_backlog_up: 0,
            ticket_acked_down: 0,
            ticket_backlog_down: 0,
            ticket_backlog_down_at_least: false,
            via_relay: None,
            stalled: false,
            custody: None,
        }
    }
}

/// The children's link states: every child that ever delivered (durable) or is linked now,
/// with both durable cursors of its ticket link and the backlog up as the child last reported
/// it. The backlog down needs a pass over this node's ticket log: [`fill_ticket_backlogs`]
/// adds it where it is shown.
pub fn child_reports(
    ledger: &Ledger,
    children: &Children,
    silent_after: Duration,
    stalled_after: Duration,
) -> Result<Vec<ChildReport>, LedgerError> {
    let stalled_ms = stalled_after.as_millis() as i64;
    let mut progress: std::collections::BTreeMap<Code, i64> = Default::default();
    let mut out: std::collections::BTreeMap<Code, ChildReport> = Default::default();
    for k in ledger.known_children()? {
        out.insert(
            k.division,
            ChildReport {
                last_contact_unix_ms: k.last_batch_unix_ms,
                acked: k.acked,
                head: k.acked,
                ..ChildReport::new(k.division)
            },
        );
    }
    let live = children.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (code, st) in live {
        let r = out.entry(code).or_insert_with(|| ChildReport::new(code));
        r.connected = st.connected;
        r.ticket_backlog_up = st.ticket_backlog;
        if let Some(t) = st.last_contact {
            let ms = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            r.last_contact_unix_ms = r.last_contact_unix_ms.max(ms);
        }
        r.acked = r.acked.max(st.acked);
        r.head = r.head.max(st.head);
        r.backlog = st.backlog;
        r.via_relay = st.via_relay;
        if let Some(t) = st.progress_at {
            let ms = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            progress.insert(code, ms);
        }
    }
    let now = crate::ledger::unix_ms_now();
    let limit = silent_after.as_millis() as i64;
    for r in out.values_mut() {
        r.ticket_acked_up = ledger.ticket_up_acked(r.division)?;
        r.ticket_acked_down = ledger.ticket_down_acked(r.division)?;
        r.silent = r.last_contact_unix_ms == 0 || now - r.last_contact_unix_ms > limit;
        r.stalled = (r.backlog > 0 || r.ticket_backlog_up > 0)
            && progress
                .get(&r.division)
                .is_some_and(|t| now - t > stalled_ms);
    }
    Ok(out.into_values().collect())
}

/// Count the ticket events waiting for each of `reports`' children (one pass over this
/// node's ticket log from the lowest cursor).
pub fn fill_ticket_backlogs(
    ledger: &Ledger,
    reports: &mut [ChildReport],
) -> Result<(), LedgerError> {
    let cursors: Vec<(Code, u64)> = reports
        .iter()
        .map(|r| (r.division, r.ticket_acked_down))
        .collect();
    for (r, b) in reports
        .iter_mut()
        .zip(ledger.ticket_backlog_down(&cursors)?)
    {
        r.ticket_backlog_down = b;
        r.ticket_backlog_down_at_least = ledger.ticket_head().saturating_sub(r.ticket_acked_down)
            > crate::ledger::MAX_BACKLOG_SCAN;
    }
    Ok(())
}

fn to_status(e: LedgerError) -> Status {
    match e {
        LedgerError::NotInSubtree { .. } => Status::permission_denied(e.to_string()),
        LedgerError::Refused(_) | LedgerError::Overflow(_) | LedgerError::BadReplica(_) => {
            Status::invalid_argument(e.to_string())
        }
        other => Status::internal(other.to_string()),
    }
}

fn kind_to_pb(k: Kind) -> pb::period::Kind {
    match k {
        Kind::IsoYear => pb::period::Kind::IsoYear,
        Kind::Week => pb::period::Kind::Week,
        Kind::Month => pb::period::Kind::Month,
        Kind::Quarter => pb::period::Kind::Quarter,
        Kind::Half => pb::period::Kind::Half,
        Kind::Year => pb::period::Kind::Year,
    }
}

fn kind_from_pb(k: i32) -> Option<Kind> {
    Some(match pb::period::Kind::try_from(k).ok()? {
        pb::period::Kind::IsoYear => Kind::IsoYear,
        pb::period::Kind::Week => Kind::Week,
        pb::period::Kind::Month => Kind::Month,
        pb::period::Kind::Quarter => Kind::Quarter,
        pb::period::Kind::Half => Kind::Half,
        pb::period::Kind::Year => Kind::Year,
        pb::period::Kind::Unspecified => return None,
    })
}

/// Encode a cell for the wire.
pub fn cell_to_pb(key: &CellKey, v: &CellValue) -> pb::Cell {
    pb::Cell {
        division: key.division.to_string(),
        period: Some(pb::Period {
            kind: kind_to_pb(key.period.kind()) as i32,
            year: key.period.year() as u32,
            index: key.period.index() as u32,
        }),
        indicator: key.indicator as u32,
        dimension: key.dim as u32,
        value: v.value,
        version: v.version,
    }
}

/// Decode a cell from the wire; the error names what is wrong.
pub fn cell_from_pb(c: &pb::Cell) -> Result<Replica, String> {
    let division = Code::parse(&c.division)?;
    let p = c.period.as_ref().ok_or("cell without a period")?;
    let kind = kind_from_pb(p.kind).ok_or_else(|| format!("unknown period kind {}", p.kind))?;
    let year = i16::try_from(p.year).map_err(|_| format!("year {} out of range", p.year))?;
    let index = u16::try_from(p.index).map_err(|_| format!("index {} out of range", p.index))?;
    let period = Period::new(kind, year, index)?;
    let indicator = u8::try_from(c.indicator)
        .ok()
        .and_then(Stored::from_code)
        .ok_or_else(|| format!("unknown indicator {}", c.indicator))?;
    let dim =
        u8::try_from(c.dimension).map_err(|_| format!("dimension {} out of range", c.dimension))?;
    Ok(Replica {
        key: CellKey {
            division,
            period,
            indicator,
            dim,
        },
        value: c.value,
        version: c.version,
    })
}

/// A store identity for the wire.
pub fn identity_to_pb(id: &crate::lineage::StoreIdentity) -> pb::StoreIdentity {
    pb::StoreIdentity {
        store_id: id.store_id.to_vec(),
        lineage: id
            .lineage
            .iter()
            .map(|i| pb::Incarnation {
                id: i.id,
                cell_start: i.cell_start,
                ticket_start: i.ticket_start,
            })
            .collect(),
    }
}

/// A store identity from the wire (`None` when absent or malformed: nothing is checked).
/// A `Welcome` on the wire (`returns_upto` stays at the parent: it steers its sender down).
pub fn welcome_to_pb(w: &crate::link::Welcome) -> pb::Welcome {
    pb::Welcome {
        division: w.division.to_string(),
        acked: w.acked,
        down_acked: w.down_acked,
        resume_pos: w.resume_pos,
        ticket_acked: w.ticket_acked,
        origin_seq: w.origin_seq,
        ticket_clock: w.ticket_clock,
        reset: w.reset.clone(),
    }
}

/// A `Welcome` from the wire; the error names a bad division.
pub fn welcome_from_pb(w: pb::Welcome) -> Result<crate::link::Welcome, String> {
    Ok(crate::link::Welcome {
        division: Code::parse(&w.division)?,
        acked: w.acked,
        resume_pos: w.resume_pos.max(w.acked),
        ticket_acked: w.ticket_acked,
        down_acked: w.down_acked,
        origin_seq: w.origin_seq,
        ticket_clock: w.ticket_clock,
        reset: w.reset,
        returns_upto: 0,
    })
}

pub fn identity_from_pb(id: Option<&pb::StoreIdentity>) -> Option<crate::lineage::StoreIdentity> {
    let id = id?;
    Some(crate::lineage::StoreIdentity {
        store_id: id.store_id.as_slice().try_into().ok()?,
        lineage: id
            .lineage
            .iter()
            .map(|i| crate::lineage::Incarnation {
                id: i.id,
                cell_start: i.cell_start,
                ticket_start: i.ticket_start,
            })
            .collect(),
    })
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<pb::Envelope, Status>> + Send>>;

fn envelope(origin: Code, seq: u64, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: origin.to_string(),
        seq,
        payload: Some(payload),
        signature: Vec::new(),
    }
}

#[tonic::async_trait]
impl pb::sync_server::Sync for SyncService {
    type LinkStream = EnvelopeStream;

    async fn link(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let caller = self.caller(&request)?;
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the link closed before Hello"))?;
        let Some(Payload::Hello(hello)) = first.payload.clone() else {
            return Err(Status::invalid_argument(
                "the first message of a link must be Hello",
            ));
        };
        let claimed = Code::parse(&hello.division).map_err(Status::invalid_argument)?;
        let revoked_now = self.revoked.as_ref().map(|r| r.borrow().clone());
        let signer = self
            .seals
            .hello_signer(&first, &hello, revoked_now.as_ref())
            .map_err(|r| caller.audited(&format!("open a link as {claimed}"), r.status()))?;
        let child = caller.link_division(claimed, "open a link", signer.is_some())?;
        let via_relay = caller.relay_name().map(str::to_string);
        let me = self.ledger.division();
        if child.parent() != Some(me) {
            return Err(caller.deny(
                &format!("open a link as {child}"),
                &format!("{child} is not a direct child of {me}"),
            ));
        }
        // A child whose store was wiped or restored from an older backup: what this node
        // holds of it is replaced before anything else happens on the link.
        let identity = identity_from_pb(hello.identity.as_ref());
        let l = self.ledger.clone();
        let opened =
            tokio::task::spawn_blocking(move || crate::link::open(&l, child, identity.as_ref()))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(to_status)?;
        let welcome = match opened {
            crate::link::Opened::Welcome(w) => w,
            crate::link::Opened::Stale(why) => {
                return Err(Status::failed_precondition(format!("{child}: {why}")));
            }
        };
        let (acked, resume_pos) = (welcome.acked, welcome.resume_pos);
        let link_no;
        tracing::info!(%child, acked, resume_pos, head = hello.head, via_relay = via_relay.as_deref().unwrap_or("-"), "child connected");
        {
            let mut c = self.children.lock().unwrap_or_else(|p| p.into_inner());
            let st = c.entry(child).or_default();
            st.last_contact = Some(SystemTime::now());
            st.acked = acked;
            st.head = hello.head;
            st.backlog = hello.backlog;
            st.ticket_backlog = hello.ticket_backlog;
            st.connected = true;
            st.links += 1;
            link_no = st.links;
            st.via_relay = via_relay;
            // Counted from the first contact: reconnecting does not reset a stall.
            st.progress_at.get_or_insert_with(SystemTime::now);
        }
        let (tx, rx) = mpsc::channel(16);
        let (down_acked, returns_upto) = (welcome.down_acked, welcome.returns_upto);
        let welcome = welcome_to_pb(&welcome);
        tx.send(Ok(envelope(me, 0, Payload::Welcome(welcome))))
            .await
            .map_err(|_| Status::cancelled("link closed"))?;
        let ledger = self.ledger.clone();
        let children = self.children.clone();
        let mut stop = self.stop.clone();
        // The link ends when the peer's certificate (the child's, or the relay's) or the
        // certificate that signs the child's envelopes is revoked.
        let serials: Vec<String> = caller
            .serial()
            .map(str::to_string)
            .into_iter()
            .chain(signer.as_ref().map(|s| s.info.serial.clone()))
            .collect();
        let revoked = self.revoked.clone().map(|r| (r, serials));
        let seals = self.seals.clone();
        // Ticket events for the child's subtree flow down from where the child acked.
        let (down_tx, down_rx) = watch::channel(down_acked);
        let mut down = tokio::spawn(send_tickets(
            ledger.clone(),
            child,
            down_acked,
            Out::Down(tx.clone()),
            down_rx,
            seals.clone(),
            returns_upto,
        ));
        tokio::spawn(async move {
            let result = tokio::select! {
                r = serve_link(Link { ledger: &ledger, children: &children, signer, seals: &seals, cells: crate::link::CellReceiver::new(child, (acked, resume_pos)) }, &mut inbound, &tx, &down_tx, &mut stop) => {
                    r.map_err(|e| caller.audited(&format!("deliver on the link of {child}"), e))
                }
                () = until_revoked(revoked) => Err(caller.deny(
                    "keep a link open",
                    "the certificate was revoked while the link was open",
                )),
                // The sender of ticket events down must not fail unseen: the link ends with
                // its cause, and the child's redial starts a new one.
                r = &mut down => Err(match r {
                    Ok(Ok(())) => Status::unavailable("the ticket sender stopped; reconnect"),
                    Ok(Err(e)) => Status::internal(format!("sending ticket events to {child} failed: {e}; reconnect")),
                    Err(e) => Status::internal(format!("the ticket sender to {child} failed: {e}; reconnect")),
                }),
            };
            down.abort();
            if let Err(e) = &result {
                if *stop.borrow() {
                    tracing::info!(%child, "link closed: this node is shutting down");
                } else {
                    tracing::warn!(%child, cause = %e, "link ended with an error");
                }
                let _ = tx.send(Err(e.clone())).await;
            }
            let mut c = children.lock().unwrap_or_else(|p| p.into_inner());
            let st = c.entry(child).or_default();
            if st.links == link_no {
                st.connected = false;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        self.caller(&request)?
            .may_see_node(self.ledger.division(), "read the node's status")?;
        let ledger = self.ledger.clone();
        let children = self.children.clone();
        let (silent_after, stalled_after) = (self.silent_after, self.stalled_after);
        let mut up = self
            .uplink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // The uplink's floor and ticket cursor are known once a Welcome came in: its backlogs
        // are counted now (the heartbeat's counts may be older, and there are none while the
        // link is down).
        let up_from = (up.links > 0).then_some((up.floor, up.ticket_acked));
        let (reports, up_backlog) = tokio::task::spawn_blocking(move || {
            let mut reports = child_reports(&ledger, &children, silent_after, stalled_after)?;
            fill_ticket_backlogs(&ledger, &mut reports)?;
            let up_backlog = up_from
                .map(|(floor, cursor)| {
                    Ok::<_, LedgerError>((
                        ledger.backlog(floor)?,
                        ledger.ticket_backlog_up(cursor)?,
                    ))
                })
                .transpose()?;
            Ok::<_, LedgerError>((reports, up_backlog))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(to_status)?;
        if let Some((blocks, events)) = up_backlog {
            up.backlog = blocks;
            up.ticket_backlog = events;
        }
        let reg = self.ledger.registry();
        let name = |c: Code| reg.get(c).map(|d| d.name.clone()).unwrap_or_default();
        Ok(Response::new(pb::StatusReply {
            division: self.ledger.division().to_string(),
            name: name(self.ledger.division()),
            head: self.ledger.durable_seq(),
            children: reports
                .into_iter()
                .map(|r| pb::ChildStatus {
                    division: r.division.to_string(),
                    connected: r.connected,
                    last_contact_unix_ms: r.last_contact_unix_ms,
                    acked: r.acked,
                    head: r.head,
                    backlog: r.backlog,
                    silent: r.silent,
                    name: name(r.division),
                    ticket_acked_up: r.ticket_acked_up,
                    ticket_backlog_up: r.ticket_backlog_up,
                    ticket_acked_down: r.ticket_acked_down,
                    ticket_backlog_down: r.ticket_backlog_down,
                    ticket_backlog_down_at_least: r.ticket_backlog_down_at_least,
                    via_relay: r.via_relay.unwrap_or_default(),
                    stalled: r.stalled,
                    custody_up: 0,
                    custody_down: 0,
                    parent_connected: false,
                })
                .collect(),
            uplink: Some(pb::UplinkStatus {
                parent: up.parent.clone().unwrap_or_default(),
                connected: up.connected,
                acked: up.acked,
                backlog: up.backlog,
                last_error: up.last_error.clone().unwrap_or_default(),
                ticket_acked: up.ticket_acked,
                ticket_backlog: up.ticket_backlog,
            }),
            silent_child_secs: self.silent_after.as_secs(),
            stalled_child_secs: self.stalled_after.as_secs_f64(),
            software: SOFTWARE.to_string(),
            ticket_head: self.ledger.ticket_head(),
            relay: String::new(),
            self_check: self
                .self_check
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(self_check_to_pb),
        }))
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        stats_api::stats(self.ledger.clone(), &caller, req)
            .await
            .map(Response::new)
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportReply>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        stats_api::report(self.ledger.clone(), &caller, req)
            .await
            .map(Response::new)
    }
}

fn self_check_to_pb(c: &SelfCheck) -> pb::SelfCheck {
    pb::SelfCheck {
        at_unix_ms: c.at_unix_ms,
        ok: c.report.ok(),
        what: c.report.what.clone(),
        cells: c.report.cells as u64,
        differing: c.report.differing as u64,
        first: c.report.first.iter().map(ToString::to_string).collect(),
    }
}

/// Resolve once one of `serials` appears among the revoked serials (never without them).
async fn until_revoked(revoked: Option<(watch::Receiver<Revoked>, Vec<String>)>) {
    let Some((mut rx, serials)) = revoked else {
        return std::future::pending().await;
    };
    if serials.is_empty() {
        return std::future::pending().await;
    }
    if rx
        .wait_for(|r| serials.iter().any(|s| r.contains(s)))
        .await
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}

/// One child's link at the parent.
struct Link<'a> {
    ledger: &'a Arc<Ledger>,
    children: &'a Children,
    /// The child's certificate, from its signed Hello (`None` on an insecure node): every
    /// envelope it sends is checked against it.
    signer: Option<Arc<crate::security::sign::Signer>>,
    seals: &'a Arc<Seals>,
    /// Applies the child's cell batches (from the (floor, pos) sent in `Welcome`).
    cells: crate::link::CellReceiver,
}

/// Apply the child's batches in order, acking each after it is durable.
async fn serve_link(
    link: Link<'_>,
    inbound: &mut Streaming<pb::Envelope>,
    tx: &mpsc::Sender<Result<pb::Envelope, Status>>,
    down_acked: &watch::Sender<u64>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Status> {
    let Link {
        ledger,
        children,
        signer,
        seals,
        mut cells,
    } = link;
    let me = ledger.division();
    let child = cells.child();
    loop {
        // Stop between messages only: a batch being applied is finished (and acked) first.
        let next = tokio::select! {
            m = inbound.message() => m?,
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                return Err(Status::unavailable("the parent is shutting down; reconnect later"));
            }
        };
        let Some(mut env) = next else { break };
        let signed = matches!(env.payload, Some(Payload::Cells(_) | Payload::Hello(_)));
        if let (true, Some(s)) = (signed, &signer) {
            envelope::verify_envelope(&mut env, s).map_err(Refusal::status)?;
        }
        match env.payload {
            Some(Payload::Cells(batch)) => {
                let (upto, pos) = (batch.floor, env.seq);
                let replicas = batch
                    .cells
                    .iter()
                    .map(cell_from_pb)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Status::invalid_argument)?;
                let l = ledger.clone();
                let (c, received) = tokio::task::spawn_blocking(move || {
                    let r = cells.apply(&l, &replicas, upto, pos);
                    (cells, r)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
                cells = c;
                let received = received.map_err(|e| {
                    tracing::warn!(%child, cause = %e, "refused a batch");
                    to_status(e)
                })?;
                if received.replay {
                    // Applying it changed nothing (every cell keeps its higher version).
                    tracing::warn!(target: "audit", %child, floor = upto, pos,
                        "replayed envelope: a cell batch already applied; nothing changes");
                }
                {
                    let mut c = children.lock().unwrap_or_else(|p| p.into_inner());
                    let st = c.entry(child).or_default();
                    st.last_contact = Some(SystemTime::now());
                    if received.progressed {
                        st.progress_at = Some(SystemTime::now());
                    }
                    st.acked = st.acked.max(upto);
                    st.head = st.head.max(upto);
                }
                let ack = pb::Ack {
                    origin: child.to_string(),
                    seq: env.seq,
                };
                if tx
                    .send(Ok(envelope(me, 0, Payload::Ack(ack))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Some(Payload::Tickets(batch)) => {
                let upto = batch.upto;
                receive_tickets(ledger, seals, child, batch, upto).await?;
                {
                    let mut c = children.lock().unwrap_or_else(|p| p.into_inner());
                    let st = c.entry(child).or_default();
                    st.last_contact = Some(SystemTime::now());
                    // Ticket events delivered: progress (the stored cursor moved).
                    st.progress_at = Some(SystemTime::now());
                }
                let ack = Payload::TicketAck(pb::TicketAck { upto });
                if tx.send(Ok(envelope(me, 0, ack))).await.is_err() {
                    return Ok(());
                }
            }
            Some(Payload::TicketAck(a)) => {
                let l = ledger.clone();
                let upto = a.upto;
                tokio::task::spawn_blocking(move || l.set_ticket_down_acked(child, upto))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(to_status)?;
                down_acked.send_modify(|v| *v = (*v).max(upto));
            }
            Some(Payload::Hello(h)) => {
                if h.division != child.to_string() {
                    return Err(Status::invalid_argument(format!(
                        "a heartbeat names {} on the link of {child}",
                        h.division
                    )));
                }
                // A heartbeat: the child is alive and reports its head and backlog.
                let mut c = children.lock().unwrap_or_else(|p| p.into_inner());
                let st = c.entry(child).or_default();
                st.last_contact = Some(SystemTime::now());
                st.head = h.head;
                st.backlog = h.backlog;
                st.ticket_backlog = h.ticket_backlog;
            }
            _ => return Err(Status::invalid_argument("unexpected message on a link")),
        }
    }
    Ok(())
}

/// What this software calls itself on the wire.
pub const SOFTWARE: &str = concat!("bottomline ", env!("CARGO_PKG_VERSION"));

/// The largest gRPC message a node sends or accepts, set explicitly on every server and
/// client (tonic's default is 4 MiB for decoding). Batches stay far below it
/// ([`crate::link::MAX_BATCH_BYTES`]); a relay uses a limit at least as large.
pub const MESSAGE_LIMIT: usize = 16 << 20;
const _: () = assert!(crate::link::MAX_BATCH_BYTES < MESSAGE_LIMIT / 2);

/// Encoded size in bytes of `cells` as `Cell` messages inside a `CellBatch` (what a link must
/// carry at least; benchmarks compare the bytes on the wire with it).
pub fn encoded_cells_len(cells: &[(CellKey, CellValue)]) -> usize {
    use prost::Message;
    cells
        .iter()
        .map(|(k, v)| {
            let len = cell_to_pb(k, v).encoded_len();
            // Field tag + length prefix of a repeated message.
            1 + prost::length_delimiter_len(len) + len
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{MAX_BATCH_BYTES, MAX_CELL_WIRE_BYTES, MAX_SWEEP_CELLS};
    use prost::Message;

    /// Bytes `cell` adds to a `CellBatch` (field tag, length, message).
    fn in_batch(cell: pb::Cell) -> usize {
        let empty = pb::CellBatch {
            cells: vec![],
            floor: u64::MAX,
            incarnation: u64::MAX,
        };
        let one = pb::CellBatch {
            cells: vec![cell],
            ..empty.clone()
        };
        one.encoded_len() - empty.encoded_len()
    }

    #[test]
    fn a_batch_of_cells_stays_within_the_links_byte_budget() {
        // The largest cell `cell_to_pb` can write: the longest division code, every number at
        // its widest (a negative year is written as a 32-bit two's complement), any version.
        let widest = pb::Cell {
            division: "999999999999".into(),
            period: Some(pb::Period {
                kind: pb::period::Kind::Year as i32,
                year: u32::MAX,
                index: u32::from(u16::MAX),
            }),
            indicator: u32::from(u8::MAX),
            dimension: u32::from(u8::MAX),
            value: i64::MIN,
            version: u64::MAX,
        };
        assert_eq!(in_batch(widest), MAX_CELL_WIRE_BYTES);
        let full = MAX_SWEEP_CELLS * MAX_CELL_WIRE_BYTES;
        assert!(full <= MAX_BATCH_BYTES && full > MAX_BATCH_BYTES - MAX_CELL_WIRE_BYTES);
        // A typical county cell takes about 34 bytes, so a full batch is ~150 KiB.
        let key = CellKey {
            division: Code::parse("610102").unwrap(),
            period: Period::new(Kind::Week, 2026, 53).unwrap(),
            indicator: Stored::from_code(1).unwrap(),
            dim: 3,
        };
        let v = CellValue {
            value: 1_234,
            seq: 9_000_000,
            version: 9_000_000,
        };
        let typical = encoded_cells_len(&[(key, v)]);
        assert!((20..=40).contains(&typical), "{typical}");
        assert_eq!(in_batch(cell_to_pb(&key, &v)), typical);
    }
}
