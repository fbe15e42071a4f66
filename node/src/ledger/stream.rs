//! Streamed writes: the record files of an import written chunk by chunk, so that what is in
//! memory is one chunk of records and the summed cell deltas (bounded by the cells the import
//! touches), never the import's records.
//!
//! The caller (the importer) validates a whole file with [`StreamedWrite::check`] chunk by
//! chunk before it writes any of it, then hands the same rows to [`StreamedWrite::write`]. Each
//! written chunk commits its records at once (the first commit also sets the `stats_pending`
//! marker); the cell deltas of every file are summed in memory (ordered maps, which grow a
//! node at a time: a hash map's doubling held its old and new tables at once, the largest
//! allocation of a county's import) and written by
//! [`StreamedWrite::finish`], which clears the marker and flushes. A crash in between leaves
//! records whose cells were not written: the marker makes the next open recompute the cells
//! (`repair_cells`), and re-running the import is a no-op for the rows already in.
//!
//! The ledger's write lock is held from [`Ledger::stream_write`] to the end, so a background
//! check never sees records ahead of their cells.

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use super::*;

/// Rows an importer plans and writes at once.
pub const CHUNK: usize = BATCH;

/// A streamed write in progress (see the module docs).
pub struct StreamedWrite<'l> {
    ledger: &'l Ledger,
    _write: MutexGuard<'l, ()>,
    today: Date,
    /// Summed deltas of the files ended so far, in key order (what `finish` writes).
    total: BTreeMap<CellKey, i64>,
    /// Summed deltas of the current file.
    file: BTreeMap<CellKey, i64>,
    /// Counts of the current file.
    applied: Applied,
    /// Records were committed (and with them the `stats_pending` marker).
    marked: bool,
    /// The cells were written (or nothing needed writing).
    finished: bool,
}

impl Ledger {
    /// Start a streamed write (see [`StreamedWrite`]); `today` bounds the records' dates.
    pub fn stream_write(&self, today: Date) -> StreamedWrite<'_> {
        StreamedWrite {
            ledger: self,
            _write: self.write.lock().unwrap_or_else(|p| p.into_inner()),
            today,
            total: BTreeMap::new(),
            file: BTreeMap::new(),
            applied: Applied::default(),
            marked: false,
            finished: false,
        }
    }
}

impl StreamedWrite<'_> {
    /// What the store would refuse of `changes` as it stands now (nothing is written). The
    /// changes of one call must not depend on each other (distinct records); a file's rows
    /// only refer to records of earlier files, which are written before it is checked.
    pub fn check(&self, changes: &[Change]) -> Result<Vec<Refusal>> {
        Ok(self.plan(changes, false)?.err().unwrap_or_default())
    }

    /// Plan `changes` against the store as it stands (`emit`: with their cell deltas).
    fn plan<'c>(
        &self,
        changes: &'c [Change],
        emit: bool,
    ) -> Result<std::result::Result<Planned<'c>, Vec<Refusal>>> {
        let reg = self
            .ledger
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner());
        self.ledger
            .plan(&reg, &mut Overlay::default(), changes, self.today, emit)
    }

    /// Plan `changes` against the store and commit their records (not flushed: `finish`
    /// flushes); their cell deltas join the current file's. If any is refused nothing of them
    /// is written and the refusals are returned.
    pub fn write(&mut self, changes: &[Change]) -> Result<std::result::Result<(), Vec<Refusal>>> {
        let planned = match self.plan(changes, true)? {
            Ok(p) => p,
            Err(r) => return Ok(Err(r)),
        };
        let Planned {
            steps,
            deltas,
            applied,
        } = planned;
        self.applied.inserted += applied.inserted;
        self.applied.corrected += applied.corrected;
        self.applied.deleted += applied.deleted;
        self.applied.unchanged += applied.unchanged;
        for (k, d) in deltas {
            *self.file.entry(k).or_insert(0) += d;
        }
        if !steps.is_empty() {
            let mut ws = WriteSet::new();
            if !self.marked {
                ws.put(TreeId::Meta, META_STATS_PENDING, Vec::new());
            }
            for step in &steps {
                stage_record(step, &mut ws);
            }
            self.ledger.store.commit(ws)?;
            self.marked = true;
        }
        Ok(Ok(()))
    }

    /// End the current file: its counts, `cells_written` being the cells its changes moved.
    /// Its deltas join the import's.
    pub fn end_file(&mut self) -> Applied {
        let mut file = std::mem::take(&mut self.file);
        file.retain(|_, d| *d != 0);
        let mut applied = std::mem::take(&mut self.applied);
        applied.cells_written = file.len() as u64;
        if self.total.is_empty() {
            self.total = file;
        } else {
            for (k, d) in file {
                *self.total.entry(k).or_insert(0) += d;
            }
        }
        applied
    }

    /// Write the summed deltas of the ended files to the cells (the last batch clears the
    /// marker) and flush; `progress` gets (blocks written, blocks in all). A file not ended
    /// is ended first.
    pub fn finish(mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
        self.complete(progress)
    }

    fn complete(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if !self.file.is_empty() {
            self.end_file();
        }
        if !self.marked {
            // Nothing written: every row matched what was stored.
            return Ok(());
        }
        // In key order already; the map's nodes are freed as the groups fill.
        let groups = crate::cells::group(std::mem::take(&mut self.total));
        if failpoint("ledger.between_records_and_cells") {
            // Crash tests: die like kill -9 with the records durable and the cells not written.
            self.ledger.store.flush()?;
            std::process::abort();
        }
        let total = groups.len();
        let cells = self
            .ledger
            .write_cells(&groups, &mut |done| progress(done, total))?;
        drop(groups);
        self.ledger.flush_store()?;
        self.ledger.mark_durable(self.ledger.cell_seq()?);
        self.ledger.metrics.cells_applied(CellsFrom::Local, cells);
        Ok(())
    }
}

impl Drop for StreamedWrite<'_> {
    /// A streamed write left without `finish` (an error on the caller's side) still writes
    /// the cells of what it committed, so a serving node does not show stale figures until
    /// its next start; if that fails too, the marker repairs them on the next open.
    fn drop(&mut self) {
        if let Err(e) = self.complete(&mut |_, _| {}) {
            tracing::error!(error = %e, "writing the cells of an interrupted import failed; they are recomputed at the next start");
        }
    }
}
