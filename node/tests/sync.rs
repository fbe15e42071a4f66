//! A real 3-level tree (province ← 2 cities ← 3 counties) over gRPC on 127.0.0.1:0, started
//! from generated TOML: it converges to the ground truth, every level equals the sum of its
//! children, and a back-dated correction at a county reaches the province in every period.

mod common;
use common::{eventually, stop, Running};

use std::path::Path;
use std::sync::Arc;

use bottomline::division::Code;
use bottomline::domain::{Cents, Record, RecordKind};
use bottomline::gen::{GenOptions, GenScope};
use bottomline::ledger::{Change, Ledger};
use bottomline::period::Period;
use jiff::civil::date;

/// Sync settings of this file's nodes.
const SYNC: &str = "reconnect_secs = 0.05\n";

async fn start(dir: &Path, division: &str, parent: Option<&str>, listen: bool) -> Running {
    common::start(dir, division, parent, listen, SYNC).await
}

fn subtree_cells(
    l: &Ledger,
    top: Code,
) -> std::collections::BTreeMap<bottomline::stats::CellKey, i64> {
    let mut c = l.all_cells().expect("cells");
    c.retain(|k, _| top.contains(k.division));
    c
}

fn count(l: &Ledger, division: &str, period: &str, name: &str) -> i64 {
    l.indicators(
        Code::parse(division).expect("code"),
        Period::parse(period).expect("period"),
    )
    .expect("indicators")
    .count(name, "total")
}

/// Σ of `name` over the counties whose code starts with `prefix`, each read at its own node.
fn county_sum(counties: &[Running], prefix: &str, period: &str, name: &str) -> i64 {
    counties
        .iter()
        .map(|n| n.handle.ledger.division().to_string())
        .zip(counties)
        .filter(|(code, _)| code.starts_with(prefix))
        .map(|(code, n)| count(&n.handle.ledger, &code, period, name))
        .sum()
}

const PERIODS: [&str; 6] = ["2026-W47", "2026-11", "2026-Q3", "2026-H1", "2026", "2025"];
const NAMES: [&str; 6] = [
    "monitored_households",
    "monitored_persons",
    "newly_identified",
    "signals",
    "measures",
    "measure_amount",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_levels_converge_and_back_dated_corrections_reach_the_top() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    let summary = bottomline::gen::generate(
        &GenOptions {
            seed: 5,
            out: files.clone(),
            scope: GenScope::Province {
                code: "61".into(),
                cities: 2,
                counties: 3,
            },
            end: date(2026, 11, 20),
            households_per_county: Some(1500),
        },
        &mut |_| {},
    )
    .expect("gen");
    let counties = summary.counties.clone();
    assert_eq!(counties.len(), 3);

    let nodes = tmp.path().join("nodes");
    let province = start(&nodes, "61", None, true).await;
    let p_addr = province.addr.clone().expect("province listens");
    let mut cities = vec![];
    for c in ["6101", "6102"] {
        cities.push(start(&nodes, c, Some(&p_addr), true).await);
    }
    let mut county_nodes = vec![];
    for c in &counties {
        let city = &cities[if c.starts_with("6101") { 0 } else { 1 }];
        let n = start(&nodes, c, city.addr.as_deref(), false).await;
        // Import while the tree is running: changes flow as they are flushed.
        common::import_generated(&n.handle.ledger, &files, c, date(2026, 11, 24));
        county_nodes.push(n);
    }

    let p = province.handle.ledger.clone();
    let converged = |p: &Arc<Ledger>, county_nodes: &[Running]| {
        county_nodes.iter().all(|n| {
            let code = n.handle.ledger.division();
            subtree_cells(p, code) == n.handle.ledger.upward_cells().expect("cells")
        })
    };
    eventually(
        "the province holds an exact replica of every county",
        || converged(&p, &county_nodes),
    )
    .await;
    // Wait for the cities' own aggregates too.
    eventually("city aggregates at the province", || {
        cities.iter().all(|c| {
            let code = c.handle.ledger.division();
            subtree_cells(&p, code) == subtree_cells(&c.handle.ledger, code)
        })
    })
    .await;

    // Towns' and villages' cells stay at their county: the province holds every county's
    // totals, and sends a question about a village to the county that holds it.
    assert!(p
        .all_cells()
        .expect("cells")
        .keys()
        .all(|k| bottomline::cells::travels_up(k.division)));
    let village = county_nodes[0]
        .handle
        .ledger
        .all_cells()
        .expect("cells")
        .keys()
        .map(|k| k.division)
        .find(|d| d.len() == 12)
        .expect("a village with figures");
    let asked = bottomline::rpc::fetch_stats(
        &p_addr,
        None,
        Some(village),
        Period::parse("2026").expect("period"),
    )
    .await
    .expect_err("a village's figures are not at the province");
    let county = county_nodes[0].handle.ledger.division();
    assert!(
        asked
            .to_string()
            .contains(&format!("ask the node of {county}")),
        "{asked}"
    );

    // Every level equals the sum of its children, for every indicator checked.
    for period in PERIODS {
        for name in NAMES {
            let all = county_sum(&county_nodes, "", period, name);
            assert_eq!(count(&p, "61", period, name), all, "{name} {period}");
            for city in ["6101", "6102"] {
                let s = county_sum(&county_nodes, city, period, name);
                assert_eq!(count(&p, city, period, name), s, "{city} {name} {period}");
            }
        }
    }
    assert!(
        count(&p, "61", "2026", "signals") > 0,
        "the data is not empty"
    );

    // A back-dated correction at one county: a measure moved to an old week with a new amount.
    let county = &county_nodes[0].handle.ledger;
    let mut measure = match county
        .records(RecordKind::Measure)
        .next()
        .expect("a measure")
        .expect("record")
    {
        Record::Measure(m) => m,
        other => panic!("not a measure: {other:?}"),
    };
    let old_date = measure.date;
    measure.date = date(2026, 2, 3); // 2026-W06, February, Q1, H1
    measure.amount = Cents(measure.amount.0 + 12_345);
    let before: Vec<i64> = ["2026-W06", "2026-02", "2026-Q1", "2026-H1", "2026"]
        .iter()
        .map(|per| count(&p, "61", per, "measure_amount"))
        .collect();
    county
        .apply(
            &[Change::Put(Record::Measure(measure.clone()))],
            date(2026, 11, 24),
        )
        .expect("correction");
    eventually("the correction reaches the province", || {
        converged(&p, &county_nodes[..1])
            && count(&p, "61", "2026", "measure_amount")
                == county_sum(&county_nodes, "", "2026", "measure_amount")
    })
    .await;
    for (i, per) in ["2026-W06", "2026-02", "2026-Q1", "2026-H1", "2026"]
        .iter()
        .enumerate()
    {
        let sum = county_sum(&county_nodes, "", per, "measure_amount");
        assert_eq!(count(&p, "61", per, "measure_amount"), sum, "{per}");
        let moved_in = Period::parse(per).expect("period").contains(old_date);
        if !moved_in {
            assert_ne!(
                count(&p, "61", per, "measure_amount"),
                before[i],
                "{per} changed"
            );
        }
    }

    for n in county_nodes {
        stop(n).await;
    }
    for c in cities {
        stop(c).await;
    }
    stop(province).await;
}
