//! Cells up a link: the child's sender (sweeps of its change log, at most [`WINDOW`] batches
//! ahead of the parent's acks) and the parent's receiver (replicas applied durably, then
//! acked).

use std::collections::VecDeque;

use super::{MAX_BATCH_BYTES, WINDOW};
use crate::cells::Replica;
use crate::division::Code;
use crate::ledger::{CellValue, Ledger, LedgerError};
use crate::stats::CellKey;

/// Most bytes one cell adds to a batch on the wire: a 12-digit division, the largest period,
/// indicator and dimension, any value and any version, with the field's framing (checked
/// against the protobuf encoding in `rpc`'s tests). A typical cell takes ~34.
pub const MAX_CELL_WIRE_BYTES: usize = 58;

/// Most cells in one batch (a step of the sweep stops before the block that would pass it; a
/// first block larger than this goes alone): bounds a batch to [`MAX_BATCH_BYTES`] on the wire.
pub const MAX_SWEEP_CELLS: usize = MAX_BATCH_BYTES / MAX_CELL_WIRE_BYTES;

/// One batch of cells to send: the cells changed after the sweep's floor in the blocks read,
/// the floor the parent may record once it applied them, and the log position read up to
/// (the batch's sequence number, what the parent acks).
#[derive(Clone, Debug, PartialEq)]
pub struct CellsOut {
    /// The cells, absolute values with their versions.
    pub cells: Vec<(CellKey, CellValue)>,
    /// Everything changed at or before it is delivered once this batch is applied.
    pub floor: u64,
    /// The log position read up to.
    pub pos: u64,
}

/// The child's side of the cells on one link (invariant 12): a sweep from the parent's
/// durable floor, batches of at most `batch_blocks` blocks, at most [`WINDOW`] unacked.
#[derive(Clone, Debug)]
pub struct CellSender {
    floor: u64,
    pos: u64,
    in_flight: VecDeque<u64>,
    acked: u64,
}

impl CellSender {
    /// A sender resuming where the parent's durable copy ends (`Welcome.acked`, and the
    /// position an interrupted sweep had reached, `Welcome.resume_pos`).
    pub fn new(acked: u64, resume_pos: u64) -> CellSender {
        CellSender {
            floor: acked,
            pos: resume_pos.max(acked),
            in_flight: VecDeque::new(),
            acked,
        }
    }

    /// Everything changed at or before it has been sent (and is acked once the batches in
    /// flight are).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The log position read up to.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The highest position the parent acked.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Batches sent and not acked.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The parent acked position `seq`: the batches up to it leave the window.
    pub fn on_ack(&mut self, seq: u64) {
        self.acked = self.acked.max(seq);
        while self.in_flight.front().is_some_and(|s| *s <= seq) {
            self.in_flight.pop_front();
        }
    }

    /// The next batch, if the window has room and the sweep moved (new blocks, or the sweep
    /// completed and the floor rises); `None`: wait for a flush or an ack.
    pub fn next(
        &mut self,
        ledger: &Ledger,
        batch_blocks: usize,
    ) -> Result<Option<CellsOut>, LedgerError> {
        if self.in_flight.len() >= WINDOW {
            return Ok(None);
        }
        let step = ledger.sweep_capped(self.floor, self.pos, batch_blocks, MAX_SWEEP_CELLS)?;
        let new_floor = if step.complete { step.pos } else { self.floor };
        if step.pos <= self.pos && new_floor <= self.floor {
            return Ok(None);
        }
        self.in_flight.push_back(step.pos);
        self.pos = step.pos;
        self.floor = new_floor;
        Ok(Some(CellsOut {
            cells: step.cells,
            floor: new_floor,
            pos: step.pos,
        }))
    }
}

/// What applying one batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedCells {
    /// Ack this position (the batch's).
    pub ack: u64,
    /// The batch was at or below what this link had applied (a replay: nothing changed).
    pub replay: bool,
    /// The child's delivered floor or position moved (progress, for the stall detector).
    pub progressed: bool,
}

/// The parent's side of the cells on one child link: each batch applied as replicas with the
/// child's positions in one flushed commit before it is acked.
#[derive(Clone, Debug)]
pub struct CellReceiver {
    child: Code,
    /// The (floor, pos) applied last on this link (from `Welcome`, then each batch).
    applied: (u64, u64),
}

impl CellReceiver {
    /// The receiver for `child`, whose durable (floor, position) here is `applied`.
    pub fn new(child: Code, applied: (u64, u64)) -> CellReceiver {
        CellReceiver { child, applied }
    }

    /// The child.
    pub fn child(&self) -> Code {
        self.child
    }

    /// Apply a batch read up to `pos` from floor `floor`; durable when it returns.
    pub fn apply(
        &mut self,
        ledger: &Ledger,
        cells: &[Replica],
        floor: u64,
        pos: u64,
    ) -> Result<ReceivedCells, LedgerError> {
        let replay = floor <= self.applied.0 && pos <= self.applied.1;
        let progressed = floor > self.applied.0 || pos > self.applied.1;
        ledger.apply_replicas(self.child, cells, floor, pos)?;
        self.applied = (self.applied.0.max(floor), self.applied.1.max(pos));
        Ok(ReceivedCells {
            ack: pos,
            replay,
            progressed,
        })
    }
}
