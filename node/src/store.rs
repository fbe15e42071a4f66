//! The storage module: the only code in Bottomline that imports `sled`.
//!
//! Everything above this module sees named trees ([`TreeId`]), byte keys and values,
//! atomic [`WriteSet`]s and an explicit [`Store::flush`] that is durable across power loss.
//!
//! Invariants kept here:
//! - **One writer per store.** Callers (the ledger) serialise their writes behind one lock, read
//!   what they need, then commit a prepared [`WriteSet`] atomically. The sled transaction closure
//!   therefore only writes and never has to be re-run against changed reads.
//! - **Durable means fsynced.** sled's `flush()` is `sync_file_range`, not fsync (sled #1452):
//!   [`Store::flush`] follows it with `fdatasync` on a separately opened fd of the db file.
//!   Nothing is acknowledged or forwarded before `flush` returned.
//! - **Bounded log buffers.** A commit that brings the bytes committed since the last write-out
//!   to [`WRITE_OUT_BYTES`] has sled write its buffers out first, so a bulk write on a slow
//!   disk cannot pile them up in memory.
//! - **Versioned layout.** Values carry their own format marker (see the callers); the `Meta`
//!   key `layout` records the layout version, checked on open.
//!
//! The logical trees of [`TreeId`] live in **one** sled tree, `data:v1`, each under a one-byte
//! key prefix. A [`WriteSet`] is then one `apply_batch`, atomic by itself: measured here, a
//! multi-tree sled transaction with ~10 000 cell writes per commit ran at a third of the speed
//! and several times the memory (GUIDE.md: one tree with prefixed keys beats many trees).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("storage error in {path}: {source}")]
    Sled {
        /// The data directory.
        path: PathBuf,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// Another process (usually a running node) has the data directory open.
    #[error(
        "data dir {path} is in use by another process (a running `bottomline serve` or demo?): \
         talk to the running node instead — `import --addr`, `stats --addr`, or its inbox — \
         or stop it first"
    )]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The fsync after a flush failed.
    #[error("could not sync {path} to disk: {source}")]
    Sync {
        /// The db file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory was written by an incompatible version of Bottomline.
    #[error("data dir {path} has storage layout {found}, this build reads layout {expected}")]
    Layout {
        /// The data directory.
        path: PathBuf,
        /// Layout found on disk.
        found: String,
        /// Layout this build writes.
        expected: &'static str,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The logical trees of a node's store (key prefixes inside one sled tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TreeId {
    /// Node identity, counters (sequence heads), layout version.
    Meta,
    /// The division registry: division key → name, level, parent.
    Divisions,
    /// County records (households, monitoring rows, signals, cases, measures) by kind and id.
    Records,
    /// Index household code → records that reference it (for dependency checks and drill-down).
    ByHousehold,
    /// Statistics cells: division, period, indicator, dimension → value, versions.
    Cells,
    /// Change log of cells: local sequence → cell key (only the latest change of a key is kept).
    CellLog,
    /// Ticket events by ticket: (ticket key, event id) → position in the ticket log.
    TicketEvents,
    /// The ticket log: local position → the event, where it came from and its route.
    TicketLog,
    /// Ticket routes: ticket key → target, top of its span, parent ticket.
    TicketRoutes,
    /// Per served ticket, the cell contributions already written (see `ledger::ticket_log`).
    TicketContrib,
    /// Certificates of ticket-event signers: SHA-256 of the DER → the DER (a node forwards
    /// them with the events they signed).
    Certs,
    /// A relay's custody: envelopes held for the next hop, per child and direction, and each
    /// child's last Hello and its parent's last Welcome (`bottomline-relay`).
    Custody,
    /// The ticket index: each ticket's folded state without its history, and the tickets
    /// by deadline and by inventory (`ledger/ticket_log/index.rs`).
    TicketIndex,
    /// The county's own workflow (`ledger/workflow.rs`): department rows by kind and id, and
    /// each identification case's steps.
    Workflow,
}

impl TreeId {
    /// Every tree, in the order of their index.
    pub const ALL: [TreeId; 14] = [
        TreeId::Meta,
        TreeId::Divisions,
        TreeId::Records,
        TreeId::ByHousehold,
        TreeId::Cells,
        TreeId::CellLog,
        TreeId::TicketEvents,
        TreeId::TicketLog,
        TreeId::TicketRoutes,
        TreeId::TicketContrib,
        TreeId::Certs,
        TreeId::Custody,
        TreeId::TicketIndex,
        TreeId::Workflow,
    ];

    /// The key prefix of the tree; part of the on-disk format, never reuse a value.
    fn prefix(self) -> u8 {
        match self {
            TreeId::Meta => 1,
            TreeId::Divisions => 2,
            TreeId::Records => 3,
            TreeId::ByHousehold => 4,
            TreeId::Cells => 5,
            TreeId::CellLog => 6,
            TreeId::TicketEvents => 7,
            TreeId::TicketLog => 8,
            TreeId::TicketRoutes => 9,
            TreeId::TicketContrib => 10,
            TreeId::Certs => 11,
            TreeId::Custody => 12,
            TreeId::TicketIndex => 13,
            TreeId::Workflow => 14,
        }
    }

    fn key(self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + key.len());
        k.push(self.prefix());
        k.extend_from_slice(key);
        k
    }
}

/// The layout version this build writes; bump with a migration when keys or trees change.
/// Layout 2: change-log values group the blocks of one commit; a parent's record of a child's
/// position holds (floor, pos). Layout 3: ticket-log entries of format 2 (the event as its
/// signed protobuf bytes with its seal), signer certificates (`TreeId::Certs`), a relay's
/// custody (`TreeId::Custody`). Layout 4: the ticket index (`TreeId::TicketIndex`, built
/// from the ticket log when a store without it is opened).
pub const LAYOUT: &str = "bottomline-store-4";
/// Older layouts this build reads as they are and upgrades on open (layout 3 still reads
/// layout 1's one-block log entries and 8-byte child positions, and format-1 JSON ticket-log
/// entries), so only the marker changes; a build that knows only an older layout then refuses
/// the store instead of misreading it.
const UPGRADES_FROM: &[&str] = &[
    "bottomline-store-1",
    "bottomline-store-2",
    "bottomline-store-3",
];
/// The one sled tree holding every logical tree.
const DATA_TREE: &str = "data:v1";
const LAYOUT_KEY: &[u8] = b"layout";

/// The sled page cache (MiB) when nothing says otherwise (`BL_CACHE_MB`, a config's
/// `cache_mib`): sled holds several times its setting in memory, and a county's bulk import
/// peaked at 90 MB RSS with 2 MiB against 134 MB with 8, at the same speed (2026-12-05).
pub const DEFAULT_CACHE_MIB: u64 = 2;

/// Shards of sled's page cache for a bulk writer (`bottomline import`, the CLI): sled's LRU
/// evicts a shard's pages only after a block of accesses to it, so each shard can hold up to
/// 15 pages beyond its share of the capacity. Many shards let an import keep the pages it
/// is about to change again; a serving node wants few ([`SERVING_CACHE_SHARDS`]).
pub const BULK_CACHE_SHARDS: usize = 128;

/// Shards of sled's page cache for a serving node ([`StoreOptions::serving`]): a
/// self-check reads the whole store, and with 128 shards the pages waiting for eviction
/// (up to 128 × 15) made a county's peak. `BL_CACHE_SHARDS` overrides both.
pub const SERVING_CACHE_SHARDS: usize = 16;

/// `BL_CACHE_SHARDS` if set to a positive number, else `default`.
pub fn cache_shards_or(default: usize) -> usize {
    std::env::var("BL_CACHE_SHARDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page-cache size in bytes. sled defaults to 1 GiB; ours is [`DEFAULT_CACHE_MIB`].
    pub cache_bytes: u64,
    /// Shards of sled's page cache ([`BULK_CACHE_SHARDS`], [`SERVING_CACHE_SHARDS`]).
    pub cache_shards: usize,
    /// sled's background flush period (500 ms). The ledger flushes every write itself before
    /// it returns; the background flusher only bounds what a crash of sled's own bookkeeping
    /// loses. `None`: no flusher thread, so a closed store's file lock is released at once
    /// (the simulation reopens stores it "crashed" hundreds of times per run).
    pub background_flush_ms: Option<u64>,
}

impl StoreOptions {
    /// A serving node's store (a node's or the relay's config): `cache_mib` of page cache in
    /// [`SERVING_CACHE_SHARDS`] shards (`BL_CACHE_SHARDS` overrides).
    pub fn serving(cache_mib: u64) -> StoreOptions {
        StoreOptions {
            cache_bytes: cache_mib * 1024 * 1024,
            cache_shards: cache_shards_or(SERVING_CACHE_SHARDS),
            ..StoreOptions::default()
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: std::env::var("BL_CACHE_MB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(DEFAULT_CACHE_MIB)
                * 1024
                * 1024,
            cache_shards: cache_shards_or(BULK_CACHE_SHARDS),
            background_flush_ms: Some(500),
        }
    }
}

/// A value or key read from the store (cheaply cloneable bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bytes(sled::IVec);

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An atomic set of writes over several trees, committed by [`Store::commit`]. Built
/// directly as the sled batch it becomes (one copy of each key and value, not three).
#[derive(Default, Debug)]
pub struct WriteSet {
    batch: sled::Batch,
    len: usize,
    /// Bytes of its keys and values (what it adds to sled's log, give or take headers).
    bytes: usize,
}

impl WriteSet {
    /// An empty write set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Put `value` at `key` in `tree`.
    pub fn put(&mut self, tree: TreeId, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        let (key, value) = (tree.key(key.as_ref()), value.into());
        self.bytes += key.len() + value.len();
        self.batch.insert(key, value);
        self.len += 1;
    }
    /// Remove `key` from `tree`.
    pub fn remove(&mut self, tree: TreeId, key: impl AsRef<[u8]>) {
        let key = tree.key(key.as_ref());
        self.bytes += key.len();
        self.batch.remove(key);
        self.len += 1;
    }
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A node's store: one sled database with the trees of [`TreeId`].
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    data: sled::Tree,
    /// A separate fd of sled's log file, only used for `fdatasync` after `flush`.
    sync_file: File,
    /// Bytes committed since sled's log buffers were last written out (see [`WRITE_OUT_BYTES`]).
    unwritten: AtomicUsize,
}

/// After this many bytes committed without a flush, [`Store::commit`] has sled write its log
/// buffers out (`sync_file_range`, no fsync) before it returns. sled seals a full buffer and
/// writes it on a thread of its own, and nothing holds a writer back meanwhile: while the disk
/// is slow, a bulk write (an import, a child's sweep) piled sealed buffers up in memory — a
/// county's import peaked at 56–75 MiB beside a disk writer, 130–156 MiB after the tree
/// benchmark, against 46–48 on a quiet disk. This bounds them to a few MiB.
pub const WRITE_OUT_BYTES: usize = 4 << 20;

impl Store {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store> {
        let sled_err = |source| StoreError::Sled {
            path: dir.to_owned(),
            source,
        };
        // sled releases a closed store's file lock only when its flusher thread (woken every
        // 500 ms) lets go of it: a store closed a moment ago (a restart, a test reopening) is
        // retried for a while before it counts as in use by another process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            let r = sled::Config::new()
                .path(dir)
                .cache_capacity(opts.cache_bytes)
                .cache_shards(opts.cache_shards)
                .flush_every_ms(opts.background_flush_ms)
                .open();
            match &r {
                Err(sled::Error::Io(io))
                    if (io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock"))
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => break r,
            }
        };
        let db = db.map_err(|e| match &e {
            // sled wraps the failed flock (EWOULDBLOCK) in an error of its own.
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::InUse {
                    path: dir.to_owned(),
                }
            }
            _ => sled_err(e),
        })?;
        let data = db.open_tree(DATA_TREE).map_err(sled_err)?;
        let db_file = dir.join("db");
        let sync_file = File::open(&db_file).map_err(|source| StoreError::Sync {
            path: db_file.clone(),
            source,
        })?;
        let store = Store {
            inner: Arc::new(Inner {
                path: dir.to_owned(),
                db,
                data,
                sync_file,
                unwritten: AtomicUsize::new(0),
            }),
        };
        store.check_layout()?;
        Ok(store)
    }

    fn check_layout(&self) -> Result<()> {
        match self.get(TreeId::Meta, LAYOUT_KEY)? {
            Some(found) if &*found == LAYOUT.as_bytes() => Ok(()),
            Some(found) if UPGRADES_FROM.iter().any(|u| u.as_bytes() == &*found) => {
                let mut ws = WriteSet::new();
                ws.put(TreeId::Meta, LAYOUT_KEY, LAYOUT);
                self.commit(ws)?;
                self.flush()?;
                tracing::info!(
                    dir = %self.inner.path.display(),
                    from = %String::from_utf8_lossy(&found),
                    to = LAYOUT,
                    "storage layout upgraded"
                );
                Ok(())
            }
            Some(found) => Err(StoreError::Layout {
                path: self.inner.path.clone(),
                found: String::from_utf8_lossy(&found).into_owned(),
                expected: LAYOUT,
            }),
            None => {
                let mut ws = WriteSet::new();
                ws.put(TreeId::Meta, LAYOUT_KEY, LAYOUT);
                self.commit(ws)?;
                self.flush()
            }
        }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.inner.path.clone(),
            source,
        }
    }

    /// Read one key.
    pub fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner
            .data
            .get(tree.key(key))
            .map(|v| v.map(Bytes))
            .map_err(|e| self.err(e))
    }

    /// All entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        tree: TreeId,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        self.strip(self.inner.data.scan_prefix(tree.key(prefix)))
    }

    /// All entries with `start <= key < end`, in key order.
    pub fn range(
        &self,
        tree: TreeId,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        self.strip(self.inner.data.range(tree.key(start)..tree.key(end)))
    }

    /// All entries with `key >= start`, in key order.
    pub fn range_from(
        &self,
        tree: TreeId,
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        // Everything of `tree` from `start`: up to the next tree's prefix.
        let end = vec![tree.prefix() + 1];
        self.strip(self.inner.data.range(tree.key(start)..end))
    }

    /// The first and last key starting with `prefix` (`None` when there is none): two
    /// lookups that let a caller skip reads of keys outside them.
    pub fn bounds(&self, tree: TreeId, prefix: &[u8]) -> Result<Option<(Bytes, Bytes)>> {
        let mut it = self.inner.data.scan_prefix(tree.key(prefix));
        let strip = |k: sled::IVec| Bytes(k.subslice(1, k.len() - 1));
        let Some(first) = it.next().transpose().map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let last = match it.next_back().transpose().map_err(|e| self.err(e))? {
            Some((k, _)) => strip(k),
            None => strip(first.0.clone()),
        };
        Ok(Some((strip(first.0), last)))
    }

    /// Number of entries of a tree (a full scan; for tests and diagnostics).
    pub fn count(&self, tree: TreeId) -> usize {
        self.scan_prefix(tree, b"").count()
    }

    /// Every iteration of the store goes through here: the tree's prefix byte stripped, and
    /// the pages sled evicted meanwhile freed ([`reclaim_evicted_pages`]) every
    /// [`RECLAIM_EVERY`] entries and once more at the end of a scan that long, so a long scan
    /// does not outrun their collection.
    fn strip(&self, it: sled::Iter) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        let mut n = 0u64;
        let mut it = it.fuse();
        std::iter::from_fn(move || match it.next() {
            None => {
                if n >= RECLAIM_EVERY {
                    reclaim_evicted_pages();
                    n = 0;
                }
                None
            }
            Some(r) => {
                n += 1;
                if n.is_multiple_of(RECLAIM_EVERY) {
                    reclaim_evicted_pages();
                }
                Some(
                    r.map(|(k, v)| (Bytes(k.subslice(1, k.len() - 1)), Bytes(v)))
                        .map_err(|e| self.err(e)),
                )
            }
        })
    }

    /// Apply every operation of `ws` atomically: all or nothing, across trees; then collect
    /// the pages it replaced ([`reclaim_evicted_pages`]).
    /// Not yet durable: call [`Store::flush`] before acknowledging anything that depends on it.
    pub fn commit(&self, ws: WriteSet) -> Result<()> {
        if ws.is_empty() {
            return Ok(());
        }
        self.inner
            .data
            .apply_batch(ws.batch)
            .map_err(|e| self.err(e))?;
        reclaim_evicted_pages();
        let unwritten = self.inner.unwritten.fetch_add(ws.bytes, Ordering::Relaxed) + ws.bytes;
        if unwritten >= WRITE_OUT_BYTES {
            self.inner.unwritten.store(0, Ordering::Relaxed);
            self.inner.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Make everything committed so far durable: sled flush, then `fdatasync` of the db file.
    pub fn flush(&self) -> Result<()> {
        self.inner.unwritten.store(0, Ordering::Relaxed);
        self.inner.db.flush().map_err(|e| self.err(e))?;
        self.inner
            .sync_file
            .sync_data()
            .map_err(|source| StoreError::Sync {
                path: self.inner.path.join("db"),
                source,
            })
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

/// Entries a scan of the store reads between two rounds of [`reclaim_evicted_pages`].
const RECLAIM_EVERY: u64 = 2048;

/// Free the pages sled evicted or replaced that are still waiting for it (every commit calls
/// it, and every store scan as it goes and at its end). sled drops such a page through
/// crossbeam-epoch, which frees a thread's deferred garbage only a few bags per 128 of its own
/// operations, once every thread has moved on. A self-check reading every record on a starved machine held 10–18 MiB more
/// heap at the end of a part's scans, free again a step later, which trimming did not touch
/// and these collections remove (README, footprint L3–L5). Each round collects what every
/// thread has let go of (microseconds when there is nothing). `sled::pin` is public but
/// hidden in sled 0.34 (vendored here), its guard crossbeam-epoch's. A commit replaces the
/// pages of every node it changes: an import's final cell write (write sets of 1 000 blocks)
/// left 30–50 MiB of replaced pages waiting on a busy machine (610503 beside three busy
/// loops peaked at 65–101 MB; collected after each commit, 50–56 MB at the same speed).
fn reclaim_evicted_pages() {
    for _ in 0..16 {
        sled::pin().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_atomic_across_trees_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            let mut ws = WriteSet::new();
            ws.put(TreeId::Records, b"a", b"1".to_vec());
            ws.put(TreeId::Cells, b"c", b"2".to_vec());
            ws.put(TreeId::Records, b"b", b"3".to_vec());
            ws.remove(TreeId::Records, b"b");
            s.commit(ws).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(&*s.get(TreeId::Records, b"a").unwrap().unwrap(), b"1");
        assert_eq!(&*s.get(TreeId::Cells, b"c").unwrap().unwrap(), b"2");
        assert!(s.get(TreeId::Records, b"b").unwrap().is_none());
        let keys: Vec<_> = s
            .scan_prefix(TreeId::Records, b"")
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        assert_eq!(keys, vec![b"a".to_vec()]);
    }

    /// Commits count their bytes, and the one that brings them to `WRITE_OUT_BYTES` writes
    /// out and starts the count again; what was committed is then in the file (no flush was
    /// asked for, no background flusher runs). On a quiet disk sled's own threads usually get
    /// the buffers there in time as well: what this pins down is the count and its reset; the
    /// memory the write-out bounds on a slow disk is measured (README, Footprint).
    #[test]
    fn commits_count_their_bytes_and_write_out_at_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            background_flush_ms: None,
            ..StoreOptions::default()
        };
        let s = Store::open(dir.path(), &opts).unwrap();
        s.flush().unwrap();
        let len = || std::fs::metadata(dir.path().join("db")).unwrap().len();
        let before = len();
        let (mut committed, mut i) = (0, 0u32);
        while committed < WRITE_OUT_BYTES {
            let mut ws = WriteSet::new();
            for _ in 0..64 {
                ws.put(
                    TreeId::Records,
                    i.to_be_bytes(),
                    vec![(i % 251) as u8; 4096],
                );
                i += 1;
            }
            assert_eq!(ws.bytes, 64 * (1 + 4 + 4096), "key prefix, key and value");
            committed += ws.bytes;
            s.commit(ws).unwrap();
            if committed < WRITE_OUT_BYTES {
                assert_eq!(s.inner.unwritten.load(Ordering::Relaxed), committed);
            }
        }
        assert_eq!(s.inner.unwritten.load(Ordering::Relaxed), 0);
        let written = len() - before;
        assert!(
            written >= WRITE_OUT_BYTES as u64,
            "{written} bytes in the file after {committed} committed"
        );
    }

    #[test]
    fn upgrades_layout_1_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            let mut ws = WriteSet::new();
            ws.put(TreeId::Meta, LAYOUT_KEY, b"bottomline-store-1".to_vec());
            ws.put(TreeId::Records, b"a", b"1".to_vec());
            s.commit(ws).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(
            &*s.get(TreeId::Meta, LAYOUT_KEY).unwrap().unwrap(),
            LAYOUT.as_bytes()
        );
        assert_eq!(&*s.get(TreeId::Records, b"a").unwrap().unwrap(), b"1");
    }

    #[test]
    fn refuses_a_foreign_layout() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            let mut ws = WriteSet::new();
            ws.put(TreeId::Meta, LAYOUT_KEY, b"bottomline-store-0".to_vec());
            s.commit(ws).unwrap();
            s.flush().unwrap();
        }
        let err = Store::open(dir.path(), &StoreOptions::default())
            .err()
            .expect("layout mismatch must be refused");
        assert!(err.to_string().contains("bottomline-store-0"), "{err}");
    }
}
#[cfg(test)]
mod bounds_tests {
    use super::*;
    #[test]
    /// `bounds` (used to skip reads of keys that cannot exist) equals a forward scan while a
    /// tree grows in random key order next to other trees.
    fn bounds_equal_a_forward_scan() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut x: u64 = 12345;
        for i in 0..20000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut ws = WriteSet::new();
            let k = (x >> 40).to_be_bytes();
            ws.put(TreeId::Cells, &k[3..], vec![1u8; 200]);
            ws.put(TreeId::CellLog, i.to_be_bytes(), vec![2u8; 10]);
            ws.put(TreeId::Meta, b"x", vec![3u8; 10]);
            s.commit(ws).unwrap();
            if i % 97 == 0 {
                let b = s.bounds(TreeId::Cells, b"").unwrap().unwrap();
                let all: Vec<_> = s
                    .scan_prefix(TreeId::Cells, b"")
                    .map(|r| r.unwrap().0)
                    .collect();
                assert_eq!(b.0, all[0], "first at {i}");
                assert_eq!(&b.1, all.last().unwrap(), "last at {i} of {}", all.len());
            }
        }
    }
}
