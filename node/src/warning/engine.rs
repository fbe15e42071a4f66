//! The rules over the department rows: which rows fire, as risk signals with ids derived from
//! the rule and the row (so a rerun over the same data creates nothing new), and what a rerun
//! would change against the signals a county holds.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::data::{DeptData, DeptKind, DeptRow, LabourChange};
use super::rules::{fen, WarningRules};
use crate::domain::{Cents, Signal, SignalSource, SignalType};

/// What the rules need of a household.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Members.
    pub members: u32,
    /// Per-capita annual net income as recorded.
    pub income: Cents,
}

impl Facts {
    /// Annual household income in fen.
    fn annual(self) -> i64 {
        self.income.0.saturating_mul(self.members as i64)
    }
}

/// The signal id of what rule `kind` made of row `id`: `WM-` medical, `WA-` accident, `WL-`
/// labour, `WI-` income, then the row's id.
pub fn signal_id(kind: DeptKind, id: &str) -> String {
    format!("{}{id}", id_prefix(kind))
}

/// The id prefix of each rule's signals.
pub fn id_prefix(kind: DeptKind) -> &'static str {
    match kind {
        DeptKind::Medical => "WM-",
        DeptKind::Accident => "WA-",
        DeptKind::Labour => "WL-",
        DeptKind::Income => "WI-",
    }
}

/// True for the id of a signal the rules made.
pub fn is_rule_signal(id: &str) -> bool {
    DeptKind::ALL.iter().any(|k| id.starts_with(id_prefix(*k)))
}

/// The rule that made a signal, by its id (`medical`, `accident`, `labour`, `income`).
pub fn rule_of(id: &str) -> Option<&'static str> {
    DeptKind::ALL
        .iter()
        .find(|k| id.starts_with(id_prefix(**k)))
        .map(|k| match k {
            DeptKind::Medical => "medical",
            DeptKind::Accident => "accident",
            DeptKind::Labour => "labour",
            DeptKind::Income => "income",
        })
}

fn passes(amount: i64, above_yuan: f64, share: f64, facts: Facts) -> bool {
    (above_yuan > 0.0 && amount > fen(above_yuan))
        || (share > 0.0 && (amount as f64) > share * facts.annual() as f64)
}

/// The signals `rules` make of `rows` (any order) for the households in `facts` (a row of a
/// household not in it makes nothing), sorted by id.
pub fn evaluate(
    rules: &WarningRules,
    rows: &[DeptRow],
    facts: &HashMap<String, Facts>,
) -> Vec<Signal> {
    let mut out = Vec::new();
    let mut medical: BTreeMap<&str, Vec<&DeptRow>> = BTreeMap::new();
    let labour = rules.labour_changes();
    for r in rows {
        let Some(f) = facts.get(&r.household_code).copied() else {
            continue;
        };
        let signal = |source, kind, department, amount: Cents| Signal {
            id: signal_id(r.kind(), &r.id),
            household_code: r.household_code.clone(),
            source,
            kind,
            department,
            amount,
            date: r.date,
        };
        match &r.what {
            DeptData::Medical { .. } => {
                if rules.medical.enabled {
                    medical.entry(&r.household_code).or_default().push(r);
                }
            }
            DeptData::Accident {
                loss, compensation, ..
            } => {
                let a = &rules.accident;
                let uncompensated = (loss.0 - compensation.0).max(0);
                if a.enabled && passes(uncompensated, a.above, a.share_of_income, f) {
                    out.push(signal(
                        SignalSource::Department,
                        SignalType::Accident,
                        Some(a.department),
                        Cents(uncompensated),
                    ));
                }
            }
            DeptData::Labour { change, persons } => {
                let l = &rules.labour;
                if l.enabled && labour.contains(change) && *persons >= l.min_persons {
                    let kind = if *change == LabourChange::JobLoss {
                        SignalType::Unemployment
                    } else {
                        SignalType::Labour
                    };
                    out.push(signal(
                        SignalSource::Department,
                        kind,
                        Some(l.department),
                        Cents(0),
                    ));
                }
            }
            DeptData::Income { income } => {
                let i = &rules.income;
                let below = i.below_line && income.0 < rules.line_on(r.date).0;
                let dropped = i.drop_share > 0.0
                    && f.income.0 > 0
                    && (income.0 as f64) < f.income.0 as f64 * (1.0 - i.drop_share);
                if i.enabled && (below || dropped) {
                    out.push(signal(
                        SignalSource::DataComparison,
                        SignalType::IncomeDrop,
                        None,
                        *income,
                    ));
                }
            }
        }
    }
    // Medical: the settlement with which the out-of-pocket cost over the window first passes
    // a threshold (a window that falls back below and passes again fires again).
    let m = &rules.medical;
    for (household, mut rs) in medical {
        let f = facts[household];
        rs.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
        let mut window: VecDeque<(jiff::civil::Date, i64)> = VecDeque::new();
        let mut sum: i64 = 0;
        for r in rs {
            let DeptData::Medical { out_of_pocket, .. } = r.what else {
                continue;
            };
            let start = r
                .date
                .checked_sub(jiff::Span::new().months(m.months as i64))
                .unwrap_or(r.date);
            while window.front().is_some_and(|(d, _)| *d <= start) {
                let (_, v) = window.pop_front().expect("non-empty");
                sum -= v;
            }
            let before = passes(sum, m.above, m.share_of_income, f);
            sum += out_of_pocket.0;
            window.push_back((r.date, out_of_pocket.0));
            if !before && passes(sum, m.above, m.share_of_income, f) {
                out.push(Signal {
                    id: signal_id(DeptKind::Medical, &r.id),
                    household_code: r.household_code.clone(),
                    source: SignalSource::Department,
                    kind: SignalType::Medical,
                    department: Some(m.department),
                    amount: Cents(sum),
                    date: r.date,
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// What applying the rules' signals would change against the rule-made signals held.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Signals to create.
    pub new: Vec<Signal>,
    /// (held, wanted) for a signal whose content would change.
    pub changed: Vec<(Signal, Signal)>,
    /// Rule-made signals the rules no longer make (kept unless pruned).
    pub stale: Vec<Signal>,
    /// Signals already as the rules make them.
    pub unchanged: usize,
}

/// Compare the signals the rules make (`wanted`) with the rule-made signals held.
pub fn diff(wanted: &[Signal], held: &[Signal]) -> Diff {
    let held: HashMap<&str, &Signal> = held
        .iter()
        .filter(|s| is_rule_signal(&s.id))
        .map(|s| (s.id.as_str(), s))
        .collect();
    let mut d = Diff::default();
    let mut seen = std::collections::HashSet::new();
    for w in wanted {
        seen.insert(w.id.as_str());
        match held.get(w.id.as_str()) {
            None => d.new.push(w.clone()),
            Some(h) if *h != w => d.changed.push(((*h).clone(), w.clone())),
            Some(_) => d.unchanged += 1,
        }
    }
    let mut stale: Vec<Signal> = held
        .iter()
        .filter(|(id, _)| !seen.contains(*id))
        .map(|(_, s)| (*s).clone())
        .collect();
    stale.sort_by(|a, b| a.id.cmp(&b.id));
    d.stale = stale;
    d
}
