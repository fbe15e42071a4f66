//! The sync side of the ledger: what the uplink reads (sweeps of the change log, the
//! backlog) and what a parent keeps of its children (their cells as replicas, applied
//! idempotently with their durable positions, invariants 11 and 12).

use super::*;

impl Ledger {
    /// One step of a **sweep** over the change log (what the sync sender calls).
    ///
    /// A sweep starts at a floor `F` (everything changed at or before `F` was delivered) and
    /// reads the blocks logged after position `pos`, at most `limit` of them, returning their
    /// entries changed after `F`, zeros included. A block that changes again while a sweep is
    /// under way moves to a higher log position, where the same sweep reads it again, so when a
    /// step reaches the head (`Sweep::complete`), everything changed after `F` has been
    /// returned and the new floor is the head. Filtering by the *floor* rather than by `pos` is
    /// what makes that true (an entry changed at a position the reader already passed may sit in
    /// a block that has since moved ahead). Runs under the write lock, where everything
    /// committed is also flushed, so nothing unflushed leaves the node.
    pub fn sweep(&self, floor: u64, pos: u64, limit: usize) -> Result<Sweep> {
        self.sweep_capped(floor, pos, limit, usize::MAX)
    }

    /// [`Ledger::sweep`] that also stops before a block that would take the step past
    /// `max_cells` cells (a step's first block goes whole, whatever its size, so a sweep always
    /// moves). The uplink passes `link::MAX_SWEEP_CELLS`, which bounds a batch's bytes on the
    /// wire.
    pub fn sweep_capped(
        &self,
        floor: u64,
        pos: u64,
        limit: usize,
        max_cells: usize,
    ) -> Result<Sweep> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        // Writers commit under the write lock but may flush after releasing it (group
        // commit); make everything committed durable first, so the log read below is exactly
        // the durable state and no block can sit above the durable head.
        self.flush_through(self.commits.load(std::sync::atomic::Ordering::SeqCst))?;
        let head = self.durable_seq();
        let mut out = Sweep {
            cells: Vec::new(),
            pos,
            complete: pos >= head,
        };
        if pos >= head {
            self.note_sweep(true);
            return Ok(out);
        }
        let start = (pos + 1).to_be_bytes();
        let end = (head + 1).to_be_bytes();
        let mut read = 0;
        let mut more = false;
        'groups: for r in self.store.range(TreeId::CellLog, &start, &end) {
            let (k, v) = r?;
            let gkey = crate::cells::seq_of(&k).map_err(log_err)?;
            for (seq, bk) in crate::cells::decode_log(gkey, &v).map_err(log_err)? {
                if seq <= out.pos {
                    continue; // read by an earlier step of this sweep
                }
                if read == limit || out.cells.len() >= max_cells {
                    more = true;
                    break 'groups;
                }
                let (division, period) =
                    crate::cells::decode_block_key(&bk).ok_or_else(|| LedgerError::Corrupt {
                        what: "cell log",
                        detail: "undecodable block key".into(),
                    })?;
                if !crate::cells::travels_up(division) {
                    read += 1;
                    out.pos = seq;
                    continue; // a town's or village's cells stay here
                }
                let block =
                    crate::cells::read_block(&self.store, division, period).map_err(cells_err)?;
                let changed: Vec<_> = crate::cells::cells_of_block(division, period, &block)
                    .filter(|(_, e)| e.seq > floor)
                    .collect();
                if !out.cells.is_empty() && out.cells.len() + changed.len() > max_cells {
                    more = true; // the next step starts with this block
                    break 'groups;
                }
                read += 1;
                out.pos = seq;
                out.cells.extend(changed.into_iter().map(|(key, e)| {
                    (
                        key,
                        CellValue {
                            value: e.value,
                            seq: e.seq,
                            // What the parent orders by: this node's sequence (a child's
                            // version held here is only meaningful here).
                            version: e.seq,
                        },
                    )
                }));
            }
            // The whole group is read: every position up to its key is passed.
            out.pos = gkey;
        }
        if !more {
            out.pos = head;
            out.complete = true;
        }
        self.note_sweep(out.complete);
        Ok(out)
    }

    /// Number of blocks changed after log position `after` (a peer's backlog).
    pub fn backlog(&self, after: u64) -> Result<u64> {
        let start = (after + 1).to_be_bytes();
        let mut n = 0;
        for r in self.store.range_from(TreeId::CellLog, &start) {
            let (k, v) = r?;
            let gkey = crate::cells::seq_of(&k).map_err(log_err)?;
            let members = crate::cells::decode_log(gkey, &v).map_err(log_err)?;
            n += members.iter().filter(|(s, _)| *s > after).count() as u64;
        }
        Ok(n)
    }

    /// Resolves after the next flush that made cell changes durable.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The sweep floor of child `child` this node has made durable: everything the child
    /// changed at or before it is here.
    pub fn child_acked(&self, child: Code) -> Result<u64> {
        Ok(self.child_resume(child)?.0)
    }

    /// Where child `child` resumes: `(floor, pos)` of its sweep as made durable here — every
    /// change at or before `floor` is here, and the sweep from `floor` has delivered the blocks
    /// logged up to `pos` (so a child killed in the middle of a long sweep continues it instead
    /// of starting over; see `Ledger::sweep`).
    pub fn child_resume(&self, child: Code) -> Result<(u64, u64)> {
        let n = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        Ok(match self.store.get(TreeId::Meta, &child_ack_key(child))? {
            Some(v) if v.len() == 16 => (n(&v[..8]), n(&v[8..16])),
            Some(v) if v.len() == 8 => (n(&v[..8]), n(&v[..8])),
            _ => (0, 0),
        })
    }

    /// Every child that ever delivered cells: its durable floor and the time (Unix ms) of its
    /// last delivered batch, in code order.
    pub fn known_children(&self) -> Result<Vec<KnownChild>> {
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::Meta, CHILD_ACK_PREFIX) {
            let (k, v) = r?;
            let Some(division) = Code::from_key(&k[CHILD_ACK_PREFIX.len()..]) else {
                continue;
            };
            let last_batch_unix_ms =
                match self.store.get(TreeId::Meta, &child_contact_key(division))? {
                    Some(t) if t.len() == 8 => {
                        i64::from_be_bytes(t[..8].try_into().unwrap_or_default())
                    }
                    _ => 0,
                };
            out.push(KnownChild {
                division,
                acked: u64::from_be_bytes(
                    v.get(..8)
                        .unwrap_or_default()
                        .try_into()
                        .unwrap_or_default(),
                ),
                last_batch_unix_ms,
            });
        }
        Ok(out)
    }

    /// Apply cells replicated from direct child `child`, a batch of its sweep from floor `upto`
    /// read up to log position `pos`:
    /// every cell must lie in the child's subtree; a cell replaces the stored one only when
    /// its version is higher; changes of the child's own cells move this node's aggregate
    /// cells by the difference. The cells, the aggregates and the child's position are one
    /// atomic commit, flushed before this returns (so the caller may ack `upto`).
    pub fn apply_replicas(
        &self,
        child: Code,
        cells: &[Replica],
        upto: u64,
        pos: u64,
    ) -> Result<u64> {
        if child.parent() != Some(self.division) {
            return Err(LedgerError::NotInSubtree {
                division: child,
                node: self.division,
            });
        }
        if let Some(c) = cells.iter().find(|c| !child.contains(c.key.division)) {
            return Err(LedgerError::NotInSubtree {
                division: c.key.division,
                node: child,
            });
        }
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        // The child's versions as held here: in its current generation (`restored.rs`).
        let store = self.child_generation(child)?;
        // Cells of towns and villages stay at their county (`cells::travels_up`): one an
        // older child sends is not kept.
        let mut sorted = cells
            .iter()
            .filter(|c| crate::cells::travels_up(c.key.division))
            .map(|c| {
                Ok(Replica {
                    version: store.version(c.version).ok_or_else(|| {
                        LedgerError::BadReplica(format!(
                            "cell {} {} {} dim {} from {child} has version {}, above 2^{}",
                            c.key.division,
                            c.key.period,
                            c.key.indicator.name(),
                            c.key.dim,
                            c.version,
                            crate::lineage::VERSION_BITS
                        ))
                    })?,
                    ..*c
                })
            })
            .collect::<Result<Vec<Replica>>>()?;
        let mut seq = self.cell_seq()?;
        let mut log = crate::cells::LogWriter::new(&self.store);
        let mut ws = WriteSet::new();
        let changed = self.stage_child_cells(child, &mut sorted, &mut seq, &mut ws, &mut log)?;
        log.stage(&mut ws);
        ws.put(TreeId::Meta, META_CELL_SEQ, seq.to_be_bytes().to_vec());
        // A replayed old batch must not move the child's position back: (floor, pos) only
        // grows, in that order (a completed sweep has floor = pos = its head).
        let (floor, pos) = (upto, pos.max(upto)).max(self.child_resume(child)?);
        self.stage_child_position(child, (floor, pos), &mut ws);
        // Group commit: batches of several children committed meanwhile share one flush.
        self.commit_then_flush(w, ws)?;
        self.metrics.cells_applied(CellsFrom::Child, changed);
        Ok(changed)
    }
}

impl Ledger {
    /// Stage cells of child `child`'s subtree (`cells`, with their versions as held here;
    /// sorted in place) over what is held: a cell replaces the stored one only when its
    /// version is higher, and changes of the child's own division's cells move this node's
    /// aggregate cells by the difference. Returns the number of cells changed.
    pub(super) fn stage_child_cells(
        &self,
        child: Code,
        cells: &mut [Replica],
        seq: &mut u64,
        ws: &mut WriteSet,
        log: &mut crate::cells::LogWriter<'_>,
    ) -> Result<u64> {
        cells.sort_by_key(|c| c.key);
        let reader = crate::cells::BlockReader::new(&self.store).map_err(cells_err)?;
        let mut aggregate: BTreeMap<CellKey, i64> = BTreeMap::new();
        let mut changed = 0;
        for group in
            cells.chunk_by(|a, b| (a.key.division, a.key.period) == (b.key.division, b.key.period))
        {
            let bk = (group[0].key.division, group[0].key.period);
            let deltas = crate::cells::stage_replica_block(&reader, bk, group, seq, ws, log)
                .map_err(cells_err)?;
            changed += deltas.len() as u64;
            if bk.0 == child {
                for (indicator, dim, d) in deltas {
                    let k = CellKey {
                        division: self.division,
                        period: bk.1,
                        indicator,
                        dim,
                    };
                    let a = aggregate.entry(k).or_insert(0);
                    *a = a.checked_add(d).ok_or_else(|| {
                        cells_err(crate::cells::CellsError::Overflow {
                            division: self.division,
                            period: bk.1,
                            indicator: indicator.name(),
                            dim,
                            what: "the sum of the children's changes",
                        })
                    })?;
                }
            }
        }
        for (bk, ds) in crate::cells::group(aggregate.iter().map(|(k, d)| (*k, *d))) {
            crate::cells::stage_block(&reader, bk, &ds, seq, ws, log).map_err(cells_err)?;
        }
        Ok(changed)
    }

    /// Stage child `child`'s sweep position `(floor, pos)` as held here, and the time of
    /// contact.
    pub(super) fn stage_child_position(
        &self,
        child: Code,
        (floor, pos): (u64, u64),
        ws: &mut WriteSet,
    ) {
        let mut v = floor.to_be_bytes().to_vec();
        v.extend_from_slice(&pos.to_be_bytes());
        ws.put(TreeId::Meta, child_ack_key(child), v);
        ws.put(
            TreeId::Meta,
            child_contact_key(child),
            unix_ms_now().to_be_bytes().to_vec(),
        );
    }
}

const CHILD_ACK_PREFIX: &[u8] = b"child_acked/";

fn child_ack_key(child: Code) -> Vec<u8> {
    let mut k = CHILD_ACK_PREFIX.to_vec();
    k.extend_from_slice(&child.key());
    k
}

fn child_contact_key(child: Code) -> Vec<u8> {
    let mut k = b"child_contact/".to_vec();
    k.extend_from_slice(&child.key());
    k
}

/// A child known from its durable sync position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownChild {
    /// The child's division.
    pub division: Code,
    /// Its sweep floor made durable here.
    pub acked: u64,
    /// When its last batch was applied (Unix ms; 0 if unknown).
    pub last_batch_unix_ms: i64,
}
