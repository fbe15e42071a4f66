//! The ticket log's most recent entries in memory ([`LogCache`]), bounded by count, by
//! bytes — smaller at a county, whose log has a single reader — and by age.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::LogEntry;
use crate::division::{Code, Level};

/// Recent ticket-log entries kept in memory for the senders (a burst such as a 10 000-ticket
/// inventory is read by every child link; from memory it is decoded once, not once per link),
/// at most this many …
pub(super) const CACHE_ENTRIES: usize = 32_768;
/// … and at most about this many bytes (an entry is ~1.3 KB with its decoded event: the
/// issues of a 10 000-ticket inventory fit; a parent's memory stays bounded) …
pub(super) const CACHE_BYTES: usize = 16 << 20;
/// … or this many at a county, whose log has one reader (its uplink) and no burst to share
/// among child links: a county's memory budget is 48 MB (issue #16), and a full-size cache
/// would grow it by 16 MiB over months of tickets (the soak saw the parents' caches fill).
pub(super) const COUNTY_CACHE_BYTES: usize = 1 << 20;
/// … and for at most this long: the links read new entries within seconds (a burst within a
/// minute or two), and a link further behind reads the store. Without it a parent's cache
/// filled towards its bound over half an hour of ordinary ticket traffic and held it (the
/// soak saw the province grow ~1.2 MiB a minute for it); with it, a quiet node holds none.
pub(super) const CACHE_AGE: Duration = Duration::from_secs(120);

/// The most recent ticket-log entries, in position order.
pub(in crate::ledger) type LogCache = std::sync::Mutex<RecentEntries>;

/// The entries of [`LogCache`] and their approximate size.
pub(in crate::ledger) struct RecentEntries {
    entries: std::collections::VecDeque<Arc<LogEntry>>,
    /// When each entry came in, in the same order.
    added: std::collections::VecDeque<Instant>,
    bytes: usize,
    /// The bound on `bytes`: [`CACHE_BYTES`], or [`COUNTY_CACHE_BYTES`] at a county.
    max_bytes: usize,
}

impl RecentEntries {
    /// An empty cache for the node of `division`.
    pub(in crate::ledger) fn for_node(division: Code) -> Self {
        RecentEntries {
            entries: Default::default(),
            added: Default::default(),
            bytes: 0,
            max_bytes: if division.level() == Level::County {
                COUNTY_CACHE_BYTES
            } else {
                CACHE_BYTES
            },
        }
    }

    /// The approximate bytes held.
    pub(in crate::ledger) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entries held.
    pub(in crate::ledger) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The oldest entry held.
    pub(super) fn front(&self) -> Option<&Arc<LogEntry>> {
        self.entries.front()
    }

    /// The entries, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<LogEntry>> {
        self.entries.iter()
    }

    pub(super) fn push(&mut self, e: Arc<LogEntry>) {
        let now = Instant::now();
        self.bytes += e.approx_bytes();
        self.entries.push_back(e);
        self.added.push_back(now);
        while self.entries.len() > CACHE_ENTRIES || self.bytes > self.max_bytes {
            if !self.pop_front() {
                break;
            }
        }
        self.expire(now);
    }

    /// Drop the entries older than [`CACHE_AGE`] at `now`.
    pub(in crate::ledger) fn expire(&mut self, now: Instant) {
        while self
            .added
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > CACHE_AGE)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) -> bool {
        self.added.pop_front();
        match self.entries.pop_front() {
            Some(old) => {
                self.bytes -= old.approx_bytes();
                true
            }
            None => false,
        }
    }
}
