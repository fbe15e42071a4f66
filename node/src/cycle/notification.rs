//! The monthly notification (月度通报) and the quarterly ranking: the regions of one period
//! ranked on the key indicators of the rules, a composite score, and who is praised (表扬)
//! and who criticised (批评). Pure: indicators in, a [`Ranking`] out.
//!
//! For each key indicator, the regions with a figure (a rate needs a denominator) get a
//! score from 0 to 100 ([`Method`]), and a place (1 = best; tied regions share the better
//! place, "1, 2, 2, 4"). The composite score is the weighted mean of the scores a region has,
//! over the weights of those indicators; a region whose indicators with a figure carry less
//! than `min_weight_share` of the total weight is not ranked (不参与排名). Composite scores
//! are compared at 4 decimals, so equal figures are equal places.
//!
//! Praised: ranked among the first `praise_top` places (ties at the edge included), some
//! region placed below it, at least `praise_min_score` when set, and no red line crossed.
//! Criticised: on the wrong side of a key indicator's red line, whatever its place; or not
//! praised, ranked among the last `criticise_bottom` places, some region placed above it, at
//! most `criticise_max_score` when set. All regions equal: nobody praised or criticised for
//! the rank.

use crate::division::Code;
use crate::period::Period;
use crate::stats::Indicators;

use super::rules::{Better, KeyIndicator, Method, RankingRules};

/// The outcome of one notification for one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// 表扬.
    Praised,
    /// 批评.
    Criticised,
    /// Ranked, neither praised nor criticised.
    Neither,
    /// Not ranked (too few figures), and no red line crossed.
    Unranked,
}

impl Verdict {
    /// In Chinese: 表扬, 批评, —, 不参与排名.
    pub fn zh(self) -> &'static str {
        match self {
            Verdict::Praised => "表扬",
            Verdict::Criticised => "批评",
            Verdict::Neither => "—",
            Verdict::Unranked => "不参与排名",
        }
    }
}

/// One region's place in a ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// The region.
    pub division: Code,
    /// Per key indicator (in the rules' order): the figure as people read it (percent for a
    /// rate, yuan for money), `None` without one.
    pub figures: Vec<Option<f64>>,
    /// Per key indicator: the score 0–100.
    pub scores: Vec<Option<f64>>,
    /// Per key indicator: the place (1 = best).
    pub places: Vec<Option<u32>>,
    /// The composite score (`None`: not ranked).
    pub composite: Option<f64>,
    /// The place on the composite score (1 = best).
    pub place: Option<u32>,
    /// The place counted from the worst (1 = worst).
    pub place_from_bottom: Option<u32>,
    /// Praised, criticised, neither, or not ranked.
    pub verdict: Verdict,
    /// Why (in Chinese), for a praise or a criticism.
    pub reasons: Vec<String>,
}

/// The regions of one period ranked.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranking {
    /// The period.
    pub period: Period,
    /// The key indicators, in the rules' order.
    pub indicators: Vec<KeyIndicator>,
    /// Ranked regions by place (then code), then the unranked ones by code.
    pub standings: Vec<Standing>,
}

impl Ranking {
    /// The standing of `division`, if it is in the ranking.
    pub fn of(&self, division: Code) -> Option<&Standing> {
        self.standings.iter().find(|s| s.division == division)
    }

    /// The verdict on `division` (`Unranked` when it is not in the ranking).
    pub fn verdict(&self, division: Code) -> Verdict {
        self.of(division).map_or(Verdict::Unranked, |s| s.verdict)
    }

    /// The praised regions, by place.
    pub fn praised(&self) -> impl Iterator<Item = &Standing> {
        self.standings
            .iter()
            .filter(|s| s.verdict == Verdict::Praised)
    }

    /// The criticised regions, by place.
    pub fn criticised(&self) -> impl Iterator<Item = &Standing> {
        self.standings
            .iter()
            .filter(|s| s.verdict == Verdict::Criticised)
    }
}

/// Scores compared at 4 decimals.
fn key(score: f64) -> i64 {
    (score * 10_000.0).round() as i64
}

/// Places (1 = best, ties share the better place) and scores (0–100) of the figures of one
/// indicator; `None` in, `None` out.
pub fn score_indicator(
    figures: &[Option<f64>],
    better: Better,
    method: Method,
) -> (Vec<Option<u32>>, Vec<Option<f64>>) {
    // Oriented so that more is better.
    let oriented: Vec<Option<f64>> = figures
        .iter()
        .map(|f| {
            f.map(|v| match better {
                Better::Higher => v,
                Better::Lower => -v,
            })
        })
        .collect();
    let known: Vec<f64> = oriented.iter().flatten().copied().collect();
    let n = known.len();
    let mut places = Vec::with_capacity(figures.len());
    let mut scores = Vec::with_capacity(figures.len());
    let (lo, hi) = known
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    for v in &oriented {
        let Some(v) = *v else {
            places.push(None);
            scores.push(None);
            continue;
        };
        let k = key(v);
        let better_ones = known.iter().filter(|o| key(**o) > k).count();
        let worse_ones = known.iter().filter(|o| key(**o) < k).count();
        let tied = n - better_ones - worse_ones; // itself included
        places.push(Some(better_ones as u32 + 1));
        let score = match method {
            _ if n == 1 => 50.0,
            Method::Rank => {
                100.0 * (worse_ones as f64 + (tied as f64 - 1.0) / 2.0) / (n - 1) as f64
            }
            Method::Range if key(hi) == key(lo) => 50.0,
            Method::Range => 100.0 * (v - lo) / (hi - lo),
        };
        scores.push(Some(score));
    }
    (places, scores)
}

/// Rank `regions` (one period's indicators each) by `rules`.
pub fn rank(rules: &RankingRules, period: Period, regions: &[&Indicators]) -> Ranking {
    let ks = &rules.indicators;
    let total_weight: f64 = ks.iter().map(|k| k.weight).sum();
    let figures: Vec<Vec<Option<f64>>> = regions
        .iter()
        .map(|ind| ks.iter().map(|k| k.indicator.figure(ind)).collect())
        .collect();
    // Per indicator, across regions.
    let mut places = vec![vec![None; ks.len()]; regions.len()];
    let mut scores = vec![vec![None; ks.len()]; regions.len()];
    for (j, k) in ks.iter().enumerate() {
        let column: Vec<Option<f64>> = figures.iter().map(|f| f[j]).collect();
        let (p, s) = score_indicator(&column, k.better, rules.method);
        for i in 0..regions.len() {
            places[i][j] = p[i];
            scores[i][j] = s[i];
        }
    }
    let composite: Vec<Option<f64>> = scores
        .iter()
        .map(|s| {
            let (mut sum, mut weight) = (0.0, 0.0);
            for (score, k) in s.iter().zip(ks) {
                if let Some(score) = score {
                    sum += score * k.weight;
                    weight += k.weight;
                }
            }
            (weight > 0.0 && weight >= rules.min_weight_share * total_weight - 1e-9)
                .then(|| sum / weight)
        })
        .collect();
    let ranked: Vec<i64> = composite.iter().flatten().map(|c| key(*c)).collect();
    let mut standings: Vec<Standing> = regions
        .iter()
        .enumerate()
        .map(|(i, ind)| {
            let c = composite[i];
            let above = c.map(|c| ranked.iter().filter(|o| **o > key(c)).count() as u32);
            let below = c.map(|c| ranked.iter().filter(|o| **o < key(c)).count() as u32);
            let breaches = red_lines(ks, &figures[i]);
            let place = above.map(|a| a + 1);
            let from_bottom = below.map(|b| b + 1);
            let score_ok = |limit: Option<f64>, at_least: bool| match (limit, c) {
                (None, _) => true,
                (Some(l), Some(c)) => {
                    if at_least {
                        key(c) >= key(l)
                    } else {
                        key(c) <= key(l)
                    }
                }
                (Some(_), None) => false,
            };
            let praised = breaches.is_empty()
                && place.is_some_and(|p| p <= rules.praise_top)
                && below.is_some_and(|b| b > 0)
                && score_ok(rules.praise_min_score, true);
            let criticised_for_rank = !praised
                && from_bottom.is_some_and(|p| p <= rules.criticise_bottom)
                && above.is_some_and(|a| a > 0)
                && score_ok(rules.criticise_max_score, false);
            let mut reasons = Vec::new();
            let verdict = if praised {
                reasons.push(format!(
                    "综合得分{:.2}分，排名第{}",
                    c.unwrap_or_default(),
                    place.unwrap_or_default()
                ));
                Verdict::Praised
            } else if criticised_for_rank || !breaches.is_empty() {
                if criticised_for_rank {
                    reasons.push(format!(
                        "综合得分{:.2}分，排名倒数第{}",
                        c.unwrap_or_default(),
                        from_bottom.unwrap_or_default()
                    ));
                }
                reasons.extend(breaches);
                Verdict::Criticised
            } else if c.is_some() {
                Verdict::Neither
            } else {
                Verdict::Unranked
            };
            Standing {
                division: ind.division,
                figures: figures[i].clone(),
                scores: scores[i].clone(),
                places: places[i].clone(),
                composite: c,
                place,
                place_from_bottom: from_bottom,
                verdict,
                reasons,
            }
        })
        .collect();
    standings.sort_by_key(|s| (s.place.is_none(), s.place, s.division));
    Ranking {
        period,
        indicators: ks.clone(),
        standings,
    }
}

/// The red lines a region's figures cross, as reasons in Chinese.
fn red_lines(ks: &[KeyIndicator], figures: &[Option<f64>]) -> Vec<String> {
    ks.iter()
        .zip(figures)
        .filter_map(|(k, f)| {
            let (line, v) = (k.red_line?, (*f)?);
            let unit = k.indicator.label().unit_zh;
            let shown = |x: f64| {
                if unit == "%" {
                    format!("{x:.2}%")
                } else if unit == "元" {
                    format!("{x:.2}元")
                } else {
                    format!("{}{unit}", trim_number(x))
                }
            };
            match k.better {
                Better::Higher if key(v) < key(line) => Some(format!(
                    "{}{}，低于{}的要求",
                    k.indicator.zh(),
                    shown(v),
                    shown(line)
                )),
                Better::Lower if key(v) > key(line) => Some(format!(
                    "{}{}，超过{}的上限",
                    k.indicator.zh(),
                    shown(v),
                    shown(line)
                )),
                _ => None,
            }
        })
        .collect()
}

/// A count without decimals, another number with up to 2.
fn trim_number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::rules::{IndicatorRef, KeyIndicator};

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn rank_scores_share_tied_places() {
        // 90, 80, 80, 70 (higher better): places 1, 2, 2, 4; scores 100, 50, 50, 0.
        let f = [Some(90.0), Some(80.0), Some(80.0), Some(70.0), None];
        let (p, s) = score_indicator(&f, Better::Higher, Method::Rank);
        assert_eq!(p, vec![Some(1), Some(2), Some(2), Some(4), None]);
        assert!(close(s[0], 100.0) && close(s[1], 50.0) && close(s[2], 50.0));
        assert!(close(s[3], 0.0) && s[4].is_none());
        // Lower is better: 0 overdue is first.
        let (p, s) = score_indicator(
            &[Some(3.0), Some(0.0), Some(1.0)],
            Better::Lower,
            Method::Rank,
        );
        assert_eq!(p, vec![Some(3), Some(1), Some(2)]);
        assert!(close(s[0], 0.0) && close(s[1], 100.0) && close(s[2], 50.0));
        // All tied: 50 each.
        let (_, s) = score_indicator(&[Some(1.0), Some(1.0)], Better::Higher, Method::Rank);
        assert!(close(s[0], 50.0) && close(s[1], 50.0));
    }

    #[test]
    fn range_scores_follow_the_values() {
        let f = [Some(100.0), Some(75.0), Some(0.0)];
        let (_, s) = score_indicator(&f, Better::Higher, Method::Range);
        assert!(close(s[0], 100.0) && close(s[1], 75.0) && close(s[2], 0.0));
        let (_, s) = score_indicator(&f, Better::Lower, Method::Range);
        assert!(close(s[0], 0.0) && close(s[1], 25.0) && close(s[2], 100.0));
    }

    #[test]
    fn red_lines_read_in_chinese() {
        let k = KeyIndicator {
            indicator: IndicatorRef::parse("within_deadline_rate").unwrap(),
            better: Better::Higher,
            weight: 1.0,
            red_line: Some(90.0),
        };
        let o = KeyIndicator {
            indicator: IndicatorRef::parse("tickets_overdue").unwrap(),
            better: Better::Lower,
            weight: 1.0,
            red_line: Some(2.0),
        };
        assert_eq!(
            red_lines(&[k.clone(), o.clone()], &[Some(85.0), Some(3.0)]),
            vec![
                "15日内认定率85.00%，低于90.00%的要求".to_string(),
                "超期问题数3件，超过2件的上限".to_string()
            ]
        );
        assert!(red_lines(&[k, o], &[Some(90.0), None]).is_empty());
    }
}
