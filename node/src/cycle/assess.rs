//! The double continuous (双连续) of a year: "those praised or criticised in two consecutive
//! monthly notifications get extra points or a deduction in the regular assessment (平时考核);
//! two consecutive quarters are reflected in the year-end assessment (年终考核)".
//!
//! For every region of the division: its **base score** is the mean of its composite scores
//! in the year's monthly notifications (those it was ranked in); each pair of consecutive
//! monthly notifications that both praised it adds `monthly_praise_points` to the regular
//! assessment, each pair that both criticised it deducts `monthly_criticism_points`; the
//! quarterly rankings likewise move the year-end result by the quarterly points. How a run of
//! three or more pairs up is [`Pairs`]. Only notifications of periods that are over count,
//! and pairs lie within the year. **Total** = base + regular + year-end. Every pair found is
//! kept with its evidence: the two notifications.

use jiff::civil::Date;

use super::document::{round2, Cell, Mark, Section};
use super::figures::{Figures, Source};
use super::notification::{Ranking, Verdict};
use super::reports::trim;
use super::rules::{DoubleContinuous, Pairs, Rules};
use super::summaries::{notified, rankings, within};
use super::{period_zh, CycleError};
use crate::division::Code;
use crate::period::{Kind, Period};
use crate::regions::Scope;

/// A pair of consecutive notifications with the same verdict, and its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Award {
    /// Monthly notifications (平时考核) or quarterly rankings (年终考核).
    pub kind: Kind,
    /// Praised or criticised.
    pub verdict: Verdict,
    /// The first notification's period.
    pub first: Period,
    /// The second's (the one after).
    pub second: Period,
    /// Points: positive added, negative deducted.
    pub points: f64,
}

impl Award {
    /// The assessment it counts in: 平时考核 or 年终考核.
    pub fn assessment(&self) -> &'static str {
        if self.kind == Kind::Quarter {
            "年终考核"
        } else {
            "平时考核"
        }
    }

    /// 连续两个月表扬, 连续两个季度批评.
    pub fn situation(&self) -> String {
        let unit = if self.kind == Kind::Quarter {
            "季度"
        } else {
            "月"
        };
        format!("连续两个{unit}{}", self.verdict.zh())
    }

    /// The notifications: 2026年3月通报表扬、2026年4月通报表扬.
    pub fn evidence(&self) -> String {
        let what = if self.kind == Kind::Quarter {
            "排名"
        } else {
            "通报"
        };
        format!(
            "{}{what}{}、{}{what}{}",
            period_zh(self.first),
            self.verdict.zh(),
            period_zh(self.second),
            self.verdict.zh()
        )
    }
}

/// One region's year.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionAssessment {
    /// The region.
    pub division: Code,
    /// Its verdict in each monthly notification of the year that is over.
    pub monthly: Vec<(Period, Verdict)>,
    /// Its verdict in each quarterly ranking that is over.
    pub quarterly: Vec<(Period, Verdict)>,
    /// The mean of its monthly composite scores (`None`: never ranked).
    pub base: Option<f64>,
    /// The pairs found, months first.
    pub awards: Vec<Award>,
    /// The regular assessment's points (平时考核).
    pub regular: f64,
    /// The year-end result's points (年终考核).
    pub year_end: f64,
    /// Base + regular + year-end (`None` without a base).
    pub total: Option<f64>,
    /// Its place on the total (1 = best; ties share the better place).
    pub place: Option<u32>,
}

/// A year's assessment of a division's regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// The year.
    pub year: i16,
    /// The division whose regions are assessed.
    pub division: Code,
    /// The monthly notifications counted.
    pub months: Vec<Period>,
    /// The quarterly rankings counted.
    pub quarters: Vec<Period>,
    /// The regions, by place (then code), the unplaced last.
    pub regions: Vec<RegionAssessment>,
}

/// The pairs of consecutive entries (indices) with the same praise or criticism.
pub fn pairs(verdicts: &[Verdict], how: Pairs) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < verdicts.len() {
        let v = verdicts[i];
        if matches!(v, Verdict::Praised | Verdict::Criticised) && verdicts[i + 1] == v {
            out.push((i, i + 1));
            i += match how {
                Pairs::Disjoint => 2,
                Pairs::Overlapping => 1,
            };
        } else {
            i += 1;
        }
    }
    out
}

/// The awards of one region from its verdicts in consecutive periods of one kind.
fn awards(rules: &DoubleContinuous, kind: Kind, verdicts: &[(Period, Verdict)]) -> Vec<Award> {
    let only: Vec<Verdict> = verdicts.iter().map(|(_, v)| *v).collect();
    pairs(&only, rules.pairs)
        .into_iter()
        .map(|(a, b)| {
            let verdict = verdicts[a].1;
            let points = match (kind, verdict) {
                (Kind::Quarter, Verdict::Praised) => rules.quarterly_praise_points,
                (Kind::Quarter, _) => -rules.quarterly_criticism_points,
                (_, Verdict::Praised) => rules.monthly_praise_points,
                _ => -rules.monthly_criticism_points,
            };
            Award {
                kind,
                verdict,
                first: verdicts[a].0,
                second: verdicts[b].0,
                points,
            }
        })
        .collect()
}

/// Assess `members` of `division` from the year's monthly and quarterly rankings (each in
/// period order, consecutive, only those that are over).
pub fn assess_rankings(
    rules: &DoubleContinuous,
    year: i16,
    division: Code,
    members: &[Code],
    months: &[Ranking],
    quarters: &[Ranking],
) -> Assessment {
    let mut regions: Vec<RegionAssessment> = members
        .iter()
        .map(|m| {
            let monthly: Vec<(Period, Verdict)> =
                months.iter().map(|r| (r.period, r.verdict(*m))).collect();
            let quarterly: Vec<(Period, Verdict)> =
                quarters.iter().map(|r| (r.period, r.verdict(*m))).collect();
            let scores: Vec<f64> = months
                .iter()
                .filter_map(|r| r.of(*m).and_then(|s| s.composite))
                .collect();
            let base =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            let mut found = awards(rules, Kind::Month, &monthly);
            found.extend(awards(rules, Kind::Quarter, &quarterly));
            let sum =
                |k: Kind| -> f64 { found.iter().filter(|a| a.kind == k).map(|a| a.points).sum() };
            let (regular, year_end) = (sum(Kind::Month), sum(Kind::Quarter));
            RegionAssessment {
                division: *m,
                monthly,
                quarterly,
                base,
                awards: found,
                regular,
                year_end,
                total: base.map(|b| b + regular + year_end),
                place: None,
            }
        })
        .collect();
    let key = |t: f64| (round2(t) * 100.0).round() as i64;
    let totals: Vec<i64> = regions.iter().filter_map(|r| r.total.map(key)).collect();
    for r in &mut regions {
        r.place = r
            .total
            .map(|t| totals.iter().filter(|o| **o > key(t)).count() as u32 + 1);
    }
    regions.sort_by_key(|r| (r.place.is_none(), r.place, r.division));
    Assessment {
        year,
        division,
        months: months.iter().map(|r| r.period).collect(),
        quarters: quarters.iter().map(|r| r.period).collect(),
        regions,
    }
}

/// Fetch the year's months and quarters of the regions (`scope` under `division`) from `src`
/// and assess them; `made` is today (China): only notifications of periods over count.
pub fn assess_year(
    src: &mut dyn Source,
    division: Option<Code>,
    scope: Scope,
    year: Period,
    made: Date,
    rules: &Rules,
) -> Result<(Assessment, Figures), CycleError> {
    if year.kind() != Kind::Year {
        return Err(CycleError::Invalid(format!(
            "--year: an assessment is of a year (2026), not {year}"
        )));
    }
    let months = within(year, Kind::Month);
    let quarters = within(year, Kind::Quarter);
    let run = |ps: &[Period]| (ps[0], ps[ps.len() - 1]);
    let figures = Figures::gather(
        src,
        division,
        scope,
        &[(year, year)],
        &[run(&months), run(&quarters)],
    )?;
    let due = |ps: Vec<Period>| -> Vec<Period> {
        ps.into_iter().filter(|p| notified(*p, made)).collect()
    };
    let monthly = rankings(&figures, &due(months), rules)?;
    let quarterly = rankings(&figures, &due(quarters), rules)?;
    let a = assess_rankings(
        &rules.double_continuous,
        year.year(),
        figures.division,
        &figures.members,
        &monthly,
        &quarterly,
    );
    Ok((a, figures))
}

fn short(p: Period) -> String {
    const Q: [&str; 4] = ["一", "二", "三", "四"];
    match p.kind() {
        Kind::Quarter => format!("{}季度", Q[usize::from(p.index().clamp(1, 4)) - 1]),
        _ => format!("{}月", p.index()),
    }
}

fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", trim(x))
    } else {
        trim(x)
    }
}

impl Assessment {
    /// The assessment as two tables: every region's year, and the pairs with their evidence.
    pub fn sections(&self, figures: &Figures) -> Vec<Section> {
        let name = |c: Code| figures.name(c);
        let mut columns = vec![
            "名次".to_string(),
            "代码".into(),
            "地区".into(),
            "基础分（月均综合得分）".into(),
        ];
        columns.extend(self.months.iter().map(|p| short(*p)));
        columns.extend(self.quarters.iter().map(|p| short(*p)));
        columns.extend([
            "平时考核加减分".to_string(),
            "年终考核加减分".into(),
            "总分".into(),
        ]);
        let mut table = Section::new(format!("{}年度考核（双连续）", self.year), columns);
        let mut evidence = Section::new(
            "双连续依据",
            vec![
                "代码".into(),
                "地区".into(),
                "考核".into(),
                "情形".into(),
                "依据".into(),
                "加减分".into(),
            ],
        );
        for r in &self.regions {
            let mut cells = vec![
                r.place.map_or(Cell::text("—"), |p| Cell::Int(p.into())),
                Cell::text(r.division.to_string()),
                Cell::text(name(r.division)),
                Cell::Decimal(r.base),
            ];
            cells.extend(r.monthly.iter().map(|(_, v)| Cell::text(v.zh())));
            cells.extend(r.quarterly.iter().map(|(_, v)| Cell::text(v.zh())));
            cells.extend([
                Cell::Decimal(Some(r.regular)),
                Cell::Decimal(Some(r.year_end)),
                Cell::Decimal(r.total),
            ]);
            let mark = match (r.regular + r.year_end).partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => Mark::Praised,
                Some(std::cmp::Ordering::Less) => Mark::Criticised,
                _ => Mark::None,
            };
            table.push(cells, mark);
            for a in &r.awards {
                evidence.push(
                    vec![
                        Cell::text(r.division.to_string()),
                        Cell::text(name(r.division)),
                        Cell::text(a.assessment()),
                        Cell::text(a.situation()),
                        Cell::text(a.evidence()),
                        Cell::Decimal(Some(a.points)),
                    ],
                    if a.points >= 0.0 {
                        Mark::Praised
                    } else {
                        Mark::Criticised
                    },
                );
            }
        }
        table.notes.push(format!(
            "计入{}个月度通报、{}个季度排名（期末已过者）；总分 = 基础分 + 平时考核加减分 + 年终考核加减分。",
            self.months.len(),
            self.quarters.len()
        ));
        if evidence.rows.is_empty() {
            evidence
                .notes
                .push("本年度无连续两月（两季度）受到表扬或批评的地区。".into());
        }
        vec![table, evidence]
    }

    /// The assessment as text for a terminal: the table, then each region's pairs with their
    /// evidence.
    pub fn text(&self, figures: &Figures) -> String {
        let sections = self.sections(figures);
        let mut out = format!(
            "{}{}年度考核（双连续）：{}个下级地区，{}个月度通报，{}个季度排名\n\n",
            figures.name(self.division),
            self.year,
            self.regions.len(),
            self.months.len(),
            self.quarters.len()
        );
        let t = &sections[0];
        let header: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| r.cells.iter().map(Cell::display).collect())
            .collect();
        out.push_str(&crate::report::table(&header, &rows));
        out.push_str("\n双连续依据：\n");
        let mut any = false;
        for r in &self.regions {
            for a in &r.awards {
                any = true;
                out.push_str(&format!(
                    "  {} {}：{}（{}）→ {} {}分\n",
                    r.division,
                    figures.name(r.division),
                    a.situation(),
                    a.evidence(),
                    a.assessment(),
                    signed(a.points)
                ));
            }
        }
        if !any {
            out.push_str("  （无）\n");
        }
        for n in &t.notes {
            out.push_str(&format!("\n{n}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Verdict::{Criticised as C, Neither as N, Praised as P};

    #[test]
    fn runs_pair_up_disjoint_or_overlapping() {
        let v = [P, P, P, N, C, C, P, P, P, P];
        assert_eq!(
            pairs(&v, Pairs::Disjoint),
            vec![(0, 1), (4, 5), (6, 7), (8, 9)]
        );
        assert_eq!(
            pairs(&v, Pairs::Overlapping),
            vec![(0, 1), (1, 2), (4, 5), (6, 7), (7, 8), (8, 9)]
        );
        assert!(pairs(&[P, N, P, C, P], Pairs::Disjoint).is_empty());
        assert!(pairs(&[Verdict::Unranked, Verdict::Unranked], Pairs::Disjoint).is_empty());
    }

    #[test]
    fn evidence_names_the_notifications() {
        let a = Award {
            kind: Kind::Month,
            verdict: P,
            first: Period::parse("2026-03").unwrap(),
            second: Period::parse("2026-04").unwrap(),
            points: 1.0,
        };
        assert_eq!(a.evidence(), "2026年3月通报表扬、2026年4月通报表扬");
        assert_eq!(
            (a.situation().as_str(), a.assessment()),
            ("连续两个月表扬", "平时考核")
        );
        let q = Award {
            kind: Kind::Quarter,
            verdict: C,
            first: Period::parse("2026-Q1").unwrap(),
            second: Period::parse("2026-Q2").unwrap(),
            points: -2.0,
        };
        assert_eq!(
            q.evidence(),
            "2026年第一季度排名批评、2026年第二季度排名批评"
        );
        assert_eq!(q.assessment(), "年终考核");
        assert_eq!(signed(q.points), "-2");
    }
}
