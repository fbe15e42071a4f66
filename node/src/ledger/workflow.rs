//! The county's own workflow in the store (issue #20): department rows and the warnings the
//! rules make of them, the identification workflow of a case (declared → village review →
//! town check → county approval → included or rejected, each step with who and when), and
//! risk elimination. Every change of records goes through `apply` (validated, counted,
//! durable), so a case decided here counts exactly as an imported case with the same dates.
//!
//! `TreeId::Workflow` keys: `D` ‖ department kind ‖ row id → the row (JSON); `S` ‖ case id ‖
//! 0 ‖ step number (u32 BE) → the step (JSON).

use std::collections::HashMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{Change, Ledger, LedgerError, Result};
use crate::domain::{
    days_between, Case, Category, Monitored, Outcome, Record, RecordKind, Stage, DEADLINE_DAYS,
};
use crate::store::{TreeId, WriteSet};
use crate::warning::{self, DeptRow, Diff, Facts, WarningRules};

const DEPT: u8 = b'D';
const STEP: u8 = b'S';
/// A pending case is "due" from this many days after its discovery.
pub const DUE_DAYS: i32 = 10;

fn refused(msg: impl Into<String>) -> LedgerError {
    LedgerError::Workflow(msg.into())
}

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

fn dept_key(r: &DeptRow) -> Vec<u8> {
    let mut k = vec![DEPT, r.kind().code()];
    k.extend_from_slice(r.id.as_bytes());
    k
}

fn step_prefix(case: &str) -> Vec<u8> {
    let mut k = vec![STEP];
    k.extend_from_slice(case.as_bytes());
    k.push(0);
    k
}

/// One recorded step of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseStep {
    /// `open`, `advance`, `include`, `reject`.
    pub action: String,
    /// The stage (or outcome) the case entered.
    pub to: String,
    /// The day the step is dated (China date).
    pub on: Date,
    /// Who took it (the operator, or the node).
    pub by: String,
    /// When it was recorded (ms since 1970).
    pub at_unix_ms: i64,
    /// A note, or the reason of a rejection.
    pub note: String,
}

/// A pending case and how long it has been open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseDue {
    /// The case.
    pub case: Case,
    /// Days since its discovery.
    pub days: i32,
    /// At least [`DUE_DAYS`] days.
    pub due: bool,
    /// More than the 15-day deadline.
    pub overdue: bool,
}

/// A case to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCase {
    /// Its id, unique within the county.
    pub id: String,
    /// The household concerned.
    pub household: String,
    /// The day the risk was found (a signal's day, a declaration's).
    pub discovered: Date,
    /// 绿色通道: assistance first, decided at any stage.
    pub green_channel: bool,
    /// What was declared or found.
    pub note: String,
}

/// The decision on a case at county approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Included as a monitoring object of this category.
    Include(Category),
    /// Rejected, with the reason (e.g. income above the line).
    Reject(String),
}

/// What a run of the warning rules found (and wrote, unless a dry run).
#[derive(Clone, Debug, Default)]
pub struct WarnOutcome {
    /// Department rows read.
    pub rows: usize,
    /// Against the rule-made signals held.
    pub diff: Diff,
    /// Signals written (new and changed, and removed when pruning).
    pub written: usize,
}

impl Ledger {
    fn county_only(&self, what: &str) -> Result<()> {
        if self.division.level() != crate::division::Level::County {
            return Err(refused(format!(
                "node {} is not a county: {what} happens at the county that holds the households",
                self.division
            )));
        }
        Ok(())
    }

    /// Store department rows (a row with an id held already replaces it). All or nothing:
    /// a row of a household this county does not hold is refused with its position.
    pub fn put_dept_rows(&self, rows: &[DeptRow]) -> Result<usize> {
        self.county_only("department data")?;
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut refusals = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            if let Err(error) = r.validate() {
                refusals.push(super::Refusal { index: i, error });
            } else if self
                .get(RecordKind::Household, &r.household_code)?
                .is_none()
            {
                refusals.push(super::Refusal {
                    index: i,
                    error: crate::domain::FieldError::new(
                        "household_code",
                        format!(
                            "household {} is not held by this county: import it first",
                            r.household_code
                        ),
                    ),
                });
            }
        }
        if !refusals.is_empty() {
            return Err(LedgerError::Refused(refusals));
        }
        let mut ws = WriteSet::new();
        for r in rows {
            let v = serde_json::to_vec(r).map_err(|e| corrupt("department row", e))?;
            ws.put(TreeId::Workflow, dept_key(r), v);
        }
        self.store.commit(ws)?;
        self.flush_store()?;
        Ok(rows.len())
    }

    /// Every department row held.
    pub fn dept_rows(&self) -> Result<Vec<DeptRow>> {
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::Workflow, &[DEPT]) {
            let (_, v) = r?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("department row", e))?);
        }
        Ok(out)
    }

    /// Members and income of every household held.
    pub fn household_facts(&self) -> Result<HashMap<String, Facts>> {
        let mut out = HashMap::new();
        for r in self.records(RecordKind::Household) {
            if let Record::Household(h) = r? {
                out.insert(
                    h.household_code,
                    Facts {
                        members: h.members,
                        income: h.income,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Run the warning rules over the department rows held: the signals they make compared
    /// with the rule-made signals held; unless `dry_run`, the new and changed ones written in
    /// one durable apply (and with `prune` the stale ones removed).
    pub fn warn(
        &self,
        rules: &WarningRules,
        dry_run: bool,
        prune: bool,
        today: Date,
    ) -> Result<WarnOutcome> {
        self.county_only("running the warning rules")?;
        let rows = self.dept_rows()?;
        let facts = self.household_facts()?;
        let wanted = warning::evaluate(rules, &rows, &facts);
        let mut held = Vec::new();
        for r in self.records(RecordKind::Signal) {
            if let Record::Signal(s) = r? {
                if warning::is_rule_signal(&s.id) {
                    held.push(s);
                }
            }
        }
        let diff = warning::diff(&wanted, &held);
        let mut written = 0;
        if !dry_run {
            let mut changes: Vec<Change> = diff
                .new
                .iter()
                .chain(diff.changed.iter().map(|(_, w)| w))
                .map(|s| Change::Put(Record::Signal(s.clone())))
                .collect();
            if prune {
                changes.extend(
                    diff.stale
                        .iter()
                        .map(|s| Change::Delete(RecordKind::Signal, s.id.clone())),
                );
            }
            written = changes.len();
            if !changes.is_empty() {
                self.apply(&changes, today)?;
            }
        }
        Ok(WarnOutcome {
            rows: rows.len(),
            diff,
            written,
        })
    }

    fn case(&self, id: &str) -> Result<Case> {
        match self.get(RecordKind::Case, id)? {
            Some(Record::Case(c)) => Ok(c),
            _ => Err(refused(format!("no case {id} is held by this county"))),
        }
    }

    /// The recorded steps of case `id`, in order.
    pub fn case_steps(&self, id: &str) -> Result<Vec<CaseStep>> {
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::Workflow, &step_prefix(id)) {
            let (_, v) = r?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("case step", e))?);
        }
        Ok(out)
    }

    fn record_step(&self, id: &str, step: &CaseStep) -> Result<()> {
        let n = self.case_steps(id)?.len() as u32;
        let mut k = step_prefix(id);
        k.extend_from_slice(&n.to_be_bytes());
        let mut ws = WriteSet::new();
        ws.put(
            TreeId::Workflow,
            k,
            serde_json::to_vec(step).map_err(|e| corrupt("case step", e))?,
        );
        self.store.commit(ws)?;
        self.flush_store()
    }

    fn step(action: &str, to: impl ToString, on: Date, by: &str, note: &str) -> CaseStep {
        CaseStep {
            action: action.into(),
            to: to.to_string(),
            on,
            by: by.into(),
            at_unix_ms: super::unix_ms_now(),
            note: note.into(),
        }
    }

    /// Open a case (a signal or a self-declaration found on its discovery date): pending at
    /// stage `declared`.
    pub fn case_open(&self, new: &NewCase, by: &str, today: Date) -> Result<Case> {
        self.county_only("identification")?;
        let id = new.id.as_str();
        if self.get(RecordKind::Case, id)?.is_some() {
            return Err(refused(format!("case {id} exists already")));
        }
        let c = Case {
            id: id.into(),
            household_code: new.household.clone(),
            discovered_date: new.discovered,
            decided_date: None,
            outcome: Outcome::Pending,
            green_channel: new.green_channel,
            stage: Some(Stage::Declared),
        };
        self.apply(&[Change::Put(Record::Case(c.clone()))], today)?;
        self.record_step(
            id,
            &Self::step("open", Stage::Declared, new.discovered, by, &new.note),
        )?;
        Ok(c)
    }

    /// Move pending case `id` to its next stage (declared → village review → town check →
    /// county approval), dated `on`.
    pub fn case_advance(
        &self,
        id: &str,
        on: Date,
        by: &str,
        note: &str,
        today: Date,
    ) -> Result<Case> {
        self.county_only("identification")?;
        let mut c = self.case(id)?;
        let next = match (c.outcome, c.stage) {
            (Outcome::Pending, Some(Stage::Declared) | None) => Stage::VillageReview,
            (Outcome::Pending, Some(Stage::VillageReview)) => Stage::TownCheck,
            (Outcome::Pending, Some(Stage::TownCheck)) => Stage::CountyApproval,
            (Outcome::Pending, Some(Stage::CountyApproval)) => {
                return Err(refused(format!(
                    "case {id} is at county approval: decide it (include or reject)"
                )))
            }
            (o, _) => return Err(refused(format!("case {id} is decided ({o})"))),
        };
        self.check_step_date(&c, on)?;
        c.stage = Some(next);
        self.apply(&[Change::Put(Record::Case(c.clone()))], today)?;
        self.record_step(id, &Self::step("advance", next, on, by, note))?;
        Ok(c)
    }

    fn check_step_date(&self, c: &Case, on: Date) -> Result<()> {
        if on < c.discovered_date {
            return Err(refused(format!(
                "case {}: {on} is before its discovery on {}",
                c.id, c.discovered_date
            )));
        }
        if let Some(last) = self.case_steps(&c.id)?.last() {
            if on < last.on {
                return Err(refused(format!(
                    "case {}: {on} is before its last step ({} on {})",
                    c.id, last.action, last.on
                )));
            }
        }
        Ok(())
    }

    /// Decide case `id` on `on`: at county approval (a green-channel case at any stage).
    /// Included: the case and the household's monitoring row (identified on `on`) in one
    /// apply; rejected: the case with the reason in its steps.
    pub fn case_decide(
        &self,
        id: &str,
        decision: &Decision,
        on: Date,
        by: &str,
        today: Date,
    ) -> Result<Case> {
        self.county_only("identification")?;
        let mut c = self.case(id)?;
        if c.outcome != Outcome::Pending {
            return Err(refused(format!(
                "case {id} is decided already ({})",
                c.outcome
            )));
        }
        if !c.green_channel && c.stage != Some(Stage::CountyApproval) {
            return Err(refused(format!(
                "case {id} is at stage {}: only a case at county approval (or in the green channel) is decided",
                c.stage.map_or("declared".to_string(), |s| s.to_string())
            )));
        }
        self.check_step_date(&c, on)?;
        c.decided_date = Some(on);
        c.stage = None;
        let mut changes = Vec::new();
        let (action, to, note) = match decision {
            Decision::Include(category) => {
                if let Some(Record::Monitored(m)) =
                    self.get(RecordKind::Monitored, &c.household_code)?
                {
                    if m.eliminated_date.is_none_or(|e| e > on) {
                        return Err(refused(format!(
                            "household {} is a monitoring object already (identified on {})",
                            c.household_code, m.identified_date
                        )));
                    }
                }
                c.outcome = Outcome::Included;
                changes.push(Change::Put(Record::Monitored(Monitored {
                    household_code: c.household_code.clone(),
                    category: *category,
                    identified_date: on,
                    eliminated_date: None,
                })));
                ("include", category.to_string(), String::new())
            }
            Decision::Reject(reason) => {
                if reason.trim().is_empty() {
                    return Err(refused(format!("case {id}: a rejection needs its reason")));
                }
                c.outcome = Outcome::Rejected;
                ("reject", "rejected".to_string(), reason.clone())
            }
        };
        changes.insert(0, Change::Put(Record::Case(c.clone())));
        self.apply(&changes, today)?;
        self.record_step(id, &Self::step(action, to, on, by, &note))?;
        Ok(c)
    }

    /// The pending cases, oldest first, with their days since discovery as of `today`.
    pub fn cases_pending(&self, today: Date) -> Result<Vec<CaseDue>> {
        let mut out = Vec::new();
        for r in self.records(RecordKind::Case) {
            if let Record::Case(c) = r? {
                if c.outcome == Outcome::Pending {
                    let days = days_between(c.discovered_date, today);
                    out.push(CaseDue {
                        due: days >= DUE_DAYS,
                        overdue: days > DEADLINE_DAYS,
                        days,
                        case: c,
                    });
                }
            }
        }
        out.sort_by(|a, b| b.days.cmp(&a.days).then(a.case.id.cmp(&b.case.id)));
        Ok(out)
    }

    /// Record household `household`'s risk as eliminated on `on`, after the checks `rules`
    /// name; refused with the reasons otherwise.
    pub fn eliminate(
        &self,
        household: &str,
        on: Date,
        rules: &WarningRules,
        today: Date,
    ) -> Result<Monitored> {
        self.county_only("risk elimination")?;
        let mut m = match self.get(RecordKind::Monitored, household)? {
            Some(Record::Monitored(m)) => m,
            _ => {
                return Err(refused(format!(
                    "household {household} is not a monitoring object"
                )))
            }
        };
        if let Some(e) = m.eliminated_date {
            return Err(refused(format!(
                "household {household}'s risk was eliminated on {e} already"
            )));
        }
        let mut why = Vec::new();
        if on < m.identified_date {
            why.push(format!(
                "{on} is before its identification on {}",
                m.identified_date
            ));
        }
        let e = &rules.elimination;
        let days = days_between(m.identified_date, on);
        if days < e.min_days_monitored as i32 {
            why.push(format!(
                "monitored {days} days, the rules ask at least {}",
                e.min_days_monitored
            ));
        }
        if e.income_above_line {
            let line = rules.line_on(on);
            match self.get(RecordKind::Household, household)? {
                Some(Record::Household(h)) if h.income.0 > line.0 => {}
                Some(Record::Household(h)) => why.push(format!(
                    "per-capita income {} is not above the monitoring line {line} of {}",
                    h.income,
                    on.year()
                )),
                _ => why.push("its household record is missing".into()),
            }
        }
        if e.min_measures > 0 {
            let n = self
                .household_records(household)?
                .iter()
                .filter(|r| matches!(r, Record::Measure(x) if x.date <= on))
                .count();
            if n < e.min_measures as usize {
                why.push(format!(
                    "{n} assistance measure(s) recorded by {on}, the rules ask at least {}",
                    e.min_measures
                ));
            }
        }
        if !why.is_empty() {
            return Err(refused(format!(
                "household {household}'s risk cannot be recorded as eliminated: {}",
                why.join("; ")
            )));
        }
        m.eliminated_date = Some(on);
        self.apply(&[Change::Put(Record::Monitored(m.clone()))], today)?;
        Ok(m)
    }

    /// Every record that refers to `household` (from the household index).
    pub fn household_records(&self, household: &str) -> Result<Vec<Record>> {
        let mut prefix = household.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::ByHousehold, &prefix) {
            let (k, _) = r?;
            let rest = &k[prefix.len()..];
            let Some((&kc, id)) = rest.split_first() else {
                continue;
            };
            let Some(kind) = RecordKind::from_code(kc) else {
                continue;
            };
            if let Some(rec) = self.get(kind, &String::from_utf8_lossy(id))? {
                out.push(rec);
            }
        }
        Ok(out)
    }
}
