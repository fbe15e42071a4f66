//! Reading the interchange files of SPEC.md: CSV (UTF-8, one header line, columns matched by
//! name in any order) and JSON lines with the same field names.
//!
//! **A file is all or nothing.** Every row of a file is parsed and validated (against the
//! store and the earlier rows) before anything is written; one bad row rejects the whole file
//! with an error per bad row naming file, line, field and reason, and the store stays as it
//! was. A county re-exports and re-imports a fixed file; half-imported files are worse than
//! none, because nobody knows which half is in. When several files are given they are
//! imported in dependency order (divisions, households, monitored, signals, cases, measures)
//! and the import stops at the first rejected file; files before it stay imported.
//!
//! Files stream: a file is read twice, a chunk of rows at a time — first parsed and checked
//! against the store (nothing written), then written chunk by chunk — so an import's memory
//! does not grow with its files (see `ledger::stream`). If the process dies mid-way, the next
//! start recomputes the cells of what was written and re-running the same import completes
//! it (records are idempotent by id).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::division::{Code, Division, Level};
use crate::domain::{FieldError, Record, RecordKind};
use crate::ledger::stream::CHUNK;
use crate::ledger::{Applied, Change, Ledger, LedgerError, Progress, StreamedWrite};
use crate::warning::DeptKind;

/// The interchange files of a county, in dependency (import) order, without extension.
pub const FILE_ORDER: [&str; 6] = [
    "divisions",
    "households",
    "monitored",
    "signals",
    "cases",
    "measures",
];

/// At most this many row errors are listed per file.
pub const MAX_LISTED_ERRORS: usize = 50;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `divisions.csv`
    Divisions,
    /// One of the county record files.
    Records(RecordKind),
    /// A department file (`warning.rs`): after the record files, whose households it names.
    Department(DeptKind),
}

impl FileKind {
    /// Recognise a file by its name (`households.csv`, `signals.jsonl`, …).
    pub fn from_path(path: &Path) -> Option<FileKind> {
        let stem = path.file_stem()?.to_str()?;
        FileKind::parse(stem)
    }

    /// Parse a kind name (`divisions`, `households`, `monitored`, `signals`, `cases`, `measures`).
    pub fn parse(s: &str) -> Option<FileKind> {
        Some(match s {
            "divisions" => FileKind::Divisions,
            "households" => FileKind::Records(RecordKind::Household),
            "monitored" => FileKind::Records(RecordKind::Monitored),
            "signals" => FileKind::Records(RecordKind::Signal),
            "cases" => FileKind::Records(RecordKind::Case),
            "measures" => FileKind::Records(RecordKind::Measure),
            "medical" => FileKind::Department(DeptKind::Medical),
            "accidents" => FileKind::Department(DeptKind::Accident),
            "labour" => FileKind::Department(DeptKind::Labour),
            "incomes" => FileKind::Department(DeptKind::Income),
            _ => return None,
        })
    }

    /// (required columns, optional columns).
    pub fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            FileKind::Divisions => (&["code", "name", "level", "parent"], &[]),
            FileKind::Records(k) => match k {
                RecordKind::Household => (
                    &[
                        "household_code",
                        "village_code",
                        "members",
                        "alleviated",
                        "income",
                    ],
                    &["head_name", "id_number"],
                ),
                RecordKind::Monitored => (
                    &[
                        "household_code",
                        "category",
                        "identified_date",
                        "eliminated_date",
                    ],
                    &[],
                ),
                RecordKind::Signal => (
                    &[
                        "id",
                        "household_code",
                        "source",
                        "type",
                        "department",
                        "amount",
                        "date",
                    ],
                    &[],
                ),
                RecordKind::Case => (
                    &[
                        "id",
                        "household_code",
                        "discovered_date",
                        "decided_date",
                        "outcome",
                        "green_channel",
                    ],
                    &["stage"],
                ),
                RecordKind::Measure => (&["id", "household_code", "type", "date", "amount"], &[]),
            },
            FileKind::Department(k) => match k {
                DeptKind::Medical => (
                    &[
                        "id",
                        "household_code",
                        "date",
                        "total",
                        "reimbursed",
                        "out_of_pocket",
                    ],
                    &[],
                ),
                DeptKind::Accident => (
                    &[
                        "id",
                        "household_code",
                        "date",
                        "kind",
                        "loss",
                        "compensation",
                    ],
                    &[],
                ),
                DeptKind::Labour => (&["id", "household_code", "date", "change", "persons"], &[]),
                DeptKind::Income => (&["id", "household_code", "date", "income"], &[]),
            },
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Divisions => "divisions",
            FileKind::Records(RecordKind::Household) => "households",
            FileKind::Records(RecordKind::Monitored) => "monitored",
            FileKind::Records(RecordKind::Signal) => "signals",
            FileKind::Records(RecordKind::Case) => "cases",
            FileKind::Records(RecordKind::Measure) => "measures",
            FileKind::Department(k) => k.as_str(),
        })
    }
}

/// One refused row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1 of a CSV).
    pub line: u64,
    /// Column name, when the error is about one field.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}, field {field}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kind of file could not be told from its name.
    #[error("{file}: cannot tell what the file holds from its name; name it divisions, households, monitored, signals, cases or measures (.csv or .jsonl), or pass --kind")]
    UnknownKind {
        /// The file.
        file: PathBuf,
    },
    /// The file as a whole is malformed (empty, bad header).
    #[error("{file}: {reason}; nothing was imported from it")]
    File {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// Some rows are bad; nothing of the file was imported.
    #[error("{}", rows_message(.file, .errors, *.total))]
    Rows {
        /// The file.
        file: PathBuf,
        /// The first [`MAX_LISTED_ERRORS`] errors.
        errors: Vec<RowError>,
        /// How many rows were refused in all.
        total: usize,
    },
    /// The ledger failed (storage).
    #[error("{file}: {source}")]
    Ledger {
        /// The file.
        file: PathBuf,
        /// What failed.
        #[source]
        source: LedgerError,
    },
}

impl ImportError {
    /// The same error about `file` (e.g. the name a remote client gave the file, rather than
    /// the path it was received under).
    pub fn for_file(mut self, file: PathBuf) -> ImportError {
        match &mut self {
            ImportError::Io { file: f, .. }
            | ImportError::UnknownKind { file: f }
            | ImportError::File { file: f, .. }
            | ImportError::Rows { file: f, .. }
            | ImportError::Ledger { file: f, .. } => *f = file,
        }
        self
    }

    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ImportError::Io { file, .. }
            | ImportError::UnknownKind { file }
            | ImportError::File { file, .. }
            | ImportError::Rows { file, .. }
            | ImportError::Ledger { file, .. } => file,
        }
    }
}

/// The error of a file with bad rows: all counted, the first [`MAX_LISTED_ERRORS`] listed
/// in line order.
fn rows_error(path: &Path, mut errors: Vec<RowError>) -> ImportError {
    let total = errors.len();
    errors.sort_by_key(|e| e.line);
    errors.truncate(MAX_LISTED_ERRORS);
    ImportError::Rows {
        file: path.to_owned(),
        errors,
        total,
    }
}

fn rows_message(file: &Path, errors: &[RowError], total: usize) -> String {
    let mut s = format!(
        "{}: {total} bad row(s); nothing was imported from this file",
        file.display()
    );
    for e in errors {
        s.push_str(&format!("\n  {}: {e}", file.display()));
    }
    if total > errors.len() {
        s.push_str(&format!("\n  … and {} more", total - errors.len()));
    }
    s
}

/// What one file import did.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// Its kind.
    pub kind: FileKind,
    /// Data rows read.
    pub rows: u64,
    /// Effect on the ledger (for divisions: `inserted` counts new or renamed divisions).
    pub applied: Applied,
}

/// Progress of an import, for user feedback on large files.
#[derive(Clone, Debug)]
pub enum ImportEvent<'a> {
    /// Rows read and parsed so far.
    Read {
        /// File.
        file: &'a Path,
        /// Rows.
        rows: u64,
    },
    /// Rows written so far.
    Written {
        /// File.
        file: &'a Path,
        /// Progress.
        progress: Progress,
    },
}

// Public only for the fuzz targets (node/fuzz), which drive the table reader and the row
// parsers on bytes; not an API.
#[doc(hidden)]
pub mod fields;
#[doc(hidden)]
pub mod rows;

pub use fields::parse_date;
use fields::{parse_dept, parse_division, parse_record, Fields};
pub(crate) use rows::{Columns, CsvRows, Row};

use rows::{BadRow, FileRows};

mod trace;
use trace::MemoryTrace;

/// Rows between two progress events while a file is read.
const PROGRESS_ROWS: u64 = 100_000;

fn columns_of(kind: FileKind) -> Columns {
    let (required, optional) = kind.columns();
    Columns::new(required, optional, format!("a {kind} file"))
}

fn file_err(path: &Path, reason: impl Into<String>) -> ImportError {
    ImportError::File {
        file: path.to_owned(),
        reason: reason.into(),
    }
}

fn open_rows(path: &Path, cols: &Columns) -> Result<FileRows, ImportError> {
    FileRows::open(path, cols).map_err(|e| match e {
        Ok(reason) => file_err(path, reason),
        Err(source) => ImportError::Io {
            file: path.to_owned(),
            source,
        },
    })
}

fn bad_row(b: BadRow) -> RowError {
    RowError {
        line: b.line,
        field: b.field,
        reason: b.reason,
    }
}

fn field_err(line: u64, e: FieldError) -> RowError {
    RowError {
        line,
        field: Some(e.field.to_string()),
        reason: e.reason,
    }
}

fn no_records(path: &Path, json: bool) -> ImportError {
    file_err(
        path,
        if json {
            "the file holds no records"
        } else {
            "the file has a header line but no records"
        },
    )
}

/// Every row of a (small) file, for divisions and tools; any bad row refuses the file.
fn read_all(
    path: &Path,
    kind: FileKind,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<(Columns, Vec<Row>), ImportError> {
    let cols = columns_of(kind);
    let mut rows_in = open_rows(path, &cols)?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    while let Some(r) = rows_in.next_row(&cols) {
        match r {
            Ok(row) => rows.push(row),
            Err(b) => errors.push(bad_row(b)),
        }
        if ((rows.len() + errors.len()) as u64).is_multiple_of(PROGRESS_ROWS) {
            progress(ImportEvent::Read {
                file: path,
                rows: rows.len() as u64,
            });
        }
    }
    if !errors.is_empty() {
        return Err(rows_error(path, errors));
    }
    if rows.is_empty() {
        return Err(no_records(path, rows_in.is_json()));
    }
    Ok((cols, rows))
}

/// Import one file into the ledger (all or nothing, see the module docs).
pub fn import_file(
    ledger: &Ledger,
    path: &Path,
    kind: Option<FileKind>,
    today: Date,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let mut reports = import_files(
        ledger,
        &[path.to_owned()],
        kind,
        today,
        progress,
        &mut |_| {},
    )?;
    // One file given, one imported (or an error returned above).
    reports.pop().ok_or_else(|| ImportError::UnknownKind {
        file: path.to_owned(),
    })
}

fn import_divisions(
    ledger: &Ledger,
    path: &Path,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let (cols, rows) = read_all(path, FileKind::Divisions, progress)?;
    let n = rows.len() as u64;
    let fail = |errors: Vec<RowError>| rows_error(path, errors);
    let applied = {
        let mut divisions = Vec::with_capacity(rows.len());
        let mut errors = Vec::new();
        for row in &rows {
            match parse_division(&Fields { row, cols: &cols }) {
                Ok(d) => divisions.push((row.line, d)),
                Err(e) => errors.push(field_err(row.line, e)),
            }
        }
        let registry = ledger.registry();
        let in_file: HashMap<Code, u64> = divisions.iter().map(|(l, d)| (d.code, *l)).collect();
        for (line, d) in &divisions {
            if in_file.get(&d.code) != Some(line) {
                errors.push(RowError {
                    line: *line,
                    field: Some("code".into()),
                    reason: format!("{} appears twice (also line {})", d.code, in_file[&d.code]),
                });
            }
            if let Some(p) = d.code.parent().filter(|p| !p.is_root()) {
                if !in_file.contains_key(&p) && !registry.contains(p) {
                    errors.push(RowError {
                        line: *line,
                        field: Some("parent".into()),
                        reason: format!("unknown division code {p}: list the parent first"),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(fail(errors));
        }
        let ds: Vec<Division> = divisions.into_iter().map(|(_, d)| d).collect();
        let changed = ledger
            .put_divisions(&ds)
            .map_err(|source| ImportError::Ledger {
                file: path.to_owned(),
                source,
            })?;
        Applied {
            inserted: changed as u64,
            unchanged: n - changed as u64,
            ..Applied::default()
        }
    };
    Ok(FileReport {
        file: path.to_owned(),
        kind: FileKind::Divisions,
        rows: n,
        applied,
    })
}

/// Import a department file: every row parsed and its household checked, then all stored in
/// one durable commit (or none, with every bad row named).
fn import_dept_file(
    ledger: &Ledger,
    path: &Path,
    kind: DeptKind,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let (cols, rows) = read_all(path, FileKind::Department(kind), progress)?;
    let mut parsed = Vec::with_capacity(rows.len());
    let mut lines = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for row in &rows {
        match parse_dept(kind, &Fields { row, cols: &cols }) {
            Ok(d) => {
                if let Some(first) = seen.insert(d.id.clone(), row.line) {
                    errors.push(RowError {
                        line: row.line,
                        field: Some("id".into()),
                        reason: format!("{} appears twice (also line {first})", d.id),
                    });
                }
                lines.push(row.line);
                parsed.push(d);
            }
            Err(e) => errors.push(field_err(row.line, e)),
        }
    }
    if !errors.is_empty() {
        return Err(rows_error(path, errors));
    }
    let n = parsed.len() as u64;
    match ledger.put_dept_rows(&parsed) {
        Ok(_) => Ok(FileReport {
            file: path.to_owned(),
            kind: FileKind::Department(kind),
            rows: n,
            applied: Applied {
                inserted: n,
                ..Applied::default()
            },
        }),
        Err(LedgerError::Refused(refusals)) => Err(rows_error(
            path,
            refusals
                .into_iter()
                .map(|r| field_err(lines.get(r.index).copied().unwrap_or(0), r.error))
                .collect(),
        )),
        Err(source) => Err(ImportError::Ledger {
            file: path.to_owned(),
            source,
        }),
    }
}

/// The bad rows of a file: all counted, the first [`MAX_LISTED_ERRORS`] by line kept (a file
/// of nothing but bad rows must not fill the memory with errors).
#[derive(Default)]
struct BadRows {
    /// The kept errors, largest line on top.
    kept: std::collections::BinaryHeap<ByLine>,
    total: usize,
}

struct ByLine(u64, u64, RowError);

impl PartialEq for ByLine {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for ByLine {}
impl PartialOrd for ByLine {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByLine {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

impl BadRows {
    fn push(&mut self, e: RowError) {
        self.kept.push(ByLine(e.line, self.total as u64, e));
        self.total += 1;
        if self.kept.len() > MAX_LISTED_ERRORS {
            self.kept.pop();
        }
    }

    fn into_error(self, path: &Path) -> ImportError {
        ImportError::Rows {
            file: path.to_owned(),
            errors: self
                .kept
                .into_sorted_vec()
                .into_iter()
                .map(|b| b.2)
                .collect(),
            total: self.total,
        }
    }
}

/// A digest of a record's content, to tell a repeated row from a conflicting one without
/// keeping the rows.
fn digest(r: &Record) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    crate::ledger::encode_record(r).hash(&mut h);
    h.finish()
}

/// The error of a file that read differently the second time.
fn changed(path: &Path, line: u64) -> ImportError {
    file_err(
        path,
        format!(
            "line {line}: the file changed while it was imported (the rows before it were \
             imported; import the finished file again)"
        ),
    )
}

/// Import a record file through `w` in two passes over the file, a chunk of rows in memory
/// at a time. The first parses every row and checks each chunk against the store (nothing is
/// written), so that a file with any bad row is refused whole with every error; the second
/// reads the file again and writes it chunk by chunk. A row repeated with the same content
/// is taken once; with different content it is an error. `list` numbers the file for
/// progress.
fn import_record_file(
    w: &mut StreamedWrite<'_>,
    path: &Path,
    rk: RecordKind,
    list: usize,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let kind = FileKind::Records(rk);
    let cols = columns_of(kind);
    let ledger_err = |source| ImportError::Ledger {
        file: path.to_owned(),
        source,
    };
    let mut chunk: Vec<Change> = Vec::with_capacity(CHUNK);
    let mut lines: Vec<u64> = Vec::with_capacity(CHUNK);
    // Pass 1: parse and check.
    let mut bad = BadRows::default();
    // Each record's first line and digest.
    let mut first: HashMap<Box<str>, (u64, u64)> = HashMap::new();
    let mut rows = 0u64;
    let check = |chunk: &mut Vec<Change>, lines: &mut Vec<u64>, bad: &mut BadRows| {
        for r in w.check(chunk).map_err(ledger_err)? {
            bad.push(field_err(lines[r.index], r.error));
        }
        chunk.clear();
        lines.clear();
        Ok::<_, ImportError>(())
    };
    let mut rows_in = open_rows(path, &cols)?;
    let json = rows_in.is_json();
    while let Some(r) = rows_in.next_row(&cols) {
        let row = match r {
            Ok(row) => row,
            Err(b) => {
                bad.push(bad_row(b));
                continue;
            }
        };
        rows += 1;
        if rows.is_multiple_of(PROGRESS_ROWS) {
            progress(ImportEvent::Read { file: path, rows });
        }
        let rec = match parse_record(
            rk,
            &Fields {
                row: &row,
                cols: &cols,
            },
        ) {
            Ok(rec) => rec,
            Err(e) => {
                bad.push(field_err(row.line, e));
                continue;
            }
        };
        let d = digest(&rec);
        match first.entry(rec.id().into()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let (l, d0) = *o.get();
                if d0 != d {
                    bad.push(RowError {
                        line: row.line,
                        field: Some(id_field(rk).into()),
                        reason: format!(
                            "{} {:?} also appears on line {l} with different content; \
                             send one version per file",
                            rk.as_str(),
                            rec.id()
                        ),
                    });
                }
                continue;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((row.line, d));
            }
        }
        chunk.push(Change::Put(rec));
        lines.push(row.line);
        if chunk.len() == CHUNK {
            check(&mut chunk, &mut lines, &mut bad)?;
        }
    }
    check(&mut chunk, &mut lines, &mut bad)?;
    if bad.total > 0 {
        return Err(bad.into_error(path));
    }
    if rows == 0 {
        return Err(no_records(path, json));
    }
    // Pass 2: read again and write.
    let total = first.len();
    let mut written = 0;
    let mut write = |chunk: &mut Vec<Change>, lines: &mut Vec<u64>| {
        if let Err(refusals) = w.write(chunk).map_err(ledger_err)? {
            // Only a change of the store or the file between the passes gets here.
            return Err(rows_error(
                path,
                refusals
                    .into_iter()
                    .map(|r| field_err(lines[r.index], r.error))
                    .collect(),
            ));
        }
        written += chunk.len();
        progress(ImportEvent::Written {
            file: path,
            progress: Progress {
                list,
                done: written,
                total,
            },
        });
        chunk.clear();
        lines.clear();
        Ok(())
    };
    let mut rows_in = open_rows(path, &cols)?;
    while let Some(r) = rows_in.next_row(&cols) {
        let row = r.map_err(|b| changed(path, b.line))?;
        let rec = parse_record(
            rk,
            &Fields {
                row: &row,
                cols: &cols,
            },
        )
        .map_err(|_| changed(path, row.line))?;
        match first.get(rec.id()) {
            Some(&(l, d)) if l == row.line && d == digest(&rec) => {}
            Some(&(l, _)) if l != row.line => continue, // a repeat, taken once
            _ => return Err(changed(path, row.line)),
        }
        chunk.push(Change::Put(rec));
        lines.push(row.line);
        if chunk.len() == CHUNK {
            write(&mut chunk, &mut lines)?;
        }
    }
    write(&mut chunk, &mut lines)?;
    if written != total {
        return Err(changed(path, 0));
    }
    Ok(FileReport {
        file: path.to_owned(),
        kind,
        rows,
        applied: w.end_file(),
    })
}

/// The records of a file, parsed and checked field by field but not written (for tools and
/// benchmarks). Errors are those `import_file` would report for malformed rows.
pub fn parse_records(path: &Path, kind: RecordKind) -> Result<Vec<Record>, ImportError> {
    parse_rows(path, FileKind::Records(kind), |f| parse_record(kind, f))
}

/// The divisions of a `divisions.csv` (or `.jsonl`), parsed and checked row by row but not
/// stored (the demo hands each node its part of a registry).
pub fn read_divisions(path: &Path) -> Result<Vec<Division>, ImportError> {
    parse_rows(path, FileKind::Divisions, parse_division)
}

/// Read `path` as `kind` and parse every row with `parse`; every bad row is reported.
fn parse_rows<T>(
    path: &Path,
    kind: FileKind,
    parse: impl Fn(&Fields) -> Result<T, FieldError>,
) -> Result<Vec<T>, ImportError> {
    let (cols, rows) = read_all(path, kind, &mut |_| {})?;
    let mut out = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for row in &rows {
        match parse(&Fields { row, cols: &cols }) {
            Ok(r) => out.push(r),
            Err(e) => errors.push(field_err(row.line, e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(rows_error(path, errors))
    }
}

fn id_field(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Household | RecordKind::Monitored => "household_code",
        _ => "id",
    }
}

/// Import several files in dependency order; stops at the first rejected file (the files
/// before it stay imported). Record files stream through one [`StreamedWrite`]: each is
/// checked whole, then its records written chunk by chunk, and the cell deltas of all of them
/// are written at the end, summed, so each statistics block is written once per import.
/// `done` hears of each imported file once it is durable.
pub fn import_files(
    ledger: &Ledger,
    paths: &[PathBuf],
    kind: Option<FileKind>,
    today: Date,
    progress: &mut dyn FnMut(ImportEvent),
    done: &mut dyn FnMut(&FileReport),
) -> Result<Vec<FileReport>, ImportError> {
    let mut trace = MemoryTrace::new();
    let progress: &mut dyn FnMut(ImportEvent) = &mut |ev: ImportEvent| {
        trace.note(&ev);
        progress(ev)
    };
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let k = kind
            .or_else(|| FileKind::from_path(p))
            .ok_or_else(|| ImportError::UnknownKind { file: p.clone() })?;
        files.push((k, p));
    }
    files.sort_by_key(|(k, _)| *k);
    let mut out = Written {
        stream: None,
        pending: Vec::new(),
        reports: Vec::new(),
        last: files.len().saturating_sub(1),
    };
    let mut result = Ok(());
    for (i, (k, p)) in files.into_iter().enumerate() {
        let step = match k {
            FileKind::Divisions => {
                // Divisions sort first, but settle anything streamed before them anyway.
                out.settle(progress, done).and_then(|()| {
                    let r = import_divisions(ledger, p, progress)?;
                    done(&r);
                    out.reports.push(r);
                    Ok(())
                })
            }
            FileKind::Records(_) if ledger.division().level() < Level::County => {
                Err(ImportError::File {
                    file: p.clone(),
                    reason: format!(
                        "this node serves {}, above county level: it holds its children's \
                         replicas, and records are imported at the county node that serves them",
                        ledger.division()
                    ),
                })
            }
            FileKind::Records(rk) => {
                let w = out.stream.get_or_insert_with(|| ledger.stream_write(today));
                import_record_file(w, p, rk, i, progress).map(|r| out.pending.push(r))
            }
            FileKind::Department(_) if ledger.division().level() < Level::County => {
                Err(ImportError::File {
                    file: p.clone(),
                    reason: format!(
                        "this node serves {}, above county level: department data is imported \
                         at the county that holds the households",
                        ledger.division()
                    ),
                })
            }
            FileKind::Department(dk) => {
                // The households it names may be in record files of this same import.
                out.settle(progress, done).and_then(|()| {
                    let r = import_dept_file(ledger, p, dk, progress)?;
                    done(&r);
                    out.reports.push(r);
                    Ok(())
                })
            }
        };
        if let Err(e) = step {
            result = Err(e);
            break;
        }
    }
    let settled = out.settle(progress, done);
    crate::memory::release_memory();
    result.and(settled).map(|()| out.reports)
}

/// What an import wrote so far.
struct Written<'l> {
    /// The streamed write of the record files, once one began.
    stream: Option<StreamedWrite<'l>>,
    /// Reports of record files written but not yet durable.
    pending: Vec<FileReport>,
    /// Reports of the files imported and durable.
    reports: Vec<FileReport>,
    /// The last file's position (for progress).
    last: usize,
}

impl Written<'_> {
    /// Write the cells of the streamed files and flush; then their reports are true and go
    /// to `done` and `reports`.
    fn settle(
        &mut self,
        progress: &mut dyn FnMut(ImportEvent),
        done: &mut dyn FnMut(&FileReport),
    ) -> Result<(), ImportError> {
        let Some(w) = self.stream.take() else {
            return Ok(());
        };
        let file = self
            .pending
            .last()
            .map_or_else(|| PathBuf::from("(import)"), |r| r.file.clone());
        let last = self.last;
        w.finish(&mut |d, t| {
            progress(ImportEvent::Written {
                file: &file,
                progress: Progress {
                    list: last,
                    done: d,
                    total: t,
                },
            })
        })
        .map_err(|source| ImportError::Ledger {
            file: file.clone(),
            source,
        })?;
        for r in self.pending.drain(..) {
            done(&r);
            self.reports.push(r);
        }
        Ok(())
    }
}
