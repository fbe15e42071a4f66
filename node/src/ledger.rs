//! The ledger: a node's records and statistics cells, written together.
//!
//! Every write goes through [`Ledger::apply`]: a list of [`Change`]s is first validated as a
//! whole (nothing is written if any change is refused). Then the cell deltas of all changes
//! are summed in memory, the records are committed in batches of [`BATCH`], and the summed
//! deltas are committed to the cell blocks (see `cells`) in batches of [`BATCH`] blocks.
//! Summing over the whole apply writes each touched block once, not once per batch.
//!
//! **Records and cells never disagree after a crash**: the first records batch also sets a
//! `stats_pending` marker that the last cells batch clears, atomically with its writes. A node
//! that opens with the marker set died in between; it recomputes its cells from its records,
//! writes the differences (as ordinary cell changes, so they travel upward) and clears it.
//!
//! Cells change by delta: a correction subtracts the old record's contributions and adds the
//! new one's (see `stats::contributions`). Each changed block gets the next local sequence
//! number; the change log keeps only the latest sequence of each block, so a peer that acked
//! up to `n` catches up by reading the log after `n` — only what changed, never a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use jiff::civil::Date;

use crate::cells::Replica;
use crate::division::{Code, Division, Level, Registry};
use crate::domain::{FieldError, Household, Record, RecordKind};
use crate::period::Period;
use crate::stats::{self, CellKey, CellSource, Indicators};
use crate::store::{Bytes, Store, StoreError, StoreOptions, TreeId, WriteSet};

mod cells_read;
mod check;
mod durable;
mod metrics;
mod replicas;
mod restored;
mod spot_checks;
pub(crate) mod stream;
mod ticket_log;
mod workflow;
mod write;
pub use check::{CheckReport, Mismatch};
pub use metrics::{CellsFrom, LedgerMetrics};
pub use replicas::KnownChild;
pub use restored::ChildLinked;
pub use spot_checks::{inventory_name, Draw, FindingSpec, Recorded, Verification};
pub use stream::StreamedWrite;
pub use ticket_log::{sub_id, Act, LogEntry, Logged, MAX_BACKLOG_SCAN, MAX_SCAN};
pub use workflow::{CaseDue, CaseStep, Decision, NewCase, WarnOutcome, DUE_DAYS};
use write::{failpoint, stage_record};

/// Records (or cell blocks) per atomic commit (sled is fastest and leanest at about 1 000;
/// see GUIDE.md).
pub const BATCH: usize = 1000;

/// Format marker of record values.
const RECORD_V1: u8 = 1;
const META_DIVISION: &[u8] = b"division";
const META_CELL_SEQ: &[u8] = b"cell_seq";
/// The store's identity and lineage (`lineage.rs`).
const META_STORE_IDENTITY: &[u8] = b"store_identity";
/// Set while an apply has written records whose cell deltas are not all written yet.
const META_STATS_PENDING: &[u8] = b"stats_pending";

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data dir has no division yet.
    #[error("data dir {0} is not initialised: give it a division with --division CODE")]
    NotInitialised(String),
    /// The data dir belongs to another division.
    #[error("data dir {dir} belongs to division {has}, not {wanted}")]
    WrongDivision {
        /// Data dir.
        dir: String,
        /// Its division.
        has: Code,
        /// The division asked for.
        wanted: Code,
    },
    /// Some changes were refused; nothing was written.
    #[error("{} change(s) refused; nothing was written", .0.len())]
    Refused(Vec<Refusal>),
    /// A cell or a child outside the subtree it must belong to.
    #[error("division {division} is not in the subtree of {node}")]
    NotInSubtree {
        /// The offending division.
        division: Code,
        /// Whose subtree it had to be in.
        node: Code,
    },
    /// A ticket action or event the state machine refuses.
    #[error(transparent)]
    Ticket(Box<crate::tickets::TicketError>),
    /// A ticket request this node refuses (who may act here, what a peer may deliver).
    #[error("{0}")]
    TicketRefused(String),
    /// A workflow action this node refuses (department data, a case, an elimination); the
    /// message says why.
    #[error("{0}")]
    Workflow(String),
    /// A replicated value this node refuses (its version out of range).
    #[error("refused, nothing written: {0}")]
    BadReplica(String),
    /// A value, or a sum of values, would leave the 64-bit range; nothing was written.
    #[error("refused, nothing written: {0}")]
    Overflow(String),
    /// A stored value could not be decoded.
    #[error("corrupt {what} in the store: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Details.
        detail: String,
    },
}

impl From<crate::tickets::TicketError> for LedgerError {
    fn from(e: crate::tickets::TicketError) -> Self {
        LedgerError::Ticket(Box::new(e))
    }
}

/// Why one change of a list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Position of the change in the list given to `apply`.
    pub index: usize,
    /// Which field and why.
    pub error: FieldError,
}

/// Result alias.
pub type Result<T> = std::result::Result<T, LedgerError>;

/// One write.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Insert, or correct when a record of the same kind and id exists.
    Put(Record),
    /// Remove a record (a household only when nothing refers to it).
    Delete(RecordKind, String),
}

/// One step of a change-log sweep (see [`Ledger::sweep`]).
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// Cells changed after the sweep's floor, from the blocks read.
    pub cells: Vec<(CellKey, CellValue)>,
    /// The log position read up to.
    pub pos: u64,
    /// True when `pos` is the durable head: the sweep is complete and `pos` is the new floor.
    pub complete: bool,
}

/// What an `apply` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// New records.
    pub inserted: u64,
    /// Corrections of existing records.
    pub corrected: u64,
    /// Records removed.
    pub deleted: u64,
    /// Changes that matched what was stored (idempotent re-import).
    pub unchanged: u64,
    /// Statistics cells written.
    pub cells_written: u64,
}

/// Progress of a long apply, for user feedback.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Which list of an [`Ledger::apply_files`] is being written (0 for `apply`); while the
    /// cells are written, the last one.
    pub list: usize,
    /// Changes written so far.
    pub done: usize,
    /// Changes to write in all.
    pub total: usize,
}

/// A node's records and cells.
pub struct Ledger {
    store: Store,
    division: Code,
    /// Shared: a reader takes the `Arc` (cheap), a writer copies it on write.
    registry: RwLock<Arc<Registry>>,
    /// Serialises writers: reads for a batch happen outside the sled transaction, so there
    /// must be a single writer (see `store`).
    write: Mutex<()>,
    /// Woken after every flush that made cell changes durable.
    changed: tokio::sync::Notify,
    /// Highest cell log position known to be flushed: the sync layer sends nothing above it.
    durable: std::sync::atomic::AtomicU64,
    /// One flusher at a time; writers that committed while a flush ran share the next one
    /// (group commit, see [`Ledger::flush_through`]).
    flush: Mutex<()>,
    /// Commits that flush after releasing the write lock, counted when committed …
    commits: std::sync::atomic::AtomicU64,
    /// … and the count covered by the last completed flush.
    flushed: std::sync::atomic::AtomicU64,
    /// Highest ticket-log position known to be flushed.
    ticket_durable: std::sync::atomic::AtomicU64,
    /// Woken after every flush that made ticket events durable.
    tickets_changed: tokio::sync::Notify,
    /// Recent ticket-log entries (see `ticket_log`).
    ticket_cache: ticket_log::LogCache,
    /// The key that seals the ticket events created here (nodes running mTLS).
    signing_key: std::sync::OnceLock<Arc<crate::security::sign::NodeKey>>,
    /// Signer certificates read from the store, by fingerprint.
    certs: Mutex<std::collections::HashMap<crate::security::sign::Hash, Arc<Vec<u8>>>>,
    /// The store's identity, with the incarnation this process started (`lineage.rs`).
    identity: crate::lineage::StoreIdentity,
    /// Indicators computed since the cells last became durable (`cells_read.rs`).
    indicators_cache: Mutex<cells_read::IndicatorCache>,
    /// Flush times and applied cells, for `/metrics` (`ledger/metrics.rs`).
    metrics: LedgerMetrics,
    /// When a sweep step last stopped short of the head (the uplink has a backlog to send);
    /// `None` once a step reached it. The background check yields to it (`check.rs`).
    sweep_unfinished: Mutex<Option<std::time::Instant>>,
}

/// Store key of a record: kind, then id.
pub fn record_key(kind: RecordKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(kind as u8);
    k.extend_from_slice(id.as_bytes());
    k
}

fn index_key(household: &str, kind: RecordKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(household.len() + 2 + id.len());
    k.extend_from_slice(household.as_bytes());
    k.push(0);
    k.push(kind as u8);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Stored form of a record: format marker, then JSON.
pub fn encode_record(r: &Record) -> Vec<u8> {
    let mut v = vec![RECORD_V1];
    // Serialising plain data structs to a Vec cannot fail.
    serde_json::to_writer(&mut v, r).unwrap_or_default();
    v
}

fn decode_record(v: &[u8]) -> Result<Record> {
    match v.split_first() {
        Some((&RECORD_V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| LedgerError::Corrupt {
                what: "record",
                detail: e.to_string(),
            })
        }
        _ => Err(LedgerError::Corrupt {
            what: "record",
            detail: "unknown format marker".into(),
        }),
    }
}

/// A stored cell value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellValue {
    /// The value (0 is kept as a tombstone so that zero travels to the parent).
    pub value: i64,
    /// Local change-log sequence of the last change.
    pub seq: u64,
    /// The origin's version of this value (equal to `seq` for the node's own cells).
    pub version: u64,
}

/// What the lists of changes of an [`Ledger::apply_files`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilesApplied {
    /// One entry per list written, in order (the lists before the refused one, or all).
    pub applied: Vec<Applied>,
    /// The first refused list (its position) and why; it and the lists after it were not
    /// written.
    pub refused: Option<(usize, Vec<Refusal>)>,
}

/// Records as they stand while an apply is planned, per kind (see [`kind_index`]) and id.
#[derive(Default)]
struct Overlay<'a> {
    /// What earlier changes of the apply made of a record (`None`: deleted), borrowed from
    /// the changes.
    changed: [HashMap<&'a str, Option<&'a Record>>; 5],
    /// Store reads already done (`None`: not stored), so a record is read and decoded once
    /// (a key outside `bounds` is not read, nor remembered).
    read: [HashMap<String, Option<Record>>; 5],
    /// First and last stored key of each kind, once looked up (`Some(None)`: none stored).
    bounds: [Option<Option<(Bytes, Bytes)>>; 5],
}

fn kind_index(kind: RecordKind) -> usize {
    kind as usize - 1
}

/// One validated, effective change: the record before and after.
struct Step<'a> {
    kind: RecordKind,
    /// Boxed: most steps of an import have no old record, and a county's 100 000 steps with
    /// a `Record` inline each held 20 MB through the whole write.
    old: Option<Box<Record>>,
    new: Option<&'a Record>,
}

/// Summed cell deltas of a plan. A county import emits about a million (record, cell)
/// contributions into it; SipHash was a tenth of planning, and the keys are our own
/// fixed-size cell addresses (no untrusted key choice), so a multiply-rotate hash serves.
type Deltas = HashMap<CellKey, i64, std::hash::BuildHasherDefault<CellKeyHasher>>;

/// FxHash-style hasher (rustc's): word at a time, rotate, xor, multiply.
#[derive(Default)]
struct CellKeyHasher(u64);

impl std::hash::Hasher for CellKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// One list of changes, validated: its effective steps, their summed non-zero cell deltas,
/// and the counts.
#[derive(Default)]
struct Planned<'a> {
    steps: Vec<Step<'a>>,
    deltas: Deltas,
    applied: Applied,
}

impl Ledger {
    /// Open the ledger in `dir`. The data dir must have a division (see
    /// [`Ledger::open_or_init`]).
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Ledger> {
        Ledger::from_store(Store::open(dir, opts)?, None)
    }

    /// Build the ledger on an open store, giving it `init` as its division if it has none.
    /// The store is opened once: sled releases its file lock lazily, so a close and reopen
    /// in quick succession can fail.
    fn from_store(store: Store, init: Option<Code>) -> Result<Ledger> {
        let dir = store.path().to_owned();
        let division = match store.get(TreeId::Meta, META_DIVISION)? {
            Some(v) => {
                Code::parse(&String::from_utf8_lossy(&v)).map_err(|e| LedgerError::Corrupt {
                    what: "division",
                    detail: e,
                })?
            }
            None => match init {
                Some(d) => {
                    let mut ws = WriteSet::new();
                    ws.put(TreeId::Meta, META_DIVISION, d.to_string());
                    store.commit(ws)?;
                    store.flush()?;
                    d
                }
                None => return Err(LedgerError::NotInitialised(dir.display().to_string())),
            },
        };
        let mut registry = Registry::new();
        for r in store.scan_prefix(TreeId::Divisions, b"") {
            let (_, v) = r?;
            let d: Division = serde_json::from_slice(&v).map_err(|e| LedgerError::Corrupt {
                what: "division",
                detail: e.to_string(),
            })?;
            registry.insert(d);
        }
        let mut ledger = Ledger {
            store,
            division,
            registry: RwLock::new(Arc::new(registry)),
            write: Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            durable: std::sync::atomic::AtomicU64::new(0),
            flush: Mutex::new(()),
            commits: std::sync::atomic::AtomicU64::new(0),
            flushed: std::sync::atomic::AtomicU64::new(0),
            ticket_durable: std::sync::atomic::AtomicU64::new(0),
            tickets_changed: tokio::sync::Notify::new(),
            ticket_cache: std::sync::Mutex::new(ticket_log::RecentEntries::for_node(division)),
            signing_key: Default::default(),
            certs: Default::default(),
            identity: Default::default(),
            indicators_cache: Default::default(),
            metrics: LedgerMetrics::default(),
            sweep_unfinished: Mutex::new(None),
        };
        ledger.ticket_durable.store(
            ledger.stored_ticket_head()?,
            std::sync::atomic::Ordering::SeqCst,
        );
        // What sled recovered on open is on disk.
        ledger.mark_durable(ledger.cell_seq()?);
        ledger.identity = ledger.start_incarnation()?;
        ledger.ensure_ticket_index()?;
        if ledger
            .store
            .get(TreeId::Meta, META_STATS_PENDING)?
            .is_some()
        {
            ledger.repair_cells()?;
        }
        Ok(ledger)
    }

    /// Recompute the cells from the records and write the differences (after a crash between
    /// the records and the cells of an apply). Returns the number of cells corrected.
    pub fn repair_cells(&self) -> Result<u64> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let stored = self.all_cells()?;
        let fresh = self.recompute_cells()?;
        let mut deltas: BTreeMap<CellKey, i64> = BTreeMap::new();
        for (k, v) in &fresh {
            let d = v - stored.get(k).copied().unwrap_or(0);
            if d != 0 {
                deltas.insert(*k, d);
            }
        }
        for (k, v) in &stored {
            if !fresh.contains_key(k) {
                deltas.insert(*k, -v);
            }
        }
        tracing::warn!(
            dir = %self.store.path().display(),
            cells = deltas.len(),
            "an earlier import stopped between records and statistics; statistics recomputed"
        );
        let groups = crate::cells::group(deltas.iter().map(|(k, d)| (*k, *d)));
        let n = self.write_cells(&groups, &mut |_| {})?;
        self.flush_store()?;
        self.mark_durable(self.cell_seq()?);
        self.metrics.cells_applied(CellsFrom::Local, n);
        Ok(n)
    }

    /// Open `dir`, giving it `division` if it has none yet; refuses a dir of another division.
    pub fn open_or_init(dir: &Path, division: Option<Code>, opts: &StoreOptions) -> Result<Ledger> {
        let l = Ledger::from_store(Store::open(dir, opts)?, division)?;
        match division {
            Some(d) if d != l.division => Err(LedgerError::WrongDivision {
                dir: dir.display().to_string(),
                has: l.division,
                wanted: d,
            }),
            _ => Ok(l),
        }
    }

    /// The node's division.
    pub fn division(&self) -> Code {
        self.division
    }

    /// What this ledger counts and times (flushes, applied cells) for `/metrics`.
    pub fn metrics(&self) -> &LedgerMetrics {
        &self.metrics
    }

    /// The underlying store (for the sync layer and diagnostics).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The division registry (shared; a later change of it makes a new copy).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_default()
    }

    /// Add or rename divisions. Codes outside the node's subtree are accepted only as
    /// ancestors (a county keeps its province and city for names).
    pub fn put_divisions(&self, divisions: &[Division]) -> Result<usize> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut ws = WriteSet::new();
        let mut changed = 0;
        {
            let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
            for d in divisions {
                if reg.get(d.code) != Some(d) {
                    changed += 1;
                    // Plain data: cannot fail.
                    ws.put(
                        TreeId::Divisions,
                        d.code.key(),
                        serde_json::to_vec(d).unwrap_or_default(),
                    );
                }
            }
        }
        self.store.commit(ws)?;
        self.flush_store()?;
        let mut reg = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let reg = Arc::make_mut(&mut reg);
        for d in divisions {
            reg.insert(d.clone());
        }
        Ok(changed)
    }

    /// Read a record.
    pub fn get(&self, kind: RecordKind, id: &str) -> Result<Option<Record>> {
        self.store
            .get(TreeId::Records, &record_key(kind, id))?
            .map(|v| decode_record(&v))
            .transpose()
    }

    /// Every record of `kind`, in id order.
    pub fn records(&self, kind: RecordKind) -> impl Iterator<Item = Result<Record>> + '_ {
        self.store
            .scan_prefix(TreeId::Records, &[kind as u8])
            .map(|r| decode_record(&r?.1))
    }

    /// The record `kind`/`id` as it stands during a plan: after the earlier changes of the
    /// apply, else as stored. A store read is remembered, and skipped when the key lies outside
    /// the stored keys of its kind (a brand-new id costs no sled lookup).
    fn current(&self, ov: &mut Overlay, kind: RecordKind, id: &str) -> Result<Option<Record>> {
        let k = kind_index(kind);
        if let Some(r) = ov.changed[k].get(id) {
            return Ok(r.cloned());
        }
        if let Some(r) = ov.read[k].get(id) {
            return Ok(r.clone());
        }
        let bounds = match &ov.bounds[k] {
            Some(b) => b,
            None => {
                let b = self.store.bounds(TreeId::Records, &[kind as u8])?;
                ov.bounds[k].insert(b)
            }
        };
        let key = record_key(kind, id);
        match bounds {
            Some((first, last)) if key[..] >= first[..] && key[..] <= last[..] => {
                let stored = self
                    .store
                    .get(TreeId::Records, &key)?
                    .map(|v| decode_record(&v))
                    .transpose()?;
                ov.read[k].insert(id.to_string(), stored.clone());
                Ok(stored)
            }
            _ => Ok(None),
        }
    }

    fn household(&self, ov: &mut Overlay<'_>, code: &str) -> Result<Option<Household>> {
        Ok(match self.current(ov, RecordKind::Household, code)? {
            Some(Record::Household(h)) => Some(h),
            _ => None,
        })
    }

    /// Validate one list of `changes` in order against the store and the overlay (earlier
    /// changes of the same apply, which it then extends), without writing. Returns the
    /// effective steps with their summed cell deltas, or every refusal.
    fn plan<'a>(
        &self,
        reg: &Registry,
        ov: &mut Overlay<'a>,
        changes: &'a [Change],
        today: Date,
        emit_deltas: bool,
    ) -> Result<std::result::Result<Planned<'a>, Vec<Refusal>>> {
        let top = self.division;
        let mut p = Planned::default();
        let mut refusals = Vec::new();
        let emit = |sign: i64, r: &Record, hh: Option<&Household>, d: &mut Deltas| {
            if emit_deltas {
                stats::contributions(r, hh, top, &mut |k, v| *d.entry(k).or_insert(0) += sign * v);
            }
        };
        for (index, change) in changes.iter().enumerate() {
            let mut refuse = |error| refusals.push(Refusal { index, error });
            match change {
                Change::Put(rec) => {
                    if let Err(e) = rec.validate(self.division, today) {
                        refuse(e);
                        continue;
                    }
                    let (kind, id) = (rec.kind(), rec.id());
                    let hh = match self.check_references(reg, ov, rec) {
                        Ok(hh) => hh,
                        Err(e) => {
                            refuse(e);
                            continue;
                        }
                    };
                    let old = self.current(ov, kind, id)?;
                    if let Err(e) = check_transition(old.as_ref(), rec) {
                        refuse(e);
                        continue;
                    }
                    if old.as_ref() == Some(rec) {
                        p.applied.unchanged += 1;
                        continue;
                    }
                    // Once something is refused the deltas are never used.
                    if refusals.is_empty() {
                        let hh = hh.as_ref().filter(|_| stats::depends_on_household(rec));
                        if let Some(o) = &old {
                            emit(-1, o, hh, &mut p.deltas);
                        }
                        if let (Some(Record::Household(o)), Record::Household(n)) = (&old, rec) {
                            // A monitoring row counts the household's members: re-count it.
                            if o.members != n.members {
                                if let Some(m) = self.current(ov, RecordKind::Monitored, id)? {
                                    emit(-1, &m, Some(o), &mut p.deltas);
                                    emit(1, &m, Some(n), &mut p.deltas);
                                }
                            }
                        }
                        emit(1, rec, hh, &mut p.deltas);
                        if old.is_some() {
                            p.applied.corrected += 1;
                        } else {
                            p.applied.inserted += 1;
                        }
                    }
                    ov.changed[kind_index(kind)].insert(id, Some(rec));
                    p.steps.push(Step {
                        kind,
                        old: old.map(Box::new),
                        new: Some(rec),
                    });
                }
                Change::Delete(kind, id) => {
                    let Some(old) = self.current(ov, *kind, id)? else {
                        refuse(FieldError::new(
                            "id",
                            format!("no {} with id {id:?}", kind.as_str()),
                        ));
                        continue;
                    };
                    if *kind == RecordKind::Household {
                        if let Some(dep) = self.first_dependent(ov, id)? {
                            refuse(FieldError::new(
                                "household_code",
                                format!("household {id} is still referred to by {dep}"),
                            ));
                            continue;
                        }
                    }
                    if refusals.is_empty() {
                        let hh = if stats::depends_on_household(&old) {
                            self.household(ov, old.household_code())?
                        } else {
                            None
                        };
                        emit(-1, &old, hh.as_ref(), &mut p.deltas);
                        p.applied.deleted += 1;
                    }
                    ov.changed[kind_index(*kind)].insert(id, None);
                    p.steps.push(Step {
                        kind: *kind,
                        old: Some(Box::new(old)),
                        new: None,
                    });
                }
            }
        }
        if refusals.is_empty() {
            p.deltas.retain(|_, d| *d != 0);
            p.applied.cells_written = p.deltas.len() as u64;
            Ok(Ok(p))
        } else {
            Ok(Err(refusals))
        }
    }

    /// Cross-record rules: the division is registered, the household exists. Returns the
    /// household a non-household record refers to.
    fn check_references(
        &self,
        reg: &Registry,
        ov: &mut Overlay,
        rec: &Record,
    ) -> std::result::Result<Option<Household>, FieldError> {
        let io = |e: LedgerError| FieldError::new("household_code", format!("lookup failed: {e}"));
        match rec {
            Record::Household(h) => {
                if !reg.contains(h.village_code) {
                    return Err(FieldError::new(
                        "village_code",
                        format!(
                            "unknown division code {}: import divisions.csv with this village first",
                            h.village_code
                        ),
                    ));
                }
                if !h.alleviated {
                    let m = self
                        .current(ov, RecordKind::Monitored, &h.household_code)
                        .map_err(io)?;
                    if let Some(Record::Monitored(m)) = m {
                        if m.category == crate::domain::Category::UnstableAlleviated {
                            return Err(FieldError::new(
                                "alleviated",
                                format!(
                                    "household {} is monitored as unstable_alleviated, so it stays \
                                     an alleviated household (correct the monitoring row first)",
                                    h.household_code
                                ),
                            ));
                        }
                    }
                }
                Ok(None)
            }
            other => {
                let code = other.household_code();
                let Some(h) = self.household(ov, code).map_err(io)? else {
                    return Err(FieldError::new(
                        "household_code",
                        format!("unknown household {code}: import it in households.csv first"),
                    ));
                };
                if let Record::Monitored(m) = other {
                    if m.category == crate::domain::Category::UnstableAlleviated && !h.alleviated {
                        return Err(FieldError::new(
                            "category",
                            format!(
                                "household {code} is not an alleviated household (alleviated=0), \
                                 so it cannot be unstable_alleviated"
                            ),
                        ));
                    }
                }
                Ok(Some(h))
            }
        }
    }

    /// Some record that refers to household `code`, if any (after the overlay).
    fn first_dependent(&self, ov: &Overlay, code: &str) -> Result<Option<String>> {
        let mut prefix = code.as_bytes().to_vec();
        prefix.push(0);
        for r in self.store.scan_prefix(TreeId::ByHousehold, &prefix) {
            let (k, _) = r?;
            let rest = &k[prefix.len()..];
            let Some((&kc, id)) = rest.split_first() else {
                continue;
            };
            let kind = RecordKind::from_code(kc).unwrap_or(RecordKind::Household);
            let id = String::from_utf8_lossy(id).into_owned();
            if let Some(None) = ov.changed[kind_index(kind)].get(id.as_str()) {
                continue; // deleted earlier in this same apply
            }
            return Ok(Some(format!("{} {id}", kind.as_str())));
        }
        for kind in RecordKind::ALL {
            if kind == RecordKind::Household {
                continue;
            }
            for (id, rec) in &ov.changed[kind_index(kind)] {
                if rec.as_ref().is_some_and(|r| r.household_code() == code) {
                    return Ok(Some(format!("{} {id}", kind.as_str())));
                }
            }
        }
        Ok(None)
    }

    /// Highest cell change-log sequence written so far.
    pub fn cell_seq(&self) -> Result<u64> {
        Ok(match self.store.get(TreeId::Meta, META_CELL_SEQ)? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v[..8].try_into().unwrap_or_default()),
            _ => 0,
        })
    }
}

/// Lifecycle rules between the stored version of a record and its correction.
fn check_transition(old: Option<&Record>, new: &Record) -> std::result::Result<(), FieldError> {
    if let (Some(Record::Case(o)), Record::Case(n)) = (old, new) {
        if n.progress() < o.progress() {
            let from = match o.stage {
                Some(s) if o.decided_date.is_none() => s.to_string(),
                _ => o.outcome.to_string(),
            };
            return Err(FieldError::new(
                if n.decided_date.is_none() && o.decided_date.is_some() {
                    "outcome"
                } else {
                    "stage"
                },
                format!(
                    "case {} cannot go back from {from} to {}: the workflow only moves forward",
                    n.id,
                    n.stage.map_or(n.outcome.to_string(), |s| s.to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn log_err(e: crate::cells::CorruptBlock) -> LedgerError {
    LedgerError::Corrupt {
        what: "cell log",
        detail: e.0,
    }
}

fn cells_err(e: crate::cells::CellsError) -> LedgerError {
    match e {
        crate::cells::CellsError::Store(s) => LedgerError::Store(s),
        crate::cells::CellsError::Corrupt(c) => LedgerError::Corrupt {
            what: "cell block",
            detail: c.0,
        },
        e @ crate::cells::CellsError::Overflow { .. } => LedgerError::Overflow(e.to_string()),
    }
}
