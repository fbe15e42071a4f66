//! Department data for a generated county (`bottomline gen --department`): the four files of
//! `warning.rs` — medical settlements, accidents, labour-force changes, income checks — over
//! the 365 days ending at `end`, for the households of the county's `households.csv`. A
//! realistic county (~65 000 households) gets ~200 000 rows, most of them settlements.
//! Deterministic: the same households, seed and end give byte-identical files.

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::GenError;
use crate::domain::{Record, RecordKind};

/// Rows written per file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeptSummary {
    /// `medical.csv`
    pub medical: u64,
    /// `accidents.csv`
    pub accidents: u64,
    /// `labour.csv`
    pub labour: u64,
    /// `incomes.csv`
    pub incomes: u64,
}

impl DeptSummary {
    /// Every row.
    pub fn total(&self) -> u64 {
        self.medical + self.accidents + self.labour + self.incomes
    }
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

struct Out {
    path: PathBuf,
    w: csv::Writer<std::fs::File>,
    n: u64,
}

impl Out {
    fn new(dir: &Path, name: &str, header: &[&str]) -> Result<Out, GenError> {
        let path = dir.join(name);
        let mut w = csv::Writer::from_path(&path).map_err(|source| GenError::Csv {
            path: path.clone(),
            source,
        })?;
        w.write_record(header).map_err(|source| GenError::Csv {
            path: path.clone(),
            source,
        })?;
        Ok(Out { path, w, n: 0 })
    }

    fn row(&mut self, fields: &[&str]) -> Result<(), GenError> {
        self.n += 1;
        self.w.write_record(fields).map_err(|source| GenError::Csv {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(mut self) -> Result<u64, GenError> {
        self.w.flush().map_err(|source| GenError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.n)
    }
}

/// Write the department files of the county whose files are in `county_dir` (its
/// `households.csv` must be there), for the 365 days ending at `end`.
pub fn department_files(county_dir: &Path, seed: u64, end: Date) -> Result<DeptSummary, GenError> {
    let households =
        crate::import::parse_records(&county_dir.join("households.csv"), RecordKind::Household)
            .map_err(|e| GenError::Invalid(format!("reading households.csv: {e}")))?;
    let county = county_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("county")
        .to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ 0xdead_beef
            ^ county
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
    );
    let first = end
        .checked_sub(jiff::Span::new().days(364))
        .map_err(|e| GenError::Invalid(e.to_string()))?;
    let day = |rng: &mut ChaCha8Rng| -> String {
        first
            .checked_add(jiff::Span::new().days(rng.random_range(0..365)))
            .unwrap_or(end)
            .to_string()
    };
    let mut medical = Out::new(
        county_dir,
        "medical.csv",
        &[
            "id",
            "household_code",
            "date",
            "total",
            "reimbursed",
            "out_of_pocket",
        ],
    )?;
    let mut accidents = Out::new(
        county_dir,
        "accidents.csv",
        &[
            "id",
            "household_code",
            "date",
            "kind",
            "loss",
            "compensation",
        ],
    )?;
    let mut labour = Out::new(
        county_dir,
        "labour.csv",
        &["id", "household_code", "date", "change", "persons"],
    )?;
    let mut incomes = Out::new(
        county_dir,
        "incomes.csv",
        &["id", "household_code", "date", "income"],
    )?;
    for r in &households {
        let Record::Household(h) = r else { continue };
        let code = h.household_code.as_str();
        // Settlements: 0–6, ~2.9 a year on average; most small (200–8 000 yuan), 4 % large
        // (20 000–80 000 yuan: a hospital stay).
        let n = [0u32, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 4][rng.random_range(0..12)];
        for _ in 0..n {
            let total: i64 = if rng.random_range(0..100) < 4 {
                rng.random_range(2_000_000..8_000_000)
            } else {
                rng.random_range(20_000..800_000)
            };
            let reimbursed = total * rng.random_range(45..=85) / 100;
            let oop = total - reimbursed;
            let id = format!("M{county}{:07}", medical.n + 1);
            medical.row(&[
                &id,
                code,
                &day(&mut rng),
                &yuan(total),
                &yuan(reimbursed),
                &yuan(oop),
            ])?;
        }
        if rng.random_range(0..1000) < 20 {
            let loss: i64 = rng.random_range(100_000..10_000_000);
            let compensation = loss * rng.random_range(0..=120) / 100;
            let kind = ["traffic", "work", "other"][rng.random_range(0..3)];
            let id = format!("A{county}{:07}", accidents.n + 1);
            accidents.row(&[
                &id,
                code,
                &day(&mut rng),
                kind,
                &yuan(loss),
                &yuan(compensation),
            ])?;
        }
        if rng.random_range(0..1000) < 40 {
            let change = [
                "death",
                "disability",
                "serious_illness",
                "job_loss",
                "job_loss",
            ][rng.random_range(0..5)];
            let persons = if rng.random_range(0..10) == 0 {
                "2"
            } else {
                "1"
            };
            let id = format!("L{county}{:07}", labour.n + 1);
            labour.row(&[&id, code, &day(&mut rng), change, persons])?;
        }
        if rng.random_range(0..100) < 30 {
            let found = h.income.0 * rng.random_range(60..=130) / 100;
            let id = format!("I{county}{:07}", incomes.n + 1);
            incomes.row(&[&id, code, &day(&mut rng), &yuan(found.max(0))])?;
        }
    }
    Ok(DeptSummary {
        medical: medical.finish()?,
        accidents: accidents.finish()?,
        labour: labour.finish()?,
        incomes: incomes.finish()?,
    })
}
