//! The county's own workflow (issue #20): department data → warnings by rules, the
//! identification workflow within 15 days, risk elimination.
//!
//! - A county is driven through a year of generated department data and workflow actions at
//!   the ledger, and every indicator of every week, month, quarter, half and the year, at the
//!   county, a town and a village, equals SPEC.md's definitions over its records; a store that
//!   took the same records in one import holds the same cells (a case decided through the
//!   workflow counts exactly as an imported one).
//! - Over a running county node's API and the CLI: the rules, a dry run with a changed
//!   threshold, a case through every stage and its refusals, the due and overdue list and its
//!   alert, an elimination refused and one recorded; department files refused at a city and
//!   with an unknown household.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bottomline::division::Code;
use bottomline::domain::{Category, Record, RecordKind};
use bottomline::ledger::{Change, Decision, Ledger, NewCase};
use bottomline::period::{Kind, Period};
use bottomline::store::StoreOptions;
use bottomline::warning::WarningRules;
use jiff::civil::{date, Date};
use rand::{Rng, SeedableRng};

const COUNTY: &str = "610102";
const END: Date = date(2026, 11, 20);
const TODAY: Date = date(2026, 12, 31);

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

/// A generated county with its department files, under `dir`.
fn generate(dir: &Path, households: u32) -> std::path::PathBuf {
    common::generate_county(dir, COUNTY, 21, households);
    let county = dir.join(COUNTY);
    let d = bottomline::gen::department::department_files(&county, 21, END).expect("department");
    assert!(d.medical > 0 && d.incomes > 0, "{d:?}");
    county
}

fn dept_files(county: &Path) -> Vec<std::path::PathBuf> {
    ["medical", "accidents", "labour", "incomes"]
        .iter()
        .map(|f| county.join(format!("{f}.csv")))
        .collect()
}

fn all_records(l: &Ledger) -> BTreeMap<(RecordKind, String), Record> {
    let mut out = BTreeMap::new();
    for kind in RecordKind::ALL {
        for r in l.records(kind) {
            let r = r.expect("record");
            out.insert((kind, r.id().to_string()), r);
        }
    }
    out
}

fn later(d: Date, days: i64) -> Date {
    d.checked_add(jiff::Span::new().days(days))
        .expect("date")
        .min(TODAY)
}

#[test]
fn a_year_of_department_data_and_workflow_keeps_every_indicator_to_its_definition() {
    let tmp = tempfile::tempdir().unwrap();
    let county_dir = generate(tmp.path(), 500);
    let l = Ledger::open_or_init(
        &tmp.path().join("data"),
        Some(code(COUNTY)),
        &StoreOptions::default(),
    )
    .expect("open");
    let mut files = common::county_files(tmp.path(), COUNTY);
    files.extend(dept_files(&county_dir));
    bottomline::import::import_files(&l, &files, None, TODAY, &mut |_| {}, &mut |_| {})
        .expect("import");
    let rules = WarningRules::default();
    let first = l.warn(&rules, false, false, TODAY).expect("warn");
    assert!(first.diff.new.len() > 20, "{:?}", first.diff.new.len());
    assert_eq!(first.written, first.diff.new.len());
    // Rerunning over the same data creates nothing.
    let again = l.warn(&rules, false, false, TODAY).expect("warn");
    assert_eq!(
        (
            again.diff.new.len(),
            again.diff.changed.len(),
            again.written
        ),
        (0, 0, 0)
    );
    assert_eq!(again.diff.unchanged, first.diff.new.len());

    // The workflow over the year: a case for each rule-made signal of a household that is
    // not monitored, through the stages with random gaps, decided (or left pending).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut signals: Vec<_> = first.diff.new.clone();
    signals.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
    let (mut included, mut rejected, mut pending, mut late) = (0, 0, 0, 0);
    let mut opened = std::collections::BTreeSet::new();
    for s in &signals {
        let monitored = matches!(
            l.get(RecordKind::Monitored, &s.household_code).expect("get"),
            Some(Record::Monitored(m)) if m.eliminated_date.is_none()
        );
        if monitored || !opened.insert(s.household_code.clone()) {
            continue;
        }
        let id = format!("C-{}", s.id);
        let green = s.kind == bottomline::domain::SignalType::Accident;
        l.case_open(
            &NewCase {
                id: id.clone(),
                household: s.household_code.clone(),
                discovered: s.date,
                green_channel: green,
                note: format!("预警 {}", s.id),
            },
            "test",
            TODAY,
        )
        .expect("open");
        let mut day = s.date;
        let steps = if green { rng.random_range(0..=3) } else { 3 };
        for _ in 0..steps {
            day = later(day, rng.random_range(1..=7));
            l.case_advance(&id, day, "test", "", TODAY)
                .expect("advance");
        }
        if rng.random_range(0..10) == 0 {
            pending += 1;
            continue;
        }
        day = later(day, rng.random_range(0..=6));
        let decision = if rng.random_range(0..10) < 7 {
            included += 1;
            Decision::Include(if green {
                Category::SuddenHardship
            } else {
                Category::Marginal
            })
        } else {
            rejected += 1;
            Decision::Reject("人均纯收入高于监测范围".into())
        };
        if bottomline::domain::days_between(s.date, day) > 15 {
            late += 1;
        }
        l.case_decide(&id, &decision, day, "test", TODAY)
            .expect("decide");
    }
    assert!(
        included > 5 && rejected > 0 && pending > 0 && late > 0,
        "{included} {rejected} {pending} {late}"
    );
    // Eliminations: tried for the households monitored 60 days or more; some pass the checks,
    // some are refused with the reason.
    let mut eliminated = 0;
    let mut refused = 0;
    for r in l.records(RecordKind::Monitored).collect::<Vec<_>>() {
        let Record::Monitored(m) = r.expect("record") else {
            continue;
        };
        if m.eliminated_date.is_some()
            || bottomline::domain::days_between(m.identified_date, TODAY) < 60
        {
            continue;
        }
        match l.eliminate(&m.household_code, date(2026, 12, 20), &rules, TODAY) {
            Ok(_) => eliminated += 1,
            Err(e) => {
                assert!(
                    e.to_string().contains("cannot be recorded as eliminated"),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        eliminated > 0 && refused > 0,
        "{eliminated} eliminated, {refused} refused"
    );

    // Every indicator to its definition, over the records as they now are.
    let model = all_records(&l);
    let members = |h: &str| match model.get(&(RecordKind::Household, h.to_string())) {
        Some(Record::Household(h)) => h.members as i64,
        _ => 0,
    };
    let town = code("610102001");
    let village = model
        .values()
        .find_map(|r| match r {
            Record::Case(c) if c.outcome == bottomline::domain::Outcome::Included => {
                Code::of_household(&c.household_code)
            }
            _ => None,
        })
        .expect("an included case");
    let mut periods: Vec<Period> =
        Period::covering(Kind::Week, date(2026, 1, 1), date(2026, 12, 31));
    periods.extend(Period::covering(
        Kind::Month,
        date(2026, 1, 1),
        date(2026, 12, 31),
    ));
    periods.extend(
        [
            "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2026-H1", "2026-H2", "2026", "2027-W01",
        ]
        .map(|p| Period::parse(p).unwrap()),
    );
    let mut checked = 0;
    for division in [code(COUNTY), town, village] {
        for &p in &periods {
            let ind = l.indicators(division, p).expect("indicators");
            let want = bottomline::stats::oracle(model.values(), &members, division, p);
            for ((name, dim), v) in &want {
                assert_eq!(ind.count(name, dim), *v, "{division} {p} {name} {dim}");
                checked += 1;
            }
            // What the definitions give no row for is zero.
            for name in [
                "monitored_households",
                "monitored_persons",
                "newly_identified",
                "eliminated",
                "signals",
                "measures",
                "identified_within_15_days",
            ] {
                if !want.contains_key(&(name.to_string(), "total".to_string())) {
                    assert_eq!(ind.count(name, "total"), 0, "{division} {p} {name}");
                    checked += 1;
                }
            }
        }
    }
    // 3 divisions × 67 periods, every indicator the records give a value for.
    assert!(checked > 2_500, "{checked} values checked");
    // The workflow's within-15-days count is what its own dates say.
    let year = l
        .indicators(code(COUNTY), Period::parse("2026").unwrap())
        .unwrap();
    let within = model
        .values()
        .filter(|r| matches!(r, Record::Case(c) if c.within_deadline() && c.decided_date.is_some_and(|d| d.year() == 2026)))
        .count() as i64;
    assert_eq!(year.count("identified_within_15_days", "total"), within);

    // The same records imported at once into a fresh store: the same statistics.
    let fresh = Ledger::open_or_init(
        &tmp.path().join("fresh"),
        Some(code(COUNTY)),
        &StoreOptions::default(),
    )
    .expect("open");
    bottomline::import::import_files(
        &fresh,
        &common::county_files(tmp.path(), COUNTY)[..1],
        None,
        TODAY,
        &mut |_| {},
        &mut |_| {},
    )
    .expect("divisions");
    let changes: Vec<Change> = model.values().cloned().map(Change::Put).collect();
    fresh.apply(&changes, TODAY).expect("apply");
    let cells = |l: &Ledger| {
        let mut c = l.all_cells().expect("cells");
        c.retain(|_, v| *v != 0);
        c
    };
    assert_eq!(cells(&l), cells(&fresh), "workflow-decided ≡ imported");
    assert!(l.self_check().expect("check").ok());
}

async fn start_county(dir: &Path) -> common::Running {
    common::start(dir, COUNTY, None, true, "reconnect_secs = 0.05\n").await
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(args)
        .output()
        .expect("run bottomline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_cases_and_elimination_over_a_running_county() {
    use bottomline::rpc::workflow_client::WorkflowClient;
    let tmp = tempfile::tempdir().unwrap();
    let county_dir = generate(tmp.path(), 300);
    let node = start_county(&tmp.path().join("node")).await;
    let addr = node.addr.clone().expect("listening");
    let today = bottomline::period::today_in_china();
    {
        let l = node.ledger();
        let mut files = common::county_files(tmp.path(), COUNTY);
        files.extend(dept_files(&county_dir));
        bottomline::import::import_files(l, &files, None, today, &mut |_| {}, &mut |_| {})
            .expect("import");
    }
    let mut c = WorkflowClient::connect(&addr, None).await.expect("connect");

    // The rules: a dry run writes nothing; the run writes what it showed; a rerun nothing.
    let dry = c.warn("", true, false).await.expect("dry run");
    assert!(dry.dry_run && dry.written == 0 && !dry.new.is_empty());
    assert!(dry.rows > 500, "{}", dry.rows);
    let run = c.warn("", false, false).await.expect("run");
    assert_eq!(run.written as usize, dry.new.len());
    assert_eq!(run.new, dry.new);
    let rerun = c.warn("", false, false).await.expect("rerun");
    assert_eq!((rerun.new.len(), rerun.written), (0, 0));
    // A higher medical threshold, shown before it is applied: the medical signals it no
    // longer makes are stale, nothing is written.
    let stricter = "[medical]\nabove = 30000.0\nshare_of_income = 0.0\n";
    let d = c.warn(stricter, true, false).await.expect("dry run");
    assert!(
        !d.stale.is_empty() && d.stale.iter().all(|s| s.rule == "medical"),
        "{:?}",
        d.stale.len()
    );
    assert_eq!(d.written, 0);
    let signals_before = node.ledger().records(RecordKind::Signal).count();
    // The CLI shows the same.
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, stricter).unwrap();
    let out = cli(&[
        "warn",
        "--addr",
        &addr,
        "--rules",
        rules.to_str().unwrap(),
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{} stale", d.stale.len()))
            && text.contains("dry run, nothing written"),
        "{text}"
    );
    assert_eq!(
        node.ledger().records(RecordKind::Signal).count(),
        signals_before
    );
    // A bad rules file is refused, naming the key.
    std::fs::write(&rules, "[medical]\nabove = -1.0\n").unwrap();
    let out = cli(&["warn", "--addr", &addr, "--rules", rules.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("medical.above"));

    // A case through every stage: a household that is not monitored.
    let household = node
        .ledger()
        .records(RecordKind::Household)
        .filter_map(|r| match r.expect("record") {
            Record::Household(h) => Some(h.household_code),
            _ => None,
        })
        .find(|h| {
            node.ledger()
                .get(RecordKind::Monitored, h)
                .unwrap()
                .is_none()
        })
        .expect("a household not monitored");
    let d0 = today.checked_sub(jiff::Span::new().days(8)).unwrap();
    let day = |n: i64| {
        d0.checked_add(jiff::Span::new().days(n))
            .unwrap()
            .to_string()
    };
    let opened = c
        .open("K-1", &household, &d0.to_string(), false, "农户自主申报")
        .await
        .expect("open");
    assert_eq!(
        (opened.outcome.as_str(), opened.stage.as_str()),
        ("pending", "declared")
    );
    let e = c
        .decide("K-1", "include", "marginal", "", &day(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("only a case at county approval"),
        "{e}"
    );
    for (n, stage) in [
        (1, "village_review"),
        (3, "town_check"),
        (5, "county_approval"),
    ] {
        let r = c.advance("K-1", &day(n), "").await.expect("advance");
        assert_eq!(r.stage, stage);
    }
    let e = c.advance("K-1", &day(6), "").await.unwrap_err();
    assert!(e.to_string().contains("decide it"), "{e}");
    let e = c
        .decide("K-1", "reject", "", "", &day(6))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs its reason"), "{e}");
    let decided = c
        .decide("K-1", "include", "marginal", "", &day(7))
        .await
        .expect("include");
    assert_eq!((decided.outcome.as_str(), decided.days), ("included", 7));
    match node
        .ledger()
        .get(RecordKind::Monitored, &household)
        .unwrap()
    {
        Some(Record::Monitored(m)) => {
            assert_eq!(
                (m.category, m.identified_date.to_string()),
                (Category::Marginal, day(7))
            )
        }
        other => panic!("no monitoring row: {other:?}"),
    }
    let shown = c.list(Some("K-1"), false).await.expect("show");
    let steps: Vec<&str> = shown.cases[0]
        .steps
        .iter()
        .map(|s| s.action.as_str())
        .collect();
    assert_eq!(steps, ["open", "advance", "advance", "advance", "include"]);
    assert!(shown.cases[0].steps.iter().all(|s| !s.by.is_empty()));
    let e = c
        .decide("K-1", "include", "marginal", "", &day(8))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("decided already"), "{e}");

    // A case discovered 20 days ago and one 11 days ago, both still pending: overdue and due,
    // listed oldest first, in the metrics, and `case list` exits 1.
    let others: Vec<String> = node
        .ledger()
        .records(RecordKind::Household)
        .filter_map(|r| match r.expect("record") {
            Record::Household(h) => Some(h.household_code),
            _ => None,
        })
        .filter(|h| {
            node.ledger()
                .get(RecordKind::Monitored, h)
                .unwrap()
                .is_none()
        })
        .take(2)
        .collect();
    let ago = |n: i64| {
        today
            .checked_sub(jiff::Span::new().days(n))
            .unwrap()
            .to_string()
    };
    c.open("K-2", &others[0], &ago(20), false, "")
        .await
        .expect("open");
    c.open("K-3", &others[1], &ago(11), true, "洪灾")
        .await
        .expect("open");
    let due = c.list(None, true).await.expect("list");
    let ids: Vec<(&str, bool, bool)> = due
        .cases
        .iter()
        .map(|c| (c.id.as_str(), c.due, c.overdue))
        .collect();
    assert_eq!(ids, [("K-2", true, true), ("K-3", true, false)]);
    assert_eq!((due.due, due.overdue), (2, 1));
    let out = cli(&["case", "list", "--addr", &addr, "--due"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("K-2") && text.contains("OVERDUE") && text.contains("1 overdue"),
        "{text}"
    );
    let view = {
        let h = node.handle.clone();
        tokio::task::spawn_blocking(move || {
            bottomline::http::metrics::NodeView::gather(
                &h,
                std::time::Duration::from_secs(600),
                std::time::Duration::from_secs(300),
            )
        })
        .await
        .unwrap()
        .expect("view")
    };
    assert_eq!(view.cases_due, (2, 1));
    // The green channel decides at any stage.
    let g = c
        .decide("K-3", "include", "sudden_hardship", "", "")
        .await
        .expect("green channel");
    assert_eq!(g.outcome, "included");

    // Elimination: refused with its reasons (the household's income is not above the line,
    // or no measure is recorded), then recorded under rules that ask neither.
    let e = c
        .eliminate(&household, &today.to_string(), "")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot be recorded as eliminated"),
        "{e}"
    );
    let lenient = "[elimination]\nincome_above_line = false\nmin_measures = 0\n";
    let (cat, identified, eliminated) = c
        .eliminate(&household, &today.to_string(), lenient)
        .await
        .expect("eliminate");
    assert_eq!(
        (cat.as_str(), identified, eliminated),
        ("marginal", day(7), today.to_string())
    );
    let e = c
        .eliminate(&household, &today.to_string(), lenient)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already"), "{e}");
    let month = Period::containing(Kind::Month, today);
    let ind = node.ledger().indicators(code(COUNTY), month).unwrap();
    assert!(ind.count("eliminated", "total") >= 1);

    // Department data is the county's: a city refuses it; a row naming a household the
    // county does not hold is refused with its line and field, and nothing is stored.
    let city = Ledger::open_or_init(
        &tmp.path().join("city"),
        Some(code("6101")),
        &StoreOptions::default(),
    )
    .unwrap();
    let e = bottomline::import::import_files(
        &city,
        &dept_files(&county_dir)[..1],
        None,
        today,
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("above county level"), "{e}");
    let bad = tmp.path().join("labour.csv");
    std::fs::write(
        &bad,
        format!("id,household_code,date,change,persons\nX1,{household},2026-05-01,death,1\nX2,6101020019999999,2026-05-02,death,1\n"),
    )
    .unwrap();
    let rows_before = node.ledger().dept_rows().unwrap().len();
    let e = bottomline::import::import_files(
        node.ledger(),
        &[bad],
        None,
        today,
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap_err();
    let msg = format!("{e:?}");
    assert!(
        msg.contains("line: 3") && msg.contains("household_code") && msg.contains("not held"),
        "{msg}"
    );
    assert_eq!(node.ledger().dept_rows().unwrap().len(), rows_before);

    common::stop(node).await;
}
