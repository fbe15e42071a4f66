//! What the senders read from the ticket log: entries after a cursor, the backlogs for
//! `status`, and the per-link cursors.

use super::*;

impl Ledger {
    /// The recent ticket-log entries held in memory for the senders: how many, and about how
    /// many bytes (bounded, see `ticket_log/cache.rs`; for `/metrics`).
    pub fn ticket_cache_usage(&self) -> (u64, u64) {
        let cache = self.ticket_cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.len() as u64, cache.bytes() as u64)
    }

    /// Drop the cached entries past their age (a quiet node's cache empties; the node's
    /// memory-trim task calls this).
    pub fn expire_ticket_cache(&self) {
        let mut cache = self.ticket_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.expire(std::time::Instant::now());
    }

    /// The flushed ticket-log entries after position `after` that `wanted` selects, in
    /// order: at most `max` of them, scanning at most [`MAX_SCAN`] entries. Returns them and
    /// the position scanned up to (the sender's next `after`; equal to `after` when nothing
    /// new is flushed). Recent entries come from memory (`LogCache`), older ones from the store.
    pub fn ticket_log(
        &self,
        after: u64,
        max: usize,
        wanted: impl Fn(&Logged) -> bool,
    ) -> Result<(Vec<Arc<LogEntry>>, u64)> {
        let head = self.ticket_head();
        let end = head.min(after.saturating_add(MAX_SCAN));
        let mut out = Vec::new();
        let mut pos = after;
        {
            let cache = self.ticket_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(first) = cache.front().map(|e| e.logged.pos) {
                if first <= after + 1 {
                    for e in cache.iter().skip((after + 1 - first) as usize) {
                        if e.logged.pos > end || out.len() >= max {
                            return Ok((out, pos));
                        }
                        pos = e.logged.pos;
                        if wanted(&e.logged) {
                            out.push(e.clone());
                        }
                    }
                    return Ok((out, pos));
                }
            }
        }
        for r in self.store.range(
            TreeId::TicketLog,
            &(after + 1).to_be_bytes(),
            &(end + 1).to_be_bytes(),
        ) {
            if out.len() >= max {
                break;
            }
            let (k, v) = r?;
            pos = u64_of(Some(k));
            let e = LogEntry::decode(pos, &v)?;
            if wanted(&e.logged) {
                out.push(Arc::new(e));
            }
        }
        Ok((out, pos))
    }

    /// Ticket events waiting for this node's parent: the flushed entries of the ticket log
    /// after `after` (the parent's durable cursor, `Welcome.ticket_acked` and its
    /// `TicketAck`s) that go up ([`Logged::for_parent`]). 0 at the top of the tree. Scans at
    /// most the last [`MAX_BACKLOG_SCAN`] entries.
    pub fn ticket_backlog_up(&self, after: u64) -> Result<u64> {
        let me = self.division;
        let Some(parent) = me.parent() else {
            return Ok(0);
        };
        let mut n = 0;
        self.scan_routing(after, |_, r| {
            if r.for_parent(me, parent) {
                n += 1;
            }
        })?;
        Ok(n)
    }

    /// Ticket events waiting for each child of `cursors` (a direct child and this node's
    /// ticket-log position it acked, [`Ledger::ticket_down_acked`]): the flushed entries after
    /// the child's cursor that go down to it ([`Logged::for_child`]), in the order given. One
    /// pass over the log from the lowest cursor, at most the last [`MAX_BACKLOG_SCAN`]
    /// entries.
    pub fn ticket_backlog_down(&self, cursors: &[(Code, u64)]) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; cursors.len()];
        let Some(from) = cursors.iter().map(|(_, c)| *c).min() else {
            return Ok(counts);
        };
        // The subtrees of the children are disjoint: an entry can be for the one child whose
        // code is its target's ancestor at the child's level.
        let index: HashMap<Code, usize> = cursors
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (*c, i))
            .collect();
        let mut levels: Vec<Level> = cursors.iter().map(|(c, _)| c.level()).collect();
        levels.sort();
        levels.dedup();
        self.scan_routing(from, |pos, r| {
            for level in &levels {
                let Some(i) = r.target.ancestor_at(*level).and_then(|c| index.get(&c)) else {
                    continue;
                };
                let (child, cursor) = cursors[*i];
                if pos > cursor && r.for_child(child) {
                    counts[*i] += 1;
                }
            }
        })?;
        Ok(counts)
    }

    /// Visit the routing of every flushed ticket-log entry after `after`, but at most the
    /// last [`MAX_BACKLOG_SCAN`] of the log, in no particular order: recent entries from
    /// memory, the ones before them from the store.
    pub(super) fn scan_routing(&self, after: u64, visit: impl FnMut(u64, &Routing)) -> Result<()> {
        self.scan_routing_last(after, MAX_BACKLOG_SCAN, visit)
    }

    /// [`Ledger::scan_routing`] over at most the last `window` entries.
    pub(super) fn scan_routing_last(
        &self,
        after: u64,
        window: u64,
        mut visit: impl FnMut(u64, &Routing),
    ) -> Result<()> {
        let end = self.ticket_head();
        let after = after.max(end.saturating_sub(window));
        if end <= after {
            return Ok(());
        }
        // Entries before the first cached one (or all, when none is cached) are in the store.
        let mut store_end = end;
        {
            let cache = self.ticket_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(first) = cache.front().map(|e| e.logged.pos) {
                if first <= end {
                    store_end = first.saturating_sub(1).min(end);
                    let skip = (after + 1).saturating_sub(first) as usize;
                    for e in cache.iter().skip(skip) {
                        let l = &e.logged;
                        if l.pos > end {
                            break;
                        }
                        if l.pos > after {
                            visit(l.pos, &l.routing());
                        }
                    }
                }
            }
        }
        if store_end <= after {
            return Ok(());
        }
        for r in self.store.range(
            TreeId::TicketLog,
            &(after + 1).to_be_bytes(),
            &(store_end + 1).to_be_bytes(),
        ) {
            let (k, v) = r?;
            visit(u64_of(Some(k)), &stored_routing(&v)?);
        }
        Ok(())
    }

    /// The child's ticket-log position this node has stored (where its next batch starts).
    pub fn ticket_up_acked(&self, child: Code) -> Result<u64> {
        Ok(u64_of(
            self.store
                .get(TreeId::Meta, &cursor_key(UP_PREFIX, child))?,
        ))
    }

    /// This node's ticket-log position that `child` acked (where sending to it resumes).
    pub fn ticket_down_acked(&self, child: Code) -> Result<u64> {
        Ok(u64_of(
            self.store
                .get(TreeId::Meta, &cursor_key(DOWN_PREFIX, child))?,
        ))
    }

    /// Record that `child` acked this node's ticket log up to `upto` (never moves back). Not
    /// flushed: a lost cursor only resends what the child ignores as duplicates.
    pub fn set_ticket_down_acked(&self, child: Code, upto: u64) -> Result<()> {
        let k = cursor_key(DOWN_PREFIX, child);
        let old = u64_of(self.store.get(TreeId::Meta, &k)?);
        if upto > old {
            let mut ws = WriteSet::new();
            ws.put(TreeId::Meta, &k, upto.to_be_bytes().to_vec());
            self.store.commit(ws)?;
        }
        Ok(())
    }
}

/// Per child: this node's ticket-log position up to which the child's own events are sent
/// back down to it (set when its store was replaced by an older one, `restored.rs`).
const RETURN_PREFIX: &[u8] = b"ticket_return/";
/// Per child: the highest event counter of events the child created that this node holds.
const ORIGIN_PREFIX: &[u8] = b"ticket_origin/";

impl Ledger {
    /// Stage, for a child whose store was replaced: both ticket cursors back to 0 (it resends
    /// its whole ticket log, this node everything for its subtree), and the events it created
    /// itself that this node holds sent back down with them (up to this node's head).
    pub(in crate::ledger) fn stage_ticket_reset(&self, child: Code, ws: &mut WriteSet) {
        ws.put(
            TreeId::Meta,
            cursor_key(UP_PREFIX, child),
            0u64.to_be_bytes().to_vec(),
        );
        ws.put(
            TreeId::Meta,
            cursor_key(DOWN_PREFIX, child),
            0u64.to_be_bytes().to_vec(),
        );
        ws.put(
            TreeId::Meta,
            cursor_key(RETURN_PREFIX, child),
            self.ticket_head().to_be_bytes().to_vec(),
        );
    }

    /// This node's ticket-log position up to which `child`'s own events go back down to it
    /// (0: none; see [`Logged::returns_to`]).
    pub fn ticket_return_upto(&self, child: Code) -> Result<u64> {
        Ok(u64_of(
            self.store
                .get(TreeId::Meta, &cursor_key(RETURN_PREFIX, child))?,
        ))
    }

    /// The highest event counter of the events `child` created that this node holds, and
    /// this node's Lamport clock (what `Welcome` tells a child, so that one restored from an
    /// older backup never reuses an event id or goes back in time).
    pub fn ticket_counters_for(&self, child: Code) -> Result<(u64, u64)> {
        Ok((
            u64_of(
                self.store
                    .get(TreeId::Meta, &cursor_key(ORIGIN_PREFIX, child))?,
            ),
            u64_of(self.store.get(TreeId::Meta, META_TICKET_CLOCK)?),
        ))
    }

    /// Stage the child's event counter as seen in a batch from it.
    pub(super) fn stage_origin_seq(&self, child: Code, seq: u64, ws: &mut WriteSet) -> Result<()> {
        let k = cursor_key(ORIGIN_PREFIX, child);
        if seq > u64_of(self.store.get(TreeId::Meta, &k)?) {
            ws.put(TreeId::Meta, k, seq.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// Move this node's event counter and Lamport clock up to at least `seq` and `clock`
    /// (from the parent's `Welcome`), durably, before any new event is created.
    pub fn raise_ticket_counters(&self, seq: u64, clock: u64) -> Result<bool> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut ws = WriteSet::new();
        if seq > u64_of(self.store.get(TreeId::Meta, META_TICKET_SEQ)?) {
            ws.put(TreeId::Meta, META_TICKET_SEQ, seq.to_be_bytes().to_vec());
        }
        if clock > u64_of(self.store.get(TreeId::Meta, META_TICKET_CLOCK)?) {
            ws.put(
                TreeId::Meta,
                META_TICKET_CLOCK,
                clock.to_be_bytes().to_vec(),
            );
        }
        if ws.is_empty() {
            return Ok(false);
        }
        self.store.commit(ws)?;
        self.store.flush()?;
        Ok(true)
    }
}
