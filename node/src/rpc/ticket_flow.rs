//! Ticket events on a link, both directions: the sender (the flushed entries of the node's
//! ticket log meant for the peer, in batches bounded by count and bytes, at most `WINDOW`
//! ahead of the peer's acks) and the receiver (seals checked, stored durably before the ack).

use super::*;

/// Most bytes of ticket events in one batch (bodies and seals), whatever their number: a
/// batch of 1 024 events with 4 000-character descriptions would otherwise exceed the limit
/// and be retried for ever.
pub const MAX_TICKET_BATCH_BYTES: usize = 4 << 20;
const _: () = assert!(MAX_TICKET_BATCH_BYTES < MESSAGE_LIMIT / 2);

/// Ticket events per batch (a batch is one durable commit at the receiver).
pub(super) const TICKET_BATCH: usize = 1024;
/// Log entries not for a peer that are passed over before an empty batch moves its cursor.
pub(super) const TICKET_SKIP_ACK: u64 = 256;

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
/// child), from position `pos` on, in log order, at most [`WINDOW`] batches ahead of its acks
/// (`acked`); woken by every flush of ticket events. Runs until the link ends. Down to a
/// child whose store was replaced, its own events up to `returns_upto` go back to it too
/// ([`crate::ledger::Logged::returns_to`]; 0 for none).
pub(super) async fn send_tickets(
    ledger: Arc<Ledger>,
    peer: Code,
    mut pos: u64,
    out: Out,
    mut acked: watch::Receiver<u64>,
    seals: Arc<Seals>,
    returns_upto: u64,
) -> Result<(), LedgerError> {
    let me = ledger.division();
    let up = me.parent() == Some(peer);
    let mut in_flight: std::collections::VecDeque<u64> = Default::default();
    let mut last_sent = pos;
    loop {
        let changed = ledger.tickets_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let a = *acked.borrow_and_update();
        while in_flight.front().is_some_and(|p| *p <= a) {
            in_flight.pop_front();
        }
        if (in_flight.len() as u64) < WINDOW {
            let l = ledger.clone();
            let (entries, read_to) = tokio::task::spawn_blocking(move || {
                l.ticket_log(pos, TICKET_BATCH, |e| {
                    if up {
                        e.for_parent(me, peer)
                    } else {
                        e.for_child(peer) || e.returns_to(peer, returns_upto)
                    }
                })
            })
            .await
            .map_err(|e| LedgerError::TicketRefused(e.to_string()))??;
            // Keep the batch below its byte budget: it ends before the first entry that would
            // pass it (and then reads on from there), but always holds at least one entry.
            let (entries, read_to) = cut_to_bytes(entries, read_to);
            if read_to > pos {
                pos = read_to;
                // Entries not for the peer still move its cursor: in a batch of their own when
                // many were passed over or when this reaches the head (so a drained link shows
                // no backlog).
                if !entries.is_empty()
                    || read_to - last_sent >= TICKET_SKIP_ACK
                    || read_to >= ledger.ticket_head()
                {
                    let batch = seals.ticket_batch(&ledger, &entries, read_to);
                    if !out
                        .send(Seals::unsigned(me, read_to, Payload::Tickets(batch)))
                        .await
                    {
                        return Ok(());
                    }
                    in_flight.push_back(read_to);
                    last_sent = read_to;
                }
                continue;
            }
        }
        tokio::select! {
            _ = &mut changed => {}
            r = acked.changed() => if r.is_err() { return Ok(()) },
        }
    }
}

/// The size an entry adds to a ticket batch (its body, its seal, and framing).
pub(super) fn entry_bytes(e: &crate::ledger::LogEntry) -> usize {
    e.body.len()
        + e.seal
            .as_ref()
            .map_or(0, |s| 32 + s.signature.len() + 32 * s.path.len() + 16)
        + 16
}

/// `entries` (read up to `read_to`) cut to [`MAX_TICKET_BATCH_BYTES`]: the entries that fit,
/// and the position read up to for them.
pub(super) fn cut_to_bytes(
    mut entries: Vec<Arc<crate::ledger::LogEntry>>,
    read_to: u64,
) -> (Vec<Arc<crate::ledger::LogEntry>>, u64) {
    let mut total = 0;
    for (i, e) in entries.iter().enumerate() {
        total += entry_bytes(e);
        if total > MAX_TICKET_BATCH_BYTES && i > 0 {
            let end = e.logged.pos - 1;
            entries.truncate(i);
            return (entries, end);
        }
    }
    (entries, read_to)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{LogEntry, Logged};
    use crate::tickets::{Event, EventId, EventKind, TicketKey};

    fn entry(pos: u64, body_len: usize) -> Arc<LogEntry> {
        let d = Code::parse("610102").unwrap();
        Arc::new(LogEntry {
            logged: Logged {
                pos,
                from: None,
                target: d,
                top: d,
                event: Event {
                    id: EventId {
                        origin: d,
                        seq: pos,
                    },
                    ticket: TicketKey::new(d, "T"),
                    lamport: pos,
                    at_unix_ms: 0,
                    actor: d,
                    kind: EventKind::Accepted,
                },
            },
            body: vec![0; body_len],
            seal: None,
        })
    }

    #[test]
    fn ticket_batches_are_cut_below_their_byte_budget() {
        // 1 000 events of 12 kB (4 000 Chinese characters): ~12 MB read up to 2 000.
        let entries: Vec<_> = (1..=1000).map(|i| entry(2 * i, 12_000)).collect();
        let (kept, read_to) = cut_to_bytes(entries, 2000);
        let bytes: usize = kept.iter().map(|e| entry_bytes(e)).sum();
        assert!(bytes <= MAX_TICKET_BATCH_BYTES && bytes > MAX_TICKET_BATCH_BYTES - 13_000);
        let last = kept.last().unwrap().logged.pos;
        // The next batch reads on from the first entry left out.
        assert_eq!(read_to, last + 1);
        // Small batches are not touched; one entry over the budget still goes alone.
        let (kept, read_to) = cut_to_bytes((1..=5).map(|i| entry(i, 100)).collect(), 9);
        assert_eq!((kept.len(), read_to), (5, 9));
        let (kept, read_to) =
            cut_to_bytes(vec![entry(3, MAX_TICKET_BATCH_BYTES + 1), entry(4, 10)], 4);
        assert_eq!((kept.len(), read_to), (1, 3));
    }
}
