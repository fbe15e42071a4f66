//! CSV: UTF-8 with a byte-order mark (Excel and WPS take a file without one for the local
//! code page and garble the Chinese), CRLF line ends, fields quoted when they hold a comma,
//! a quote or a line break. Layout, blocks separated by an empty line: the title and the
//! lines under it; then each section as its heading, the column headings and the rows; then
//! 说明 and the notes, if any.

use crate::cycle::document::Document;

/// The byte-order mark the file starts with.
pub const BOM: &str = "\u{feff}";

/// One CSV field, quoted when it must be.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn line(out: &mut String, fields: &[String]) {
    let f: Vec<String> = fields.iter().map(|s| field(s)).collect();
    out.push_str(&f.join(","));
    out.push_str("\r\n");
}

/// The whole report as CSV text (BOM first).
pub fn render(doc: &Document) -> String {
    let mut out = String::from(BOM);
    line(&mut out, std::slice::from_ref(&doc.title));
    for l in &doc.lines {
        line(&mut out, std::slice::from_ref(l));
    }
    for s in &doc.sections {
        out.push_str("\r\n");
        line(&mut out, std::slice::from_ref(&s.heading));
        for row in s.text_rows() {
            line(&mut out, &row);
        }
    }
    let notes: Vec<String> = doc
        .sections
        .iter()
        .flat_map(|s| s.notes.iter().map(move |n| format!("{}：{n}", s.heading)))
        .collect();
    if !notes.is_empty() {
        out.push_str("\r\n");
        line(&mut out, &["说明".to_string()]);
        for n in &notes {
            line(&mut out, std::slice::from_ref(n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::document::{Cell, Mark, Section};

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        assert_eq!(field("西安市"), "西安市");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_report_is_a_bom_then_blocks() {
        let mut s = Section::new("综合排名", vec!["地区".into(), "帮扶资金（元）".into()]);
        s.push(vec![Cell::text("西安市"), Cell::Yuan(123_450)], Mark::None);
        s.notes.push("排名说明".into());
        let doc = Document {
            title: "标题".into(),
            lines: vec!["制表日期：2026年12月5日".into()],
            sections: vec![s],
        };
        assert_eq!(
            render(&doc),
            "\u{feff}标题\r\n制表日期：2026年12月5日\r\n\r\n综合排名\r\n地区,帮扶资金（元）\r\n\
             西安市,1234.50\r\n\r\n说明\r\n综合排名：排名说明\r\n"
        );
    }
}
