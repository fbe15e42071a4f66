//! The writers of a [`Document`]: a self-contained HTML page, CSV in UTF-8 with a byte-order
//! mark (so that Excel and WPS read the Chinese), and XLSX. Every writer shows each cell as
//! [`Cell::display`](super::document::Cell::display) does (the XLSX as a typed number
//! formatted the same way), so the three hold the same figures.

pub mod csv;
pub mod html;
pub mod xlsx;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::document::Document;
use super::CycleError;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A self-contained HTML page (inline CSS, no external resource).
    Html,
    /// CSV, UTF-8 with a BOM, CRLF line ends; sections one after another.
    Csv,
    /// An XLSX workbook: a sheet per section, then a sheet of notes (说明).
    Xlsx,
}

impl Format {
    /// The name on the command line (and the file extension).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "html" => Ok(Format::Html),
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            _ => Err(format!("unknown format {s:?}: html, csv or xlsx")),
        }
    }
}

/// `doc` in `format`, as bytes.
pub fn render(doc: &Document, format: Format) -> Result<Vec<u8>, CycleError> {
    match format {
        Format::Html => Ok(html::render(doc).into_bytes()),
        Format::Csv => Ok(csv::render(doc).into_bytes()),
        Format::Xlsx => xlsx::render(doc),
    }
}

/// Write `doc` in `format` to `path` (through a temporary file beside it, renamed into place,
/// so a reader never sees half a report).
pub fn write_file(doc: &Document, format: Format, path: &Path) -> Result<(), CycleError> {
    let bytes = render(doc, format)?;
    let err = |e: std::io::Error| CycleError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}
