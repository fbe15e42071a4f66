//! Double-random spot checks (双随机): the draw as a pure, deterministic function — no storage,
//! no network. `ledger/spot_checks.rs` gathers its inputs (the division registry, the earlier
//! draws held as tickets, the seed from the statistics) and issues its picks as tickets.
//!
//! # The draw
//!
//! Each week the drawing node (the province) draws, for scope [`Scope::County`], one village
//! per county; for [`Scope::City`], one county per city and one village in it. The draw is a
//! function of three published inputs, so anyone holding them reruns it and gets the same
//! picks ([`draw`]):
//!
//! - the **seed**: SHA-256 over the week, the scope and a digest of the drawing node's own
//!   statistics for the previous week ([`seed`], [`statistics_digest`]) — unknown before that
//!   week closed, fixed after; it travels with every ticket of the draw;
//! - the **units**: for each county (or city), its villages (or counties) from the division
//!   registry, in code order;
//! - the **history**: the earlier draws of the same scope, in week order (they are tickets, so
//!   every node on a ticket's path holds them: the province all, a city those of its counties,
//!   a county its own).
//!
//! **No repeat before full coverage**: within a unit, the candidates are the members not drawn
//! since the unit was last fully covered ([`Cycle`]); when every member has been drawn, a new
//! cycle starts with all of them. The choice among the candidates is uniform: a 64-bit number
//! from SHA-256(seed ‖ unit ‖ counter), rejection-sampled below the largest multiple of the
//! candidate count (no modulo bias). Each unit's pick depends only on the seed, that unit's
//! members and that unit's history, so a city or a county can verify its own part of a
//! province-wide draw.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::division::Code;
use crate::period::{Kind, Period};
use crate::stats::{Indicators, Value};

/// Which draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One village per county.
    County,
    /// One county per city, and one village in that county.
    City,
}

impl Scope {
    /// `county` or `city`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::County => "county",
            Scope::City => "city",
        }
    }

    /// Parse `county` or `city`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        match s {
            "county" => Ok(Scope::County),
            "city" => Ok(Scope::City),
            _ => Err(format!("{s:?}: the scope is county or city")),
        }
    }

    /// The ticket id prefix of this scope's draws.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Scope::County => "SC",
            Scope::City => "SCC",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a spot-check ticket carries about its draw (the published inputs travel with it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpotCheckTask {
    /// The ISO week drawn for (`2026-W49`).
    pub week: String,
    /// The scope of the draw.
    pub scope: Scope,
    /// The draw's seed, 64 lowercase hex digits.
    pub seed: String,
}

impl SpotCheckTask {
    /// The field's rules: the week is an ISO week, the seed 32 bytes in lowercase hex.
    pub fn validate(&self) -> Result<(), String> {
        match Period::parse(&self.week) {
            Ok(p) if p.kind() == Kind::Week => {}
            _ => return Err(format!("{:?} is not an ISO week (2026-W49)", self.week)),
        }
        if parse_seed(&self.seed).is_none() {
            return Err(format!(
                "{:?} is not a seed (64 lowercase hex digits)",
                self.seed
            ));
        }
        Ok(())
    }
}

/// A seed: 32 bytes.
pub type Seed = [u8; 32];

/// The seed in lowercase hex.
pub fn seed_hex(seed: &Seed) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse 64 lowercase hex digits.
pub fn parse_seed(s: &str) -> Option<Seed> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn sha256(parts: &[&[u8]]) -> Seed {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A digest of a division's statistics for a period: SHA-256 over its count and amount rows
/// (`indicator\tdimension\tvalue\n` in the rows' stable order; ratios and averages derive from
/// those and are left out).
pub fn statistics_digest(ind: &Indicators) -> Seed {
    let mut text = format!("{}\t{}\n", ind.division, ind.period);
    for r in &ind.rows {
        let v = match r.value {
            Value::Count(n) | Value::Fen(n) => n,
            Value::Ratio(_) | Value::Average(_) => continue,
        };
        text.push_str(&format!("{}\t{}\t{v}\n", r.indicator, r.dimension));
    }
    sha256(&[text.as_bytes()])
}

/// The seed of the draw of `week` in `scope` by `drawer`, from the digest of the drawer's
/// statistics of the week before ([`statistics_digest`]).
pub fn seed(drawer: Code, week: Period, scope: Scope, digest: &Seed) -> Seed {
    sha256(&[
        b"bottomline.v1.spot-check-seed\0",
        drawer.to_string().as_bytes(),
        b"\0",
        week.to_string().as_bytes(),
        b"\0",
        scope.as_str().as_bytes(),
        b"\0",
        digest,
    ])
}

/// A uniform choice in `0..n` (n ≥ 1) for `unit`, from the seed: SHA-256(seed ‖ purpose ‖
/// unit ‖ counter) read as a big-endian u64, rejected above the largest multiple of `n`.
pub fn choose(seed: &Seed, purpose: &str, unit: Code, n: usize) -> usize {
    assert!(n > 0, "a choice among no candidates");
    let n = n as u64;
    let limit = u64::MAX - (u64::MAX % n);
    let unit = unit.to_string();
    for counter in 0u64.. {
        let h = sha256(&[
            seed,
            purpose.as_bytes(),
            b"\0",
            unit.as_bytes(),
            b"\0",
            &counter.to_be_bytes(),
        ]);
        let x = u64::from_be_bytes(h[..8].try_into().unwrap_or_default());
        if x < limit {
            return (x % n) as usize;
        }
    }
    unreachable!("a u64 below the limit comes with probability > 1/2 per try")
}

/// The no-repeat state of one unit: which members were drawn since it was last fully covered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// Drawn in the current cycle.
    pub drawn: BTreeSet<Code>,
}

impl Cycle {
    /// The cycle after the picks of `history` (in draw order) among `members`: a pick outside
    /// the members (a division since removed) counts for nothing; when every member is drawn,
    /// the next cycle starts empty.
    pub fn after(members: &[Code], history: &[Code]) -> Cycle {
        let mut c = Cycle::default();
        for p in history {
            c.record(members, *p);
        }
        c
    }

    fn record(&mut self, members: &[Code], pick: Code) {
        if members.contains(&pick) {
            self.drawn.insert(pick);
            if members.iter().all(|m| self.drawn.contains(m)) {
                self.drawn.clear();
            }
        }
    }

    /// The members not drawn in this cycle, in code order.
    pub fn candidates(&self, members: &[Code]) -> Vec<Code> {
        members
            .iter()
            .filter(|m| !self.drawn.contains(m))
            .copied()
            .collect()
    }
}

/// One pick of a draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pick {
    /// The unit it was drawn for: the county (scope county) or the city (scope city).
    pub unit: Code,
    /// The county drawn (scope city; = `unit` for scope county).
    pub county: Code,
    /// The village drawn.
    pub village: Code,
}

/// The inputs of a draw besides the seed: each unit's members and the earlier picks.
#[derive(Clone, Debug, Default)]
pub struct DrawInput {
    /// Villages of each county (code order; counties without villages are skipped).
    pub villages: BTreeMap<Code, Vec<Code>>,
    /// Counties of each city (scope city only).
    pub counties: BTreeMap<Code, Vec<Code>>,
    /// The earlier picks of this scope in draw order (weeks ascending).
    pub history: Vec<Pick>,
}

/// Draw: for scope county one village per county in `input.villages`; for scope city one
/// county (with villages) per city in `input.counties` and one village in it. Picks in unit
/// order. A pure function of its arguments.
pub fn draw(seed: &Seed, scope: Scope, input: &DrawInput) -> Vec<Pick> {
    let village_in = |county: Code, purpose: &str| -> Option<Code> {
        let members = input.villages.get(&county).filter(|v| !v.is_empty())?;
        let past: Vec<Code> = input
            .history
            .iter()
            .filter(|p| p.county == county)
            .map(|p| p.village)
            .collect();
        let candidates = Cycle::after(members, &past).candidates(members);
        Some(candidates[choose(seed, purpose, county, candidates.len())])
    };
    match scope {
        Scope::County => input
            .villages
            .keys()
            .filter_map(|&county| {
                village_in(county, "village").map(|village| Pick {
                    unit: county,
                    county,
                    village,
                })
            })
            .collect(),
        Scope::City => input
            .counties
            .iter()
            .filter_map(|(&city, counties)| {
                let members: Vec<Code> = counties
                    .iter()
                    .filter(|c| input.villages.get(c).is_some_and(|v| !v.is_empty()))
                    .copied()
                    .collect();
                if members.is_empty() {
                    return None;
                }
                let past: Vec<Code> = input
                    .history
                    .iter()
                    .filter(|p| p.unit == city)
                    .map(|p| p.county)
                    .collect();
                let candidates = Cycle::after(&members, &past).candidates(&members);
                let county = candidates[choose(seed, "county", city, candidates.len())];
                village_in(county, "city-village").map(|village| Pick {
                    unit: city,
                    county,
                    village,
                })
            })
            .collect(),
    }
}

/// The ticket id of a pick: `SC-2026-W49-610102` (scope county: the county) or
/// `SCC-2026-W49-6101` (scope city: the city).
pub fn ticket_id(scope: Scope, week: Period, unit: Code) -> String {
    format!("{}-{week}-{unit}", scope.id_prefix())
}

#[cfg(test)]
mod tests;
