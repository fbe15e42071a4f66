//! What the stored cells say: all of them, what travels up, a recomputation from the records
//! (what they must equal), the indicators of a division and period, and the `CellSource` the
//! statistics read through.

use super::*;
use std::collections::HashSet;

/// Most indicator sets the cache keeps (~6 KB each): a province's 107 counties for a few
/// periods and a trend or two.
const MAX_CACHED_INDICATORS: usize = 1024;

/// Log entries a catch-up reads at most before it drops the whole cache instead.
const MAX_CATCH_UP: usize = 50_000;

/// Indicators by (division, period), as of the committed change-log head `gen`.
#[derive(Default)]
pub(super) struct IndicatorCache {
    gen: u64,
    map: HashMap<(Code, Period), Arc<Indicators>>,
}

impl Ledger {
    /// Every stored cell with a non-zero value (for checks and tests).
    pub fn all_cells(&self) -> Result<BTreeMap<CellKey, i64>> {
        self.cells_where(&|_, _| true)
    }

    /// The stored non-zero cells of the blocks (division, period) `inside` takes (only
    /// those blocks are decoded).
    pub(super) fn cells_where(
        &self,
        inside: &dyn Fn(Code, Period) -> bool,
    ) -> Result<BTreeMap<CellKey, i64>> {
        let blocks = self.store.scan_prefix(TreeId::Cells, b"").filter(|r| {
            // A key that does not decode is kept: `scan_cells` reports it.
            r.as_ref().map_or(true, |(k, _)| {
                crate::cells::decode_block_key(k).is_none_or(|(d, p)| inside(d, p))
            })
        });
        Ok(self.scan_cells(blocks)?.into_iter().collect())
    }

    /// The non-zero cells that travel up to the parent ([`crate::cells::travels_up`]): what
    /// the parent holds of this node once it caught up.
    pub fn upward_cells(&self) -> Result<BTreeMap<CellKey, i64>> {
        let mut out = self.all_cells()?;
        out.retain(|k, _| crate::cells::travels_up(k.division));
        Ok(out)
    }

    /// Recompute every cell from the stored records (what the cells must equal).
    pub fn recompute_cells(&self) -> Result<BTreeMap<CellKey, i64>> {
        self.recompute_cells_where(&|_, _| true)
    }

    /// Recompute the cells of the blocks (division, period) `inside` takes: every record is
    /// read, only those cells are kept.
    pub(super) fn recompute_cells_where(
        &self,
        inside: &dyn Fn(Code, Period) -> bool,
    ) -> Result<BTreeMap<CellKey, i64>> {
        /// Household reads remembered at most (a county has ~100 000 households).
        const REMEMBERED: usize = 4096;
        let mut out: BTreeMap<CellKey, i64> = BTreeMap::new();
        let mut overlay = Overlay::default();
        for kind in RecordKind::ALL {
            for r in self.records(kind) {
                let r = r?;
                let hh = if stats::depends_on_household(&r) {
                    let read = &mut overlay.read[kind_index(RecordKind::Household)];
                    if read.len() >= REMEMBERED {
                        read.clear();
                    }
                    self.household(&mut overlay, r.household_code())?
                } else {
                    None
                };
                stats::contributions(&r, hh.as_ref(), self.division, &mut |k, v| {
                    if inside(k.division, k.period) {
                        *out.entry(k).or_insert(0) += v;
                    }
                });
            }
        }
        let mut tickets = BTreeMap::new();
        self.ticket_cells_into(&mut tickets)?;
        for (k, v) in tickets {
            if inside(k.division, k.period) {
                *out.entry(k).or_insert(0) += v;
            }
        }
        out.retain(|_, v| *v != 0);
        Ok(out)
    }

    /// [`Ledger::indicators`], shared: from the cache while none of the division's blocks
    /// changed since they were computed. The cache knows what changed from the change log
    /// itself: when the committed head moved from `gen` on, the divisions of every log entry
    /// after `gen` are dropped from it (each block sits in the log once, at its latest change,
    /// so reading the log from `gen + 1` to its end finds every block changed since). A
    /// county's replica arriving at the province drops that county's, its city's and the
    /// province's indicators and keeps the other 106 counties'. A report of 107 counties
    /// reads ~2 500 blocks otherwise.
    pub fn indicators_shared(&self, division: Code, period: Period) -> Result<Arc<Indicators>> {
        let gen = {
            let mut c = self
                .indicators_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.cache_catch_up(&mut c)?;
            if let Some(i) = c.map.get(&(division, period)) {
                return Ok(i.clone());
            }
            c.gen
        };
        let ind = Arc::new(self.indicators(division, period)?);
        let mut c = self
            .indicators_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Read from what the store held after `gen` (and perhaps newer): whatever changed
        // after `gen` is in the log above it, where the next catch-up finds it — unless the
        // cache already caught up past `gen` meanwhile, when it might not look there again.
        if c.gen == gen {
            if c.map.len() >= MAX_CACHED_INDICATORS {
                c.map.clear();
            }
            c.map.insert((division, period), ind.clone());
        }
        Ok(ind)
    }

    /// Bring the cache up to the committed head: drop the indicators of every division with a
    /// block in the change log after the cache's generation (everything when that is more
    /// than [`MAX_CATCH_UP`] entries).
    fn cache_catch_up(&self, c: &mut IndicatorCache) -> Result<()> {
        // The committed head, not the durable one: a change the store already shows (a
        // commit whose flush is under way) must not be answered from the cache.
        let head = self.cell_seq()?;
        if c.gen == head {
            return Ok(());
        }
        if c.map.is_empty() || head < c.gen {
            c.map.clear();
            c.gen = head;
            return Ok(());
        }
        let mut changed: HashSet<Code> = HashSet::new();
        let mut seen = 0usize;
        let start = (c.gen + 1).to_be_bytes();
        'log: for r in self.store.range_from(TreeId::CellLog, &start) {
            let (k, v) = r?;
            let gkey = crate::cells::seq_of(&k).map_err(log_err)?;
            for (_, bk) in crate::cells::decode_log(gkey, &v).map_err(log_err)? {
                seen += 1;
                if seen > MAX_CATCH_UP {
                    changed.clear();
                    c.map.clear();
                    break 'log;
                }
                match crate::cells::decode_block_key(&bk) {
                    Some((d, _)) => {
                        changed.insert(d);
                    }
                    None => {
                        c.map.clear();
                        break 'log;
                    }
                }
            }
        }
        if !changed.is_empty() {
            c.map.retain(|(d, _), _| !changed.contains(d));
        }
        c.gen = head;
        Ok(())
    }

    /// Indicators of `division` (in this node's subtree) for `period`.
    pub fn indicators(&self, division: Code, period: Period) -> Result<Indicators> {
        stats::indicators(self, division, period).map_err(|detail| LedgerError::Corrupt {
            what: "cells",
            detail,
        })
    }
}

impl CellSource for Ledger {
    fn cells_of(
        &self,
        division: Code,
        period: Period,
    ) -> std::result::Result<Vec<(CellKey, i64)>, String> {
        let block =
            crate::cells::read_block(&self.store, division, period).map_err(|e| e.to_string())?;
        Ok(crate::cells::cells_of_block(division, period, &block)
            .filter(|(_, e)| e.value != 0)
            .map(|(k, e)| (k, e.value))
            .collect())
    }

    fn cells_between(
        &self,
        division: Code,
        from: Period,
        to: Period,
    ) -> std::result::Result<Vec<(CellKey, i64)>, String> {
        let start = crate::cells::block_key(division, from);
        let end = crate::cells::block_key(division, to);
        self.scan_cells(self.store.range(TreeId::Cells, &start, &end))
            .map_err(|e| e.to_string())
    }
}

impl Ledger {
    /// Non-zero cells of the blocks an iterator yields.
    pub(super) fn scan_cells(
        &self,
        it: impl Iterator<
            Item = std::result::Result<(crate::store::Bytes, crate::store::Bytes), StoreError>,
        >,
    ) -> Result<Vec<(CellKey, i64)>> {
        let mut out = Vec::new();
        for r in it {
            let (k, v) = r?;
            let (division, period) = decode_block_key(&k)?;
            let block = crate::cells::Block::decode(&v).map_err(|e| cells_err(e.into()))?;
            out.extend(
                crate::cells::cells_of_block(division, period, &block)
                    .filter(|(_, e)| e.value != 0)
                    .map(|(k, e)| (k, e.value)),
            );
        }
        Ok(out)
    }
}

fn decode_block_key(k: &[u8]) -> Result<(Code, Period)> {
    crate::cells::decode_block_key(k).ok_or_else(|| LedgerError::Corrupt {
        what: "cell block key",
        detail: format!("{} bytes", k.len()),
    })
}
