//! Custody: the relay's durable queues, over the node's [`Store`] (tree [`TreeId::Custody`]).
//!
//! Per child division (a **lane**) the relay keeps the child's latest Hello, the parent's
//! cursor (its last Welcome, moved on by its acks), and two queues of envelopes exactly as
//! they were received (prost-encoded): **up** (the child's cell and ticket batches, until the
//! parent acks them) and **down** (the parent's ticket batches, until the child acks them).
//!
//! Key layout inside `TreeId::Custody` (every value starts with a format marker):
//!
//! | key                                   | value                                          |
//! |---------------------------------------|------------------------------------------------|
//! | `LANE 0x01`                           | `0x01` ‖ the latest Hello `Envelope`           |
//! | `LANE 0x02`                           | `0x01` ‖ acked ‖ resume_pos ‖ ticket_acked ‖ down_acked (u64 BE each) |
//! | `LANE 0x03 RSEQ`                      | up entry: `0x01` ‖ kind ‖ seq ‖ mark ‖ `Envelope` |
//! | `LANE 0x04 RSEQ`                      | down entry: the same                           |
//!
//! `LANE` is the child's division as [`Code::key`] (9 bytes, fixed width), so one lane's keys
//! are contiguous; `RSEQ` is the relay's own sequence of the entry in its queue (u64 BE, from
//! 1), so a queue is read in arrival order by a range scan. `kind` is 1 for a cell batch
//! (`seq` = `Envelope.seq`, `mark` = `CellBatch.floor`) and 2 for a ticket batch (`seq` =
//! `Envelope.seq`, `mark` = `TicketBatch.upto`): what deciding an ack needs, without decoding
//! the envelope. No counter is stored: a reopened queue continues after its highest `RSEQ`
//! (an emptied queue may restart from 1: order only matters among the entries present).
//!
//! Durability: [`Custody::append`] commits and returns a commit ticket; the caller acks only
//! after [`Custody::flush_through`] that ticket (group commit: one flusher at a time, writers
//! that committed while it ran share the next flush, as `Ledger::flush_through` does). An
//! entry becomes visible to the forwarders ([`Lane::next_durable`]) only once a flush covered
//! it. Deletions (after the next hop's ack) and Hello or cursor updates are plain commits:
//! losing one in a crash only means a harmless resend or an older resume point.
//!
//! The relay's data dir is an ordinary `Store` (the node's layout marker in `Meta`); only
//! `TreeId::Custody` holds anything else.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use bottomline::division::{Code, CODE_KEY_LEN};
use bottomline::store::{Store, StoreError, StoreOptions, TreeId, WriteSet};

/// Errors of the custody store.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key or value is not in a format this build knows.
    #[error("custody store: {0}")]
    Corrupt(String),
    /// The blocking task running a custody operation panicked or was cancelled.
    #[error("custody operation interrupted: {0}")]
    Interrupted(String),
}

type Result<T> = std::result::Result<T, CustodyError>;

/// A queue direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Child → parent.
    Up,
    /// Parent → child.
    Down,
}

/// What an entry carries, as far as acks are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    /// A `CellBatch`: its envelope's `seq` (the log position read up to) and its `floor`.
    Cells {
        /// `Envelope.seq`.
        seq: u64,
        /// `CellBatch.floor`.
        floor: u64,
    },
    /// A `TicketBatch`: its envelope's `seq` and its `upto`.
    Tickets {
        /// `Envelope.seq`.
        seq: u64,
        /// `TicketBatch.upto`.
        upto: u64,
    },
}

/// Where the parent's durable copy of a lane stands: its last Welcome, moved on by its acks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The child's change-log floor the parent has made durable.
    pub acked: u64,
    /// The position the child's sweep continues from (>= `acked`).
    pub resume_pos: u64,
    /// The child's ticket-log position the parent has made durable.
    pub ticket_acked: u64,
    /// The parent's ticket-log position acked for this lane.
    pub down_acked: u64,
}

/// An entry whose commit is not yet known to be flushed.
struct Pending {
    commit: u64,
    entry: (Arc<Lane>, Dir, u64),
}

/// The relay's custody store: every lane's queues, Hello and cursor.
pub struct Custody {
    store: Store,
    lanes: Mutex<BTreeMap<Code, Arc<Lane>>>,
    /// One flusher at a time (group commit).
    flush: Mutex<()>,
    /// Commits counted (under `pending`'s lock, together with their entry if any) …
    commits: AtomicU64,
    /// … and the count covered by the last completed flush.
    flushed: AtomicU64,
    pending: Mutex<Vec<Pending>>,
}

impl Custody {
    /// Open (or create) the custody store in `dir` and load every lane. Everything found is
    /// flushed once, so what the relay tells its children from it is durable.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Arc<Custody>> {
        let store = Store::open(dir, opts)?;
        let mut lanes: BTreeMap<Code, LaneState> = BTreeMap::new();
        for kv in store.scan_prefix(TreeId::Custody, b"") {
            let (k, v) = kv?;
            let bad = |what: &str| CustodyError::Corrupt(format!("{what} at key {:02x?}", &*k));
            let code = Code::from_key(&k).ok_or_else(|| bad("bad lane"))?;
            let st = lanes.entry(code).or_insert_with(|| LaneState {
                up: Queue::new(),
                down: Queue::new(),
                ..Default::default()
            });
            match (k.get(CODE_KEY_LEN), k.len() - CODE_KEY_LEN) {
                (Some(&TAG_HELLO), 1) => match v.split_first() {
                    Some((&MARK_V1, env)) => st.hello = Some(env.to_vec()),
                    _ => return Err(bad("bad Hello")),
                },
                (Some(&TAG_CURSOR), 1) => {
                    st.cursor = Some(decode_cursor(&v).ok_or_else(|| bad("bad cursor"))?);
                }
                (Some(&t), 9) if t == TAG_UP || t == TAG_DOWN => {
                    let rseq = u64_at(&k, CODE_KEY_LEN + 1).ok_or_else(|| bad("bad key"))?;
                    let meta = decode_meta(&v).ok_or_else(|| bad("bad entry"))?;
                    let q = st.queue(if t == TAG_UP { Dir::Up } else { Dir::Down });
                    q.entries.insert(rseq, meta);
                    q.next = q.next.max(rseq + 1);
                    q.durable = q.durable.max(rseq);
                }
                _ => return Err(bad("unknown key")),
            }
        }
        store.flush()?;
        let lanes = lanes
            .into_iter()
            .map(|(c, st)| (c, Arc::new(Lane::new(c, st))))
            .collect();
        Ok(Arc::new(Custody {
            store,
            lanes: Mutex::new(lanes),
            flush: Mutex::new(()),
            commits: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
        }))
    }

    /// Every lane known (stored or opened since start), by division.
    pub fn lanes(&self) -> Vec<Arc<Lane>> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.values().cloned().collect()
    }

    /// The lane of `code`, created (empty, in memory) when new.
    pub fn lane(&self, code: Code) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry(code)
            .or_insert_with(|| {
                Arc::new(Lane::new(
                    code,
                    LaneState {
                        up: Queue::new(),
                        down: Queue::new(),
                        ..Default::default()
                    },
                ))
            })
            .clone()
    }

    /// Count a commit (with the entry it appended, which turns durable with it) for group
    /// commit; returns its ticket.
    fn counted(&self, entry: Option<(Arc<Lane>, Dir, u64)>) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let commit = self.commits.fetch_add(1, SeqCst) + 1;
        if let Some(entry) = entry {
            pending.push(Pending { commit, entry });
        }
        commit
    }

    /// Replace the lane's latest Hello (the envelope as received). Returns the commit's
    /// ticket: [`Custody::flush_through`] it when the Hello must be durable.
    pub fn put_hello(&self, lane: &Arc<Lane>, envelope: Vec<u8>) -> Result<u64> {
        let ticket = {
            let mut st = lane.lock();
            let mut v = Vec::with_capacity(1 + envelope.len());
            v.push(MARK_V1);
            v.extend_from_slice(&envelope);
            let mut ws = WriteSet::new();
            ws.put(TreeId::Custody, lane_key(lane.code, TAG_HELLO), v);
            self.store.commit(ws)?;
            st.hello = Some(envelope);
            self.counted(None)
        };
        bump(&lane.hello_changed);
        Ok(ticket)
    }

    /// Append an envelope (as received) to a queue of `lane`. Returns its `RSEQ` and the
    /// commit's ticket; the entry is acked (and forwarded) only after a flush covered it.
    pub fn append(
        &self,
        lane: &Arc<Lane>,
        dir: Dir,
        meta: Meta,
        envelope: &[u8],
    ) -> Result<(u64, u64)> {
        let mut st = lane.lock();
        let rseq = st.queue(dir).next;
        let mut ws = WriteSet::new();
        ws.put(
            TreeId::Custody,
            entry_key(lane.code, dir, rseq),
            encode_entry(meta, envelope),
        );
        self.store.commit(ws)?;
        let q = st.queue(dir);
        q.entries.insert(rseq, meta);
        q.next = rseq + 1;
        let ticket = self.counted(Some((lane.clone(), dir, rseq)));
        Ok((rseq, ticket))
    }

    /// Make commit `ticket` durable: the first caller flushes everything committed so far;
    /// callers arriving meanwhile wait and return if that flush covered them, else one of them
    /// flushes for all. Entries covered turn visible to the forwarders.
    pub fn flush_through(&self, ticket: u64) -> Result<()> {
        if self.flushed.load(SeqCst) >= ticket {
            return Ok(());
        }
        let _f = self.flush.lock().unwrap_or_else(|p| p.into_inner());
        if self.flushed.load(SeqCst) >= ticket {
            return Ok(());
        }
        self.flush_locked()
    }

    /// Make everything committed so far durable.
    pub fn flush(&self) -> Result<()> {
        let _f = self.flush.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked()
    }

    fn flush_locked(&self) -> Result<()> {
        // sled's flush covers every commit applied before it starts; a commit is counted
        // only after it was applied, so `covered` counts commits the flush includes.
        let covered = {
            let _p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            self.commits.load(SeqCst)
        };
        self.store.flush()?;
        let done: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let split = pending.partition_point(|p| p.commit <= covered);
            pending.drain(..split).collect()
        };
        let mut woken: Vec<(Arc<Lane>, Dir)> = Vec::new();
        for p in done {
            let (lane, dir, rseq) = p.entry;
            {
                let mut st = lane.lock();
                let q = st.queue(dir);
                q.durable = q.durable.max(rseq);
            }
            if !woken
                .iter()
                .any(|(l, d)| Arc::ptr_eq(l, &lane) && *d == dir)
            {
                woken.push((lane, dir));
            }
        }
        // Marked durable before `flushed` moves: a writer returning early finds its entry
        // visible.
        self.flushed.fetch_max(covered, SeqCst);
        for (lane, dir) in woken {
            bump(lane.changed(dir));
        }
        Ok(())
    }

    /// The envelope of an entry, as it was received (`None` once deleted).
    pub fn read(&self, lane: &Lane, dir: Dir, rseq: u64) -> Result<Option<Vec<u8>>> {
        let Some(v) = self
            .store
            .get(TreeId::Custody, &entry_key(lane.code, dir, rseq))?
        else {
            return Ok(None);
        };
        if v.len() < ENTRY_HEADER || v[0] != MARK_V1 {
            return Err(CustodyError::Corrupt(format!(
                "entry {rseq} of lane {}: bad value",
                lane.code
            )));
        }
        Ok(Some(v[ENTRY_HEADER..].to_vec()))
    }

    /// Delete the entries of `dir` that `covered` selects and update the cursor with
    /// `update` (given the deleted entries), in one commit. Returns how many were deleted.
    fn delete_where(
        &self,
        lane: &Lane,
        dir: Dir,
        covered: impl Fn(&Meta) -> bool,
        update: impl FnOnce(&mut Option<Cursor>, &[Meta]),
    ) -> Result<usize> {
        let deleted = {
            let mut st = lane.lock();
            let gone: Vec<(u64, Meta)> = st
                .queue_ref(dir)
                .entries
                .iter()
                .filter(|(_, m)| covered(m))
                .map(|(r, m)| (*r, *m))
                .collect();
            let metas: Vec<Meta> = gone.iter().map(|(_, m)| *m).collect();
            let before = st.cursor;
            update(&mut st.cursor, &metas);
            let mut ws = WriteSet::new();
            for (rseq, _) in &gone {
                ws.remove(TreeId::Custody, entry_key(lane.code, dir, *rseq));
            }
            if st.cursor != before {
                match &st.cursor {
                    Some(c) => ws.put(
                        TreeId::Custody,
                        lane_key(lane.code, TAG_CURSOR),
                        encode_cursor(c),
                    ),
                    None => ws.remove(TreeId::Custody, lane_key(lane.code, TAG_CURSOR)),
                }
            }
            if let Err(e) = self.store.commit(ws) {
                st.cursor = before;
                return Err(e.into());
            }
            let q = st.queue(dir);
            for (rseq, _) in &gone {
                q.entries.remove(rseq);
            }
            (gone.len(), st.cursor != before)
        };
        if deleted.0 > 0 {
            bump(lane.changed(dir));
        }
        if deleted.1 {
            bump(&lane.cursor_changed);
        }
        Ok(deleted.0)
    }

    /// The child's store restarted (another store, or another incarnation of it: a restart,
    /// or a restore from an older backup — `bottomline::lineage`): the lane's up-queue may
    /// hold batches its store no longer continues, so all of it is dropped, and so is the
    /// parent's cursor, until the parent answers the child's new Hello. Nothing is lost: the
    /// child keeps everything it sent, and resends from where the parent's new `Welcome`
    /// says. Returns how many entries were dropped.
    pub fn restart_lane(&self, lane: &Lane) -> Result<usize> {
        self.delete_where(lane, Dir::Up, |_| true, |cursor, _| *cursor = None)
    }

    /// The parent's `Ack{seq}`: its durable copy of the child's log reaches `seq`; the cell
    /// batches up to it leave the up-queue and the cursor moves to the last of them.
    pub fn ack_cells(&self, lane: &Lane, seq: u64) -> Result<usize> {
        self.delete_where(
            lane,
            Dir::Up,
            |m| matches!(m, Meta::Cells { seq: s, .. } if *s <= seq),
            |cursor, gone| {
                let Some(c) = cursor else { return };
                for m in gone {
                    if let Meta::Cells { seq, floor } = *m {
                        if (floor, seq) > (c.acked, c.resume_pos) {
                            (c.acked, c.resume_pos) = (floor, seq);
                        }
                    }
                }
            },
        )
    }

    /// The parent's `TicketAck{upto}` for the child's ticket batches.
    pub fn ack_up_tickets(&self, lane: &Lane, upto: u64) -> Result<usize> {
        self.delete_where(
            lane,
            Dir::Up,
            |m| matches!(m, Meta::Tickets { upto: u, .. } if *u <= upto),
            |cursor, _| {
                if let Some(c) = cursor {
                    c.ticket_acked = c.ticket_acked.max(upto);
                }
            },
        )
    }

    /// The child's `TicketAck{upto}` for the parent's ticket batches.
    pub fn ack_down(&self, lane: &Lane, upto: u64) -> Result<usize> {
        self.delete_where(
            lane,
            Dir::Down,
            |m| matches!(m, Meta::Tickets { upto: u, .. } if *u <= upto),
            |_, _| {},
        )
    }

    /// The parent's Welcome on the lane's upstream: it becomes the cursor, and every up
    /// entry it covers leaves the queue (in the same commit).
    pub fn welcome(&self, lane: &Lane, w: Cursor) -> Result<usize> {
        let cells_to = w.resume_pos.max(w.acked);
        let n = self.delete_where(
            lane,
            Dir::Up,
            |m| match *m {
                Meta::Cells { seq, floor } => floor <= w.acked && seq <= cells_to,
                Meta::Tickets { upto, .. } => upto <= w.ticket_acked,
            },
            |cursor, _| *cursor = Some(w),
        )?;
        Ok(n)
    }
}

mod format;
mod lane;
#[cfg(test)]
mod tests;

use format::*;
pub use lane::Lane;
use lane::{bump, LaneState, Queue};
