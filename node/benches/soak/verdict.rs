//! The soak's summary: for each series of the soak window, its thirds' averages, its
//! least-squares slopes, and whether it is bounded (see [`judge`]).

use serde_json::{json, Value};

/// What a series measures, which sets how much rise is noise ([`Kind::allowance`]).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// MiB.
    Memory,
    /// Blocks and ticket events waiting on links.
    Backlog,
    /// Milliseconds.
    Latency,
}

impl Kind {
    /// How far the last third may lie above the middle third (and the fitted line rise over
    /// the last half) and still count as bounded: memory max(2 MiB, 5 %), a backlog
    /// max(100, 50 %), a latency max(5 ms, 50 %) of the middle third's average. The memory
    /// allowance is about what a self-check or a burst of work leaves for a while; a backlog
    /// and a flush latency swing by half between samples on a shared disk, so only more than
    /// that is growth.
    pub fn allowance(self, middle: f64) -> f64 {
        let middle = middle.abs();
        match self {
            Kind::Memory => (0.05 * middle).max(2.0),
            Kind::Backlog => (0.5 * middle).max(100.0),
            Kind::Latency => (0.5 * middle).max(5.0),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::Memory => "MiB",
            Kind::Backlog => "blocks+events",
            Kind::Latency => "ms",
        }
    }
}

/// The least-squares slope of `points` (x in minutes), per minute; None under two points or
/// with all x equal.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn mean(v: &[(f64, f64)]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64)
}

fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A series of the soak window judged: `points` are (minutes from the window's start,
/// value), in time order. **Bounded** when (1) the last third's average is at most the
/// middle third's plus the kind's allowance, and (2) the least-squares line over the last
/// half rises over that half by at most the same allowance. A series of fewer than 6
/// points is not judged (`bounded: null`). Returns the series' JSON and the verdict.
pub fn judge(kind: Kind, points: &[(f64, f64)]) -> (Value, Option<bool>) {
    let n = points.len();
    let third = n / 3;
    let (first, middle, last) = (
        &points[..third],
        &points[third..n - third],
        &points[n - third..],
    );
    let half = &points[n / 2..];
    let span = |v: &[(f64, f64)]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let slope_all = slope(points);
    let slope_half = slope(half);
    let rise_half = slope_half.map(|s| s * span(half));
    let (mid, end) = (mean(middle), mean(last));
    let allowance = mid.map(|m| kind.allowance(m));
    let bounded = match (n >= 6, mid, end, allowance, rise_half) {
        (true, Some(m), Some(e), Some(a), Some(r)) => Some(e - m <= a && r <= a),
        _ => None,
    };
    let o = |v: Option<f64>| v.map(r2);
    let json = json!({
        "unit": kind.unit(),
        "samples": n,
        "first_third_avg": o(mean(first)),
        "middle_third_avg": o(mid),
        "last_third_avg": o(end),
        "last_minus_middle": match (end, mid) { (Some(e), Some(m)) => Some(r2(e - m)), _ => None },
        "slope_per_min": o(slope_all),
        "slope_per_min_last_half": o(slope_half),
        "rise_over_last_half": o(rise_half),
        "allowance": o(allowance),
        "min": points.iter().map(|p| p.1).reduce(f64::min).map(r2),
        "max": points.iter().map(|p| p.1).reduce(f64::max).map(r2),
        "bounded": bounded,
    });
    (json, bounded)
}
