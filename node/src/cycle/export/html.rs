//! HTML: one self-contained page (inline CSS, no script, no external resource, so it opens
//! on an intranet and can be mailed or printed), in Chinese, every text escaped.

use std::fmt::Write;

use crate::cycle::document::{Document, Mark, NO_FIGURE};

/// `s` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:\"Noto Sans CJK SC\",\"WenQuanYi Micro Hei\",\"Microsoft YaHei\",\"PingFang SC\",sans-serif;\
margin:24px;color:#1f2328;background:#fff}\
h1{font-size:22px;text-align:center;margin:0 0 8px}\
.lines{text-align:center;color:#555;font-size:13px;margin:0 0 20px}\
.lines span{margin:0 10px;display:inline-block}\
h2{font-size:17px;border-left:4px solid #b71c1c;padding-left:8px;margin:28px 0 10px}\
table{border-collapse:collapse;font-size:13px;margin-bottom:6px}\
th,td{border:1px solid #c8ccd0;padding:4px 8px;white-space:nowrap}\
th{background:#e8eef7;font-weight:600;position:sticky;top:0}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
td.c{text-align:center}\
tr.praised td{background:#e6f4ea}\
tr.criticised td{background:#fdecea}\
tr.total td{font-weight:700;background:#f6f8fa}\
.wrap{overflow-x:auto}\
p.note{font-size:12px;color:#555;margin:4px 0}\
@media print{body{margin:8mm}th{position:static}.wrap{overflow:visible}}";

/// The whole report as one HTML page.
pub fn render(doc: &Document) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=\"lines\">",
        escape(&doc.title),
        escape(&doc.title)
    );
    for l in &doc.lines {
        let _ = write!(h, "<span>{}</span>", escape(l));
    }
    h.push_str("</p>\n");
    for s in &doc.sections {
        let _ = write!(
            h,
            "<section>\n<h2>{}</h2>\n<div class=\"wrap\"><table>\n<thead><tr>",
            escape(&s.heading)
        );
        for c in &s.columns {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for r in &s.rows {
            h.push_str(match r.mark {
                Mark::None => "<tr>",
                Mark::Praised => "<tr class=\"praised\">",
                Mark::Criticised => "<tr class=\"criticised\">",
                Mark::Total => "<tr class=\"total\">",
            });
            for c in &r.cells {
                let shown = c.display();
                // Figures right-aligned; "no figure" centred (in a figure's column or a verdict's).
                let class = if c.is_number() {
                    " class=\"n\""
                } else if shown == NO_FIGURE {
                    " class=\"c\""
                } else {
                    ""
                };
                let _ = write!(h, "<td{class}>{}</td>", escape(&shown));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table></div>\n");
        for n in &s.notes {
            let _ = writeln!(h, "<p class=\"note\">{}</p>", escape(n));
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::document::{Cell, Section};

    #[test]
    fn text_is_escaped_and_the_page_stands_alone() {
        let mut s = Section::new("表扬和批评", vec!["地区".into(), "理由".into()]);
        s.push(
            vec![Cell::text("<script>x</script>"), Cell::text("a & \"b\"")],
            Mark::Praised,
        );
        let page = render(&Document {
            title: "月度通报".into(),
            lines: vec![],
            sections: vec![s],
        });
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("a &amp; &quot;b&quot;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("<tr class=\"praised\">"));
        assert!(
            page.contains("<html lang=\"zh-CN\">") && page.contains("<meta charset=\"utf-8\">")
        );
        for external in ["http://", "https://", "src=", "<link"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
