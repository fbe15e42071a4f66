//! Property: after any sequence of inserts, corrections and deletions (some refused), with the
//! store closed and reopened in between, the incrementally maintained cells equal a
//! from-scratch recomputation, and the indicators equal SPEC.md's definitions evaluated
//! literally over the records that were accepted (a `BTreeMap` model of the store).

use std::collections::BTreeMap;

use bottomline::division::{Code, Division};
use bottomline::domain::{
    Case, Category, Cents, Household, Measure, MeasureType, Monitored, Outcome, Record, RecordKind,
    Signal, SignalSource, SignalType, Stage,
};
use bottomline::ledger::{Change, Ledger, LedgerError};
use bottomline::period::{Kind, Period};
use bottomline::stats::{self, CellKey};
use bottomline::store::StoreOptions;
use jiff::civil::{date, Date};
use proptest::prelude::*;

const COUNTY: &str = "610102";
const VILLAGES: [&str; 3] = ["610102001001", "610102001002", "610102002001"];
/// Today for every apply: dates run up to here, across the 2026/2027 ISO-year boundary.
const TODAY: Date = date(2027, 2, 1);

fn hcode(i: usize) -> String {
    format!("{}{:04}", VILLAGES[i % VILLAGES.len()], i + 1)
}

fn day(offset: i64) -> Date {
    // Offsets are bounded below so the date stays in range.
    date(2025, 12, 1)
        .checked_add(jiff::Span::new().days(offset))
        .expect("offset within range")
}

#[derive(Clone, Debug)]
enum Op {
    Apply(Vec<Change>),
    Reopen,
}

fn arb_date() -> impl Strategy<Value = Date> {
    (0i64..420).prop_map(day)
}

fn arb_household() -> impl Strategy<Value = Record> {
    (0usize..6, 1u32..6, any::<bool>(), 0i64..3_000_000).prop_map(
        |(i, members, alleviated, income)| {
            Record::Household(Household {
                household_code: hcode(i),
                village_code: Code::parse(VILLAGES[i % VILLAGES.len()]).expect("valid village"),
                members,
                alleviated,
                income: Cents(income),
                head_name: Some(format!("户主{i}")),
                id_number: None,
            })
        },
    )
}

fn arb_monitored() -> impl Strategy<Value = Record> {
    (
        0usize..6,
        0usize..3,
        arb_date(),
        proptest::option::of(0i64..200),
    )
        .prop_map(|(i, c, identified, elim)| {
            Record::Monitored(Monitored {
                household_code: hcode(i),
                category: Category::ALL[c],
                identified_date: identified,
                eliminated_date: elim
                    .map(|d| {
                        identified
                            .checked_add(jiff::Span::new().days(d))
                            .expect("in range")
                    })
                    .filter(|d| *d <= TODAY),
            })
        })
}

fn arb_signal() -> impl Strategy<Value = Record> {
    (
        0usize..8,
        0usize..6,
        0usize..4,
        0usize..9,
        1u8..=30,
        0i64..100_000,
        arb_date(),
    )
        .prop_map(|(id, i, s, t, dept, amount, d)| {
            let source = SignalSource::ALL[s];
            Record::Signal(Signal {
                id: format!("S{id}"),
                household_code: hcode(i),
                source,
                kind: SignalType::ALL[t],
                department: (source == SignalSource::Department).then_some(dept),
                amount: Cents(amount),
                date: d,
            })
        })
}

fn arb_case() -> impl Strategy<Value = Record> {
    (
        0usize..6,
        0usize..6,
        arb_date(),
        0i64..30,
        0usize..3,
        any::<bool>(),
        0usize..4,
    )
        .prop_map(|(id, i, discovered, took, o, green, stage)| {
            let outcome = [Outcome::Included, Outcome::Rejected, Outcome::Pending][o];
            let decided = discovered
                .checked_add(jiff::Span::new().days(took))
                .expect("in range");
            Record::Case(Case {
                id: format!("C{id}"),
                household_code: hcode(i),
                discovered_date: discovered,
                decided_date: (outcome != Outcome::Pending && decided <= TODAY).then_some(decided),
                outcome,
                green_channel: green,
                stage: (outcome == Outcome::Pending).then_some(Stage::ALL[stage]),
            })
        })
}

fn arb_measure() -> impl Strategy<Value = Record> {
    (0usize..8, 0usize..6, 0usize..9, arb_date(), 0i64..5_000_000).prop_map(
        |(id, i, t, d, amount)| {
            Record::Measure(Measure {
                id: format!("M{id}"),
                household_code: hcode(i),
                kind: MeasureType::ALL[t],
                date: d,
                amount: Cents(amount),
            })
        },
    )
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => arb_household().prop_map(Change::Put),
        3 => arb_monitored().prop_map(Change::Put),
        3 => arb_signal().prop_map(Change::Put),
        3 => arb_case().prop_map(Change::Put),
        3 => arb_measure().prop_map(Change::Put),
        2 => (0usize..5, 0usize..8).prop_map(|(k, i)| {
            let kind = RecordKind::ALL[k];
            let id = match kind {
                RecordKind::Household | RecordKind::Monitored => hcode(i % 6),
                RecordKind::Signal => format!("S{i}"),
                RecordKind::Case => format!("C{}", i % 6),
                RecordKind::Measure => format!("M{i}"),
            };
            Change::Delete(kind, id)
        }),
    ]
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            10 => proptest::collection::vec(arb_change(), 1..4).prop_map(Op::Apply),
            1 => Just(Op::Reopen),
        ],
        1..40,
    )
}

type Model = BTreeMap<(RecordKind, String), Record>;

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open_or_init(
        dir,
        Some(Code::parse(COUNTY).expect("valid")),
        &StoreOptions::default(),
    )
    .expect("open ledger")
}

fn register_divisions(ledger: &Ledger) {
    let mut ds = vec![];
    for c in ["61", "6101", COUNTY, "610102001", "610102002"]
        .iter()
        .chain(VILLAGES.iter())
    {
        ds.push(Division {
            code: Code::parse(c).expect("valid"),
            name: format!("d{c}"),
        });
    }
    ledger.put_divisions(&ds).expect("divisions");
}

/// Apply `changes` to the model the way the ledger must: all or nothing.
fn model_apply(model: &mut Model, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Put(r) => {
                model.insert((r.kind(), r.id().to_string()), r.clone());
            }
            Change::Delete(k, id) => {
                model.remove(&(*k, id.clone()));
            }
        }
    }
}

/// The cells the model's records must produce.
fn model_cells(model: &Model, top: Code) -> BTreeMap<CellKey, i64> {
    let mut out = BTreeMap::new();
    for r in model.values() {
        let hh = match model.get(&(RecordKind::Household, r.household_code().to_string())) {
            Some(Record::Household(h)) => Some(h),
            _ => None,
        };
        stats::contributions(r, hh, top, &mut |k, v| *out.entry(k).or_insert(0) += v);
    }
    out.retain(|_, v| *v != 0);
    out
}

fn check(ledger: &Ledger, model: &Model) -> Result<(), TestCaseError> {
    let top = Code::parse(COUNTY).expect("valid");
    let stored = ledger.all_cells().expect("cells");
    prop_assert_eq!(&stored, &ledger.recompute_cells().expect("recompute"));
    prop_assert_eq!(&stored, &model_cells(model, top));
    // The records themselves.
    for kind in RecordKind::ALL {
        let got: Vec<Record> = ledger.records(kind).map(|r| r.expect("record")).collect();
        let want: Vec<Record> = model
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, r)| r.clone())
            .collect();
        prop_assert_eq!(got, want);
    }
    // Indicators against SPEC.md's literal definitions, at three levels, for periods that
    // straddle the ISO-year boundary.
    let members = |h: &str| match model.get(&(RecordKind::Household, h.to_string())) {
        Some(Record::Household(h)) => h.members as i64,
        _ => 0,
    };
    for division in [COUNTY, "610102001", "610102001002"] {
        let division = Code::parse(division).expect("valid");
        for p in [
            "2026-W01", "2026-W53", "2027-W01", "2026-12", "2026-Q4", "2027-Q1", "2026-H2", "2026",
            "2027",
        ] {
            let period = Period::parse(p).expect("valid");
            let ind = ledger.indicators(division, period).expect("indicators");
            let want = stats::oracle(model.values(), &members, division, period);
            for ((name, dim), v) in &want {
                prop_assert_eq!(
                    ind.count(name, dim),
                    *v,
                    "{} {} {} {}",
                    division,
                    p,
                    name,
                    dim
                );
            }
            // Indicators the oracle has no row for must be zero.
            for name in [
                "monitored_households",
                "monitored_persons",
                "newly_identified",
                "eliminated",
                "signals",
                "measures",
                "measure_amount",
                "identified_within_15_days",
            ] {
                if !want.contains_key(&(name.to_string(), "total".to_string())) {
                    prop_assert_eq!(ind.count(name, "total"), 0, "{} {} {}", division, p, name);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_cells_equal_recomputation(ops in arb_ops()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ledger = open(dir.path());
        register_divisions(&ledger);
        let mut model = Model::new();
        // Start from six households so that most generated changes can be accepted.
        let setup: Vec<Change> = (0..6)
            .map(|i| {
                Change::Put(Record::Household(Household {
                    household_code: hcode(i),
                    village_code: Code::parse(VILLAGES[i % VILLAGES.len()]).expect("valid"),
                    members: 1 + i as u32,
                    alleviated: i % 2 == 0,
                    income: Cents(1_000_000),
                    head_name: None,
                    id_number: None,
                }))
            })
            .collect();
        ledger.apply(&setup, TODAY).expect("setup");
        model_apply(&mut model, &setup);
        for op in ops {
            match op {
                Op::Apply(changes) => match ledger.apply(&changes, TODAY) {
                    Ok(_) => model_apply(&mut model, &changes),
                    Err(LedgerError::Refused(r)) => prop_assert!(!r.is_empty()),
                    Err(e) => return Err(TestCaseError::fail(format!("apply failed: {e}"))),
                },
                Op::Reopen => {
                    drop(ledger);
                    ledger = open(dir.path());
                }
            }
            check(&ledger, &model)?;
        }
    }
}

#[test]
fn weeks_straddling_the_year_are_counted_once_per_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    register_divisions(&ledger);
    let h = hcode(0);
    let changes = vec![
        Change::Put(Record::Household(Household {
            household_code: h.clone(),
            village_code: Code::parse(VILLAGES[0]).expect("valid"),
            members: 4,
            alleviated: true,
            income: Cents(500_000),
            head_name: None,
            id_number: None,
        })),
        Change::Put(Record::Monitored(Monitored {
            household_code: h.clone(),
            category: Category::UnstableAlleviated,
            identified_date: date(2026, 12, 30),
            eliminated_date: Some(date(2027, 1, 2)),
        })),
    ];
    ledger.apply(&changes, TODAY).expect("apply");
    let county = Code::parse(COUNTY).expect("valid");
    let get = |p: &str, name: &str| {
        ledger
            .indicators(county, Period::parse(p).expect("valid"))
            .expect("indicators")
            .count(name, "total")
    };
    // Identified and eliminated inside 2026-W53 (2026-12-28 .. 2027-01-03).
    assert_eq!(get("2026-W53", "newly_identified"), 1);
    assert_eq!(get("2026-W53", "eliminated"), 1);
    assert_eq!(get("2026-W53", "monitored_households"), 0);
    // In stock at the end of 2026 (year, December, Q4, H2) with its 4 members…
    for p in ["2026", "2026-12", "2026-Q4", "2026-H2"] {
        assert_eq!(get(p, "monitored_households"), 1, "{p}");
        assert_eq!(get(p, "monitored_persons"), 4, "{p}");
        assert_eq!(get(p, "eliminated"), 0, "{p}");
    }
    // …eliminated in 2027.
    assert_eq!(get("2027", "eliminated"), 1);
    assert_eq!(get("2027-01", "monitored_households"), 0);
    assert_eq!(get("2026-W52", "monitored_households"), 0);
    assert_eq!(
        Period::containing(Kind::Week, date(2027, 1, 2)).to_string(),
        "2026-W53"
    );

    // A correction of the household's members moves the persons of every period.
    let mut hh = match &changes[0] {
        Change::Put(Record::Household(h)) => h.clone(),
        _ => unreachable!("first change is the household"),
    };
    hh.members = 6;
    ledger
        .apply(&[Change::Put(Record::Household(hh))], TODAY)
        .expect("correction");
    assert_eq!(get("2026", "monitored_persons"), 6);
    assert_eq!(
        ledger.all_cells().expect("cells"),
        ledger.recompute_cells().expect("recompute")
    );
}
