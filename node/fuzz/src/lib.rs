//! What the fuzz targets share: reading a table (CSV or JSON lines) the way `import` does,
//! parsing its rows into records or divisions, and the checks that every read, parsed or
//! decoded value must pass. A check that fails panics, which libFuzzer reports as a crash
//! with the input that caused it.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use bottomline::division::{Code, Division};
use bottomline::domain::{FieldError, Record, RecordKind};
use bottomline::import::fields::{parse_dept, parse_division, parse_record, Fields};
use bottomline::import::rows::{Columns, CsvRows, JsonRows, Row};
use bottomline::import::FileKind;
use bottomline::period::{Kind, Period};
use bottomline::tickets::codec::{self, Sealed};
use bottomline::tickets::{self, Event, EventKind, TicketKey, TicketState};
use bottomline::warning::{DeptKind, DeptRow};

/// Every kind of table `import` reads: divisions, the county's record files, the
/// department files.
pub const KINDS: [FileKind; 10] = [
    FileKind::Divisions,
    FileKind::Records(RecordKind::Household),
    FileKind::Records(RecordKind::Monitored),
    FileKind::Records(RecordKind::Signal),
    FileKind::Records(RecordKind::Case),
    FileKind::Records(RecordKind::Measure),
    FileKind::Department(DeptKind::Medical),
    FileKind::Department(DeptKind::Accident),
    FileKind::Department(DeptKind::Labour),
    FileKind::Department(DeptKind::Income),
];

/// The county the records are validated against (the generated seeds' county).
pub fn county() -> Code {
    Code::parse("610102").expect("a county code")
}

/// "Today" for validation: fixed, so a run is reproducible.
pub fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 20)
}

/// The kind of table `data` most likely is: the first whose columns include every name of
/// its first line (a CSV header, or a JSON line's keys), or one picked by the length of the
/// data (so that every kind also sees headers it refuses). Building a CSV reader costs more
/// than reading a small table, so a target reads each input as one kind, not as every kind.
pub fn kind_of(data: &[u8]) -> FileKind {
    let first = data
        .split(|b| *b == b'\n' || *b == b'\r')
        .next()
        .unwrap_or_default();
    let first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    let text = String::from_utf8_lossy(first);
    let names: Vec<String> =
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
            Ok(obj) => obj.keys().cloned().collect(),
            Err(_) => text
                .split(',')
                .map(|n| n.trim().trim_matches('"').to_string())
                .collect(),
        };
    let known = |k: &FileKind| {
        let (req, opt) = k.columns();
        !names.is_empty()
            && names
                .iter()
                .all(|n| req.contains(&n.as_str()) || opt.contains(&n.as_str()))
    };
    let complete = |k: &FileKind| k.columns().0.iter().all(|r| names.iter().any(|n| n == r));
    // A measures header is also a subset of the signals' columns: complete ones first.
    KINDS
        .into_iter()
        .find(|k| known(k) && complete(k))
        .or_else(|| KINDS.into_iter().find(known))
        .unwrap_or(KINDS[data.len() % KINDS.len()])
}

/// The columns of `kind`, as `import` builds them.
pub fn columns(kind: FileKind) -> (Columns, Vec<&'static str>) {
    let (required, optional) = kind.columns();
    let names = required.iter().chain(optional).copied().collect();
    (
        Columns::new(required, optional, format!("a {kind} file")),
        names,
    )
}

/// One row as read: (line, values), or a bad row's (line, field, reason).
pub type Got = Result<(u64, Vec<Option<String>>), (u64, Option<String>, String)>;

fn got(r: Result<Row, bottomline::import::rows::BadRow>) -> Got {
    r.map(|r| (r.line, r.values))
        .map_err(|b| (b.line, b.field, b.reason))
}

/// Every row of a CSV table (`lines`: the same bytes again), or the table's error.
pub fn read_csv<R: Read, L: BufRead>(
    input: R,
    lines: L,
    cols: &Columns,
) -> Result<Vec<Got>, String> {
    let mut rows = CsvRows::new(input, lines, cols)?;
    Ok(std::iter::from_fn(|| rows.next_row(cols))
        .map(got)
        .collect())
}

/// Every row of a JSON lines table.
pub fn read_jsonl<R: BufRead>(input: R, cols: &Columns) -> Vec<Got> {
    let mut rows = JsonRows::new(input);
    std::iter::from_fn(|| rows.next_row(cols))
        .map(got)
        .collect()
}

/// Line ends in `data` as a text editor counts them (`\n`, `\r\n` and a lone `\r`).
pub fn line_ends(data: &[u8]) -> u64 {
    let mut n = 0;
    for (i, b) in data.iter().enumerate() {
        match b {
            b'\n' => n += 1,
            b'\r' if data.get(i + 1) != Some(&b'\n') => n += 1,
            _ => {}
        }
    }
    n
}

/// The checks every table read must pass, whatever the format: lines in range and
/// increasing, values trimmed and aligned with the columns, errors naming a column (or, for
/// JSON lines, the unknown field they are about) and ending a CSV table when they concern
/// the row's shape. `first_line`: the first line a row can start on.
pub fn check_rows(data: &[u8], rows: &[Got], names: &[&str], first_line: u64, csv: bool) {
    let last_line = line_ends(data) + 1;
    let mut prev = 0;
    for (i, r) in rows.iter().enumerate() {
        let line = match r {
            Ok((line, values)) => {
                assert_eq!(
                    values.len(),
                    names.len(),
                    "a row's values follow the columns"
                );
                for v in values.iter().flatten() {
                    assert!(!v.is_empty() && v.trim() == v, "value {v:?} not trimmed");
                }
                *line
            }
            Err((line, field, reason)) => {
                assert!(!reason.is_empty(), "an error says why");
                match field {
                    Some(f) if names.contains(&f.as_str()) => {}
                    Some(f) => assert!(
                        !csv && reason.starts_with("unknown field"),
                        "error about {f:?}, which is not a column: {reason}"
                    ),
                    None if csv => assert_eq!(
                        i + 1,
                        rows.len(),
                        "a CSV row of the wrong shape ends the table: {reason}"
                    ),
                    None => {}
                }
                *line
            }
        };
        assert!(
            line >= first_line && line <= last_line,
            "row {i} on line {line}, outside {first_line}..={last_line}: {rows:?}"
        );
        assert!(
            line > prev,
            "row {i} on line {line} after a row on line {prev}: {rows:?}"
        );
        prev = line;
    }
}

/// A parsed row.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A county record.
    Record(Record),
    /// A division of `divisions.csv`.
    Division(Division),
    /// A row of a department file.
    Dept(DeptRow),
}

/// Parse a row read as `kind`, as `import` does, and check the result: an error names a
/// column of the table; a record is of the table's kind, its own validation does not panic
/// and names a column when it refuses, and its stored form decodes to it again.
pub fn parse_row(
    kind: FileKind,
    cols: &Columns,
    names: &[&str],
    line: u64,
    values: &[Option<String>],
) -> Result<Parsed, FieldError> {
    let row = Row {
        line,
        values: values.to_vec(),
    };
    let f = Fields { row: &row, cols };
    let parsed = match kind {
        FileKind::Divisions => parse_division(&f).map(Parsed::Division),
        FileKind::Records(k) => parse_record(k, &f).map(Parsed::Record),
        FileKind::Department(k) => parse_dept(k, &f).map(Parsed::Dept),
    };
    match &parsed {
        Err(e) => assert!(
            names.contains(&e.field),
            "error about {:?}, not a column of a {kind} file: {}",
            e.field,
            e.reason
        ),
        Ok(Parsed::Division(d)) => {
            assert_eq!(Code::parse(&d.code.to_string()), Ok(d.code));
            assert!(!d.name.is_empty());
        }
        Ok(Parsed::Record(r)) => {
            assert_eq!(FileKind::Records(r.kind()), kind);
            check_record(r, Some(names));
        }
        Ok(Parsed::Dept(d)) => {
            assert_eq!(FileKind::Department(d.kind()), kind);
            assert_eq!(d.validate(), Ok(()));
            let json = serde_json::to_vec(d).expect("JSON to memory");
            let back: DeptRow = serde_json::from_slice(&json).expect("a department row decodes");
            assert_eq!(&back, d, "department row round trip");
        }
    }
    parsed
}

/// The warning rules (the defaults) over the department rows of a table: the signals they
/// make do not depend on the rows' order (when the ids are unique, as an import requires),
/// and each is a valid signal of a household the rows name.
pub fn check_warnings(rows: &[Parsed]) {
    let depts: Vec<DeptRow> = rows
        .iter()
        .filter_map(|p| match p {
            Parsed::Dept(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let ids: std::collections::BTreeSet<&str> = depts.iter().map(|d| d.id.as_str()).collect();
    if depts.is_empty() || ids.len() < depts.len() {
        return;
    }
    let facts: std::collections::HashMap<String, bottomline::warning::Facts> = depts
        .iter()
        .map(|d| {
            let f = bottomline::warning::Facts {
                members: 1 + d.id.len() as u32 % 5,
                income: bottomline::domain::Cents(1_000_000),
            };
            (d.household_code.clone(), f)
        })
        .collect();
    let rules = bottomline::warning::WarningRules::default();
    let signals = bottomline::warning::evaluate(&rules, &depts, &facts);
    let reversed: Vec<DeptRow> = depts.iter().rev().cloned().collect();
    assert_eq!(
        bottomline::warning::evaluate(&rules, &reversed, &facts),
        signals,
        "the warning signals depend on the rows' order"
    );
    for s in &signals {
        assert!(bottomline::warning::is_rule_signal(&s.id), "{}", s.id);
        assert!(facts.contains_key(&s.household_code));
    }
    let d = bottomline::warning::diff(&signals, &signals);
    assert_eq!((d.new.len(), d.changed.len(), d.stale.len()), (0, 0, 0));
}

/// A record's validation does not panic and names a column (of `names`, when given) when it
/// refuses; its stored form (the ledger's `encode_record`: a marker, then JSON) decodes to
/// it again; the cells it contributes to are computed without a panic.
pub fn check_record(r: &Record, names: Option<&[&str]>) {
    if let Err(e) = r.validate(county(), today()) {
        if let Some(names) = names {
            assert!(
                names.contains(&e.field),
                "validation names {:?}, not a column: {}",
                e.field,
                e.reason
            );
        }
    } else {
        let mut n = 0u32;
        let household = match r {
            Record::Household(h) => Some(h),
            _ => None,
        };
        bottomline::stats::contributions(r, household, county(), &mut |k, _| {
            assert!(
                county().contains(k.division),
                "a cell outside the county: {k:?}"
            );
            n += 1;
        });
    }
    let stored = bottomline::ledger::encode_record(r);
    let back: Record = serde_json::from_slice(&stored[1..]).expect("a stored record decodes");
    assert_eq!(&back, r, "stored record round trip");
}

/// JSON lines holding the values of `rows` (the `Ok` ones) under the column names.
pub fn to_jsonl(rows: &[Got], names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, values) in rows.iter().flatten() {
        let obj: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(values)
            .filter_map(|(n, v)| v.as_ref().map(|v| (n.to_string(), v.clone().into())))
            .collect();
        serde_json::to_writer(&mut out, &obj).expect("JSON to memory");
        out.push(b'\n');
    }
    out
}

/// A CSV table (header: every column) holding the values of `rows` (the `Ok` ones).
pub fn to_csv(rows: &[Got], names: &[&str]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(names).expect("CSV to memory");
    for (_, values) in rows.iter().flatten() {
        w.write_record(values.iter().map(|v| v.as_deref().unwrap_or("")))
            .expect("CSV to memory");
    }
    w.into_inner().expect("CSV to memory")
}

/// The values of the `Ok` rows.
pub fn values(rows: &[Got]) -> Vec<&Vec<Option<String>>> {
    rows.iter().flatten().map(|(_, v)| v).collect()
}

/// A decoded ticket event: its body's canonical encoding decodes to it again and is stable,
/// its stored form (body bytes kept, seal) decodes to it again, its seal's Merkle path is
/// walked without a panic, and the rules of a first event run on it.
pub fn check_sealed(s: &Sealed) {
    assert_eq!(
        codec::decode_body(&s.body).as_ref(),
        Ok(&s.event),
        "the kept body decodes to the event"
    );
    check_event(&s.event);
    let stored = codec::encode_stored(&s.body, s.seal.as_ref());
    assert_eq!(
        codec::decode_stored(&stored).as_ref(),
        Ok(s),
        "stored form round trip"
    );
    assert_eq!(
        codec::from_pb(codec::to_pb(&s.body, s.seal.as_ref())).as_ref(),
        Ok(s),
        "wire form round trip"
    );
    if let Some(seal) = &s.seal {
        let _ = seal.root(&s.body);
    }
}

/// A decoded event re-encodes to a body that decodes to it, and that encoding is stable.
pub fn check_event(e: &Event) {
    let body = codec::encode_body(e);
    let back = codec::decode_body(&body).expect("an encoded event decodes");
    assert_eq!(&back, e, "event round trip");
    assert_eq!(codec::encode_body(&back), body, "stable encoding");
    let _ = tickets::check(None, e);
    if let EventKind::Issued(t) = &e.kind {
        let _ = t.validate();
        if let Some(task) = &t.spot_check {
            let _ = task.validate();
        }
    }
}

/// Fold decoded events (a batch off the wire) and check that the states are a function of
/// the set of events: the same in reverse order and with every event twice.
pub fn check_fold(events: &[Event]) -> BTreeMap<TicketKey, TicketState> {
    let fold = |evs: &[Event]| {
        let mut states = tickets::fold_all(evs);
        tickets::resolve_splits(&mut states);
        states
    };
    let states = fold(events);
    let reversed: Vec<Event> = events.iter().rev().cloned().collect();
    assert_eq!(
        fold(&reversed),
        states,
        "fold depends on the order of events"
    );
    let twice: Vec<Event> = events.iter().chain(events).cloned().collect();
    assert_eq!(fold(&twice), states, "fold counts a duplicate");
    let _ = tickets::next_lamport(events);
    for s in states.values() {
        let _ = tickets::stat_flows(s);
        let _ = tickets::stock_deltas(s);
        let _ = tickets::spot_check_done(s);
        // The stored summary (the ticket index's JSON) decodes to the state again.
        let json = serde_json::to_vec(s).expect("JSON to memory");
        let back: TicketState = serde_json::from_slice(&json).expect("a summary decodes");
        assert_eq!(&back, s, "summary round trip");
    }
    if let Some(s) = states.values().next() {
        let (first, last) = (s.issued_on, today());
        let _ = tickets::figures(states.values(), first.min(last), first.max(last));
    }
    states
}

/// A decoded code is one `Code::parse` accepts, and prints as such.
pub fn check_code(c: Code) {
    assert_eq!(Code::parse(&c.to_string()), Ok(c), "decoded code {c:?}");
    let (start, end) = c.subtree_range();
    assert!(start < end);
}

/// A decoded period is one `Period::new` accepts, prints as `Period::parse` reads it (years
/// before 0 excepted: `Period::new` takes them, `parse` and the wire have no sign; no
/// record or ticket cell is dated before 2015), and has days.
pub fn check_period(p: Period) {
    assert_eq!(
        Period::new(p.kind(), p.year(), p.index()),
        Ok(p),
        "decoded period"
    );
    if p.kind() != Kind::IsoYear && p.year() >= 0 {
        assert_eq!(Period::parse(&p.to_string()), Ok(p), "decoded period");
    }
    assert!(p.first_day() <= p.last_day());
}

/// Every row of `rows` (read as `kind`) parsed as `import` does, and the warning rules run
/// over the department rows among them ([`check_warnings`]).
pub fn check_parsed(kind: FileKind, cols: &Columns, names: &[&str], rows: &[Got]) {
    let parsed: Vec<Parsed> = rows
        .iter()
        .flatten()
        .filter_map(|(line, values)| parse_row(kind, cols, names, *line, values).ok())
        .collect();
    check_warnings(&parsed);
}

/// The events of a ticket batch from the wire: each that decodes is checked
/// ([`check_sealed`]), and together they are folded ([`check_fold`]).
pub fn check_ticket_events(events: Vec<bottomline_proto::v1::TicketEvent>) {
    let events: Vec<Event> = events
        .into_iter()
        .filter_map(|t| codec::from_pb(t).ok())
        .map(|s| {
            check_sealed(&s);
            s.event
        })
        .collect();
    check_fold(&events);
}
