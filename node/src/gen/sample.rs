//! Random streams and sampling helpers: one ChaCha8 generator per (seed, division code,
//! stream), and the draws made from it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{HIGH_INCOME_SHARE, MIN_INCOME};

// ------------------------------------------------------------------------------------------------
// Random streams
// ------------------------------------------------------------------------------------------------

/// Random streams, so that each kind of choice has its own generator.
pub(super) const STREAM_NAME: u64 = 1;
pub(super) const STREAM_DIVISIONS: u64 = 2;
pub(super) const STREAM_SIZE: u64 = 3;
pub(super) const STREAM_DATA: u64 = 4;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator seeded from (seed, division code, stream).
pub(super) fn rng_for(seed: u64, code: &str, stream: u64) -> ChaCha8Rng {
    let mut h = splitmix64(seed ^ splitmix64(stream));
    for b in code.bytes() {
        h = splitmix64(h ^ u64::from(b));
    }
    let mut s = [0u8; 32];
    for chunk in s.chunks_mut(8) {
        h = splitmix64(h);
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    ChaCha8Rng::from_seed(s)
}

// ------------------------------------------------------------------------------------------------
// Sampling helpers (pure arithmetic: identical on every platform)
// ------------------------------------------------------------------------------------------------

pub(super) fn pick(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut r = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

pub(super) fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

pub(super) fn day_in(rng: &mut ChaCha8Rng, lo: i32, hi: i32) -> i32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// Approximately standard normal (Irwin–Hall with 4 uniforms), in [-3.46, 3.46].
fn normalish(rng: &mut ChaCha8Rng) -> f64 {
    let s: f64 = (0..4).map(|_| rng.random::<f64>()).sum();
    (s - 2.0) * 1.732_050_807_568_877_2
}

/// e^-x for 0 <= x <= ~5 by its series (basic operations only).
fn exp_neg(x: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..60 {
        term *= -x / f64::from(n);
        sum += term;
    }
    sum
}

pub(super) const POISSON_MAX: usize = 12;

/// Cumulative distribution of Poisson(lambda) for 0..POISSON_MAX.
pub(super) fn poisson_cdf(lambda: f64) -> [f64; POISSON_MAX] {
    let mut cdf = [0.0; POISSON_MAX];
    let mut p = exp_neg(lambda);
    let mut acc = 0.0;
    for (k, c) in cdf.iter_mut().enumerate() {
        acc += p;
        *c = acc;
        p *= lambda / (k as f64 + 1.0);
    }
    cdf
}

pub(super) fn poisson(rng: &mut ChaCha8Rng, cdf: &[f64; POISSON_MAX]) -> usize {
    let u = rng.random::<f64>();
    cdf.iter().position(|&c| u < c).unwrap_or(POISSON_MAX)
}

/// Amount in cents in [lo, hi] yuan, skewed towards the low end.
pub(super) fn skewed_cents(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
    if hi <= lo {
        return lo * 100;
    }
    let u = rng.random::<f64>();
    let span = ((hi - lo) * 100) as f64;
    lo * 100 + (span * u * u) as u64
}

pub(super) fn income_cents(
    rng: &mut ChaCha8Rng,
    (median, spread): (f64, f64),
    high_tail: bool,
) -> u64 {
    let mut x = median * (1.0 + spread * normalish(rng));
    if high_tail && chance(rng, HIGH_INCOME_SHARE) {
        x *= 1.5 + rng.random::<f64>();
    }
    if x < MIN_INCOME {
        x = MIN_INCOME + rng.random::<f64>() * 1_000.0;
    }
    (x * 100.0).round() as u64
}
