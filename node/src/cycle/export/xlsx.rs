//! XLSX with rust_xlsxwriter: one worksheet per section (its heading as the sheet name), the
//! column headings in the first row, bold on a tinted fill, frozen; widths from the longest
//! text of each column (CJK characters counted double); counts as whole numbers, money in
//! yuan with two decimals (`0.00`), rates as percentages (`0.00%`), scores with two decimals —
//! each number written already rounded as [`Cell::display`] shows it, so a spreadsheet shows
//! the same figures as the CSV. Praised rows green, criticised red, the total bold. A last
//! sheet, 说明, holds the title, the lines under it and the notes. Printed, a sheet is
//! landscape, one page wide, its headings repeated on every page.

use rust_xlsxwriter::{
    Color, DocProperties, Format, FormatAlign, FormatBorder, Workbook, Worksheet,
};

use crate::cycle::document::{round2, Cell, Document, Mark};
use crate::cycle::CycleError;
use crate::report::display_width;

/// Longest sheet name Excel accepts.
const SHEET_NAME_MAX: usize = 31;

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> CycleError {
    CycleError::Write {
        path: "XLSX".into(),
        message: e.to_string(),
    }
}

/// A sheet name Excel accepts: no `[]:*?/\`, at most 31 characters, unique in `taken`.
pub fn sheet_name(heading: &str, taken: &[String]) -> String {
    let clean: String = heading
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let clean = clean.trim_matches('\'');
    let base: String = clean.chars().take(SHEET_NAME_MAX).collect();
    let base = if base.is_empty() {
        "Sheet".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken
        .iter()
        .any(|t| t.to_lowercase() == name.to_lowercase())
    {
        let suffix = format!("({n})");
        let keep = SHEET_NAME_MAX - suffix.chars().count();
        name = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
        n += 1;
    }
    name
}

fn fill(mark: Mark) -> Option<Color> {
    match mark {
        Mark::Praised => Some(Color::RGB(0xE6F4EA)),
        Mark::Criticised => Some(Color::RGB(0xFDECEA)),
        Mark::Total => Some(Color::RGB(0xF2F2F2)),
        Mark::None => None,
    }
}

fn cell_format(mark: Mark, num_format: Option<&str>) -> Format {
    let mut f = Format::new().set_border(FormatBorder::Thin);
    if let Some(n) = num_format {
        f = f.set_num_format(n);
    }
    if let Some(c) = fill(mark) {
        f = f.set_background_color(c);
    }
    if mark == Mark::Total {
        f = f.set_bold();
    }
    f
}

fn write_cell(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    cell: &Cell,
    mark: Mark,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    match cell {
        Cell::Int(n) => {
            ws.write_number_with_format(row, col, *n as f64, &cell_format(mark, Some("0")))?;
        }
        Cell::Yuan(fen) => {
            ws.write_number_with_format(
                row,
                col,
                *fen as f64 / 100.0,
                &cell_format(mark, Some("0.00")),
            )?;
        }
        Cell::Percent(Some(r)) => {
            ws.write_number_with_format(
                row,
                col,
                round2(r * 100.0) / 100.0,
                &cell_format(mark, Some("0.00%")),
            )?;
        }
        Cell::Decimal(Some(x)) => {
            ws.write_number_with_format(row, col, round2(*x), &cell_format(mark, Some("0.00")))?;
        }
        Cell::Text(_) | Cell::Percent(None) | Cell::Decimal(None) => {
            let mut f = cell_format(mark, None);
            if cell.display() == crate::cycle::document::NO_FIGURE {
                f = f.set_align(FormatAlign::Center);
            } else if display_width(&cell.display()) > WIDEST {
                f = f.set_text_wrap();
            }
            ws.write_string_with_format(row, col, cell.display(), &f)?;
        }
    }
    Ok(())
}

/// The widest column (in characters); longer text wraps.
const WIDEST: usize = 60;

/// Column width in Excel's units (characters) for text of `width` terminal columns.
fn column_width(width: usize) -> f64 {
    (width as f64 + 2.0).clamp(6.0, WIDEST as f64)
}

/// The report as an XLSX workbook.
pub fn render(doc: &Document) -> Result<Vec<u8>, CycleError> {
    build(doc).map_err(xlsx_err)
}

fn build(doc: &Document) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    wb.set_properties(&DocProperties::new().set_title(&doc.title));
    let header = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(Color::RGB(0xDCE6F1));
    let mut taken: Vec<String> = Vec::new();
    for s in &doc.sections {
        let name = sheet_name(&s.heading, &taken);
        taken.push(name.clone());
        let ws = wb.add_worksheet();
        ws.set_name(&name)?;
        // A heading wraps onto a second line: a column is as wide as its widest figure, and
        // at least half its heading.
        let mut widths: Vec<usize> = s
            .columns
            .iter()
            .map(|c| display_width(c).div_ceil(2))
            .collect();
        for (c, h) in s.columns.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &header)?;
        }
        ws.set_row_height(0, 32)?;
        for (i, r) in s.rows.iter().enumerate() {
            for (c, cell) in r.cells.iter().enumerate() {
                write_cell(ws, i as u32 + 1, c as u16, cell, r.mark)?;
                if let Some(w) = widths.get_mut(c) {
                    *w = (*w).max(display_width(&cell.display()));
                }
            }
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(c as u16, column_width(*w))?;
        }
        ws.set_freeze_panes(1, 0)?;
        // Printed: landscape, one page wide, the headings on every page.
        ws.set_landscape().set_print_fit_to_pages(1, 0);
        ws.set_repeat_rows(0, 0)?;
    }
    let notes = wb.add_worksheet();
    notes.set_name(sheet_name("说明", &taken))?;
    let title = Format::new().set_bold().set_font_size(14);
    notes.write_string_with_format(0, 0, &doc.title, &title)?;
    let mut row = 1;
    for l in &doc.lines {
        notes.write_string(row, 0, l)?;
        row += 1;
    }
    for s in &doc.sections {
        for n in &s.notes {
            row += 1;
            notes.write_string(row, 0, format!("{}：{n}", s.heading))?;
        }
    }
    notes.set_column_width(0, 120)?;
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_legal_and_unique() {
        let taken = vec!["综合排名".to_string()];
        assert_eq!(sheet_name("综合排名", &taken), "综合排名(2)");
        assert_eq!(sheet_name("a/b:c", &[]), "a_b_c");
        let long = "年".repeat(40);
        assert_eq!(sheet_name(&long, &[]).chars().count(), 31);
    }

    #[test]
    fn a_workbook_is_a_zip() {
        let mut s = crate::cycle::document::Section::new("表", vec!["地区".into()]);
        s.push(vec![Cell::text("西安市")], Mark::None);
        let bytes = render(&Document {
            title: "t".into(),
            lines: vec![],
            sections: vec![s],
        })
        .unwrap();
        assert_eq!(&bytes[..2], b"PK");
    }
}
