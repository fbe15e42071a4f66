//! The region report (issue #17): the indicators of a set of divisions — a node's children,
//! every division at one level below a division, or one division alone — for one period or a
//! run of periods of one kind, in one call. The gRPC `Report`, the CLI's `stats --children`
//! and `stats --trend`, and the HTTP API all answer from here.

use std::sync::Arc;

use crate::division::{Code, Division, Level};
use crate::ledger::{Ledger, LedgerError};
use crate::period::{Kind, Period};
use crate::stats::Indicators;

/// Most (division, period) pairs one report answers (a province's 16 000 villages for one
/// period would be more: those are asked of their counties).
pub const MAX_ENTRIES: usize = 20_000;

/// Most periods in one run (a year of weeks is 53).
pub const MAX_PERIODS: usize = 120;

/// Which divisions a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The division's direct children.
    Children,
    /// Every division at this level below the division.
    Level(Level),
    /// The division alone (with a run of periods: its trend).
    Only,
}

/// Why a report cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request does not make sense (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The periods from `from` to `until` (inclusive, same kind).
pub fn run(from: Period, until: Period) -> Result<Vec<Period>, ReportError> {
    if from.kind() != until.kind() {
        return Err(ReportError::Invalid(format!(
            "a run of periods is of one kind: {from} is a {}, {until} a {}",
            from.kind().as_str(),
            until.kind().as_str()
        )));
    }
    if until < from {
        return Err(ReportError::Invalid(format!(
            "the run ends ({until}) before it starts ({from})"
        )));
    }
    let mut out = vec![from];
    let mut p = from;
    while p < until {
        p = p.next();
        out.push(p);
        if out.len() > MAX_PERIODS {
            return Err(ReportError::Invalid(format!(
                "{from} to {until} is more than {MAX_PERIODS} periods"
            )));
        }
    }
    Ok(out)
}

/// The periods a report asks for: `period` alone, the run from it to `until`, or every week
/// or month (`each`) of the year `period`.
pub fn periods(
    period: Period,
    until: Option<Period>,
    each: Option<Kind>,
) -> Result<Vec<Period>, ReportError> {
    match (until, each) {
        (None, None) => Ok(vec![period]),
        (Some(until), None) => run(period, until),
        (None, Some(kind)) => year_run(period, kind),
        (Some(_), Some(_)) => Err(ReportError::Invalid(
            "give either until (a run of periods) or each (the weeks or months of a year)".into(),
        )),
    }
}

/// The weeks (ISO weeks of the ISO year, 52 or 53) or months of `year`, for a trend.
pub fn year_run(year: Period, kind: Kind) -> Result<Vec<Period>, ReportError> {
    if year.kind() != Kind::Year {
        return Err(ReportError::Invalid(format!(
            "a trend is over the weeks or months of a year: give a year (2026), not {year}"
        )));
    }
    let y = year.year();
    let first = Period::new(kind, y, 1).map_err(ReportError::Invalid)?;
    let mut last = first;
    while last.next().year() == y {
        last = last.next();
    }
    run(first, last)
}

/// The deepest level whose figures node `me` holds: a county its villages, a parent its
/// counties (towns' and villages' figures stay at their county).
pub fn deepest(me: Code) -> Level {
    if me.level() < Level::County {
        Level::County
    } else {
        Level::Village
    }
}

/// The divisions a report of `scope` under `division` covers, in code order. A parent holds
/// its counties' totals but not their towns and villages (they stay at their county).
pub fn members(
    ledger: &Ledger,
    division: Code,
    scope: Scope,
) -> Result<Vec<Division>, ReportError> {
    let me = ledger.division();
    if !me.contains(division) {
        return Err(ReportError::Invalid(format!(
            "{division} is outside this node's subtree ({me})"
        )));
    }
    let registry = ledger.registry();
    let known = |code: Code| {
        registry.get(code).cloned().unwrap_or(Division {
            code,
            name: String::new(),
        })
    };
    let deepest = deepest(me);
    let mut out: Vec<Division> = match scope {
        Scope::Only => vec![known(division)],
        Scope::Children => {
            if division.level() >= deepest {
                return Err(ReportError::Invalid(format!(
                    "{division} has no children whose figures this node ({me}) holds{}",
                    held_at_county(me, division)
                )));
            }
            let mut codes: std::collections::BTreeSet<Code> =
                registry.children(division).map(|d| d.code).collect();
            if division == me {
                codes.extend(ledger.known_children()?.into_iter().map(|k| k.division));
            }
            codes.into_iter().map(known).collect()
        }
        Scope::Level(level) => {
            if level <= division.level() {
                return Err(ReportError::Invalid(format!(
                    "the {} level is not below {division}",
                    level.as_str()
                )));
            }
            if level > deepest {
                return Err(ReportError::Invalid(format!(
                    "this node ({me}) holds no {} figures{}",
                    level.as_str(),
                    held_at_county(me, division)
                )));
            }
            registry
                .subtree(division)
                .filter(|d| d.code.level() == level)
                .cloned()
                .collect()
        }
    };
    out.sort_by_key(|d| d.code);
    Ok(out)
}

fn held_at_county(me: Code, division: Code) -> String {
    if me.level() < Level::County {
        format!(
            " (towns' and villages' figures are held at their county node{})",
            division
                .ancestor_at(Level::County)
                .map(|c| format!(": ask the node of {c}"))
                .unwrap_or_default()
        )
    } else {
        String::new()
    }
}

/// The indicators of every member for every period: members in code order, each with its
/// periods in order (from the ledger's cache while the cells have not changed).
pub fn report(
    ledger: &Ledger,
    members: &[Division],
    periods: &[Period],
) -> Result<Vec<Arc<Indicators>>, ReportError> {
    if members.len().saturating_mul(periods.len()) > MAX_ENTRIES {
        return Err(ReportError::Invalid(format!(
            "{} divisions × {} periods is more than {MAX_ENTRIES} entries: ask for fewer",
            members.len(),
            periods.len()
        )));
    }
    let mut out = Vec::with_capacity(members.len() * periods.len());
    for d in members {
        for p in periods {
            out.push(ledger.indicators_shared(d.code, *p)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        Period::parse(s).unwrap()
    }

    #[test]
    fn a_year_of_weeks_is_its_iso_weeks() {
        let w = year_run(p("2026"), Kind::Week).unwrap();
        assert_eq!(w.len(), 53);
        assert_eq!((w[0], w[52]), (p("2026-W01"), p("2026-W53")));
        assert_eq!(year_run(p("2025"), Kind::Week).unwrap().len(), 52);
        let m = year_run(p("2026"), Kind::Month).unwrap();
        assert_eq!((m.len(), m[11]), (12, p("2026-12")));
        assert!(year_run(p("2026-11"), Kind::Week).is_err());
    }

    #[test]
    fn a_run_is_of_one_kind_and_forward() {
        assert_eq!(run(p("2026-W52"), p("2027-W02")).unwrap().len(), 4);
        assert!(run(p("2026-11"), p("2026-W47")).is_err());
        assert!(run(p("2026-12"), p("2026-11")).is_err());
        assert!(run(p("2015-W01"), p("2026-W01")).is_err());
    }
}
