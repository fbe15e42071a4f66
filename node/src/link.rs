//! **The link engine**: what flows on a child→parent link and by which rules — sweeps of the
//! change log, windows of batches in flight, durable cursors, acks — free of any network code.
//! Its only I/O is the ledger's (synchronous, durable-before-return store calls), so the gRPC
//! edge (`rpc/uplink.rs` for the child, `rpc.rs`'s link service for the parent,
//! `rpc/ticket_flow.rs`) and a deterministic simulation (`node/tests/simulation.rs`) drive
//! the same code: the edge moves its messages over a gRPC stream, the simulation through
//! queues it cuts, delays, duplicates and replays, with nodes it crashes and reopens.
//!
//! One link, both directions:
//!
//! ```text
//!  child                                              parent
//!  Hello ───────────────────────────────────────────► open(): Welcome (its durable copy of
//!  welcomed() ◄────────────────────────────────────── the child: floor, position, ticket
//!  CellSender::next() ── cells (floor, pos) ────────► CellReceiver::apply() (flushed)
//!  CellSender::acked() ◄──────── Ack(pos) ──────────┘
//!  TicketSender (up) ─── tickets (upto) ────────────► Ledger::receive_tickets (flushed)
//!            acked() ◄────── TicketAck(upto) ───────┘
//!  Ledger::receive_tickets ◄── tickets ───────────── TicketSender (down)
//!  └──────────────── TicketAck(upto) ─────────────► Ledger::set_ticket_down_acked, acked()
//! ```
//!
//! Every receiver makes a batch durable before its ack, every sender sends only flushed
//! entries and resumes from the receiver's durable position (`Welcome`), so a cut, a crash or
//! a replayed batch loses nothing and counts nothing twice (invariants 6, 12 and 13).

mod cells;
mod open;
mod tickets;

pub use cells::{
    CellReceiver, CellSender, CellsOut, ReceivedCells, MAX_CELL_WIRE_BYTES, MAX_SWEEP_CELLS,
};
pub use open::{open, welcomed, Opened, Welcome};
pub use tickets::{cut_to_bytes, entry_bytes, TicketSender, TicketsOut, MAX_TICKET_BATCH_BYTES};

/// Batches in flight on a link before the sender waits for an ack (each direction, cells and
/// tickets each).
pub const WINDOW: usize = 8;

/// Most bytes one batch puts on the wire, cells or ticket events (a single block or ticket
/// event larger than this still goes, alone). Far below the message limit, and small on
/// purpose: a receiver's gRPC stream keeps a decode buffer as large as the largest message it
/// has carried for as long as the link lives, so this is also what each open link costs its
/// receiver. Sweeps of 25 000 cells (~1.35 MiB) held 13.5 MiB at the province, one buffer
/// per city link, and a city one per county link (issue #19, soak run 8).
pub const MAX_BATCH_BYTES: usize = 256 << 10;
