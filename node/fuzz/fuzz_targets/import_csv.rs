//! The CSV importer: the one table reader (`import/rows.rs`) on arbitrary bytes as a record,
//! division or department file (divisions, households, monitored, signals, cases, measures,
//! medical, accidents, labour, incomes: the kind its header names, see `kind_of`), then every
//! row parsed (`import/fields.rs`) and the warning rules run over the department rows.
//!
//! Checked: the reader gives the same rows whatever its buffer sizes (line numbers are
//! counted on a second read of the bytes, across buffer boundaries); rows are on increasing
//! lines after the header, within the file; values are trimmed and follow the columns;
//! errors name a column, and a row of the wrong shape ends the table; a header error names
//! line 1; parse errors and record validation errors name a column; a record's stored form
//! decodes to it again; a department row is of its file's kind, valid and round-trips as
//! JSON; the warning rules' signals do not depend on the rows' order; and the same values
//! written as JSON lines read back the same.
#![no_main]

use std::io::BufReader;

use bottomline_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = kind_of(data);
    let (cols, names) = columns(kind);
    let rows = match read_csv(data, data, &cols) {
        Ok(rows) => rows,
        Err(e) => {
            assert!(
                e.starts_with("line 1: ") || e.starts_with("the file is empty"),
                "a header error names line 1: {e}"
            );
            return;
        }
    };
    // Small buffers, different for the two reads: the same rows.
    let cap = 1 + data.len() % 7;
    let small = read_csv(
        BufReader::with_capacity(cap, data),
        BufReader::with_capacity(cap + 3, data),
        &cols,
    )
    .expect("the header read the same way");
    assert_eq!(small, rows, "rows depend on the reader's buffer size");
    check_rows(data, &rows, &names, 2, true);
    check_parsed(kind, &cols, &names, &rows);
    // The same values as JSON lines.
    let jsonl = to_jsonl(&rows, &names);
    let back = read_jsonl(jsonl.as_slice(), &cols);
    assert!(back.iter().all(Result::is_ok), "{back:?}");
    assert_eq!(values(&back), values(&rows), "CSV and JSON lines disagree");
});
