//! Per-county generation: the rates derived from the options, and one county's households,
//! monitoring objects, cases, measures and risk signals written from its own random stream.

use std::fs;
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::names::{GIVEN_FEMALE, GIVEN_MALE, SINGLE_GIVEN_SHARE, SURNAMES, SURNAME_WEIGHTS};
use super::sample::{
    chance, day_in, income_cents, pick, poisson, poisson_cdf, rng_for, skewed_cents, POISSON_MAX,
    STREAM_DATA,
};
use super::sink::{
    civil_from_days, date_to_days, days_from_civil, push_cents, push_date, push_pad, push_uint,
    write_county_divs, write_div, Sink,
};
use super::*;

/// Rates derived from the options (the same for every county).
#[derive(Debug, Clone)]
pub(super) struct Params {
    min_day: i32,
    end: i32,
    /// First day of identification of monitoring objects.
    win_start: i32,
    /// First day of the last year (365 days ending at `end`).
    last_year: i32,
    /// Probability that a household was ever identified as a monitoring object.
    p_monitored: f64,
    /// Probability of `alleviated` for a household that is not a monitoring object.
    p_alleviated_other: f64,
    /// Probabilities of a rejected / a pending case for a household that is not monitored.
    p_rejected: f64,
    p_pending: f64,
    sig_monitored: [f64; POISSON_MAX],
    sig_other: [f64; POISSON_MAX],
    /// Birth dates of heads aged 18–85 at `end`.
    birth_lo: i32,
    birth_hi: i32,
}

impl Params {
    pub(super) fn new(end_date: jiff::civil::Date) -> Params {
        let min_day = days_from_civil(MIN_DATE.0, MIN_DATE.1, MIN_DATE.2);
        let end = date_to_days(end_date);
        let last_year = end - (SIGNAL_WINDOW_DAYS - 1);
        let mon_start = days_from_civil(MONITORING_START.0, MONITORING_START.1, MONITORING_START.2);
        // At least one full year of identifications, never before MIN_DATE.
        let win_start = mon_start.min(last_year).max(min_day);
        let n_total = f64::from(end - win_start + 1);
        let n_old = f64::from((last_year - win_start).max(0));
        let n_recent = n_total - n_old;
        let recent_eligible = (n_recent - f64::from(ELIMINATION_DELAY_RECENT_MIN)).max(0.0);
        // Share of identified households still in stock at `end`.
        let p_stock = (n_old * (1.0 - ELIMINATED_SHARE_OLD) + n_recent
            - ELIMINATED_SHARE_RECENT * recent_eligible)
            / n_total;
        let q = (STOCK_PERSON_SHARE / p_stock).min(0.5);
        let [w_unstable, _w_marginal, w_sudden] = CATEGORY_WEIGHTS.map(f64::from);
        let w_sum: f64 = CATEGORY_WEIGHTS.iter().map(|&w| f64::from(w)).sum();
        let alleviated_among_monitored = (w_unstable + w_sudden * ALLEVIATED_SHARE_SUDDEN) / w_sum;
        let p_alleviated_other =
            ((ALLEVIATED_SHARE - q * alleviated_among_monitored) / (1.0 - q)).clamp(0.0, 1.0);
        let p_rejected = (REJECTED_RATIO * q / (1.0 - q)).min(1.0);
        let included_per_day = q / n_total;
        let p_pending = (PENDING_RATIO * included_per_day * f64::from(PENDING_WINDOW_DAYS)
            / (1.0 - q))
            .min(1.0 - p_rejected);
        let lambda_other =
            ((SIGNALS_PER_HOUSEHOLD_YEAR - q * SIGNALS_PER_MONITORED_YEAR) / (1.0 - q)).max(0.0);
        let (y, m, d) = civil_from_days(end);
        let d = if m == 2 && d == 29 { 28 } else { d };
        let birth_hi = days_from_civil(y - 18, m, d);
        let birth_lo = days_from_civil(y - 86, m, d) + 1;
        Params {
            min_day,
            end,
            win_start,
            last_year,
            p_monitored: q,
            p_alleviated_other,
            p_rejected,
            p_pending,
            sig_monitored: poisson_cdf(SIGNALS_PER_MONITORED_YEAR),
            sig_other: poisson_cdf(lambda_other),
            birth_lo,
            birth_hi,
        }
    }
}

/// Counts for one county.
#[derive(Debug, Clone, Default)]
pub(super) struct CountyStats {
    pub(super) households: u64,
    pub(super) persons: u64,
    pub(super) monitored: u64,
    pub(super) stock_persons: u64,
    pub(super) signals: u64,
    pub(super) cases: u64,
    pub(super) measures: u64,
}

/// The data files of a county.
struct Sinks {
    households: Sink,
    monitored: Sink,
    signals: Sink,
    cases: Sink,
    measures: Sink,
}

// Indices into CATEGORIES, SIGNAL_TYPES, SOURCES and MEASURE_TYPES.
const CAT_UNSTABLE: usize = 0;
const CAT_MARGINAL: usize = 1;
const CAT_SUDDEN: usize = 2;
const SIG_MEDICAL: usize = 0;
const SIG_ACCIDENT: usize = 1;
const SIG_LABOUR: usize = 2;
const SIG_DISASTER: usize = 3;
const SIG_EDUCATION: usize = 4;
const SIG_UNEMPLOYMENT: usize = 7;
const SIG_INCOME_DROP: usize = 8;
const SRC_DEPARTMENT: usize = 2;
const MEASURE_SOCIAL_ASSISTANCE: usize = 5;

/// Signal that triggers a case, per category: (types, weights in %).
const TRIGGER_UNSTABLE: ([usize; 3], [u32; 3]) =
    ([SIG_INCOME_DROP, SIG_LABOUR, SIG_MEDICAL], [45, 25, 30]);
const TRIGGER_MARGINAL: ([usize; 4], [u32; 4]) = (
    [
        SIG_MEDICAL,
        SIG_UNEMPLOYMENT,
        SIG_INCOME_DROP,
        SIG_EDUCATION,
    ],
    [40, 20, 25, 15],
);
const TRIGGER_SUDDEN: ([usize; 3], [u32; 3]) =
    ([SIG_DISASTER, SIG_ACCIDENT, SIG_MEDICAL], [40, 35, 25]);
/// Triggers of rejected declarations.
const TRIGGER_REJECTED: ([usize; 4], [u32; 4]) = (
    [SIG_MEDICAL, SIG_UNEMPLOYMENT, SIG_INCOME_DROP, SIG_LABOUR],
    [40, 20, 25, 15],
);

/// A case opened on a household: the signal that triggered it (written if in the signal window).
#[derive(Clone, Copy)]
struct Trigger {
    day: i32,
    signal_type: usize,
}

/// What happened to a household that is not a monitoring object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OtherCase {
    None,
    Rejected,
    Pending,
}

/// A monitoring object.
struct Mon {
    category: usize,
    identified: i32,
    eliminated: Option<i32>,
}

/// Id like `S610102-000001`.
pub(super) fn push_id(buf: &mut Vec<u8>, prefix: u8, county: &str, n: u64) {
    buf.push(prefix);
    buf.extend_from_slice(county.as_bytes());
    buf.push(b'-');
    push_pad(buf, n, 6);
}

fn case_delay(rng: &mut ChaCha8Rng) -> i32 {
    if chance(rng, LATE_CASE_SHARE) {
        rng.random_range(CASE_DELAY_LATE.0..=CASE_DELAY_LATE.1)
    } else {
        rng.random_range(CASE_DELAY_ON_TIME.0..=CASE_DELAY_ON_TIME.1)
    }
}

/// ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID.
pub(super) fn id_check_char(first17: &[u8]) -> u8 {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let s: u32 = first17
        .iter()
        .zip(W)
        .map(|(&c, w)| u32::from(c - b'0') * w)
        .sum();
    b"10X98765432"[(s % 11) as usize]
}

/// The state of one county's generation: its random stream, files, counters.
struct CountyGen<'a> {
    p: &'a Params,
    county: &'a str,
    rng: ChaCha8Rng,
    s: Sinks,
    st: CountyStats,
    /// Numbers of the last signal, case and measure ids.
    last_signal: u64,
    last_case: u64,
    last_measure: u64,
    /// Resident-ID sequence counters per (birth day, sex), so that IDs are unique.
    id_seq: Vec<u16>,
    id_seq_base: u64,
}

impl CountyGen<'_> {
    /// Generates and writes one household and everything about it.
    fn household(&mut self, village: &str, hcode: &[u8]) -> Result<(), GenError> {
        let p = self.p;
        let rng = &mut self.rng;
        let members = pick(rng, &MEMBERS_WEIGHTS) as u64 + 1;
        self.st.households += 1;
        self.st.persons += members;

        let mon = if chance(rng, p.p_monitored) {
            let category = pick(rng, &CATEGORY_WEIGHTS);
            let identified = day_in(rng, p.win_start, p.end);
            let eliminated = if identified < p.last_year {
                // At least a year ago: end - identified >= 365 > ELIMINATION_DELAY_OLD.0.
                chance(rng, ELIMINATED_SHARE_OLD).then(|| {
                    let max = (p.end - identified).min(ELIMINATION_DELAY_OLD.1);
                    identified + day_in(rng, ELIMINATION_DELAY_OLD.0.min(max), max)
                })
            } else if p.end - identified >= ELIMINATION_DELAY_RECENT_MIN
                && chance(rng, ELIMINATED_SHARE_RECENT)
            {
                Some(day_in(
                    rng,
                    identified + ELIMINATION_DELAY_RECENT_MIN,
                    p.end,
                ))
            } else {
                None
            };
            Some(Mon {
                category,
                identified,
                eliminated,
            })
        } else {
            None
        };
        let alleviated = match &mon {
            Some(m) => match m.category {
                CAT_UNSTABLE => true,
                CAT_MARGINAL => false,
                _ => chance(rng, ALLEVIATED_SHARE_SUDDEN),
            },
            None => chance(rng, p.p_alleviated_other),
        };
        // Case of a household that is not a monitoring object: none, rejected or pending.
        let other_case = match &mon {
            Some(_) => OtherCase::None,
            None => {
                let u = rng.random::<f64>();
                if u < p.p_rejected {
                    OtherCase::Rejected
                } else if u < p.p_rejected + p.p_pending {
                    OtherCase::Pending
                } else {
                    OtherCase::None
                }
            }
        };
        let mut income = match &mon {
            Some(m) if m.eliminated.is_some() => income_cents(rng, INCOME_ELIMINATED, false),
            Some(_) => income_cents(rng, INCOME_MONITORED, false),
            None if alleviated => income_cents(rng, INCOME_ALLEVIATED, false),
            None => income_cents(rng, INCOME_ORDINARY, true),
        };
        if other_case == OtherCase::Rejected {
            // Rejected because the income is above the monitoring line.
            let floor = (MONITORING_LINE * 100.0) as u64 + 50_000;
            if income < floor {
                income = floor + u64::from(rng.random_range(0..300_000u32));
            }
        }

        let hh = &mut self.s.households;
        hh.field(hcode)?;
        hh.field(village.as_bytes())?;
        push_uint(&mut hh.buf, members);
        hh.put()?;
        hh.field(if alleviated { b"1" } else { b"0" })?;
        push_cents(&mut hh.buf, income);
        hh.put()?;
        self.head()?;
        self.s.households.end_row()?;

        let trigger = match &mon {
            Some(m) => {
                self.st.monitored += 1;
                if m.eliminated.is_none() {
                    self.st.stock_persons += members;
                }
                self.monitored(hcode, m)?
            }
            None => self.other_case(hcode, other_case)?,
        };
        self.signals(hcode, mon.is_some(), trigger)
    }

    /// The head's name and resident ID (two fields of households.csv).
    fn head(&mut self) -> Result<(), GenError> {
        let (p, rng, hh) = (self.p, &mut self.rng, &mut self.s.households);
        let male = chance(rng, HEAD_MALE_SHARE);
        hh.buf
            .extend_from_slice(SURNAMES[pick(rng, &SURNAME_WEIGHTS)].as_bytes());
        let pool: &[&str] = if male { &GIVEN_MALE } else { &GIVEN_FEMALE };
        let n_given = if chance(rng, SINGLE_GIVEN_SHARE) {
            1
        } else {
            2
        };
        for _ in 0..n_given {
            let c = pool[rng.random_range(0..pool.len() as u32) as usize];
            hh.buf.extend_from_slice(c.as_bytes());
        }
        hh.put()?;

        // Age 18–85 at `end`, most around 50.
        let span = p.birth_hi - p.birth_lo;
        let t = (rng.random::<f64>() + rng.random::<f64>()) / 2.0;
        let birth_off = ((f64::from(span) * t) as i32).clamp(0, span);
        let slot = birth_off as usize * 2 + usize::from(male);
        let k = u64::from(self.id_seq[slot]);
        self.id_seq[slot] = self.id_seq[slot].saturating_add(1);
        // Odd sequence for men, even for women (as in real IDs); wraps only past ~400 heads born
        // on the same day in one county, which the age spread makes practically impossible.
        let seqno = (self.id_seq_base + 2 * k + u64::from(male)) % 1000;
        hh.buf.extend_from_slice(self.county.as_bytes());
        let (by, bm, bd) = civil_from_days(p.birth_lo + birth_off);
        push_pad(&mut hh.buf, by as u64, 4);
        push_pad(&mut hh.buf, u64::from(bm), 2);
        push_pad(&mut hh.buf, u64::from(bd), 2);
        push_pad(&mut hh.buf, seqno, 3);
        let check = id_check_char(&hh.buf[hh.buf.len() - 17..]);
        hh.buf.push(check);
        hh.put()
    }

    /// A monitoring object: its monitored.csv row, its `included` case and its measures.
    fn monitored(&mut self, hcode: &[u8], m: &Mon) -> Result<Option<Trigger>, GenError> {
        let ms = &mut self.s.monitored;
        ms.field(hcode)?;
        ms.field(CATEGORIES[m.category].as_bytes())?;
        push_date(&mut ms.buf, m.identified);
        ms.put()?;
        if let Some(e) = m.eliminated {
            push_date(&mut ms.buf, e);
        }
        ms.put()?;
        ms.end_row()?;

        let rng = &mut self.rng;
        let discovered = (m.identified - case_delay(rng)).max(self.p.min_day);
        let signal_type = match m.category {
            CAT_UNSTABLE => TRIGGER_UNSTABLE.0[pick(rng, &TRIGGER_UNSTABLE.1)],
            CAT_MARGINAL => TRIGGER_MARGINAL.0[pick(rng, &TRIGGER_MARGINAL.1)],
            _ => TRIGGER_SUDDEN.0[pick(rng, &TRIGGER_SUDDEN.1)],
        };
        // Green channel for disasters and accidents: GREEN_CHANNEL_SHARE of all sudden-hardship
        // cases, so a larger share of those triggered by a disaster or an accident.
        let disaster_or_accident = matches!(signal_type, SIG_DISASTER | SIG_ACCIDENT);
        let green = m.category == CAT_SUDDEN
            && disaster_or_accident
            && chance(rng, GREEN_CHANNEL_SHARE * 100.0 / 75.0);
        self.case(
            hcode,
            discovered,
            Some(m.identified),
            "included",
            green,
            None,
        )?;

        // Measures from identification to the day before elimination (or `end`).
        let rng = &mut self.rng;
        let last = match m.eliminated {
            Some(e) => (e - 1).max(m.identified),
            None => self.p.end,
        };
        let n = pick(rng, &MEASURE_COUNT_WEIGHTS) + 1;
        let mut rows = [(0i32, 0usize, 0u64); MEASURE_COUNT_WEIGHTS.len()];
        for (i, row) in rows.iter_mut().enumerate().take(n) {
            let (day, ty) = if i == 0 && green {
                // Green channel: social assistance right away.
                (m.identified, MEASURE_SOCIAL_ASSISTANCE)
            } else {
                (
                    day_in(rng, m.identified, last),
                    pick(rng, &MEASURE_TYPE_WEIGHTS),
                )
            };
            let mut cents = skewed_cents(rng, MEASURE_AMOUNTS[ty]);
            if chance(rng, ROUND_MEASURE_SHARE) {
                cents = (cents / 10_000).max(1) * 10_000;
            }
            *row = (day, ty, cents);
        }
        rows[..n].sort_by_key(|r| r.0);
        for &(day, ty, cents) in &rows[..n] {
            self.last_measure += 1;
            let w = &mut self.s.measures;
            push_id(&mut w.buf, b'M', self.county, self.last_measure);
            w.put()?;
            w.field(hcode)?;
            w.field(MEASURE_TYPES[ty].as_bytes())?;
            push_date(&mut w.buf, day);
            w.put()?;
            push_cents(&mut w.buf, cents);
            w.put()?;
            w.end_row()?;
        }
        Ok(Some(Trigger {
            day: discovered,
            signal_type,
        }))
    }

    /// A rejected or pending case of a household that is not a monitoring object.
    fn other_case(&mut self, hcode: &[u8], kind: OtherCase) -> Result<Option<Trigger>, GenError> {
        let (p, rng) = (self.p, &mut self.rng);
        match kind {
            OtherCase::None => Ok(None),
            OtherCase::Rejected => {
                let decided = day_in(rng, p.win_start, p.end);
                let discovered = (decided - case_delay(rng)).max(p.min_day);
                let signal_type = TRIGGER_REJECTED.0[pick(rng, &TRIGGER_REJECTED.1)];
                self.case(hcode, discovered, Some(decided), "rejected", false, None)?;
                Ok(Some(Trigger {
                    day: discovered,
                    signal_type,
                }))
            }
            OtherCase::Pending => {
                let ago = if chance(rng, PENDING_OVERDUE_SHARE) {
                    rng.random_range(DEADLINE_DAYS + 1..PENDING_WINDOW_DAYS)
                } else {
                    rng.random_range(0..=DEADLINE_DAYS)
                };
                let discovered = (p.end - ago).max(p.min_day);
                let stage = STAGES[pick(rng, &STAGE_WEIGHTS)];
                let signal_type = pick(rng, &SIGNAL_TYPE_WEIGHTS);
                self.case(hcode, discovered, None, "pending", false, Some(stage))?;
                Ok(Some(Trigger {
                    day: discovered,
                    signal_type,
                }))
            }
        }
    }

    fn case(
        &mut self,
        hcode: &[u8],
        discovered: i32,
        decided: Option<i32>,
        outcome: &str,
        green: bool,
        stage: Option<&str>,
    ) -> Result<(), GenError> {
        self.last_case += 1;
        let w = &mut self.s.cases;
        push_id(&mut w.buf, b'C', self.county, self.last_case);
        w.put()?;
        w.field(hcode)?;
        push_date(&mut w.buf, discovered);
        w.put()?;
        if let Some(d) = decided {
            push_date(&mut w.buf, d);
        }
        w.put()?;
        w.field(outcome.as_bytes())?;
        w.field(if green { b"1" } else { b"0" })?;
        w.field(stage.unwrap_or("").as_bytes())?;
        w.end_row()
    }

    /// Risk signals of the last 365 days; the first one is the case's trigger when it falls in
    /// that window.
    fn signals(
        &mut self,
        hcode: &[u8],
        monitored: bool,
        trigger: Option<Trigger>,
    ) -> Result<(), GenError> {
        let (p, rng) = (self.p, &mut self.rng);
        let cdf = if monitored {
            &p.sig_monitored
        } else {
            &p.sig_other
        };
        let n = poisson(rng, cdf);
        for i in 0..n {
            let (day, ty) = match trigger {
                Some(t) if i == 0 && t.day >= p.last_year => (t.day, t.signal_type),
                _ => (
                    day_in(rng, p.last_year, p.end),
                    pick(rng, &SIGNAL_TYPE_WEIGHTS),
                ),
            };
            let source = pick(rng, &SOURCE_WEIGHTS);
            let cents = if ty == SIG_UNEMPLOYMENT && chance(rng, UNEMPLOYMENT_NO_AMOUNT_SHARE) {
                0
            } else {
                skewed_cents(rng, SIGNAL_AMOUNTS[ty])
            };
            self.last_signal += 1;
            let w = &mut self.s.signals;
            push_id(&mut w.buf, b'S', self.county, self.last_signal);
            w.put()?;
            w.field(hcode)?;
            w.field(SOURCES[source].as_bytes())?;
            w.field(SIGNAL_TYPES[ty].as_bytes())?;
            if source == SRC_DEPARTMENT {
                let dept = if chance(rng, 0.5) {
                    rng.random_range(1..=BUSY_DEPARTMENTS)
                } else {
                    rng.random_range(1..=DEPARTMENTS)
                };
                push_uint(&mut w.buf, u64::from(dept));
            }
            w.put()?;
            push_cents(&mut w.buf, cents);
            w.put()?;
            push_date(&mut w.buf, day);
            w.put()?;
            w.end_row()?;
        }
        Ok(())
    }
}

pub(super) fn gen_county(
    p: &Params,
    seed: u64,
    county: &CountyPlan,
    province: &Div,
    city: &Div,
    dir: &Path,
    tick: &mut dyn FnMut(u64),
) -> Result<CountyStats, GenError> {
    fs::create_dir_all(dir).map_err(|source| GenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut divs = Sink::create(dir.join("divisions.csv"), &DIVISIONS_HEADER)?;
    write_div(&mut divs, province)?;
    write_div(&mut divs, city)?;
    write_county_divs(&mut divs, county)?;
    divs.finish()?;

    let s = Sinks {
        households: Sink::create(dir.join("households.csv"), &HOUSEHOLDS_HEADER)?,
        monitored: Sink::create(dir.join("monitored.csv"), &MONITORED_HEADER)?,
        signals: Sink::create(dir.join("signals.csv"), &SIGNALS_HEADER)?,
        cases: Sink::create(dir.join("cases.csv"), &CASES_HEADER)?,
        measures: Sink::create(dir.join("measures.csv"), &MEASURES_HEADER)?,
    };
    let code = county.div.code.as_str();
    let mut rng = rng_for(seed, code, STREAM_DATA);

    // Households per village: proportional to random weights, the rest one by one.
    let villages: Vec<&Div> = county
        .towns
        .iter()
        .flat_map(|t| t.villages.iter())
        .collect();
    let weights: Vec<u64> = villages
        .iter()
        .map(|_| u64::from(rng.random_range(VILLAGE_WEIGHT.0..=VILLAGE_WEIGHT.1)))
        .collect();
    let wsum: u64 = weights.iter().sum::<u64>().max(1);
    let h = u64::from(county.households);
    let mut counts: Vec<u64> = weights.iter().map(|w| h * w / wsum).collect();
    let rest = h - counts.iter().sum::<u64>();
    for c in counts.iter_mut().take(rest as usize) {
        *c += 1;
    }

    let id_seq_base = u64::from(rng.random_range(0..100u32)) * 2;
    let mut g = CountyGen {
        p,
        county: code,
        rng,
        s,
        st: CountyStats::default(),
        last_signal: 0,
        last_case: 0,
        last_measure: 0,
        id_seq: vec![0u16; (p.birth_hi - p.birth_lo + 1) as usize * 2],
        id_seq_base,
    };
    let mut hcode: Vec<u8> = Vec::with_capacity(16);
    let mut since_tick = 0u64;
    for (village, &count) in villages.iter().zip(&counts) {
        for seq in 1..=count {
            hcode.clear();
            hcode.extend_from_slice(village.code.as_bytes());
            push_pad(&mut hcode, seq, 4);
            g.household(&village.code, &hcode)?;
            since_tick += 1;
            if since_tick == PROGRESS_EVERY {
                tick(since_tick);
                since_tick = 0;
            }
        }
    }
    if since_tick > 0 {
        tick(since_tick);
    }
    let mut st = g.st;
    st.signals = g.s.signals.rows;
    st.cases = g.s.cases.rows;
    st.measures = g.s.measures.rows;
    g.s.households.finish()?;
    g.s.monitored.finish()?;
    g.s.signals.finish()?;
    g.s.cases.finish()?;
    g.s.measures.finish()?;
    Ok(st)
}
