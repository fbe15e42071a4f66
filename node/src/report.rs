//! Rendering indicators for people (an aligned table) and machines (JSON, CSV).

use std::fmt::Write as _;

use crate::division::Registry;
use crate::domain::Cents;
use crate::stats::{Indicators, Value};

/// Output formats of `bottomline stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// One JSON object.
    Json,
    /// CSV with a header line.
    Csv,
}

fn value_text(v: Value) -> String {
    match v {
        Value::Count(n) => n.to_string(),
        Value::Fen(f) => Cents(f).to_string(),
        Value::Ratio(Some(r)) => format!("{:.4}", r),
        Value::Average(Some(r)) => format!("{:.4}", r),
        Value::Ratio(None) | Value::Average(None) => String::new(),
    }
}

/// Render `ind` in `format`. `registry` supplies the division's name.
pub fn render(ind: &Indicators, registry: &Registry, format: Format) -> String {
    match format {
        Format::Table => {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "{} {}  {}  ({} .. {})",
                ind.division,
                registry.name(ind.division),
                ind.period,
                ind.first_day,
                ind.last_day
            );
            let w1 = ind
                .rows
                .iter()
                .map(|r| r.indicator.len())
                .max()
                .unwrap_or(0);
            let w2 = ind
                .rows
                .iter()
                .map(|r| r.dimension.len())
                .max()
                .unwrap_or(0);
            for r in &ind.rows {
                let v = match r.value {
                    Value::Ratio(Some(x)) => format!("{:.1} %", x * 100.0),
                    Value::Average(Some(x)) => format!("{x:.2}"),
                    Value::Ratio(None) | Value::Average(None) => "-".into(),
                    other => value_text(other),
                };
                let _ = writeln!(s, "  {:w1$}  {:w2$}  {:>14}", r.indicator, r.dimension, v);
            }
            s
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> = ind
                .rows
                .iter()
                .map(|r| {
                    let v = match r.value {
                        Value::Count(n) => serde_json::json!(n),
                        Value::Fen(f) => serde_json::json!(Cents(f).to_string()),
                        Value::Ratio(x) | Value::Average(x) => serde_json::json!(x),
                    };
                    serde_json::json!({"indicator": r.indicator, "dimension": r.dimension, "value": v})
                })
                .collect();
            let doc = serde_json::json!({
                "division": ind.division.to_string(),
                "name": registry.name(ind.division),
                "period": ind.period.to_string(),
                "first_day": ind.first_day.to_string(),
                "last_day": ind.last_day.to_string(),
                "indicators": rows,
            });
            // Values built above are plain JSON: serialisation cannot fail.
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(["division", "period", "indicator", "dimension", "value"]);
            for r in &ind.rows {
                let _ = w.write_record([
                    ind.division.to_string(),
                    ind.period.to_string(),
                    r.indicator.to_string(),
                    r.dimension.clone(),
                    value_text(r.value),
                ]);
            }
            // Writing to a Vec cannot fail.
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
    }
}

/// The indicators a region table shows as columns (their `total` rows), in Chinese.
const REGION_COLUMNS: [&str; 10] = [
    "monitored_households",
    "newly_identified",
    "eliminated",
    "elimination_rate",
    "within_deadline_rate",
    "signals",
    "measures",
    "measure_amount",
    "tickets_open",
    "tickets_overdue",
];

/// Render the entries of a region report (`stats --children`, `--level`, `--trend`): a table
/// with one line per division and period and the headline indicators as columns (Chinese
/// headings); JSON, an array of [`render`]'s objects; CSV, every indicator of every entry in
/// long form (`division,name,period,indicator,dimension,value`).
pub fn render_region<'a>(
    entries: impl IntoIterator<Item = &'a Indicators>,
    registry: &Registry,
    format: Format,
) -> String {
    match format {
        Format::Table => {
            let mut header = vec!["代码", "名称", "期间"];
            let labels: Vec<String> = REGION_COLUMNS
                .iter()
                .map(|c| {
                    crate::stats::labels::indicator(c)
                        .map_or_else(|| c.to_string(), |l| format!("{}({})", l.zh, l.unit_zh))
                })
                .collect();
            header.extend(labels.iter().map(String::as_str));
            let rows: Vec<Vec<String>> = entries
                .into_iter()
                .map(|e| {
                    let mut r = vec![
                        e.division.to_string(),
                        registry.name(e.division),
                        e.period.to_string(),
                    ];
                    for c in REGION_COLUMNS {
                        r.push(match e.get(c, "total") {
                            Some(Value::Ratio(Some(x))) => format!("{:.1}", x * 100.0),
                            Some(Value::Average(Some(x))) => format!("{x:.2}"),
                            Some(v) => value_text(v),
                            None => String::new(),
                        });
                    }
                    r
                })
                .collect();
            table(&header, &rows)
        }
        Format::Json => {
            let docs: Vec<serde_json::Value> = entries
                .into_iter()
                .filter_map(|e| serde_json::from_str(&render(e, registry, Format::Json)).ok())
                .collect();
            serde_json::to_string_pretty(&docs).unwrap_or_default() + "\n"
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record([
                "division",
                "name",
                "period",
                "indicator",
                "dimension",
                "value",
            ]);
            for e in entries {
                for r in &e.rows {
                    let _ = w.write_record([
                        e.division.to_string(),
                        registry.name(e.division),
                        e.period.to_string(),
                        r.indicator.clone(),
                        r.dimension.clone(),
                        value_text(r.value),
                    ]);
                }
            }
            // Writing to a Vec cannot fail.
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
    }
}

/// A Unix-ms time as a China local time with its age, e.g. `2026-12-02 09:01:02 (3 s ago)`.
fn contact_text(ms: i64, now_ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    let when = jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string());
    let age = (now_ms - ms).max(0) / 1000;
    let age = match age {
        a if a < 120 => format!("{a} s ago"),
        a if a < 7200 => format!("{} min ago", a / 60),
        a if a < 172_800 => format!("{} h ago", a / 3600),
        a => format!("{} days ago", a / 86_400),
    };
    format!("{when} ({age})")
}

/// Render a node's link states (`bottomline status`): its uplink, then one line per child
/// with last contact, acked position, backlog, both directions of its ticket link (acked
/// position / events waiting) and a SILENT warning.
pub fn render_status(st: &crate::rpc::NodeStatus, format: Format, now_ms: i64) -> String {
    let registry = &st.names;
    let name = |c| registry.get(c).map(|d| d.name.clone()).unwrap_or_default();
    let mut s = String::new();
    match format {
        Format::Json => {
            let children: Vec<_> = st
                .children
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "division": c.division.to_string(),
                        "name": name(c.division),
                        "connected": c.connected,
                        "last_contact_unix_ms": c.last_contact_unix_ms,
                        "acked": c.acked,
                        "head": c.head,
                        "backlog": c.backlog,
                        "silent": c.silent,
                        "stalled": c.stalled,
                        "tickets_down": {
                            "acked": c.ticket_acked_down,
                            "backlog": c.ticket_backlog_down,
                            "backlog_at_least": c.ticket_backlog_down_at_least,
                        },
                        "tickets_up": {
                            "acked": c.ticket_acked_up,
                            "backlog": c.ticket_backlog_up,
                        },
                        "via_relay": c.via_relay,
                        "custody": c.custody.map(|k| serde_json::json!({
                            "up": k.up,
                            "down": k.down,
                            "parent_connected": k.parent_connected,
                        })),
                    })
                })
                .collect();
            let v = serde_json::json!({
                "division": st.division.to_string(),
                "name": name(st.division),
                "relay": st.relay,
                "self_check": st.self_check.as_ref().map(|c| serde_json::json!({
                    "at_unix_ms": c.at_unix_ms,
                    "ok": c.ok,
                    "what": c.what,
                    "cells": c.cells,
                    "differing": c.differing,
                    "first": c.first,
                })),
                "software": st.software,
                "head": st.head,
                "ticket_head": st.ticket_head,
                "silent_child_secs": st.silent_child_secs,
                "uplink": {
                    "parent": st.uplink.parent,
                    "connected": st.uplink.connected,
                    "acked": st.uplink.acked,
                    "backlog": st.uplink.backlog,
                    "ticket_acked": st.uplink.ticket_acked,
                    "ticket_backlog": st.uplink.ticket_backlog,
                    "last_error": st.uplink.last_error,
                },
                "children": children,
            });
            let _ = writeln!(s, "{v}");
        }
        Format::Csv => {
            s.push_str(
                "division,connected,last_contact_unix_ms,acked,head,backlog,silent,\
                 ticket_acked_down,ticket_backlog_down,ticket_acked_up,ticket_backlog_up\n",
            );
            for c in &st.children {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    c.division,
                    c.connected,
                    c.last_contact_unix_ms,
                    c.acked,
                    c.head,
                    c.backlog,
                    c.silent,
                    c.ticket_acked_down,
                    c.ticket_backlog_down,
                    c.ticket_acked_up,
                    c.ticket_backlog_up
                );
            }
        }
        Format::Table if st.relay.is_some() => render_relay(st, &mut s, now_ms),
        Format::Table => {
            let _ = writeln!(
                s,
                "node {} {} ({}), change log at {}, ticket log at {}",
                st.division,
                name(st.division),
                st.software,
                st.head,
                st.ticket_head
            );
            match &st.self_check {
                None => s.push_str("self-check: not run yet\n"),
                Some(c) if c.ok => {
                    let _ = writeln!(
                        s,
                        "self-check: ok, {} cells ({}), {}",
                        c.cells,
                        c.what,
                        contact_text(c.at_unix_ms, now_ms)
                    );
                }
                Some(c) => {
                    let _ = writeln!(
                        s,
                        "SELF-CHECK FAILED: {} of {} cells differ ({}), {}; first: {}",
                        c.differing,
                        c.cells,
                        c.what,
                        contact_text(c.at_unix_ms, now_ms),
                        c.first.join("; ")
                    );
                }
            }
            match &st.uplink.parent {
                None => s.push_str("uplink: none (top of the tree)\n"),
                Some(p) => {
                    let _ = writeln!(
                        s,
                        "uplink to {p}: {}, parent acked {}, backlog {} blocks; tickets: parent acked {}, backlog {} events{}",
                        if st.uplink.connected {
                            "connected"
                        } else {
                            "DOWN"
                        },
                        st.uplink.acked,
                        st.uplink.backlog,
                        st.uplink.ticket_acked,
                        st.uplink.ticket_backlog,
                        st.uplink
                            .last_error
                            .as_ref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                }
            }
            if st.children.is_empty() {
                s.push_str("children: none has linked yet\n");
                return s;
            }
            let _ = writeln!(
                s,
                "children (silent after {} s; tickets = acked position/events waiting):\n\
                 {:<12} {:<5} {:<34} {:>10} {:>10} {:>8} {:>15} {:>15}  {:<6}  name",
                st.silent_child_secs,
                "division",
                "link",
                "last contact",
                "acked",
                "head",
                "backlog",
                "tickets down",
                "tickets up",
                "state"
            );
            for c in &st.children {
                let _ = writeln!(
                    s,
                    "{:<12} {:<5} {:<34} {:>10} {:>10} {:>8} {:>15} {:>15}  {:<6}  {}",
                    c.division.to_string(),
                    match (c.connected, &c.via_relay) {
                        (true, Some(r)) => format!("up via relay {r}"),
                        (true, None) => "up".to_string(),
                        (false, _) => "down".to_string(),
                    },
                    contact_text(c.last_contact_unix_ms, now_ms),
                    c.acked,
                    c.head,
                    c.backlog,
                    format!(
                        "{}/{}{}",
                        c.ticket_acked_down,
                        c.ticket_backlog_down,
                        if c.ticket_backlog_down_at_least {
                            "+"
                        } else {
                            ""
                        }
                    ),
                    format!("{}/{}", c.ticket_acked_up, c.ticket_backlog_up),
                    match (c.silent, c.stalled) {
                        (true, _) => "SILENT",
                        (false, true) => "STALLED",
                        _ => "ok",
                    },
                    name(c.division)
                );
            }
            let silent = st.children.iter().filter(|c| c.silent).count();
            if silent > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: {silent} child(ren) silent for longer than {} s",
                    st.silent_child_secs
                );
            }
            let stalled = st
                .children
                .iter()
                .filter(|c| c.stalled && !c.silent)
                .count();
            if stalled > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: {stalled} child link(s) STALLED: something to deliver, nothing \
                     delivered for longer than {:.0} s",
                    st.stalled_child_secs
                );
            }
        }
    }
    s
}

/// A relay's status: its link to the parent, then per child what it holds in custody each
/// way (envelopes stored and acked, waiting for the next hop to ack them).
fn render_relay(st: &crate::rpc::NodeStatus, s: &mut String, now_ms: i64) {
    let _ = writeln!(
        s,
        "relay {} ({}) in front of {}",
        st.relay.as_deref().unwrap_or_default(),
        st.software,
        st.division
    );
    let _ = writeln!(
        s,
        "parent {}: {}{}",
        st.uplink.parent.as_deref().unwrap_or("-"),
        if st.uplink.connected {
            "connected"
        } else {
            "DOWN"
        },
        st.uplink
            .last_error
            .as_ref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    );
    if st.children.is_empty() {
        s.push_str("children: none has linked yet\n");
        return;
    }
    let rows: Vec<Vec<String>> = st
        .children
        .iter()
        .map(|c| {
            let k = c.custody.unwrap_or_default();
            vec![
                c.division.to_string(),
                if c.connected { "up" } else { "down" }.to_string(),
                if k.parent_connected { "up" } else { "down" }.to_string(),
                contact_text(c.last_contact_unix_ms, now_ms),
                k.up.to_string(),
                k.down.to_string(),
            ]
        })
        .collect();
    s.push_str(&table(
        &[
            "division",
            "child link",
            "parent link",
            "last contact",
            "custody up",
            "custody down",
        ],
        &rows,
    ));
    let held: u64 = st
        .children
        .iter()
        .filter_map(|c| c.custody)
        .map(|k| k.up + k.down)
        .sum();
    let _ = writeln!(
        s,
        "custody = envelopes stored here and acked to the sender, waiting for the next hop \
         ({held} in all)"
    );
}

/// Terminal width of a string: CJK and other wide characters take two columns.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFE30..=0xFE4F).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Aligned columns, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            w[i] = w[i].max(display_width(v));
        }
    }
    let mut s = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut l = String::new();
        for (i, v) in cells.into_iter().enumerate() {
            l.push_str(v);
            if i + 1 < n {
                l.push_str(&" ".repeat(w[i] - display_width(v) + 2));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    s
}
