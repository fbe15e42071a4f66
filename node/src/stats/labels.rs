//! Indicators and their dimensions as people read them: Simplified Chinese (the command
//! center's language, the default) and English, with each indicator's unit. The identifiers
//! (`monitored_households`, `category=marginal`) stay the API's and the files'.

/// One indicator: its identifier, names and unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndicatorLabel {
    /// The identifier (SPEC.md).
    pub name: &'static str,
    /// Simplified Chinese.
    pub zh: &'static str,
    /// English.
    pub en: &'static str,
    /// The unit in Chinese (户, 人, 条, 元, %).
    pub unit_zh: &'static str,
}

const fn l(
    name: &'static str,
    zh: &'static str,
    en: &'static str,
    unit_zh: &'static str,
) -> IndicatorLabel {
    IndicatorLabel {
        name,
        zh,
        en,
        unit_zh,
    }
}

/// Every indicator a report shows, in report order.
pub const INDICATORS: &[IndicatorLabel] = &[
    l(
        "monitored_households",
        "监测户数",
        "monitored households",
        "户",
    ),
    l("monitored_persons", "监测人数", "monitored persons", "人"),
    l(
        "newly_identified",
        "新识别纳入户数",
        "newly identified households",
        "户",
    ),
    l(
        "eliminated",
        "风险消除户数",
        "households with risk eliminated",
        "户",
    ),
    l(
        "elimination_rate",
        "风险消除率",
        "risk elimination rate",
        "%",
    ),
    l(
        "declarations_received",
        "申报受理数",
        "declarations received",
        "件",
    ),
    l(
        "declarations_approved",
        "认定纳入数",
        "declarations approved",
        "件",
    ),
    l(
        "declarations_rejected",
        "未纳入数",
        "declarations rejected",
        "件",
    ),
    l(
        "identified_within_15_days",
        "15日内识别认定数",
        "identified within 15 days",
        "件",
    ),
    l(
        "within_deadline_rate",
        "15日内认定率",
        "identified within 15 days (rate)",
        "%",
    ),
    l(
        "green_channel_cases",
        "绿色通道认定数",
        "green-channel cases",
        "件",
    ),
    l("signals", "风险预警信息数", "risk signals", "条"),
    l("measures", "帮扶措施数", "assistance measures", "项"),
    l("measure_amount", "帮扶资金", "assistance funds", "元"),
    l(
        "measures_per_household",
        "户均帮扶措施数",
        "measures per household",
        "项/户",
    ),
    l("tickets_issued", "交办问题数", "tickets issued", "件"),
    l(
        "tickets_rectified",
        "已整改问题数",
        "tickets rectified",
        "件",
    ),
    l("tickets_closed", "已销号问题数", "tickets closed", "件"),
    l("tickets_open", "未销号问题数", "tickets open", "件"),
    l("tickets_overdue", "超期问题数", "tickets overdue", "件"),
    l(
        "ticket_clearance_rate",
        "清零率",
        "ticket clearance rate",
        "%",
    ),
    l("spot_checks_done", "抽查村数", "spot checks done", "村"),
];

/// The label of indicator `name`.
pub fn indicator(name: &str) -> Option<&'static IndicatorLabel> {
    INDICATORS.iter().find(|i| i.name == name)
}

/// A dimension of `indicator` in Chinese, in the SPEC's words: `total` → 合计,
/// `category=marginal` → 边缘易致贫户, `type=medical` → 医疗支出 for a signal and 医疗 for a
/// measure, `department=7` → 部门7; an unknown value is shown as it is.
pub fn dimension_zh(indicator: &str, dimension: &str) -> String {
    let signal = indicator.starts_with("signal");
    if dimension == "total" {
        return "合计".into();
    }
    let Some((kind, value)) = dimension.split_once('=') else {
        return dimension.into();
    };
    let named = match (kind, value) {
        ("category", "unstable_alleviated") => "脱贫不稳定户",
        ("category", "marginal") => "边缘易致贫户",
        ("category", "sudden_hardship") => "突发严重困难户",
        ("source", "self_declared") => "农户自主申报",
        ("source", "grid_check") => "网格员排查",
        ("source", "department") => "部门筛查预警",
        ("source", "data_comparison") => "数据比对",
        // Signal types and measure types share the dimension `type`: the SPEC's names differ.
        ("type", t) if signal => match t {
            "medical" => "医疗支出",
            "accident" => "意外事故",
            "labour" => "劳动力变化",
            "disaster" => "自然灾害",
            "education" => "教育支出",
            "housing" => "住房安全",
            "water" => "饮水安全",
            "unemployment" => "失业",
            "income_drop" => "收入骤减",
            _ => return dimension.into(),
        },
        ("type", t) => match t {
            "industry" => "产业",
            "employment" => "就业",
            "medical" => "医疗",
            "education" => "教育",
            "housing" => "住房",
            "social_assistance" => "社会救助",
            "special_fund" => "专项资金",
            "insurance" => "保险",
            "other" => "其他",
            _ => return dimension.into(),
        },
        ("department", n) => return format!("部门{n}"),
        ("result", "ok") => "未发现问题",
        ("result", "findings") => "发现问题",
        _ => return dimension.into(),
    };
    named.into()
}

/// A dimension in English: `total` → total, `category=marginal` → marginal.
pub fn dimension_en(dimension: &str) -> String {
    match dimension.split_once('=') {
        Some(("department", n)) => format!("department {n}"),
        Some((_, v)) => v.replace('_', " "),
        None => dimension.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indicator_a_report_shows_has_a_label() {
        let none = std::collections::BTreeMap::new();
        let code = crate::division::Code::parse("610102").unwrap();
        let period = crate::period::Period::parse("2026-11").unwrap();
        let ind = crate::stats::indicators(&none, code, period).unwrap();
        assert!(!ind.rows.is_empty());
        for row in &ind.rows {
            assert!(
                indicator(&row.indicator).is_some(),
                "no label for {}",
                row.indicator
            );
        }
    }

    #[test]
    fn dimensions_read_in_chinese() {
        assert_eq!(dimension_zh("monitored_households", "total"), "合计");
        assert_eq!(
            dimension_zh("monitored_households", "category=marginal"),
            "边缘易致贫户"
        );
        assert_eq!(dimension_zh("signals", "department=7"), "部门7");
        assert_eq!(dimension_zh("measures", "type=medical"), "医疗");
        assert_eq!(dimension_zh("signals", "type=medical"), "医疗支出");
        assert_eq!(dimension_zh("signals", "type=labour"), "劳动力变化");
        assert_eq!(dimension_en("source=grid_check"), "grid check");
    }
}
