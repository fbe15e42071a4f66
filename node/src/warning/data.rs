//! Department data as a county receives it (the interchange files of `warning.rs`): one row
//! per settlement, accident, labour-force change or income check, each with the household it
//! concerns. Kept at the county only (like every household's data) and never summed.

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::{Cents, FieldError};

vocabulary!(
    /// Which department file a row comes from.
    DeptKind {
        /// `medical.csv`: medical settlements (医保结算).
        Medical = 1: "medical",
        /// `accidents.csv`: accidents and their compensation (意外事故赔偿).
        Accident = 2: "accidents",
        /// `labour.csv`: labour-force changes of a household (家庭劳动力变化).
        Labour = 3: "labour",
        /// `incomes.csv`: income checks (收入核查, data comparison).
        Income = 4: "incomes",
    }
);

vocabulary!(
    /// What kind of accident.
    AccidentKind {
        /// Road traffic.
        Traffic = 1: "traffic",
        /// At work.
        Work = 2: "work",
        /// Anything else.
        Other = 3: "other",
    }
);

vocabulary!(
    /// A change in a household's labour force.
    LabourChange {
        /// A member died.
        Death = 1: "death",
        /// A member became disabled.
        Disability = 2: "disability",
        /// A member fell seriously ill.
        SeriousIllness = 3: "serious_illness",
        /// A member lost their job.
        JobLoss = 4: "job_loss",
    }
);

/// One department row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeptRow {
    /// Unique per file kind within the county (≤ 60 characters: signal ids add 3).
    pub id: String,
    /// The household concerned (a household the county holds).
    pub household_code: String,
    /// Day of the settlement, accident, change or check.
    pub date: Date,
    /// What the row says.
    pub what: DeptData,
}

/// The content of a department row, by file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeptData {
    /// A medical settlement: the total cost, what insurance paid, and what the household paid
    /// itself (`out_of_pocket` ≤ `total`).
    Medical {
        /// Total cost.
        total: Cents,
        /// Reimbursed by insurance and assistance.
        reimbursed: Cents,
        /// Paid by the household.
        out_of_pocket: Cents,
    },
    /// An accident: the household's economic loss and the compensation it received.
    Accident {
        /// What kind.
        kind: AccidentKind,
        /// Economic loss.
        loss: Cents,
        /// Compensation received.
        compensation: Cents,
    },
    /// A labour-force change affecting `persons` members.
    Labour {
        /// What changed.
        change: LabourChange,
        /// Members affected (≥ 1).
        persons: u32,
    },
    /// An income check: the per-capita annual net income found.
    Income {
        /// Per-capita annual net income found.
        income: Cents,
    },
}

impl DeptRow {
    /// The file kind of the row.
    pub fn kind(&self) -> DeptKind {
        match self.what {
            DeptData::Medical { .. } => DeptKind::Medical,
            DeptData::Accident { .. } => DeptKind::Accident,
            DeptData::Labour { .. } => DeptKind::Labour,
            DeptData::Income { .. } => DeptKind::Income,
        }
    }

    /// Rules of the row itself; errors name the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.id.is_empty()
            || self.id.chars().count() > 60
            || self.id.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "id",
                format!(
                    "{:?} is not a valid id (1 to 60 printable characters)",
                    self.id
                ),
            ));
        }
        match &self.what {
            DeptData::Medical {
                total,
                reimbursed,
                out_of_pocket,
            } => {
                if out_of_pocket.0 > total.0 {
                    return Err(FieldError::new(
                        "out_of_pocket",
                        format!("{out_of_pocket} is more than the total {total}"),
                    ));
                }
                if reimbursed.0 > total.0 {
                    return Err(FieldError::new(
                        "reimbursed",
                        format!("{reimbursed} is more than the total {total}"),
                    ));
                }
            }
            DeptData::Labour { persons, .. } if *persons == 0 => {
                return Err(FieldError::new("persons", "at least 1 member is affected"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for DeptRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.id)
    }
}
