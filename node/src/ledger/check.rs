//! What a node can check about itself (`bottomline check`, and in the background,
//! `check_secs`), part by part, each part under the write lock so that no apply lands halfway
//! through it, and writers (imports, a child's batches) wait for one part, never the whole
//! check:
//!
//! - a **county** (the node that holds records): every cell equals a recomputation from its
//!   records and tickets (invariant 4);
//! - a **parent** (city, province): it holds its children's cells as they sent them, which it
//!   cannot recompute, and derives its own division's cells from them (invariant 11): every
//!   cell of its own division equals the sum of its direct children's cells for the same
//!   period, indicator and dimension, plus the cells of the tickets it serves itself.
//!
//! The background check ([`Ledger::self_check_yielding`]) yields to the node's own uplink:
//! before each part it waits while a sweep is sending a backlog. A county's part reads every
//! record (tens of seconds on a starved machine), and the uplink's sweep takes the same lock,
//! so a check begun while a county sent its initial backlog let one batch through per part
//! (the province held the figures after 173.5 s instead of ~12, footprint O4). Running the two
//! side by side instead (the lock as an `RwLock`) put a part and a batch in memory at once
//! (56.3 MiB in a county, O5).

use super::*;
use crate::division::CODE_KEY_LEN;
use crate::period::PERIOD_KEY_LEN;
use std::time::{Duration, Instant};

/// Most differing cells a report lists.
pub const MAX_LISTED: usize = 20;

/// Parts a county's check is done in (see [`Ledger::check_records`]).
pub const CHECK_PARTS: u64 = 8;

/// Periods of one part of a parent's check ([`Ledger::check_aggregates`]): the period keys
/// (kind, year, index, big-endian) that agree but for their last four bits, so one kind and one
/// year, up to 16 consecutive indices: a year's weeks make four parts, its months one.
const AGGREGATE_PART_SPAN: u64 = 16;

/// After a sweep step stopped short of the head, how long the uplink counts as still sending
/// its backlog (a step that reaches the head ends it at once): covers waiting for acks with a
/// full window on a loaded machine; a link that dropped mid-sweep stops counting after it.
const SENDING_FOR: Duration = Duration::from_secs(30);

/// How often a yielding check looks whether the uplink finished.
const YIELD_POLL: Duration = Duration::from_millis(100);

/// A period key as a number (its 5 bytes big-endian), so parts are ranges of numbers.
fn period_number(key: &[u8]) -> u64 {
    key.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// The block key of `division` at period number `n` (a part's bound: `n` need not be a period).
fn block_bound(division: Code, n: u64) -> [u8; crate::cells::BLOCK_KEY_LEN] {
    let mut k = [0u8; crate::cells::BLOCK_KEY_LEN];
    k[..CODE_KEY_LEN].copy_from_slice(&division.key());
    k[CODE_KEY_LEN..].copy_from_slice(&n.to_be_bytes()[8 - PERIOD_KEY_LEN..]);
    k
}

/// The first period number of the part holding period number `n`.
fn aggregate_part(n: u64) -> u64 {
    n & !(AGGREGATE_PART_SPAN - 1)
}

/// The part of block (division, period).
fn part_of(d: Code, p: Period) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (d, p).hash(&mut h);
    h.finish() % CHECK_PARTS
}

/// At debug level: where a part of a check is, its time, the allocator's figures and what is
/// resident (what a check holds at each step).
fn heap_trace(part: u64, step: &str, since: std::time::Instant, cells: usize) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let f = crate::memory::figures();
        tracing::debug!(
            part,
            cells,
            ms = since.elapsed().as_millis() as u64,
            heap_in_use_mib = f.heap_in_use_mib,
            heap_free_mib = f.heap_free_mib,
            rss_anon_mib = f.rss_anon_mib,
            "self-check: {step}"
        );
    }
}

/// A cell that is not what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The cell.
    pub key: CellKey,
    /// Its stored value.
    pub stored: i64,
    /// What it must be.
    pub expected: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} dim {}: stored {}, expected {}",
            self.key.division,
            self.key.period,
            self.key.indicator.name(),
            self.key.dim,
            self.stored,
            self.expected
        )
    }
}

/// What a check compared and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// What was checked, in words.
    pub what: String,
    /// Cells compared.
    pub cells: usize,
    /// How many differ.
    pub differing: usize,
    /// The first [`MAX_LISTED`] of them, in key order.
    pub first: Vec<Mismatch>,
}

impl CheckReport {
    /// No cell differs.
    pub fn ok(&self) -> bool {
        self.differing == 0
    }

    /// Add the findings of one part of the check.
    fn absorb(&mut self, part: CheckReport) {
        self.cells += part.cells;
        self.differing += part.differing;
        self.first.extend(part.first);
        self.first.sort_by_key(|m| m.key);
        self.first.truncate(MAX_LISTED);
    }
}

/// Compare `stored` with `expected` (both without zeros).
fn compare(
    what: String,
    stored: &BTreeMap<CellKey, i64>,
    expected: &BTreeMap<CellKey, i64>,
) -> CheckReport {
    let mut r = CheckReport {
        what,
        cells: stored.len().max(expected.len()),
        ..Default::default()
    };
    let keys: std::collections::BTreeSet<&CellKey> = stored.keys().chain(expected.keys()).collect();
    for k in keys {
        let (s, e) = (
            stored.get(k).copied().unwrap_or(0),
            expected.get(k).copied().unwrap_or(0),
        );
        if s != e {
            r.differing += 1;
            if r.first.len() < MAX_LISTED {
                r.first.push(Mismatch {
                    key: *k,
                    stored: s,
                    expected: e,
                });
            }
        }
    }
    r
}

impl Ledger {
    /// Check what this node can check about its cells (see the module): a county against its
    /// records, a parent against its children's replicas.
    pub fn self_check(&self) -> Result<CheckReport> {
        self.self_check_paced(&mut || {})
    }

    /// [`Ledger::self_check`] in the background: before each part, wait while this node's
    /// uplink is sending a backlog ([`Ledger::sending_backlog`]), until the check has run for
    /// `budget` (then it no longer waits), so the check holds the sync back by one part at
    /// most and always ends. Returns the report and how long it waited.
    pub fn self_check_yielding(&self, budget: Duration) -> Result<(CheckReport, Duration)> {
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let report = self.self_check_paced(&mut || {
            if !self.sending_backlog() {
                return;
            }
            let from = Instant::now();
            while self.sending_backlog() && started.elapsed() < budget {
                std::thread::sleep(YIELD_POLL);
            }
            waited += from.elapsed();
        })?;
        Ok((report, waited))
    }

    /// The check, calling `before_part` before each part takes the lock.
    fn self_check_paced(&self, before_part: &mut dyn FnMut()) -> Result<CheckReport> {
        if self.division.level() >= Level::County {
            self.check_records(before_part)
        } else {
            self.check_aggregates(before_part)
        }
    }

    /// The last sweep step stopped short of the head less than [`SENDING_FOR`] ago: the
    /// uplink is sending a backlog.
    pub fn sending_backlog(&self) -> bool {
        let at = *self
            .sweep_unfinished
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        at.is_some_and(|t| t.elapsed() < SENDING_FOR)
    }

    /// A sweep step ended: `complete` if it reached the head.
    pub(super) fn note_sweep(&self, complete: bool) {
        *self
            .sweep_unfinished
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (!complete).then(Instant::now);
    }

    /// A county: every cell equals a recomputation from the records and tickets. The cells
    /// are checked in [`CHECK_PARTS`] parts by block, each read, recomputed and compared under
    /// the write lock on its own: a part is consistent in itself, memory holds a part's cells
    /// (a realistic county has ~300 000), and writers wait for one part, not the whole check.
    fn check_records(&self, before_part: &mut dyn FnMut()) -> Result<CheckReport> {
        let mut report = CheckReport {
            what: format!(
                "{}: every cell against a recomputation from its records and tickets",
                self.division
            ),
            ..Default::default()
        };
        for part in 0..CHECK_PARTS {
            if part > 0 {
                // The last part's maps were freed between long-lived blocks: give them back
                // before this part builds its own, so a check holds one part at a time in RSS
                // too (the caller gives the last part's back, as after every check).
                crate::memory::release_memory();
            }
            before_part();
            let inside = |d: Code, p: Period| part_of(d, p) == part;
            let r = {
                let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
                let t = std::time::Instant::now();
                let stored = self.cells_where(&inside)?;
                heap_trace(part, "stored cells read", t, stored.len());
                let fresh = self.recompute_cells_where(&inside)?;
                heap_trace(part, "recomputed", t, fresh.len());
                compare(String::new(), &stored, &fresh)
            };
            report.absorb(r);
        }
        Ok(report)
    }

    /// A parent: every cell of its own division equals the sum of its direct children's cells
    /// (as they sent them) plus its own ticket cells. Checked in parts of periods (see
    /// [`AGGREGATE_PART_SPAN`]), each under the write lock on its own: a province's whole check
    /// held its children's batches back for 9–18 s a minute on a loaded machine, and while the
    /// tree started it held the province's figures back by minutes.
    fn check_aggregates(&self, before_part: &mut dyn FnMut()) -> Result<CheckReport> {
        let me = self.division;
        let mut children: std::collections::BTreeSet<Code> =
            self.registry().children(me).map(|d| d.code).collect();
        children.extend(self.known_children()?.into_iter().map(|k| k.division));
        let mut report = CheckReport {
            what: format!(
                "{me}: its own cells against the sum of its {} children's and its own tickets'",
                children.len()
            ),
            ..Default::default()
        };
        for first in self.aggregate_parts(me, &children)? {
            before_part();
            let end = first + AGGREGATE_PART_SPAN;
            let in_part = |k: &CellKey| {
                let n = period_number(&k.period.key());
                k.division == me && (first..end).contains(&n)
            };
            let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
            let mut expected: BTreeMap<CellKey, i64> = BTreeMap::new();
            for c in &children {
                let range = self.store.range(
                    TreeId::Cells,
                    &block_bound(*c, first),
                    &block_bound(*c, end),
                );
                for (k, v) in self.scan_cells(range)? {
                    if k.division == *c {
                        let own = CellKey { division: me, ..k };
                        let e = expected.entry(own).or_insert(0);
                        *e = e.checked_add(v).ok_or_else(|| LedgerError::Corrupt {
                            what: "cells",
                            detail: format!("the sum of {own:?} over the children overflows"),
                        })?;
                    }
                }
            }
            let mut tickets = BTreeMap::new();
            self.ticket_cells_into(&mut tickets)?;
            for (k, v) in tickets {
                if in_part(&k) {
                    *expected.entry(k).or_insert(0) += v;
                }
            }
            expected.retain(|_, v| *v != 0);
            let range = self.store.range(
                TreeId::Cells,
                &block_bound(me, first),
                &block_bound(me, end),
            );
            let stored: BTreeMap<CellKey, i64> = self
                .scan_cells(range)?
                .into_iter()
                .filter(|(k, _)| k.division == me)
                .collect();
            report.absorb(compare(String::new(), &stored, &expected));
        }
        Ok(report)
    }

    /// The parts of a parent's check (their first period numbers, in order): those holding a
    /// block of this node's own division or of one of `children`, or a cell of its tickets.
    /// Found by seeking from part to part (a few hundred reads), not by reading every block.
    fn aggregate_parts(
        &self,
        me: Code,
        children: &std::collections::BTreeSet<Code>,
    ) -> Result<std::collections::BTreeSet<u64>> {
        let mut parts = std::collections::BTreeSet::new();
        let beyond = 1u64 << (8 * PERIOD_KEY_LEN);
        for d in std::iter::once(me).chain(children.iter().copied()) {
            let mut from = 0;
            while from < beyond {
                let Some(r) = self
                    .store
                    .range(
                        TreeId::Cells,
                        &block_bound(d, from),
                        &block_bound(d, beyond - 1),
                    )
                    .next()
                else {
                    break;
                };
                let (k, _) = r?;
                let part = aggregate_part(period_number(&k[CODE_KEY_LEN..]));
                parts.insert(part);
                from = part + AGGREGATE_PART_SPAN;
            }
        }
        let mut tickets = BTreeMap::new();
        self.ticket_cells_into(&mut tickets)?;
        parts.extend(
            tickets
                .keys()
                .filter(|k| k.division == me)
                .map(|k| aggregate_part(period_number(&k.period.key()))),
        );
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::Replica;
    use crate::period::Period;
    use crate::stats::Stored;
    use crate::store::StoreOptions;

    fn c(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    fn cell(division: &str, dim: u8, value: i64, version: u64) -> Replica {
        Replica {
            key: CellKey {
                division: c(division),
                period: Period::parse("2026-11").unwrap(),
                indicator: Stored::Measures,
                dim,
            },
            value,
            version,
        }
    }

    #[test]
    fn a_parent_proves_its_own_cells_are_the_sum_of_its_childrens() {
        let dir = tempfile::tempdir().unwrap();
        let city =
            Ledger::open_or_init(dir.path(), Some(c("6101")), &StoreOptions::default()).unwrap();
        city.apply_replicas(
            c("610102"),
            &[cell("610102", 1, 5, 1), cell("610102001", 1, 5, 1)],
            1,
            1,
        )
        .unwrap();
        city.apply_replicas(
            c("610103"),
            &[cell("610103", 1, 7, 1), cell("610103", 2, 2, 1)],
            1,
            1,
        )
        .unwrap();
        let r = city.self_check().unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.cells, 2, "6101's two cells: 5 + 7 and 2");
        // A replica changes: the aggregate follows in the same commit.
        city.apply_replicas(c("610102"), &[cell("610102", 1, 1, 2)], 2, 2)
            .unwrap();
        assert!(city.self_check().unwrap().ok());
        // A cell of the city's own division written outside the replicas is found.
        let bad = CellKey {
            division: c("6101"),
            ..cell("6101", 2, 0, 0).key
        };
        let groups = crate::cells::group([(bad, 3)]);
        {
            let _w = city.write.lock().unwrap();
            city.write_cells(&groups, &mut |_| {}).unwrap();
        }
        let r = city.self_check().unwrap();
        assert_eq!(r.differing, 1);
        assert_eq!(
            r.first,
            vec![Mismatch {
                key: bad,
                stored: 5,
                expected: 2
            }]
        );
        assert!(r.first[0].to_string().contains("stored 5, expected 2"));
    }

    /// The parent's check goes part by part: cells of every kind of period, in two years and
    /// across the week parts' bounds (2026-W53 included), are all compared, and a wrong cell is
    /// found in whichever part it is, as is a cell of the parent's own with no child's under it.
    #[test]
    fn a_parents_check_covers_every_part_of_its_periods() {
        let dir = tempfile::tempdir().unwrap();
        let city =
            Ledger::open_or_init(dir.path(), Some(c("6101")), &StoreOptions::default()).unwrap();
        let periods: Vec<Period> = [
            "2025-W01", "2025-W15", "2025-W16", "2025-W52", "2026-W01", "2026-W31", "2026-W32",
            "2026-W48", "2026-W53", "2026-01", "2026-12", "2026-Q4", "2026-H2", "2026",
        ]
        .iter()
        .map(|p| Period::parse(p).unwrap())
        .collect();
        let at = |division: &str, period: Period, value: i64| Replica {
            key: CellKey {
                division: c(division),
                period,
                indicator: Stored::Measures,
                dim: 1,
            },
            value,
            version: 1,
        };
        let mut v = 0;
        for (i, p) in periods.iter().enumerate() {
            v += 1;
            let child = if i % 2 == 0 { "610102" } else { "610103" };
            city.apply_replicas(c(child), &[at(child, *p, i as i64 + 1)], v, v)
                .unwrap();
        }
        let parts = city
            .aggregate_parts(c("6101"), &[c("610102"), c("610103")].into())
            .unwrap();
        assert!(parts.len() >= 10, "{} parts", parts.len());
        let r = city.self_check().unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.cells, periods.len(), "every period's cell compared once");

        // Two wrong cells of the city's own, in different parts: a week at the end of a year and
        // a period no child has a cell in.
        let w53 = CellKey {
            division: c("6101"),
            ..at("6101", Period::parse("2026-W53").unwrap(), 0).key
        };
        let lone = CellKey {
            division: c("6101"),
            ..at("6101", Period::parse("2024-Q1").unwrap(), 0).key
        };
        {
            let _w = city.write.lock().unwrap();
            city.write_cells(&crate::cells::group([(w53, 4), (lone, 6)]), &mut |_| {})
                .unwrap();
        }
        let r = city.self_check().unwrap();
        assert_eq!(r.differing, 2, "{r:?}");
        assert_eq!(r.cells, periods.len() + 1);
        let mut found: Vec<(Period, i64, i64)> = r
            .first
            .iter()
            .map(|m| (m.key.period, m.stored, m.expected))
            .collect();
        found.sort();
        let w53_value = 9; // 2026-W53 is the 9th period, sent as 9
        let mut want = vec![(lone.period, 6, 0), (w53.period, w53_value + 4, w53_value)];
        want.sort();
        assert_eq!(found, want);
    }

    #[test]
    fn a_value_or_sum_that_would_wrap_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let city =
            Ledger::open_or_init(dir.path(), Some(c("6101")), &StoreOptions::default()).unwrap();
        city.apply_replicas(c("610102"), &[cell("610102", 1, i64::MAX, 1)], 1, 1)
            .unwrap();
        let before = city.all_cells().unwrap();
        // The city's own cell would be i64::MAX + 1.
        let e = city
            .apply_replicas(c("610103"), &[cell("610103", 1, 1, 1)], 1, 1)
            .unwrap_err();
        assert!(matches!(e, LedgerError::Overflow(_)), "{e}");
        assert!(e.to_string().contains("overflows"), "{e}");
        // A change from i64::MIN to i64::MAX cannot be expressed as a difference.
        city.apply_replicas(c("610102"), &[cell("610102", 1, i64::MIN, 2)], 2, 2)
            .unwrap_err();
        assert_eq!(city.all_cells().unwrap(), before, "nothing was written");
        assert_eq!(city.child_acked(c("610103")).unwrap(), 0);
        assert!(city.self_check().unwrap().ok());
    }

    #[test]
    fn the_background_check_yields_to_the_uplinks_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let city =
            Ledger::open_or_init(dir.path(), Some(c("6101")), &StoreOptions::default()).unwrap();
        let (ok, _) = city.self_check_yielding(Duration::from_secs(600)).unwrap();
        assert!(
            ok.ok() && !city.sending_backlog(),
            "nothing sent yet, nothing to wait for"
        );
        let mut cells = vec![cell("610102", 1, 5, 1), cell("610102001", 1, 5, 1)];
        cells.push(Replica {
            key: CellKey {
                period: Period::parse("2025-11").unwrap(),
                ..cells[0].key
            },
            ..cells[0]
        });
        city.apply_replicas(c("610102"), &cells, 1, 1).unwrap();
        // A step that stops short of the head: the uplink is sending a backlog.
        let step = city.sweep(0, 0, 1).unwrap();
        assert!(!step.complete);
        assert!(city.sending_backlog());
        // The check waits for it, at most its budget in all, and then checks all the same.
        let budget = Duration::from_millis(300);
        let (r, waited) = city.self_check_yielding(budget).unwrap();
        assert!(r.ok() && r.cells > 0, "{r:?}");
        assert!(waited >= budget / 2, "waited {waited:?} of {budget:?}");
        // A check waiting when the sweep reaches the head goes on then, long before its budget.
        let budget = Duration::from_secs(600);
        let (r, waited) = std::thread::scope(|s| {
            let check = s.spawn(|| city.self_check_yielding(budget).unwrap());
            let done = city.sweep(0, step.pos, usize::MAX).unwrap();
            assert!(done.complete && !city.sending_backlog());
            check.join().unwrap()
        });
        assert!(r.ok() && waited < budget, "{r:?} after {waited:?}");
        // The check `bottomline check` runs does not wait at all.
        city.sweep(0, 0, 1).unwrap();
        assert!(city.sending_backlog() && city.self_check().unwrap().ok());
    }

    #[test]
    fn a_county_checks_its_cells_against_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let county =
            Ledger::open_or_init(dir.path(), Some(c("610102")), &StoreOptions::default()).unwrap();
        let r = county.self_check().unwrap();
        assert!(r.ok() && r.what.contains("recomputation"), "{r:?}");
    }
}
