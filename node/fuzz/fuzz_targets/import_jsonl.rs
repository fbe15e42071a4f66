//! The JSON lines importer: the one table reader (`import/rows.rs`) on arbitrary bytes as a
//! record, division or department file (the kind its first line's keys name, see
//! `kind_of`), then every row parsed (`import/fields.rs`) and the warning rules run over the
//! department rows.
//!
//! Checked: the same rows whatever the reader's buffer size; rows on increasing lines within
//! the file; values trimmed and following the columns; errors name a column or the unknown
//! field they refuse; parse and validation errors name a column; a record's stored form
//! decodes to it again; a department row is of its file's kind, valid and round-trips as
//! JSON; the warning rules' signals do not depend on the rows' order; and the same values
//! written as CSV read back the same.
#![no_main]

use std::io::BufReader;

use bottomline_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = kind_of(data);
    let (cols, names) = columns(kind);
    let rows = read_jsonl(data, &cols);
    let small = read_jsonl(BufReader::with_capacity(1 + data.len() % 7, data), &cols);
    assert_eq!(small, rows, "rows depend on the reader's buffer size");
    check_rows(data, &rows, &names, 1, false);
    check_parsed(kind, &cols, &names, &rows);
    // The same values as CSV (a header with every column).
    let csv = to_csv(&rows, &names);
    let back = read_csv(csv.as_slice(), csv.as_slice(), &cols).expect("a header we wrote");
    assert!(back.iter().all(Result::is_ok), "{back:?}");
    assert_eq!(values(&back), values(&rows), "JSON lines and CSV disagree");
});
