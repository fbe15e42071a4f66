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
