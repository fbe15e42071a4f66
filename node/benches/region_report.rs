//! The region report at a Shaanxi-size province (issue #17 point 1): one `Report` call against
//! the 107-call `Stats` loop it replaces.
//!
//! Setup: one realistic county (610102, `bottomline gen`, ~86 000 households and a year of
//! events) is generated and imported; its cells that travel up are the figures of each of the
//! 107 counties of a Shaanxi-shaped tree (10 cities of 10 or 11 counties), each county's copy
//! scaled by a factor of its own so that no two are alike. Every city's replica (its counties
//! and its own sums) is applied at a province store with `Ledger::apply_replicas`, as the
//! sync does, with a registry naming every division. Then a province node runs in this process
//! on that store (plaintext: the figure is the node's work and one round trip, not a fresh
//! handshake; the client's channel is opened once and warmed).
//!
//! Measured `BENCH_ROUNDS` times (default 200), p50 / p99 / max in ms:
//! - **server**: `regions::members` + `regions::report` on the node's ledger (what the
//!   `Report` handler does besides encoding), warm (the indicators cached since the cells last
//!   changed): every county for a month, for the year; every city for a month; a city's trend
//!   over the 53 weeks and the 12 months of 2026; and **uncached** (every county's indicators
//!   computed from the cells, what the first report after a change costs);
//! - **live**: every county for a month while the tree syncs — before each report one
//!   county's replica changes (one cell, as a child's batch applies it), so the report computes
//!   that county's (and its city's) indicators again and takes the other 106 from the cache;
//! - **end to end**: the same as gRPC `Report` calls, the same as HTTP JSON (`/api/report`,
//!   the body parsed), and the `Stats` loop for every county (107 calls one after another,
//!   and 107 at once).
//!
//! - **end to end from Python**: the same through a client generated from `proto/` with
//!   grpcio-tools (`benches/python/report_client.py`), when `python3` has `grpcio` and
//!   `grpcio-tools` (`pip install grpcio grpcio-tools`); otherwise the JSON says why not.
//!
//! Prints one JSON object on stdout and a summary on stderr; never fails on a target. Run with
//! `cargo bench -p bottomline --bench region_report`; `BENCH_HOUSEHOLDS=N` for a smaller
//! county (default: realistic).

use std::time::Instant;

use bottomline::cells::Replica;
use bottomline::division::{Code, Level};
use bottomline::period::{Kind, Period};
use bottomline::regions::{self, Scope};
use bottomline_proto::v1 as pb;
use serde_json::json;

mod common;
use common::{env_or, percentile, prepare_node, shaanxi_counties as counties, Res};

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut xs: Vec<f64>) -> serde_json::Value {
    xs.sort_by(f64::total_cmp);
    json!({
        "p50_ms": (percentile(&xs, 0.5) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&xs, 0.99) * 1000.0).round() / 1000.0,
        "max_ms": (xs.last().copied().unwrap_or(f64::NAN) * 1000.0).round() / 1000.0,
    })
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            ms(t.elapsed())
        })
        .collect()
}

async fn time_async<F, Fut, T>(rounds: usize, mut f: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(f().await);
        out.push(ms(t.elapsed()));
    }
    out
}

/// The province store: every county's figures (the template's, scaled) under its city.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let rounds: usize = env_or("BENCH_ROUNDS", 200);
    let households: u32 = env_or("BENCH_HOUSEHOLDS", 0);
    let tmp = tempfile::tempdir()?;
    eprintln!("region_report: generating and importing county 610102 …");
    let template =
        common::county_template(tmp.path(), 7, households, jiff::civil::date(2026, 12, 4))?;
    eprintln!(
        "  {} cells travel up from the county; building the province …",
        template.len()
    );
    let nodes = tmp.path().join("nodes");
    let t = Instant::now();
    let mut positions = common::shaanxi_province(&nodes, &template, &|_, _| Vec::new())?;
    eprintln!("  province built in {:.1} s", t.elapsed().as_secs_f64());

    let province = prepare_node(&nodes, Code::parse("61")?, None, true, None)
        .await?
        .with_http()
        .run();
    let ledger = province.handle.ledger.clone();
    let p = |s: &str| Period::parse(s).expect("period");
    let c61 = Code::parse("61")?;
    let c6101 = Code::parse("6101")?;

    // Server side.
    let server = |division: Code, scope: Scope, periods: Vec<Period>| {
        let ledger = ledger.clone();
        move || {
            let m = regions::members(&ledger, division, scope).expect("members");
            regions::report(&ledger, &m, &periods)
                .expect("report")
                .len()
        }
    };
    // Uncached: what the first report after a change costs (every indicator computed).
    let uncached = |period: Period| {
        let ledger = ledger.clone();
        move || {
            let m = regions::members(&ledger, c61, Scope::Level(Level::County)).expect("members");
            m.iter()
                .map(|d| {
                    ledger
                        .indicators(d.code, period)
                        .expect("indicators")
                        .rows
                        .len()
                })
                .sum::<usize>()
        }
    };
    let cold = json!({
        "counties_month": summary(time(rounds / 4 + 1, uncached(p("2026-11")))),
        "counties_year": summary(time(rounds / 4 + 1, uncached(p("2026")))),
    });
    // Live: one county's replica changed before each report (untimed), as while the tree syncs.
    let live = {
        let all = counties();
        let cell = *template.keys().next().ok_or("a template cell")?;
        let mut xs = Vec::with_capacity(rounds);
        let report = server(c61, Scope::Level(Level::County), vec![p("2026-11")]);
        report();
        for i in 0..rounds {
            let county = all[i % all.len()];
            let city = county.parent().ok_or("a county has a city")?;
            let pos = positions.get_mut(&city).ok_or("a city's position")?;
            *pos += 1;
            let changed = Replica {
                key: bottomline::stats::CellKey {
                    division: county,
                    ..cell
                },
                value: 1_000 + i as i64,
                version: 2 + i as u64,
            };
            ledger.apply_replicas(city, &[changed], *pos, *pos)?;
            let t = Instant::now();
            assert_eq!(report(), 107);
            xs.push(ms(t.elapsed()));
        }
        summary(xs)
    };
    let counties_month = server(c61, Scope::Level(Level::County), vec![p("2026-11")]);
    assert_eq!(counties_month(), 107);
    let weeks = regions::year_run(p("2026"), Kind::Week)?;
    let months = regions::year_run(p("2026"), Kind::Month)?;
    let server_figs = json!({
        "counties_month": summary(time(rounds, counties_month)),
        "counties_year": summary(time(rounds, server(c61, Scope::Level(Level::County), vec![p("2026")]))),
        "cities_month": summary(time(rounds, server(c61, Scope::Children, vec![p("2026-11")]))),
        "trend_53_weeks": summary(time(rounds, server(c6101, Scope::Only, weeks))),
        "trend_12_months": summary(time(rounds, server(c6101, Scope::Only, months))),
        "counties_month_one_county_changed": live,
    });

    // End to end.
    let url = province.url()?;
    let channel = tonic::transport::Endpoint::from_shared(url.clone())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let client = pb::sync_client::SyncClient::new(channel);
    let report = |scope: pb::ReportScope, division: &str, level: &str, period: &str, each: &str| {
        let c = client.clone();
        let req = pb::ReportRequest {
            division: division.into(),
            scope: scope as i32,
            level: level.into(),
            period: period.into(),
            until: String::new(),
            each: each.into(),
        };
        move || {
            let mut c = c.clone();
            let req = req.clone();
            async move { c.report(req).await.expect("report").into_inner().rows.len() }
        }
    };
    let mut warm = report(pb::ReportScope::Level, "", "county", "2026-11", "")();
    assert_eq!(warm.await, 107);
    warm = report(pb::ReportScope::Level, "", "county", "2026", "")();
    warm.await;
    let stats_one = |division: String, period: &'static str| {
        let mut c = client.clone();
        async move {
            c.stats(pb::StatsRequest {
                division,
                period: period.into(),
            })
            .await
            .expect("stats")
            .into_inner()
            .indicators
            .len()
        }
    };
    let codes: Vec<String> = counties().iter().map(ToString::to_string).collect();
    let loop_seq = |period: &'static str| {
        let codes = codes.clone();
        move || {
            let codes = codes.clone();
            async move {
                let mut n = 0;
                for c in codes {
                    n += stats_one(c, period).await;
                }
                n
            }
        }
    };
    let loop_par = |period: &'static str| {
        let codes = codes.clone();
        move || {
            let calls: Vec<_> = codes.iter().map(|c| stats_one(c.clone(), period)).collect();
            async move { futures_join_all(calls).await }
        }
    };
    let e2e = json!({
        "report_counties_month": summary(time_async(rounds, report(pb::ReportScope::Level, "", "county", "2026-11", "")).await),
        "report_counties_year": summary(time_async(rounds, report(pb::ReportScope::Level, "", "county", "2026", "")).await),
        "report_cities_month": summary(time_async(rounds, report(pb::ReportScope::Children, "", "", "2026-11", "")).await),
        "report_trend_53_weeks": summary(time_async(rounds, report(pb::ReportScope::Division, "6101", "", "2026", "week")).await),
        "report_trend_12_months": summary(time_async(rounds, report(pb::ReportScope::Division, "6101", "", "2026", "month")).await),
        "stats_loop_107_sequential_month": summary(time_async(rounds / 10 + 1, loop_seq("2026-11")).await),
        "stats_loop_107_parallel_month": summary(time_async(rounds / 10 + 1, loop_par("2026-11")).await),
        "stats_loop_107_parallel_year": summary(time_async(rounds / 10 + 1, loop_par("2026")).await),
    });
    let http = http_json(&province, rounds).await?;
    let python = python_client(&url, tmp.path(), rounds).await;
    province.shutdown().await?;

    let out = json!({
        "benchmark": "region_report",
        "rounds": rounds,
        "county_template": {"code": "610102", "cells_up": template.len()},
        "targets_ms": {"server_month": 2.0, "server_year": 6.0, "end_to_end_python": 10.0, "trend": 5.0},
        "server": server_figs,
        "server_uncached": cold,
        "end_to_end": e2e,
        "end_to_end_http_json": http,
        "end_to_end_python": python,
    });
    eprintln!("{}", serde_json::to_string_pretty(&out)?);
    println!("{out}");
    Ok(())
}

/// The Python client's figures (`benches/python/report_client.py`), or why there are none.
/// The report as HTTP JSON from the node's `/api/report` (loopback: anonymous reading), the
/// body parsed, over one kept-alive connection.
async fn http_json(province: &common::Running, rounds: usize) -> Res<serde_json::Value> {
    use http_body_util::{BodyExt, Empty};
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while province.handle.http_addr.get().is_none() {
        if Instant::now() > deadline {
            return Err("the province did not bind its HTTP listener".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let addr = *province.handle.http_addr.get().ok_or("bound")?;
    let client: hyper_util::client::legacy::Client<_, Empty<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let get = |path: &'static str| {
        let client = client.clone();
        move || {
            let client = client.clone();
            async move {
                let res = client
                    .get(format!("http://{addr}{path}").parse().expect("uri"))
                    .await
                    .expect("HTTP report");
                assert_eq!(res.status(), 200);
                let body = res.into_body().collect().await.expect("body").to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                v["rows"].as_array().map_or(0, Vec::len)
            }
        }
    };
    const MONTH: &str = "/api/report?scope=level&level=county&period=2026-11";
    const YEAR: &str = "/api/report?scope=level&level=county&period=2026";
    const TREND: &str = "/api/report?division=6101&scope=division&period=2026&each=week";
    assert_eq!(get(MONTH)().await, 107);
    assert_eq!(get(TREND)().await, 53);
    Ok(json!({
        "report_counties_month": summary(time_async(rounds, get(MONTH)).await),
        "report_counties_year": summary(time_async(rounds, get(YEAR)).await),
        "report_trend_53_weeks": summary(time_async(rounds, get(TREND)).await),
    }))
}

async fn python_client(url: &str, tmp: &std::path::Path, rounds: usize) -> serde_json::Value {
    let skipped = |why: String| {
        eprintln!("  python client: skipped: {why}");
        json!({ "skipped": why })
    };
    let stubs = tmp.join("python");
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/proto");
    let gen = tokio::process::Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I", proto])
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg("bottomline/v1/sync.proto")
        .output();
    if let Err(e) = std::fs::create_dir_all(&stubs) {
        return skipped(e.to_string());
    }
    match gen.await {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skipped(format!(
                "generating the stubs failed (pip install grpcio grpcio-tools): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return skipped(format!("no python3: {e}")),
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/python/report_client.py"
    );
    let addr = url.trim_start_matches("http://");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&stubs)
        .arg(addr)
        .arg(rounds.to_string())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| skipped(format!("the client printed no JSON: {e}"))),
        Ok(o) => skipped(format!(
            "the client failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => skipped(e.to_string()),
    }
}

/// Await every future (the benchmark's own join, without another dependency).
async fn futures_join_all<F: std::future::Future<Output = usize> + Send + 'static>(
    calls: Vec<F>,
) -> usize {
    let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut n = 0;
    for h in handles {
        n += h.await.expect("task");
    }
    n
}
