//! Synthetic data generator ("gen") for Bottomline.
//!
//! Writes a realistic, deterministic set of interchange files (SPEC.md, "Interchange files") for
//! one county or a whole province:
//!
//! * `out/divisions.csv`: the whole generated registry (province, cities, counties, towns,
//!   villages), parents always before their children;
//! * for every county `C`, a directory `out/C/` with `divisions.csv` (the province, C's city, C,
//!   and C's towns and villages), `households.csv` (with the personal `head_name,id_number`
//!   columns), `monitored.csv`, `signals.csv`, `cases.csv` and `measures.csv`.
//!
//! Every county is generated from its own `ChaCha8Rng`, seeded from the options' seed and the
//! county code, so a county's files do not depend on thread scheduling nor on the scope: county
//! `610102` is byte-identical whether it is generated alone or as part of province `61` (with the
//! same seed, end date and household count). Rows are streamed to buffered CSV writers: memory does
//! not grow with the number of households.
//!
//! The generator is pure arithmetic on integers and basic floating-point operations (no libm
//! transcendental functions), so the output is the same on every platform.
//!
//! Submodules, one idea each:
//!
//! * `names`: real province and city names, the tables and functions of generated names;
//! * `sample`: random streams (one generator per seed, code and stream), sampling helpers;
//! * `sink`: dates as days, formatting into byte buffers, the CSV sink, division rows;
//! * `county`: per-county generation (rates, households, cases, measures, signals);
//! * `tests`: the unit tests.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use rand::Rng;

mod county;
pub mod department;
mod names;
mod sample;
mod sink;
#[cfg(test)]
mod tests;

use county::{gen_county, CountyStats, Params};
use names::{
    county_name_maker, place_name, province_name, real_city_name, unique_name, SHAANXI_CITIES,
    SURNAMES, VILLAGE_TAILS,
};
use sample::{rng_for, STREAM_DIVISIONS, STREAM_NAME, STREAM_SIZE};
use sink::{date_to_days, days_from_civil, write_county_divs, write_div, Sink};

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// What to generate, where, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// Seed of every random choice. Same options ⇒ byte-identical files.
    pub seed: u64,
    /// Output directory (created if missing; existing files of the same names are overwritten).
    pub out: std::path::PathBuf,
    /// One county or a whole province.
    pub scope: GenScope,
    /// Last day of generated data (China local date). Every date written is <= end and >= 2015-01-01.
    /// Must be 2016-01-01 or later (the risk signals cover the 365 days ending at `end`).
    pub end: jiff::civil::Date,
    /// Households per county; None = realistic size (varies per county, ~65 000 on average so that
    /// 107 counties give ~7 million households). At most 10 000 000.
    pub households_per_county: Option<u32>,
}

/// The region to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenScope {
    /// One county: a 6-digit code such as "610102". Its province and city are the code's prefixes.
    County(String),
    /// A whole province: 2-digit province code (e.g. "61"), number of cities, total number of counties
    /// spread over the cities (e.g. 10 and 107 for Shaanxi).
    Province {
        /// 2-digit province code, e.g. "61".
        code: String,
        /// Number of cities (1–99), coded `{code}01`, `{code}02` …
        cities: u32,
        /// Total number of counties, spread as evenly as possible over the cities (at most 98
        /// per city: county codes `{city}02` … `{city}99`).
        counties: u32,
    },
}

/// Reported after every county and every 10 000 households of a county.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenProgress {
    /// The county being (or just) generated.
    pub county: String,
    /// Counties finished so far.
    pub counties_done: u32,
    /// Counties to generate in all.
    pub counties_total: u32,
    /// Households written so far, over all counties.
    pub households_done: u64,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// County codes generated, in code order.
    pub counties: Vec<String>,
    /// Rows of the top-level `divisions.csv`.
    pub divisions: u64,
    /// Rows of all `households.csv`.
    pub households: u64,
    /// Sum of `members` over all households.
    pub persons: u64,
    /// Rows of all `monitored.csv` (every household ever identified, eliminated or not).
    pub monitored: u64,
    /// Members of the monitored households in stock at `end` (identified and not eliminated),
    /// i.e. SPEC's `monitored_persons` indicator on the day `end`.
    pub monitored_persons: u64,
    /// Rows of all `signals.csv`.
    pub signals: u64,
    /// Rows of all `cases.csv`.
    pub cases: u64,
    /// Rows of all `measures.csv`.
    pub measures: u64,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Creating or writing a file or directory failed.
    #[error("gen: cannot write {path}: {source}", path = .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CSV writer failed on a file.
    #[error("gen: cannot write CSV file {path}: {source}", path = .path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// An option is invalid (bad division code, impossible sizes, end date too early …).
    #[error("gen: invalid option: {0}")]
    Invalid(String),
}

/// Generates the files described by `opts`, calling `progress` after every county (and every
/// 10 000 households). Counties are generated on two threads; the output does not depend on it.
/// Deterministic: the same options produce byte-identical files.
pub fn generate(
    opts: &GenOptions,
    progress: &mut dyn FnMut(&GenProgress),
) -> Result<GenSummary, GenError> {
    generate_with_threads(opts, progress, 2)
}

// ------------------------------------------------------------------------------------------------
// Realism parameters (target rates)
// ------------------------------------------------------------------------------------------------

/// Earliest date ever written.
const MIN_DATE: (i32, u32, u32) = (2015, 1, 1);
/// Earliest accepted `end` (signals cover the 365 days ending at `end`, all >= MIN_DATE).
const MIN_END: (i32, u32, u32) = (2016, 1, 1);
/// Start of the identification window of monitoring objects (the policy started in 2021).
const MONITORING_START: (i32, u32, u32) = (2021, 1, 1);
/// Realistic households per county when none is given: uniform in this range (mean 65 000, so
/// 107 counties give ~7 million households, Shaanxi's scale).
const REALISTIC_HOUSEHOLDS: (u32, u32) = (35_000, 95_000);
/// Largest accepted `households_per_county`.
const MAX_HOUSEHOLDS_PER_COUNTY: u32 = 10_000_000;
/// Towns per county (uniform).
const TOWNS_PER_COUNTY: (u32, u32) = (10, 14);
/// Villages per town (uniform): 12 × 12.5 ≈ 150 villages per county, ~16 000 for 107 counties.
const VILLAGES_PER_TOWN: (u32, u32) = (9, 16);
/// A village holds at most this many households on average (more villages are added if needed;
/// the 4-digit household sequence allows 9 999).
const MAX_MEAN_HOUSEHOLDS_PER_VILLAGE: u32 = 2_000;
/// Weight range of a village's share of the county's households.
const VILLAGE_WEIGHT: (u32, u32) = (40, 160);
/// Household members 1..=8 (weights in %): mean 3.22.
const MEMBERS_WEIGHTS: [u32; 8] = [12, 24, 25, 20, 11, 5, 2, 1];
/// Share of poverty-alleviated households (脱贫户).
const ALLEVIATED_SHARE: f64 = 0.25;
/// Share of alleviated households among sudden-hardship monitoring objects (marginal ones are
/// never alleviated, unstable alleviated ones always are).
const ALLEVIATED_SHARE_SUDDEN: f64 = 0.25;
/// Persons in the three categories (stock at `end`) as a share of all persons.
const STOCK_PERSON_SHARE: f64 = 0.025;
/// Categories unstable_alleviated / marginal / sudden_hardship (weights in %).
const CATEGORY_WEIGHTS: [u32; 3] = [45, 40, 15];
const CATEGORIES: [&str; 3] = ["unstable_alleviated", "marginal", "sudden_hardship"];
/// Share of the households identified before the last year whose risk has been eliminated.
const ELIMINATED_SHARE_OLD: f64 = 0.55;
/// Elimination takes this many days after identification (old identifications).
const ELIMINATION_DELAY_OLD: (i32, i32) = (90, 1_000);
/// Share of the households identified in the last year whose risk has been eliminated (only when
/// at least ELIMINATION_DELAY_RECENT_MIN days have passed).
const ELIMINATED_SHARE_RECENT: f64 = 0.10;
const ELIMINATION_DELAY_RECENT_MIN: i32 = 60;
/// Risk signals per household per year on average (4 000 for a 65 000-household county; 430 000
/// a year province-wide).
const SIGNALS_PER_HOUSEHOLD_YEAR: f64 = 4_000.0 / 65_000.0;
/// Risk signals per monitored household per year (signals concentrate on them; the other
/// households get the rest of SIGNALS_PER_HOUSEHOLD_YEAR).
const SIGNALS_PER_MONITORED_YEAR: f64 = 0.8;
/// Signal sources self_declared / grid_check / department / data_comparison (weights in %).
const SOURCE_WEIGHTS: [u32; 4] = [15, 30, 45, 10];
const SOURCES: [&str; 4] = [
    "self_declared",
    "grid_check",
    "department",
    "data_comparison",
];
/// Number of departments issuing warnings; half the department signals come from the first
/// BUSY_DEPARTMENTS (medical insurance, civil affairs, human resources …).
const DEPARTMENTS: u32 = 30;
const BUSY_DEPARTMENTS: u32 = 5;
/// Signal types and their weights in %.
const SIGNAL_TYPES: [&str; 9] = [
    "medical",
    "accident",
    "labour",
    "disaster",
    "education",
    "housing",
    "water",
    "unemployment",
    "income_drop",
];
const SIGNAL_TYPE_WEIGHTS: [u32; 9] = [30, 8, 12, 8, 8, 6, 4, 10, 14];
/// Signal amount range in yuan per type ((0, 0) = non-monetary: always 0.00).
const SIGNAL_AMOUNTS: [(u64, u64); 9] = [
    (500, 80_000),
    (2_000, 100_000),
    (0, 0),
    (1_000, 60_000),
    (1_000, 20_000),
    (5_000, 80_000),
    (0, 0),
    (1_000, 20_000),
    (1_000, 20_000),
];
/// Share of unemployment signals that carry no amount.
const UNEMPLOYMENT_NO_AMOUNT_SHARE: f64 = 0.5;
/// Days of the signal window (ending at `end`).
const SIGNAL_WINDOW_DAYS: i32 = 365;
/// Identification delay (discovered → decided) in days: mostly within the 15-day deadline, a
/// LATE_CASE_SHARE past it.
const CASE_DELAY_ON_TIME: (i32, i32) = (3, 14);
const CASE_DELAY_LATE: (i32, i32) = (16, 40);
const LATE_CASE_SHARE: f64 = 0.10;
/// Share of sudden-hardship cases through the green channel (disasters and accidents).
const GREEN_CHANNEL_SHARE: f64 = 0.20;
/// Rejected cases (income above the line) per included case, over the same window.
const REJECTED_RATIO: f64 = 0.30;
/// Pending cases ≈ this share of the discoveries of the last PENDING_WINDOW_DAYS.
const PENDING_RATIO: f64 = 0.40;
const PENDING_WINDOW_DAYS: i32 = 40;
/// Share of pending cases discovered more than 15 days ago (overdue).
const PENDING_OVERDUE_SHARE: f64 = 0.30;
const DEADLINE_DAYS: i32 = 15;
const STAGES: [&str; 4] = [
    "declared",
    "village_review",
    "town_check",
    "county_approval",
];
const STAGE_WEIGHTS: [u32; 4] = [20, 35, 30, 15];
/// Measures per monitored household 1..=4 (weights in %): mean 2.4.
const MEASURE_COUNT_WEIGHTS: [u32; 4] = [20, 35, 30, 15];
const MEASURE_TYPES: [&str; 9] = [
    "industry",
    "employment",
    "medical",
    "education",
    "housing",
    "social_assistance",
    "special_fund",
    "insurance",
    "other",
];
const MEASURE_TYPE_WEIGHTS: [u32; 9] = [22, 20, 12, 8, 5, 12, 6, 10, 5];
/// Measure amount range in yuan per type.
const MEASURE_AMOUNTS: [(u64, u64); 9] = [
    (1_000, 30_000),
    (300, 6_000),
    (300, 40_000),
    (500, 10_000),
    (5_000, 45_000),
    (600, 9_000),
    (1_000, 20_000),
    (100, 3_000),
    (200, 5_000),
];
/// Share of measure amounts rounded to whole hundreds of yuan.
const ROUND_MEASURE_SHARE: f64 = 0.6;
/// Per-capita income (yuan): (median, relative spread) for ordinary households, alleviated ones,
/// monitored ones in stock, and monitored ones whose risk was eliminated.
const INCOME_ORDINARY: (f64, f64) = (16_500.0, 0.30);
const INCOME_ALLEVIATED: (f64, f64) = (13_000.0, 0.28);
const INCOME_MONITORED: (f64, f64) = (8_200.0, 0.22);
const INCOME_ELIMINATED: (f64, f64) = (11_500.0, 0.25);
/// Share of ordinary households with a high income (×1.5–2.5).
const HIGH_INCOME_SHARE: f64 = 0.05;
const MIN_INCOME: f64 = 2_500.0;
/// Monitoring standard line (yuan per capita and year): rejected declarations are above it.
const MONITORING_LINE: f64 = 7_500.0;
/// Household heads: share of men; age range at `end` is 18–85.
const HEAD_MALE_SHARE: f64 = 0.8;

/// Row terminator and headers (exactly SPEC.md's columns).
const DIVISIONS_HEADER: [&str; 4] = ["code", "name", "level", "parent"];
const HOUSEHOLDS_HEADER: [&str; 7] = [
    "household_code",
    "village_code",
    "members",
    "alleviated",
    "income",
    "head_name",
    "id_number",
];
const MONITORED_HEADER: [&str; 4] = [
    "household_code",
    "category",
    "identified_date",
    "eliminated_date",
];
const SIGNALS_HEADER: [&str; 7] = [
    "id",
    "household_code",
    "source",
    "type",
    "department",
    "amount",
    "date",
];
const CASES_HEADER: [&str; 7] = [
    "id",
    "household_code",
    "discovered_date",
    "decided_date",
    "outcome",
    "green_channel",
    "stage",
];
const MEASURES_HEADER: [&str; 5] = ["id", "household_code", "type", "date", "amount"];

/// Progress is reported every this many households.
const PROGRESS_EVERY: u64 = 10_000;

// ------------------------------------------------------------------------------------------------
// Plan: the division tree
// ------------------------------------------------------------------------------------------------

/// One division row.
#[derive(Debug, Clone)]
struct Div {
    code: String,
    name: String,
    level: &'static str,
    parent: String,
}

#[derive(Debug)]
struct TownPlan {
    div: Div,
    villages: Vec<Div>,
}

#[derive(Debug)]
struct CountyPlan {
    div: Div,
    households: u32,
    towns: Vec<TownPlan>,
}

#[derive(Debug)]
struct CityPlan {
    div: Div,
    counties: Vec<CountyPlan>,
}

#[derive(Debug)]
struct Plan {
    province: Div,
    cities: Vec<CityPlan>,
}

impl Plan {
    fn division_rows(&self) -> u64 {
        let mut n = 1u64;
        for city in &self.cities {
            n += 1;
            for county in &city.counties {
                n += 1 + county_division_rows(county);
            }
        }
        n
    }
}

fn county_division_rows(c: &CountyPlan) -> u64 {
    c.towns.iter().map(|t| 1 + t.villages.len() as u64).sum()
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn validate(opts: &GenOptions) -> Result<(), GenError> {
    if date_to_days(opts.end) < days_from_civil(MIN_END.0, MIN_END.1, MIN_END.2) {
        return Err(GenError::Invalid(format!(
            "end date {} is before {:04}-{:02}-{:02}: the risk signals of the 365 days ending at \
             `end` must all be on or after 2015-01-01",
            opts.end, MIN_END.0, MIN_END.1, MIN_END.2
        )));
    }
    if let Some(n) = opts.households_per_county {
        if n > MAX_HOUSEHOLDS_PER_COUNTY {
            return Err(GenError::Invalid(format!(
                "households_per_county {n} is above the maximum {MAX_HOUSEHOLDS_PER_COUNTY}"
            )));
        }
    }
    match &opts.scope {
        GenScope::County(code) => {
            if !is_digits(code, 6) {
                return Err(GenError::Invalid(format!(
                    "county code {code:?} is not 6 digits (e.g. \"610102\")"
                )));
            }
            if &code[0..2] == "00" || &code[2..4] == "00" || &code[4..6] == "00" {
                return Err(GenError::Invalid(format!(
                    "county code {code:?}: its province, city and county parts must not be 00"
                )));
            }
        }
        GenScope::Province {
            code,
            cities,
            counties,
        } => {
            if !is_digits(code, 2) || code == "00" {
                return Err(GenError::Invalid(format!(
                    "province code {code:?} is not 2 digits from 01 to 99 (e.g. \"61\")"
                )));
            }
            if *cities == 0 || *cities > 99 {
                return Err(GenError::Invalid(format!(
                    "province {code}: {cities} cities; a province has 1 to 99 cities"
                )));
            }
            if *counties == 0 || *counties > cities * 98 {
                return Err(GenError::Invalid(format!(
                    "province {code}: {counties} counties over {cities} cities; give 1 to {} \
                     (98 county codes 02..99 per city)",
                    cities * 98
                )));
            }
        }
    }
    Ok(())
}

/// Builds the division tree (names, towns, villages, household counts).
fn make_plan(opts: &GenOptions) -> Result<Plan, GenError> {
    validate(opts)?;
    let seed = opts.seed;
    // (city code, its county codes)
    let (prov_code, layout): (String, Vec<(String, Vec<String>)>) = match &opts.scope {
        GenScope::County(code) => (
            code[0..2].to_string(),
            vec![(code[0..4].to_string(), vec![code.clone()])],
        ),
        GenScope::Province {
            code,
            cities,
            counties,
        } => {
            let mut layout = Vec::with_capacity(*cities as usize);
            for i in 0..*cities {
                let n = counties / cities + u32::from(i < counties % cities);
                let city = format!("{code}{:02}", i + 1);
                let list = (0..n).map(|k| format!("{city}{:02}", k + 2)).collect();
                layout.push((city, list));
            }
            (code.clone(), layout)
        }
    };
    let province = Div {
        name: province_name(seed, &prov_code),
        code: prov_code.clone(),
        level: "province",
        parent: String::new(),
    };
    let mut city_names: HashSet<String> = SHAANXI_CITIES
        .iter()
        .filter(|(c, _)| c.starts_with(&prov_code))
        .map(|(_, n)| (*n).to_string())
        .collect();
    let mut county_names: HashSet<String> = HashSet::new();
    let mut cities = Vec::with_capacity(layout.len());
    for (city_code, county_codes) in layout {
        let name = match real_city_name(&city_code) {
            Some(n) => n.to_string(),
            None => unique_name(
                &mut city_names,
                &mut rng_for(seed, &city_code, STREAM_NAME),
                |r| place_name(r, "市"),
            ),
        };
        let city_div = Div {
            code: city_code.clone(),
            name,
            level: "city",
            parent: prov_code.clone(),
        };
        let mut counties = Vec::with_capacity(county_codes.len());
        for code in county_codes {
            let name = unique_name(
                &mut county_names,
                &mut rng_for(seed, &code, STREAM_NAME),
                county_name_maker,
            );
            let households = match opts.households_per_county {
                Some(n) => n,
                None => rng_for(seed, &code, STREAM_SIZE)
                    .random_range(REALISTIC_HOUSEHOLDS.0..=REALISTIC_HOUSEHOLDS.1),
            };
            let div = Div {
                code,
                name,
                level: "county",
                parent: city_code.clone(),
            };
            let towns = make_towns(seed, &div.code, households);
            counties.push(CountyPlan {
                div,
                households,
                towns,
            });
        }
        cities.push(CityPlan {
            div: city_div,
            counties,
        });
    }
    Ok(Plan { province, cities })
}

fn make_towns(seed: u64, county: &str, households: u32) -> Vec<TownPlan> {
    let mut rng = rng_for(seed, county, STREAM_DIVISIONS);
    let n_towns = rng.random_range(TOWNS_PER_COUNTY.0..=TOWNS_PER_COUNTY.1);
    let mut per_town: Vec<u32> = (0..n_towns)
        .map(|_| rng.random_range(VILLAGES_PER_TOWN.0..=VILLAGES_PER_TOWN.1))
        .collect();
    // Enough villages that none overflows the 4-digit household sequence.
    let needed = households.div_ceil(MAX_MEAN_HOUSEHOLDS_PER_VILLAGE);
    let mut total: u32 = per_town.iter().sum();
    let mut i = 0usize;
    while total < needed {
        let n = per_town.len();
        per_town[i % n] += 1;
        total += 1;
        i += 1;
    }
    let mut town_names = HashSet::new();
    let mut towns = Vec::with_capacity(per_town.len());
    for (t, &nv) in per_town.iter().enumerate() {
        let code = format!("{county}{:03}", t + 1);
        let name = unique_name(&mut town_names, &mut rng, |r| {
            let suffix = if r.random_bool(0.65) { "镇" } else { "乡" };
            place_name(r, suffix)
        });
        let mut village_names = HashSet::new();
        let villages = (0..nv)
            .map(|v| Div {
                code: format!("{code}{:03}", v + 1),
                name: unique_name(&mut village_names, &mut rng, |r| {
                    if r.random_bool(0.35) {
                        let mut s = String::with_capacity(9);
                        s.push_str(SURNAMES[r.random_range(0..30u32) as usize]);
                        s.push('家');
                        if r.random_bool(0.6) {
                            s.push_str(
                                VILLAGE_TAILS
                                    [r.random_range(0..VILLAGE_TAILS.len() as u32) as usize],
                            );
                        }
                        s.push('村');
                        s
                    } else {
                        place_name(r, "村")
                    }
                }),
                level: "village",
                parent: code.clone(),
            })
            .collect();
        towns.push(TownPlan {
            div: Div {
                code,
                name,
                level: "town",
                parent: county.to_string(),
            },
            villages,
        });
    }
    towns
}

// ------------------------------------------------------------------------------------------------
// Driver
// ------------------------------------------------------------------------------------------------

enum Msg {
    Tick { county: String, households: u64 },
    Done { index: usize, stats: CountyStats },
    Failed(GenError),
}

fn generate_with_threads(
    opts: &GenOptions,
    progress: &mut dyn FnMut(&GenProgress),
    threads: usize,
) -> Result<GenSummary, GenError> {
    let plan = make_plan(opts)?;
    let params = Params::new(opts.end);
    fs::create_dir_all(&opts.out).map_err(|source| GenError::Io {
        path: opts.out.clone(),
        source,
    })?;

    // The whole registry, parents before children.
    let mut top = Sink::create(opts.out.join("divisions.csv"), &DIVISIONS_HEADER)?;
    write_div(&mut top, &plan.province)?;
    for city in &plan.cities {
        write_div(&mut top, &city.div)?;
        for county in &city.counties {
            write_county_divs(&mut top, county)?;
        }
    }
    let divisions = top.finish()?;
    debug_assert_eq!(divisions, plan.division_rows());

    let jobs: Vec<(&CityPlan, &CountyPlan)> = plan
        .cities
        .iter()
        .flat_map(|c| c.counties.iter().map(move |k| (c, k)))
        .collect();
    let total = jobs.len();
    let threads = threads.clamp(1, total.max(1));
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let mut results: Vec<Option<CountyStats>> = vec![None; total];
    let mut first_err: Option<GenError> = None;
    let mut done = 0u32;
    let mut households_done = 0u64;

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Msg>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (jobs, next, abort, params, plan) = (&jobs, &next, &abort, &params, &plan);
            let (seed, out) = (opts.seed, &opts.out);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() || abort.load(Ordering::Relaxed) {
                    break;
                }
                let (city, county) = jobs[i];
                let code = &county.div.code;
                let mut tick = |n: u64| {
                    // The receiver lives until every worker is done: a send cannot fail.
                    let _ = tx.send(Msg::Tick {
                        county: code.clone(),
                        households: n,
                    });
                };
                let r = gen_county(
                    params,
                    seed,
                    county,
                    &plan.province,
                    &city.div,
                    &out.join(code),
                    &mut tick,
                );
                match r {
                    Ok(stats) => {
                        let _ = tx.send(Msg::Done { index: i, stats });
                    }
                    Err(e) => {
                        abort.store(true, Ordering::Relaxed);
                        let _ = tx.send(Msg::Failed(e));
                        break;
                    }
                }
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Tick { county, households } => {
                    households_done += households;
                    progress(&GenProgress {
                        county,
                        counties_done: done,
                        counties_total: total as u32,
                        households_done,
                    });
                }
                Msg::Done { index, stats } => {
                    done += 1;
                    results[index] = Some(stats);
                    progress(&GenProgress {
                        county: jobs[index].1.div.code.clone(),
                        counties_done: done,
                        counties_total: total as u32,
                        households_done,
                    });
                }
                Msg::Failed(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
    });
    if let Some(e) = first_err {
        return Err(e);
    }

    let mut sum = GenSummary {
        counties: jobs.iter().map(|(_, k)| k.div.code.clone()).collect(),
        divisions,
        ..GenSummary::default()
    };
    for (i, r) in results.into_iter().enumerate() {
        let st = r.ok_or_else(|| {
            GenError::Invalid(format!("county {} was not generated", jobs[i].1.div.code))
        })?;
        sum.households += st.households;
        sum.persons += st.persons;
        sum.monitored += st.monitored;
        sum.monitored_persons += st.stock_persons;
        sum.signals += st.signals;
        sum.cases += st.cases;
        sum.measures += st.measures;
    }
    Ok(sum)
}
