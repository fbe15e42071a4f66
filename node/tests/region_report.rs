//! The region report (issue #17 point 1): one `Report` call gives every child, every division
//! at a level, or one division's trend over the weeks of a year, each entry equal to what
//! `Stats` (the node's own indicators) says of it; the CLI's `stats --children` and
//! `--trend` print it.

mod common;
use common::{eventually, Running};

use std::path::Path;

use bottomline::division::Level;
use bottomline::gen::{GenOptions, GenScope};
use bottomline::period::{Kind, Period};
use bottomline::regions::Scope;
use bottomline::rpc::{fetch_report, ReportQuery};
use jiff::civil::date;

async fn start(dir: &Path, division: &str, parent: Option<&str>, listen: bool) -> Running {
    common::start(dir, division, parent, listen, "reconnect_secs = 0.05\n").await
}

fn p(s: &str) -> Period {
    Period::parse(s).expect("period")
}

fn query(division: Option<&str>, scope: Scope, period: &str) -> ReportQuery {
    ReportQuery {
        division: division.map(common::code),
        scope,
        period: p(period),
        until: None,
        each: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_gives_every_child_every_county_and_a_years_trend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    let summary = bottomline::gen::generate(
        &GenOptions {
            seed: 9,
            out: files.clone(),
            scope: GenScope::Province {
                code: "61".into(),
                cities: 2,
                counties: 3,
            },
            end: date(2026, 11, 20),
            households_per_county: Some(800),
        },
        &mut |_| {},
    )
    .expect("gen");
    let nodes = tmp.path().join("nodes");
    // Parents know their subtree from the registry (a deployment imports divisions.csv at
    // every node): a report by level lists its divisions.
    let registry = |n: &Running| {
        bottomline::import::import_file(
            &n.handle.ledger,
            &files.join("divisions.csv"),
            None,
            date(2026, 11, 24),
            &mut |_| {},
        )
        .expect("registry")
    };
    let province = start(&nodes, "61", None, true).await;
    registry(&province);
    let p_addr = province.addr.clone().expect("province listens");
    let mut cities = vec![];
    for c in ["6101", "6102"] {
        let city = start(&nodes, c, Some(&p_addr), true).await;
        registry(&city);
        cities.push(city);
    }
    let mut counties = vec![];
    for c in &summary.counties {
        let city = &cities[if c.starts_with("6101") { 0 } else { 1 }];
        let n = start(&nodes, c, city.addr.as_deref(), false).await;
        common::import_generated(&n.handle.ledger, &files, c, date(2026, 11, 24));
        counties.push(n);
    }
    let prov = province.handle.ledger.clone();
    eventually("the province holds every county and city", || {
        counties.iter().all(|n| {
            let code = n.handle.ledger.division();
            let mut held = prov.all_cells().expect("cells");
            held.retain(|k, _| code.contains(k.division));
            held == n.handle.ledger.upward_cells().expect("cells")
        }) && cities.iter().all(|c| {
            let code = c.handle.ledger.division();
            let mut held = prov.all_cells().expect("cells");
            held.retain(|k, _| code.contains(k.division));
            let mut own = c.handle.ledger.all_cells().expect("cells");
            own.retain(|k, _| code.contains(k.division));
            held == own
        })
    })
    .await;

    // Every child of the province, one period.
    let (entries, names) = fetch_report(&p_addr, None, &query(None, Scope::Children, "2026-11"))
        .await
        .expect("report");
    let codes: Vec<String> = entries.iter().map(|e| e.division.to_string()).collect();
    assert_eq!(codes, ["6101", "6102"]);
    for e in &entries {
        assert_eq!(
            e,
            &prov.indicators(e.division, p("2026-11")).expect("stats")
        );
        assert!(
            !names.name(e.division).is_empty(),
            "{} has a name",
            e.division
        );
    }
    assert!(entries[0].count("monitored_households", "total") > 0);

    // Every county below the province, as each county's own node counts it.
    let (entries, _) = fetch_report(
        &p_addr,
        None,
        &query(None, Scope::Level(Level::County), "2026"),
    )
    .await
    .expect("report");
    assert_eq!(entries.len(), counties.len());
    for (e, n) in entries.iter().zip(&counties) {
        let own = n.handle.ledger.division();
        assert_eq!(e.division, own);
        assert_eq!(
            e,
            &n.handle.ledger.indicators(own, p("2026")).expect("stats")
        );
    }

    // A city's trend over the 53 ISO weeks of 2026 (2026-W53 runs into 2027).
    let mut q = query(Some("6101"), Scope::Only, "2026");
    q.each = Some(Kind::Week);
    let (trend, _) = fetch_report(&p_addr, None, &q).await.expect("trend");
    assert_eq!(trend.len(), 53);
    assert_eq!(trend[52].period, p("2026-W53"));
    assert_eq!(trend[52].last_day, date(2027, 1, 3));
    for e in &trend {
        assert_eq!(
            e,
            &prov
                .indicators(common::code("6101"), e.period)
                .expect("stats")
        );
    }
    // A run of months.
    let mut q = query(Some("6102"), Scope::Only, "2026-01");
    q.until = Some(p("2026-06"));
    let (run, _) = fetch_report(&p_addr, None, &q).await.expect("run");
    assert_eq!(run.len(), 6);

    // What the province does not hold, and what is outside it, is refused with the reason.
    let err = fetch_report(
        &p_addr,
        None,
        &query(None, Scope::Level(Level::Village), "2026"),
    )
    .await
    .expect_err("villages are held at their counties");
    assert!(err.to_string().contains("held at their county"), "{err}");
    let err = fetch_report(&p_addr, None, &query(Some("62"), Scope::Children, "2026"))
        .await
        .expect_err("outside the subtree");
    assert!(err.to_string().contains("outside"), "{err}");

    // The CLI prints the same report (a table with Chinese headings, and CSV in long form).
    let bin = env!("CARGO_BIN_EXE_bottomline");
    let out = tokio::process::Command::new(bin)
        .args([
            "stats",
            "--addr",
            &p_addr,
            "--children",
            "--period",
            "2026-11",
        ])
        .output()
        .await
        .expect("run stats --children");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("监测户数"), "{text}");
    assert!(text.contains("6101") && text.contains("6102"), "{text}");
    let out = tokio::process::Command::new(bin)
        .args([
            "stats",
            "--addr",
            &p_addr,
            "--division",
            "6101",
            "--trend",
            "month",
            "--period",
            "2026",
            "--format",
            "csv",
        ])
        .output()
        .await
        .expect("run stats --trend");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let months: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    assert_eq!(months.len(), 12, "{text}");

    // The province's cache keeps what did not change: a county's change drops its own
    // indicators (and its city's and the province's), never serves them stale, and keeps the
    // other counties'.
    let (changed, kept) = (&counties[0], &counties[1]);
    let (c0, c1) = (
        changed.handle.ledger.division(),
        kept.handle.ledger.division(),
    );
    let signals =
        std::fs::read_to_string(files.join(c0.to_string()).join("signals.csv")).expect("signals");
    let first = signals.lines().nth(1).expect("a signal");
    let id = first.split(',').next().expect("id").to_string();
    let year = p(&first.rsplit(',').next().expect("date")[..4]);
    let before_changed = prov.indicators_shared(c0, year).expect("stats");
    let before_kept = prov.indicators_shared(c1, year).expect("stats");
    let before_city = prov
        .indicators_shared(c0.parent().expect("city"), year)
        .expect("stats");
    assert!(std::sync::Arc::ptr_eq(
        &before_kept,
        &prov.indicators_shared(c1, year).expect("stats")
    ));
    changed
        .handle
        .ledger
        .apply(
            &[bottomline::ledger::Change::Delete(
                bottomline::domain::RecordKind::Signal,
                id,
            )],
            date(2026, 11, 24),
        )
        .expect("a signal deleted");
    let want = changed.handle.ledger.indicators(c0, year).expect("stats");
    assert_ne!(
        *before_changed, want,
        "deleting a signal changes the county's year"
    );
    eventually("the province holds the change", || {
        prov.indicators(c0, year).expect("stats") == want
    })
    .await;
    assert_eq!(*prov.indicators_shared(c0, year).expect("stats"), want);
    let city_now = prov
        .indicators_shared(c0.parent().expect("city"), year)
        .expect("stats");
    assert_ne!(*city_now, *before_city, "the city's figures moved too");
    assert_eq!(
        *city_now,
        prov.indicators(c0.parent().expect("city"), year)
            .expect("stats")
    );
    assert!(
        std::sync::Arc::ptr_eq(
            &before_kept,
            &prov.indicators_shared(c1, year).expect("stats")
        ),
        "the unchanged county's indicators stay cached"
    );
}
