//! One lane in memory: the index of its two queues (the envelopes stay in the store), its
//! latest Hello and the parent's cursor, and the signals its forwarders wait on.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use bottomline::division::Code;
use tokio::sync::watch;

use super::{Cursor, Dir, Meta};

/// One queue's index in memory (the envelopes stay in the store).
#[derive(Default)]
pub(super) struct Queue {
    pub(super) entries: BTreeMap<u64, Meta>,
    /// The next entry's `RSEQ`.
    pub(super) next: u64,
    /// Entries up to this `RSEQ` are covered by a flush.
    pub(super) durable: u64,
}

impl Queue {
    pub(super) fn new() -> Queue {
        Queue {
            next: 1,
            ..Default::default()
        }
    }
}

#[derive(Default)]
pub(super) struct LaneState {
    pub(super) hello: Option<Vec<u8>>,
    pub(super) cursor: Option<Cursor>,
    pub(super) up: Queue,
    pub(super) down: Queue,
}

impl LaneState {
    pub(super) fn queue(&mut self, dir: Dir) -> &mut Queue {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }
    pub(super) fn queue_ref(&self, dir: Dir) -> &Queue {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }
}

/// One child's custody: its index in memory and the signals its forwarders wait on.
pub struct Lane {
    pub(super) code: Code,
    state: Mutex<LaneState>,
    /// Bumped when an up entry turns durable or is deleted.
    up_changed: watch::Sender<u64>,
    /// Bumped when a down entry turns durable or is deleted.
    down_changed: watch::Sender<u64>,
    /// Bumped when the latest Hello is replaced.
    pub(super) hello_changed: watch::Sender<u64>,
    /// Bumped when the parent's cursor is set.
    pub(super) cursor_changed: watch::Sender<u64>,
}

pub(super) fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|v| *v = v.wrapping_add(1));
}

impl Lane {
    pub(super) fn new(code: Code, state: LaneState) -> Lane {
        Lane {
            code,
            state: Mutex::new(state),
            up_changed: watch::channel(0).0,
            down_changed: watch::channel(0).0,
            hello_changed: watch::channel(0).0,
            cursor_changed: watch::channel(0).0,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn changed(&self, dir: Dir) -> &watch::Sender<u64> {
        match dir {
            Dir::Up => &self.up_changed,
            Dir::Down => &self.down_changed,
        }
    }

    /// The child's division.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The child's latest Hello envelope (prost-encoded, as received).
    pub fn hello(&self) -> Option<Vec<u8>> {
        self.lock().hello.clone()
    }

    /// The parent's cursor; `None` until the parent welcomed this lane once.
    pub fn cursor(&self) -> Option<Cursor> {
        self.lock().cursor
    }

    /// Where the child resumes (the relay's Welcome): after the last durable entry of its
    /// up-queue, else where the parent's cursor stands. `None` before the parent's first
    /// Welcome.
    pub fn child_welcome(&self) -> Option<Cursor> {
        let st = self.lock();
        let mut w = st.cursor?;
        let durable = st.up.entries.range(..=st.up.durable);
        for (_, meta) in durable.rev() {
            match *meta {
                Meta::Cells { seq, floor } => {
                    if (floor, seq) > (w.acked, w.resume_pos) {
                        (w.acked, w.resume_pos) = (floor, seq);
                    }
                    break;
                }
                Meta::Tickets { .. } => {}
            }
        }
        let last_tickets = st
            .up
            .entries
            .range(..=st.up.durable)
            .rev()
            .find_map(|(_, m)| match m {
                Meta::Tickets { upto, .. } => Some(*upto),
                Meta::Cells { .. } => None,
            });
        w.ticket_acked = w.ticket_acked.max(last_tickets.unwrap_or(0));
        Some(w)
    }

    /// The first durable entry of `dir` after `RSEQ` `after` (0: from the start).
    pub fn next_durable(&self, dir: Dir, after: u64) -> Option<(u64, Meta)> {
        let st = self.lock();
        let q = st.queue_ref(dir);
        if after >= q.durable {
            return None;
        }
        q.entries
            .range(after + 1..=q.durable)
            .next()
            .map(|(r, m)| (*r, *m))
    }

    /// Entries of `dir` up to `RSEQ` `upto` still queued (sent and not yet acked).
    pub fn outstanding(&self, dir: Dir, upto: u64) -> usize {
        self.lock().queue_ref(dir).entries.range(..=upto).count()
    }

    /// Entries queued (up, down).
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.up.entries.len(), st.down.entries.len())
    }

    /// Woken when an entry of `dir` turns durable or is deleted.
    pub fn subscribe(&self, dir: Dir) -> watch::Receiver<u64> {
        self.changed(dir).subscribe()
    }

    /// Woken when the latest Hello is replaced.
    pub fn subscribe_hello(&self) -> watch::Receiver<u64> {
        self.hello_changed.subscribe()
    }

    /// Woken when the parent's cursor is set (a Welcome).
    pub fn subscribe_cursor(&self) -> watch::Receiver<u64> {
        self.cursor_changed.subscribe()
    }
}
