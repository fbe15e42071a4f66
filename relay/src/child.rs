//! The relay's face towards the children: the `bottomline.v1.Sync` service, spoken exactly
//! as a parent speaks it, so a county dials the relay as if it were its city.
//!
//! `Link`: the caller's certificate must be a node of a direct child of `parent_division` and
//! its first message a Hello naming that same division (otherwise `PermissionDenied` and an
//! audit line). The Hello is stored durably (it opens the lane's upstream), the child is
//! welcomed with where its custody ends (or the parent's cursor), then every cell or ticket
//! batch it sends is appended to the lane's up-queue and acked once a flush covered it, while
//! the lane's down-queue is sent to it in order (window of 8) and its `TicketAck`s delete what
//! they cover. A newer link of the same child replaces an older one; a certificate revoked
//! while its link is open ends the link.
//!
//! `Status`: the lanes (child link, custody both ways, upstream) for any valid certificate.
//! `Stats`: a relay holds no statistics.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bottomline::division::Code;
use bottomline::security::{CertInfo, Identity};
use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{until_revoked, Caller};
use crate::custody::{Dir, Lane, Meta};
use crate::state::{blocking, LaneLive, Shared, WINDOW};
use crate::upstream::{self, kind};

/// How long a child has to send its Hello after opening a link.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

type Out = mpsc::Sender<Result<pb::Envelope, Status>>;

/// The `Sync` service of the relay.
pub struct RelayService {
    shared: Arc<Shared>,
}

impl RelayService {
    pub(crate) fn new(shared: Arc<Shared>) -> RelayService {
        RelayService { shared }
    }
}

/// An envelope the relay creates in the parent's name (acks and Welcome: never signed).
fn from_parent(parent: Code, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: parent.to_string(),
        seq: 0,
        payload: Some(payload),
        signature: Vec::new(),
    }
}

#[tonic::async_trait]
impl pb::sync_server::Sync for RelayService {
    type LinkStream = ReceiverStream<Result<pb::Envelope, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let shared = &self.shared;
        if shared.stopping() {
            return Err(Status::unavailable(
                "the relay is shutting down; reconnect later",
            ));
        }
        let caller = Caller::of(&request, &shared.revoked)?;
        let parent = shared.parent_division();
        let (child, serial) = match caller.cert.as_deref() {
            Some(CertInfo {
                identity: Identity::Node { division },
                serial,
                ..
            }) if division.parent() == Some(parent) => (*division, serial.clone()),
            Some(c) => {
                return Err(caller.deny(
                    "open a link through the relay",
                    &format!(
                        "{} is not a direct child of {parent}, which this relay serves",
                        c.identity
                    ),
                ))
            }
            None => unreachable!("Caller::of refuses a call without a certificate"),
        };
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 30 s"))??
            .ok_or_else(|| Status::invalid_argument("the link closed before Hello"))?;
        let named = match &first.payload {
            Some(Payload::Hello(h)) => h.division.clone(),
            _ => {
                return Err(caller.deny(
                    &format!("open a link as {child}"),
                    "the first message of a link must be Hello",
                ))
            }
        };
        if named != child.to_string() {
            return Err(caller.deny(
                &format!("open a link as {named:?}"),
                &format!("the Hello names {named:?}, the certificate {child}"),
            ));
        }

        // Take the lane over: an older link of this child ends, and this one waits for it.
        let live = shared.live(child);
        live.generation.send_modify(|g| *g += 1);
        let generation = *live.generation.borrow();
        let slot = live.slot.clone().lock_owned().await;
        if *live.generation.borrow() != generation {
            return Err(Status::aborted(
                "a newer link of this child replaced this one",
            ));
        }
        let lane = live.lane.clone();
        let bytes = first.encode_to_vec();
        // A child whose store restarted (or was wiped, or restored from an older backup): what
        // the up-queue holds may be history its store no longer has, and only the parent can
        // say where the child resumes. The queue and the cursor go; the upstream links again
        // with the new Hello (see `Custody::restart_lane`).
        let lost = match (&first.payload, lane.hello()) {
            (Some(Payload::Hello(h)), Some(old)) => lost_history(&lane, &old, h),
            _ => None,
        };
        let restarted = lost.is_some();
        let (c, l) = (shared.custody.clone(), lane.clone());
        let dropped = blocking(move || {
            let dropped = if restarted { c.restart_lane(&l)? } else { 0 };
            let ticket = c.put_hello(&l, bytes)?;
            c.flush_through(ticket)?;
            Ok(dropped)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        if let Some(why) = lost {
            tracing::warn!(%child, dropped, reason = %why,
                "the child's store lost what this relay holds of it; the parent decides where it resumes");
        }
        upstream::ensure(shared, &live);
        if lane.cursor().is_none() {
            wait_for_parent(shared, &live).await?;
        }
        let w = lane
            .child_welcome()
            .ok_or_else(|| Status::unavailable("the relay has not reached the parent yet"))?;
        let (tx, rx) = mpsc::channel(2 * WINDOW + 2);
        let welcome = pb::Welcome {
            division: parent.to_string(),
            acked: w.acked,
            down_acked: w.down_acked,
            resume_pos: w.resume_pos,
            ticket_acked: w.ticket_acked,
            ..live.welcome_extras()
        };
        tx.send(Ok(from_parent(parent, Payload::Welcome(welcome))))
            .await
            .map_err(|_| Status::cancelled("link closed"))?;
        {
            let mut st = live.status();
            st.child_connected = true;
            st.last_contact = Some(SystemTime::now());
        }
        let (up, down) = lane.counts();
        tracing::info!(
            %child,
            acked = w.acked,
            resume_pos = w.resume_pos,
            ticket_acked = w.ticket_acked,
            custody_up = up,
            custody_down = down,
            "child linked"
        );
        let shared = shared.clone();
        self.shared.tasks.spawn(async move {
            let _slot = slot;
            let revoked = until_revoked(shared.revoked.clone(), serial);
            serve_child(&shared, &live, generation, inbound, tx, caller, revoked).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        Caller::of(&request, &self.shared.revoked)?;
        Ok(Response::new(crate::status::status(&self.shared)))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        Err(Status::unimplemented(
            "a relay holds no statistics; ask the parent",
        ))
    }

    async fn report(
        &self,
        _request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportReply>, Status> {
        Err(Status::unimplemented(
            "a relay holds no statistics; ask the parent",
        ))
    }
}

/// Why what the relay holds of a child (its queued batches, the positions it told the child)
/// is not the history of the child's store any more, if it is not: the child's store was
/// wiped or restored from an older backup (`bottomline::lineage`). `old`: the child's last
/// Hello envelope; `new`: the Hello it opens a link with now. A restart of the same store
/// continues it.
fn lost_history(lane: &Lane, old: &[u8], new: &pb::Hello) -> Option<String> {
    use bottomline::lineage::{continuity, Acked, ChildStore, Continuity};
    let (store_id, incarnation) = upstream::incarnation_of(old)?;
    let identity = bottomline::rpc::identity_from_pb(new.identity.as_ref())?;
    let held = lane.child_welcome()?;
    let known = ChildStore {
        store_id: store_id.try_into().ok()?,
        incarnation,
        generation: 0,
        superseded: Vec::new(),
    };
    let acked = Acked {
        cells: held.acked.max(held.resume_pos),
        tickets: held.ticket_acked,
    };
    match continuity(Some(&known), &identity, acked) {
        Continuity::Diverged(why) => Some(why),
        Continuity::Unknown | Continuity::Continues | Continuity::Stale(_) => None,
    }
}

/// Wait (bounded by the connect timeout) for the lane's first Welcome from the parent.
async fn wait_for_parent(shared: &Arc<Shared>, live: &Arc<LaneLive>) -> Result<(), Status> {
    let mut cursor = live.lane.subscribe_cursor();
    let mut generation = live.generation.subscribe();
    let mut stop = shared.stop.clone();
    let wait = async {
        loop {
            if live.lane.cursor().is_some() {
                return Ok(());
            }
            tokio::select! {
                r = cursor.changed() => if r.is_err() { return Err(Status::unavailable("the relay is stopping")) },
                _ = generation.changed() => return Err(Status::aborted("a newer link of this child replaced this one")),
                _ = stop.wait_for(|s| *s) => return Err(Status::unavailable("the relay is stopping")),
            }
        }
    };
    // Within the child's own Welcome timeout (the same setting on a node), so that it hears
    // why rather than timing out.
    match tokio::time::timeout(shared.config.connect_timeout(), wait).await {
        Ok(r) => r,
        Err(_) => {
            let why = live
                .status()
                .last_error
                .clone()
                .or_else(|| shared.parent.last_error())
                .unwrap_or_else(|| "no answer yet".into());
            Err(Status::unavailable(format!(
                "the relay has not reached the parent yet: {why}"
            )))
        }
    }
}

/// Serve one child link after its Welcome until it ends, is replaced, revoked, or the relay
/// stops; the acks still owed are flushed and sent first.
async fn serve_child(
    shared: &Arc<Shared>,
    live: &Arc<LaneLive>,
    generation: u64,
    mut inbound: Streaming<pb::Envelope>,
    tx: Out,
    caller: Caller,
    revoked: impl std::future::Future<Output = ()>,
) {
    let lane = live.lane.clone();
    let child = lane.code();
    // Acks go out in arrival order, each after a flush covered its entry. Once the link is
    // ending they go out only where the stream has room: a child that stopped reading must
    // not hold the lane (its next link waits for this one to end).
    let (ack_tx, mut ack_rx) = mpsc::channel::<(u64, pb::Envelope)>(4 * WINDOW);
    let (ending_tx, mut ending) = watch::channel(false);
    let (c, out) = (shared.custody.clone(), tx.clone());
    let acker = tokio::spawn(async move {
        while let Some((ticket, ack)) = ack_rx.recv().await {
            let c = c.clone();
            blocking(move || c.flush_through(ticket)).await?;
            // The child may be gone: the entry is in custody all the same.
            tokio::select! {
                biased;
                _ = out.send(Ok(ack)) => {}
                _ = ending.wait_for(|e| *e) => {}
            }
        }
        Ok::<(), crate::custody::CustodyError>(())
    });
    let down = tokio::spawn(send_down(shared.clone(), lane.clone(), tx.clone()));
    let mut gen_rx = live.generation.subscribe();
    let mut stop = shared.stop.clone();
    // Resolves with the reason when the link must end from this side.
    let exit = async {
        tokio::select! {
            _ = gen_rx.wait_for(|g| *g != generation) => {
                Status::aborted("a newer link of this child replaced this one")
            }
            _ = stop.wait_for(|s| *s) => {
                Status::unavailable("the relay is shutting down; reconnect later")
            }
            _ = revoked => caller.deny(
                "keep a link open",
                "the certificate was revoked while the link was open",
            ),
        }
    };
    tokio::pin!(exit);
    let result = loop {
        let next = tokio::select! {
            m = inbound.message() => m,
            why = &mut exit => break Err(why),
        };
        let env = match next {
            Ok(Some(env)) => env,
            Ok(None) => break Ok(()),
            Err(s) => break Err(s),
        };
        live.status().last_contact = Some(SystemTime::now());
        match take(shared, &lane, &caller, env).await {
            Ok(Some(pending)) => {
                let sent = tokio::select! {
                    r = ack_tx.send(pending) => r.is_ok(),
                    why = &mut exit => break Err(why),
                };
                if !sent {
                    break Err(Status::internal("the relay could not make a batch durable"));
                }
            }
            Ok(None) => {}
            Err(s) => break Err(s),
        }
    };
    drop(ack_tx);
    down.abort();
    let _ = ending_tx.send(true);
    match acker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(%child, cause = %e, "cannot flush the custody store"),
        Err(e) => tracing::error!(%child, cause = %e, "acker failed"),
    }
    if let Err(s) = &result {
        if shared.stopping() {
            tracing::info!(%child, "child link closed: the relay is shutting down");
        } else {
            tracing::warn!(%child, cause = %s.message(), "child link ended with an error");
        }
        // Where the stream has room: the reason for the child.
        let _ = tx.try_send(Err(s.clone()));
    } else {
        tracing::info!(%child, "child link closed");
    }
    if *live.generation.borrow() == generation {
        live.status().child_connected = false;
    }
}

/// Take one message of the child: an entry to ack once flushed (`Some`), or handled here.
async fn take(
    shared: &Arc<Shared>,
    lane: &Arc<Lane>,
    caller: &Caller,
    env: pb::Envelope,
) -> Result<Option<(u64, pb::Envelope)>, Status> {
    let child = lane.code();
    let parent = shared.parent_division();
    let internal = |e: crate::custody::CustodyError| Status::internal(e.to_string());
    let (c, l) = (shared.custody.clone(), lane.clone());
    let (meta, ack) = match &env.payload {
        Some(Payload::Cells(b)) => (
            Meta::Cells {
                seq: env.seq,
                floor: b.floor,
            },
            Payload::Ack(pb::Ack {
                origin: child.to_string(),
                seq: env.seq,
            }),
        ),
        Some(Payload::Tickets(b)) => (
            Meta::Tickets {
                seq: env.seq,
                upto: b.upto,
            },
            Payload::TicketAck(pb::TicketAck { upto: b.upto }),
        ),
        Some(Payload::Hello(h)) => {
            // A heartbeat: the latest Hello, forwarded upstream at once when it is open.
            if h.division != child.to_string() {
                return Err(caller.deny(
                    &format!("send a Hello as {:?} on the link of {child}", h.division),
                    &format!("the Hello names {:?}, the certificate {child}", h.division),
                ));
            }
            let bytes = env.encode_to_vec();
            blocking(move || c.put_hello(&l, bytes))
                .await
                .map_err(internal)?;
            return Ok(None);
        }
        Some(Payload::TicketAck(a)) => {
            let upto = a.upto;
            blocking(move || c.ack_down(&l, upto))
                .await
                .map_err(internal)?;
            return Ok(None);
        }
        other => {
            return Err(Status::invalid_argument(format!(
                "unexpected {} on a link",
                other.as_ref().map_or("empty message", kind)
            )))
        }
    };
    if env.origin != child.to_string() {
        return Err(caller.deny(
            &format!("deliver a batch of {:?} on the link of {child}", env.origin),
            &format!(
                "the batch names origin {:?}, the certificate {child}",
                env.origin
            ),
        ));
    }
    // Stored exactly as received: the parent verifies the child's signature over it.
    let bytes = env.encode_to_vec();
    let (_, ticket) = blocking(move || c.append(&l, Dir::Up, meta, &bytes))
        .await
        .map_err(internal)?;
    Ok(Some((ticket, from_parent(parent, ack))))
}

/// Send the lane's down-queue to the child from its start, in order, at most [`WINDOW`]
/// envelopes unacked, woken by new entries and acks. Aborted when the link ends.
async fn send_down(shared: Arc<Shared>, lane: Arc<Lane>, tx: Out) {
    let mut changed = lane.subscribe(Dir::Down);
    let mut last_sent = 0u64;
    loop {
        changed.borrow_and_update();
        if lane.outstanding(Dir::Down, last_sent) < WINDOW {
            if let Some((rseq, _)) = lane.next_durable(Dir::Down, last_sent) {
                let (c, l) = (shared.custody.clone(), lane.clone());
                let bytes = match blocking(move || c.read(&l, Dir::Down, rseq)).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                last_sent = rseq;
                let Some(bytes) = bytes else { continue };
                match pb::Envelope::decode(&bytes[..]) {
                    Ok(env) => {
                        if tx.send(Ok(env)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let why = format!("stored envelope {rseq} does not decode: {e}");
                        tracing::error!(child = %lane.code(), %why);
                        let _ = tx.send(Err(Status::internal(why))).await;
                        return;
                    }
                }
                continue;
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}
