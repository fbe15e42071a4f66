//! Statistics: which cells each record contributes to, and the indicators derived from cells.
//!
//! A **cell** is (division, period, indicator, dimension) → integer (a count, or fen for
//! amounts). Only *flows* are stored: things that happen on a date. Stocks (households in
//! monitoring at the end of a period) are derived at read time as cumulative inflow minus
//! cumulative outflow up to the period's last day (calendar years + months for month-aligned
//! periods, ISO years + weeks for weeks), so an
//! open-ended monitoring row never has to be written into every future period. Ratios are
//! derived at read time from sums, never stored or summed.
//!
//! Cells are linear in records: a record contributes +1 (or its amount / members) to a fixed
//! set of cells, so a correction is "remove the old contributions, add the new ones", and a
//! parent's cell is the sum of its children's cells. Both the ledger's incremental updates and
//! the from-scratch recomputation used by tests call [`contributions`].

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use crate::division::{Code, CODE_KEY_LEN};
use crate::domain::{
    Case, Category, Household, MeasureType, Monitored, Outcome, Record, SignalSource, SignalType,
};
use crate::period::{Kind, Period, EARLIEST, PERIOD_KEY_LEN};

/// A stored indicator. The discriminant is part of store keys and must never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Stored {
    /// Monitoring rows identified in the period; dimension = category.
    IdentifiedHouseholds = 1,
    /// Members of those households; dimension = category.
    IdentifiedPersons = 2,
    /// Monitoring rows whose risk was eliminated in the period; dimension = category.
    EliminatedHouseholds = 3,
    /// Members of those households; dimension = category.
    EliminatedPersons = 4,
    /// Identification cases discovered (declarations received).
    CasesReceived = 5,
    /// Cases included, by decided date.
    CasesApproved = 6,
    /// Cases rejected, by decided date.
    CasesRejected = 7,
    /// Cases included within 15 days of discovery, by decided date.
    IdentifiedWithin15Days = 8,
    /// Green-channel cases, by discovered date.
    GreenChannel = 9,
    /// Risk signals; dimension = source.
    SignalsBySource = 10,
    /// Risk signals; dimension = type.
    SignalsByType = 11,
    /// Department signals; dimension = department 1..=30.
    SignalsByDepartment = 12,
    /// Assistance measures; dimension = type.
    Measures = 13,
    /// Assistance amount in fen; dimension = type.
    MeasureAmount = 14,
    /// Rectification tickets issued (counted at the target's node, see `ledger::ticket_log`).
    TicketsIssued = 15,
    /// Tickets whose standing rectification is dated in the period.
    TicketsRectified = 16,
    /// Tickets closed (verified, 销号).
    TicketsClosed = 17,
    /// Overdue-stock deltas: +1 the day a ticket turns overdue, −1 the day it stops.
    TicketsOverdue = 18,
    /// Spot checks done (双随机 results recorded), by the result's date, counted at the
    /// village drawn (see `ledger::ticket_log`).
    SpotChecksDone = 19,
    /// Of those, the checks that found problems.
    SpotCheckFindings = 20,
}

impl Stored {
    /// Every stored indicator.
    pub const ALL: [Stored; 20] = [
        Stored::IdentifiedHouseholds,
        Stored::IdentifiedPersons,
        Stored::EliminatedHouseholds,
        Stored::EliminatedPersons,
        Stored::CasesReceived,
        Stored::CasesApproved,
        Stored::CasesRejected,
        Stored::IdentifiedWithin15Days,
        Stored::GreenChannel,
        Stored::SignalsBySource,
        Stored::SignalsByType,
        Stored::SignalsByDepartment,
        Stored::Measures,
        Stored::MeasureAmount,
        Stored::TicketsIssued,
        Stored::TicketsRectified,
        Stored::TicketsClosed,
        Stored::TicketsOverdue,
        Stored::SpotChecksDone,
        Stored::SpotCheckFindings,
    ];

    /// Inverse of `as u8`.
    pub fn from_code(c: u8) -> Option<Stored> {
        Stored::ALL.into_iter().find(|s| *s as u8 == c)
    }

    /// Stock flows are also kept per ISO year, to derive stocks at week ends.
    fn is_stock_flow(self) -> bool {
        matches!(
            self,
            Stored::IdentifiedHouseholds
                | Stored::IdentifiedPersons
                | Stored::EliminatedHouseholds
                | Stored::EliminatedPersons
                | Stored::TicketsIssued
                | Stored::TicketsClosed
                | Stored::TicketsOverdue
        )
    }

    /// Name used in the wire protocol and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stored::IdentifiedHouseholds => "newly_identified",
            Stored::IdentifiedPersons => "newly_identified_persons",
            Stored::EliminatedHouseholds => "eliminated",
            Stored::EliminatedPersons => "eliminated_persons",
            Stored::CasesReceived => "declarations_received",
            Stored::CasesApproved => "declarations_approved",
            Stored::CasesRejected => "declarations_rejected",
            Stored::IdentifiedWithin15Days => "identified_within_15_days",
            Stored::GreenChannel => "green_channel_cases",
            Stored::SignalsBySource => "signals_by_source",
            Stored::SignalsByType => "signals_by_type",
            Stored::SignalsByDepartment => "signals_by_department",
            Stored::Measures => "measures",
            Stored::MeasureAmount => "measure_amount",
            Stored::TicketsIssued => "tickets_issued",
            Stored::TicketsRectified => "tickets_rectified",
            Stored::TicketsClosed => "tickets_closed",
            Stored::TicketsOverdue => "tickets_overdue_delta",
            Stored::SpotChecksDone => "spot_checks_done",
            Stored::SpotCheckFindings => "spot_check_findings",
        }
    }
}

/// Length of an encoded [`CellKey`].
pub const CELL_KEY_LEN: usize = CODE_KEY_LEN + PERIOD_KEY_LEN + 2;

/// The address of a cell. Byte order: division, period, indicator, dimension, so one
/// division's cells of one period are a single prefix scan and a subtree is a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    /// The division the cell counts.
    pub division: Code,
    /// The period.
    pub period: Period,
    /// The indicator.
    pub indicator: Stored,
    /// The dimension value (category/source/type code, department number), 0 for none.
    pub dim: u8,
}

impl CellKey {
    /// Encode as store key bytes.
    pub fn encode(&self) -> [u8; CELL_KEY_LEN] {
        let mut k = [0u8; CELL_KEY_LEN];
        k[..CODE_KEY_LEN].copy_from_slice(&self.division.key());
        k[CODE_KEY_LEN..CODE_KEY_LEN + PERIOD_KEY_LEN].copy_from_slice(&self.period.key());
        k[CELL_KEY_LEN - 2] = self.indicator as u8;
        k[CELL_KEY_LEN - 1] = self.dim;
        k
    }

    /// Decode [`CellKey::encode`].
    pub fn decode(k: &[u8]) -> Option<CellKey> {
        if k.len() != CELL_KEY_LEN {
            return None;
        }
        Some(CellKey {
            division: Code::from_key(&k[..CODE_KEY_LEN])?,
            period: Period::from_key(&k[CODE_KEY_LEN..CODE_KEY_LEN + PERIOD_KEY_LEN])?,
            indicator: Stored::from_code(k[CELL_KEY_LEN - 2])?,
            dim: k[CELL_KEY_LEN - 1],
        })
    }

    /// Key prefix of all cells of `division` in `period`.
    pub fn prefix(division: Code, period: Period) -> [u8; CODE_KEY_LEN + PERIOD_KEY_LEN] {
        let mut k = [0u8; CODE_KEY_LEN + PERIOD_KEY_LEN];
        k[..CODE_KEY_LEN].copy_from_slice(&division.key());
        k[CODE_KEY_LEN..].copy_from_slice(&period.key());
        k
    }
}

/// Call `out(cell, amount)` for every cell `record` contributes to, for each division from
/// the record's village up to `top` (the node's division). `household` is the record's
/// household where the contribution depends on it (monitoring rows count its members);
/// without it a monitoring row counts 0 persons.
pub fn contributions(
    record: &Record,
    household: Option<&Household>,
    top: Code,
    out: &mut impl FnMut(CellKey, i64),
) {
    let Some(village) = Code::of_household(record.household_code()) else {
        return;
    };
    let mut emit = |date: Date, ind: Stored, dim: u8, v: i64| {
        emit_cells(village, top, date, ind, dim, v, &mut *out)
    };
    match record {
        Record::Household(_) => {}
        Record::Monitored(m) => {
            let persons = household.map_or(0, |h| h.members as i64);
            let c = m.category.code();
            emit(m.identified_date, Stored::IdentifiedHouseholds, c, 1);
            emit(m.identified_date, Stored::IdentifiedPersons, c, persons);
            if let Some(e) = m.eliminated_date {
                emit(e, Stored::EliminatedHouseholds, c, 1);
                emit(e, Stored::EliminatedPersons, c, persons);
            }
        }
        Record::Signal(s) => {
            emit(s.date, Stored::SignalsBySource, s.source.code(), 1);
            emit(s.date, Stored::SignalsByType, s.kind.code(), 1);
            if let Some(d) = s.department {
                emit(s.date, Stored::SignalsByDepartment, d, 1);
            }
        }
        Record::Case(c) => {
            emit(c.discovered_date, Stored::CasesReceived, 0, 1);
            if c.green_channel {
                emit(c.discovered_date, Stored::GreenChannel, 0, 1);
            }
            if let Some(d) = c.decided_date {
                match c.outcome {
                    Outcome::Included => {
                        emit(d, Stored::CasesApproved, 0, 1);
                        if c.within_deadline() {
                            emit(d, Stored::IdentifiedWithin15Days, 0, 1);
                        }
                    }
                    Outcome::Rejected => emit(d, Stored::CasesRejected, 0, 1),
                    Outcome::Pending => {}
                }
            }
        }
        Record::Measure(m) => {
            emit(m.date, Stored::Measures, m.kind.code(), 1);
            emit(m.date, Stored::MeasureAmount, m.kind.code(), m.amount.0);
        }
    }
}

/// Call `out(cell, v)` for the cells of one flow dated `date`: every division from `from` up
/// to `top`, every period kind containing the date (ISO years only for stock flows). The one
/// definition of "which cells a dated flow touches", for records and tickets alike.
pub fn emit_cells(
    from: Code,
    top: Code,
    date: Date,
    ind: Stored,
    dim: u8,
    v: i64,
    out: &mut impl FnMut(CellKey, i64),
) {
    if v == 0 {
        return;
    }
    for division in from.lineage(top) {
        for kind in Kind::ALL {
            if kind == Kind::IsoYear && !ind.is_stock_flow() {
                continue;
            }
            let period = Period::containing(kind, date);
            out(
                CellKey {
                    division,
                    period,
                    indicator: ind,
                    dim,
                },
                v,
            );
        }
    }
}

/// Whether a record's contributions depend on its household (so a household correction
/// must re-count it).
pub fn depends_on_household(record: &Record) -> bool {
    matches!(record, Record::Monitored(_))
}

pub mod labels;

/// Something cells can be read from (a node's store, or an in-memory map in tests).
pub trait CellSource {
    /// All non-zero cells of `division` in `period`.
    fn cells_of(&self, division: Code, period: Period) -> Result<Vec<(CellKey, i64)>, String>;
    /// Cells of `division` for periods of `kind` with `from <= period < to` (same kind).
    fn cells_between(
        &self,
        division: Code,
        from: Period,
        to: Period,
    ) -> Result<Vec<(CellKey, i64)>, String>;
}

impl CellSource for BTreeMap<CellKey, i64> {
    fn cells_of(&self, division: Code, period: Period) -> Result<Vec<(CellKey, i64)>, String> {
        Ok(self
            .iter()
            .filter(|(k, v)| k.division == division && k.period == period && **v != 0)
            .map(|(k, v)| (*k, *v))
            .collect())
    }
    fn cells_between(
        &self,
        division: Code,
        from: Period,
        to: Period,
    ) -> Result<Vec<(CellKey, i64)>, String> {
        Ok(self
            .iter()
            .filter(|(k, v)| {
                k.division == division
                    && k.period.kind() == from.kind()
                    && k.period >= from
                    && k.period < to
                    && **v != 0
            })
            .map(|(k, v)| (*k, *v))
            .collect())
    }
}

/// Sum of the flows of `wanted` (per dimension) dated on or before the last day of `period`:
/// whole (ISO) years before it plus its own year's weeks or months up to it — periods of one
/// kind tile time, so no day cells are needed.
fn cumulative(
    src: &dyn CellSource,
    division: Code,
    period: Period,
    wanted: &[Stored],
) -> Result<BTreeMap<(Stored, u8), i64>, String> {
    let mut acc: BTreeMap<(Stored, u8), i64> = BTreeMap::new();
    let mut add = |cells: Vec<(CellKey, i64)>| {
        for (k, v) in cells {
            if wanted.contains(&k.indicator) {
                *acc.entry((k.indicator, k.dim)).or_default() += v;
            }
        }
    };
    let last = period.last_day();
    if period.kind() == Kind::Week {
        // Whole ISO years before, then the weeks of this ISO year up to this one.
        let iso = Period::containing(Kind::IsoYear, last);
        let first = Period::containing(Kind::IsoYear, EARLIEST);
        if first < iso {
            add(src.cells_between(division, first, iso)?);
        }
        let w1 = Period::containing(Kind::Week, iso.first_day());
        add(src.cells_between(division, w1, period.next())?);
        return Ok(acc);
    }
    // Whole years before, then this year up to the period's last day (a month's end) in the
    // largest periods that fit: a year is its own block, November is H1 + Q3 + October +
    // November (every record is counted in every kind of period containing its date).
    let y = Period::containing(Kind::Year, last);
    let first = Period::containing(Kind::Year, EARLIEST);
    if first < y {
        add(src.cells_between(division, first, y)?);
    }
    let mut cursor = y.first_day();
    while cursor <= last {
        let p = [Kind::Year, Kind::Half, Kind::Quarter, Kind::Month]
            .into_iter()
            .map(|k| Period::containing(k, cursor))
            .find(|p| p.first_day() == cursor && p.last_day() <= last)
            .ok_or_else(|| format!("no period from {cursor} ends by {last}"))?;
        add(src.cells_of(division, p)?);
        match p.last_day().tomorrow() {
            Ok(next) => cursor = next,
            Err(_) => break,
        }
    }
    Ok(acc)
}

/// The value of one indicator row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A count.
    Count(i64),
    /// An amount of money in fen, shown as yuan.
    Fen(i64),
    /// A ratio in [0, 1], `None` when the denominator is 0.
    Ratio(Option<f64>),
    /// An average per unit (e.g. measures per household), `None` when there are no units.
    Average(Option<f64>),
}

/// One indicator row of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Indicator name as in SPEC.md.
    pub indicator: String,
    /// Dimension (`category=marginal`, `source=department`, …) or `total`.
    pub dimension: String,
    /// The value.
    pub value: Value,
}

/// Indicators of one division for one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Indicators {
    /// The division.
    pub division: Code,
    /// The period.
    pub period: Period,
    /// First day of the period.
    pub first_day: Date,
    /// Last day of the period.
    pub last_day: Date,
    /// Rows in a stable order.
    pub rows: Vec<Row>,
}

impl Indicators {
    /// The value of `indicator` / `dimension` (`"total"` for totals).
    pub fn get(&self, indicator: &str, dimension: &str) -> Option<Value> {
        self.rows
            .iter()
            .find(|r| r.indicator == indicator && r.dimension == dimension)
            .map(|r| r.value)
    }

    /// A count or fen value; panics in tests only when the row is missing.
    pub fn count(&self, indicator: &str, dimension: &str) -> i64 {
        match self.get(indicator, dimension) {
            Some(Value::Count(v)) | Some(Value::Fen(v)) => v,
            _ => 0,
        }
    }
}

fn ratio(num: i64, den: i64) -> Value {
    Value::Ratio((den != 0).then(|| num as f64 / den as f64))
}

/// Compute every indicator of SPEC.md for `division` in `period`.
pub fn indicators(
    src: &dyn CellSource,
    division: Code,
    period: Period,
) -> Result<Indicators, String> {
    let mut flows: BTreeMap<(Stored, u8), i64> = BTreeMap::new();
    for (k, v) in src.cells_of(division, period)? {
        *flows.entry((k.indicator, k.dim)).or_default() += v;
    }
    let flow = |s: Stored, d: u8| flows.get(&(s, d)).copied().unwrap_or(0);
    let flow_total = |s: Stored| -> i64 {
        flows
            .iter()
            .filter(|((i, _), _)| *i == s)
            .map(|(_, v)| *v)
            .sum()
    };
    let last = period.last_day();
    let cum = cumulative(
        src,
        division,
        period,
        &[
            Stored::IdentifiedHouseholds,
            Stored::IdentifiedPersons,
            Stored::EliminatedHouseholds,
            Stored::EliminatedPersons,
            Stored::TicketsIssued,
            Stored::TicketsClosed,
            Stored::TicketsOverdue,
        ],
    )?;
    let c = |s: Stored, d: u8| cum.get(&(s, d)).copied().unwrap_or(0);

    let mut rows = Vec::new();
    let mut push = |indicator: &'static str, dimension: String, value: Value| {
        rows.push(Row {
            indicator: indicator.to_string(),
            dimension,
            value,
        })
    };
    let total = || "total".to_string();

    // Stocks at the last day of the period.
    let (mut hh_total, mut p_total) = (0, 0);
    for cat in Category::ALL {
        let d = cat.code();
        let hh = c(Stored::IdentifiedHouseholds, d) - c(Stored::EliminatedHouseholds, d);
        let p = c(Stored::IdentifiedPersons, d) - c(Stored::EliminatedPersons, d);
        hh_total += hh;
        p_total += p;
        push(
            "monitored_households",
            format!("category={cat}"),
            Value::Count(hh),
        );
        push(
            "monitored_persons",
            format!("category={cat}"),
            Value::Count(p),
        );
    }
    push("monitored_households", total(), Value::Count(hh_total));
    push("monitored_persons", total(), Value::Count(p_total));

    for (name, ind) in [
        ("newly_identified", Stored::IdentifiedHouseholds),
        ("eliminated", Stored::EliminatedHouseholds),
    ] {
        for cat in Category::ALL {
            push(
                name,
                format!("category={cat}"),
                Value::Count(flow(ind, cat.code())),
            );
        }
        push(name, total(), Value::Count(flow_total(ind)));
    }
    let cum_ident: i64 = Category::ALL
        .iter()
        .map(|k| c(Stored::IdentifiedHouseholds, k.code()))
        .sum();
    let cum_elim: i64 = Category::ALL
        .iter()
        .map(|k| c(Stored::EliminatedHouseholds, k.code()))
        .sum();
    push("elimination_rate", total(), ratio(cum_elim, cum_ident));

    let approved = flow(Stored::CasesApproved, 0);
    let within = flow(Stored::IdentifiedWithin15Days, 0);
    push(
        "declarations_received",
        total(),
        Value::Count(flow(Stored::CasesReceived, 0)),
    );
    push("declarations_approved", total(), Value::Count(approved));
    push(
        "declarations_rejected",
        total(),
        Value::Count(flow(Stored::CasesRejected, 0)),
    );
    push("identified_within_15_days", total(), Value::Count(within));
    push("within_deadline_rate", total(), ratio(within, approved));
    push(
        "green_channel_cases",
        total(),
        Value::Count(flow(Stored::GreenChannel, 0)),
    );

    for src_ in SignalSource::ALL {
        push(
            "signals",
            format!("source={src_}"),
            Value::Count(flow(Stored::SignalsBySource, src_.code())),
        );
    }
    for t in SignalType::ALL {
        push(
            "signals",
            format!("type={t}"),
            Value::Count(flow(Stored::SignalsByType, t.code())),
        );
    }
    for d in 1..=30u8 {
        let v = flow(Stored::SignalsByDepartment, d);
        if v != 0 {
            push("signals", format!("department={d}"), Value::Count(v));
        }
    }
    push(
        "signals",
        total(),
        Value::Count(flow_total(Stored::SignalsBySource)),
    );

    for t in MeasureType::ALL {
        push(
            "measures",
            format!("type={t}"),
            Value::Count(flow(Stored::Measures, t.code())),
        );
    }
    let measures = flow_total(Stored::Measures);
    push("measures", total(), Value::Count(measures));
    for t in MeasureType::ALL {
        push(
            "measure_amount",
            format!("type={t}"),
            Value::Fen(flow(Stored::MeasureAmount, t.code())),
        );
    }
    push(
        "measure_amount",
        total(),
        Value::Fen(flow_total(Stored::MeasureAmount)),
    );
    push(
        "measures_per_household",
        total(),
        Value::Average((hh_total != 0).then(|| measures as f64 / hh_total as f64)),
    );

    // Rectification tickets (counted at their target; stocks as of the period's end, or of
    // the day the target's node last brought its ticket cells up to date, if earlier).
    let issued_to_date = c(Stored::TicketsIssued, 0);
    let closed_to_date = c(Stored::TicketsClosed, 0);
    for (name, ind) in [
        ("tickets_issued", Stored::TicketsIssued),
        ("tickets_rectified", Stored::TicketsRectified),
        ("tickets_closed", Stored::TicketsClosed),
    ] {
        push(name, total(), Value::Count(flow(ind, 0)));
    }
    push(
        "tickets_open",
        total(),
        Value::Count(issued_to_date - closed_to_date),
    );
    push(
        "tickets_overdue",
        total(),
        Value::Count(c(Stored::TicketsOverdue, 0)),
    );
    push(
        "ticket_clearance_rate",
        total(),
        ratio(closed_to_date, issued_to_date),
    );

    // Double-random spot checks whose result was recorded in the period (抽查村数).
    let (done, findings) = (
        flow(Stored::SpotChecksDone, 0),
        flow(Stored::SpotCheckFindings, 0),
    );
    push(
        "spot_checks_done",
        "result=ok".to_string(),
        Value::Count(done - findings),
    );
    push(
        "spot_checks_done",
        "result=findings".to_string(),
        Value::Count(findings),
    );
    push("spot_checks_done", total(), Value::Count(done));

    Ok(Indicators {
        division,
        period,
        first_day: period.first_day(),
        last_day: last,
        rows,
    })
}

/// The indicators computed literally from SPEC.md's definitions over a set of records (the
/// test oracle: no cells, no incremental logic). `households` gives members by code.
pub fn oracle<'a>(
    records: impl Iterator<Item = &'a Record> + Clone,
    members: &dyn Fn(&str) -> i64,
    division: Code,
    period: Period,
) -> BTreeMap<(String, String), i64> {
    let (first, last) = (period.first_day(), period.last_day());
    let in_p = |d: Date| first <= d && d <= last;
    let in_div = |h: &str| Code::of_household(h).is_some_and(|v| division.contains(v));
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut add = |i: &str, d: String, v: i64| {
        *out.entry((i.to_string(), d)).or_default() += v;
        *out.entry((i.to_string(), "total".into())).or_default() += v;
    };
    for r in records.filter(|r| in_div(r.household_code())) {
        match r {
            Record::Monitored(Monitored {
                household_code,
                category,
                identified_date,
                eliminated_date,
            }) => {
                let cat = format!("category={category}");
                if *identified_date <= last && eliminated_date.is_none_or(|e| e > last) {
                    add("monitored_households", cat.clone(), 1);
                    add("monitored_persons", cat.clone(), members(household_code));
                }
                if in_p(*identified_date) {
                    add("newly_identified", cat.clone(), 1);
                }
                if eliminated_date.is_some_and(in_p) {
                    add("eliminated", cat, 1);
                }
            }
            Record::Case(c @ Case { .. })
                if c.within_deadline() && c.decided_date.is_some_and(in_p) =>
            {
                add("identified_within_15_days", String::new(), 1);
            }
            Record::Signal(s) if in_p(s.date) => {
                add("signals", format!("source={}", s.source), 1);
                add("signals", format!("type={}", s.kind), 1);
            }
            Record::Measure(m) if in_p(m.date) => {
                add("measures", format!("type={}", m.kind), 1);
                add("measure_amount", format!("type={}", m.kind), m.amount.0);
            }
            _ => {}
        }
    }
    // Every signal was added to "total" twice (by source and by type).
    if let Some(t) = out.get_mut(&("signals".to_string(), "total".to_string())) {
        *t /= 2;
    }
    out.retain(|(_, d), _| !d.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cents, Signal};
    use jiff::civil::date;

    #[test]
    fn cell_keys_round_trip_and_group_by_division_period() {
        let k = CellKey {
            division: Code::parse("610102001").unwrap(),
            period: Period::parse("2026-W53").unwrap(),
            indicator: Stored::SignalsByType,
            dim: 4,
        };
        assert_eq!(CellKey::decode(&k.encode()), Some(k));
        assert!(k
            .encode()
            .starts_with(&CellKey::prefix(k.division, k.period)));
    }

    #[test]
    fn a_signal_counts_in_every_period_and_level() {
        let s = Record::Signal(Signal {
            id: "s1".into(),
            household_code: "6101020010010001".into(),
            source: SignalSource::Department,
            kind: SignalType::Medical,
            department: Some(7),
            amount: Cents(100),
            date: date(2027, 1, 2),
        });
        let mut cells = BTreeMap::new();
        contributions(&s, None, Code::parse("610102").unwrap(), &mut |k, v| {
            *cells.entry(k).or_insert(0) += v;
        });
        // 3 indicators × 5 reported periods × 3 divisions (village, town, county).
        assert_eq!(cells.len(), 45);
        let ind = indicators(
            &cells,
            Code::parse("610102").unwrap(),
            Period::parse("2026-W53").unwrap(),
        )
        .unwrap();
        assert_eq!(ind.count("signals", "total"), 1);
        assert_eq!(ind.count("signals", "department=7"), 1);
        let ind2026 = indicators(
            &cells,
            Code::parse("610102").unwrap(),
            Period::parse("2026").unwrap(),
        )
        .unwrap();
        assert_eq!(
            ind2026.count("signals", "total"),
            0,
            "2027-01-02 is not in 2026"
        );
    }
}
