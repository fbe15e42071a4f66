//! The one reader of interchange tables (a county's record files, `divisions.csv`, ticket
//! inventories): CSV in UTF-8 (a BOM tolerated) with one header line and columns matched by
//! name in any order, or JSON lines with the same field names. Rows come one at a time, each
//! with its values aligned with the table's columns and the 1-based line it starts on, so a
//! reader holds one row, never the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A table's columns: the required ones first, then the optional ones.
pub struct Columns {
    names: Vec<&'static str>,
    required: usize,
    /// What the table is, for errors ("a households file").
    what: String,
}

impl Columns {
    /// Columns `required` then `optional`, of a table described as `what`.
    pub fn new(required: &[&'static str], optional: &[&'static str], what: String) -> Columns {
        Columns {
            names: required.iter().chain(optional).copied().collect(),
            required: required.len(),
            what,
        }
    }

    /// The position of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }
}

/// One row: its values in column order (`None`: empty or absent), trimmed.
#[derive(Debug)]
pub struct Row {
    /// 1-based line the row starts on (a CSV's header is line 1).
    pub line: u64,
    /// The values, aligned with the [`Columns`].
    pub values: Vec<Option<String>>,
}

impl Row {
    /// The value of column `name`.
    pub fn get(&self, cols: &Columns, name: &str) -> Option<&str> {
        cols.index(name)
            .and_then(|i| self.values.get(i))
            .and_then(|v| v.as_deref())
    }
}

/// A row that could not be read.
#[derive(Debug)]
pub struct BadRow {
    /// 1-based line.
    pub line: u64,
    /// The column (or the unknown field of a JSON line), when one field is at fault.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

const NOT_UTF8: &str = "not valid UTF-8 (files must be UTF-8; re-export without GBK encoding)";

/// Rows of a CSV table. `L` reads the same bytes a second time to number the lines (the csv
/// crate's own line counter lags behind CRLF line ends and blank lines).
pub struct CsvRows<R: Read, L: BufRead> {
    rdr: csv::Reader<R>,
    lines: LineCounter<L>,
    /// Position in the file → position in the columns.
    map: Vec<usize>,
    width: usize,
    rec: csv::ByteRecord,
    done: bool,
}

impl<R: Read, L: BufRead> CsvRows<R, L> {
    /// Read the header of `input` (`lines` being the same bytes again). The error is about
    /// the whole table (empty, unknown, duplicate or missing column) and names line 1.
    pub fn new(input: R, lines: L, cols: &Columns) -> Result<Self, String> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(input);
        let header = rdr
            .byte_headers()
            .map_err(|e| format!("line 1: {e}"))?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err("the file is empty: expected a header line".into());
        }
        let mut map = Vec::with_capacity(header.len());
        let mut seen = vec![false; cols.names.len()];
        for (i, raw) in header.iter().enumerate() {
            let raw = if i == 0 {
                raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
            } else {
                raw
            };
            let name = std::str::from_utf8(raw)
                .map_err(|_| "line 1: the header is not valid UTF-8".to_string())?
                .trim();
            let Some(j) = cols.index(name) else {
                return Err(format!(
                    "line 1: unknown column {name:?} ({} has columns {})",
                    cols.what,
                    cols.names.join(", ")
                ));
            };
            if seen[j] {
                return Err(format!("line 1: column {name:?} appears twice"));
            }
            seen[j] = true;
            map.push(j);
        }
        if let Some(j) = (0..cols.required).find(|&j| !seen[j]) {
            return Err(format!(
                "line 1: required column {:?} is missing",
                cols.names[j]
            ));
        }
        Ok(CsvRows {
            rdr,
            lines: LineCounter::new(lines),
            map,
            width: cols.names.len(),
            rec: csv::ByteRecord::new(),
            done: false,
        })
    }

    /// The next row, or why it could not be read; `None` at the end (after a row with the
    /// wrong number of fields, as the rest cannot be trusted).
    pub fn next_row(&mut self, cols: &Columns) -> Option<Result<Row, BadRow>> {
        if self.done {
            return None;
        }
        match self.rdr.read_byte_record(&mut self.rec) {
            Ok(false) => {
                self.done = true;
                return None;
            }
            Ok(true) => {}
            Err(e) => {
                // Unequal lengths and I/O errors: the rest of the file cannot be trusted.
                self.done = true;
                let line = e.position().map_or(0, |p| self.lines.line_at(p.byte()));
                let reason = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    _ => e.to_string(),
                };
                return Some(Err(BadRow {
                    line,
                    field: None,
                    reason,
                }));
            }
        }
        let line = self
            .rec
            .position()
            .map_or(0, |p| self.lines.line_at(p.byte()));
        let mut values = vec![None; self.width];
        for (i, raw) in self.rec.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(s) => {
                    let s = s.trim();
                    if !s.is_empty() {
                        values[self.map[i]] = Some(s.to_string());
                    }
                }
                Err(_) => {
                    return Some(Err(BadRow {
                        line,
                        field: Some(cols.names[self.map[i]].to_string()),
                        reason: NOT_UTF8.into(),
                    }))
                }
            }
        }
        Some(Ok(Row { line, values }))
    }
}

/// Numbers lines by reading the bytes a second time, forward only.
struct LineCounter<L> {
    input: L,
    /// Bytes consumed.
    pos: u64,
    /// Line ends among them.
    ends: LineEnds,
}

/// Line ends counted as the csv crate ends records: at `\n`, `\r\n` or a lone `\r` (files
/// saved with classic Mac line ends, which Excel for Mac still offers).
#[derive(Default)]
struct LineEnds {
    /// Line ends so far.
    count: u64,
    /// The last byte counted was a `\r` (a `\n` right after it ends no other line).
    after_cr: bool,
}

impl LineEnds {
    /// Count the line ends of `bytes`, the bytes after those counted so far.
    fn add(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        let lf = bytes.iter().filter(|b| **b == b'\n').count();
        let cr = bytes.iter().filter(|b| **b == b'\r').count();
        // A `\r\n` is one line end, counted at its `\r`.
        let crlf = if cr == 0 && !self.after_cr {
            0
        } else {
            bytes.windows(2).filter(|w| *w == b"\r\n").count()
                + usize::from(self.after_cr && bytes[0] == b'\n')
        };
        self.count += (lf + cr - crlf) as u64;
        self.after_cr = last == b'\r';
    }
}

impl<L: BufRead> LineCounter<L> {
    fn new(input: L) -> Self {
        LineCounter {
            input,
            pos: 0,
            ends: LineEnds::default(),
        }
    }

    /// The line of the first content byte at or after `offset`; offsets are asked in
    /// increasing order (a record starts after the one before it ends).
    fn line_at(&mut self, offset: u64) -> u64 {
        while let Ok(buf) = self.input.fill_buf() {
            if buf.is_empty() {
                break;
            }
            let n = if self.pos < offset {
                let n = buf.len().min((offset - self.pos) as usize);
                self.ends.add(&buf[..n]);
                n
            } else {
                // Skip the line ends (and blank lines) before the record's first byte.
                let n = buf
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                self.ends.add(&buf[..n]);
                if n < buf.len() {
                    self.input.consume(n);
                    self.pos += n as u64;
                    break;
                }
                n
            };
            self.input.consume(n);
            self.pos += n as u64;
        }
        self.ends.count + 1
    }
}

/// Rows of a JSON lines table: one object per line, field names as the columns.
pub struct JsonRows<R: BufRead> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    done: bool,
}

impl<R: BufRead> JsonRows<R> {
    /// Rows of `input`.
    pub fn new(input: R) -> Self {
        JsonRows {
            input,
            buf: Vec::new(),
            line: 0,
            done: false,
        }
    }

    /// The next row, or why it could not be read; `None` at the end.
    pub fn next_row(&mut self, cols: &Columns) -> Option<Result<Row, BadRow>> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(BadRow {
                        line: self.line + 1,
                        field: None,
                        reason: format!("reading failed: {e}"),
                    }));
                }
            }
            self.line += 1;
            let line = self.line;
            let bad = |field, reason| {
                Some(Err(BadRow {
                    line,
                    field,
                    reason,
                }))
            };
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return bad(None, "not valid UTF-8".into());
            };
            let text = if line == 1 {
                text.strip_prefix('\u{feff}').unwrap_or(text)
            } else {
                text
            };
            if text.trim().is_empty() {
                continue;
            }
            let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
                Ok(o) => o,
                Err(e) => return bad(None, format!("not a JSON object: {e}")),
            };
            let mut values = vec![None; cols.names.len()];
            for (k, v) in obj {
                let Some(j) = cols.index(&k) else {
                    let reason =
                        format!("unknown field {k:?} (expected {})", cols.names.join(", "));
                    return bad(Some(k), reason);
                };
                values[j] = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) if s.trim().is_empty() => None,
                    serde_json::Value::String(s) => Some(s.trim().to_string()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(if b { "1" } else { "0" }.to_string()),
                    other => {
                        return bad(
                            Some(cols.names[j].to_string()),
                            format!("{other} is not a string or number"),
                        )
                    }
                };
            }
            return Some(Ok(Row { line, values }));
        }
    }
}

/// The rows of a table file, CSV or JSON lines by its extension (`.jsonl`, `.ndjson`,
/// `.json`: JSON lines).
pub enum FileRows {
    /// CSV (boxed: its two readers and line counter make it much larger than the JSON one).
    Csv(Box<CsvRows<BufReader<File>, BufReader<File>>>),
    /// JSON lines.
    Json(JsonRows<BufReader<File>>),
}

/// Buffer of each file reader.
const READ_BUF: usize = 1 << 16;

impl FileRows {
    /// Open `path` as a table of `cols`. `Err(Ok(reason))`: the table as a whole is
    /// malformed; `Err(Err(io))`: it could not be read.
    pub fn open(
        path: &Path,
        cols: &Columns,
    ) -> Result<FileRows, std::result::Result<String, std::io::Error>> {
        let file = File::open(path).map_err(Err)?;
        let is_json = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("jsonl" | "ndjson" | "json")
        );
        if is_json {
            return Ok(FileRows::Json(JsonRows::new(BufReader::with_capacity(
                READ_BUF, file,
            ))));
        }
        let again = File::open(path).map_err(Err)?;
        CsvRows::new(
            BufReader::with_capacity(READ_BUF, file),
            BufReader::with_capacity(READ_BUF, again),
            cols,
        )
        .map(|c| FileRows::Csv(Box::new(c)))
        .map_err(Ok)
    }

    /// Whether the file is JSON lines.
    pub fn is_json(&self) -> bool {
        matches!(self, FileRows::Json(_))
    }

    /// The next row, or why it could not be read; `None` at the end (a CSV stops after a
    /// row with the wrong number of fields, as the rest cannot be trusted).
    pub fn next_row(&mut self, cols: &Columns) -> Option<Result<Row, BadRow>> {
        match self {
            FileRows::Csv(c) => c.next_row(cols),
            FileRows::Json(j) => j.next_row(cols),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Columns {
        Columns::new(&["a", "b"], &["c"], "a test table".into())
    }

    type Got = Result<(u64, Vec<Option<String>>), (u64, String)>;

    fn rows(text: &str) -> Vec<Got> {
        let cols = cols();
        let mut r = CsvRows::new(text.as_bytes(), text.as_bytes(), &cols).unwrap();
        std::iter::from_fn(|| r.next_row(&cols))
            .map(|x| {
                x.map(|r| (r.line, r.values))
                    .map_err(|b| (b.line, b.reason))
            })
            .collect()
    }

    #[test]
    fn lines_count_crlf_and_blank_lines() {
        let got = rows("b,a\r\n1,2\r\n\r\n\r\n3, 4 \r\n5,\"x\ny\"\n6,7\n");
        let lines: Vec<u64> = got.iter().map(|r| r.as_ref().unwrap().0).collect();
        assert_eq!(lines, vec![2, 5, 6, 8]);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first.1, vec![Some("2".into()), Some("1".into()), None]);
        assert_eq!(got[1].as_ref().unwrap().1[0].as_deref(), Some("4"));
    }

    #[test]
    fn lines_end_at_a_lone_cr_too() {
        // Classic Mac line ends: the csv crate ends records at a lone `\r`, and so must the
        // line count (fuzzing found every row reported on line 1 or 2). Mixed with `\r\n`
        // split across the counter's reads.
        let text = "a,b\r1,2\r\r3,4\r\n5,\"x\ry\"\r6,7\n";
        let lines: Vec<u64> = rows(text).iter().map(|r| r.as_ref().unwrap().0).collect();
        assert_eq!(lines, vec![2, 4, 5, 7]);
        let cols = cols();
        for cap in 1..8 {
            let again = std::io::BufReader::with_capacity(cap, text.as_bytes());
            let mut r = CsvRows::new(text.as_bytes(), again, &cols).unwrap();
            let got: Vec<u64> = std::iter::from_fn(|| r.next_row(&cols))
                .map(|r| r.unwrap().line)
                .collect();
            assert_eq!(got, lines, "buffer of {cap}");
        }
        // A ticket inventory whose header ends in a lone `\r`: its row error is on line 2.
        let bad = b"a,b\r\xff,1\r\n";
        let mut r = CsvRows::new(&bad[..], &bad[..], &cols).unwrap();
        assert_eq!(r.next_row(&cols).unwrap().unwrap_err().line, 2);
    }

    #[test]
    fn a_short_row_ends_the_table_with_its_line() {
        let got = rows("\u{feff}a,b\n1,2\n\n3\n4,5\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].as_ref().unwrap_err().0, 4);
    }

    #[test]
    fn header_errors_name_the_column() {
        let cols = cols();
        let e = CsvRows::new("a,z\n".as_bytes(), "".as_bytes(), &cols)
            .err()
            .unwrap();
        assert!(e.contains("unknown column \"z\""), "{e}");
        let e = CsvRows::new("a,c\n".as_bytes(), "".as_bytes(), &cols)
            .err()
            .unwrap();
        assert!(e.contains("required column \"b\" is missing"), "{e}");
        let e = CsvRows::new("a,b,a\n".as_bytes(), "".as_bytes(), &cols)
            .err()
            .unwrap();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn json_lines_skip_blank_lines_and_name_bad_fields() {
        let cols = cols();
        let text = "{\"a\":1,\"b\":\"x\"}\n\n{\"a\":[1]}\n{\"q\":1}\n";
        let mut r = JsonRows::new(text.as_bytes());
        let first = r.next_row(&cols).unwrap().unwrap();
        assert_eq!((first.line, first.values[0].as_deref()), (1, Some("1")));
        let bad = r.next_row(&cols).unwrap().unwrap_err();
        assert_eq!((bad.line, bad.field.as_deref()), (3, Some("a")));
        let bad = r.next_row(&cols).unwrap().unwrap_err();
        assert_eq!((bad.line, bad.field.as_deref()), (4, Some("q")));
        assert!(r.next_row(&cols).is_none());
    }
}
