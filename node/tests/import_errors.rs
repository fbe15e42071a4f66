//! Import of interchange files (SPEC.md "County data" and "Interchange files", issue #2).
//!
//! Bad input must get a clear error naming the file, the line and the field, and must leave
//! the store exactly as it was: every test of a bad file takes a snapshot of the store (all
//! records of every kind, the division registry, every statistics cell and the change-log
//! head) before the import and compares it after. Good input is idempotent by record id, a
//! changed record is a correction that moves statistics from the old to the new values, JSON
//! lines and any column order are accepted.
//!
//! The library tests pass `today` explicitly; the CLI tests run the real binary, which uses
//! today's date in China, so their fixture dates lie in the past (up to 2026-11-20).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bottomline::division::Code;
use bottomline::domain::{Record, RecordKind};
use bottomline::import::{import_file, import_files, FileReport, ImportError, RowError};
use bottomline::ledger::Ledger;
use bottomline::period::Period;
use bottomline::stats::{CellKey, Indicators};
use bottomline::store::StoreOptions;
use jiff::civil::{date, Date};
use tempfile::TempDir;

const COUNTY: &str = "610102";
const TODAY: Date = date(2026, 11, 24);

// ---------------------------------------------------------------------------------------
// Fixture data. Hand-computed expectations are in `happy_path_statistics_match_hand_counts`.

/// The province down to three villages of the node's county, and one village of the
/// neighbouring county 610103 (a province-wide registry is what `gen` writes).
const DIVISIONS: &str = "\
code,name,level,parent
61,陕西省,province,
6101,西安市,city,61
610102,新城区,county,6101
610102001,西一路街道,town,610102
610102001001,一村,village,610102001
610102001002,二村,village,610102001
610102002,长乐中路街道,town,610102
610102002001,三村,village,610102002
610103,碑林区,county,6101
610103001,南院门街道,town,610103
610103001001,四村,village,610103001
";

/// 11010519491231002X is the sample resident ID of GB 11643 (valid check digit).
const HOUSEHOLDS: &str = "\
household_code,village_code,members,alleviated,income,head_name,id_number
6101020010010001,610102001001,4,1,5200.50,张三,11010519491231002X
6101020010010002,610102001001,3,0,8000,,
6101020010020001,610102001002,5,1,4100,,
6101020020010001,610102002001,2,0,9100,,
";

/// hh 0001 (4 members) identified on Monday 2026-11-16 (first day of 2026-W47);
/// hh 0020001 (5 members) identified 2026-10-05 and eliminated 2026-11-18.
const MONITORED: &str = "\
household_code,category,identified_date,eliminated_date
6101020010010001,unstable_alleviated,2026-11-16,
6101020010020001,marginal,2026-10-05,2026-11-18
";

/// s1, s2 in village 610102001001 in 2026-W47; s3 in town 610102002 in 2026-W46.
const SIGNALS: &str = "\
id,household_code,source,type,department,amount,date
s1,6101020010010001,department,medical,7,12000.50,2026-11-17
s2,6101020010010002,grid_check,income_drop,,0,2026-11-18
s3,6101020020010001,self_declared,disaster,,300,2026-11-10
";

/// c1 included after 14 days (within the deadline), decided in 2026-W47; c2 pending;
/// c3 rejected in October, green channel.
const CASES: &str = "\
id,household_code,discovered_date,decided_date,outcome,green_channel,stage
c1,6101020010010001,2026-11-02,2026-11-16,included,0,
c2,6101020010010002,2026-11-03,,pending,0,village_review
c3,6101020020010001,2026-10-01,2026-10-20,rejected,1,
";

/// All in 2026-W47: 1234.56 + 0.07 + 100.1 = 1334.73 yuan.
const MEASURES: &str = "\
id,household_code,type,date,amount
m1,6101020010010001,medical,2026-11-17,1234.56
m2,6101020010010001,industry,2026-11-19,0.07
m3,6101020010020001,medical,2026-11-20,100.1
";

const RECORD_FILES: [(&str, &str); 5] = [
    ("households.csv", HOUSEHOLDS),
    ("monitored.csv", MONITORED),
    ("signals.csv", SIGNALS),
    ("cases.csv", CASES),
    ("measures.csv", MEASURES),
];

/// A correction of a stored record that would change statistics cells, to put in front of a
/// bad row: the file must be refused whole, so the correction must not be applied either.
fn good_correction(file: &str) -> &'static str {
    match file {
        "households.csv" => "6101020010010001,610102001001,7,1,5200.50",
        "monitored.csv" => "6101020010010001,unstable_alleviated,2026-11-10,",
        "signals.csv" => "s1,6101020010010001,self_declared,accident,,50,2026-11-03",
        "cases.csv" => "c4,6101020020010001,2026-11-01,2026-11-05,included,1,",
        "measures.csv" => "m1,6101020010010001,housing,2026-11-02,99.99",
        other => panic!("no correction for {other}"),
    }
}

/// The header line of a record file as in the fixture (households without the optional
/// personal columns).
fn header(file: &str) -> &'static str {
    match file {
        "households.csv" => "household_code,village_code,members,alleviated,income",
        "monitored.csv" => "household_code,category,identified_date,eliminated_date",
        "signals.csv" => "id,household_code,source,type,department,amount,date",
        "cases.csv" => "id,household_code,discovered_date,decided_date,outcome,green_channel,stage",
        "measures.csv" => "id,household_code,type,date,amount",
        other => panic!("no header for {other}"),
    }
}

/// Header, a good correction on line 2, then `bad` on line 3.
fn with_bad_row(file: &str, bad: &str) -> String {
    format!("{}\n{}\n{bad}\n", header(file), good_correction(file))
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn county_code() -> Code {
    Code::parse(COUNTY).expect("county code")
}

fn period(p: &str) -> Period {
    Period::parse(p).expect("period")
}

/// Open (initialising if needed) the data dir of county 610102 in this process.
fn open_ledger(dir: &Path) -> Ledger {
    Ledger::open_or_init(dir, Some(county_code()), &StoreOptions::default())
        .unwrap_or_else(|e| panic!("open ledger {}: {e}", dir.display()))
}

/// A county node's data dir plus a directory for input files.
struct Node {
    tmp: TempDir,
    ledger: Ledger,
    today: Date,
}

impl Node {
    /// A fresh data dir of county 610102, with no data.
    fn empty() -> Node {
        Node::empty_at(TODAY)
    }

    fn empty_at(today: Date) -> Node {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("in")).expect("mkdir in");
        let ledger = open_ledger(&tmp.path().join("data"));
        Node { tmp, ledger, today }
    }

    /// Divisions only.
    fn with_divisions() -> Node {
        let n = Node::empty();
        n.import_ok("divisions.csv", DIVISIONS);
        n
    }

    /// Divisions and households.
    fn with_households() -> Node {
        let n = Node::with_divisions();
        n.import_ok("households.csv", HOUSEHOLDS);
        n
    }

    /// The whole fixture.
    fn full() -> Node {
        let n = Node::with_divisions();
        for (name, body) in RECORD_FILES {
            n.import_ok(name, body);
        }
        n
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.tmp.path().join("in").join(name);
        std::fs::write(&p, contents).expect("write input file");
        p
    }

    fn import(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<FileReport, ImportError> {
        let p = self.write(name, contents);
        import_file(&self.ledger, &p, None, self.today, &mut |_| {})
    }

    #[track_caller]
    fn import_ok(&self, name: &str, contents: impl AsRef<[u8]>) -> FileReport {
        match self.import(name, contents) {
            Ok(r) => r,
            Err(e) => panic!("import of {name} failed:\n{e}"),
        }
    }

    /// Import a file that must be refused; asserts the store did not change at all.
    #[track_caller]
    fn refused(&self, name: &str, contents: impl AsRef<[u8]>) -> ImportError {
        let before = Snapshot::of(&self.ledger);
        let err = match self.import(name, contents) {
            Ok(r) => panic!("import of {name} was accepted: {r:?}"),
            Err(e) => e,
        };
        let after = Snapshot::of(&self.ledger);
        before.assert_same(
            &after,
            &format!("after the refused import of {name}: {err}"),
        );
        err
    }

    fn indicators(&self, division: &str, p: &str) -> Indicators {
        self.ledger
            .indicators(Code::parse(division).expect("code"), period(p))
            .expect("indicators")
    }

    fn count(&self, division: &str, p: &str, indicator: &str, dimension: &str) -> i64 {
        let ind = self.indicators(division, p);
        assert!(
            ind.get(indicator, dimension).is_some(),
            "no row {indicator}/{dimension} in the indicators of {division} {p}"
        );
        ind.count(indicator, dimension)
    }

    fn records(&self, kind: RecordKind) -> Vec<Record> {
        self.ledger
            .records(kind)
            .collect::<Result<Vec<_>, _>>()
            .expect("records")
    }

    /// The stored cells equal a recomputation from the stored records.
    #[track_caller]
    fn assert_cells_consistent(&self) {
        assert_eq!(
            self.ledger.all_cells().expect("cells"),
            self.ledger.recompute_cells().expect("recompute"),
            "stored cells differ from a recomputation from the records"
        );
    }
}

/// Everything an import can change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    divisions: Vec<(String, String)>,
    records: Vec<Record>,
    cells: BTreeMap<CellKey, i64>,
    cell_seq: u64,
}

impl Snapshot {
    fn of(ledger: &Ledger) -> Snapshot {
        let mut records = Vec::new();
        for kind in RecordKind::ALL {
            for r in ledger.records(kind) {
                records.push(r.expect("record"));
            }
        }
        Snapshot {
            divisions: ledger
                .registry()
                .iter()
                .map(|d| (d.code.to_string(), d.name.clone()))
                .collect(),
            records,
            cells: ledger.all_cells().expect("cells"),
            cell_seq: ledger.cell_seq().expect("cell seq"),
        }
    }

    #[track_caller]
    fn assert_same(&self, after: &Snapshot, context: &str) {
        assert_eq!(
            self.divisions, after.divisions,
            "divisions changed {context}"
        );
        assert_eq!(self.records, after.records, "records changed {context}");
        assert_eq!(
            self.cells, after.cells,
            "statistics cells changed {context}"
        );
        assert_eq!(self.cell_seq, after.cell_seq, "change log moved {context}");
    }
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(OsStr::to_str).unwrap_or_default()
}

/// The error is a row error of `file` with exactly one bad row, at `line`, about `field`.
/// Returns the reason.
#[track_caller]
fn row_error(err: &ImportError, file: &str, line: u64, field: &str) -> String {
    let ImportError::Rows {
        file: f,
        errors,
        total,
    } = err
    else {
        panic!("expected bad rows of {file}, got: {err:?}");
    };
    assert_eq!(file_name(f), file, "{err}");
    assert_eq!(errors.len(), 1, "expected exactly one bad row, got:\n{err}");
    assert_eq!(*total, 1, "{err}");
    let RowError {
        line: l,
        field: fld,
        reason,
    } = &errors[0];
    assert_eq!(*l, line, "line of the error: {err}");
    assert_eq!(fld.as_deref(), Some(field), "field of the error: {err}");
    let shown = err.to_string();
    assert!(
        shown.contains(file),
        "message does not name the file: {shown}"
    );
    assert!(
        shown.contains(&format!("line {line}, field {field}: ")),
        "message does not name line and field: {shown}"
    );
    assert!(
        shown.contains("nothing was imported"),
        "message does not say the file was not imported: {shown}"
    );
    reason.clone()
}

/// The error is about `file` as a whole. Returns the reason.
#[track_caller]
fn file_error(err: &ImportError, file: &str) -> String {
    let ImportError::File { file: f, reason } = err else {
        panic!("expected an error about the whole of {file}, got: {err:?}");
    };
    assert_eq!(file_name(f), file, "{err}");
    let shown = err.to_string();
    assert!(shown.contains(file), "{shown}");
    assert!(shown.contains("nothing was imported"), "{shown}");
    reason.clone()
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

// ---------------------------------------------------------------------------------------
// Good input.

#[test]
fn happy_path_statistics_match_hand_counts() {
    let n = Node::with_divisions();
    // Given out of order: the import sorts them into dependency order.
    let paths: Vec<PathBuf> = RECORD_FILES
        .iter()
        .rev()
        .map(|(name, body)| n.write(name, body))
        .collect();
    let mut done = Vec::new();
    let reports = import_files(&n.ledger, &paths, None, TODAY, &mut |_| {}, &mut |r| {
        done.push(file_name(&r.file).to_string())
    })
    .expect("import");
    assert_eq!(
        done,
        [
            "households.csv",
            "monitored.csv",
            "signals.csv",
            "cases.csv",
            "measures.csv"
        ]
    );
    let inserted: Vec<u64> = reports.iter().map(|r| r.applied.inserted).collect();
    assert_eq!(inserted, [4, 2, 3, 3, 3]);
    assert_eq!(n.records(RecordKind::Household).len(), 4);
    assert_eq!(n.records(RecordKind::Signal).len(), 3);

    let c = |d: &str, p: &str, i: &str, dim: &str| n.count(d, p, i, dim);

    // Signals: s1, s2 (village 610102001001, 2026-11-17/18) in W47; s3 (town 610102002) in W46.
    for d in [COUNTY, "610102001", "610102001001"] {
        assert_eq!(c(d, "2026-W47", "signals", "total"), 2, "{d}");
        assert_eq!(c(d, "2026-W47", "signals", "source=department"), 1, "{d}");
        assert_eq!(c(d, "2026-W47", "signals", "source=grid_check"), 1, "{d}");
        assert_eq!(c(d, "2026-W47", "signals", "type=medical"), 1, "{d}");
        assert_eq!(c(d, "2026-W47", "signals", "type=income_drop"), 1, "{d}");
        assert_eq!(c(d, "2026-W47", "signals", "department=7"), 1, "{d}");
    }
    assert_eq!(c("610102001", "2026-W46", "signals", "total"), 0);
    assert_eq!(c("610102001001", "2026-W46", "signals", "total"), 0);
    assert_eq!(c(COUNTY, "2026-W46", "signals", "total"), 1);
    assert_eq!(c("610102001002", "2026-W47", "signals", "total"), 0);
    assert_eq!(c("610102002", "2026-W47", "signals", "total"), 0);
    assert_eq!(c("610102002", "2026-W46", "signals", "total"), 1);
    assert_eq!(c(COUNTY, "2026-W46", "signals", "type=disaster"), 1);
    assert_eq!(c(COUNTY, "2026-11", "signals", "total"), 3);
    assert_eq!(c(COUNTY, "2026-Q4", "signals", "total"), 3);
    assert_eq!(c(COUNTY, "2026-H2", "signals", "total"), 3);
    assert_eq!(c(COUNTY, "2026", "signals", "total"), 3);
    assert_eq!(c(COUNTY, "2026-10", "signals", "total"), 0);

    // Monitoring: hh 0001 (4 persons, unstable_alleviated) identified 2026-11-16;
    // hh 0020001 (5 persons, marginal) identified 2026-10-05, eliminated 2026-11-18.
    let cat_u = "category=unstable_alleviated";
    let cat_m = "category=marginal";
    for p in ["2026-W47", "2026-11"] {
        assert_eq!(c(COUNTY, p, "monitored_persons", cat_u), 4, "{p}");
        assert_eq!(c(COUNTY, p, "monitored_persons", "total"), 4, "{p}");
        assert_eq!(c(COUNTY, p, "monitored_households", "total"), 1, "{p}");
        assert_eq!(c(COUNTY, p, "monitored_households", cat_m), 0, "{p}");
        assert_eq!(c(COUNTY, p, "newly_identified", "total"), 1, "{p}");
        assert_eq!(c(COUNTY, p, "eliminated", cat_m), 1, "{p}");
    }
    assert_eq!(c(COUNTY, "2026-W46", "monitored_persons", cat_u), 0);
    assert_eq!(c(COUNTY, "2026-W46", "monitored_persons", cat_m), 5);
    assert_eq!(c(COUNTY, "2026-W46", "monitored_persons", "total"), 5);
    assert_eq!(c(COUNTY, "2026-W46", "newly_identified", "total"), 0);
    assert_eq!(c(COUNTY, "2026-10", "newly_identified", cat_m), 1);
    assert_eq!(c(COUNTY, "2026-10", "monitored_households", "total"), 1);
    assert_eq!(c(COUNTY, "2026-09", "monitored_households", "total"), 0);
    assert_eq!(
        c("610102001001", "2026-W47", "monitored_persons", "total"),
        4
    );
    assert_eq!(
        c("610102001002", "2026-W47", "monitored_persons", "total"),
        0
    );
    assert_eq!(
        c("610102001002", "2026-W46", "monitored_persons", "total"),
        5
    );
    assert_eq!(c("610102002", "2026-W46", "monitored_persons", "total"), 0);

    // Cases: c1 included on 2026-11-16, 14 days after discovery; c3 rejected in October.
    assert_eq!(c(COUNTY, "2026-W47", "declarations_approved", "total"), 1);
    assert_eq!(
        c(COUNTY, "2026-W47", "identified_within_15_days", "total"),
        1
    );
    assert_eq!(c(COUNTY, "2026-11", "declarations_received", "total"), 2);
    assert_eq!(c(COUNTY, "2026-10", "declarations_received", "total"), 1);
    assert_eq!(c(COUNTY, "2026-10", "declarations_rejected", "total"), 1);
    assert_eq!(c(COUNTY, "2026-10", "green_channel_cases", "total"), 1);

    // Measures: exact to the cent.
    assert_eq!(c(COUNTY, "2026-W47", "measures", "total"), 3);
    assert_eq!(c(COUNTY, "2026-W47", "measures", "type=medical"), 2);
    assert_eq!(c(COUNTY, "2026-W47", "measure_amount", "total"), 133_473);
    assert_eq!(
        c(COUNTY, "2026-W47", "measure_amount", "type=medical"),
        133_466
    );
    assert_eq!(c(COUNTY, "2026-W47", "measure_amount", "type=industry"), 7);
    assert_eq!(c("610102001", "2026", "measure_amount", "total"), 133_473);
    assert_eq!(
        c("610102001002", "2026-11", "measure_amount", "total"),
        10_010
    );
    assert_eq!(c("610102002", "2026-11", "measure_amount", "total"), 0);

    // A division of the county without records, and an empty period: all zero.
    let ind = n.indicators("610102002001", "2026-W30");
    assert!(!ind.rows.is_empty());
    for r in &ind.rows {
        if let bottomline::stats::Value::Count(v) | bottomline::stats::Value::Fen(v) = r.value {
            assert_eq!(v, 0, "{} {}", r.indicator, r.dimension);
        }
    }
    n.assert_cells_consistent();
}

#[test]
fn dates_on_the_bounds_are_accepted() {
    let n = Node::with_households();
    n.import_ok(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         early,6101020010010001,grid_check,housing,,1,2015-01-01\n\
         today,6101020010010001,grid_check,housing,,1,2026-11-24\n",
    );
    assert_eq!(n.count(COUNTY, "2015", "signals", "total"), 1);
    assert_eq!(n.count(COUNTY, "2026-11", "signals", "total"), 1);
    n.assert_cells_consistent();
}

#[test]
fn reimporting_the_same_files_changes_nothing() {
    let n = Node::full();
    let before = Snapshot::of(&n.ledger);
    let r = n.import_ok("divisions.csv", DIVISIONS);
    assert_eq!(r.applied.inserted, 0, "{r:?}");
    for (name, body) in RECORD_FILES {
        let r = n.import_ok(name, body);
        let a = &r.applied;
        assert_eq!(
            (a.inserted, a.corrected, a.deleted, a.cells_written),
            (0, 0, 0, 0),
            "{name}: {a:?}"
        );
        assert_eq!(a.unchanged, r.rows, "{name}: {a:?}");
    }
    before.assert_same(&Snapshot::of(&n.ledger), "after re-importing every file");
    // Reopening the data dir shows the same.
    let dir = n.tmp.path().join("data");
    drop(n.ledger);
    let reopened = open_ledger(&dir);
    before.assert_same(&Snapshot::of(&reopened), "after reopening");
}

#[test]
fn a_row_repeated_identically_in_one_file_counts_once() {
    let n = Node::with_households();
    n.import_ok(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         s1,6101020010010001,grid_check,housing,,1,2026-11-17\n\
         s1,6101020010010001,grid_check,housing,,1,2026-11-17\n",
    );
    assert_eq!(n.records(RecordKind::Signal).len(), 1);
    assert_eq!(n.count(COUNTY, "2026-W47", "signals", "total"), 1);
}

#[test]
fn ids_are_unique_per_kind_only() {
    let n = Node::with_households();
    n.import_ok(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         x1,6101020010010001,grid_check,water,,1,2026-11-17\n",
    );
    n.import_ok(
        "measures.csv",
        "id,household_code,type,date,amount\nx1,6101020010010002,other,2026-11-17,1\n",
    );
    n.import_ok(
        "cases.csv",
        "id,household_code,discovered_date,decided_date,outcome,green_channel,stage\n\
         x1,6101020010010001,2026-11-17,,pending,0,declared\n",
    );
    assert_eq!(n.records(RecordKind::Signal).len(), 1);
    assert_eq!(n.records(RecordKind::Measure).len(), 1);
    assert_eq!(n.records(RecordKind::Case).len(), 1);
    let w47 = n.indicators(COUNTY, "2026-W47");
    assert_eq!(w47.count("signals", "total"), 1);
    assert_eq!(w47.count("measures", "total"), 1);
    assert_eq!(w47.count("declarations_received", "total"), 1);
}

#[test]
fn changed_records_are_corrections_that_move_statistics() {
    let n = Node::full();
    // s1: department/medical on 2026-11-17 (W47) → grid_check/accident on 2026-11-10 (W46).
    let r = n.import_ok(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         s1,6101020010010001,grid_check,accident,,12000.50,2026-11-10\n",
    );
    assert_eq!((r.applied.inserted, r.applied.corrected), (0, 1));
    assert_eq!(n.records(RecordKind::Signal).len(), 3);
    assert_eq!(n.count(COUNTY, "2026-W47", "signals", "total"), 1);
    assert_eq!(
        n.count(COUNTY, "2026-W47", "signals", "source=department"),
        0
    );
    // Department rows are listed only when non-zero.
    let w47 = n.indicators(COUNTY, "2026-W47");
    assert_eq!(w47.get("signals", "department=7"), None);
    assert_eq!(n.count(COUNTY, "2026-W46", "signals", "total"), 2);
    assert_eq!(n.count(COUNTY, "2026-W46", "signals", "type=accident"), 1);
    assert_eq!(n.count("610102001", "2026-W46", "signals", "total"), 1);
    assert_eq!(n.count(COUNTY, "2026-11", "signals", "total"), 3);

    // s2 moves to a household of another town (a wrongly keyed household code): the signal
    // leaves village 610102001001 and town 610102001 and joins 610102002001 and 610102002.
    let r = n.import_ok(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         s2,6101020020010001,grid_check,income_drop,,0,2026-11-18\n",
    );
    assert_eq!(r.applied.corrected, 1);
    assert_eq!(n.count("610102001", "2026-W47", "signals", "total"), 0);
    assert_eq!(n.count("610102001001", "2026-W47", "signals", "total"), 0);
    assert_eq!(n.count("610102002", "2026-W47", "signals", "total"), 1);
    assert_eq!(n.count("610102002001", "2026-W47", "signals", "total"), 1);
    assert_eq!(n.count(COUNTY, "2026-W47", "signals", "total"), 1);

    // m1: 1234.56 medical → 1000.01 housing, same day.
    let r = n.import_ok(
        "measures.csv",
        "id,household_code,type,date,amount\nm1,6101020010010001,housing,2026-11-17,1000.01\n",
    );
    assert_eq!(r.applied.corrected, 1);
    assert_eq!(
        n.count(COUNTY, "2026-W47", "measure_amount", "total"),
        100_001 + 7 + 10_010
    );
    assert_eq!(
        n.count(COUNTY, "2026-W47", "measure_amount", "type=medical"),
        10_010
    );
    assert_eq!(
        n.count(COUNTY, "2026-W47", "measure_amount", "type=housing"),
        100_001
    );
    assert_eq!(n.count(COUNTY, "2026-W47", "measures", "total"), 3);

    // The monitoring row of hh 0020001: category marginal → sudden_hardship, not eliminated.
    let r = n.import_ok(
        "monitored.csv",
        "household_code,category,identified_date,eliminated_date\n\
         6101020010020001,sudden_hardship,2026-10-05,\n",
    );
    assert_eq!(r.applied.corrected, 1);
    let w47 = n.indicators(COUNTY, "2026-W47");
    assert_eq!(w47.count("monitored_households", "total"), 2);
    assert_eq!(w47.count("monitored_persons", "total"), 9);
    assert_eq!(
        w47.count("monitored_persons", "category=sudden_hardship"),
        5
    );
    assert_eq!(w47.count("monitored_persons", "category=marginal"), 0);
    assert_eq!(w47.count("eliminated", "total"), 0);
    assert_eq!(
        n.count(COUNTY, "2026-10", "newly_identified", "category=marginal"),
        0
    );

    // A pending case moves forward: c2 village_review → included on 2026-11-20.
    let r = n.import_ok(
        "cases.csv",
        "id,household_code,discovered_date,decided_date,outcome,green_channel,stage\n\
         c2,6101020010010002,2026-11-03,2026-11-20,included,0,\n",
    );
    assert_eq!(r.applied.corrected, 1);
    assert_eq!(
        n.count(COUNTY, "2026-W47", "declarations_approved", "total"),
        2
    );
    // 17 days: approved, but not within the 15-day deadline.
    assert_eq!(
        n.count(COUNTY, "2026-W47", "identified_within_15_days", "total"),
        1
    );
    n.assert_cells_consistent();
}

#[test]
fn household_correction_recounts_monitored_persons() {
    let n = Node::full();
    n.import_ok(
        "households.csv",
        "household_code,village_code,members,alleviated,income\n\
         6101020010010001,610102001001,6,1,5200.50\n",
    );
    assert_eq!(n.count(COUNTY, "2026-W47", "monitored_persons", "total"), 6);
    assert_eq!(n.count(COUNTY, "2026-11", "monitored_persons", "total"), 6);
    assert_eq!(
        n.count("610102001001", "2026-W47", "monitored_persons", "total"),
        6
    );
    n.assert_cells_consistent();
}

/// hh 0001 is monitored as unstable_alleviated, which needs alleviated=1. A correction of the
/// household to alleviated=0 must not leave a store that refuses its own, unchanged,
/// monitored.csv: either the correction is refused naming `alleviated`, or re-importing the
/// same monitored.csv still changes nothing (SPEC: same id and same content changes nothing).
#[test]
fn household_correction_keeps_monitored_rows_importable() {
    let n = Node::full();
    let before = Snapshot::of(&n.ledger);
    match n.import(
        "households.csv",
        "household_code,village_code,members,alleviated,income\n\
         6101020010010001,610102001001,4,0,5200.50\n",
    ) {
        Err(err) => {
            row_error(&err, "households.csv", 2, "alleviated");
            before.assert_same(&Snapshot::of(&n.ledger), "after a refused correction");
        }
        Ok(_) => match n.import("monitored.csv", MONITORED) {
            Ok(r) => assert_eq!(r.applied.unchanged, r.rows, "{:?}", r.applied),
            Err(e) => panic!(
                "the household correction alleviated=0 was accepted, and now the unchanged \
                 monitored.csv is refused:\n{e}"
            ),
        },
    }
}

/// The same data as the CSV fixture, as JSON lines (numbers and booleans where natural).
const HOUSEHOLDS_JSONL: &str = r#"{"household_code":"6101020010010001","village_code":"610102001001","members":4,"alleviated":true,"income":"5200.50","head_name":"张三","id_number":"11010519491231002X"}
{"household_code":"6101020010010002","village_code":"610102001001","members":3,"alleviated":0,"income":8000}

{"household_code":"6101020010020001","village_code":"610102001002","members":"5","alleviated":"1","income":4100,"head_name":null}
{"income":"9100","alleviated":0,"members":2,"village_code":"610102002001","household_code":"6101020020010001"}
"#;

const MONITORED_JSONL: &str = r#"{"household_code":"6101020010010001","category":"unstable_alleviated","identified_date":"2026-11-16"}
{"household_code":"6101020010020001","category":"marginal","identified_date":"2026-10-05","eliminated_date":"2026-11-18"}
"#;

const SIGNALS_JSONL: &str = r#"{"id":"s1","household_code":"6101020010010001","source":"department","type":"medical","department":7,"amount":"12000.50","date":"2026-11-17"}
{"id":"s2","household_code":"6101020010010002","source":"grid_check","type":"income_drop","department":"","amount":0,"date":"2026-11-18"}
{"id":"s3","household_code":"6101020020010001","source":"self_declared","type":"disaster","amount":300,"date":"2026-11-10"}
"#;

const CASES_JSONL: &str = r#"{"id":"c1","household_code":"6101020010010001","discovered_date":"2026-11-02","decided_date":"2026-11-16","outcome":"included","green_channel":0}
{"id":"c2","household_code":"6101020010010002","discovered_date":"2026-11-03","outcome":"pending","green_channel":false,"stage":"village_review"}
{"id":"c3","household_code":"6101020020010001","discovered_date":"2026-10-01","decided_date":"2026-10-20","outcome":"rejected","green_channel":1}
"#;

const MEASURES_JSONL: &str = r#"{"id":"m1","household_code":"6101020010010001","type":"medical","date":"2026-11-17","amount":"1234.56"}
{"id":"m2","household_code":"6101020010010001","type":"industry","date":"2026-11-19","amount":"0.07"}
{"id":"m3","household_code":"6101020010020001","type":"medical","date":"2026-11-20","amount":100.1}
"#;

#[test]
fn json_lines_give_the_same_store_as_csv() {
    let csv = Node::full();
    let json = Node::with_divisions();
    for (name, body) in [
        ("households.jsonl", HOUSEHOLDS_JSONL),
        ("monitored.jsonl", MONITORED_JSONL),
        ("signals.jsonl", SIGNALS_JSONL),
        ("cases.jsonl", CASES_JSONL),
        ("measures.jsonl", MEASURES_JSONL),
    ] {
        json.import_ok(name, body);
    }
    let (a, b) = (Snapshot::of(&csv.ledger), Snapshot::of(&json.ledger));
    assert_eq!(a.records, b.records);
    assert_eq!(a.cells, b.cells);
    // And re-importing the CSV into the JSON-built store changes nothing.
    for (name, body) in RECORD_FILES {
        let r = json.import_ok(name, body);
        assert_eq!(r.applied.unchanged, r.rows, "{name}: {:?}", r.applied);
    }
    b.assert_same(&Snapshot::of(&json.ledger), "after re-importing as CSV");
}

#[test]
fn json_lines_unknown_field_is_refused_naming_it() {
    let n = Node::full();
    let err = n.refused(
        "signals.jsonl",
        format!(
            "{}\n{}\n",
            r#"{"id":"s9","household_code":"6101020010010001","source":"grid_check","type":"water","amount":"1","date":"2026-11-20"}"#,
            r#"{"id":"s10","household_code":"6101020010010001","source":"grid_check","type":"water","amount":"1","date":"2026-11-20","dept":3}"#
        ),
    );
    let reason = row_error(&err, "signals.jsonl", 2, "dept");
    assert_contains(&reason, "unknown field \"dept\"");
}

#[test]
fn json_lines_bad_value_names_line_and_field() {
    let n = Node::full();
    let err = n.refused(
        "households.jsonl",
        format!(
            "{}\n\n{}\n",
            r#"{"household_code":"6101020010010003","village_code":"610102001001","members":2,"alleviated":0,"income":1}"#,
            r#"{"household_code":"6101020010010004","village_code":"610102001001","members":-2,"alleviated":0,"income":1}"#
        ),
    );
    row_error(&err, "households.jsonl", 3, "members");
}

#[test]
fn json_lines_malformed_line_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.jsonl",
        "{\"id\":\"m9\",\"household_code\":\"6101020010010001\",\"type\":\"other\",\"date\":\"2026-11-20\",\"amount\":\"1\"}\n\
         {\"id\":\"m10\",\n",
    );
    let ImportError::Rows { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].line, 2, "{err}");
    assert_contains(&errors[0].reason, "not a JSON object");
}

#[test]
fn json_lines_empty_file_is_refused() {
    let n = Node::full();
    let err = n.refused("signals.jsonl", "\n\n");
    file_error(&err, "signals.jsonl");
}

#[test]
fn columns_may_come_in_any_order_and_optional_ones_may_be_absent() {
    let reference = Node::full();
    let n = Node::with_divisions();
    // Reversed columns; head_name and id_number given for one household only → the file has
    // them, empty for the others; a UTF-8 BOM and CRLF line ends as spreadsheets write them.
    n.import_ok(
        "households.csv",
        "\u{feff}id_number,head_name,income,alleviated,members,village_code,household_code\r\n\
         11010519491231002X,张三,5200.50,1,4,610102001001,6101020010010001\r\n\
         ,,8000,0,3,610102001001,6101020010010002\r\n\
         ,,4100,1,5,610102001002,6101020010020001\r\n\
         ,,9100,0,2,610102002001,6101020020010001\r\n",
    );
    n.import_ok(
        "monitored.csv",
        "eliminated_date,identified_date,household_code,category\n\
         ,2026-11-16,6101020010010001,unstable_alleviated\n\
         2026-11-18,2026-10-05,6101020010020001,marginal\n",
    );
    n.import_ok(
        "signals.csv",
        "date,amount,department,type,source,household_code,id\n\
         2026-11-17,12000.50,7,medical,department,6101020010010001,s1\n\
         2026-11-18,0,,income_drop,grid_check,6101020010010002,s2\n\
         2026-11-10,300,,disaster,self_declared,6101020020010001,s3\n",
    );
    // `stage` is optional: absent from this file, so no case may be pending.
    n.import_ok(
        "cases.csv",
        "green_channel,outcome,decided_date,discovered_date,household_code,id\n\
         0,included,2026-11-16,2026-11-02,6101020010010001,c1\n\
         1,rejected,2026-10-20,2026-10-01,6101020020010001,c3\n",
    );
    n.import_ok(
        "cases.csv",
        "id,stage,household_code,discovered_date,decided_date,outcome,green_channel\n\
         c2,village_review,6101020010010002,2026-11-03,,pending,0\n",
    );
    n.import_ok(
        "measures.csv",
        "amount,date,type,household_code,id\n\
         1234.56,2026-11-17,medical,6101020010010001,m1\n\
         0.07,2026-11-19,industry,6101020010010001,m2\n\
         100.1,2026-11-20,medical,6101020010020001,m3\n",
    );
    let (a, b) = (Snapshot::of(&reference.ledger), Snapshot::of(&n.ledger));
    assert_eq!(a.records, b.records);
    assert_eq!(a.cells, b.cells);
}

// ---------------------------------------------------------------------------------------
// Bad rows: each refused with file, line and field; the store stays as it was.

#[test]
fn unknown_village_code_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010090001,610102001009,2,0,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "village_code");
    assert_contains(&reason, "unknown division code 610102001009");
}

#[test]
fn malformed_village_code_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010009,61010200100,2,0,3000"),
    );
    row_error(&err, "households.csv", 3, "village_code");
}

#[test]
fn household_code_must_start_with_its_village_code() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010009,610102001002,2,0,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "village_code");
    assert_contains(&reason, "6101020010010009");
}

#[test]
fn division_with_unknown_parent_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "divisions.csv",
        "code,name,level,parent\n\
         610102002002,四村,village,610102002\n\
         610102003001,五村,village,610102003\n",
    );
    let reason = row_error(&err, "divisions.csv", 3, "parent");
    assert_contains(&reason, "unknown division code 610102003");
}

#[test]
fn division_with_wrong_level_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "divisions.csv",
        "code,name,level,parent\n\
         610102002002,四村,village,610102002\n\
         610102003,五街道,village,610102\n",
    );
    row_error(&err, "divisions.csv", 3, "level");
}

#[test]
fn division_listed_twice_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "divisions.csv",
        "code,name,level,parent\n\
         610102002002,四村,village,610102002\n\
         610102002002,五村,village,610102002\n",
    );
    // One error, on either copy, naming the other one.
    let ImportError::Rows { errors, total, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!((errors.len(), *total), (1, 1), "{err}");
    let e = &errors[0];
    assert_eq!(e.field.as_deref(), Some("code"), "{err}");
    let other = if e.line == 2 { 3 } else { 2 };
    assert!(e.line == 2 || e.line == 3, "{err}");
    assert_contains(&e.reason, &format!("line {other}"));
    assert_contains(&e.reason, "610102002002");
}

#[test]
fn village_under_a_county_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "divisions.csv",
        "code,name,level,parent\n\
         610102002002,四村,village,610102002\n\
         610102002003,五村,village,610102\n",
    );
    let reason = row_error(&err, "divisions.csv", 3, "parent");
    assert_contains(&reason, "610102002");
}

#[test]
fn division_with_unknown_level_name_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "divisions.csv",
        "code,name,level,parent\n\
         610102002002,四村,village,610102002\n\
         610102003,五街道,township,610102\n",
    );
    let reason = row_error(&err, "divisions.csv", 3, "level");
    assert_contains(&reason, "township");
}

#[test]
fn household_of_another_county_is_refused() {
    let n = Node::full();
    // 610103001001 is a registered village, but of county 610103.
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101030010010001,610103001001,2,0,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "household_code");
    assert_contains(&reason, "610103");
    assert_contains(&reason, COUNTY);
}

#[test]
fn signal_of_a_household_of_another_county_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101030010010001,grid_check,water,,1,2026-11-20",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "household_code");
    assert_contains(&reason, "610103");
}

#[test]
fn record_of_an_unknown_household_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        with_bad_row("measures.csv", "m9,6101020010010099,other,2026-11-20,1"),
    );
    let reason = row_error(&err, "measures.csv", 3, "household_code");
    assert_contains(&reason, "unknown household 6101020010010099");
}

#[test]
fn date_in_the_future_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,water,,1,2026-11-25",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "date");
    assert_contains(&reason, "2026-11-25 is in the future");
}

#[test]
fn identified_date_in_the_future_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "monitored.csv",
        with_bad_row("monitored.csv", "6101020010010002,marginal,2027-01-01,"),
    );
    let reason = row_error(&err, "monitored.csv", 3, "identified_date");
    assert_contains(&reason, "future");
}

#[test]
fn date_before_2015_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        with_bad_row("measures.csv", "m9,6101020010010001,other,2014-12-31,1"),
    );
    let reason = row_error(&err, "measures.csv", 3, "date");
    assert_contains(&reason, "2014-12-31 is before 2015-01-01");
}

#[test]
fn decided_date_before_2015_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c9,6101020010010002,2014-06-01,2014-06-10,rejected,0,",
        ),
    );
    row_error(&err, "cases.csv", 3, "discovered_date");
}

#[test]
fn impossible_calendar_date_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,water,,1,2026-02-30",
        ),
    );
    row_error(&err, "signals.csv", 3, "date");
}

#[test]
fn date_in_another_format_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,water,,1,2026/11/20",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "date");
    assert_contains(&reason, "yyyy-mm-dd");
}

#[test]
fn zero_members_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,0,0,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "members");
    assert_contains(&reason, "at least 1 member");
}

#[test]
fn negative_members_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,-3,0,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "members");
    assert_contains(&reason, "-3");
}

#[test]
fn non_numeric_members_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row(
            "households.csv",
            "6101020010010003,610102001001,four,0,3000",
        ),
    );
    row_error(&err, "households.csv", 3, "members");
}

#[test]
fn implausible_members_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,100,0,3000"),
    );
    row_error(&err, "households.csv", 3, "members");
}

#[test]
fn missing_required_value_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,2,,3000"),
    );
    let reason = row_error(&err, "households.csv", 3, "alleviated");
    assert_contains(&reason, "missing");
}

#[test]
fn bad_alleviated_flag_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,2,yes,3000"),
    );
    row_error(&err, "households.csv", 3, "alleviated");
}

#[test]
fn bad_id_number_check_digit_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        "household_code,village_code,members,alleviated,income,head_name,id_number\n\
         6101020010010003,610102001001,2,0,3000,李四,11010519491231002X\n\
         6101020010010004,610102001001,2,0,3000,王五,110105194912310021\n",
    );
    let reason = row_error(&err, "households.csv", 3, "id_number");
    assert_contains(&reason, "check digit");
}

#[test]
fn unknown_category_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "monitored.csv",
        with_bad_row("monitored.csv", "6101020010010002,poor,2026-11-20,"),
    );
    let reason = row_error(&err, "monitored.csv", 3, "category");
    assert_contains(&reason, "\"poor\"");
    assert_contains(&reason, "unstable_alleviated, marginal, sudden_hardship");
}

#[test]
fn unstable_alleviated_needs_an_alleviated_household() {
    let n = Node::full();
    // hh 0002 has alleviated=0.
    let err = n.refused(
        "monitored.csv",
        with_bad_row(
            "monitored.csv",
            "6101020010010002,unstable_alleviated,2026-11-20,",
        ),
    );
    let reason = row_error(&err, "monitored.csv", 3, "category");
    assert_contains(&reason, "alleviated");
}

#[test]
fn unknown_source_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,hotline,water,,1,2026-11-20",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "source");
    assert_contains(&reason, "\"hotline\"");
    assert_contains(&reason, "self_declared");
}

#[test]
fn unknown_signal_type_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,flood,,1,2026-11-20",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "type");
    assert_contains(&reason, "\"flood\"");
}

#[test]
fn unknown_measure_type_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        with_bad_row("measures.csv", "m9,6101020010010001,cash,2026-11-20,1"),
    );
    let reason = row_error(&err, "measures.csv", 3, "type");
    assert_contains(&reason, "\"cash\"");
}

#[test]
fn unknown_outcome_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c9,6101020010010002,2026-11-01,2026-11-05,approved,0,",
        ),
    );
    row_error(&err, "cases.csv", 3, "outcome");
}

#[test]
fn department_only_when_the_source_is_department() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,water,3,1,2026-11-20",
        ),
    );
    row_error(&err, "signals.csv", 3, "department");
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,department,water,,1,2026-11-20",
        ),
    );
    row_error(&err, "signals.csv", 3, "department");
    let err = n.refused(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,department,water,31,1,2026-11-20",
        ),
    );
    let reason = row_error(&err, "signals.csv", 3, "department");
    assert_contains(&reason, "31");
}

#[test]
fn amount_with_three_decimals_or_negative_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        with_bad_row("measures.csv", "m9,6101020010010001,other,2026-11-20,1.005"),
    );
    row_error(&err, "measures.csv", 3, "amount");
    let err = n.refused(
        "measures.csv",
        with_bad_row("measures.csv", "m9,6101020010010001,other,2026-11-20,-5"),
    );
    let reason = row_error(&err, "measures.csv", 3, "amount");
    assert_contains(&reason, "negative");
}

#[test]
fn same_id_with_different_content_in_one_file_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         s9,6101020010010001,grid_check,water,,1,2026-11-20\n\
         s1,6101020010010001,grid_check,water,,1,2026-11-20\n\
         s9,6101020010010001,grid_check,water,,2,2026-11-20\n",
    );
    let reason = row_error(&err, "signals.csv", 4, "id");
    assert_contains(&reason, "\"s9\"");
    assert_contains(&reason, "line 2");
}

#[test]
fn same_household_twice_with_different_content_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "monitored.csv",
        "household_code,category,identified_date,eliminated_date\n\
         6101020010010002,marginal,2026-11-20,\n\
         6101020010010002,sudden_hardship,2026-11-20,\n",
    );
    row_error(&err, "monitored.csv", 3, "household_code");
}

#[test]
fn risk_eliminated_before_identified_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "monitored.csv",
        with_bad_row(
            "monitored.csv",
            "6101020010010002,marginal,2026-11-20,2026-11-19",
        ),
    );
    let reason = row_error(&err, "monitored.csv", 3, "eliminated_date");
    assert_contains(&reason, "identified");
}

#[test]
fn correction_that_eliminates_before_identification_is_refused() {
    let n = Node::full();
    // The stored row of hh 0001 was identified 2026-11-16; a correction eliminating the
    // risk on 2026-11-15 skips the identification.
    let err = n.refused(
        "monitored.csv",
        "household_code,category,identified_date,eliminated_date\n\
         6101020010010001,unstable_alleviated,2026-11-16,2026-11-15\n",
    );
    row_error(&err, "monitored.csv", 2, "eliminated_date");
}

#[test]
fn case_decided_before_discovery_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c9,6101020010010002,2026-11-10,2026-11-09,included,0,",
        ),
    );
    row_error(&err, "cases.csv", 3, "decided_date");
}

#[test]
fn pending_case_needs_a_stage_and_no_decision() {
    let n = Node::full();
    let err = n.refused(
        "cases.csv",
        with_bad_row("cases.csv", "c9,6101020010010002,2026-11-10,,pending,0,"),
    );
    row_error(&err, "cases.csv", 3, "stage");
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c9,6101020010010002,2026-11-10,2026-11-12,pending,0,town_check",
        ),
    );
    row_error(&err, "cases.csv", 3, "decided_date");
    let err = n.refused(
        "cases.csv",
        with_bad_row("cases.csv", "c9,6101020010010002,2026-11-10,,included,0,"),
    );
    row_error(&err, "cases.csv", 3, "decided_date");
}

#[test]
fn case_cannot_go_back_in_the_workflow() {
    let n = Node::full();
    // c1 is included: it cannot return to a pending stage.
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c1,6101020010010001,2026-11-02,,pending,0,declared",
        ),
    );
    let reason = row_error(&err, "cases.csv", 3, "outcome");
    assert_contains(&reason, "cannot go back");
    // c2 is at village_review: it cannot return to declared.
    let err = n.refused(
        "cases.csv",
        with_bad_row(
            "cases.csv",
            "c2,6101020010010002,2026-11-03,,pending,0,declared",
        ),
    );
    row_error(&err, "cases.csv", 3, "stage");
}

#[test]
fn a_file_with_one_bad_row_is_rejected_whole() {
    let n = Node::with_households();
    let mut body = String::from(header("signals.csv"));
    body.push('\n');
    for i in 0..20 {
        body.push_str(&format!(
            "g{i},6101020010010001,grid_check,water,,1,2026-11-{:02}\n",
            i + 1
        ));
    }
    body.push_str("bad,6101020010010001,grid_check,water,,1,2030-01-01\n");
    let err = n.refused("signals.csv", body);
    row_error(&err, "signals.csv", 22, "date");
    assert!(n.records(RecordKind::Signal).is_empty());
    assert_eq!(n.count(COUNTY, "2026-11", "signals", "total"), 0);
}

#[test]
fn every_bad_row_of_a_file_is_listed_in_line_order() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        "household_code,village_code,members,alleviated,income\n\
         6101020010010003,610102001001,2,0,3000\n\
         6101020010010004,610102001001,0,0,3000\n\
         6101020010010005,610102001001,2,maybe,3000\n\
         6101020010010006,610102001001,2,0,3000\n\
         6101020010010007,610102001001,2,0,-1\n",
    );
    let ImportError::Rows { errors, total, .. } = &err else {
        panic!("{err:?}");
    };
    let got: Vec<(u64, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (3, Some("members")),
            (4, Some("alleviated")),
            (6, Some("income"))
        ],
        "{err}"
    );
    assert_eq!(*total, 3);
}

/// The module docs of `import` promise "an error per bad row": a row that parses but breaks a
/// rule checked against the store (here a future date) must be listed along with a row that
/// does not parse.
#[test]
fn bad_rows_of_both_kinds_are_listed_together() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        "id,household_code,source,type,department,amount,date\n\
         s8,6101020010010001,grid_check,water,,1,2030-01-01\n\
         s9,6101020010010001,hotline,water,,1,2026-11-20\n",
    );
    let ImportError::Rows { errors, total, .. } = &err else {
        panic!("{err:?}");
    };
    let got: Vec<(u64, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [(2, Some("date")), (3, Some("source"))],
        "every bad row should be listed:\n{err}"
    );
    assert_eq!(*total, 2, "{err}");
}

#[test]
fn long_error_lists_are_capped_but_counted() {
    let n = Node::with_households();
    let mut body = String::from(header("measures.csv"));
    body.push('\n');
    for i in 0..60 {
        body.push_str(&format!("m{i},6101020010010001,gift,2026-11-20,1\n"));
    }
    let err = n.refused("measures.csv", body);
    let ImportError::Rows { errors, total, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), bottomline::import::MAX_LISTED_ERRORS);
    assert_eq!(*total, 60);
    assert_eq!(errors[0].line, 2);
    assert_contains(&err.to_string(), "and 10 more");
}

// ---------------------------------------------------------------------------------------
// Malformed files.

#[test]
fn unknown_column_is_refused_naming_it() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        "household_code,village_code,members,alleviated,income,head_nmae\n\
         6101020010010003,610102001001,2,0,3000,李四\n",
    );
    let reason = file_error(&err, "households.csv");
    assert_contains(&reason, "line 1");
    assert_contains(&reason, "unknown column \"head_nmae\"");
}

#[test]
fn missing_required_column_is_refused_naming_it() {
    let n = Node::full();
    let err = n.refused(
        "signals.csv",
        "id,household_code,source,type,amount,date\n\
         s9,6101020010010001,grid_check,water,1,2026-11-20\n",
    );
    let reason = file_error(&err, "signals.csv");
    assert_contains(&reason, "\"department\"");
}

#[test]
fn duplicate_column_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        "id,household_code,type,date,amount,amount\n\
         m9,6101020010010001,other,2026-11-20,1,1\n",
    );
    let reason = file_error(&err, "measures.csv");
    assert_contains(&reason, "\"amount\" appears twice");
}

#[test]
fn wrong_column_count_is_refused_with_its_line() {
    let n = Node::full();
    // Line 3 has one field too many, line 4 one too few.
    let err = n.refused(
        "signals.csv",
        format!(
            "{}\n{}\n{}\n{}\n",
            header("signals.csv"),
            good_correction("signals.csv"),
            "s9,6101020010010001,grid_check,water,,1,2026-11-20,extra",
            "s10,6101020010010001,grid_check,water,1,2026-11-20",
        ),
    );
    let ImportError::Rows { file, errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(file_name(file), "signals.csv");
    assert_eq!(errors[0].line, 3, "{err}");
    assert_contains(&errors[0].reason, "8 fields where the header has 7");
    assert_contains(&err.to_string(), "line 3");
}

/// Spreadsheets on Windows write CRLF line ends; the line of an error must still be the line
/// of the bad row (SPEC: "the header is line 1 of a CSV").
#[test]
fn crlf_file_reports_the_line_of_the_bad_row() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        with_bad_row("households.csv", "6101020010010003,610102001001,0,0,3000")
            .replace('\n', "\r\n"),
    );
    row_error(&err, "households.csv", 3, "members");
}

#[test]
fn crlf_file_reports_the_line_of_a_wrong_column_count() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        "id,household_code,type,date,amount\r\n\
         m9,6101020010010001,other,2026-11-20,1\r\n\
         m10,6101020010010001,other,2026-11-20\r\n",
    );
    let ImportError::Rows { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].line, 3, "{err}");
    assert_contains(&errors[0].reason, "4 fields where the header has 5");
}

/// A blank line is a line of the file: the bad row after it is on the next line.
#[test]
fn blank_line_before_a_bad_row_does_not_shift_its_line() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        "household_code,village_code,members,alleviated,income\n\
         6101020010010003,610102001001,2,0,3000\n\
         \n\
         6101020010010004,610102001001,0,0,3000\n",
    );
    row_error(&err, "households.csv", 4, "members");
}

#[test]
fn quoted_newline_counts_as_a_line() {
    let n = Node::full();
    let err = n.refused(
        "households.csv",
        "household_code,village_code,members,alleviated,income,head_name\n\
         6101020010010003,610102001001,2,0,3000,\"李\n四\"\n\
         6101020010010004,610102001001,0,0,3000,王五\n",
    );
    row_error(&err, "households.csv", 4, "members");
}

#[test]
fn bad_utf8_is_refused_naming_line_and_field() {
    let n = Node::full();
    // 张三 in GBK, as exported by an old spreadsheet.
    let mut body = format!(
        "{}\n{}\n",
        "household_code,village_code,members,alleviated,income,head_name",
        "6101020010010003,610102001001,2,0,3000,李四"
    )
    .into_bytes();
    body.extend_from_slice(b"6101020010010004,610102001001,2,0,3000,\xd5\xc5\xc8\xfd\n");
    let err = n.refused("households.csv", body);
    let reason = row_error(&err, "households.csv", 3, "head_name");
    assert_contains(&reason, "UTF-8");
}

#[test]
fn bad_utf8_in_the_header_is_refused() {
    let n = Node::full();
    let err = n.refused(
        "measures.csv",
        b"id,household_code,type,date,\xff\xfe\n m9,6101020010010001,other,2026-11-20,1\n"
            .as_slice(),
    );
    let reason = file_error(&err, "measures.csv");
    assert_contains(&reason, "UTF-8");
}

#[test]
fn empty_file_is_refused() {
    let n = Node::full();
    let err = n.refused("signals.csv", "");
    let reason = file_error(&err, "signals.csv");
    assert_contains(&reason, "empty");
}

#[test]
fn header_only_file_is_refused() {
    let n = Node::full();
    let err = n.refused("signals.csv", format!("{}\n", header("signals.csv")));
    let reason = file_error(&err, "signals.csv");
    assert_contains(&reason, "no records");
}

#[test]
fn file_of_unknown_kind_is_refused() {
    let n = Node::full();
    let err = n.refused("people.csv", HOUSEHOLDS);
    assert!(matches!(err, ImportError::UnknownKind { .. }), "{err:?}");
    assert_contains(&err.to_string(), "people.csv");
}

// ---------------------------------------------------------------------------------------
// Several files.

#[test]
fn import_stops_at_the_first_rejected_file_and_keeps_the_earlier_ones() {
    let n = Node::with_divisions();
    let paths = vec![
        n.write("measures.csv", MEASURES),
        n.write(
            "signals.csv",
            with_bad_row(
                "signals.csv",
                "s9,6101020010010001,grid_check,water,,1,2099-01-01",
            ),
        ),
        n.write("households.csv", HOUSEHOLDS),
        n.write("monitored.csv", MONITORED),
    ];
    let mut done = Vec::new();
    let err = import_files(&n.ledger, &paths, None, TODAY, &mut |_| {}, &mut |r| {
        done.push(file_name(&r.file).to_string())
    })
    .expect_err("signals.csv is bad");
    row_error(&err, "signals.csv", 3, "date");
    assert_eq!(done, ["households.csv", "monitored.csv"]);
    assert_eq!(n.records(RecordKind::Household).len(), 4);
    assert_eq!(n.records(RecordKind::Monitored).len(), 2);
    assert!(n.records(RecordKind::Signal).is_empty());
    assert!(n.records(RecordKind::Measure).is_empty());
    assert_eq!(n.count(COUNTY, "2026-W47", "monitored_persons", "total"), 4);
    assert_eq!(n.count(COUNTY, "2026-W47", "measures", "total"), 0);
    n.assert_cells_consistent();
}

// ---------------------------------------------------------------------------------------
// The ISO year boundary.

#[test]
fn iso_week_53_holds_days_of_the_next_year() {
    let n = Node::with_households();
    let signal = "id,household_code,source,type,department,amount,date\n\
                  ny,6101020010010001,grid_check,labour,,0,2027-01-02\n";
    let monitored = "household_code,category,identified_date,eliminated_date\n\
                     6101020010010002,sudden_hardship,2027-01-02,\n";
    // With today = 2026-11-24 these dates are in the future.
    let err = n.refused("signals.csv", signal);
    row_error(&err, "signals.csv", 2, "date");

    let later = Node {
        today: date(2027, 1, 10),
        ..n
    };
    later.import_ok("signals.csv", signal);
    later.import_ok("monitored.csv", monitored);
    let c = |p: &str, i: &str| later.count(COUNTY, p, i, "total");
    assert_eq!(period("2026-W53").first_day(), date(2026, 12, 28));
    for p in ["2026-W53", "2027", "2027-01", "2027-Q1", "2027-H1"] {
        assert_eq!(c(p, "signals"), 1, "{p}");
        assert_eq!(c(p, "newly_identified"), 1, "{p}");
        assert_eq!(c(p, "monitored_persons"), 3, "{p}");
    }
    for p in [
        "2026", "2026-12", "2026-Q4", "2026-H2", "2026-W52", "2027-W01",
    ] {
        assert_eq!(c(p, "signals"), 0, "{p}");
        assert_eq!(c(p, "newly_identified"), 0, "{p}");
    }
    for p in ["2026", "2026-12", "2026-W52"] {
        assert_eq!(c(p, "monitored_persons"), 0, "{p}");
    }
    // Stock at the end of 2027-W01 (2027-01-10) still holds it.
    assert_eq!(c("2027-W01", "monitored_persons"), 3);
    assert_eq!(
        later.count("610102001001", "2026-W53", "signals", "type=labour"),
        1
    );
    later.assert_cells_consistent();
}

// ---------------------------------------------------------------------------------------
// Opening data dirs.

/// `Ledger::open_or_init` on a fresh data dir opens the sled store three times in a row
/// (`Ledger::open`, which writes and flushes the layout key, then finds no division;
/// `Store::open` to write the division; `Ledger::open` again). sled 0.34 releases its file
/// lock asynchronously after a `Db` is dropped (spacejam/sled#1234, #1289), so now and then
/// the re-open fails with "could not acquire lock ... WouldBlock" — and so does the first
/// `bottomline import --division` into a new data dir. The race is rare (a fraction of a
/// percent of initialisations here), so this initialises up to 2 400 fresh dirs from 16
/// threads and stops at the first failure; all must open.
#[test]
fn fresh_data_dirs_initialise_reliably() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const THREADS: usize = 16;
    const EACH: usize = 150;
    let failed = AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..EACH {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let tmp = tempfile::tempdir().expect("tempdir");
                    let dir = tmp.path().join("data");
                    let opened =
                        Ledger::open_or_init(&dir, Some(county_code()), &StoreOptions::default());
                    if let Err(e) = opened {
                        failed.store(true, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(e.to_string());
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        failures.is_empty(),
        "a fresh data dir failed to initialise: {}",
        failures[0]
    );
}

// ---------------------------------------------------------------------------------------
// The command line.

fn bottomline<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(args)
        .env_remove("BOTTOMLINE_DATA")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bottomline")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A data dir and an input dir for CLI runs. The test process opens the data dir only once,
/// after the last CLI run on it (sled keeps its lock a moment after a close; see
/// `fresh_data_dirs_initialise_reliably`), so "the store is as it was" is checked against a
/// control data dir that got the same good imports and not the bad one.
struct Cli {
    tmp: TempDir,
}

impl Cli {
    fn new() -> Cli {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("in")).expect("mkdir");
        Cli { tmp }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.tmp.path().join("in").join(name);
        std::fs::write(&p, contents).expect("write");
        p
    }

    fn import(&self, files: &[PathBuf]) -> Output {
        let data = self.data();
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("import"),
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--division"),
            OsStr::new(COUNTY),
        ];
        args.extend(files.iter().map(|f| f.as_os_str()));
        bottomline(args)
    }

    /// The first import into the fresh data dir.
    #[track_caller]
    fn init(&self, files: &[PathBuf]) -> String {
        let out = self.import(files);
        assert!(
            out.status.success(),
            "import failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The fixture, imported in one run into the fresh data dir.
    fn init_full(&self) -> Vec<PathBuf> {
        let mut files = vec![self.write("divisions.csv", DIVISIONS)];
        files.extend(RECORD_FILES.iter().map(|(n, b)| self.write(n, b)));
        self.init(&files);
        files
    }

    #[track_caller]
    fn import_ok(&self, files: &[PathBuf]) -> String {
        let out = self.import(files);
        assert!(
            out.status.success(),
            "import failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs an import that must fail; returns stderr.
    #[track_caller]
    fn import_refused(&self, files: &[PathBuf]) -> String {
        let out = self.import(files);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "import succeeded: {}",
            text(&out.stdout)
        );
        assert_contains(&stderr, "error:");
        stderr
    }

    /// Open the data dir in this process (once, after the last CLI run on it).
    fn snapshot(&self) -> Snapshot {
        let ledger = Ledger::open(&self.data(), &StoreOptions::default()).expect("open");
        Snapshot::of(&ledger)
    }

    /// `stats --format json` as (indicator, dimension) → value.
    fn stats(&self, division: &str, period: &str) -> BTreeMap<(String, String), serde_json::Value> {
        let data = self.data();
        let out = bottomline([
            OsStr::new("stats"),
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--division"),
            OsStr::new(division),
            OsStr::new("--period"),
            OsStr::new(period),
            OsStr::new("--format"),
            OsStr::new("json"),
        ]);
        assert!(out.status.success(), "stats failed: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        assert_eq!(doc["division"], division);
        assert_eq!(doc["period"], period);
        doc["indicators"]
            .as_array()
            .expect("indicators array")
            .iter()
            .map(|r| {
                (
                    (
                        r["indicator"].as_str().unwrap_or_default().to_string(),
                        r["dimension"].as_str().unwrap_or_default().to_string(),
                    ),
                    r["value"].clone(),
                )
            })
            .collect()
    }
}

fn value<'a>(
    stats: &'a BTreeMap<(String, String), serde_json::Value>,
    indicator: &str,
    dimension: &str,
) -> &'a serde_json::Value {
    stats
        .get(&(indicator.to_string(), dimension.to_string()))
        .unwrap_or_else(|| panic!("no {indicator}/{dimension} in {stats:?}"))
}

/// Runs each bad file (after the full fixture) through the CLI, collecting stderr; then
/// checks the store equals that of a control dir that only got the fixture.
#[track_caller]
fn cli_refuses(bad: &[(&str, Vec<u8>)]) -> Vec<String> {
    let control = Cli::new();
    control.init_full();
    let cli = Cli::new();
    cli.init_full();
    let stderrs = bad
        .iter()
        .map(|(name, body)| {
            let f = cli.write(name, body);
            cli.import_refused(&[f])
        })
        .collect();
    control.snapshot().assert_same(
        &cli.snapshot(),
        "by refused CLI imports (compared with a control dir)",
    );
    stderrs
}

#[test]
fn cli_happy_path_import_then_stats() {
    let cli = Cli::new();
    let mut files = vec![cli.write("divisions.csv", DIVISIONS)];
    files.extend(RECORD_FILES.iter().map(|(n, b)| cli.write(n, b)));
    // Given in reverse dependency order on purpose.
    let rev: Vec<PathBuf> = files.iter().rev().cloned().collect();
    let stdout = cli.init(&rev);
    assert_contains(&stdout, "households.csv: 4 rows: 4 new");
    assert_contains(&stdout, "measures.csv: 3 rows: 3 new");

    let w47 = cli.stats(COUNTY, "2026-W47");
    assert_eq!(value(&w47, "signals", "total"), 2);
    assert_eq!(value(&w47, "signals", "source=department"), 1);
    assert_eq!(value(&w47, "signals", "department=7"), 1);
    assert_eq!(value(&w47, "monitored_persons", "total"), 4);
    assert_eq!(value(&w47, "monitored_households", "total"), 1);
    assert_eq!(value(&w47, "measures", "total"), 3);
    assert_eq!(value(&w47, "measure_amount", "total"), "1334.73");
    assert_eq!(value(&w47, "measure_amount", "type=medical"), "1334.66");
    assert_eq!(value(&w47, "measure_amount", "type=industry"), "0.07");
    let town = cli.stats("610102001", "2026-W47");
    assert_eq!(value(&town, "signals", "total"), 2);
    let village = cli.stats("610102001001", "2026-W47");
    assert_eq!(value(&village, "signals", "total"), 2);
    let w46 = cli.stats(COUNTY, "2026-W46");
    assert_eq!(value(&w46, "signals", "total"), 1);
    assert_eq!(
        value(&w46, "monitored_persons", "category=unstable_alleviated"),
        0
    );
    let nov = cli.stats(COUNTY, "2026-11");
    assert_eq!(value(&nov, "monitored_persons", "total"), 4);
    assert_eq!(value(&nov, "signals", "total"), 3);

    // Importing the same files again changes nothing.
    let stdout = cli.import_ok(&files);
    assert_contains(
        &stdout,
        "signals.csv: 3 rows: 0 new, 0 corrected, 3 unchanged",
    );
    let control = Cli::new();
    control.init_full();
    control
        .snapshot()
        .assert_same(&cli.snapshot(), "after re-importing the same files");
}

#[test]
fn cli_unknown_column_names_file_line_and_column() {
    let stderr = cli_refuses(&[(
        "households.csv",
        b"household_code,village_code,members,alleviated,incme\n\
          6101020010010003,610102001001,2,0,3000\n"
            .to_vec(),
    )]);
    assert_contains(&stderr[0], "households.csv");
    assert_contains(&stderr[0], "line 1");
    assert_contains(&stderr[0], "unknown column \"incme\"");
}

#[test]
fn cli_wrong_column_count_names_file_and_line() {
    let stderr = cli_refuses(&[(
        "signals.csv",
        with_bad_row(
            "signals.csv",
            "s9,6101020010010001,grid_check,water,1,2026-11-20",
        )
        .into_bytes(),
    )]);
    assert_contains(&stderr[0], "signals.csv");
    assert_contains(&stderr[0], "line 3");
    assert_contains(&stderr[0], "6 fields where the header has 7");
}

#[test]
fn cli_bad_utf8_names_file_line_and_field() {
    let mut body = b"household_code,village_code,members,alleviated,income,head_name\n\
                     6101020010010003,610102001001,2,0,3000,ok\n"
        .to_vec();
    // 张三 in GBK.
    body.extend_from_slice(b"6101020010010004,610102001001,2,0,3000,\xd5\xc5\xc8\xfd\n");
    let stderr = cli_refuses(&[("households.csv", body)]);
    assert_contains(&stderr[0], "households.csv");
    assert_contains(&stderr[0], "line 3, field head_name");
    assert_contains(&stderr[0], "UTF-8");
}

#[test]
fn cli_bad_rows_name_file_line_and_field() {
    let stderr = cli_refuses(&[
        (
            "households.csv",
            with_bad_row("households.csv", "6101020010010003,610102001001,0,0,3000").into_bytes(),
        ),
        (
            "measures.csv",
            with_bad_row("measures.csv", "m9,6101020010010001,other,2099-01-01,1").into_bytes(),
        ),
        (
            "households.csv",
            with_bad_row("households.csv", "6101020010090001,610102001009,2,0,3000").into_bytes(),
        ),
        ("signals.csv", Vec::new()),
        (
            "cases.csv",
            format!("{}\n", header("cases.csv")).into_bytes(),
        ),
    ]);
    assert_contains(&stderr[0], "households.csv");
    assert_contains(&stderr[0], "line 3, field members");
    assert_contains(&stderr[1], "measures.csv");
    assert_contains(&stderr[1], "line 3, field date");
    assert_contains(&stderr[1], "future");
    assert_contains(&stderr[2], "line 3, field village_code");
    assert_contains(&stderr[2], "610102001009");
    assert_contains(&stderr[3], "signals.csv");
    assert_contains(&stderr[3], "empty");
    assert_contains(&stderr[4], "cases.csv");
    assert_contains(&stderr[4], "no records");
}

#[test]
fn cli_stops_at_the_first_rejected_file() {
    let cli = Cli::new();
    // Initialise the data dir with the divisions (see `Cli::init`).
    cli.init(&[cli.write("divisions.csv", DIVISIONS)]);
    let files = vec![
        cli.write("measures.csv", MEASURES),
        cli.write("households.csv", HOUSEHOLDS),
        cli.write("monitored.csv", MONITORED),
        cli.write(
            "signals.csv",
            with_bad_row(
                "signals.csv",
                "s9,6101020010010001,hotline,water,,1,2026-11-20",
            ),
        ),
    ];
    let out = cli.import(&files);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_contains(&stderr, "signals.csv");
    assert_contains(&stderr, "line 3, field source");
    let stdout = text(&out.stdout);
    assert_contains(&stdout, "households.csv: 4 rows: 4 new");
    assert_contains(&stdout, "monitored.csv: 2 rows: 2 new");
    assert!(!stdout.contains("measures.csv"), "{stdout}");

    let w47 = cli.stats(COUNTY, "2026-W47");
    assert_eq!(value(&w47, "monitored_persons", "total"), 4);
    assert_eq!(value(&w47, "signals", "total"), 0);
    assert_eq!(value(&w47, "measures", "total"), 0);
    assert_eq!(value(&w47, "measure_amount", "total"), "0.00");
    let s = cli.snapshot();
    let kinds: Vec<RecordKind> = s
        .records
        .iter()
        .map(|r| r.kind())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(kinds, [RecordKind::Household, RecordKind::Monitored]);
}

#[test]
fn cli_refuses_a_data_dir_a_running_node_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let ledger = open_ledger(&data);
    let csv = tmp.path().join("signals.csv");
    std::fs::write(&csv, header("signals.csv")).expect("write");
    let out = bottomline([
        OsStr::new("import"),
        OsStr::new("--data"),
        data.as_os_str(),
        csv.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_contains(&err, "is in use by another process");
    assert_contains(&err, &data.display().to_string());
    drop(ledger);
}

// ---------------------------------------------------------------------------------------
// Large files stream in chunks (issue #16): a file is checked whole before any of it is
// written, so a bad row in its last chunk still leaves the store as it was.

/// Rows in the large files: more than two of the importer's chunks.
const LARGE: usize = 2_500;

fn large_households() -> String {
    let mut s = String::from(header("households.csv"));
    s.push('\n');
    for i in 1..=LARGE {
        s.push_str(&format!("610102001001{i:04},610102001001,2,1,5000\n"));
    }
    s
}

fn large_monitored() -> String {
    let mut s = String::from(header("monitored.csv"));
    s.push('\n');
    for i in 1..=LARGE {
        s.push_str(&format!("610102001001{i:04},marginal,2026-11-16,\n"));
    }
    s
}

#[test]
fn large_files_stream_and_count_every_row() {
    let n = Node::with_divisions();
    let r = n.import_ok("households.csv", large_households());
    assert_eq!((r.rows, r.applied.inserted), (LARGE as u64, LARGE as u64));
    let r = n.import_ok("monitored.csv", large_monitored());
    assert_eq!((r.rows, r.applied.inserted), (LARGE as u64, LARGE as u64));
    assert!(r.applied.cells_written > 0);
    assert_eq!(
        n.count(COUNTY, "2026-W47", "monitored_households", "total"),
        LARGE as i64
    );
    n.assert_cells_consistent();
    // Again: every row unchanged, nothing written.
    let before = Snapshot::of(&n.ledger);
    let r = n.import_ok("monitored.csv", large_monitored());
    assert_eq!(r.applied.unchanged, LARGE as u64);
    before.assert_same(&Snapshot::of(&n.ledger), "after re-importing a large file");
}

#[test]
fn a_refused_row_in_the_last_chunk_refuses_the_whole_large_file() {
    let n = Node::with_divisions();
    n.import_ok("households.csv", large_households());
    // The store refuses the last row (no such household); the rows before it are fine.
    let mut body = large_monitored();
    body.push_str("6101020010019999,marginal,2026-11-16,\n");
    let err = n.refused("monitored.csv", body);
    let reason = row_error(&err, "monitored.csv", LARGE as u64 + 2, "household_code");
    assert_contains(&reason, "unknown household 6101020010019999");
    assert!(n.records(RecordKind::Monitored).is_empty());
    // A malformed last row, likewise.
    let mut body = large_monitored();
    body.push_str("6101020010019998,marginal,2026-13-01,\n");
    let err = n.refused("monitored.csv", body);
    row_error(&err, "monitored.csv", LARGE as u64 + 2, "identified_date");
}

#[test]
fn a_row_repeated_chunks_apart_is_taken_once_or_refused_if_it_differs() {
    let n = Node::with_divisions();
    let mut body = large_households();
    body.push_str("6101020010010001,610102001001,2,1,5000\n");
    let r = n.import_ok("households.csv", &body);
    assert_eq!(
        (r.rows, r.applied.inserted),
        (LARGE as u64 + 1, LARGE as u64)
    );
    assert_eq!(n.records(RecordKind::Household).len(), LARGE);

    let n = Node::with_divisions();
    let mut body = large_households();
    body.push_str("6101020010010001,610102001001,3,1,5000\n");
    let err = n.refused("households.csv", body);
    let reason = row_error(&err, "households.csv", LARGE as u64 + 2, "household_code");
    assert_contains(&reason, "also appears on line 2 with different content");
}

#[test]
fn a_file_of_bad_rows_lists_the_first_by_line_and_counts_all() {
    let n = Node::with_divisions();
    n.import_ok("households.csv", large_households());
    let mut body = String::from(header("monitored.csv"));
    body.push('\n');
    for i in 1..=LARGE {
        // Odd rows are malformed (found while reading), even rows refused by the store
        // (found when their chunk is checked): errors arrive out of line order.
        if i % 2 == 1 {
            body.push_str(&format!("610102001001{i:04},nonsense,2026-11-16,\n"));
        } else {
            body.push_str(&format!("610102009001{i:04},marginal,2026-11-16,\n"));
        }
    }
    let err = n.refused("monitored.csv", body);
    let ImportError::Rows { errors, total, .. } = &err else {
        panic!("expected bad rows, got {err:?}");
    };
    assert_eq!(*total, LARGE);
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    let expected: Vec<u64> = (2..2 + bottomline::import::MAX_LISTED_ERRORS as u64).collect();
    assert_eq!(lines, expected, "{err}");
}
