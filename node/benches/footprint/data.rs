//! The footprint benchmark's data: generated sets (`bottomline gen`, kept in `BENCH_DATA` for
//! the next run), the CLI import commands, a city's share of the registry, the files dropped
//! into a serving county's inbox, and sizes on disk.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bottomline::division::Code;
use bottomline::period::today_in_china;
use jiff::civil::Date;

use crate::common::Res;
use crate::procs::{Finished, Job};

/// The record files of a county, in dependency order (`divisions.csv` comes first).
pub const RECORD_FILES: [&str; 5] = [
    "households.csv",
    "monitored.csv",
    "signals.csv",
    "cases.csv",
    "measures.csv",
];

/// A generated set: `dir/divisions.csv` and `dir/<county>/*.csv`.
pub struct GenSet {
    pub dir: PathBuf,
    /// The last day of its data: the day before it was generated (China date), so a "next
    /// day" of records is never in the future.
    pub end: Date,
    /// The `bottomline gen` run, when this run generated it (None: reused).
    pub gen: Option<Finished>,
}

const MARKER: &str = "footprint-gen.txt";

/// The set in `dir` (from an earlier run, if its marker is there), else generated with
/// `bottomline gen <scope…> [--households H]`.
pub async fn ensure(
    bin: &Path,
    dir: PathBuf,
    scope: &[String],
    households: Option<u32>,
    logs: &Path,
) -> Res<GenSet> {
    let marker = dir.join(MARKER);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let end: Date = text.trim().parse()?;
        eprintln!("reusing the data in {} (up to {end})", dir.display());
        return Ok(GenSet {
            dir,
            end,
            gen: None,
        });
    }
    if dir.exists() {
        // An interrupted generation.
        std::fs::remove_dir_all(&dir)?;
    }
    let end = today_in_china().yesterday()?;
    let mut cmd = Command::new(bin);
    cmd.arg("gen")
        .arg("--out")
        .arg(&dir)
        .args(["--end", &end.to_string()])
        .args(scope);
    if let Some(h) = households {
        cmd.args(["--households", &h.to_string()]);
    }
    eprintln!("generating {} …", dir.display());
    let f = Job::start(cmd, logs, "gen")?.finish().await?.ok()?;
    eprintln!("{}", f.stdout.trim());
    std::fs::write(&marker, end.to_string())?;
    Ok(GenSet {
        dir,
        end,
        gen: Some(f),
    })
}

/// The counties of a set (its subdirectories named by a county code), sorted.
pub fn counties_in(set: &Path) -> Res<Vec<Code>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(set)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type()?.is_dir() && name.len() == 6 {
            if let Ok(c) = Code::parse(&name) {
                out.push(c);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `bottomline import --data DATA --division CODE files…`.
pub fn import_cmd(bin: &Path, data: &Path, code: Code, files: &[PathBuf]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("import")
        .arg("--data")
        .arg(data)
        .args(["--division", &code.to_string()])
        .args(files);
    cmd
}

/// A county's files of a set: its divisions and its records.
pub fn county_files(set: &Path, code: Code) -> Vec<PathBuf> {
    let d = set.join(code.to_string());
    std::iter::once("divisions.csv")
        .chain(RECORD_FILES)
        .map(|f| d.join(f))
        .collect()
}

/// Rows per file an import wrote, from its report lines (`FILE: N rows: …`): (file name,
/// rows).
pub fn rows_imported(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let head = &l[..l.find(" rows: ")?];
            let (file, rows) = head.rsplit_once(": ")?;
            let name = Path::new(file).file_name()?.to_string_lossy().to_string();
            Some((name, rows.trim().parse().ok()?))
        })
        .collect()
}

/// The record rows an import wrote (divisions left out).
pub fn records_imported(stdout: &str) -> u64 {
    rows_imported(stdout)
        .iter()
        .filter(|(f, _)| f != "divisions.csv")
        .map(|(_, n)| n)
        .sum()
}

/// `divisions.csv` of `set` cut to what the node of `code` keeps: its ancestors and its
/// subtree, written to `dir/divisions.csv`.
pub fn divisions_for(set: &Path, code: Code, dir: &Path) -> Res<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("divisions.csv");
    let mut r = csv::Reader::from_path(set.join("divisions.csv"))?;
    let mut w = csv::Writer::from_path(&out)?;
    w.write_record(r.headers()?)?;
    let col = r
        .headers()?
        .iter()
        .position(|h| h == "code")
        .ok_or("divisions.csv without a code column")?;
    for row in r.records() {
        let row = row?;
        let c = Code::parse(row.get(col).unwrap_or_default())?;
        if code.contains(c) || c.contains(code) {
            w.write_record(&row)?;
        }
    }
    w.flush()?;
    Ok(out)
}

/// What [`next_day`] wrote.
#[derive(Debug, Default)]
pub struct DayFiles {
    pub signals: usize,
    pub measures: usize,
    pub household_corrections: usize,
}

impl DayFiles {
    pub fn records(&self) -> usize {
        self.signals + self.measures + self.household_corrections
    }
}

/// A county's next day of records, written into `out`: a day's share of its year of risk
/// signals and assistance measures (new ids, dated `day`, copied from spread-out rows of the
/// year) and 0.1 % of its households with a corrected income.
pub fn next_day(county: &Path, out: &Path, day: Date) -> Res<DayFiles> {
    let mut n = next_days(county, &[(out.to_path_buf(), day)])?;
    Ok(n.pop().unwrap_or_default())
}

/// [`next_day`] for several days, the county's files read once: the `k`-th of `days` written
/// into its directory, dated its day, with rows picked `k` rows further on than the first
/// day's (so each day corrects other households), and ids made new by the day.
pub fn next_days(county: &Path, days: &[(PathBuf, Date)]) -> Res<Vec<DayFiles>> {
    let mut out: Vec<DayFiles> = days.iter().map(|_| DayFiles::default()).collect();
    for (dir, _) in days {
        std::fs::create_dir_all(dir)?;
    }
    for file in ["signals.csv", "measures.csv"] {
        let rows = read_csv(&county.join(file))?;
        let want = rows.1.len().div_ceil(365).max(1);
        let (id, date) = (col(&rows.0, "id")?, col(&rows.0, "date")?);
        for (k, (dir, day)) in days.iter().enumerate() {
            let picked = spread(&rows.1, want, k).map(|r| {
                let mut r = r.clone();
                r[id] = format!("{}-{day}", r[id]);
                r[date] = day.to_string();
                r
            });
            let n = write_csv(&dir.join(file), &rows.0, picked)?;
            match file {
                "signals.csv" => out[k].signals = n,
                _ => out[k].measures = n,
            }
        }
    }
    let rows = read_csv(&county.join("households.csv"))?;
    let income = col(&rows.0, "income")?;
    let want = rows.1.len().div_ceil(1000).max(1);
    for (k, (dir, _)) in days.iter().enumerate() {
        let picked = spread(&rows.1, want, k).map(|r| {
            let mut r = r.clone();
            let v: f64 = r[income].parse().unwrap_or(0.0);
            r[income] = format!("{:.2}", v * 1.05 + 1.0);
            r
        });
        out[k].household_corrections = write_csv(&dir.join("households.csv"), &rows.0, picked)?;
    }
    Ok(out)
}

type Table = (Vec<String>, Vec<Vec<String>>);

fn read_csv(path: &Path) -> Res<Table> {
    let mut r = csv::Reader::from_path(path)?;
    let head = r.headers()?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for row in r.records() {
        rows.push(row?.iter().map(str::to_string).collect());
    }
    Ok((head, rows))
}

fn col(head: &[String], name: &str) -> Res<usize> {
    head.iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("no column {name}").into())
}

/// `want` rows spread evenly over `rows`, from the `offset`-th on (modulo the step).
fn spread(rows: &[Vec<String>], want: usize, offset: usize) -> impl Iterator<Item = &Vec<String>> {
    let step = (rows.len() / want.max(1)).max(1);
    rows.iter().skip(offset % step).step_by(step).take(want)
}

fn write_csv(path: &Path, head: &[String], rows: impl Iterator<Item = Vec<String>>) -> Res<usize> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(head)?;
    let mut n = 0;
    for r in rows {
        w.write_record(r)?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

/// Bytes of every file under `dir` (apparent size), recursively.
pub fn dir_bytes(dir: &Path) -> u64 {
    files_under(dir).iter().map(|(_, b, _)| b).sum()
}

/// Every file under `dir`: (path relative to `dir`, apparent bytes, allocated bytes), the
/// largest first.
pub fn files_under(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).map(Path::to_path_buf);
                let rel = rel.unwrap_or_else(|_| e.path());
                out.push((rel.display().to_string(), meta.len(), meta.blocks() * 512));
            }
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// MiB of `bytes`, rounded to 0.1.
pub fn mib_of(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}
