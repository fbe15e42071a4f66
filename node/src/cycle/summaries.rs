//! The quarterly scheduling (季度调度), the half-year summary (半年小结) and the annual
//! summary (年度总结): a period's figures of every region, the division's months (and
//! quarters) as a trend, the period against the one before, the notifications of its months
//! and the rankings of its quarters, and at the year's end the assessment (双连续).
//!
//! A notification is counted once its period is over (its last day before the day the report
//! is made); the others show 未通报.

use jiff::civil::Date;

use super::assess::assess_rankings;
use super::document::{Cell, Document, Mark, Section};
use super::figures::Figures;
use super::notification::{rank, Ranking, Verdict};
use super::reports::{
    compare_table, heading, ranking_table, region_table, trend_table, verdict_table,
};
use super::rules::Rules;
use super::{period_zh, CycleError, ReportKind};
use crate::period::{Kind, Period};

/// The periods of `kind` within `p`.
pub fn within(p: Period, kind: Kind) -> Vec<Period> {
    Period::covering(kind, p.first_day(), p.last_day())
}

/// True when the notification of `p` is due by `made` (the period is over).
pub fn notified(p: Period, made: Date) -> bool {
    p.last_day() < made
}

/// The rankings of the regions for each of `periods`.
pub fn rankings(
    figures: &Figures,
    periods: &[Period],
    rules: &Rules,
) -> Result<Vec<Ranking>, CycleError> {
    periods
        .iter()
        .map(|p| Ok(rank(&rules.ranking, *p, &figures.regions_at(*p)?)))
        .collect()
}

/// Each region's verdict in each of `rankings` (未通报 for a period not yet over), with the
/// number of praises and criticisms.
pub fn notifications_table(
    heading: &str,
    figures: &Figures,
    rankings: &[Ranking],
    made: Date,
) -> Section {
    let mut columns = vec!["代码".to_string(), "地区".into()];
    columns.extend(rankings.iter().map(|r| period_zh(r.period)));
    columns.push("表扬次数".into());
    columns.push("批评次数".into());
    let mut s = Section::new(heading, columns);
    for m in &figures.members {
        let mut cells = vec![Cell::text(m.to_string()), Cell::text(figures.name(*m))];
        let (mut praised, mut criticised) = (0, 0);
        for r in rankings {
            if !notified(r.period, made) {
                cells.push(Cell::text("未通报"));
                continue;
            }
            let v = r.verdict(*m);
            praised += i64::from(v == Verdict::Praised);
            criticised += i64::from(v == Verdict::Criticised);
            cells.push(Cell::text(v.zh()));
        }
        cells.push(Cell::Int(praised));
        cells.push(Cell::Int(criticised));
        s.push(cells, Mark::None);
    }
    s
}

/// 季度调度: the quarter's ranking (against the quarter before) and its verdicts, the
/// notifications of its months, every region's figures, the division's months.
pub fn quarterly(
    figures: &Figures,
    p: Period,
    rules: &Rules,
    made: Date,
) -> Result<Document, CycleError> {
    let mut doc = heading(figures, ReportKind::Quarterly, p, made);
    let this = rank(&rules.ranking, p, &figures.regions_at(p)?);
    let last = rank(&rules.ranking, p.prev(), &figures.regions_at(p.prev())?);
    doc.sections.push(ranking_table(
        "季度排名",
        figures,
        &this,
        Some((&last, "上季度排名")),
        rules,
    )?);
    doc.sections
        .push(verdict_table("季度表扬和批评", figures, &this, Some(&last)));
    let months = within(p, Kind::Month);
    doc.sections.push(notifications_table(
        "月度通报情况",
        figures,
        &rankings(figures, &months, rules)?,
        made,
    ));
    doc.sections
        .push(region_table("季度统计", figures, p, &rules.columns)?);
    doc.sections
        .push(trend_table("逐月情况", figures, &months, &rules.columns)?);
    Ok(doc)
}

/// 半年小结: every region's figures for the half, the division's months, the half against
/// the one before, the notifications of its months and the rankings of its quarters.
pub fn half(
    figures: &Figures,
    p: Period,
    rules: &Rules,
    made: Date,
) -> Result<Document, CycleError> {
    let mut doc = heading(figures, ReportKind::Half, p, made);
    let months = within(p, Kind::Month);
    let quarters = within(p, Kind::Quarter);
    doc.sections
        .push(region_table("半年统计", figures, p, &rules.columns)?);
    doc.sections
        .push(trend_table("逐月趋势", figures, &months, &rules.columns)?);
    doc.sections.push(compare_table(
        "较上半年",
        figures,
        (p, "本期"),
        (p.prev(), "上期"),
        &rules.columns,
    )?);
    doc.sections.push(notifications_table(
        "月度通报情况",
        figures,
        &rankings(figures, &months, rules)?,
        made,
    ));
    doc.sections.push(notifications_table(
        "季度排名情况",
        figures,
        &rankings(figures, &quarters, rules)?,
        made,
    ));
    Ok(doc)
}

/// 年度总结: every region's figures for the year, the division's months and quarters, the
/// year against the one before, the notifications and quarterly rankings, and the year's
/// assessment with its evidence.
pub fn annual(
    figures: &Figures,
    p: Period,
    rules: &Rules,
    made: Date,
) -> Result<Document, CycleError> {
    let mut doc = heading(figures, ReportKind::Annual, p, made);
    let months = within(p, Kind::Month);
    let quarters = within(p, Kind::Quarter);
    let monthly = rankings(figures, &months, rules)?;
    let quarterly = rankings(figures, &quarters, rules)?;
    doc.sections
        .push(region_table("年度统计", figures, p, &rules.columns)?);
    doc.sections
        .push(trend_table("逐月趋势", figures, &months, &rules.columns)?);
    doc.sections
        .push(trend_table("逐季趋势", figures, &quarters, &rules.columns)?);
    doc.sections.push(compare_table(
        "较上年",
        figures,
        (p, "本年"),
        (p.prev(), "上年"),
        &rules.columns,
    )?);
    doc.sections
        .push(notifications_table("月度通报情况", figures, &monthly, made));
    doc.sections.push(notifications_table(
        "季度排名情况",
        figures,
        &quarterly,
        made,
    ));
    let due = |rs: Vec<Ranking>| -> Vec<Ranking> {
        rs.into_iter()
            .filter(|r| notified(r.period, made))
            .collect()
    };
    let assessment = assess_rankings(
        &rules.double_continuous,
        p.year(),
        figures.division,
        &figures.members,
        &due(monthly),
        &due(quarterly),
    );
    doc.sections.extend(assessment.sections(figures));
    Ok(doc)
}
