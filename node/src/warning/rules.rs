//! The rules of the county's department warnings and of risk elimination: a TOML file
//! (`bottomline warn --rules FILE`, `bottomline monitored eliminate --rules FILE`; reference and
//! defaults in `deploy/warning-rules.toml`). Every key has a default; unknown keys are refused
//! (a typo would otherwise silently keep a default).

use std::collections::BTreeMap;
use std::path::Path;

use jiff::civil::Date;
use serde::Deserialize;

use super::data::LabourChange;
use crate::domain::Cents;

/// Why the rules cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file cannot be read.
    #[error("cannot read the rules file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("rules file {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Every rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WarningRules {
    /// The monitoring line (防止返贫监测范围): per-capita annual net income in yuan below which
    /// a household is at risk, per calendar year ("2026" = 7600.0). A year not listed takes
    /// the latest year listed before it (or the earliest listed).
    pub monitoring_line: BTreeMap<String, f64>,
    /// Medical costs the household paid itself.
    pub medical: MedicalRule,
    /// Accidents whose loss was not compensated.
    pub accident: AccidentRule,
    /// Labour-force changes.
    pub labour: LabourRule,
    /// Income checks (data comparison).
    pub income: IncomeRule,
    /// What risk elimination requires.
    pub elimination: EliminationRule,
}

impl Default for WarningRules {
    fn default() -> Self {
        WarningRules {
            monitoring_line: [("2024", 7000.0), ("2025", 7300.0), ("2026", 7600.0)]
                .into_iter()
                .map(|(y, v)| (y.to_string(), v))
                .collect(),
            medical: MedicalRule::default(),
            accident: AccidentRule::default(),
            labour: LabourRule::default(),
            income: IncomeRule::default(),
            elimination: EliminationRule::default(),
        }
    }
}

/// `[medical]`: fires on the settlement with which the household's out-of-pocket cost over the
/// last `months` months passes `above` yuan or `share_of_income` of its annual income
/// (per-capita income × members); signal source `department`, type `medical`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MedicalRule {
    /// Run this rule.
    pub enabled: bool,
    /// The department number on the signal (1–30).
    pub department: u8,
    /// The window, in months, ending on the settlement's day.
    pub months: u32,
    /// Yuan; 0 = off.
    pub above: f64,
    /// Share of the household's annual income; 0 = off.
    pub share_of_income: f64,
}

impl Default for MedicalRule {
    fn default() -> Self {
        MedicalRule {
            enabled: true,
            department: 8,
            months: 12,
            above: 10_000.0,
            share_of_income: 0.5,
        }
    }
}

/// `[accident]`: fires on an accident whose uncompensated loss (loss − compensation) passes
/// `above` yuan or `share_of_income` of the household's annual income; type `accident`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccidentRule {
    /// Run this rule.
    pub enabled: bool,
    /// The department number on the signal.
    pub department: u8,
    /// Yuan; 0 = off.
    pub above: f64,
    /// Share of the household's annual income; 0 = off.
    pub share_of_income: f64,
}

impl Default for AccidentRule {
    fn default() -> Self {
        AccidentRule {
            enabled: true,
            department: 11,
            above: 5_000.0,
            share_of_income: 0.3,
        }
    }
}

/// `[labour]`: fires on a change listed in `changes` affecting at least `min_persons`
/// members; type `unemployment` for a job loss, `labour` otherwise.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LabourRule {
    /// Run this rule.
    pub enabled: bool,
    /// The department number on the signal.
    pub department: u8,
    /// The changes that fire.
    pub changes: Vec<String>,
    /// Members affected at least.
    pub min_persons: u32,
}

impl Default for LabourRule {
    fn default() -> Self {
        LabourRule {
            enabled: true,
            department: 6,
            changes: ["death", "disability", "serious_illness", "job_loss"]
                .map(String::from)
                .to_vec(),
            min_persons: 1,
        }
    }
}

/// `[income]`: fires on an income check below the monitoring line of its year
/// (`below_line`), or more than `drop_share` below the income the household record holds;
/// signal source `data_comparison`, type `income_drop`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IncomeRule {
    /// Run this rule.
    pub enabled: bool,
    /// Below the monitoring line.
    pub below_line: bool,
    /// A fall of more than this share; 0 = off.
    pub drop_share: f64,
}

impl Default for IncomeRule {
    fn default() -> Self {
        IncomeRule {
            enabled: true,
            below_line: true,
            drop_share: 0.3,
        }
    }
}

/// `[elimination]`: what `bottomline monitored eliminate` checks before it records a risk as
/// eliminated.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EliminationRule {
    /// The household's per-capita income is above the monitoring line of the elimination's
    /// year.
    pub income_above_line: bool,
    /// At least this many assistance measures are recorded for the household, dated on or
    /// before the elimination.
    pub min_measures: u32,
    /// Monitored at least this many days.
    pub min_days_monitored: u32,
}

impl Default for EliminationRule {
    fn default() -> Self {
        EliminationRule {
            income_above_line: true,
            min_measures: 1,
            min_days_monitored: 0,
        }
    }
}

/// Yuan (from the rules file) in fen.
pub fn fen(yuan: f64) -> i64 {
    (yuan * 100.0).round() as i64
}

impl WarningRules {
    /// Read and check a rules file.
    pub fn load(path: &Path) -> Result<WarningRules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: path.display().to_string(),
            source,
        })?;
        WarningRules::parse(&text).map_err(|reason| RulesError::Invalid {
            file: path.display().to_string(),
            reason,
        })
    }

    /// Parse and check rules from TOML text.
    pub fn parse(text: &str) -> Result<WarningRules, String> {
        let r: WarningRules = toml::from_str(text).map_err(|e| e.to_string())?;
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), String> {
        if self.monitoring_line.is_empty() {
            return Err("monitoring_line: at least one year is needed".into());
        }
        for (y, v) in &self.monitoring_line {
            if y.parse::<i16>().is_err() {
                return Err(format!("monitoring_line: {y:?} is not a year"));
            }
            if !(v.is_finite() && *v > 0.0) {
                return Err(format!("monitoring_line.{y}: {v} is not a positive amount"));
            }
        }
        for (name, d) in [
            ("medical", self.medical.department),
            ("accident", self.accident.department),
            ("labour", self.labour.department),
        ] {
            if !(1..=30).contains(&d) {
                return Err(format!("{name}.department: {d} is not a department 1–30"));
            }
        }
        for (name, v) in [
            ("medical.above", self.medical.above),
            ("medical.share_of_income", self.medical.share_of_income),
            ("accident.above", self.accident.above),
            ("accident.share_of_income", self.accident.share_of_income),
            ("income.drop_share", self.income.drop_share),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name}: {v} is not a non-negative number"));
            }
        }
        if self.income.drop_share >= 1.0 {
            return Err("income.drop_share: a share below 1".into());
        }
        if self.medical.months == 0 || self.medical.months > 60 {
            return Err("medical.months: 1 to 60".into());
        }
        for c in &self.labour.changes {
            LabourChange::parse(c).map_err(|e| format!("labour.changes: {e}"))?;
        }
        Ok(())
    }

    /// The monitoring line of the year of `day`, in fen.
    pub fn line_on(&self, day: Date) -> Cents {
        let year = day.year();
        let mut years: Vec<(i16, f64)> = self
            .monitoring_line
            .iter()
            .filter_map(|(y, v)| y.parse::<i16>().ok().map(|y| (y, *v)))
            .collect();
        years.sort_by_key(|(y, _)| *y);
        let v = years
            .iter()
            .rev()
            .find(|(y, _)| *y <= year)
            .or(years.first())
            .map_or(0.0, |(_, v)| *v);
        Cents(fen(v))
    }

    /// The labour changes that fire.
    pub fn labour_changes(&self) -> Vec<LabourChange> {
        self.labour
            .changes
            .iter()
            .filter_map(|c| LabourChange::parse(c).ok())
            .collect()
    }
}
