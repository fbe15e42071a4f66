//! The work cycle's reports and the double continuous (issue #18 points 2, 3 and 4): rankings,
//! verdicts and scores on hand-built figures with hand-computed expectations; the same report
//! from hand-built cells, from a node's ledger and over gRPC; the CSV, HTML and XLSX of one
//! report, the XLSX opened by LibreOffice (headless) and converted back to CSV with the same
//! figures as the CSV report.

mod common;

use std::path::{Path, PathBuf};

use bottomline::cells::Replica;
use bottomline::cycle::document::Document;
use bottomline::cycle::export::{self, Format};
use bottomline::cycle::figures::{LedgerSource, MemorySource, RpcSource};
use bottomline::cycle::notification::Verdict;
use bottomline::cycle::reports::Request;
use bottomline::cycle::{self, assess_year, ReportKind, Rules};
use bottomline::division::{Code, Division};
use bottomline::domain::MeasureType;
use bottomline::period::Period;
use bottomline::regions::Scope;
use bottomline::stats::Stored;
use jiff::civil::{date, Date};

fn code(s: &str) -> Code {
    common::code(s)
}

fn p(s: &str) -> Period {
    Period::parse(s).expect("period")
}

/// The province 61 and five cities, no figures yet.
fn province() -> MemorySource {
    MemorySource::new(
        code("61"),
        &[
            ("61", "陕西省"),
            ("6101", "西安市"),
            ("6102", "铜川市"),
            ("6103", "宝鸡市"),
            ("6104", "咸阳市"),
            ("6105", "渭南市"),
        ],
    )
    .expect("divisions")
}

/// `approved` identifications decided on `day` at `city`, `within` of them within 15 days.
fn cases(src: &mut MemorySource, city: &str, day: Date, approved: i64, within: i64) {
    src.add(code(city), day, Stored::CasesApproved, 0, approved);
    src.add(code(city), day, Stored::IdentifiedWithin15Days, 0, within);
}

/// `n` tickets of `city` turned overdue on `day` (a stock from then on).
fn overdue(src: &mut MemorySource, city: &str, day: Date, n: i64) {
    src.add(code(city), day, Stored::TicketsOverdue, 0, n);
}

const NOTIFICATION_RULES: &str = r#"
columns = ["identified_within_15_days", "within_deadline_rate", "tickets_overdue", "measure_amount"]
[ranking]
praise_top = 2
criticise_bottom = 1
[[ranking.indicators]]
indicator = "within_deadline_rate"
better = "higher"
weight = 50
red_line = 85
[[ranking.indicators]]
indicator = "tickets_overdue"
better = "lower"
weight = 50
"#;

/// February and March 2026 of five cities (the figures of the hand computation below).
fn february_and_march() -> MemorySource {
    let mut src = province();
    let feb = date(2026, 2, 10);
    // February: rates 100 %, 50 %, 90 %, 80 %, none; no overdue ticket anywhere.
    for (city, within) in [("6101", 10), ("6102", 5), ("6103", 9), ("6104", 8)] {
        cases(&mut src, city, feb, 10, within);
    }
    let mar = date(2026, 3, 10);
    // March: rates 100 %, 90 %, 80 %, 50 %, none; overdue 0, 1, 0, 3, 2.
    for (city, within) in [("6101", 10), ("6102", 9), ("6103", 8), ("6104", 5)] {
        cases(&mut src, city, mar, 10, within);
    }
    for (city, n) in [("6102", 1), ("6104", 3), ("6105", 2)] {
        overdue(&mut src, city, mar, n);
    }
    let industry = MeasureType::ALL[0].code();
    src.add(code("6101"), mar, Stored::MeasureAmount, industry, 123_456);
    src
}

fn request(kind: ReportKind, period: &str, made: Date) -> Request {
    Request {
        kind,
        period: p(period),
        division: None,
        scope: Scope::Children,
        made,
    }
}

fn section<'a>(doc: &'a Document, heading: &str) -> &'a bottomline::cycle::document::Section {
    doc.sections
        .iter()
        .find(|s| s.heading == heading)
        .unwrap_or_else(|| panic!("no section {heading} in {}", doc.title))
}

fn rows(doc: &Document, heading: &str) -> Vec<Vec<String>> {
    section(doc, heading).text_rows()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

// Hand computation, March (rank scores; weights 50/50):
//   15日内认定率 100, 90, 80, 50 (6105 none): scores 100, 66.67, 33.33, 0; places 1, 2, 3, 4.
//   超期 0, 1, 0, 3, 2 (lower better): 6101 and 6103 tie first: (3 worse + 0.5) / 4 = 87.5;
//     6102 50, 6105 25, 6104 0; places 1, 3, 1, 5, 4.
//   composite: 6101 93.75, 6102 58.33, 6103 60.42, 6104 0, 6105 25 (one indicator: half the
//   weight, enough). Places 6101, 6103, 6102, 6105, 6104.
//   Praised: top 2 without a red line crossed: 6101 (6103 is below 85 %). Criticised: the last
//   (6104, also below 85 %) and 6103 (below 85 %).
// February: rates 100, 50, 90, 80; overdue all 0 (50 each): composite 6101 75, 6103 58.33,
//   6105 50, 6104 41.67, 6102 25: praised 6101, 6103; criticised 6102 (last, 50 %), 6104 (80 %).
#[test]
fn the_monthly_notification_ranks_praises_and_criticises_as_computed_by_hand() {
    let rules = Rules::parse(NOTIFICATION_RULES).expect("rules");
    let mut src = february_and_march();
    let doc = cycle::build(
        &request(ReportKind::Monthly, "2026-03", date(2026, 4, 2)),
        &rules,
        &mut src,
    )
    .expect("report");
    assert_eq!(doc.title, "陕西省防返贫动态监测月度通报（2026年3月）");
    assert!(doc
        .lines
        .contains(&"统计期间：2026年3月1日至2026年3月31日".to_string()));
    assert_eq!(
        rows(&doc, "综合排名"),
        strings(&[
            &[
                "排名",
                "代码",
                "地区",
                "综合得分",
                "15日内认定率（%）",
                "15日内认定率名次",
                "超期问题数（件）",
                "超期问题数名次",
                "上月排名",
                "通报结果",
                "备注"
            ],
            &[
                "1",
                "6101",
                "西安市",
                "93.75",
                "100.00%",
                "1",
                "0",
                "1",
                "1",
                "表扬",
                "连续两个月受到表扬（2026年2月、2026年3月）"
            ],
            &[
                "2",
                "6103",
                "宝鸡市",
                "60.42",
                "80.00%",
                "3",
                "0",
                "1",
                "2",
                "批评",
                ""
            ],
            &[
                "3",
                "6102",
                "铜川市",
                "58.33",
                "90.00%",
                "2",
                "1",
                "3",
                "5",
                "—",
                ""
            ],
            &[
                "4",
                "6105",
                "渭南市",
                "25.00",
                "—",
                "—",
                "2",
                "4",
                "3",
                "—",
                ""
            ],
            &[
                "5",
                "6104",
                "咸阳市",
                "0.00",
                "50.00%",
                "4",
                "3",
                "5",
                "4",
                "批评",
                "连续两个月受到批评（2026年2月、2026年3月）"
            ],
        ])
    );
    assert_eq!(
        rows(&doc, "表扬和批评"),
        strings(&[
            &["结果", "代码", "地区", "理由"],
            &[
                "表扬",
                "6101",
                "西安市",
                "综合得分93.75分，排名第1；连续两个月受到表扬（2026年2月、2026年3月）"
            ],
            &[
                "批评",
                "6103",
                "宝鸡市",
                "15日内认定率80.00%，低于85.00%的要求"
            ],
            &[
                "批评",
                "6104",
                "咸阳市",
                "综合得分0.00分，排名倒数第1；15日内认定率50.00%，低于85.00%的要求；\
                 连续两个月受到批评（2026年2月、2026年3月）"
            ],
        ])
    );
    // Every region's month, then the province (money in yuan to the cent).
    assert_eq!(
        rows(&doc, "本月统计"),
        strings(&[
            &[
                "代码",
                "地区",
                "15日内识别认定数（件）",
                "15日内认定率（%）",
                "超期问题数（件）",
                "帮扶资金（元）"
            ],
            &["6101", "西安市", "10", "100.00%", "0", "1234.56"],
            &["6102", "铜川市", "9", "90.00%", "1", "0.00"],
            &["6103", "宝鸡市", "8", "80.00%", "0", "0.00"],
            &["6104", "咸阳市", "5", "50.00%", "3", "0.00"],
            &["6105", "渭南市", "0", "—", "2", "0.00"],
            &["61", "合计（陕西省）", "32", "80.00%", "6", "1234.56"],
        ])
    );
    let notes = &section(&doc, "综合排名").notes;
    assert!(
        notes[0].contains("15日内认定率（越高越好，权重50，低于85%即批评）"),
        "{notes:?}"
    );
}

#[test]
fn the_range_method_scores_by_value() {
    // Same March, scored by value: 15日内认定率 100, 90, 80, 50 → 100, 80, 60, 0;
    // 超期 0, 1, 0, 3, 2 → 100, 66.67, 100, 0, 33.33. Composite: 6101 100, 6102 73.33,
    // 6103 80, 6104 0, 6105 33.33.
    let rules =
        Rules::parse(&NOTIFICATION_RULES.replace("[ranking]\n", "[ranking]\nmethod = \"range\"\n"))
            .expect("rules");
    let mut src = february_and_march();
    let doc = cycle::build(
        &request(ReportKind::Monthly, "2026-03", date(2026, 4, 2)),
        &rules,
        &mut src,
    )
    .expect("report");
    let got: Vec<(String, String)> = rows(&doc, "综合排名")[1..]
        .iter()
        .map(|r| (r[1].clone(), r[3].clone()))
        .collect();
    let want = [
        ("6101", "100.00"),
        ("6103", "80.00"),
        ("6102", "73.33"),
        ("6105", "33.33"),
        ("6104", "0.00"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
}

#[test]
fn the_weekly_statistics_compare_the_week_with_the_last() {
    let rules = Rules::parse(NOTIFICATION_RULES).expect("rules");
    let mut src = february_and_march();
    // 2026-03-10 is in 2026-W11 (9 to 15 March); nothing happened in W10.
    let doc = cycle::build(
        &request(ReportKind::Weekly, "2026-W11", date(2026, 3, 16)),
        &rules,
        &mut src,
    )
    .expect("report");
    assert_eq!(doc.title, "陕西省防返贫动态监测周统计（2026年第11周）");
    assert_eq!(
        rows(&doc, "较上周变化"),
        strings(&[
            &[
                "指标",
                "单位",
                "本周（2026年第11周）",
                "上周（2026年第10周）",
                "增减"
            ],
            &["15日内识别认定数", "件", "32", "0", "32"],
            &["15日内认定率", "%", "80.00%", "—", "—"],
            &["超期问题数", "件", "6", "0", "6"],
            &["帮扶资金", "元", "1234.56", "0.00", "1234.56"],
        ])
    );
    assert_eq!(rows(&doc, "本周统计").len(), 1 + 5 + 1);
}

#[test]
fn bad_requests_are_refused_naming_the_field() {
    let rules = Rules::default();
    let mut src = province();
    let e = cycle::build(
        &request(ReportKind::Monthly, "2026-W11", date(2026, 4, 2)),
        &rules,
        &mut src,
    )
    .expect_err("a week is not a month");
    assert!(e.to_string().contains("--period"), "{e}");
    let e = assess_year(
        &mut src,
        None,
        Scope::Children,
        p("2026-03"),
        date(2026, 4, 2),
        &rules,
    )
    .expect_err("a month is not a year");
    assert!(e.to_string().contains("--year"), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[ranking.indicators]]\nindicator = \"overdue\"\nbetter = \"lower\"\n",
    )
    .expect("write");
    let e = Rules::load(Some(&path)).expect_err("unknown indicator");
    let e = e.to_string();
    assert!(
        e.contains("rules.toml") && e.contains("unknown indicator \"overdue\""),
        "{e}"
    );
}

/// A year of three cities: identifications within 15 days out of 10 each month.
fn a_year() -> MemorySource {
    let mut src = MemorySource::new(
        code("61"),
        &[
            ("61", "陕西省"),
            ("6101", "西安市"),
            ("6102", "铜川市"),
            ("6103", "宝鸡市"),
        ],
    )
    .expect("divisions");
    //               Jan Feb Mar Apr May  Jun…Nov  Dec
    let a = [10, 10, 10, 5, 8, 8, 8, 8, 8, 8, 8, 0];
    let b = [8, 8, 5, 10, 10, 8, 8, 8, 8, 8, 8, 10];
    let c = [5, 5, 8, 8, 5, 8, 8, 8, 8, 8, 8, 10];
    for (city, within) in [("6101", a), ("6102", b), ("6103", c)] {
        for (m, w) in within.iter().enumerate() {
            cases(&mut src, city, date(2026, m as i8 + 1, 15), 10, *w);
        }
    }
    src
}

const ONE_KEY: &str = r#"
[ranking]
praise_top = 1
criticise_bottom = 1
[[ranking.indicators]]
indicator = "within_deadline_rate"
better = "higher"
"#;

// Hand computation, as of 5 December 2026 (January to November notified; Q1 to Q3):
//   monthly verdicts (P praised, C criticised, - neither; June to November all equal):
//     6101 P P P C - - - - - - -    6102 - - C P P - …    6103 C C - - C - …
//   disjoint pairs: 6101 Jan–Feb praised +1; 6102 Apr–May praised +1; 6103 Jan–Feb criticised −1.
//   quarters: Q1 100 %, 70 %, 60 % → 6101 P, 6103 C; Q2 70 %, 93.33 %, 70 % → 6102 P, 6101 and
//     6103 tie last → C; Q3 all equal. 6103 Q1–Q2 criticised: year-end −2.
//   base = mean monthly score (100 best, 50 middle or all equal, 0 worst):
//     6101 (100+100+100+0+50+6×50)/11 = 650/11 = 59.09; 6102 600/11 = 54.55; 6103 400/11 = 36.36.
//   totals: 6101 60.09, 6102 55.55, 6103 33.36.
#[test]
fn double_continuous_pairs_consecutive_notifications_as_computed_by_hand() {
    let rules = Rules::parse(ONE_KEY).expect("rules");
    let mut src = a_year();
    let (a, figures) = assess_year(
        &mut src,
        None,
        Scope::Children,
        p("2026"),
        date(2026, 12, 5),
        &rules,
    )
    .expect("assessment");
    assert_eq!(a.months.len(), 11, "December is not over");
    assert_eq!(a.quarters, vec![p("2026-Q1"), p("2026-Q2"), p("2026-Q3")]);
    let order: Vec<String> = a.regions.iter().map(|r| r.division.to_string()).collect();
    assert_eq!(order, ["6101", "6102", "6103"]);
    use Verdict::{Criticised as C, Neither as N, Praised as P};
    let monthly = |i: usize| -> Vec<Verdict> { a.regions[i].monthly.iter().map(|v| v.1).collect() };
    assert_eq!(monthly(0), [P, P, P, C, N, N, N, N, N, N, N]);
    assert_eq!(monthly(1), [N, N, C, P, P, N, N, N, N, N, N]);
    assert_eq!(monthly(2), [C, C, N, N, C, N, N, N, N, N, N]);
    let quarterly =
        |i: usize| -> Vec<Verdict> { a.regions[i].quarterly.iter().map(|v| v.1).collect() };
    assert_eq!(quarterly(0), [P, C, N]);
    assert_eq!(quarterly(1), [N, P, N]);
    assert_eq!(quarterly(2), [C, C, N]);
    let close = |x: Option<f64>, y: f64| x.is_some_and(|x| (x - y).abs() < 1e-9);
    let r = &a.regions;
    assert!(close(r[0].base, 650.0 / 11.0) && close(r[0].total, 650.0 / 11.0 + 1.0));
    assert!(close(r[1].base, 600.0 / 11.0) && close(r[1].total, 600.0 / 11.0 + 1.0));
    assert!(close(r[2].base, 400.0 / 11.0) && close(r[2].total, 400.0 / 11.0 - 3.0));
    assert_eq!((r[0].regular, r[0].year_end), (1.0, 0.0));
    assert_eq!((r[2].regular, r[2].year_end), (-1.0, -2.0));
    let evidence: Vec<String> = r[2].awards.iter().map(|a| a.evidence()).collect();
    assert_eq!(
        evidence,
        [
            "2026年1月通报批评、2026年2月通报批评",
            "2026年第一季度排名批评、2026年第二季度排名批评"
        ]
    );
    assert_eq!(
        r.iter().map(|r| r.place).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );

    // What `bottomline assess` prints: the table and each pair with its notifications.
    let text = a.text(&figures);
    assert!(
        text.contains(
            "6103 宝鸡市：连续两个月批评（2026年1月通报批评、2026年2月通报批评）→ 平时考核 -1分"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "6101 西安市：连续两个月表扬（2026年1月通报表扬、2026年2月通报表扬）→ 平时考核 +1分"
        ),
        "{text}"
    );
    assert!(text.contains("年终考核 -2分"), "{text}");
    let table = &a.sections(&figures)[0];
    assert_eq!(
        table.text_rows()[3],
        [
            "3",
            "6103",
            "宝鸡市",
            "36.36",
            "批评",
            "批评",
            "—",
            "—",
            "批评",
            "—",
            "—",
            "—",
            "—",
            "—",
            "—",
            "批评",
            "批评",
            "—",
            "-1.00",
            "-2.00",
            "33.36"
        ]
    );

    // Overlapping pairs: 6101's January–March is two pairs.
    let overlapping = Rules::parse(&format!(
        "{ONE_KEY}\n[double_continuous]\npairs = \"overlapping\"\n"
    ))
    .expect("rules");
    let (b, _) = assess_year(
        &mut src,
        None,
        Scope::Children,
        p("2026"),
        date(2026, 12, 5),
        &overlapping,
    )
    .expect("assessment");
    assert_eq!(b.regions[0].regular, 2.0);
    // A year that is over: December counts (6101 last, criticised; 6102 and 6103 praised).
    let (c, _) = assess_year(
        &mut src,
        None,
        Scope::Children,
        p("2026"),
        date(2027, 1, 5),
        &rules,
    )
    .expect("assessment");
    assert_eq!((c.months.len(), c.quarters.len()), (12, 4));
}

#[test]
fn every_report_of_the_cycle_builds_and_the_annual_one_carries_the_assessment() {
    let rules = Rules::parse(ONE_KEY).expect("rules");
    let mut src = a_year();
    let made = date(2026, 12, 5);
    for (kind, period) in [
        (ReportKind::Quarterly, "2026-Q2"),
        (ReportKind::Half, "2026-H1"),
        (ReportKind::Annual, "2026"),
    ] {
        let doc = cycle::build(&request(kind, period, made), &rules, &mut src).expect("report");
        assert!(doc.title.contains(kind.zh()), "{}", doc.title);
        for s in &doc.sections {
            for r in &s.rows {
                assert_eq!(r.cells.len(), s.columns.len(), "{}", s.heading);
            }
        }
    }
    let q = cycle::build(
        &request(ReportKind::Quarterly, "2026-Q2", made),
        &rules,
        &mut src,
    )
    .expect("quarterly");
    // Q2: 6102 first (93.33 %), 6101 and 6103 tie last (70 %) and are criticised.
    assert_eq!(
        rows(&q, "季度排名")[1..]
            .iter()
            .map(|r| format!("{} {} {}", r[0], r[1], r[7]))
            .collect::<Vec<_>>(),
        ["1 6102 表扬", "2 6101 批评", "2 6103 批评"]
    );
    assert_eq!(
        rows(&q, "月度通报情况")[1],
        ["6101", "西安市", "批评", "—", "—", "0", "1"]
    );
    // Over the year: the months as a trend, the year against 2025, the assessment.
    let y =
        cycle::build(&request(ReportKind::Annual, "2026", made), &rules, &mut src).expect("annual");
    let trend = rows(&y, "逐月趋势");
    assert_eq!(trend.len(), 13);
    assert_eq!(trend[1][0], "2026年1月");
    let (a, figures) =
        assess_year(&mut src, None, Scope::Children, p("2026"), made, &rules).expect("assessment");
    let sections = a.sections(&figures);
    assert_eq!(section(&y, "2026年度考核（双连续）"), &sections[0]);
    assert_eq!(section(&y, "双连续依据"), &sections[1]);
    assert_eq!(
        rows(&y, "月度通报情况")[1][13],
        "未通报",
        "December is not over on 5 December"
    );
}

/// The cells of `src` under `city`, as the city's node sends them up.
fn replicas_of(src: &MemorySource, city: Code) -> Vec<Replica> {
    src.cells
        .iter()
        .filter(|(k, _)| city.contains(k.division))
        .map(|(k, v)| Replica {
            key: *k,
            value: *v,
            version: 1,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gives_the_same_report_from_its_ledger_and_over_grpc() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = february_and_march();
    let node = common::start(tmp.path(), "61", None, true, "").await;
    let ledger = node.handle.ledger.clone();
    let divisions: Vec<Division> = src.names.iter().cloned().collect();
    ledger.put_divisions(&divisions).expect("registry");
    for city in ["6101", "6102", "6103", "6104", "6105"] {
        let cells = replicas_of(&src, code(city));
        let n = cells.len() as u64;
        ledger
            .apply_replicas(code(city), &cells, n, n)
            .expect("replicas");
    }
    let rules = Rules::parse(NOTIFICATION_RULES).expect("rules");
    let made = date(2026, 4, 2);
    let mut by_hand = src.clone();
    let addr = node.addr.clone().expect("listens");
    for (kind, period) in [
        (ReportKind::Weekly, "2026-W11"),
        (ReportKind::Monthly, "2026-03"),
        (ReportKind::Quarterly, "2026-Q1"),
        (ReportKind::Annual, "2026"),
    ] {
        let req = request(kind, period, made);
        let want = cycle::build(&req, &rules, &mut by_hand).expect("by hand");
        let from_ledger =
            cycle::build(&req, &rules, &mut LedgerSource::new(&ledger)).expect("from the ledger");
        assert_eq!(from_ledger, want, "{kind} from the ledger");
        let (addr, rules, req) = (addr.clone(), rules.clone(), req.clone());
        let over_grpc = tokio::task::spawn_blocking(move || {
            let mut rpc = RpcSource::new(addr, None)?;
            cycle::build(&req, &rules, &mut rpc)
        })
        .await
        .expect("task")
        .expect("over gRPC");
        assert_eq!(over_grpc, want, "{kind} over gRPC");
    }
    // The counties' level of a province without counties: no regions, still a report.
    let mut req = request(ReportKind::Monthly, "2026-03", made);
    req.scope = Scope::Level(bottomline::division::Level::County);
    let doc = cycle::build(&req, &rules, &mut LedgerSource::new(&ledger)).expect("report");
    assert_eq!(rows(&doc, "综合排名").len(), 1);
    common::stop(node).await;
}

/// LibreOffice's `soffice`, if installed.
fn soffice() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| [d.join("soffice"), d.join("libreoffice")])
            .find(|p| p.is_file())
    })
}

/// The sections of a CSV report: heading → its lines (column headings and rows), trailing
/// empty fields dropped.
fn csv_sections(text: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let body = text
        .strip_prefix('\u{feff}')
        .expect("the CSV starts with a BOM");
    let mut out = Vec::new();
    for block in body.split("\r\n\r\n").skip(1) {
        let lines = parse_csv(block);
        let Some((heading, rest)) = lines.split_first() else {
            continue;
        };
        if heading[0] == "说明" {
            continue;
        }
        out.push((heading[0].clone(), rest.to_vec()));
    }
    out
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    r.records()
        .map(|rec| {
            let mut fields: Vec<String> = rec.expect("CSV").iter().map(String::from).collect();
            while fields.last().is_some_and(|f| f.is_empty()) {
                fields.pop();
            }
            fields
        })
        .filter(|f| !f.is_empty())
        .collect()
}

/// Convert every sheet of `xlsx` to CSV with LibreOffice (headless); the files it wrote.
fn libreoffice_csv(soffice: &Path, xlsx: &Path, out: &Path) -> Vec<PathBuf> {
    let profile = out.join("profile");
    let run = std::process::Command::new("timeout")
        .arg("300")
        .arg(soffice)
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args(["--headless", "--norestore", "--convert-to"])
        // Comma, double quotes, UTF-8, from line 1, cells as shown, every sheet (-1).
        .arg("csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1")
        .arg("--outdir")
        .arg(out)
        .arg(xlsx)
        .output()
        .expect("run soffice");
    assert!(
        run.status.success(),
        "soffice failed ({}): {}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("outdir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_xlsx_opens_in_libreoffice_with_the_figures_of_the_csv() {
    let rules = Rules::parse(NOTIFICATION_RULES).expect("rules");
    let mut src = february_and_march();
    let doc = cycle::build(
        &request(ReportKind::Monthly, "2026-03", date(2026, 4, 2)),
        &rules,
        &mut src,
    )
    .expect("report");
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("通报.csv");
    let xlsx_path = dir.path().join("report.xlsx");
    let html_path = dir.path().join("通报.html");
    export::write_file(&doc, Format::Csv, &csv_path).expect("csv");
    export::write_file(&doc, Format::Xlsx, &xlsx_path).expect("xlsx");
    export::write_file(&doc, Format::Html, &html_path).expect("html");

    let csv_text = std::fs::read_to_string(&csv_path).expect("read csv");
    assert!(csv_text.starts_with("\u{feff}陕西省防返贫动态监测月度通报（2026年3月）\r\n"));
    let sections = csv_sections(&csv_text);
    let headings: Vec<&str> = sections.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(headings, ["综合排名", "表扬和批评", "本月统计"]);
    assert!(csv_text.contains("6101,西安市,10,100.00%,0,1234.56\r\n"));
    let html = std::fs::read_to_string(&html_path).expect("read html");
    assert!(html.contains("<h2>综合排名</h2>") && html.contains("<td class=\"n\">1234.56</td>"));
    assert!(!html.contains("<link") && !html.contains("src="));

    let Some(soffice) = soffice() else {
        println!(
            "SKIP: LibreOffice is not installed (Debian package libreoffice-calc-nogui): the \
             XLSX was not opened"
        );
        return;
    };
    let out = dir.path().join("converted");
    std::fs::create_dir_all(&out).expect("outdir");
    let files = libreoffice_csv(&soffice, &xlsx_path, &out);
    for (heading, lines) in &sections {
        let file = files
            .iter()
            .find(|f| {
                f.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.ends_with(&format!("-{heading}")))
            })
            .unwrap_or_else(|| panic!("no CSV of sheet {heading} among {files:?}"));
        let converted = parse_csv(&std::fs::read_to_string(file).expect("converted"));
        assert_eq!(&converted, lines, "sheet {heading}");
    }
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("-说明.csv")),
        "{files:?}"
    );
}
