//! What the ledger counts and times for `/metrics` (`http/metrics.rs` registers it): every
//! timed store flush (sled's flush and the `fdatasync` after it) and the cells applied,
//! from children's replicas or from this node's own writes. Cheap to clone (the counters and
//! the histogram are shared), one per ledger: several nodes in one process (the tests) each
//! count their own.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Bucket bounds of the flush histogram, in seconds: 0.1 ms (a flush with nothing to
/// write on an SSD) to 10 s (a disk in trouble).
pub const FLUSH_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Where applied cells came from (the `source` label of `cells_applied_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellsFrom {
    /// Replicated from a direct child's sweep (`Ledger::apply_replicas`).
    Child,
    /// Written by this node: imports and applies of records, and a repair after a crash.
    Local,
}

impl CellsFrom {
    fn label(self) -> [(&'static str, &'static str); 1] {
        match self {
            CellsFrom::Child => [("source", "child")],
            CellsFrom::Local => [("source", "local")],
        }
    }
}

/// The ledger's event metrics (see the module docs).
#[derive(Clone, Debug)]
pub struct LedgerMetrics {
    flush: Histogram,
    cells: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Default for LedgerMetrics {
    fn default() -> Self {
        let cells = Family::default();
        // Both series exist from the start (a rate over a series that appears later misses
        // its first increase).
        for from in [CellsFrom::Child, CellsFrom::Local] {
            let _ = cells.get_or_create(&from.label());
        }
        LedgerMetrics {
            flush: Histogram::new(FLUSH_BUCKETS),
            cells,
        }
    }
}

impl LedgerMetrics {
    /// Register the metrics in `registry` (names relative to its prefix):
    /// `flush_duration_seconds` and `cells_applied_total{source}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "flush_duration",
            "Time of each store flush (sled's flush and the fdatasync after it)",
            Unit::Seconds,
            self.flush.clone(),
        );
        registry.register(
            "cells_applied",
            "Statistics cells applied: source=child from children's replicas, source=local \
             from this node's own imports and writes (rate() of it: applied cells per second)",
            self.cells.clone(),
        );
    }

    /// A store flush that took `took`.
    pub(super) fn flushed(&self, took: Duration) {
        self.flush.observe(took.as_secs_f64());
    }

    /// `n` cells applied from `from`.
    pub(super) fn cells_applied(&self, from: CellsFrom, n: u64) {
        if n > 0 {
            self.cells.get_or_create(&from.label()).inc_by(n);
        }
    }

    /// Cells applied from `from` so far.
    pub fn cells_applied_total(&self, from: CellsFrom) -> u64 {
        self.cells.get_or_create(&from.label()).get()
    }
}
