//! The work cycle (工作机制): "weekly statistics, monthly notification, quarterly scheduling,
//! half-year summary, annual summary" (周统计、月通报、季调度、半年小结、年度总结) and the
//! "double continuous" assessment (双连续) built on the notifications (issue #18).
//!
//! Everything here is computed from the indicators a node already derives from its cells
//! (`stats::Indicators`, read through [`regions`](crate::regions) from a data dir or over
//! gRPC from a running node): no record is read.
//!
//! - [`rules`]: the TOML rules (which indicators rank the regions, in which direction, with
//!   which weight; how many are praised and criticised; the points of the double continuous),
//!   with documented defaults.
//! - [`notification`]: ranking the regions of one period and deciding who is praised and who
//!   is criticised (pure, over `Indicators`).
//! - [`assess`]: the double continuous over a year's monthly and quarterly rankings (pure).
//! - [`figures`]: where the indicators come from (`Source`: a ledger, hand-built cells, or
//!   the CLI's gRPC client) and the set of them one report needs.
//! - [`document`]: a report as headed tables of typed cells, the one model every writer
//!   renders; [`reports`] builds the weekly and monthly ones, [`summaries`] the quarterly,
//!   half-year and annual ones.
//! - [`export`]: the writers: HTML (self-contained), CSV (UTF-8 with a BOM), XLSX.

pub mod assess;
pub mod document;
pub mod export;
pub mod figures;
pub mod notification;
pub mod reports;
pub mod rules;
pub mod summaries;

use std::fmt;
use std::str::FromStr;

use crate::period::{Kind, Period};

pub use assess::{assess_year, Assessment};
pub use document::Document;
pub use figures::Source;
pub use reports::build;
pub use rules::Rules;

/// Why a report or an assessment cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The request does not make sense (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// The rules file does not load (the message names the file and the field).
    #[error("{0}")]
    Rules(String),
    /// The figures could not be read (store or node).
    #[error("reading the figures: {0}")]
    Source(String),
    /// Writing the output failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl From<crate::regions::ReportError> for CycleError {
    fn from(e: crate::regions::ReportError) -> Self {
        match e {
            crate::regions::ReportError::Invalid(m) => CycleError::Invalid(m),
            e => CycleError::Source(e.to_string()),
        }
    }
}

/// The reports of the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// 周统计: the week's indicators of every region, and the week against the one before.
    Weekly,
    /// 月度通报: the regions ranked on the key indicators, the best praised, the worst
    /// criticised.
    Monthly,
    /// 季度调度: the quarter's ranking, the quarter's monthly notifications, its months.
    Quarterly,
    /// 半年小结: the half's figures, its months, against the half before, its notifications.
    Half,
    /// 年度总结: the year's figures, months and quarters, against the year before, and the
    /// year's assessment (double continuous).
    Annual,
}

impl ReportKind {
    /// Every kind, in the cycle's order.
    pub const ALL: [ReportKind; 5] = [
        ReportKind::Weekly,
        ReportKind::Monthly,
        ReportKind::Quarterly,
        ReportKind::Half,
        ReportKind::Annual,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Weekly => "weekly",
            ReportKind::Monthly => "monthly",
            ReportKind::Quarterly => "quarterly",
            ReportKind::Half => "half",
            ReportKind::Annual => "annual",
        }
    }

    /// The report's name in Chinese.
    pub fn zh(self) -> &'static str {
        match self {
            ReportKind::Weekly => "周统计",
            ReportKind::Monthly => "月度通报",
            ReportKind::Quarterly => "季度调度",
            ReportKind::Half => "半年小结",
            ReportKind::Annual => "年度总结",
        }
    }

    /// The kind of period the report is for.
    pub fn period_kind(self) -> Kind {
        match self {
            ReportKind::Weekly => Kind::Week,
            ReportKind::Monthly => Kind::Month,
            ReportKind::Quarterly => Kind::Quarter,
            ReportKind::Half => Kind::Half,
            ReportKind::Annual => Kind::Year,
        }
    }

    /// `period` if it is of the report's kind, else an error naming `--period` with an example.
    pub fn check_period(self, period: Period) -> Result<Period, CycleError> {
        if period.kind() == self.period_kind() {
            return Ok(period);
        }
        let example = match self {
            ReportKind::Weekly => "2026-W47",
            ReportKind::Monthly => "2026-11",
            ReportKind::Quarterly => "2026-Q4",
            ReportKind::Half => "2026-H2",
            ReportKind::Annual => "2026",
        };
        Err(CycleError::Invalid(format!(
            "--period: a {} report ({}) is for a {} (e.g. {example}), not {period}",
            self.as_str(),
            self.zh(),
            self.period_kind().as_str()
        )))
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown report kind {s:?}: weekly, monthly, quarterly, half or annual")
            })
    }
}

/// A period as people read it: 2026年第47周, 2026年11月, 2026年第四季度, 2026年上半年, 2026年.
pub fn period_zh(p: Period) -> String {
    const QUARTERS: [&str; 4] = ["一", "二", "三", "四"];
    match p.kind() {
        Kind::Week => format!("{}年第{}周", p.year(), p.index()),
        Kind::Month => format!("{}年{}月", p.year(), p.index()),
        Kind::Quarter => format!(
            "{}年第{}季度",
            p.year(),
            QUARTERS[usize::from(p.index().clamp(1, 4)) - 1]
        ),
        Kind::Half => format!(
            "{}年{}",
            p.year(),
            if p.index() == 1 {
                "上半年"
            } else {
                "下半年"
            }
        ),
        Kind::Year | Kind::IsoYear => format!("{}年", p.year()),
    }
}

/// A date as people read it: 2026年11月20日.
pub fn date_zh(d: jiff::civil::Date) -> String {
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        Period::parse(s).unwrap()
    }

    #[test]
    fn periods_and_dates_read_in_chinese() {
        assert_eq!(period_zh(p("2026-W47")), "2026年第47周");
        assert_eq!(period_zh(p("2026-11")), "2026年11月");
        assert_eq!(period_zh(p("2026-Q4")), "2026年第四季度");
        assert_eq!(period_zh(p("2026-H1")), "2026年上半年");
        assert_eq!(period_zh(p("2026")), "2026年");
        assert_eq!(date_zh(jiff::civil::date(2026, 11, 20)), "2026年11月20日");
    }

    #[test]
    fn a_report_is_for_a_period_of_its_kind() {
        assert!(ReportKind::Monthly.check_period(p("2026-11")).is_ok());
        let e = ReportKind::Monthly
            .check_period(p("2026-W47"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--period") && e.contains("2026-11"), "{e}");
        assert_eq!("half".parse::<ReportKind>(), Ok(ReportKind::Half));
        assert!("yearly"
            .parse::<ReportKind>()
            .unwrap_err()
            .contains("annual"));
    }
}
