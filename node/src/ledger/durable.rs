//! Group commit: how a writer makes its commit durable (one flusher at a time, writers that
//! committed meanwhile share the next flush) and what a flush tells the sync senders.

use super::*;

impl Ledger {
    /// Commit `ws` under the write lock `w`, release the lock, and return once a flush
    /// covered the commit (group commit: writers that committed meanwhile share one flush).
    pub(super) fn commit_then_flush(
        &self,
        w: std::sync::MutexGuard<'_, ()>,
        ws: WriteSet,
    ) -> Result<()> {
        self.store.commit(ws)?;
        let commit = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        drop(w);
        self.flush_through(commit)
    }

    /// Flush the store (sled's flush, then `fdatasync`), timed for `/metrics`: every flush of
    /// the ledger's own writes goes through here.
    pub(super) fn flush_store(&self) -> Result<()> {
        let start = std::time::Instant::now();
        self.store.flush()?;
        self.metrics.flushed(start.elapsed());
        Ok(())
    }

    /// Record that the change log up to `seq` is flushed and wake the sync sender.
    pub(super) fn mark_durable(&self, seq: u64) {
        self.durable
            .fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Highest change-log position that is flushed.
    pub fn durable_seq(&self) -> u64 {
        self.durable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Make commit number `commit` (of those that flush outside the write lock) durable:
    /// the first caller flushes everything committed so far; callers arriving during that
    /// flush wait for it and return if it covered them, else one of them runs the next flush
    /// for all. sled's flush covers every write committed before it starts, so the counts and
    /// the log head are read before flushing.
    pub(super) fn flush_through(&self, commit: u64) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.flushed.load(SeqCst) >= commit {
            return Ok(());
        }
        let _f = self.flush.lock().unwrap_or_else(|p| p.into_inner());
        if self.flushed.load(SeqCst) >= commit {
            return Ok(());
        }
        let covered = self.commits.load(SeqCst);
        let head = self.cell_seq()?;
        let tickets = self.stored_ticket_head()?;
        self.flush_store()?;
        self.flushed.fetch_max(covered, SeqCst);
        self.mark_durable(head);
        if self.ticket_durable.fetch_max(tickets, SeqCst) < tickets {
            self.tickets_changed.notify_waiters();
        }
        Ok(())
    }
}
