//! The monthly notification of a Shaanxi-size province (issue #18 point 5): the 107 counties
//! ranked on every key indicator, target ≤ 100 ms from a warm node.
//!
//! Setup (shared with `region_report` through `common`): one realistic county (610102,
//! `bottomline gen`, a year of events up to 4 December 2026) is generated and imported; its
//! upward cells, scaled per county, are the figures of the 107 counties of a Shaanxi-shaped
//! tree (10 cities), applied at a province store as the sync applies them. Each county also
//! gets tickets of its own (issued in March, some closed in June, some overdue since October),
//! so that every default key indicator — 15日内认定率, 风险消除率, 清零率, 超期问题数 — has
//! figures that differ between counties. A province node then runs on that store in this
//! process (plaintext).
//!
//! Measured `BENCH_ROUNDS` times (default 200), p50 / p99 / max in ms, for the notification of
//! 2026-11 with `--level county`:
//! - **warm**: `cycle::build` on the node's ledger (the indicators of 107 counties for
//!   November and October and the province's from the cache, both rankings, the document),
//!   alone and with each writer (HTML, CSV, XLSX);
//! - **every indicator**: the same with all 21 indicators' totals as key indicators;
//! - **one county changed**: before each round one county's replica changes (as a child's
//!   batch applies it), so that county's, its city's and the province's indicators are
//!   computed again;
//! - **over gRPC**: what `bottomline report --addr` does past its start: two `Report` calls
//!   (the province, the counties for October–November) on fresh connections, the ranking
//!   and the XLSX;
//! - **assessment**: `assess_year` for 2026 of the 107 counties (12 months and 4 quarters:
//!   1 712 indicators, more than the cache's 1 024).
//!
//! Prints one JSON object on stdout and a summary on stderr; never fails on a target. Run with
//! `cargo bench -p bottomline --bench notification`; `BENCH_HOUSEHOLDS=N` for a smaller
//! county (default: realistic).

use std::time::Instant;

use bottomline::cells::Replica;
use bottomline::cycle::export::{self, Format};
use bottomline::cycle::figures::{LedgerSource, RpcSource};
use bottomline::cycle::reports::Request;
use bottomline::cycle::{self, ReportKind, Rules};
use bottomline::division::{Code, Level};
use bottomline::period::Period;
use bottomline::regions::Scope;
use bottomline::stats::{CellKey, Stored};
use jiff::civil::date;
use serde_json::json;

mod common;
use common::{env_or, percentile, prepare_node, shaanxi_counties, Res};

fn summary(mut xs: Vec<f64>) -> serde_json::Value {
    xs.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "p50_ms": r(percentile(&xs, 0.5)),
        "p99_ms": r(percentile(&xs, 0.99)),
        "max_ms": r(xs.last().copied().unwrap_or(f64::NAN)),
    })
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

/// Tickets of the county with index `i`: issued in March, some closed in June, some overdue
/// since October (in every period containing those days, as the ticket cells are counted).
fn tickets(county: Code, i: usize) -> Vec<(CellKey, i64)> {
    let mut out = Vec::new();
    let issued = 20 + (i % 13) as i64;
    let closed = 8 + (i * 7 % 11) as i64;
    let overdue = (i * 3 % 5) as i64;
    for (day, indicator, n) in [
        (date(2026, 3, 15), Stored::TicketsIssued, issued),
        (date(2026, 6, 15), Stored::TicketsClosed, closed),
        (date(2026, 10, 10), Stored::TicketsOverdue, overdue),
    ] {
        for period in Period::all_containing(day) {
            out.push((
                CellKey {
                    division: county,
                    period,
                    indicator,
                    dim: 0,
                },
                n,
            ));
        }
    }
    out
}

/// Every indicator's total as a key indicator (a rate or a stock of tickets lower is better
/// only for the overdue and open tickets).
fn every_indicator() -> Res<Rules> {
    let mut toml = String::new();
    for l in bottomline::stats::labels::INDICATORS {
        let better = if matches!(l.name, "tickets_overdue" | "tickets_open") {
            "lower"
        } else {
            "higher"
        };
        toml.push_str(&format!(
            "[[ranking.indicators]]\nindicator = \"{}\"\nbetter = \"{better}\"\n",
            l.name
        ));
    }
    Ok(Rules::parse(&toml)?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let rounds: usize = env_or("BENCH_ROUNDS", 200);
    let households: u32 = env_or("BENCH_HOUSEHOLDS", 0);
    let tmp = tempfile::tempdir()?;
    eprintln!("notification: generating and importing county 610102 …");
    let template = common::county_template(tmp.path(), 7, households, date(2026, 12, 4))?;
    eprintln!(
        "  {} cells travel up from the county; building the province …",
        template.len()
    );
    let nodes = tmp.path().join("nodes");
    let t = Instant::now();
    let mut positions = common::shaanxi_province(&nodes, &template, &tickets)?;
    eprintln!("  province built in {:.1} s", t.elapsed().as_secs_f64());
    let province = prepare_node(&nodes, Code::parse("61")?, None, true, None)
        .await?
        .run();
    let ledger = province.handle.ledger.clone();

    let rules = Rules::default();
    let all = every_indicator()?;
    let req = Request {
        kind: ReportKind::Monthly,
        period: Period::parse("2026-11")?,
        division: None,
        scope: Scope::Level(Level::County),
        made: date(2026, 12, 5),
    };
    let build = |rules: &Rules| {
        cycle::build(&req, rules, &mut LedgerSource::new(&ledger)).expect("notification")
    };
    // Warm the cache, and check the notification is what it should be.
    let doc = build(&rules);
    let ranked = doc.sections[0].rows.len();
    let praised = doc.sections[1].rows.len();
    assert_eq!(ranked, 107, "every county ranked");
    let verdicts: Vec<String> = doc.sections[1]
        .rows
        .iter()
        .map(|r| r.cells[0].display())
        .collect();
    eprintln!("  {ranked} counties ranked; verdicts: {verdicts:?}");
    build(&all);

    let warm = json!({
        "build": summary(time(rounds, || build(&rules).sections.len())),
        "build_and_html": summary(time(rounds, || export::render(&build(&rules), Format::Html).expect("html").len())),
        "build_and_csv": summary(time(rounds, || export::render(&build(&rules), Format::Csv).expect("csv").len())),
        "build_and_xlsx": summary(time(rounds, || export::render(&build(&rules), Format::Xlsx).expect("xlsx").len())),
        "every_indicator_build_and_xlsx": summary(time(rounds, || export::render(&build(&all), Format::Xlsx).expect("xlsx").len())),
    });

    // One county's replica changed before each round (untimed).
    let changed = {
        let counties = shaanxi_counties();
        let cell = *template.keys().next().ok_or("a template cell")?;
        let mut xs = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let county = counties[i % counties.len()];
            let city = county.parent().ok_or("a county has a city")?;
            let pos = positions.get_mut(&city).ok_or("a city's position")?;
            *pos += 1;
            let replica = Replica {
                key: CellKey {
                    division: county,
                    ..cell
                },
                value: 1_000 + i as i64,
                version: 2 + i as u64,
            };
            ledger.apply_replicas(city, &[replica], *pos, *pos)?;
            let t = Instant::now();
            let doc = build(&rules);
            std::hint::black_box(export::render(&doc, Format::Xlsx)?);
            xs.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        summary(xs)
    };

    // Over gRPC, as `bottomline report --addr` (past its start).
    let url = province.url()?;
    let grpc = {
        let (url, req, rules) = (url.clone(), req.clone(), rules.clone());
        let rounds = rounds / 4 + 1;
        tokio::task::spawn_blocking(move || -> Result<Vec<f64>, String> {
            let mut xs = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                let mut src = RpcSource::new(url.clone(), None).map_err(|e| e.to_string())?;
                let doc = cycle::build(&req, &rules, &mut src).map_err(|e| e.to_string())?;
                std::hint::black_box(
                    export::render(&doc, Format::Xlsx).map_err(|e| e.to_string())?,
                );
                xs.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(xs)
        })
        .await??
    };

    // The year's assessment of the 107 counties.
    let assess = time(rounds / 10 + 1, || {
        cycle::assess_year(
            &mut LedgerSource::new(&ledger),
            None,
            Scope::Level(Level::County),
            Period::parse("2026").expect("year"),
            date(2026, 12, 5),
            &rules,
        )
        .expect("assessment")
        .0
        .regions
        .len()
    });
    province.shutdown().await?;

    let out = json!({
        "benchmark": "notification",
        "rounds": rounds,
        "county_template": {"code": "610102", "cells_up": template.len()},
        "counties_ranked": ranked,
        "praised_and_criticised": praised,
        "key_indicators": {"default": rules.ranking.indicators.len(), "every": all.ranking.indicators.len()},
        "target_ms": {"warm_notification": 100.0},
        "warm": warm,
        "one_county_changed_build_and_xlsx": changed,
        "over_grpc_build_and_xlsx": summary(grpc),
        "assess_year_107_counties": summary(assess),
    });
    eprintln!("{}", serde_json::to_string_pretty(&out)?);
    println!("{out}");
    Ok(())
}
