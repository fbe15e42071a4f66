//! A report as every writer sees it: a title, lines under it, and sections, each a headed
//! table of typed cells (so a count stays a number in XLSX, money keeps its two decimals, a
//! rate is a percentage) with notes. The writers in [`export`](super::export) render this and
//! nothing else, so the HTML, the CSV and the XLSX of one report hold the same figures.

use crate::domain::Cents;
use crate::stats::Value;

/// A report.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The title (防返贫动态监测工作月度通报（2026年11月）).
    pub title: String,
    /// Lines under the title: the region, the period's days, the date made.
    pub lines: Vec<String>,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

/// One headed table.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// The heading (综合排名).
    pub heading: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// The rows, each as many cells as there are columns.
    pub rows: Vec<TableRow>,
    /// Notes under the table (how the ranking was made).
    pub notes: Vec<String>,
}

/// A row and how it stands out.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    /// The cells.
    pub cells: Vec<Cell>,
    /// Its emphasis.
    pub mark: Mark,
}

/// How a row stands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// An ordinary row.
    None,
    /// A praised region (green).
    Praised,
    /// A criticised region (red).
    Criticised,
    /// The total of the regions (bold).
    Total,
}

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number (a count, a place).
    Int(i64),
    /// Money in fen, shown in yuan to the cent.
    Yuan(i64),
    /// A ratio shown as a percentage with two decimals (0.875 → 87.50%); `None`: no figure.
    Percent(Option<f64>),
    /// A number shown with two decimals (a score, an average, a change in percentage
    /// points); `None`: no figure.
    Decimal(Option<f64>),
}

/// `x` rounded to two decimals, half away from zero, never `-0` (every writer shows this
/// value, so that no two formats round a figure differently).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0 + 0.0
}

/// What a cell without a figure shows.
pub const NO_FIGURE: &str = "—";

impl Cell {
    /// Text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// The cell of an indicator's value.
    pub fn of(v: Option<Value>) -> Cell {
        match v {
            Some(Value::Count(n)) => Cell::Int(n),
            Some(Value::Fen(f)) => Cell::Yuan(f),
            Some(Value::Ratio(r)) => Cell::Percent(r),
            Some(Value::Average(a)) => Cell::Decimal(a),
            None => Cell::Text(NO_FIGURE.into()),
        }
    }

    /// The cell as text, the same in every format: `1234`, `1234.50` (yuan), `87.50%`,
    /// `1.25`, `—`.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Yuan(f) => Cents(*f).to_string(),
            Cell::Percent(Some(r)) => format!("{:.2}%", round2(r * 100.0)),
            Cell::Decimal(Some(x)) => format!("{:.2}", round2(*x)),
            Cell::Percent(None) | Cell::Decimal(None) => NO_FIGURE.into(),
        }
    }

    /// True for a number (right-aligned).
    pub fn is_number(&self) -> bool {
        !matches!(
            self,
            Cell::Text(_) | Cell::Percent(None) | Cell::Decimal(None)
        )
    }
}

impl Section {
    /// A section with `columns` and no rows yet.
    pub fn new(heading: impl Into<String>, columns: Vec<String>) -> Section {
        Section {
            heading: heading.into(),
            columns,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Add a row (as many cells as columns).
    pub fn push(&mut self, cells: Vec<Cell>, mark: Mark) {
        debug_assert_eq!(cells.len(), self.columns.len(), "{}", self.heading);
        self.rows.push(TableRow { cells, mark });
    }

    /// The table as text rows (heading row first), as the CSV writes it.
    pub fn text_rows(&self) -> Vec<Vec<String>> {
        std::iter::once(self.columns.clone())
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.cells.iter().map(Cell::display).collect()),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_yuan_to_the_cent_and_rates_in_percent() {
        assert_eq!(Cell::of(Some(Value::Fen(123_456))).display(), "1234.56");
        assert_eq!(Cell::of(Some(Value::Fen(5))).display(), "0.05");
        assert_eq!(
            Cell::of(Some(Value::Ratio(Some(0.875)))).display(),
            "87.50%"
        );
        assert_eq!(Cell::of(Some(Value::Ratio(None))).display(), "—");
        assert_eq!(Cell::of(Some(Value::Count(42))).display(), "42");
        assert_eq!(Cell::Decimal(Some(-1.25)).display(), "-1.25");
        assert_eq!(Cell::Decimal(Some(-0.001)).display(), "0.00");
        // 0.00125 as a percentage is 0.125: rounded half away from zero in every format.
        assert_eq!(Cell::Percent(Some(0.00125)).display(), "0.13%");
        assert!(!Cell::Percent(None).is_number() && Cell::Yuan(0).is_number());
    }
}
