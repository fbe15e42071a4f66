//! Ticket events on a link, either direction: the sender (the flushed entries of the node's
//! ticket log meant for the peer, in batches bounded by count and bytes, at most [`WINDOW`]
//! ahead of the peer's acks). The receiver is `Ledger::receive_tickets` (after the edge
//! checked the seals), durable before its ack.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{MAX_BATCH_BYTES, WINDOW};
use crate::division::Code;
use crate::ledger::{Ledger, LedgerError, LogEntry};

/// Most bytes of ticket events in one batch (bodies and seals), whatever their number: the
/// link's [`MAX_BATCH_BYTES`]. A batch of 1 024 events with 4 000-character descriptions
/// would otherwise exceed the message limit and be retried for ever.
pub const MAX_TICKET_BATCH_BYTES: usize = MAX_BATCH_BYTES;

/// Ticket events per batch (a batch is one durable commit at the receiver).
pub const TICKET_BATCH: usize = 1024;
/// Log entries not for a peer that are passed over before an empty batch moves its cursor.
pub const TICKET_SKIP_ACK: u64 = 256;

/// One batch of ticket events for the peer, read up to log position `upto` (what the peer
/// acks and stores as its cursor).
#[derive(Clone, Debug)]
pub struct TicketsOut {
    /// The entries for the peer, in log order (possibly none: the cursor still moves).
    pub entries: Vec<Arc<LogEntry>>,
    /// The log position read up to.
    pub upto: u64,
}

/// The sender of ticket events to one peer: up to the parent, or down to a child.
#[derive(Clone, Debug)]
pub struct TicketSender {
    me: Code,
    peer: Code,
    up: bool,
    pos: u64,
    last_sent: u64,
    in_flight: VecDeque<u64>,
    returns_upto: u64,
}

impl TicketSender {
    /// A sender from this node `me` to `peer` (its parent or a child), from log position
    /// `pos` (the peer's durable cursor). Down to a child whose store was replaced, its own
    /// events up to `returns_upto` go back to it too ([`crate::ledger::Logged::returns_to`];
    /// 0 for none).
    pub fn new(me: Code, peer: Code, pos: u64, returns_upto: u64) -> TicketSender {
        TicketSender {
            me,
            peer,
            up: me.parent() == Some(peer),
            pos,
            last_sent: pos,
            in_flight: VecDeque::new(),
            returns_upto,
        }
    }

    /// The log position read up to.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Batches sent and not acked.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The peer acked (stored) everything up to `upto`.
    pub fn on_ack(&mut self, upto: u64) {
        while self.in_flight.front().is_some_and(|p| *p <= upto) {
            self.in_flight.pop_front();
        }
    }

    /// The next batch, if the window has room and flushed entries are waiting; `None`: wait
    /// for a flush of ticket events or an ack. Entries not for the peer still move its cursor:
    /// in a batch of their own when many were passed over or when the read reaches the head
    /// (so a drained link shows no backlog).
    pub fn next(&mut self, ledger: &Ledger) -> Result<Option<TicketsOut>, LedgerError> {
        let (me, peer, up, returns_upto) = (self.me, self.peer, self.up, self.returns_upto);
        while self.in_flight.len() < WINDOW {
            let (entries, read_to) = ledger.ticket_log(self.pos, TICKET_BATCH, |e| {
                if up {
                    e.for_parent(me, peer)
                } else {
                    e.for_child(peer) || e.returns_to(peer, returns_upto)
                }
            })?;
            // Keep the batch below its byte budget: it ends before the first entry that would
            // pass it (and then reads on from there), but always holds at least one entry.
            let (entries, read_to) = cut_to_bytes(entries, read_to);
            if read_to <= self.pos {
                return Ok(None);
            }
            self.pos = read_to;
            if !entries.is_empty()
                || read_to - self.last_sent >= TICKET_SKIP_ACK
                || read_to >= ledger.ticket_head()
            {
                self.in_flight.push_back(read_to);
                self.last_sent = read_to;
                return Ok(Some(TicketsOut {
                    entries,
                    upto: read_to,
                }));
            }
        }
        Ok(None)
    }
}

/// The size an entry adds to a ticket batch (its body, its seal, and framing).
pub fn entry_bytes(e: &LogEntry) -> usize {
    e.body.len()
        + e.seal
            .as_ref()
            .map_or(0, |s| 32 + s.signature.len() + 32 * s.path.len() + 16)
        + 16
}

/// `entries` (read up to `read_to`) cut to [`MAX_TICKET_BATCH_BYTES`]: the entries that fit,
/// and the position read up to for them.
pub fn cut_to_bytes(mut entries: Vec<Arc<LogEntry>>, read_to: u64) -> (Vec<Arc<LogEntry>>, u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Logged;
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
