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
//! A file that passed validation is written in atomic batches; if the process dies mid-way,
//! re-running the same import completes it (records are idempotent by id).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::division::{Code, Division, Level};
use crate::domain::{
    Case, Category, Cents, FieldError, Household, Measure, MeasureType, Monitored, Outcome, Record,
    RecordKind, Signal, SignalSource, SignalType, Stage,
};
use crate::ledger::{Applied, Change, Ledger, LedgerError, Progress};

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

/// A parsed row: values aligned with the file kind's columns (required, then optional).
struct Row {
    line: u64,
    values: Vec<Option<String>>,
}

struct Columns {
    names: Vec<&'static str>,
}

impl Columns {
    fn of(kind: FileKind) -> Columns {
        let (req, opt) = kind.columns();
        Columns {
            names: req.iter().chain(opt).copied().collect(),
        }
    }
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }
}

impl Row {
    fn get(&self, cols: &Columns, name: &'static str) -> Option<&str> {
        cols.index(name)
            .and_then(|i| self.values.get(i))
            .and_then(|v| v.as_deref())
    }
}

/// Field accessors that produce errors naming the field.
struct Fields<'a> {
    row: &'a Row,
    cols: &'a Columns,
}

impl Fields<'_> {
    fn opt(&self, name: &'static str) -> Option<&str> {
        self.row.get(self.cols, name)
    }
    fn req(&self, name: &'static str) -> Result<&str, FieldError> {
        self.opt(name)
            .ok_or_else(|| FieldError::new(name, "missing value"))
    }
    fn parse<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, FieldError> {
        f(self.req(name)?).map_err(|r| FieldError::new(name, r))
    }
    fn parse_opt<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, FieldError> {
        self.opt(name)
            .map(|v| f(v).map_err(|r| FieldError::new(name, r)))
            .transpose()
    }
    fn date(&self, name: &'static str) -> Result<Date, FieldError> {
        self.parse(name, parse_date)
    }
    fn date_opt(&self, name: &'static str) -> Result<Option<Date>, FieldError> {
        self.parse_opt(name, parse_date)
    }
    fn flag(&self, name: &'static str) -> Result<bool, FieldError> {
        self.parse(name, |v| match v {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(format!("{v:?} is not 0 or 1")),
        })
    }
    fn text(&self, name: &'static str) -> Result<String, FieldError> {
        self.req(name).map(str::to_string)
    }
}

/// Parse a strict `yyyy-mm-dd` date.
pub fn parse_date(v: &str) -> Result<Date, String> {
    let shape = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape {
        return Err(format!("{v:?} is not a date in yyyy-mm-dd form"));
    }
    v.parse::<Date>()
        .map_err(|_| format!("{v} is not a calendar date"))
}

fn parse_record(kind: RecordKind, f: &Fields) -> Result<Record, FieldError> {
    Ok(match kind {
        RecordKind::Household => Record::Household(Household {
            household_code: f.text("household_code")?,
            village_code: f.parse("village_code", Code::parse)?,
            members: f.parse("members", |v| {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not a whole number"))?;
                if n < 1 {
                    return Err(format!("{n} members: a household has at least 1 member"));
                }
                u32::try_from(n).map_err(|_| format!("{n} members is not plausible"))
            })?,
            alleviated: f.flag("alleviated")?,
            income: f.parse("income", Cents::parse)?,
            head_name: f.opt("head_name").map(str::to_string),
            id_number: f.opt("id_number").map(str::to_string),
        }),
        RecordKind::Monitored => Record::Monitored(Monitored {
            household_code: f.text("household_code")?,
            category: f.parse("category", Category::parse)?,
            identified_date: f.date("identified_date")?,
            eliminated_date: f.date_opt("eliminated_date")?,
        }),
        RecordKind::Signal => Record::Signal(Signal {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            source: f.parse("source", SignalSource::parse)?,
            kind: f.parse("type", SignalType::parse)?,
            department: f.parse_opt("department", |v| {
                v.parse::<u8>()
                    .map_err(|_| format!("{v:?} is not a department number 1-30"))
            })?,
            amount: f.parse("amount", Cents::parse)?,
            date: f.date("date")?,
        }),
        RecordKind::Case => Record::Case(Case {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            discovered_date: f.date("discovered_date")?,
            decided_date: f.date_opt("decided_date")?,
            outcome: f.parse("outcome", Outcome::parse)?,
            green_channel: f.flag("green_channel")?,
            stage: f.parse_opt("stage", Stage::parse)?,
        }),
        RecordKind::Measure => Record::Measure(Measure {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            kind: f.parse("type", MeasureType::parse)?,
            date: f.date("date")?,
            amount: f.parse("amount", Cents::parse)?,
        }),
    })
}

fn parse_division(f: &Fields) -> Result<Division, FieldError> {
    let code = f.parse("code", Code::parse)?;
    let name = f.text("name")?;
    let level: Level = f.parse("level", |v| v.parse())?;
    if level != code.level() {
        return Err(FieldError::new(
            "level",
            format!(
                "{code} has {} digits, which is a {} code, not a {level:?} one",
                code.len(),
                code.level().as_str()
            ),
        ));
    }
    let parent = f.parse_opt("parent", Code::parse)?.unwrap_or(Code::ROOT);
    if Some(parent) != code.parent() {
        return Err(FieldError::new(
            "parent",
            format!(
                "the parent of {code} is {}, not {:?}",
                code.parent().map_or("(none)".into(), |p| p.to_string()),
                parent.to_string()
            ),
        ));
    }
    Ok(Division { code, name })
}

/// Read a file into rows aligned with `kind`'s columns; errors name line and field.
fn read_rows(
    path: &Path,
    kind: FileKind,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<(Columns, Vec<Row>), ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        file: path.to_owned(),
        source,
    })?;
    let is_json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson" | "json")
    );
    let cols = Columns::of(kind);
    let rows = if is_json {
        read_json_lines(path, file, &cols, progress)?
    } else {
        read_csv(path, file, kind, &cols, progress)?
    };
    if rows.is_empty() {
        return Err(ImportError::File {
            file: path.to_owned(),
            reason: if is_json {
                "the file holds no records".into()
            } else {
                "the file has a header line but no records".into()
            },
        });
    }
    Ok((cols, rows))
}

fn file_err(path: &Path, reason: impl Into<String>) -> ImportError {
    ImportError::File {
        file: path.to_owned(),
        reason: reason.into(),
    }
}

/// Maps csv positions to the 1-based line a record starts on. The csv crate's own line
/// counter lags behind CRLF line ends and blank lines, so we count newlines ourselves.
struct Lines<'a> {
    bytes: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Lines { bytes, newlines }
    }

    /// The line of the first content byte at or after `offset`.
    fn line_at(&self, offset: u64) -> u64 {
        let mut p = (offset as usize).min(self.bytes.len());
        while p < self.bytes.len() && matches!(self.bytes[p], b'\r' | b'\n') {
            p += 1;
        }
        self.newlines.partition_point(|&n| n < p) as u64 + 1
    }
}

fn read_csv(
    path: &Path,
    mut file: std::fs::File,
    kind: FileKind,
    cols: &Columns,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<Vec<Row>, ImportError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|source| ImportError::Io {
        file: path.to_owned(),
        source,
    })?;
    let lines = Lines::new(&bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes.as_slice());
    let header = rdr.byte_headers().map_err(|e| csv_err(path, e))?.clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(file_err(path, "the file is empty: expected a header line"));
    }
    let (required, _) = kind.columns();
    // position in the file → position in `cols`
    let mut map: Vec<usize> = Vec::with_capacity(header.len());
    let mut seen = vec![false; cols.names.len()];
    for (i, raw) in header.iter().enumerate() {
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let name = std::str::from_utf8(raw)
            .map_err(|_| file_err(path, "line 1: the header is not valid UTF-8"))?
            .trim();
        let Some(j) = cols.index(name) else {
            return Err(file_err(
                path,
                format!(
                    "line 1: unknown column {name:?} (a {kind} file has columns {})",
                    cols.names.join(", ")
                ),
            ));
        };
        if seen[j] {
            return Err(file_err(
                path,
                format!("line 1: column {name:?} appears twice"),
            ));
        }
        seen[j] = true;
        map.push(j);
    }
    for r in required {
        if !seen[cols.index(r).unwrap_or_default()] {
            return Err(file_err(
                path,
                format!("line 1: required column {r:?} is missing"),
            ));
        }
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // Unequal lengths and I/O errors: the rest of the file cannot be trusted.
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                let reason = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("{len} fields where the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                errors.push(RowError {
                    line,
                    field: None,
                    reason,
                });
                break;
            }
        }
        let line = rec.position().map_or(0, |p| lines.line_at(p.byte()));
        let mut values = vec![None; cols.names.len()];
        let mut bad = None;
        for (i, raw) in rec.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(s) => {
                    let s = s.trim();
                    if !s.is_empty() {
                        values[map[i]] = Some(s.to_string());
                    }
                }
                Err(_) => {
                    bad = Some(RowError {
                        line,
                        field: Some(cols.names[map[i]].to_string()),
                        reason:
                            "not valid UTF-8 (files must be UTF-8; re-export without GBK encoding)"
                                .into(),
                    });
                    break;
                }
            }
        }
        match bad {
            Some(e) => errors.push(e),
            None => rows.push(Row { line, values }),
        }
        if rows.len() % 100_000 == 0 {
            progress(ImportEvent::Read {
                file: path,
                rows: rows.len() as u64,
            });
        }
    }
    if !errors.is_empty() {
        return Err(rows_error(path, errors));
    }
    Ok(rows)
}

fn csv_err(path: &Path, e: csv::Error) -> ImportError {
    file_err(path, format!("line 1: {e}"))
}

fn read_json_lines(
    path: &Path,
    file: std::fs::File,
    cols: &Columns,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<Vec<Row>, ImportError> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| ImportError::Io {
                file: path.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let err = |field: Option<String>, reason: String| RowError {
            line,
            field,
            reason,
        };
        let Ok(text) = std::str::from_utf8(&buf) else {
            errors.push(err(None, "not valid UTF-8".into()));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(o) => o,
            Err(e) => {
                errors.push(err(None, format!("not a JSON object: {e}")));
                continue;
            }
        };
        let mut values = vec![None; cols.names.len()];
        let mut bad = None;
        for (k, v) in obj {
            let Some(j) = cols.index(&k) else {
                bad = Some(err(
                    Some(k.clone()),
                    format!("unknown field {k:?} (expected {})", cols.names.join(", ")),
                ));
                break;
            };
            values[j] = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) if s.trim().is_empty() => None,
                serde_json::Value::String(s) => Some(s.trim().to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(if b { "1" } else { "0" }.to_string()),
                other => {
                    bad = Some(err(
                        Some(k.clone()),
                        format!("{other} is not a string or number"),
                    ));
                    break;
                }
            };
        }
        match bad {
            Some(e) => errors.push(e),
            None => rows.push(Row { line, values }),
        }
        if rows.len() % 100_000 == 0 {
            progress(ImportEvent::Read {
                file: path,
                rows: rows.len() as u64,
            });
        }
    }
    if !errors.is_empty() {
        return Err(rows_error(path, errors));
    }
    Ok(rows)
}

/// Import one file into the ledger (all or nothing, see the module docs).
pub fn import_file(
    ledger: &Ledger,
    path: &Path,
    kind: Option<FileKind>,
    today: Date,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let kind =
        kind.or_else(|| FileKind::from_path(path))
            .ok_or_else(|| ImportError::UnknownKind {
                file: path.to_owned(),
            })?;
    match kind {
        FileKind::Divisions => import_divisions(ledger, path, progress),
        FileKind::Records(rk) => {
            let file = match parse_record_file(path, rk, progress)? {
                Ok(file) => file,
                Err(rejected) => return Err(reject(ledger, rejected, today)),
            };
            let mut reports = Vec::with_capacity(1);
            write_files(ledger, &[file], today, progress, &mut |_| {}, &mut reports)?;
            // One file given, one written (or an error returned above).
            reports.pop().ok_or_else(|| ImportError::UnknownKind {
                file: path.to_owned(),
            })
        }
    }
}

fn field_err(line: u64, e: FieldError) -> RowError {
    RowError {
        line,
        field: Some(e.field.to_string()),
        reason: e.reason,
    }
}

fn import_divisions(
    ledger: &Ledger,
    path: &Path,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<FileReport, ImportError> {
    let (cols, rows) = read_rows(path, FileKind::Divisions, progress)?;
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

/// A record file read and parsed, not yet written.
struct ParsedFile<'p> {
    path: &'p Path,
    kind: RecordKind,
    rows: u64,
    changes: Vec<Change>,
    /// The line of each change.
    lines: Vec<u64>,
}

/// A record file with malformed rows: those errors, and the rows that did parse.
struct Rejected<'p> {
    parsed: ParsedFile<'p>,
    errors: Vec<RowError>,
}

/// Read and parse a record file; `Err` inside for malformed rows (see [`reject`]).
fn parse_record_file<'p>(
    path: &'p Path,
    rk: RecordKind,
    progress: &mut dyn FnMut(ImportEvent),
) -> Result<Result<ParsedFile<'p>, Rejected<'p>>, ImportError> {
    let (cols, rows) = read_rows(path, FileKind::Records(rk), progress)?;
    let mut changes = Vec::with_capacity(rows.len());
    let mut lines = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    let mut first_seen: HashMap<String, (u64, usize)> = HashMap::new();
    for row in &rows {
        match parse_record(rk, &Fields { row, cols: &cols }) {
            Ok(rec) => {
                if let Some(&(l, i)) = first_seen.get(rec.id()) {
                    if changes[i] != Change::Put(rec.clone()) {
                        errors.push(RowError {
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
                first_seen.insert(rec.id().to_string(), (row.line, changes.len()));
                changes.push(Change::Put(rec));
                lines.push(row.line);
            }
            Err(e) => errors.push(field_err(row.line, e)),
        }
    }
    let parsed = ParsedFile {
        path,
        kind: rk,
        rows: rows.len() as u64,
        changes,
        lines,
    };
    Ok(if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(Rejected { parsed, errors })
    })
}

/// The error of a file with malformed rows. It also lists the rows that parsed but would be
/// refused (checked against the store as it is now, so write the files before it first), so
/// that one round of fixes suffices.
fn reject(ledger: &Ledger, rejected: Rejected<'_>, today: Date) -> ImportError {
    let Rejected { parsed, mut errors } = rejected;
    match ledger.check(&parsed.changes, today) {
        Ok(refusals) => errors.extend(
            refusals
                .into_iter()
                .map(|r| field_err(parsed.lines[r.index], r.error)),
        ),
        Err(source) => {
            return ImportError::Ledger {
                file: parsed.path.to_owned(),
                source,
            }
        }
    }
    rows_error(parsed.path, errors)
}

/// Write parsed record files as one [`Ledger::apply_files`]: each file all or nothing, the
/// files before a refused one written. Reports of the written files go to `done` and
/// `reports`; a refused file is the error.
fn write_files(
    ledger: &Ledger,
    files: &[ParsedFile<'_>],
    today: Date,
    progress: &mut dyn FnMut(ImportEvent),
    done: &mut dyn FnMut(&FileReport),
    reports: &mut Vec<FileReport>,
) -> Result<(), ImportError> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let lists: Vec<&[Change]> = files.iter().map(|f| f.changes.as_slice()).collect();
    let mut on_progress = |p: Progress| {
        progress(ImportEvent::Written {
            file: files.get(p.list).map_or(first.path, |f| f.path),
            progress: p,
        })
    };
    let out = ledger
        .apply_files(&lists, today, &mut on_progress)
        .map_err(|source| ImportError::Ledger {
            file: first.path.to_owned(),
            source,
        })?;
    for (f, applied) in files.iter().zip(out.applied) {
        let r = FileReport {
            file: f.path.to_owned(),
            kind: FileKind::Records(f.kind),
            rows: f.rows,
            applied,
        };
        done(&r);
        reports.push(r);
    }
    match out.refused {
        None => Ok(()),
        Some((i, refusals)) => {
            let f = &files[i];
            Err(rows_error(
                f.path,
                refusals
                    .into_iter()
                    .map(|r| field_err(f.lines[r.index], r.error))
                    .collect(),
            ))
        }
    }
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
    let (cols, rows) = read_rows(path, kind, &mut |_| {})?;
    let mut out = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for row in &rows {
        match parse(&Fields { row, cols: &cols }) {
            Ok(r) => out.push(r),
            Err(e) => errors.push(RowError {
                line: row.line,
                field: Some(e.field.to_string()),
                reason: e.reason,
            }),
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
/// before it stay imported). The record files are parsed first and then written as one apply
/// (see [`Ledger::apply_files`]), so each statistics block is written once per import.
pub fn import_files(
    ledger: &Ledger,
    paths: &[PathBuf],
    kind: Option<FileKind>,
    today: Date,
    progress: &mut dyn FnMut(ImportEvent),
    done: &mut dyn FnMut(&FileReport),
) -> Result<Vec<FileReport>, ImportError> {
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let k = kind
            .or_else(|| FileKind::from_path(p))
            .ok_or_else(|| ImportError::UnknownKind { file: p.clone() })?;
        files.push((k, p));
    }
    files.sort_by_key(|(k, _)| *k);
    let mut reports = Vec::new();
    let mut pending: Vec<ParsedFile<'_>> = Vec::new();
    let mut result = Ok(());
    for (k, p) in files {
        let step = match k {
            FileKind::Divisions => {
                // Divisions sort first, but write anything parsed before them anyway.
                write_files(ledger, &pending, today, progress, done, &mut reports).and_then(|()| {
                    pending.clear();
                    let r = import_divisions(ledger, p, progress)?;
                    done(&r);
                    reports.push(r);
                    Ok(())
                })
            }
            FileKind::Records(_) if ledger.division().level() < Level::County => {
                write_files(ledger, &pending, today, progress, done, &mut reports).and_then(|()| {
                    Err(ImportError::File {
                        file: p.clone(),
                        reason: format!(
                            "this node serves {}, above county level: it holds its children's \
                             replicas, and records are imported at the county node that serves \
                             them",
                            ledger.division()
                        ),
                    })
                })
            }
            FileKind::Records(rk) => match parse_record_file(p, rk, progress) {
                Ok(Ok(parsed)) => {
                    pending.push(parsed);
                    Ok(())
                }
                Ok(Err(rejected)) => {
                    write_files(ledger, &pending, today, progress, done, &mut reports)
                        .and_then(|()| Err(reject(ledger, rejected, today)))
                }
                Err(e) => {
                    write_files(ledger, &pending, today, progress, done, &mut reports).and(Err(e))
                }
            },
        };
        if let Err(e) = step {
            pending.clear();
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = write_files(ledger, &pending, today, progress, done, &mut reports);
    }
    drop(pending);
    crate::store::release_memory();
    result.map(|()| reports)
}
