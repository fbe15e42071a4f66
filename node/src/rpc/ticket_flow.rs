//! Ticket events on a link at the gRPC edge, both directions: the sender task (driving
//! [`crate::link::TicketSender`], woken by flushes and acks) and the receiver (seals checked,
//! stored durably before the ack).

use super::*;
use crate::link::TicketSender;

/// Where a ticket sender writes: the child's request stream, or the parent's response stream.
pub(super) enum Out {
    Up(mpsc::Sender<pb::Envelope>),
    Down(mpsc::Sender<Result<pb::Envelope, Status>>),
}

impl Out {
    async fn send(&self, e: pb::Envelope) -> bool {
        match self {
            Out::Up(tx) => tx.send(e).await.is_ok(),
            Out::Down(tx) => tx.send(Ok(e)).await.is_ok(),
        }
    }
}

/// Send `peer` the flushed ticket-log entries meant for it (up to the parent, or down to a
/// child), from position `pos` on, through a [`TicketSender`]; woken by every flush of
/// ticket events and every ack (`acked`). Runs until the link ends. `returns_upto`: see
/// [`TicketSender::new`].
pub(super) async fn send_tickets(
    ledger: Arc<Ledger>,
    peer: Code,
    pos: u64,
    out: Out,
    mut acked: watch::Receiver<u64>,
    seals: Arc<Seals>,
    returns_upto: u64,
) -> Result<(), LedgerError> {
    let me = ledger.division();
    let mut sender = TicketSender::new(me, peer, pos, returns_upto);
    loop {
        let changed = ledger.tickets_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        sender.on_ack(*acked.borrow_and_update());
        loop {
            let l = ledger.clone();
            let (s, batch) = tokio::task::spawn_blocking(move || {
                let r = sender.next(&l);
                (sender, r)
            })
            .await
            .map_err(|e| LedgerError::TicketRefused(e.to_string()))?;
            sender = s;
            let Some(batch) = batch? else { break };
            let upto = batch.upto;
            let batch = seals.ticket_batch(&ledger, &batch.entries, upto);
            if !out
                .send(Seals::unsigned(me, upto, Payload::Tickets(batch)))
                .await
            {
                return Ok(());
            }
        }
        tokio::select! {
            _ = &mut changed => {}
            r = acked.changed() => if r.is_err() { return Ok(()) },
        }
    }
}

/// Check and store a ticket batch from the peer `from` (a child, or this node's parent),
/// with `upto` the peer's log position it covers (0 from a parent). A refused batch ends the
/// link with the reason.
pub(super) async fn receive_tickets(
    ledger: &Arc<Ledger>,
    seals: &Arc<Seals>,
    from: Code,
    batch: pb::TicketBatch,
    upto: u64,
) -> Result<(), Status> {
    let (l, s) = (ledger.clone(), seals.clone());
    let n = batch.events.len();
    let added = tokio::task::spawn_blocking(move || {
        let certs = batch.certificates.clone();
        let events = s.events(&l, batch).map_err(Refusal::status)?;
        l.receive_tickets(from, events, &certs, upto)
            .map_err(to_status)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .inspect_err(|e| {
        tracing::warn!(peer = %from, cause = %e.message(), "refused ticket events");
    })?;
    if n > 0 && added == 0 {
        tracing::warn!(target: "audit", peer = %from, events = n,
            "replayed envelope: every ticket event in it is held already; nothing changes");
    }
    Ok(())
}
