//! The write path of the ledger: validate and write lists of changes (`apply`, `apply_files`:
//! records in batches, then the summed cell deltas, then one flush), the staging pipeline that
//! overlaps encoding with sled's commits on two cores, and the cell writes of an apply.

use super::*;

impl Ledger {
    /// Validate `changes` as `apply` would, writing nothing; returns every refusal.
    pub fn check(&self, changes: &[Change], today: Date) -> Result<Vec<Refusal>> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
        match self.plan(&reg, &mut Overlay::default(), changes, today, false)? {
            Ok(_) => Ok(Vec::new()),
            Err(r) => Ok(r),
        }
    }

    /// Validate and write `changes` atomically per batch; nothing is written if any change is
    /// refused. Durable (flushed) when it returns.
    pub fn apply(&self, changes: &[Change], today: Date) -> Result<Applied> {
        self.apply_with_progress(changes, today, &mut |_| {})
    }

    /// [`Ledger::apply`] reporting progress after each committed batch.
    pub fn apply_with_progress(
        &self,
        changes: &[Change],
        today: Date,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied> {
        let mut out = self.apply_files(&[changes], today, progress)?;
        match out.refused.take() {
            Some((_, refusals)) => Err(LedgerError::Refused(refusals)),
            None => Ok(out.applied.pop().unwrap_or_default()),
        }
    }

    /// Apply several lists of changes (the files of one import, in dependency order) as one
    /// write: each list is validated in order against the store and the lists before it, and
    /// is all or nothing; the first refused list and everything after it are not written, the
    /// lists before it are. The records of the accepted lists are committed in batches, then the
    /// cell deltas of all of them, summed, so each touched block is written once per import
    /// rather than once per file; then one flush. Progress counts over the whole write.
    pub fn apply_files(
        &self,
        files: &[&[Change]],
        today: Date,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FilesApplied> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut planned = Vec::with_capacity(files.len());
        let mut refused = None;
        {
            let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
            let mut ov = Overlay::default();
            for (i, changes) in files.iter().enumerate() {
                match self.plan(&reg, &mut ov, changes, today, true)? {
                    Ok(p) => planned.push(p),
                    Err(r) => {
                        refused = Some((i, r));
                        break;
                    }
                }
            }
        }
        self.write_planned(&mut planned, progress)?;
        Ok(FilesApplied {
            applied: planned.into_iter().map(|p| p.applied).collect(),
            refused,
        })
    }

    /// Write planned lists: records (+ household index) in batches, the first of which sets
    /// the `stats_pending` marker, then the summed cell deltas, then flush.
    fn write_planned(
        &self,
        planned: &mut [Planned<'_>],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let effective: usize = planned.iter().map(|p| p.steps.len()).sum();
        if effective == 0 {
            return Ok(());
        }
        // Sum the deltas of all lists: sort their entries (each list's map is taken and
        // consumed, so the memory moves rather than doubles: a drained map keeps its table)
        // and add up equal keys.
        let mut all: Vec<(CellKey, i64)> =
            Vec::with_capacity(planned.iter().map(|p| p.deltas.len()).sum());
        for p in planned.iter_mut() {
            all.extend(std::mem::take(&mut p.deltas));
        }
        all.sort_unstable_by_key(|(k, _)| *k);
        let mut summed: Vec<(CellKey, i64)> = Vec::with_capacity(all.len());
        for (k, d) in all {
            match summed.last_mut() {
                Some((last, sum)) if *last == k => *sum += d,
                _ => summed.push((k, d)),
            }
        }
        let groups = crate::cells::group(summed.iter().copied());
        drop(summed);
        let cells: u64 = groups.iter().map(|(_, ds)| ds.len() as u64).sum();
        let total = effective + groups.len();
        let mut done = 0;
        let last = planned.len() - 1;
        let steps = planned
            .iter()
            .enumerate()
            .flat_map(|(list, p)| p.steps.iter().map(move |s| (list, s)));
        let crash_test = !groups.is_empty() && failpoint("ledger.between_records_and_cells");
        if effective <= BATCH && groups.len() <= BATCH && !crash_test {
            // A small apply (the usual day-to-day write, and what a sync burst is made of):
            // records and cells in one atomic commit, so no crash marker is needed and the
            // commit costs one sled batch instead of two or three.
            let mut ws = WriteSet::new();
            for (_, step) in steps {
                stage_record(step, &mut ws);
            }
            let reader = crate::cells::BlockReader::new(&self.store).map_err(cells_err)?;
            let mut log = crate::cells::LogWriter::new(&self.store);
            let mut seq = self.cell_seq()?;
            for (bk, ds) in &groups {
                crate::cells::stage_block(&reader, *bk, ds, &mut seq, &mut ws, &mut log)
                    .map_err(cells_err)?;
            }
            log.stage(&mut ws);
            ws.put(TreeId::Meta, META_CELL_SEQ, seq.to_be_bytes().to_vec());
            self.store.commit(ws)?;
            progress(Progress {
                list: last,
                done: total,
                total,
            });
            self.flush_store()?;
            self.mark_durable(seq);
            self.metrics.cells_applied(CellsFrom::Local, cells);
            return Ok(());
        }
        // Records (the first batch sets the crash marker), then the cells (the last batch
        // clears it). A second thread stages each batch while the last one commits.
        self.pipeline(
            |send| {
                let mut ws = WriteSet::new();
                let mut in_batch = 0;
                ws.put(TreeId::Meta, META_STATS_PENDING, Vec::new());
                for (list, step) in steps {
                    stage_record(step, &mut ws);
                    in_batch += 1;
                    if in_batch == BATCH {
                        if !send(
                            std::mem::take(&mut ws),
                            Staged::Records { list, n: in_batch },
                        ) {
                            return Ok(());
                        }
                        in_batch = 0;
                    }
                }
                if in_batch > 0
                    && !send(
                        ws,
                        Staged::Records {
                            list: last,
                            n: in_batch,
                        },
                    )
                {
                    return Ok(());
                }
                if !send(WriteSet::new(), Staged::RecordsDone) {
                    return Ok(());
                }
                self.stage_cells(&groups, &mut |ws, blocks| {
                    send(ws, Staged::Cells { blocks })
                })
                .map(|_| ())
            },
            |staged| {
                match staged {
                    Staged::Records { list, n } => {
                        done += n;
                        progress(Progress { list, done, total });
                    }
                    Staged::RecordsDone if crash_test => {
                        // Crash tests: die like kill -9 with the records durable and the cells
                        // not written.
                        self.store.flush()?;
                        std::process::abort();
                    }
                    Staged::RecordsDone => {}
                    Staged::Cells { blocks } => {
                        done += blocks;
                        progress(Progress {
                            list: last,
                            done,
                            total,
                        });
                    }
                }
                Ok(())
            },
        )?;
        self.flush_store()?;
        self.mark_durable(self.cell_seq()?);
        self.metrics.cells_applied(CellsFrom::Local, cells);
        Ok(())
    }

    /// Run `produce` on a second thread and commit each write set it hands over on this one,
    /// then call `committed` with its tag: staging a batch (encoding records, reading and
    /// re-encoding blocks) overlaps the sled commit of the one before, on two cores. Commits
    /// keep the order they were staged in; at most two batches wait.
    fn pipeline<T: Send>(
        &self,
        produce: impl FnOnce(&mut dyn FnMut(WriteSet, T) -> bool) -> Result<()> + Send,
        mut committed: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(WriteSet, T)>(2);
            let producer = scope.spawn(move || produce(&mut |ws, t| tx.send((ws, t)).is_ok()));
            let mut result = Ok(());
            for (ws, t) in rx.iter() {
                let step = if ws.is_empty() {
                    Ok(())
                } else {
                    self.store.commit(ws).map_err(LedgerError::from)
                };
                if let Err(e) = step.and_then(|()| committed(t)) {
                    result = Err(e);
                    break;
                }
            }
            // A failed commit stops the producer at its next hand-over.
            drop(rx);
            let produced = producer.join().unwrap_or_else(|_| {
                Err(LedgerError::Corrupt {
                    what: "write",
                    detail: "the staging thread panicked".into(),
                })
            });
            result.and(produced)
        })
    }

    /// Write summed deltas, grouped by block, to the cell blocks in batches; the last batch
    /// clears the `stats_pending` marker. Returns the number of cells changed.
    pub(super) fn write_cells(
        &self,
        groups: &[crate::cells::BlockDeltas],
        progress: &mut dyn FnMut(usize),
    ) -> Result<u64> {
        let mut cells = 0;
        let mut done = 0;
        self.pipeline(
            |send| {
                cells = self.stage_cells(groups, send)?;
                Ok(())
            },
            |blocks| {
                done += blocks;
                progress(done);
                Ok(())
            },
        )?;
        Ok(cells)
    }

    /// Stage the summed deltas into write sets of at most [`BATCH`] blocks, handing each to
    /// `send` with its block count (stop when it returns false); the last clears the
    /// `stats_pending` marker. Returns the number of cells changed.
    fn stage_cells(
        &self,
        groups: &[crate::cells::BlockDeltas],
        send: &mut dyn FnMut(WriteSet, usize) -> bool,
    ) -> Result<u64> {
        let reader = crate::cells::BlockReader::new(&self.store).map_err(cells_err)?;
        let mut log = crate::cells::LogWriter::new(&self.store);
        let mut seq = self.cell_seq()?;
        let mut cells = 0;
        let mut chunks = groups.chunks(BATCH).peekable();
        if chunks.peek().is_none() {
            let mut ws = WriteSet::new();
            ws.remove(TreeId::Meta, META_STATS_PENDING);
            send(ws, 0);
        }
        while let Some(chunk) = chunks.next() {
            let mut ws = WriteSet::new();
            for (bk, ds) in chunk {
                cells += crate::cells::stage_block(&reader, *bk, ds, &mut seq, &mut ws, &mut log)
                    .map_err(cells_err)?;
            }
            log.stage(&mut ws);
            ws.put(TreeId::Meta, META_CELL_SEQ, seq.to_be_bytes().to_vec());
            if chunks.peek().is_none() {
                ws.remove(TreeId::Meta, META_STATS_PENDING);
            }
            if !send(ws, chunk.len()) {
                break;
            }
        }
        Ok(cells)
    }
}

/// True when the environment variable `BOTTOMLINE_FAILPOINT` names this point. Only crash
/// tests set it; it is read once.
pub(super) fn failpoint(name: &str) -> bool {
    static ACTIVE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ACTIVE
        .get_or_init(|| std::env::var("BOTTOMLINE_FAILPOINT").ok())
        .as_deref()
        == Some(name)
}

/// What a staged write set holds (see `Ledger::pipeline`).
enum Staged {
    /// `n` records of list `list`.
    Records { list: usize, n: usize },
    /// Every record is staged (nothing to commit; the crash tests' failpoint).
    RecordsDone,
    /// `blocks` cell blocks.
    Cells { blocks: usize },
}

/// Put a step's record and household index changes into `ws`.
pub(super) fn stage_record(step: &Step<'_>, ws: &mut WriteSet) {
    let (old, new) = (step.old.as_deref(), step.new);
    // Effective steps have at least one side.
    let Some(any) = new.or(old) else { return };
    let (kind, id) = (step.kind, any.id());
    let rk = record_key(kind, id);
    match new {
        Some(n) => ws.put(TreeId::Records, rk, encode_record(n)),
        None => ws.remove(TreeId::Records, rk),
    }
    if kind != RecordKind::Household {
        let old_h = old.map(|o| o.household_code());
        let new_h = new.map(|n| n.household_code());
        if old_h != new_h {
            if let Some(h) = old_h {
                ws.remove(TreeId::ByHousehold, index_key(h, kind, id));
            }
            if let Some(h) = new_h {
                ws.put(TreeId::ByHousehold, index_key(h, kind, id), Vec::new());
            }
        }
    }
}
