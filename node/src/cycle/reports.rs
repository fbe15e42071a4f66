//! Building a report: which figures it fetches ([`build`]), the weekly statistics and the
//! monthly notification, and the tables every report shares (a period's statistics of every
//! region, a trend, a period against the one before, a ranking and its verdicts).

use jiff::civil::Date;

use super::document::{Cell, Document, Mark, Section};
use super::figures::{Figures, Source};
use super::notification::{rank, Ranking, Verdict};
use super::rules::{Better, IndicatorRef, Method, Rules};
use super::{date_zh, period_zh, CycleError, ReportKind};
use crate::division::Code;
use crate::period::{Kind, Period};
use crate::regions::Scope;
use crate::stats::Value;

/// What report to make.
#[derive(Clone, Debug)]
pub struct Request {
    /// Which report.
    pub kind: ReportKind,
    /// Its period (of the report's kind).
    pub period: Period,
    /// The division it is about (`None`: the node's own).
    pub division: Option<Code>,
    /// Its regions: the division's children, or every division at a level below it.
    pub scope: Scope,
    /// The day it is made (China): the notifications of periods not yet over are not counted.
    pub made: Date,
}

/// Fetch what `req` needs from `src` and build the report.
pub fn build(req: &Request, rules: &Rules, src: &mut dyn Source) -> Result<Document, CycleError> {
    let p = req.kind.check_period(req.period)?;
    if req.scope == Scope::Only {
        return Err(CycleError::Invalid(
            "a report covers the regions below a division: their children or a level".into(),
        ));
    }
    let (own, regions) = runs(req.kind, p);
    let figures = Figures::gather(src, req.division, req.scope, &own, &regions)?;
    match req.kind {
        ReportKind::Weekly => weekly(&figures, p, rules, req.made),
        ReportKind::Monthly => monthly(&figures, p, rules, req.made),
        ReportKind::Quarterly => super::summaries::quarterly(&figures, p, rules, req.made),
        ReportKind::Half => super::summaries::half(&figures, p, rules, req.made),
        ReportKind::Annual => super::summaries::annual(&figures, p, rules, req.made),
    }
}

type Run = (Period, Period);

/// The runs of periods a report fetches: the division's own, and its regions'.
pub fn runs(kind: ReportKind, p: Period) -> (Vec<Run>, Vec<Run>) {
    let within = |k: Kind| {
        let ps = Period::covering(k, p.first_day(), p.last_day());
        (ps[0], ps[ps.len() - 1])
    };
    match kind {
        ReportKind::Weekly => (vec![(p.prev(), p)], vec![(p, p)]),
        ReportKind::Monthly => (vec![(p, p)], vec![(p.prev(), p)]),
        ReportKind::Quarterly => (
            vec![(p, p), within(Kind::Month)],
            vec![(p.prev(), p), within(Kind::Month)],
        ),
        ReportKind::Half => (
            vec![(p.prev(), p), within(Kind::Month)],
            vec![(p, p), within(Kind::Month), within(Kind::Quarter)],
        ),
        ReportKind::Annual => (
            vec![(p.prev(), p), within(Kind::Month), within(Kind::Quarter)],
            vec![(p, p), within(Kind::Month), within(Kind::Quarter)],
        ),
    }
}

/// The title and the lines under it.
pub fn heading(figures: &Figures, kind: ReportKind, p: Period, made: Date) -> Document {
    let name = figures.name(figures.division);
    Document {
        title: format!("{name}防返贫动态监测{}（{}）", kind.zh(), period_zh(p)),
        lines: vec![
            format!("地区：{name}（{}）", figures.division),
            format!(
                "统计期间：{}至{}",
                date_zh(p.first_day()),
                date_zh(p.last_day())
            ),
            format!("下级地区：{}个", figures.members.len()),
            format!("制表日期：{}", date_zh(made)),
        ],
        sections: Vec::new(),
    }
}

/// 周统计: every region's figures for the week, and the division's week against the last.
pub fn weekly(
    figures: &Figures,
    p: Period,
    rules: &Rules,
    made: Date,
) -> Result<Document, CycleError> {
    let mut doc = heading(figures, ReportKind::Weekly, p, made);
    doc.sections
        .push(region_table("本周统计", figures, p, &rules.columns)?);
    doc.sections.push(compare_table(
        "较上周变化",
        figures,
        (p, "本周"),
        (p.prev(), "上周"),
        &rules.columns,
    )?);
    Ok(doc)
}

/// 月度通报: the regions ranked, the praised and the criticised (with a note when it is the
/// second month in a row), and every region's figures for the month.
pub fn monthly(
    figures: &Figures,
    p: Period,
    rules: &Rules,
    made: Date,
) -> Result<Document, CycleError> {
    let mut doc = heading(figures, ReportKind::Monthly, p, made);
    let this = rank(&rules.ranking, p, &figures.regions_at(p)?);
    let last = rank(&rules.ranking, p.prev(), &figures.regions_at(p.prev())?);
    doc.sections.push(ranking_table(
        "综合排名",
        figures,
        &this,
        Some((&last, "上月排名")),
        rules,
    )?);
    doc.sections
        .push(verdict_table("表扬和批评", figures, &this, Some(&last)));
    doc.sections
        .push(region_table("本月统计", figures, p, &rules.columns)?);
    Ok(doc)
}

/// The columns of an indicator table: headings with units.
fn headings(columns: &[IndicatorRef]) -> impl Iterator<Item = String> + '_ {
    columns.iter().map(IndicatorRef::heading)
}

/// Every region's figures for `p`, then the division's (合计).
pub fn region_table(
    heading: &str,
    figures: &Figures,
    p: Period,
    columns: &[IndicatorRef],
) -> Result<Section, CycleError> {
    let mut s = Section::new(
        heading,
        ["代码".to_string(), "地区".to_string()]
            .into_iter()
            .chain(headings(columns))
            .collect(),
    );
    let row = |d: Code, name: String| -> Result<Vec<Cell>, CycleError> {
        let ind = figures.get(d, p)?;
        Ok([Cell::text(d.to_string()), Cell::text(name)]
            .into_iter()
            .chain(columns.iter().map(|c| Cell::of(c.value(ind))))
            .collect())
    };
    for m in &figures.members {
        s.push(row(*m, figures.name(*m))?, Mark::None);
    }
    let d = figures.division;
    s.push(row(d, format!("合计（{}）", figures.name(d)))?, Mark::Total);
    Ok(s)
}

/// The division over `periods`, one row each.
pub fn trend_table(
    heading: &str,
    figures: &Figures,
    periods: &[Period],
    columns: &[IndicatorRef],
) -> Result<Section, CycleError> {
    let mut s = Section::new(
        heading,
        std::iter::once("期间".to_string())
            .chain(headings(columns))
            .collect(),
    );
    for p in periods {
        let ind = figures.get(figures.division, *p)?;
        s.push(
            std::iter::once(Cell::text(period_zh(*p)))
                .chain(columns.iter().map(|c| Cell::of(c.value(ind))))
                .collect(),
            Mark::None,
        );
    }
    Ok(s)
}

/// The division in `this` against `before`, one row per indicator, with the change (a rate's
/// in percentage points).
pub fn compare_table(
    heading: &str,
    figures: &Figures,
    (this, this_label): (Period, &str),
    (before, before_label): (Period, &str),
    columns: &[IndicatorRef],
) -> Result<Section, CycleError> {
    let now = figures.get(figures.division, this)?;
    let then = figures.get(figures.division, before)?;
    let mut s = Section::new(
        heading,
        vec![
            "指标".into(),
            "单位".into(),
            format!("{this_label}（{}）", period_zh(this)),
            format!("{before_label}（{}）", period_zh(before)),
            "增减".into(),
        ],
    );
    for c in columns {
        let (a, b) = (c.value(now), c.value(then));
        let change = match (a, b) {
            (Some(Value::Count(a)), Some(Value::Count(b))) => Cell::Int(a - b),
            (Some(Value::Fen(a)), Some(Value::Fen(b))) => Cell::Yuan(a - b),
            (Some(Value::Ratio(Some(a))), Some(Value::Ratio(Some(b)))) => {
                Cell::Decimal(Some((a - b) * 100.0))
            }
            (Some(Value::Average(Some(a))), Some(Value::Average(Some(b)))) => {
                Cell::Decimal(Some(a - b))
            }
            _ => Cell::Decimal(None),
        };
        s.push(
            vec![
                Cell::text(c.zh()),
                Cell::text(c.label().unit_zh),
                Cell::of(a),
                Cell::of(b),
                change,
            ],
            Mark::None,
        );
    }
    s.notes
        .push("率的增减以百分点计；“—”表示无数据（如分母为零）。".into());
    Ok(s)
}

/// How a ranking was made, in Chinese (the note under every ranking).
pub fn ranking_note(rules: &Rules) -> Vec<String> {
    let r = &rules.ranking;
    let keys: Vec<String> = r
        .indicators
        .iter()
        .map(|k| {
            let mut s = format!(
                "{}（{}，权重{}",
                k.indicator.zh(),
                match k.better {
                    Better::Higher => "越高越好",
                    Better::Lower => "越低越好",
                },
                trim(k.weight)
            );
            if let Some(l) = k.red_line {
                let unit = k.indicator.label().unit_zh;
                s.push_str(&format!(
                    "，{}{}{}即批评",
                    match k.better {
                        Better::Higher => "低于",
                        Better::Lower => "高于",
                    },
                    trim(l),
                    if unit == "%" { "%" } else { unit }
                ));
            }
            s.push('）');
            s
        })
        .collect();
    let mut notes = vec![
        format!("排名指标：{}。", keys.join("、")),
        match r.method {
            Method::Rank => "指标得分按名次折算：第一名100分，末名0分，其间等距，并列者取其名次得分的平均。",
            Method::Range => "指标得分按数值折算：最好者100分，最差者0分，其间按数值线性折算。",
        }
        .to_string(),
        format!(
            "综合得分为各指标得分的加权平均（只计有数据的指标；有数据指标的权重不足总权重的{}%者不参与排名）。",
            trim(r.min_weight_share * 100.0)
        ),
        format!(
            "综合排名前{}名予以表扬{}，后{}名予以批评{}；所有地区得分相同时不表扬、不批评。",
            r.praise_top,
            r.praise_min_score
                .map(|s| format!("（综合得分不低于{}分）", trim(s)))
                .unwrap_or_default(),
            r.criticise_bottom,
            r.criticise_max_score
                .map(|s| format!("（综合得分不高于{}分）", trim(s)))
                .unwrap_or_default()
        ),
    ];
    let d = &rules.double_continuous;
    notes.push(format!(
        "双连续：连续两个月受到表扬的，平时考核加{}分；连续两个月受到批评的，扣{}分；连续两个季度受到表扬或批评的，年终考核加{}分或扣{}分。",
        trim(d.monthly_praise_points),
        trim(d.monthly_criticism_points),
        trim(d.quarterly_praise_points),
        trim(d.quarterly_criticism_points)
    ));
    notes
}

/// A number without needless decimals (30, 0.5, 2.25).
pub fn trim(x: f64) -> String {
    let s = format!("{:.4}", super::document::round2(x * 100.0) / 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The ranking: place, region, composite score, each key indicator's figure and place, the
/// place in `previous` when given, the verdict, and the double continuous when `previous`
/// gave the same verdict.
pub fn ranking_table(
    heading: &str,
    figures: &Figures,
    ranking: &Ranking,
    previous: Option<(&Ranking, &str)>,
    rules: &Rules,
) -> Result<Section, CycleError> {
    let mut columns = vec![
        "排名".to_string(),
        "代码".into(),
        "地区".into(),
        "综合得分".into(),
    ];
    for k in &ranking.indicators {
        columns.push(k.indicator.heading());
        columns.push(format!("{}名次", k.indicator.zh()));
    }
    if let Some((_, label)) = previous {
        columns.push(label.to_string());
    }
    columns.push("通报结果".into());
    columns.push("备注".into());
    let mut s = Section::new(heading, columns);
    let place = |p: Option<u32>| p.map_or(Cell::text("—"), |p| Cell::Int(p.into()));
    for st in &ranking.standings {
        let ind = figures.get(st.division, ranking.period)?;
        let mut cells = vec![
            place(st.place),
            Cell::text(st.division.to_string()),
            Cell::text(figures.name(st.division)),
            Cell::Decimal(st.composite),
        ];
        for (j, k) in ranking.indicators.iter().enumerate() {
            cells.push(Cell::of(k.indicator.value(ind)));
            cells.push(place(st.places[j]));
        }
        if let Some((prev, _)) = previous {
            cells.push(place(prev.of(st.division).and_then(|p| p.place)));
        }
        cells.push(Cell::text(st.verdict.zh()));
        cells.push(Cell::text(
            previous
                .and_then(|(prev, _)| repeated(ranking, prev, st.division))
                .unwrap_or_default(),
        ));
        let mark = match st.verdict {
            Verdict::Praised => Mark::Praised,
            Verdict::Criticised => Mark::Criticised,
            _ => Mark::None,
        };
        s.push(cells, mark);
    }
    s.notes = ranking_note(rules);
    Ok(s)
}

/// "连续两个月受到表扬" when `division` had the same praise or criticism in `previous`.
fn repeated(this: &Ranking, previous: &Ranking, division: Code) -> Option<String> {
    let v = this.verdict(division);
    if !matches!(v, Verdict::Praised | Verdict::Criticised) || previous.verdict(division) != v {
        return None;
    }
    let unit = match this.period.kind() {
        Kind::Quarter => "季度",
        _ => "月",
    };
    Some(format!(
        "连续两个{unit}受到{}（{}、{}）",
        v.zh(),
        period_zh(previous.period),
        period_zh(this.period)
    ))
}

/// The praised, then the criticised, with the reasons.
pub fn verdict_table(
    heading: &str,
    figures: &Figures,
    ranking: &Ranking,
    previous: Option<&Ranking>,
) -> Section {
    let mut s = Section::new(
        heading,
        vec!["结果".into(), "代码".into(), "地区".into(), "理由".into()],
    );
    for (st, mark) in ranking
        .praised()
        .map(|st| (st, Mark::Praised))
        .chain(ranking.criticised().map(|st| (st, Mark::Criticised)))
    {
        let mut reasons = st.reasons.clone();
        if let Some(r) = previous.and_then(|prev| repeated(ranking, prev, st.division)) {
            reasons.push(r);
        }
        s.push(
            vec![
                Cell::text(st.verdict.zh()),
                Cell::text(st.division.to_string()),
                Cell::text(figures.name(st.division)),
                Cell::text(reasons.join("；")),
            ],
            mark,
        );
    }
    if s.rows.is_empty() {
        s.notes.push("本期无表扬、批评对象。".into());
    }
    s
}
