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

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
// Names
// ------------------------------------------------------------------------------------------------

/// Real province names by GB/T 2260 code.
const PROVINCES: [(&str, &str); 31] = [
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
];

/// Real Shaanxi cities.
const SHAANXI_CITIES: [(&str, &str); 10] = [
    ("6101", "西安市"),
    ("6102", "铜川市"),
    ("6103", "宝鸡市"),
    ("6104", "咸阳市"),
    ("6105", "渭南市"),
    ("6106", "延安市"),
    ("6107", "汉中市"),
    ("6108", "榆林市"),
    ("6109", "安康市"),
    ("6110", "商洛市"),
];

/// First characters of generated place names.
const PLACE_FIRST: [&str; 72] = [
    "安", "宝", "北", "长", "城", "大", "东", "丰", "凤", "富", "高", "古", "关", "广", "汉", "河",
    "红", "华", "黄", "吉", "金", "旧", "康", "兰", "乐", "临", "柳", "龙", "鹿", "洛", "马", "梅",
    "南", "宁", "平", "坪", "清", "泉", "仁", "三", "山", "上", "石", "双", "水", "顺", "太", "桃",
    "天", "铁", "白", "王", "文", "西", "下", "仙", "新", "兴", "杏", "阳", "杨", "永", "玉", "榆",
    "云", "枣", "中", "紫", "黑", "青", "千", "五",
];
/// Second characters of generated place names.
const PLACE_SECOND: [&str; 52] = [
    "安", "坝", "堡", "边", "昌", "川", "店", "定", "丰", "沟", "关", "河", "湖", "化", "集", "家",
    "涧", "江", "口", "岭", "林", "流", "梁", "陵", "峁", "门", "庙", "宁", "坪", "桥", "泉", "渠",
    "山", "寺", "滩", "塘", "台", "头", "湾", "王", "溪", "峡", "阳", "营", "峪", "原", "源", "寨",
    "庄", "州", "子", "塬",
];

/// Tails of "surname + 家 + tail + 村" village names (王家沟村).
const VILLAGE_TAILS: [&str; 14] = [
    "沟", "庄", "河", "坪", "湾", "岭", "堡", "寨", "塬", "峁", "梁", "营", "店", "洼",
];

/// Common surnames and their rough frequency weights (tenths of a percent), Shaanxi-flavoured.
const SURNAMES: [&str; 84] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "吴", "周", "孙", "徐", "朱", "胡", "马", "郭",
    "何", "林", "高", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯",
    "龙", "史", "党", "屈",
];
const SURNAME_WEIGHTS: [u32; 84] = [
    71, 70, 67, 54, 45, 31, 23, 22, 20, 19, 15, 13, 13, 13, 12, 12, 12, 12, 11, 9, 9, 9, 8, 7, 7,
    7, 7, 6, 6, 6, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1,
];
const GIVEN_MALE: [&str; 48] = [
    "伟", "强", "军", "磊", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫",
    "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "峰", "建", "国",
    "文", "志", "海", "兵", "东", "亮", "成", "生", "福", "贵", "德", "忠", "新", "民", "春", "安",
];
const GIVEN_FEMALE: [&str; 36] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "英", "兰", "萍", "红", "梅",
    "琳", "燕", "芬", "莉", "婷", "雪", "慧", "洁", "颖", "琴", "云", "凤", "华", "倩", "玉", "珍",
    "月", "翠", "荣", "香",
];
/// Share of one-character given names.
const SINGLE_GIVEN_SHARE: f64 = 0.25;

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

/// Random streams, so that each kind of choice has its own generator.
const STREAM_NAME: u64 = 1;
const STREAM_DIVISIONS: u64 = 2;
const STREAM_SIZE: u64 = 3;
const STREAM_DATA: u64 = 4;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator seeded from (seed, division code, stream).
fn rng_for(seed: u64, code: &str, stream: u64) -> ChaCha8Rng {
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

fn place_name(rng: &mut ChaCha8Rng, suffix: &str) -> String {
    let mut s = String::with_capacity(12);
    s.push_str(PLACE_FIRST[rng.random_range(0..PLACE_FIRST.len() as u32) as usize]);
    s.push_str(PLACE_SECOND[rng.random_range(0..PLACE_SECOND.len() as u32) as usize]);
    s.push_str(suffix);
    s
}

/// A name from `make` that is not in `used` (falls back to a numbered name after many tries).
fn unique_name(
    used: &mut HashSet<String>,
    rng: &mut ChaCha8Rng,
    mut make: impl FnMut(&mut ChaCha8Rng) -> String,
) -> String {
    for _ in 0..64 {
        let n = make(rng);
        if used.insert(n.clone()) {
            return n;
        }
    }
    // Practically unreachable (thousands of combinations for at most a few hundred names).
    let mut k = 2u32;
    let base = make(rng);
    loop {
        let n = format!("{base}{k}");
        if used.insert(n.clone()) {
            return n;
        }
        k += 1;
    }
}

fn province_name(seed: u64, code: &str) -> String {
    PROVINCES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| place_name(&mut rng_for(seed, code, STREAM_NAME), "省"))
}

fn real_city_name(code: &str) -> Option<&'static str> {
    SHAANXI_CITIES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

fn county_name_maker(rng: &mut ChaCha8Rng) -> String {
    let suffix = if rng.random_bool(0.2) { "区" } else { "县" };
    place_name(rng, suffix)
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
// Dates (days since 1970-01-01, proleptic Gregorian)
// ------------------------------------------------------------------------------------------------

fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn date_to_days(d: jiff::civil::Date) -> i32 {
    days_from_civil(i32::from(d.year()), d.month() as u32, d.day() as u32)
}

// ------------------------------------------------------------------------------------------------
// Formatting into byte buffers
// ------------------------------------------------------------------------------------------------

fn push_uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `n` zero-padded to at least `width` digits.
fn push_pad(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && tmp.len() - i >= width {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_date(buf: &mut Vec<u8>, day: i32) {
    let (y, m, d) = civil_from_days(day);
    push_pad(buf, y as u64, 4);
    buf.push(b'-');
    push_pad(buf, u64::from(m), 2);
    buf.push(b'-');
    push_pad(buf, u64::from(d), 2);
}

/// Yuan with exactly two decimals.
fn push_cents(buf: &mut Vec<u8>, cents: u64) {
    push_uint(buf, cents / 100);
    buf.push(b'.');
    push_pad(buf, cents % 100, 2);
}

// ------------------------------------------------------------------------------------------------
// CSV sink
// ------------------------------------------------------------------------------------------------

struct Sink {
    w: csv::Writer<BufWriter<File>>,
    path: PathBuf,
    rows: u64,
    buf: Vec<u8>,
}

impl Sink {
    fn create(path: PathBuf, header: &[&str]) -> Result<Sink, GenError> {
        let file = File::create(&path).map_err(|source| GenError::Io {
            path: path.clone(),
            source,
        })?;
        let w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .buffer_capacity(1 << 16)
            .from_writer(BufWriter::with_capacity(1 << 16, file));
        let mut s = Sink {
            w,
            path,
            rows: 0,
            buf: Vec::with_capacity(64),
        };
        s.w.write_record(header).map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn err(&self, source: csv::Error) -> GenError {
        GenError::Csv {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes the field built in `self.buf` and clears it.
    fn put(&mut self) -> Result<(), GenError> {
        let r = self.w.write_field(&self.buf);
        self.buf.clear();
        r.map_err(|e| self.err(e))
    }

    fn field(&mut self, f: &[u8]) -> Result<(), GenError> {
        self.w.write_field(f).map_err(|e| self.err(e))
    }

    fn end_row(&mut self) -> Result<(), GenError> {
        self.rows += 1;
        self.w.write_record(None::<&[u8]>).map_err(|e| self.err(e))
    }

    fn finish(mut self) -> Result<u64, GenError> {
        self.w.flush().map_err(|source| GenError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.rows)
    }
}

fn write_div(s: &mut Sink, d: &Div) -> Result<(), GenError> {
    s.field(d.code.as_bytes())?;
    s.field(d.name.as_bytes())?;
    s.field(d.level.as_bytes())?;
    s.field(d.parent.as_bytes())?;
    s.end_row()
}

fn write_county_divs(s: &mut Sink, c: &CountyPlan) -> Result<(), GenError> {
    write_div(s, &c.div)?;
    for t in &c.towns {
        write_div(s, &t.div)?;
        for v in &t.villages {
            write_div(s, v)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Sampling helpers (pure arithmetic: identical on every platform)
// ------------------------------------------------------------------------------------------------

fn pick(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
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

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

fn day_in(rng: &mut ChaCha8Rng, lo: i32, hi: i32) -> i32 {
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

const POISSON_MAX: usize = 12;

/// Cumulative distribution of Poisson(lambda) for 0..POISSON_MAX.
fn poisson_cdf(lambda: f64) -> [f64; POISSON_MAX] {
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

fn poisson(rng: &mut ChaCha8Rng, cdf: &[f64; POISSON_MAX]) -> usize {
    let u = rng.random::<f64>();
    cdf.iter().position(|&c| u < c).unwrap_or(POISSON_MAX)
}

/// Amount in cents in [lo, hi] yuan, skewed towards the low end.
fn skewed_cents(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
    if hi <= lo {
        return lo * 100;
    }
    let u = rng.random::<f64>();
    let span = ((hi - lo) * 100) as f64;
    lo * 100 + (span * u * u) as u64
}

fn income_cents(rng: &mut ChaCha8Rng, (median, spread): (f64, f64), high_tail: bool) -> u64 {
    let mut x = median * (1.0 + spread * normalish(rng));
    if high_tail && chance(rng, HIGH_INCOME_SHARE) {
        x *= 1.5 + rng.random::<f64>();
    }
    if x < MIN_INCOME {
        x = MIN_INCOME + rng.random::<f64>() * 1_000.0;
    }
    (x * 100.0).round() as u64
}

// ------------------------------------------------------------------------------------------------
// Per-county generation
// ------------------------------------------------------------------------------------------------

/// Rates derived from the options (the same for every county).
#[derive(Debug, Clone)]
struct Params {
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
    fn new(end_date: jiff::civil::Date) -> Params {
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
struct CountyStats {
    households: u64,
    persons: u64,
    monitored: u64,
    stock_persons: u64,
    signals: u64,
    cases: u64,
    measures: u64,
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
fn push_id(buf: &mut Vec<u8>, prefix: u8, county: &str, n: u64) {
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
fn id_check_char(first17: &[u8]) -> u8 {
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

fn gen_county(
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

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A temporary directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("bottomline-gen-test-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn end() -> jiff::civil::Date {
        jiff::civil::date(2026, 6, 30)
    }

    fn county_opts(out: &Path, households: u32) -> GenOptions {
        GenOptions {
            seed: 42,
            out: out.to_path_buf(),
            scope: GenScope::County("610102".into()),
            end: end(),
            households_per_county: Some(households),
        }
    }

    fn run(opts: &GenOptions) -> GenSummary {
        generate(opts, &mut |_| {}).expect("generation succeeds")
    }

    /// All rows of a CSV file as header-name → value maps.
    fn read(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
        let mut r = csv::Reader::from_path(path).expect("file exists");
        let headers: Vec<String> = r
            .headers()
            .expect("header line")
            .iter()
            .map(String::from)
            .collect();
        let rows = r
            .records()
            .map(|rec| {
                let rec = rec.expect("valid CSV record");
                headers
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(String::from))
                    .collect()
            })
            .collect();
        (headers, rows)
    }

    fn parse_day(s: &str) -> i32 {
        let d: jiff::civil::Date = s.parse().expect("yyyy-mm-dd date");
        assert_eq!(d.to_string(), s, "date written as yyyy-mm-dd");
        date_to_days(d)
    }

    fn files_of(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("readable dir") {
                let p = e.expect("dir entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn civil_days_match_jiff() {
        let mut d = jiff::civil::date(1930, 1, 1);
        let stop = jiff::civil::date(2040, 12, 31);
        let mut n = date_to_days(d);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        while d <= stop {
            assert_eq!(date_to_days(d), n);
            let (y, m, dd) = civil_from_days(n);
            assert_eq!(
                (y, m, dd),
                (i32::from(d.year()), d.month() as u32, d.day() as u32)
            );
            let mut b = Vec::new();
            push_date(&mut b, n);
            assert_eq!(String::from_utf8(b).expect("ascii"), d.to_string());
            d = d.tomorrow().expect("in range");
            n += 1;
        }
    }

    #[test]
    fn formatting() {
        let mut b = Vec::new();
        push_cents(&mut b, 123_450);
        b.push(b' ');
        push_cents(&mut b, 5);
        b.push(b' ');
        push_pad(&mut b, 7, 4);
        b.push(b' ');
        push_pad(&mut b, 1_234_567, 6);
        b.push(b' ');
        push_id(&mut b, b'S', "610102", 1);
        assert_eq!(b, b"1234.50 0.05 0007 1234567 S610102-000001");
        // Known valid resident ID (GB 11643 example).
        assert_eq!(id_check_char(b"11010519491231002"), b'X');
        assert_eq!(id_check_char(b"44052418800101001"), b'4');
    }

    #[test]
    fn deterministic_and_thread_independent() {
        let a = TempDir::new("det-a");
        let b = TempDir::new("det-b");
        let c = TempDir::new("det-c");
        let opts = |p: &Path| GenOptions {
            scope: GenScope::Province {
                code: "61".into(),
                cities: 2,
                counties: 3,
            },
            ..county_opts(p, 1_500)
        };
        let sa = run(&opts(&a.0));
        let sb = run(&opts(&b.0));
        let sc = generate_with_threads(&opts(&c.0), &mut |_| {}, 1).expect("generation succeeds");
        assert_eq!(sa, sb);
        assert_eq!(sa, sc);
        let fa = files_of(&a.0);
        assert_eq!(fa.len(), 1 + 3 * 6);
        for f in &fa {
            let rel = f.strip_prefix(&a.0).expect("under a");
            let bytes = fs::read(f).expect("readable");
            assert_eq!(
                bytes,
                fs::read(b.0.join(rel)).expect("same file in b"),
                "{rel:?}"
            );
            assert_eq!(
                bytes,
                fs::read(c.0.join(rel)).expect("same file in c"),
                "{rel:?}"
            );
        }
        // Another seed gives other data.
        let d = TempDir::new("det-d");
        run(&GenOptions {
            seed: 43,
            ..opts(&d.0)
        });
        assert_ne!(
            fs::read(a.0.join("610102/households.csv")).expect("readable"),
            fs::read(d.0.join("610102/households.csv")).expect("readable")
        );
    }

    #[test]
    fn county_alone_equals_county_in_province() {
        let a = TempDir::new("alone");
        let b = TempDir::new("inprov");
        run(&county_opts(&a.0, 800));
        run(&GenOptions {
            scope: GenScope::Province {
                code: "61".into(),
                cities: 10,
                counties: 12,
            },
            ..county_opts(&b.0, 800)
        });
        for f in [
            "divisions.csv",
            "households.csv",
            "monitored.csv",
            "signals.csv",
            "cases.csv",
            "measures.csv",
        ] {
            assert_eq!(
                fs::read(a.0.join("610102").join(f)).expect("readable"),
                fs::read(b.0.join("610102").join(f)).expect("readable"),
                "{f}"
            );
        }
    }

    #[test]
    fn headers_are_exact() {
        let t = TempDir::new("headers");
        run(&county_opts(&t.0, 300));
        let expect = [
            ("divisions.csv", "code,name,level,parent"),
            ("610102/divisions.csv", "code,name,level,parent"),
            (
                "610102/households.csv",
                "household_code,village_code,members,alleviated,income,head_name,id_number",
            ),
            (
                "610102/monitored.csv",
                "household_code,category,identified_date,eliminated_date",
            ),
            (
                "610102/signals.csv",
                "id,household_code,source,type,department,amount,date",
            ),
            (
                "610102/cases.csv",
                "id,household_code,discovered_date,decided_date,outcome,green_channel,stage",
            ),
            ("610102/measures.csv", "id,household_code,type,date,amount"),
        ];
        for (f, h) in expect {
            let text = fs::read_to_string(t.0.join(f)).expect("UTF-8 file");
            let first = text.split('\n').next().expect("a first line");
            assert_eq!(first, h, "{f}");
            assert!(!text.contains('\r'), "{f}: \\n line ends only");
            assert!(text.ends_with('\n'), "{f}");
        }
    }

    #[test]
    fn resident_ids_are_valid_and_unique() {
        let t = TempDir::new("ids");
        run(&county_opts(&t.0, 3_000));
        let (_, rows) = read(&t.0.join("610102/households.csv"));
        assert_eq!(rows.len(), 3_000);
        let endd = end();
        let mut seen = HashSet::new();
        for r in &rows {
            let id = r["id_number"].as_bytes();
            assert_eq!(id.len(), 18, "{}", r["id_number"]);
            assert!(id[..17].iter().all(u8::is_ascii_digit));
            assert_eq!(&id[..6], b"610102");
            assert_eq!(
                id[17],
                id_check_char(&id[..17]),
                "check char of {}",
                r["id_number"]
            );
            let s = &r["id_number"];
            let birth = jiff::civil::date(
                s[6..10].parse().expect("year"),
                s[10..12].parse().expect("month"),
                s[12..14].parse().expect("day"),
            );
            let mut age = endd.year() - birth.year();
            if (endd.month(), endd.day()) < (birth.month(), birth.day()) {
                age -= 1;
            }
            assert!((18..=85).contains(&age), "age {age} of {s}");
            assert!(seen.insert(s.clone()), "duplicate id {s}");
            let name = &r["head_name"];
            let chars = name.chars().count();
            assert!((2..=3).contains(&chars), "name {name}");
        }
    }

    #[test]
    fn codes_and_divisions_are_consistent() {
        let t = TempDir::new("codes");
        let sum = run(&GenOptions {
            scope: GenScope::Province {
                code: "61".into(),
                cities: 10,
                counties: 13,
            },
            ..county_opts(&t.0, 400)
        });
        let (_, divs) = read(&t.0.join("divisions.csv"));
        assert_eq!(divs.len() as u64, sum.divisions);
        let mut level: HashMap<String, String> = HashMap::new();
        for d in &divs {
            let code = &d["code"];
            let want_len = match d["level"].as_str() {
                "province" => 2,
                "city" => 4,
                "county" => 6,
                "town" => 9,
                "village" => 12,
                other => panic!("bad level {other}"),
            };
            assert_eq!(code.len(), want_len, "{code}");
            if d["level"] == "province" {
                assert_eq!(d["parent"], "");
            } else {
                assert!(
                    code.starts_with(&d["parent"]),
                    "{code} under {}",
                    d["parent"]
                );
                assert!(
                    level.contains_key(&d["parent"]),
                    "parent of {code} comes first"
                );
            }
            assert!(
                level.insert(code.clone(), d["level"].clone()).is_none(),
                "dup {code}"
            );
        }
        let names: HashMap<&str, &str> = divs
            .iter()
            .map(|d| (d["code"].as_str(), d["name"].as_str()))
            .collect();
        assert_eq!(names["61"], "陕西省");
        assert_eq!(names["6101"], "西安市");
        assert_eq!(names["6110"], "商洛市");
        // 13 counties over 10 cities: 2,2,2,1,… and codes from 02.
        assert_eq!(sum.counties.len(), 13);
        assert_eq!(&sum.counties[..3], ["610102", "610103", "610202"]);
        assert!(sum.counties.contains(&"611002".to_string()));
        let county_names: HashSet<&str> = sum.counties.iter().map(|c| names[c.as_str()]).collect();
        assert_eq!(county_names.len(), 13, "county names are unique");
        for c in &sum.counties {
            let n = names[c.as_str()];
            assert!(n.ends_with('县') || n.ends_with('区'), "{n}");
        }
        let villages = divs.iter().filter(|d| d["level"] == "village").count();
        let towns = divs.iter().filter(|d| d["level"] == "town").count();
        assert!((10 * 13..=14 * 13).contains(&towns), "{towns} towns");
        assert!(
            (100 * 13..=200 * 13).contains(&villages),
            "{villages} villages"
        );
        for d in &divs {
            let n = &d["name"];
            match d["level"].as_str() {
                "town" => assert!(n.ends_with('镇') || n.ends_with('乡'), "{n}"),
                "village" => assert!(n.ends_with('村'), "{n}"),
                _ => {}
            }
        }

        let mut households = 0u64;
        for c in &sum.counties {
            let dir = t.0.join(c);
            let (_, cdivs) = read(&dir.join("divisions.csv"));
            assert_eq!(cdivs[0]["code"], "61");
            assert_eq!(cdivs[1]["code"], c[..4]);
            assert_eq!(cdivs[2]["code"], *c);
            assert!(cdivs
                .iter()
                .skip(3)
                .all(|d| d["code"].starts_with(c.as_str())));
            let village_codes: HashSet<&str> = cdivs
                .iter()
                .filter(|d| d["level"] == "village")
                .map(|d| d["code"].as_str())
                .collect();
            let (_, hh) = read(&dir.join("households.csv"));
            let mut codes = HashSet::new();
            for h in &hh {
                let code = &h["household_code"];
                assert_eq!(code.len(), 16);
                assert!(village_codes.contains(&code[..12]), "{code}");
                assert_eq!(h["village_code"], code[..12]);
                assert!(codes.insert(code.clone()), "duplicate {code}");
            }
            households += hh.len() as u64;
            // Every record of the county refers to one of its households.
            for f in ["monitored.csv", "signals.csv", "cases.csv", "measures.csv"] {
                let (_, rows) = read(&dir.join(f));
                for r in &rows {
                    assert!(
                        codes.contains(&r["household_code"]),
                        "{f}: {}",
                        r["household_code"]
                    );
                }
            }
        }
        assert_eq!(households, sum.households);
        assert_eq!(households, 13 * 400);
    }

    #[test]
    fn county_scope_outside_shaanxi() {
        let t = TempDir::new("other");
        let sum = run(&GenOptions {
            scope: GenScope::County("620402".into()),
            ..county_opts(&t.0, 50)
        });
        assert_eq!(sum.counties, ["620402"]);
        let (_, divs) = read(&t.0.join("620402/divisions.csv"));
        assert_eq!(divs[0]["name"], "甘肃省");
        assert_eq!(divs[1]["code"], "6204");
        assert!(divs[1]["name"].ends_with('市'));
        assert_eq!(divs[2]["parent"], "6204");
    }

    /// Checks every rule of the data files of one county; returns the rows by file.
    fn check_county(
        dir: &Path,
        endd: jiff::civil::Date,
    ) -> HashMap<&'static str, Vec<HashMap<String, String>>> {
        let min = days_from_civil(2015, 1, 1);
        let end = date_to_days(endd);
        let in_range = |s: &str| {
            let d = parse_day(s);
            assert!((min..=end).contains(&d), "date {s} out of range");
            d
        };
        let amount = |s: &str| {
            let (a, b) = s.split_once('.').expect("amount with decimals");
            assert!(
                !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()),
                "{s}"
            );
            assert!(b.len() == 2 && b.bytes().all(|c| c.is_ascii_digit()), "{s}");
        };
        let mut all = HashMap::new();
        let (_, hh) = read(&dir.join("households.csv"));
        let mut alleviated = HashMap::new();
        for h in &hh {
            let m: u32 = h["members"].parse().expect("members");
            assert!((1..=8).contains(&m));
            assert!(h["alleviated"] == "0" || h["alleviated"] == "1");
            amount(&h["income"]);
            alleviated.insert(h["household_code"].clone(), h["alleviated"] == "1");
        }
        let (_, mon) = read(&dir.join("monitored.csv"));
        let mut identified = HashMap::new();
        for m in &mon {
            let id = in_range(&m["identified_date"]);
            let el = if m["eliminated_date"].is_empty() {
                None
            } else {
                let e = in_range(&m["eliminated_date"]);
                assert!(e >= id, "eliminated before identified: {m:?}");
                Some(e)
            };
            // From 2021-01-01 on (earlier only when `end` leaves less than a year after it).
            assert!(id >= days_from_civil(2021, 1, 1).min(end - 364), "{m:?}");
            assert!(CATEGORIES.contains(&m["category"].as_str()));
            if m["category"] == "unstable_alleviated" {
                assert!(
                    alleviated[&m["household_code"]],
                    "unstable but not alleviated: {m:?}"
                );
            }
            assert!(
                identified
                    .insert(m["household_code"].clone(), (id, el))
                    .is_none(),
                "household twice in monitored.csv"
            );
        }
        let (_, sig) = read(&dir.join("signals.csv"));
        let mut sig_ids = HashSet::new();
        for s in &sig {
            let d = in_range(&s["date"]);
            assert!(d > end - 365);
            assert!(SOURCES.contains(&s["source"].as_str()));
            assert!(SIGNAL_TYPES.contains(&s["type"].as_str()));
            if s["source"] == "department" {
                let n: u32 = s["department"].parse().expect("department number");
                assert!((1..=30).contains(&n));
            } else {
                assert_eq!(s["department"], "");
            }
            amount(&s["amount"]);
            assert!(
                s["id"].starts_with("S610102-") || !s["id"].starts_with("S61"),
                "{}",
                s["id"]
            );
            assert!(sig_ids.insert(s["id"].clone()));
        }
        let (_, cases) = read(&dir.join("cases.csv"));
        let mut included = HashSet::new();
        let mut case_ids = HashSet::new();
        for c in &cases {
            assert!(case_ids.insert(c["id"].clone()));
            let disc = in_range(&c["discovered_date"]);
            assert!(c["green_channel"] == "0" || c["green_channel"] == "1");
            match c["outcome"].as_str() {
                "pending" => {
                    assert_eq!(c["decided_date"], "");
                    assert!(STAGES.contains(&c["stage"].as_str()));
                    assert!(disc > end - 40);
                    assert!(!identified.contains_key(&c["household_code"]));
                }
                o => {
                    let dec = in_range(&c["decided_date"]);
                    assert!(disc <= dec);
                    assert_eq!(c["stage"], "");
                    if o == "included" {
                        let (id, _) = identified[&c["household_code"]];
                        assert_eq!(dec, id);
                        assert!(included.insert(c["household_code"].clone()));
                    } else {
                        assert_eq!(o, "rejected");
                        assert!(!identified.contains_key(&c["household_code"]));
                    }
                }
            }
        }
        assert_eq!(
            included.len(),
            identified.len(),
            "one included case per monitored household"
        );
        let (_, meas) = read(&dir.join("measures.csv"));
        let mut meas_ids = HashSet::new();
        for m in &meas {
            assert!(meas_ids.insert(m["id"].clone()));
            let d = in_range(&m["date"]);
            let (id, el) = identified[&m["household_code"]];
            assert!(d >= id, "measure before identification: {m:?}");
            if let Some(e) = el {
                assert!(
                    d < e || (d == id && e == id),
                    "measure after elimination: {m:?}"
                );
            }
            assert!(MEASURE_TYPES.contains(&m["type"].as_str()));
            amount(&m["amount"]);
        }
        all.insert("households", hh);
        all.insert("monitored", mon);
        all.insert("signals", sig);
        all.insert("cases", cases);
        all.insert("measures", meas);
        all
    }

    #[test]
    fn rules_and_dates_hold_for_several_end_dates() {
        for (i, endd) in [
            jiff::civil::date(2016, 1, 1),
            jiff::civil::date(2021, 3, 1),
            jiff::civil::date(2024, 2, 29),
            end(),
            jiff::civil::date(2031, 12, 31),
        ]
        .into_iter()
        .enumerate()
        {
            let t = TempDir::new(&format!("rules-{i}"));
            run(&GenOptions {
                end: endd,
                ..county_opts(&t.0, 4_000)
            });
            let rows = check_county(&t.0.join("610102"), endd);
            assert!(!rows["monitored"].is_empty(), "{endd}");
        }
    }

    #[test]
    fn realistic_rates() {
        let t = TempDir::new("rates");
        let n = 20_000u32;
        let sum = run(&county_opts(&t.0, n));
        let rows = check_county(&t.0.join("610102"), end());
        assert_eq!(sum.households, u64::from(n));
        let persons = sum.persons as f64;
        let mean_members = persons / f64::from(n);
        assert!((3.0..3.4).contains(&mean_members), "members {mean_members}");
        let share = sum.monitored_persons as f64 / persons;
        assert!(
            (0.015..=0.035).contains(&share),
            "monitored persons {share}"
        );
        let per_mon = sum.measures as f64 / sum.monitored as f64;
        assert!(
            (2.0..=2.8).contains(&per_mon),
            "measures per monitored {per_mon}"
        );
        let sig65 = sum.signals as f64 * 65_000.0 / f64::from(n);
        assert!(
            (3_000.0..=5_000.0).contains(&sig65),
            "signals per 65k {sig65}"
        );

        let hh = &rows["households"];
        let alleviated = hh.iter().filter(|h| h["alleviated"] == "1").count() as f64 / f64::from(n);
        assert!(
            (0.22..0.28).contains(&alleviated),
            "alleviated {alleviated}"
        );
        let incomes: Vec<f64> = hh
            .iter()
            .map(|h| h["income"].parse().expect("number"))
            .collect();
        let mid = incomes
            .iter()
            .filter(|&&x| (8_000.0..=30_000.0).contains(&x))
            .count() as f64;
        assert!(
            mid / f64::from(n) > 0.8,
            "income mostly 8 000–30 000: {}",
            mid / f64::from(n)
        );

        // Categories roughly 45/40/15; ~55 % of the old identifications eliminated.
        let mon = &rows["monitored"];
        let share_of =
            |c: &str| mon.iter().filter(|m| m["category"] == c).count() as f64 / mon.len() as f64;
        assert!((0.38..0.52).contains(&share_of("unstable_alleviated")));
        assert!((0.33..0.47).contains(&share_of("marginal")));
        assert!((0.10..0.20).contains(&share_of("sudden_hardship")));
        let last_year = date_to_days(end()) - 364;
        let old: Vec<_> = mon
            .iter()
            .filter(|m| parse_day(&m["identified_date"]) < last_year)
            .collect();
        let old_elim = old
            .iter()
            .filter(|m| !m["eliminated_date"].is_empty())
            .count() as f64
            / old.len() as f64;
        assert!(
            (0.48..0.62).contains(&old_elim),
            "old eliminated {old_elim}"
        );

        // Signal sources ~15/30/45/10; signals concentrate on monitored households.
        let sig = &rows["signals"];
        let src =
            |s: &str| sig.iter().filter(|r| r["source"] == s).count() as f64 / sig.len() as f64;
        assert!((0.10..0.20).contains(&src("self_declared")));
        assert!((0.24..0.36).contains(&src("grid_check")));
        assert!((0.38..0.52).contains(&src("department")));
        assert!((0.06..0.14).contains(&src("data_comparison")));
        let monitored: HashSet<&str> = mon.iter().map(|m| m["household_code"].as_str()).collect();
        let on_mon = sig
            .iter()
            .filter(|s| monitored.contains(s["household_code"].as_str()))
            .count();
        let frac = on_mon as f64 / sig.len() as f64;
        assert!((0.3..0.8).contains(&frac), "signals on monitored {frac}");

        // Cases: included = monitored; late ones ~10 %; rejected ~30 % of included in the last
        // year; some pending, some of them overdue; green channel on sudden hardship only.
        let cases = &rows["cases"];
        let inc: Vec<_> = cases
            .iter()
            .filter(|c| c["outcome"] == "included")
            .collect();
        assert_eq!(inc.len() as u64, sum.monitored);
        let late = inc
            .iter()
            .filter(|c| parse_day(&c["decided_date"]) - parse_day(&c["discovered_date"]) > 15)
            .count() as f64
            / inc.len() as f64;
        assert!((0.05..0.16).contains(&late), "late {late}");
        let in_last_year = |c: &HashMap<String, String>| parse_day(&c["decided_date"]) >= last_year;
        let inc_ly = inc.iter().filter(|c| in_last_year(c)).count() as f64;
        let rej_ly = cases
            .iter()
            .filter(|c| c["outcome"] == "rejected" && in_last_year(c))
            .count() as f64;
        assert!(
            (0.15..0.45).contains(&(rej_ly / inc_ly)),
            "rejected/included {}",
            rej_ly / inc_ly
        );
        let pending: Vec<_> = cases.iter().filter(|c| c["outcome"] == "pending").collect();
        assert!(!pending.is_empty());
        let endn = date_to_days(end());
        assert!(
            pending
                .iter()
                .any(|c| endn - parse_day(&c["discovered_date"]) > 15),
            "an overdue pending case"
        );
        let cat: HashMap<&str, &str> = mon
            .iter()
            .map(|m| (m["household_code"].as_str(), m["category"].as_str()))
            .collect();
        let green: Vec<_> = cases.iter().filter(|c| c["green_channel"] == "1").collect();
        assert!(green
            .iter()
            .all(|c| cat.get(c["household_code"].as_str()) == Some(&"sudden_hardship")));
        let sudden = mon
            .iter()
            .filter(|m| m["category"] == "sudden_hardship")
            .count() as f64;
        let g = green.len() as f64 / sudden;
        assert!((0.1..0.3).contains(&g), "green channel share {g}");
    }

    #[test]
    fn realistic_size_and_progress() {
        let t = TempDir::new("realistic");
        let mut plan = make_plan(&GenOptions {
            households_per_county: None,
            scope: GenScope::Province {
                code: "61".into(),
                cities: 10,
                counties: 107,
            },
            ..county_opts(&t.0, 0)
        })
        .expect("valid plan");
        let counties: Vec<&CountyPlan> = plan.cities.iter().flat_map(|c| &c.counties).collect();
        assert_eq!(counties.len(), 107);
        let hh: u64 = counties.iter().map(|c| u64::from(c.households)).sum();
        assert!((6_500_000..7_500_000).contains(&hh), "{hh} households");
        let villages = plan.division_rows()
            - 1
            - 10
            - 107
            - counties.iter().map(|c| c.towns.len() as u64).sum::<u64>();
        assert!((14_500..17_500).contains(&villages), "{villages} villages");
        plan.cities.clear();

        // Progress after every county and every 10 000 households.
        let mut calls = Vec::new();
        let sum = generate(
            &GenOptions {
                scope: GenScope::Province {
                    code: "61".into(),
                    cities: 1,
                    counties: 2,
                },
                ..county_opts(&t.0, 25_000)
            },
            &mut |p| calls.push(p.clone()),
        )
        .expect("generation succeeds");
        let last = calls.last().expect("progress was reported");
        assert_eq!((last.counties_done, last.counties_total), (2, 2));
        assert_eq!(last.households_done, 50_000);
        assert_eq!(calls.len(), 2 + 2 * 3);
        assert_eq!(sum.households, 50_000);
    }

    #[test]
    fn invalid_options_are_refused() {
        let t = TempDir::new("invalid");
        let bad = [
            GenScope::County("61010".into()),
            GenScope::County("61a102".into()),
            GenScope::County("610100".into()),
            GenScope::Province {
                code: "6".into(),
                cities: 1,
                counties: 1,
            },
            GenScope::Province {
                code: "61".into(),
                cities: 0,
                counties: 1,
            },
            GenScope::Province {
                code: "61".into(),
                cities: 1,
                counties: 99,
            },
            GenScope::Province {
                code: "61".into(),
                cities: 2,
                counties: 0,
            },
        ];
        for scope in bad {
            let r = generate(
                &GenOptions {
                    scope: scope.clone(),
                    ..county_opts(&t.0, 10)
                },
                &mut |_| {},
            );
            match r {
                Err(GenError::Invalid(msg)) => assert!(!msg.is_empty()),
                other => panic!("{scope:?} accepted: {other:?}"),
            }
        }
        let early = GenOptions {
            end: jiff::civil::date(2015, 12, 31),
            ..county_opts(&t.0, 10)
        };
        assert!(matches!(
            generate(&early, &mut |_| {}),
            Err(GenError::Invalid(_))
        ));
        let huge = county_opts(&t.0, MAX_HOUSEHOLDS_PER_COUNTY + 1);
        assert!(matches!(
            generate(&huge, &mut |_| {}),
            Err(GenError::Invalid(_))
        ));
        // An output path under a regular file cannot be created: the error names it.
        fs::create_dir_all(&t.0).expect("temp dir");
        let file = t.0.join("file");
        fs::write(&file, b"x").expect("write");
        let err = generate(&county_opts(&file.join("out"), 10), &mut |_| {})
            .expect_err("cannot write under a file");
        assert!(matches!(err, GenError::Io { .. }));
        assert!(err.to_string().contains("file"), "{err}");
    }

    #[test]
    fn zero_households_writes_headers_only() {
        let t = TempDir::new("zero");
        let sum = run(&county_opts(&t.0, 0));
        assert_eq!(sum.households, 0);
        let text = fs::read_to_string(t.0.join("610102/households.csv")).expect("file");
        assert_eq!(text.lines().count(), 1);
    }
}
