//! Stored statistics cells, grouped in blocks.
//!
//! All cells of one (division, period) live in one stored value, a **block**, keyed by
//! division then period (so a subtree is a key range and a division's periods of one kind
//! are contiguous). A record touches about 15 blocks instead of 45 single cells, and a batch
//! of records shares most of them, so a county import writes a few sled keys per record
//! instead of dozens (sled costs ~5 µs per operation here; see ARCHITECTURE.md).
//!
//! Each entry keeps its value, the local change-log sequence of its last change and the
//! origin's version. A value of 0 stays as a tombstone entry so that zero travels upward.
//! The change log maps a sequence to the block changed at that sequence; a block's old log
//! entry is removed when it gets a new one, so the log holds each block once, at its latest
//! change, and a peer that acked `n` catches up by reading the log after `n` and sending the
//! entries whose sequence is above `n`. The entries of one commit are stored together, as one
//! value (see [`LogWriter`]).

use std::collections::BTreeMap;

use crate::division::{Code, CODE_KEY_LEN};
use crate::period::{Period, PERIOD_KEY_LEN};
use crate::stats::{CellKey, Stored};
use crate::store::{Bytes, Store, StoreError, TreeId, WriteSet};

/// Length of a block key: division then period.
pub const BLOCK_KEY_LEN: usize = CODE_KEY_LEN + PERIOD_KEY_LEN;
/// Format marker of block values.
const BLOCK_V1: u8 = 1;
const ENTRY_LEN: usize = 2 + 8 + 8 + 8;

/// One cell inside a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Indicator.
    pub indicator: Stored,
    /// Dimension value.
    pub dim: u8,
    /// The value (0 is a tombstone that still travels).
    pub value: i64,
    /// Local change-log sequence of the last change.
    pub seq: u64,
    /// The origin's version (equal to `seq` for the node's own cells).
    pub version: u64,
}

/// The cells of one (division, period), sorted by (indicator, dimension).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// Entries in (indicator, dim) order.
    pub entries: Vec<Entry>,
}

/// A block value that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("corrupt statistics block: {0}")]
pub struct CorruptBlock(pub String);

impl Block {
    /// Encode: marker, then fixed-size entries.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.entries.len() * ENTRY_LEN);
        v.push(BLOCK_V1);
        for e in &self.entries {
            v.push(e.indicator as u8);
            v.push(e.dim);
            v.extend_from_slice(&e.value.to_be_bytes());
            v.extend_from_slice(&e.seq.to_be_bytes());
            v.extend_from_slice(&e.version.to_be_bytes());
        }
        v
    }

    /// Decode [`Block::encode`].
    pub fn decode(b: &[u8]) -> Result<Block, CorruptBlock> {
        let Some((&BLOCK_V1, rest)) = b.split_first() else {
            return Err(CorruptBlock(format!("unknown marker {:?}", b.first())));
        };
        if rest.len() % ENTRY_LEN != 0 {
            return Err(CorruptBlock(format!("{} bytes of entries", rest.len())));
        }
        let n = |s: &[u8]| {
            // Slices of exactly 8 bytes, cut below.
            u64::from_be_bytes(s.try_into().unwrap_or_default())
        };
        let entries = rest
            .chunks_exact(ENTRY_LEN)
            .map(|c| {
                Ok(Entry {
                    indicator: Stored::from_code(c[0])
                        .ok_or_else(|| CorruptBlock(format!("unknown indicator {}", c[0])))?,
                    dim: c[1],
                    value: n(&c[2..10]) as i64,
                    seq: n(&c[10..18]),
                    version: n(&c[18..26]),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Lookups binary-search the entries: each cell once, in (indicator, dim) order.
        if let Some(w) = entries
            .windows(2)
            .find(|w| (w[0].indicator, w[0].dim) >= (w[1].indicator, w[1].dim))
        {
            return Err(CorruptBlock(format!(
                "entry {} dim {} out of order",
                w[1].indicator.name(),
                w[1].dim
            )));
        }
        Ok(Block { entries })
    }

    /// Highest sequence of any entry (the block's position in the change log).
    pub fn max_seq(&self) -> u64 {
        self.entries.iter().map(|e| e.seq).max().unwrap_or(0)
    }

    /// Add `delta` to the cell (indicator, dim), stamping it with `seq`; `None` (nothing
    /// changed) when the sum would overflow.
    #[must_use]
    pub fn add(&mut self, indicator: Stored, dim: u8, delta: i64, seq: u64) -> Option<()> {
        match self
            .entries
            .binary_search_by_key(&(indicator, dim), |e| (e.indicator, e.dim))
        {
            Ok(i) => {
                let e = &mut self.entries[i];
                e.value = e.value.checked_add(delta)?;
                e.seq = seq;
                e.version = seq;
            }
            Err(i) => self.entries.insert(
                i,
                Entry {
                    indicator,
                    dim,
                    value: delta,
                    seq,
                    version: seq,
                },
            ),
        }
        Some(())
    }
}

/// Whether the cells of `division` travel up to the parent node. Every division down to
/// county level does — a county's own cells are its whole county's totals, so every level
/// above sums them, and the province drills down to every county; the towns' and villages'
/// cells stay at the county node that holds their records (drill-down below a county is
/// asked of the county). Measured at Shaanxi size with every village's cells at the
/// province: a 1.3 GB province store and 12 GB of RSS for the tree (ARCHITECTURE.md,
/// deviations).
pub fn travels_up(division: Code) -> bool {
    division.level() <= crate::division::Level::County
}

/// The key of the block of (division, period).
pub fn block_key(division: Code, period: Period) -> [u8; BLOCK_KEY_LEN] {
    CellKey::prefix(division, period)
}

/// Decode a block key.
pub fn decode_block_key(k: &[u8]) -> Option<(Code, Period)> {
    if k.len() != BLOCK_KEY_LEN {
        return None;
    }
    Some((
        Code::from_key(&k[..CODE_KEY_LEN])?,
        Period::from_key(&k[CODE_KEY_LEN..])?,
    ))
}

/// Errors reading or writing blocks.
#[derive(Debug, thiserror::Error)]
pub enum CellsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value was undecodable.
    #[error(transparent)]
    Corrupt(#[from] CorruptBlock),
    /// A cell's value would leave the range of a 64-bit integer (a value from the wire, or a
    /// sum): refused rather than wrapped.
    #[error("cell {division} {period} {indicator} dim {dim}: {what} overflows a 64-bit value")]
    Overflow {
        /// The cell's division.
        division: Code,
        /// Its period.
        period: Period,
        /// Its indicator.
        indicator: &'static str,
        /// Its dimension.
        dim: u8,
        /// What overflowed.
        what: &'static str,
    },
}

fn overflow(
    division: Code,
    period: Period,
    ind: Stored,
    dim: u8,
    what: &'static str,
) -> CellsError {
    CellsError::Overflow {
        division,
        period,
        indicator: ind.name(),
        dim,
        what,
    }
}

/// Read one block (empty when absent).
pub fn read_block(store: &Store, division: Code, period: Period) -> Result<Block, CellsError> {
    Ok(
        match store.get(TreeId::Cells, &block_key(division, period))? {
            Some(v) => Block::decode(&v)?,
            None => Block::default(),
        },
    )
}

/// Reads blocks for a write, skipping the store lookup for a key outside the stored keys (so
/// the blocks a first import creates cost no sled read). Made before the write; only for
/// blocks not written since it was made (a write touches each block once).
pub struct BlockReader<'s> {
    store: &'s Store,
    bounds: Option<(Bytes, Bytes)>,
}

impl<'s> BlockReader<'s> {
    /// A reader of the blocks stored now.
    pub fn new(store: &'s Store) -> Result<Self, CellsError> {
        Ok(BlockReader {
            store,
            bounds: store.bounds(TreeId::Cells, b"")?,
        })
    }

    /// The block of (division, period), empty when absent.
    pub fn read(&self, division: Code, period: Period) -> Result<Block, CellsError> {
        let key = block_key(division, period);
        match &self.bounds {
            Some((first, last)) if key[..] >= first[..] && key[..] <= last[..] => {
                read_block(self.store, division, period)
            }
            _ => Ok(Block::default()),
        }
    }
}

/// The deltas of one block: its (division, period) and (indicator, dimension, delta) triples.
pub type BlockDeltas = ((Code, Period), Vec<(Stored, u8, i64)>);

/// Deltas (in key order) grouped by block; zero deltas are dropped.
pub fn group(deltas: impl IntoIterator<Item = (CellKey, i64)>) -> Vec<BlockDeltas> {
    let mut out: Vec<BlockDeltas> = Vec::new();
    for (k, d) in deltas {
        if d == 0 {
            continue;
        }
        let bk = (k.division, k.period);
        match out.last_mut() {
            Some((last, v)) if *last == bk => v.push((k.indicator, k.dim, d)),
            _ => out.push((bk, vec![(k.indicator, k.dim, d)])),
        }
    }
    out
}

/// Stage the changes of one block into `ws`: read it, add the deltas under the next sequence
/// number, move its change-log entry (via `log`). Returns the number of cells changed.
pub fn stage_block(
    reader: &BlockReader<'_>,
    (division, period): (Code, Period),
    deltas: &[(Stored, u8, i64)],
    seq: &mut u64,
    ws: &mut WriteSet,
    log: &mut LogWriter<'_>,
) -> Result<u64, CellsError> {
    let mut block = reader.read(division, period)?;
    let old_seq = block.max_seq();
    *seq += 1;
    block.entries.reserve(deltas.len());
    for &(ind, dim, d) in deltas {
        block
            .add(ind, dim, d, *seq)
            .ok_or_else(|| overflow(division, period, ind, dim, "the sum"))?;
    }
    let key = block_key(division, period);
    log.moved(old_seq)?;
    log.logged(*seq, key);
    ws.put(TreeId::Cells, key, block.encode());
    Ok(deltas.len() as u64)
}

/// Format marker of a change-log group value: then (sequence, block key) pairs in sequence
/// order. (A value of exactly one block key, keyed by its sequence, is the first layout's
/// one-block entry; it is still read.)
const LOG_GROUP_V1: u8 = 1;
const LOG_MEMBER_LEN: usize = 8 + BLOCK_KEY_LEN;

/// One member of the change log: a block and the sequence of its latest change.
pub type LogMember = (u64, [u8; BLOCK_KEY_LEN]);

/// Decode the change-log value stored under sequence `key`: its members in sequence order.
pub fn decode_log(key: u64, v: &[u8]) -> Result<Vec<LogMember>, CorruptBlock> {
    if v.len() == BLOCK_KEY_LEN {
        // One-block entry of the first layout (never 1 + n * LOG_MEMBER_LEN bytes long).
        let mut k = [0; BLOCK_KEY_LEN];
        k.copy_from_slice(v);
        return Ok(vec![(key, k)]);
    }
    let Some((&LOG_GROUP_V1, rest)) = v.split_first() else {
        return Err(CorruptBlock(format!(
            "change log: unknown marker {:?}",
            v.first()
        )));
    };
    if rest.len() % LOG_MEMBER_LEN != 0 {
        return Err(CorruptBlock(format!("change log: {} bytes", rest.len())));
    }
    let members: Vec<LogMember> = rest
        .chunks_exact(LOG_MEMBER_LEN)
        .map(|c| {
            let mut k = [0; BLOCK_KEY_LEN];
            k.copy_from_slice(&c[8..]);
            // Exactly 8 bytes, cut above.
            (u64::from_be_bytes(c[..8].try_into().unwrap_or_default()), k)
        })
        .collect();
    // What `LogWriter` writes and relies on (a binary search by sequence, the group of `s`
    // being the first key at or after `s`): increasing sequences, none above the key.
    let ordered = members.windows(2).all(|w| w[0].0 < w[1].0);
    if !ordered || members.last().is_some_and(|m| m.0 > key) {
        return Err(CorruptBlock(format!(
            "change log: the group at {key} has members out of order or above it"
        )));
    }
    Ok(members)
}

fn encode_log(members: &[LogMember]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + members.len() * LOG_MEMBER_LEN);
    v.push(LOG_GROUP_V1);
    for (seq, k) in members {
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(k);
    }
    v
}

/// Writes the change log for a series of commits.
///
/// The log holds every block once, at its latest change, as before; but the blocks of one
/// commit share **one** log value (a group), keyed by the highest sequence it was written
/// with, instead of one sled key per block (a county's first import writes ~30 000 blocks;
/// each sled operation costs microseconds). A block that changes again is removed from its
/// old group (the group is rewritten, or removed when empty), in the same commit as its new
/// entry. Groups cover disjoint sequence ranges, so the group holding sequence `s` is the
/// first key at or after `s`.
pub struct LogWriter<'s> {
    store: &'s Store,
    /// Groups of earlier commits that lost members in this series, with what remains of them.
    old: BTreeMap<u64, Vec<LogMember>>,
    /// Keys of `old` changed since the last [`LogWriter::stage`].
    dirty: Vec<u64>,
    /// The entries of the commit being staged.
    new: Vec<LogMember>,
}

impl<'s> LogWriter<'s> {
    /// A writer over the log as stored now.
    pub fn new(store: &'s Store) -> Self {
        LogWriter {
            store,
            old: BTreeMap::new(),
            dirty: Vec::new(),
            new: Vec::new(),
        }
    }

    /// The block logged at `old_seq` changes again: drop it from its group (0: never logged).
    pub fn moved(&mut self, old_seq: u64) -> Result<(), CellsError> {
        if old_seq == 0 {
            return Ok(());
        }
        let cached = self
            .old
            .range(old_seq..)
            .next()
            .filter(|(_, m)| m.binary_search_by_key(&old_seq, |e| e.0).is_ok())
            .map(|(k, _)| *k);
        let gkey = match cached {
            Some(k) => k,
            None => {
                let Some(r) = self
                    .store
                    .range_from(TreeId::CellLog, &old_seq.to_be_bytes())
                    .next()
                else {
                    return Ok(());
                };
                let (k, v) = r?;
                let gkey = seq_of(&k)?;
                if let std::collections::btree_map::Entry::Vacant(e) = self.old.entry(gkey) {
                    e.insert(decode_log(gkey, &v)?);
                }
                gkey
            }
        };
        if let Some(members) = self.old.get_mut(&gkey) {
            if let Ok(i) = members.binary_search_by_key(&old_seq, |e| e.0) {
                members.remove(i);
                self.dirty.push(gkey);
            }
        }
        Ok(())
    }

    /// The block `key` changed at `seq` (in increasing order within a commit).
    pub fn logged(&mut self, seq: u64, key: [u8; BLOCK_KEY_LEN]) {
        self.new.push((seq, key));
    }

    /// Stage the log changes since the last call into `ws` (the commit that writes the
    /// blocks).
    pub fn stage(&mut self, ws: &mut WriteSet) {
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for k in self.dirty.drain(..) {
            match self.old.get(&k) {
                Some(m) if !m.is_empty() => ws.put(TreeId::CellLog, k.to_be_bytes(), encode_log(m)),
                _ => ws.remove(TreeId::CellLog, k.to_be_bytes()),
            }
        }
        if let Some(&(last, _)) = self.new.last() {
            ws.put(TreeId::CellLog, last.to_be_bytes(), encode_log(&self.new));
            self.new.clear();
        }
    }
}

/// The sequence of a change-log key.
pub fn seq_of(k: &[u8]) -> Result<u64, CorruptBlock> {
    k.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| CorruptBlock(format!("change log: {} byte key", k.len())))
}

/// A cell as it travels between nodes: absolute value and the origin's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Address.
    pub key: CellKey,
    /// Absolute value (0 included).
    pub value: i64,
    /// The origin's version of the value; a receiver keeps the higher.
    pub version: u64,
}

/// Stage replicated cells of one block into `ws`: each cell replaces the stored one only when
/// its version is higher (so duplicates, replays and reordering change nothing). Returns the
/// value changes `(indicator, dim, new - old)` that were applied; the block gets the next
/// sequence number only when something changed.
pub fn stage_replica_block(
    reader: &BlockReader<'_>,
    (division, period): (Code, Period),
    cells: &[Replica],
    seq: &mut u64,
    ws: &mut WriteSet,
    log: &mut LogWriter<'_>,
) -> Result<Vec<(Stored, u8, i64)>, CellsError> {
    let mut block = reader.read(division, period)?;
    let old_seq = block.max_seq();
    let mut changed = Vec::new();
    let next = *seq + 1;
    for c in cells {
        let (ind, dim) = (c.key.indicator, c.key.dim);
        match block
            .entries
            .binary_search_by_key(&(ind, dim), |e| (e.indicator, e.dim))
        {
            Ok(i) => {
                let e = &mut block.entries[i];
                if c.version <= e.version {
                    continue;
                }
                let d = c.value.checked_sub(e.value).ok_or_else(|| {
                    overflow(division, period, ind, dim, "the change of the value")
                })?;
                changed.push((ind, dim, d));
                e.value = c.value;
                e.version = c.version;
                e.seq = next;
            }
            Err(i) => {
                changed.push((ind, dim, c.value));
                block.entries.insert(
                    i,
                    Entry {
                        indicator: ind,
                        dim,
                        value: c.value,
                        seq: next,
                        version: c.version,
                    },
                );
            }
        }
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    *seq = next;
    let key = block_key(division, period);
    log.moved(old_seq)?;
    log.logged(next, key);
    ws.put(TreeId::Cells, key, block.encode());
    Ok(changed)
}

/// Flatten a block into (cell key, entry) pairs.
pub fn cells_of_block(
    division: Code,
    period: Period,
    block: &Block,
) -> impl Iterator<Item = (CellKey, Entry)> + '_ {
    block.entries.iter().map(move |e| {
        (
            CellKey {
                division,
                period,
                indicator: e.indicator,
                dim: e.dim,
            },
            *e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trip_and_add() {
        let mut b = Block::default();
        b.add(Stored::Measures, 3, 2, 7).unwrap();
        b.add(Stored::SignalsBySource, 1, 1, 8).unwrap();
        b.add(Stored::Measures, 3, -2, 9).unwrap();
        assert_eq!(b.entries.len(), 2);
        assert_eq!(b.entries[0].indicator, Stored::SignalsBySource);
        assert_eq!(b.entries[1].value, 0, "zero stays as a tombstone");
        assert_eq!(b.max_seq(), 9);
        assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        assert!(Block::decode(&[9]).is_err());
        assert!(Block::decode(&[BLOCK_V1, 1, 2]).is_err());
    }

    #[test]
    fn blocks_and_log_groups_out_of_order_are_corrupt() {
        // Found by fuzzing (node/fuzz, store_values): the decoders took entries and members
        // in any order, which the binary searches of `Block::add`, `stage_replica_block` and
        // `LogWriter::moved` then missed (a cell counted twice, a block logged twice).
        let mut b = Block::default();
        b.add(Stored::Measures, 3, 2, 7).unwrap();
        b.add(Stored::SignalsBySource, 1, 1, 8).unwrap();
        let v = b.encode();
        let mut swapped = vec![BLOCK_V1];
        swapped.extend_from_slice(&v[1 + ENTRY_LEN..]);
        swapped.extend_from_slice(&v[1..1 + ENTRY_LEN]);
        assert!(Block::decode(&swapped).is_err());
        let mut twice = v.clone();
        twice.extend_from_slice(&v[1..1 + ENTRY_LEN]);
        assert!(Block::decode(&twice).is_err());

        let k = |i: u8| [i; BLOCK_KEY_LEN];
        let members = [(5, k(1)), (9, k(2))];
        assert_eq!(decode_log(9, &encode_log(&members)).unwrap(), members);
        assert_eq!(decode_log(12, &encode_log(&members)).unwrap(), members);
        assert!(
            decode_log(8, &encode_log(&members)).is_err(),
            "a member above its key"
        );
        assert!(decode_log(9, &encode_log(&[(9, k(2)), (5, k(1))])).is_err());
        assert!(decode_log(9, &encode_log(&[(5, k(1)), (5, k(2))])).is_err());
        assert_eq!(
            decode_log(4, &k(3)).unwrap(),
            [(4, k(3))],
            "the first layout"
        );
    }

    #[test]
    fn a_sum_that_would_wrap_is_refused_and_changes_nothing() {
        let mut b = Block::default();
        b.add(Stored::Measures, 3, i64::MIN, 1).unwrap();
        assert_eq!(b.add(Stored::Measures, 3, -1, 2), None);
        assert_eq!((b.entries[0].value, b.max_seq()), (i64::MIN, 1));
        b.add(Stored::Measures, 3, i64::MAX, 3).unwrap();
        assert_eq!(b.entries[0].value, -1);
    }
}
