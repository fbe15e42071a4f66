//! Record and division rows of the interchange files parsed field by field; every error
//! names the field. Also the one `yyyy-mm-dd` date parser of every importer (record files,
//! ticket inventories, the API).

use jiff::civil::Date;

use super::rows::{Columns, Row};
use crate::division::{Code, Division, Level};
use crate::domain::{
    Case, Category, Cents, FieldError, Household, Measure, MeasureType, Monitored, Outcome, Record,
    RecordKind, Signal, SignalSource, SignalType, Stage,
};
use crate::warning::{AccidentKind, DeptData, DeptKind, DeptRow, LabourChange};

/// Field accessors that produce errors naming the field.
pub struct Fields<'a> {
    pub row: &'a Row,
    pub cols: &'a Columns,
}

impl Fields<'_> {
    fn opt(&self, name: &'static str) -> Option<&str> {
        self.row.get(self.cols, name)
    }
    fn req(&self, name: &'static str) -> Result<&str, FieldError> {
        self.opt(name)
            .ok_or_else(|| FieldError::new(name, "missing value"))
    }
    fn parse<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, FieldError> {
        f(self.req(name)?).map_err(|r| FieldError::new(name, r))
    }
    fn parse_opt<T>(
        &self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, FieldError> {
        self.opt(name)
            .map(|v| f(v).map_err(|r| FieldError::new(name, r)))
            .transpose()
    }
    fn date(&self, name: &'static str) -> Result<Date, FieldError> {
        self.parse(name, parse_date)
    }
    fn date_opt(&self, name: &'static str) -> Result<Option<Date>, FieldError> {
        self.parse_opt(name, parse_date)
    }
    fn flag(&self, name: &'static str) -> Result<bool, FieldError> {
        self.parse(name, |v| match v {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(format!("{v:?} is not 0 or 1")),
        })
    }
    fn text(&self, name: &'static str) -> Result<String, FieldError> {
        self.req(name).map(str::to_string)
    }
}

/// Parse a strict `yyyy-mm-dd` date.
pub fn parse_date(v: &str) -> Result<Date, String> {
    let shape = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape {
        return Err(format!("{v:?} is not a date in yyyy-mm-dd form"));
    }
    v.parse::<Date>()
        .map_err(|_| format!("{v} is not a calendar date"))
}

pub fn parse_record(kind: RecordKind, f: &Fields) -> Result<Record, FieldError> {
    Ok(match kind {
        RecordKind::Household => Record::Household(Household {
            household_code: f.text("household_code")?,
            village_code: f.parse("village_code", Code::parse)?,
            members: f.parse("members", |v| {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not a whole number"))?;
                if n < 1 {
                    return Err(format!("{n} members: a household has at least 1 member"));
                }
                u32::try_from(n).map_err(|_| format!("{n} members is not plausible"))
            })?,
            alleviated: f.flag("alleviated")?,
            income: f.parse("income", Cents::parse)?,
            head_name: f.opt("head_name").map(str::to_string),
            id_number: f.opt("id_number").map(str::to_string),
        }),
        RecordKind::Monitored => Record::Monitored(Monitored {
            household_code: f.text("household_code")?,
            category: f.parse("category", Category::parse)?,
            identified_date: f.date("identified_date")?,
            eliminated_date: f.date_opt("eliminated_date")?,
        }),
        RecordKind::Signal => Record::Signal(Signal {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            source: f.parse("source", SignalSource::parse)?,
            kind: f.parse("type", SignalType::parse)?,
            department: f.parse_opt("department", |v| {
                v.parse::<u8>()
                    .map_err(|_| format!("{v:?} is not a department number 1-30"))
            })?,
            amount: f.parse("amount", Cents::parse)?,
            date: f.date("date")?,
        }),
        RecordKind::Case => Record::Case(Case {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            discovered_date: f.date("discovered_date")?,
            decided_date: f.date_opt("decided_date")?,
            outcome: f.parse("outcome", Outcome::parse)?,
            green_channel: f.flag("green_channel")?,
            stage: f.parse_opt("stage", Stage::parse)?,
        }),
        RecordKind::Measure => Record::Measure(Measure {
            id: f.text("id")?,
            household_code: f.text("household_code")?,
            kind: f.parse("type", MeasureType::parse)?,
            date: f.date("date")?,
            amount: f.parse("amount", Cents::parse)?,
        }),
    })
}

/// A department row (`warning.rs` names the files and their columns).
pub fn parse_dept(kind: DeptKind, f: &Fields) -> Result<DeptRow, FieldError> {
    let what = match kind {
        DeptKind::Medical => DeptData::Medical {
            total: f.parse("total", Cents::parse)?,
            reimbursed: f.parse("reimbursed", Cents::parse)?,
            out_of_pocket: f.parse("out_of_pocket", Cents::parse)?,
        },
        DeptKind::Accident => DeptData::Accident {
            kind: f.parse("kind", AccidentKind::parse)?,
            loss: f.parse("loss", Cents::parse)?,
            compensation: f.parse("compensation", Cents::parse)?,
        },
        DeptKind::Labour => DeptData::Labour {
            change: f.parse("change", LabourChange::parse)?,
            persons: f.parse("persons", |v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{v:?} is not a whole number of members"))
            })?,
        },
        DeptKind::Income => DeptData::Income {
            income: f.parse("income", Cents::parse)?,
        },
    };
    let row = DeptRow {
        id: f.text("id")?,
        household_code: f.text("household_code")?,
        date: f.date("date")?,
        what,
    };
    row.validate()?;
    Ok(row)
}

pub fn parse_division(f: &Fields) -> Result<Division, FieldError> {
    let code = f.parse("code", Code::parse)?;
    let name = f.text("name")?;
    let level: Level = f.parse("level", |v| v.parse())?;
    if level != code.level() {
        return Err(FieldError::new(
            "level",
            format!(
                "{code} has {} digits, which is a {} code, not a {level:?} one",
                code.len(),
                code.level().as_str()
            ),
        ));
    }
    let parent = f.parse_opt("parent", Code::parse)?.unwrap_or(Code::ROOT);
    if Some(parent) != code.parent() {
        return Err(FieldError::new(
            "parent",
            format!(
                "the parent of {code} is {}, not {:?}",
                code.parent().map_or("(none)".into(), |p| p.to_string()),
                parent.to_string()
            ),
        ));
    }
    Ok(Division { code, name })
}
