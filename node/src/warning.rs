//! **Department warnings** (部门筛查预警): the county turns the data departments send it into
//! risk signals by rules it sets, and re-runs them whenever data or rules change.
//!
//! # The department files
//!
//! Interchange files like SPEC.md's (CSV, UTF-8, one header line, columns by name in any
//! order, or JSON lines with the same field names; amounts in yuan with at most 2 decimals,
//! dates `yyyy-mm-dd`; read by the one table reader `import/rows.rs`), imported at the county
//! like its record files (`bottomline import`, the inbox, `import --addr`). Every row names a
//! household the county holds.
//!
//! | file | columns |
//! | --- | --- |
//! | `medical.csv` | `id,household_code,date,total,reimbursed,out_of_pocket` — one medical settlement (医保结算): total cost, what insurance and assistance paid, what the household paid itself (≤ total) |
//! | `accidents.csv` | `id,household_code,date,kind,loss,compensation` — kind `traffic|work|other`; the household's economic loss and the compensation it received |
//! | `labour.csv` | `id,household_code,date,change,persons` — change `death|disability|serious_illness|job_loss`; members affected ≥ 1 |
//! | `incomes.csv` | `id,household_code,date,income` — an income check (收入核查): the per-capita annual net income found |
//!
//! Ids are unique per file kind within the county (≤ 60 characters); a row that arrives again
//! with the same id replaces the earlier one. Department rows are kept at the county and never
//! counted in statistics; the signals the rules make of them are.
//!
//! # The rules
//!
//! `rules.rs` (TOML, `deploy/warning-rules.toml`): medical out-of-pocket cost over a window
//! above an amount or a share of the household's annual income; uncompensated accident loss;
//! labour-force changes; income checks below the monitoring line of their year (configurable
//! per year) or far below the recorded income. `engine.rs` evaluates them: a signal's id is
//! the rule's prefix and the row's id (`WM-`, `WA-`, `WL-`, `WI-`), so a rerun over the same
//! data creates nothing new, and `diff` shows what a changed threshold would create, change or
//! leave stale before anything is written (`bottomline warn --dry-run`).

pub mod data;
pub mod engine;
pub mod rules;

pub use data::{AccidentKind, DeptData, DeptKind, DeptRow, LabourChange};
pub use engine::{diff, evaluate, is_rule_signal, rule_of, signal_id, Diff, Facts};
pub use rules::{RulesError, WarningRules};

#[cfg(test)]
mod tests;
