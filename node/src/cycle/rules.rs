//! The rules of the cycle's reports: a TOML file (`bottomline report --rules FILE`, sample
//! and reference in `deploy/report-rules.toml`) whose every key has a default, so no file at
//! all means [`Rules::default`]. Unknown keys are refused (a typo would otherwise silently
//! keep a default), and so is an indicator the statistics do not have.
//!
//! ```toml
//! # The columns of the statistics tables, in order: an indicator, optionally with a
//! # dimension in braces (SPEC notation): "monitored_households{category=marginal}".
//! columns = ["monitored_households", "within_deadline_rate", "tickets_overdue"]
//!
//! [ranking]                 # the monthly notification and the quarterly ranking
//! method = "rank"           # indicator score from the rank ("rank") or the value ("range")
//! praise_top = 3            # the 3 best composite scores are praised …
//! criticise_bottom = 3      # … and the 3 worst criticised
//! min_weight_share = 0.5    # ranked only with figures for half the weight or more
//! # praise_min_score = 60.0 # optional: praised only with at least this composite score
//! # criticise_max_score = 40.0  # optional: criticised only with at most this one
//!
//! [[ranking.indicators]]
//! indicator = "within_deadline_rate"
//! better = "higher"         # or "lower"
//! weight = 30
//! # red_line = 90          # optional: below 90 % criticised whatever the rank
//!
//! [double_continuous]
//! monthly_praise_points = 1.0       # 平时考核: two months praised in a row
//! monthly_criticism_points = 1.0    # deducted: two months criticised in a row
//! quarterly_praise_points = 2.0     # 年终考核: two quarters praised in a row
//! quarterly_criticism_points = 2.0
//! pairs = "disjoint"                # or "overlapping"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::CycleError;
use crate::stats::labels::{self, IndicatorLabel};
use crate::stats::{Indicators, Value};

/// The rules of every report of the cycle.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// The indicators the statistics tables show, in order.
    pub columns: Vec<IndicatorRef>,
    /// How the regions are ranked, praised and criticised (monthly and quarterly).
    pub ranking: RankingRules,
    /// The points of the double continuous (双连续).
    pub double_continuous: DoubleContinuous,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            columns: [
                "monitored_households",
                "monitored_persons",
                "newly_identified",
                "identified_within_15_days",
                "within_deadline_rate",
                "eliminated",
                "elimination_rate",
                "signals",
                "measures",
                "measure_amount",
                "tickets_issued",
                "tickets_rectified",
                "tickets_closed",
                "tickets_open",
                "tickets_overdue",
                "ticket_clearance_rate",
                "spot_checks_done",
            ]
            .into_iter()
            .map(|s| IndicatorRef::parse(s).expect("a default column is an indicator"))
            .collect(),
            ranking: RankingRules::default(),
            double_continuous: DoubleContinuous::default(),
        }
    }
}

/// How an indicator's score (0–100) is derived.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// From the region's place among the regions with a figure: the best 100, the worst 0,
    /// evenly between; tied regions share the mean of their places (all tied: 50 each).
    Rank,
    /// From the value between the worst and the best figure: `100 × (v − worst) / (best −
    /// worst)`; all equal: 50 each.
    Range,
}

/// Which way an indicator is better.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better (a rate of identification within the deadline).
    Higher,
    /// Less is better (overdue tickets).
    Lower,
}

/// The ranking of one period's regions (the monthly notification; the quarterly ranking).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RankingRules {
    /// How each indicator's score is derived.
    pub method: Method,
    /// The regions with the best composite score praised (ties at the edge included).
    pub praise_top: u32,
    /// The regions with the worst composite score criticised (ties at the edge included).
    pub criticise_bottom: u32,
    /// When set, praised only with at least this composite score.
    pub praise_min_score: Option<f64>,
    /// When set, criticised (for the rank) only with at most this composite score.
    pub criticise_max_score: Option<f64>,
    /// A region is ranked only when the indicators it has a figure for (a rate needs a
    /// denominator) carry at least this share of the total weight; otherwise it is listed as
    /// 不参与排名 (a region with no cases is not praised for its rate).
    pub min_weight_share: f64,
    /// The key indicators.
    pub indicators: Vec<KeyIndicator>,
}

impl Default for RankingRules {
    fn default() -> Self {
        let key = |name: &str, better, weight| KeyIndicator {
            indicator: IndicatorRef::parse(name).expect("a default key indicator"),
            better,
            weight,
            red_line: None,
        };
        RankingRules {
            method: Method::Rank,
            praise_top: 3,
            criticise_bottom: 3,
            praise_min_score: None,
            criticise_max_score: None,
            min_weight_share: 0.5,
            indicators: vec![
                key("within_deadline_rate", Better::Higher, 30.0),
                key("elimination_rate", Better::Higher, 30.0),
                key("ticket_clearance_rate", Better::Higher, 20.0),
                key("tickets_overdue", Better::Lower, 20.0),
            ],
        }
    }
}

/// One key indicator of the ranking.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyIndicator {
    /// The indicator (and dimension).
    pub indicator: IndicatorRef,
    /// Which way is better.
    pub better: Better,
    /// Its weight in the composite score (> 0).
    #[serde(default = "one")]
    pub weight: f64,
    /// When set, a region on the wrong side of it (below for `higher`, above for `lower`) is
    /// criticised whatever its rank, and never praised. In the indicator's unit as shown:
    /// percent for a rate (90 = 90 %), yuan for money.
    #[serde(default)]
    pub red_line: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// How consecutive notifications pair up.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pairs {
    /// Each notification counts in one pair at most: praised in March, April and May is one
    /// pair (March–April); June too makes a second (May–June).
    Disjoint,
    /// Every two consecutive notifications are a pair: March–April and April–May.
    Overlapping,
}

/// The double continuous (双连续): "praised or criticised in two consecutive monthly
/// notifications: extra points or a deduction in the regular assessment (平时考核); two
/// consecutive quarters: reflected in the year-end assessment (年终考核)". Pairs are counted
/// within the assessed year.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DoubleContinuous {
    /// Added to the regular assessment for each pair of consecutive monthly praises.
    pub monthly_praise_points: f64,
    /// Deducted from the regular assessment for each pair of consecutive monthly criticisms.
    pub monthly_criticism_points: f64,
    /// Added to the year-end result for each pair of consecutive quarterly praises.
    pub quarterly_praise_points: f64,
    /// Deducted from the year-end result for each pair of consecutive quarterly criticisms.
    pub quarterly_criticism_points: f64,
    /// How a run of three or more pairs up.
    pub pairs: Pairs,
}

impl Default for DoubleContinuous {
    fn default() -> Self {
        DoubleContinuous {
            monthly_praise_points: 1.0,
            monthly_criticism_points: 1.0,
            quarterly_praise_points: 2.0,
            quarterly_criticism_points: 2.0,
            pairs: Pairs::Disjoint,
        }
    }
}

/// An indicator and one of its dimensions (`total` unless given): `within_deadline_rate`,
/// `monitored_households{category=marginal}`, `signals{department=7}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct IndicatorRef {
    /// The indicator's identifier.
    pub name: String,
    /// The dimension (`total`, `category=marginal`, …).
    pub dimension: String,
    label: &'static IndicatorLabel,
}

impl TryFrom<String> for IndicatorRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        IndicatorRef::parse(&s)
    }
}

impl IndicatorRef {
    /// Parse `name` or `name{dimension}`, checked against the indicators the statistics have.
    pub fn parse(s: &str) -> Result<IndicatorRef, String> {
        let (name, dimension) = match s.split_once('{') {
            Some((n, rest)) => match rest.strip_suffix('}') {
                Some(d) => (n.trim(), d.trim()),
                None => return Err(format!("{s:?}: a dimension is written name{{dimension}}")),
            },
            None => (s.trim(), "total"),
        };
        let label = labels::indicator(name).ok_or_else(|| {
            let known: Vec<&str> = labels::INDICATORS.iter().map(|l| l.name).collect();
            format!("unknown indicator {name:?} (known: {})", known.join(", "))
        })?;
        if !dimension_exists(name, dimension) {
            return Err(format!(
                "{name} has no dimension {dimension:?} (e.g. total, category=marginal, \
                 source=department, type=medical, department=7)"
            ));
        }
        Ok(IndicatorRef {
            name: name.to_string(),
            dimension: dimension.to_string(),
            label,
        })
    }

    /// The indicator's names and unit.
    pub fn label(&self) -> &'static IndicatorLabel {
        self.label
    }

    /// The name people read: 15日内认定率, or 监测户数·边缘易致贫户 for a dimension.
    pub fn zh(&self) -> String {
        if self.dimension == "total" {
            self.label.zh.to_string()
        } else {
            format!(
                "{}·{}",
                self.label.zh,
                labels::dimension_zh(&self.name, &self.dimension)
            )
        }
    }

    /// A column heading with the unit: 15日内认定率（%）, 帮扶资金（元）.
    pub fn heading(&self) -> String {
        format!("{}（{}）", self.zh(), self.label.unit_zh)
    }

    /// The value in `ind` (`None`: no such row).
    pub fn value(&self, ind: &Indicators) -> Option<Value> {
        ind.get(&self.name, &self.dimension)
    }

    /// The value in the unit people read (percent for a rate, yuan for money); `None` when
    /// there is none (a rate without a denominator, a missing row).
    pub fn figure(&self, ind: &Indicators) -> Option<f64> {
        figure(self.value(ind)?)
    }
}

impl std::fmt::Display for IndicatorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dimension == "total" {
            f.write_str(&self.name)
        } else {
            write!(f, "{}{{{}}}", self.name, self.dimension)
        }
    }
}

/// A value as a number in the unit people read: a count, yuan, percent, or an average.
pub fn figure(v: Value) -> Option<f64> {
    match v {
        Value::Count(n) => Some(n as f64),
        Value::Fen(f) => Some(f as f64 / 100.0),
        Value::Ratio(r) => r.map(|r| r * 100.0),
        Value::Average(a) => a,
    }
}

fn dimension_exists(name: &str, dimension: &str) -> bool {
    if let Some(n) = dimension.strip_prefix("department=") {
        return name == "signals" && n.parse::<u8>().is_ok_and(|n| (1..=30).contains(&n));
    }
    // The rows of an empty division: every (indicator, dimension) the statistics give.
    let none = std::collections::BTreeMap::new();
    let (Ok(code), Ok(period)) = (
        crate::division::Code::parse("61"),
        crate::period::Period::parse("2026-01"),
    ) else {
        return false;
    };
    crate::stats::indicators(&none, code, period).is_ok_and(|ind| {
        ind.rows
            .iter()
            .any(|r| r.indicator == name && r.dimension == dimension)
    })
}

impl Rules {
    /// Read and check the rules in `path`; no path: the defaults.
    pub fn load(path: Option<&Path>) -> Result<Rules, CycleError> {
        let Some(path) = path else {
            return Ok(Rules::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CycleError::Rules(format!("{}: {e}", path.display())))?;
        Rules::parse(&text).map_err(|e| CycleError::Rules(format!("{}: {e}", path.display())))
    }

    /// Parse and check TOML text.
    pub fn parse(text: &str) -> Result<Rules, String> {
        let rules: Rules = toml::from_str(text).map_err(|e| e.to_string())?;
        rules.check()?;
        Ok(rules)
    }

    /// What TOML cannot say: weights, counts and shares in range, no indicator twice.
    pub fn check(&self) -> Result<(), String> {
        if self.columns.is_empty() {
            return Err("columns: give at least one indicator".into());
        }
        let r = &self.ranking;
        if r.indicators.is_empty() {
            return Err("ranking.indicators: give at least one key indicator".into());
        }
        for (i, k) in r.indicators.iter().enumerate() {
            let field = |f: &str| format!("ranking.indicators[{i}].{f} ({})", k.indicator);
            if !(k.weight.is_finite() && k.weight > 0.0) {
                return Err(format!(
                    "{}: a weight is a positive number, not {}",
                    field("weight"),
                    k.weight
                ));
            }
            if let Some(line) = k.red_line {
                let rate = k.indicator.label().unit_zh == "%";
                if !line.is_finite() || line < 0.0 || (rate && line > 100.0) {
                    return Err(format!(
                        "{}: {line} is not a figure of this indicator{}",
                        field("red_line"),
                        if rate {
                            " (a rate's red line is in percent, 0–100)"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if r.indicators[..i].iter().any(|o| o.indicator == k.indicator) {
                return Err(format!("{}: listed twice", field("indicator")));
            }
        }
        if !(0.0..=1.0).contains(&r.min_weight_share) {
            return Err(format!(
                "ranking.min_weight_share: a share between 0 and 1, not {}",
                r.min_weight_share
            ));
        }
        for (name, v) in [
            ("ranking.praise_min_score", r.praise_min_score),
            ("ranking.criticise_max_score", r.criticise_max_score),
        ] {
            if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
                return Err(format!("{name}: a score between 0 and 100, not {v}"));
            }
        }
        let d = &self.double_continuous;
        for (name, v) in [
            ("monthly_praise_points", d.monthly_praise_points),
            ("monthly_criticism_points", d.monthly_criticism_points),
            ("quarterly_praise_points", d.quarterly_praise_points),
            ("quarterly_criticism_points", d.quarterly_criticism_points),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "double_continuous.{name}: points are a number ≥ 0 (a deduction too: it is \
                     subtracted), not {v}"
                ));
            }
        }
        Ok(())
    }

    /// The total weight of the key indicators.
    pub fn total_weight(&self) -> f64 {
        self.ranking.indicators.iter().map(|k| k.weight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_file_is_the_defaults() {
        let sample = include_str!("../../../deploy/report-rules.toml");
        assert_eq!(Rules::parse(sample).unwrap(), Rules::default());
        assert_eq!(Rules::parse("").unwrap(), Rules::default());
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let r = Rules::parse("[ranking]\npraise_top = 5\n").unwrap();
        assert_eq!(r.ranking.praise_top, 5);
        assert_eq!(r.ranking.indicators, RankingRules::default().indicators);
        assert_eq!(r.double_continuous, DoubleContinuous::default());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let e = Rules::parse(
            "[[ranking.indicators]]\nindicator = \"within_15_days_rate\"\nbetter = \"higher\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("unknown indicator \"within_15_days_rate\"") && e.contains("indicator"),
            "{e}"
        );
        let e = Rules::parse("[ranking]\npraise_tops = 3\n").unwrap_err();
        assert!(e.contains("praise_tops"), "{e}");
        let e = Rules::parse(
            "[[ranking.indicators]]\nindicator = \"elimination_rate\"\nbetter = \"up\"\n",
        )
        .unwrap_err();
        assert!(e.contains("better") || e.contains("up"), "{e}");
        let e = Rules::parse(
            "[[ranking.indicators]]\nindicator = \"elimination_rate\"\nbetter = \"higher\"\n\
             weight = 0\n",
        )
        .unwrap_err();
        assert!(e.contains("ranking.indicators[0].weight"), "{e}");
        let e = Rules::parse(
            "[[ranking.indicators]]\nindicator = \"elimination_rate\"\nbetter = \"higher\"\n\
             red_line = 0.9\n[[ranking.indicators]]\nindicator = \"elimination_rate\"\n\
             better = \"lower\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("ranking.indicators[1].indicator") && e.contains("twice"),
            "{e}"
        );
        let e = Rules::parse("columns = [\"monitored_households{category=rich}\"]\n").unwrap_err();
        assert!(e.contains("category=rich") && e.contains("columns"), "{e}");
        let e = Rules::parse("[double_continuous]\nmonthly_praise_points = -1\n").unwrap_err();
        assert!(e.contains("double_continuous.monthly_praise_points"), "{e}");
    }

    #[test]
    fn indicators_with_dimensions_read_in_chinese() {
        let r = IndicatorRef::parse("monitored_households{category=marginal}").unwrap();
        assert_eq!(r.heading(), "监测户数·边缘易致贫户（户）");
        assert_eq!(r.to_string(), "monitored_households{category=marginal}");
        let r = IndicatorRef::parse("within_deadline_rate").unwrap();
        assert_eq!(r.heading(), "15日内认定率（%）");
        assert!(IndicatorRef::parse("signals{department=7}").is_ok());
        assert!(IndicatorRef::parse("signals{department=31}").is_err());
        assert!(IndicatorRef::parse("signals{source=department").is_err());
    }
}
