//! Writing the files: dates as days since 1970-01-01, numbers and dates formatted into byte
//! buffers, and the CSV sink (one buffered writer per file) with the division rows.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use super::{CountyPlan, Div, GenError};

// ------------------------------------------------------------------------------------------------
// Dates (days since 1970-01-01, proleptic Gregorian)
// ------------------------------------------------------------------------------------------------

pub(super) fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

pub(super) fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(super) fn date_to_days(d: jiff::civil::Date) -> i32 {
    days_from_civil(i32::from(d.year()), d.month() as u32, d.day() as u32)
}

// ------------------------------------------------------------------------------------------------
// Formatting into byte buffers
// ------------------------------------------------------------------------------------------------

pub(super) fn push_uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `n` zero-padded to at least `width` digits.
pub(super) fn push_pad(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && tmp.len() - i >= width {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub(super) fn push_date(buf: &mut Vec<u8>, day: i32) {
    let (y, m, d) = civil_from_days(day);
    push_pad(buf, y as u64, 4);
    buf.push(b'-');
    push_pad(buf, u64::from(m), 2);
    buf.push(b'-');
    push_pad(buf, u64::from(d), 2);
}

/// Yuan with exactly two decimals.
pub(super) fn push_cents(buf: &mut Vec<u8>, cents: u64) {
    push_uint(buf, cents / 100);
    buf.push(b'.');
    push_pad(buf, cents % 100, 2);
}

// ------------------------------------------------------------------------------------------------
// CSV sink
// ------------------------------------------------------------------------------------------------

pub(super) struct Sink {
    w: csv::Writer<BufWriter<File>>,
    path: PathBuf,
    pub(super) rows: u64,
    pub(super) buf: Vec<u8>,
}

impl Sink {
    pub(super) fn create(path: PathBuf, header: &[&str]) -> Result<Sink, GenError> {
        let file = File::create(&path).map_err(|source| GenError::Io {
            path: path.clone(),
            source,
        })?;
        let w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .buffer_capacity(1 << 16)
            .from_writer(BufWriter::with_capacity(1 << 16, file));
        let mut s = Sink {
            w,
            path,
            rows: 0,
            buf: Vec::with_capacity(64),
        };
        s.w.write_record(header).map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn err(&self, source: csv::Error) -> GenError {
        GenError::Csv {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes the field built in `self.buf` and clears it.
    pub(super) fn put(&mut self) -> Result<(), GenError> {
        let r = self.w.write_field(&self.buf);
        self.buf.clear();
        r.map_err(|e| self.err(e))
    }

    pub(super) fn field(&mut self, f: &[u8]) -> Result<(), GenError> {
        self.w.write_field(f).map_err(|e| self.err(e))
    }

    pub(super) fn end_row(&mut self) -> Result<(), GenError> {
        self.rows += 1;
        self.w.write_record(None::<&[u8]>).map_err(|e| self.err(e))
    }

    pub(super) fn finish(mut self) -> Result<u64, GenError> {
        self.w.flush().map_err(|source| GenError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.rows)
    }
}

pub(super) fn write_div(s: &mut Sink, d: &Div) -> Result<(), GenError> {
    s.field(d.code.as_bytes())?;
    s.field(d.name.as_bytes())?;
    s.field(d.level.as_bytes())?;
    s.field(d.parent.as_bytes())?;
    s.end_row()
}

pub(super) fn write_county_divs(s: &mut Sink, c: &CountyPlan) -> Result<(), GenError> {
    write_div(s, &c.div)?;
    for t in &c.towns {
        write_div(s, &t.div)?;
        for v in &t.villages {
            write_div(s, v)?;
        }
    }
    Ok(())
}
