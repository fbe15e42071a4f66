//! The rules on hand-built rows with hand-computed expectations.

use std::collections::HashMap;

use jiff::civil::{date, Date};

use super::*;
use crate::domain::{Cents, SignalSource, SignalType};

const H1: &str = "610102001001001";
const H2: &str = "610102001001002";

fn facts() -> HashMap<String, Facts> {
    // H1: 3 members at 8 000 yuan each (annual 24 000); H2: 2 members at 20 000 (40 000).
    [
        (
            H1,
            Facts {
                members: 3,
                income: Cents(800_000),
            },
        ),
        (
            H2,
            Facts {
                members: 2,
                income: Cents(2_000_000),
            },
        ),
    ]
    .into_iter()
    .map(|(h, f)| (h.to_string(), f))
    .collect()
}

fn medical(id: &str, h: &str, d: Date, oop_yuan: i64) -> DeptRow {
    DeptRow {
        id: id.into(),
        household_code: h.into(),
        date: d,
        what: DeptData::Medical {
            total: Cents(oop_yuan * 300),
            reimbursed: Cents(oop_yuan * 200),
            out_of_pocket: Cents(oop_yuan * 100),
        },
    }
}

#[test]
fn medical_fires_on_the_settlement_that_passes_a_threshold_within_the_window() {
    let rules = WarningRules::default(); // above 10 000 yuan or half the annual income, 12 months
    let rows = vec![
        // H1: half its annual income is 12 000 > 10 000, so 10 000 decides: 4 000 + 5 000 =
        // 9 000 (no), + 2 000 = 11 000 on 2026-03-01 (fires, amount 11 000).
        medical("m1", H1, date(2025, 6, 1), 4_000),
        medical("m2", H1, date(2025, 9, 1), 5_000),
        medical("m3", H1, date(2026, 3, 1), 2_000),
        // Still above: no second signal.
        medical("m4", H1, date(2026, 4, 1), 1_000),
        // 2026-07-01: m1 and m2 left the window (≤ 2025-07-01 and 2025-09-01 … m2 stays until
        // 2026-09-01): window = m2, m3, m4 + 500 = 8 500: below, no signal.
        medical("m5", H1, date(2026, 7, 1), 500),
        // 2026-10-01: window = m3, m4, m5 + 9 000 = 12 500 (m2 left on 2026-09-01): passes
        // again after falling below: fires.
        medical("m6", H1, date(2026, 10, 1), 9_000),
        // H2: 10 500 in one settlement passes 10 000 (half its income is 20 000).
        medical("n1", H2, date(2026, 2, 1), 10_500),
    ];
    let s = evaluate(&rules, &rows, &facts());
    let got: Vec<(&str, i64)> = s.iter().map(|s| (s.id.as_str(), s.amount.0)).collect();
    assert_eq!(
        got,
        vec![
            ("WM-m3", 1_100_000),
            ("WM-m6", 1_250_000),
            ("WM-n1", 1_050_000)
        ]
    );
    assert!(s.iter().all(|s| s.source == SignalSource::Department
        && s.kind == SignalType::Medical
        && s.department == Some(8)));
    assert_eq!(s[0].date, date(2026, 3, 1));
    // The share of income decides when it is the lower threshold: above = 0 (off), share 0.25
    // of H1's 24 000 = 6 000: 4 000 + 5 000 passes on m2.
    let mut r2 = rules.clone();
    r2.medical.above = 0.0;
    r2.medical.share_of_income = 0.25;
    let s = evaluate(&r2, &rows[..2], &facts());
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].id.as_str(), s[0].amount.0), ("WM-m2", 900_000));
}

#[test]
fn accidents_labour_and_income_checks() {
    let rules = WarningRules::default();
    let row = |id: &str, h: &str, what| DeptRow {
        id: id.into(),
        household_code: h.into(),
        date: date(2026, 5, 10),
        what,
    };
    let rows = vec![
        // Uncompensated 6 000 > 5 000: fires with 6 000.
        row(
            "a1",
            H2,
            DeptData::Accident {
                kind: AccidentKind::Traffic,
                loss: Cents(1_000_000),
                compensation: Cents(400_000),
            },
        ),
        // Uncompensated 4 000 < 5 000 and < 30 % of 40 000 = 12 000: nothing.
        row(
            "a2",
            H2,
            DeptData::Accident {
                kind: AccidentKind::Work,
                loss: Cents(500_000),
                compensation: Cents(100_000),
            },
        ),
        // Over-compensated: 0.
        row(
            "a3",
            H1,
            DeptData::Accident {
                kind: AccidentKind::Other,
                loss: Cents(100),
                compensation: Cents(900_000),
            },
        ),
        row(
            "l1",
            H1,
            DeptData::Labour {
                change: LabourChange::JobLoss,
                persons: 1,
            },
        ),
        row(
            "l2",
            H1,
            DeptData::Labour {
                change: LabourChange::Disability,
                persons: 2,
            },
        ),
        // 2026 line 7 600: 7 000 is below it.
        row(
            "i1",
            H1,
            DeptData::Income {
                income: Cents(700_000),
            },
        ),
        // H2 recorded 20 000; 13 000 is 35 % less (> 30 %): fires though above the line.
        row(
            "i2",
            H2,
            DeptData::Income {
                income: Cents(1_300_000),
            },
        ),
        // 15 000: 25 % less, above the line: nothing.
        row(
            "i3",
            H2,
            DeptData::Income {
                income: Cents(1_500_000),
            },
        ),
        // A household the county does not hold: nothing.
        row(
            "x1",
            "610102001009009",
            DeptData::Labour {
                change: LabourChange::Death,
                persons: 1,
            },
        ),
    ];
    let s = evaluate(&rules, &rows, &facts());
    let got: Vec<(&str, SignalType, Option<u8>, i64)> = s
        .iter()
        .map(|s| (s.id.as_str(), s.kind, s.department, s.amount.0))
        .collect();
    assert_eq!(
        got,
        vec![
            ("WA-a1", SignalType::Accident, Some(11), 600_000),
            ("WI-i1", SignalType::IncomeDrop, None, 700_000),
            ("WI-i2", SignalType::IncomeDrop, None, 1_300_000),
            ("WL-l1", SignalType::Unemployment, Some(6), 0),
            ("WL-l2", SignalType::Labour, Some(6), 0),
        ]
    );
    assert!(s
        .iter()
        .filter(|s| s.id.starts_with("WI-"))
        .all(|s| s.source == SignalSource::DataComparison));
    // Only disabilities: l1 no longer fires; the labour rule off: neither.
    let mut r2 = rules.clone();
    r2.labour.changes = vec!["disability".into()];
    assert_eq!(
        evaluate(&r2, &rows, &facts())
            .iter()
            .filter(|s| s.id.starts_with("WL-"))
            .count(),
        1
    );
    r2.labour.enabled = false;
    assert_eq!(
        evaluate(&r2, &rows, &facts())
            .iter()
            .filter(|s| s.id.starts_with("WL-"))
            .count(),
        0
    );
}

#[test]
fn a_rerun_changes_nothing_and_a_new_threshold_shows_its_difference() {
    let rules = WarningRules::default();
    let rows = vec![
        medical("m1", H1, date(2026, 1, 5), 6_000),
        medical("m2", H1, date(2026, 2, 5), 6_000),
        medical("n1", H2, date(2026, 2, 1), 10_500),
    ];
    let first = evaluate(&rules, &rows, &facts());
    assert_eq!(first.len(), 2);
    // Held: what the first run made, plus a signal not made by the rules (kept out of the
    // comparison).
    let mut held = first.clone();
    let mut other = first[0].clone();
    other.id = "S-7".into();
    held.push(other);
    let d = diff(&evaluate(&rules, &rows, &facts()), &held);
    assert_eq!(
        (d.new.len(), d.changed.len(), d.stale.len(), d.unchanged),
        (0, 0, 0, 2)
    );
    // A threshold of 11 000: H1's 12 000 still passes (same signal), H2's 10 500 no longer
    // does (stale); of 5 000: H1 passes on m2 … no, on m1 (6 000 > 5 000): m2's signal goes
    // stale and m1's is new; H2 unchanged.
    let mut r = rules.clone();
    r.medical.above = 11_000.0;
    let d = diff(&evaluate(&r, &rows, &facts()), &held);
    assert_eq!(
        (d.new.len(), d.changed.len(), d.stale.len(), d.unchanged),
        (0, 0, 1, 1)
    );
    assert_eq!(d.stale[0].id, "WM-n1");
    r.medical.above = 5_000.0;
    let d = diff(&evaluate(&r, &rows, &facts()), &held);
    assert_eq!(
        d.new.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["WM-m1"]
    );
    assert_eq!(
        d.stale.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["WM-m2"]
    );
    assert_eq!(d.unchanged, 1);
    // A changed amount shows as changed.
    let mut held2 = first.clone();
    held2[0].amount = Cents(1);
    let d = diff(&first, &held2);
    assert_eq!(d.changed.len(), 1);
}

#[test]
fn rules_files_are_checked_and_the_reference_file_is_the_default() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/warning-rules.toml"
    ))
    .expect("deploy/warning-rules.toml");
    assert_eq!(
        WarningRules::parse(&text).expect("parses"),
        WarningRules::default()
    );
    assert_eq!(WarningRules::parse("").unwrap(), WarningRules::default());
    for (bad, says) in [
        ("[medical]\nabove = -1.0", "medical.above"),
        ("[medical]\ndepartment = 31", "medical.department"),
        ("[labour]\nchanges = [\"retired\"]", "labour.changes"),
        ("[income]\ndrop_share = 1.5", "income.drop_share"),
        ("[medical]\nabov = 1.0", "abov"),
        ("[monitoring_line]\nnext = 1.0", "not a year"),
    ] {
        let e = WarningRules::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let r = WarningRules::default();
    assert_eq!(r.line_on(date(2026, 6, 1)), Cents(760_000));
    assert_eq!(r.line_on(date(2030, 6, 1)), Cents(760_000));
    assert_eq!(r.line_on(date(2020, 6, 1)), Cents(700_000));
    assert_eq!(r.line_on(date(2025, 1, 1)), Cents(730_000));
}
