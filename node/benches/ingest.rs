//! Ingest benchmark (issue #2, point 9).
//!
//! One Shaanxi-size county (65 000 households plus their events up to 2026-11-20) is generated,
//! parsed, and then written twice per round, in the same process:
//!
//! 1. **raw**: sled 0.34 opened with the product's settings, one tree, every record encoded
//!    with [`encode_record`] and inserted under [`record_key`] by `apply_batch` in batches of
//!    [`BATCH`], then one `flush()`;
//! 2. **Bottomline**: one [`Ledger::apply_files`] of the five record lists in dependency order,
//!    what `bottomline import` does with the files of a county (validation of each list in
//!    order, household index, every statistics cell, crash marker, durable flush).
//!
//! Five rounds, fresh data dirs each, alternating which of the two goes first (the VM is shared
//! and its speed drifts); the medians are reported with their ratio (target ≥ 0.5), and the
//! per-round ratios (raw and Bottomline of the same round, side by side) with their median and
//! range, which show how noisy the run was.
//! Then, on the last ledger, `indicators` is timed for the county at every period of 2026
//! (53 ISO weeks, 12 months, 4 quarters, 2 halves, the year) and for every division of the
//! county at the current week/month/quarter/half/year (a whole-county report).
//!
//! Prints one JSON object on stdout and a short summary on stderr. Reports; never fails on
//! the target. Run with `cargo bench -p bottomline --bench ingest`.

use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::domain::{Record, RecordKind};
use bottomline::gen::{GenOptions, GenScope};
use bottomline::import::{import_file, parse_records};
use bottomline::ledger::{encode_record, record_key, Change, Ledger, LedgerError, BATCH};
use bottomline::period::{Kind, Period};
use bottomline::store::{StoreError, StoreOptions, TreeId};
use jiff::civil::{date, Date};
use serde_json::{json, Map, Value};

type Res<T> = Result<T, Box<dyn Error>>;

const COUNTY: &str = "610102";
const HOUSEHOLDS: u32 = 65_000;
/// Odd, so that the last round (whose ledger the stats queries use) runs raw first.
const ROUNDS: usize = 5;
const RATIO_TARGET: f64 = 0.5;
const YEAR: i16 = 2026;
/// The day the ingest happens ("today" for validation).
const TODAY: Date = date(2026, 11, 24);
/// Last day of generated data.
const GEN_END: Date = date(2026, 11, 20);

fn file_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Household => "households.csv",
        RecordKind::Monitored => "monitored.csv",
        RecordKind::Signal => "signals.csv",
        RecordKind::Case => "cases.csv",
        RecordKind::Measure => "measures.csv",
    }
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system, all threads: sled's flusher included) of this process so far, in
/// seconds (clock ticks of 10 ms), from `/proc/self/stat`.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Reset `VmHWM` to the current RSS (Linux ≥ 4.0); false when not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Raw baseline: sled with the product's settings, one tree, encoded records in batches.
/// Returns the time from the first insert to the end of the flush.
fn raw_ingest(dir: &Path, records: &[(RecordKind, Vec<Change>)]) -> Res<Duration> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(StoreOptions::default().cache_bytes)
        .flush_every_ms(Some(500))
        .open()?;
    let tree = db.open_tree("data:v1")?;
    let all = records.iter().flat_map(|(_, cs)| cs.iter());
    let start = Instant::now();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for change in all {
        let Change::Put(rec) = change else { continue };
        batch.insert(record_key(rec.kind(), rec.id()), encode_record(rec));
        in_batch += 1;
        if in_batch == BATCH {
            tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        tree.apply_batch(batch)?;
    }
    db.flush()?;
    let elapsed = start.elapsed();
    drop(tree);
    drop(db);
    Ok(elapsed)
}

struct Ingest {
    total: Duration,
    /// Cells moved per record kind.
    per_kind: Vec<(RecordKind, u64)>,
    cells_written: u64,
}

/// Bottomline ingest into an already opened ledger (divisions imported): one
/// [`Ledger::apply_files`] of the five record lists in dependency order, as
/// `import::import_files` (the CLI's `import`) writes the files of one import.
fn bottomline_ingest(ledger: &Ledger, records: &[(RecordKind, Vec<Change>)]) -> Res<Ingest> {
    let lists: Vec<&[Change]> = records.iter().map(|(_, cs)| cs.as_slice()).collect();
    let start = Instant::now();
    let out = ledger.apply_files(&lists, TODAY, &mut |_| {})?;
    let total = start.elapsed();
    if let Some((i, refusals)) = out.refused {
        return Err(format!(
            "{}: {} change(s) refused",
            records[i].0.as_str(),
            refusals.len()
        )
        .into());
    }
    let mut per_kind = Vec::new();
    let mut cells_written = 0;
    for ((kind, changes), applied) in records.iter().zip(&out.applied) {
        if applied.inserted != changes.len() as u64 {
            return Err(format!(
                "{}: {} of {} records inserted",
                kind.as_str(),
                applied.inserted,
                changes.len()
            )
            .into());
        }
        per_kind.push((*kind, applied.cells_written));
        cells_written += applied.cells_written;
    }
    Ok(Ingest {
        total,
        per_kind,
        cells_written,
    })
}

/// True when sled refused to open because the dir's lock is still held: sled 0.34 releases it
/// only when its background threads let go of the db file, a moment after the `Db` is dropped
/// (sled #1234, #1289), and `Ledger::open_or_init` drops and reopens a fresh dir.
fn lock_busy(e: &LedgerError) -> bool {
    matches!(
        e,
        LedgerError::Store(StoreError::Sled { source: sled::Error::Io(io), .. })
            // sled wraps the `WouldBlock` of `flock` in an `Other` error with this message.
            if io.to_string().contains("could not acquire lock")
    )
}

/// A fresh ledger of the county with its divisions, ready for records; counts the opens that
/// had to be retried because of the lock race above (not part of any timing).
fn open_ledger(dir: &Path, divisions_csv: &Path, retries: &mut u32) -> Res<Ledger> {
    let division = Some(Code::parse(COUNTY)?);
    let mut attempt = 0;
    let ledger = loop {
        match Ledger::open_or_init(dir, division, &StoreOptions::default()) {
            Ok(l) => break l,
            Err(e) if lock_busy(&e) && attempt < 100 => {
                attempt += 1;
                *retries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    import_file(&ledger, divisions_csv, None, TODAY, &mut |_| {})?;
    Ok(ledger)
}

/// Every period of `YEAR`: weeks, months, quarters, halves, the year.
fn periods_of_year() -> Res<Vec<Period>> {
    let mut out = Vec::new();
    let last_week = Period::containing(Kind::Week, date(YEAR, 12, 28)).index();
    for (kind, n) in [
        (Kind::Week, last_week),
        (Kind::Month, 12),
        (Kind::Quarter, 4),
        (Kind::Half, 2),
    ] {
        for i in 1..=n {
            out.push(Period::new(kind, YEAR, i)?);
        }
    }
    out.push(Period::new(Kind::Year, YEAR, 0)?);
    Ok(out)
}

fn main() -> Res<()> {
    let county = Code::parse(COUNTY)?;
    let work = tempfile::tempdir()?;
    let gen_dir = work.path().join("gen");

    // ---- data: generate and parse (not timed) ----
    let t = Instant::now();
    let summary = bottomline::gen::generate(
        &GenOptions {
            seed: 42,
            out: gen_dir.clone(),
            scope: GenScope::County(COUNTY.into()),
            end: GEN_END,
            households_per_county: Some(HOUSEHOLDS),
        },
        &mut |_| {},
    )?;
    let gen_s = t.elapsed().as_secs_f64();
    let files = gen_dir.join(COUNTY);
    let divisions_csv = files.join("divisions.csv");
    let t = Instant::now();
    let mut records: Vec<(RecordKind, Vec<Change>)> = Vec::new();
    for kind in RecordKind::ALL {
        let recs: Vec<Record> = parse_records(&files.join(file_name(kind)), kind)?;
        records.push((kind, recs.into_iter().map(Change::Put).collect()));
    }
    let parse_s = t.elapsed().as_secs_f64();
    let n_records: usize = records.iter().map(|(_, cs)| cs.len()).sum();
    let rss_after_parse = peak_rss_kib();
    eprintln!(
        "ingest bench: county {COUNTY}, {} households, {n_records} records \
         (gen {gen_s:.2} s, parse {parse_s:.2} s); {ROUNDS} rounds, raw and Bottomline alternating which goes first",
        summary.households
    );

    // ---- rounds, fresh dirs each: odd rounds raw first, even rounds Bottomline first, so a
    // slow spell of the (shared) machine does not always hit the same side ----
    let mut raw_rates = Vec::new();
    let mut ingest_rates = Vec::new();
    let mut paired = Vec::new();
    let mut cells_written = 0;
    let mut per_kind_cells = Vec::new();
    let mut last: Option<(tempfile::TempDir, Ledger)> = None;
    let mut peak_ingest_kib = None;
    let mut open_retries = 0;
    let mut raw_cpu = Vec::new();
    let mut ingest_cpu = Vec::new();
    let mut raw_round = |records: &[(RecordKind, Vec<Change>)]| -> Res<Duration> {
        let raw_dir = tempfile::tempdir_in(work.path())?;
        let c = cpu_s();
        let raw = raw_ingest(raw_dir.path(), records)?;
        raw_cpu.push(cpu_s() - c);
        drop(raw_dir);
        Ok(raw)
    };
    for round in 1..=ROUNDS {
        // Close the previous round's ledger (and remove its dir) before this round.
        drop(last.take());
        let raw_first = round % 2 == 1;
        let mut raw = Duration::ZERO;
        if raw_first {
            raw = raw_round(&records)?;
        }

        let dir = tempfile::tempdir_in(work.path())?;
        let ledger = open_ledger(dir.path(), &divisions_csv, &mut open_retries)?;
        let measure_peak = round == ROUNDS && reset_peak_rss();
        let c = cpu_s();
        let ing = bottomline_ingest(&ledger, &records)?;
        ingest_cpu.push(cpu_s() - c);
        if measure_peak {
            peak_ingest_kib = peak_rss_kib();
        }
        cells_written = ing.cells_written;
        per_kind_cells = ing.per_kind.iter().map(|(_, c)| *c).collect();
        if raw_first {
            last = Some((dir, ledger));
        } else {
            // The last round runs raw first, so this ledger is not kept: close it before raw.
            drop(ledger);
            drop(dir);
            raw = raw_round(&records)?;
        }
        let raw_rate = n_records as f64 / raw.as_secs_f64();
        raw_rates.push(raw_rate);
        let rate = n_records as f64 / ing.total.as_secs_f64();
        ingest_rates.push(rate);
        paired.push(rate / raw_rate);
        eprintln!(
            "  round {round} ({}): raw {:.2} s = {raw_rate:.0} rec/s; Bottomline {:.2} s = \
             {rate:.0} rec/s; ratio {:.2}",
            if raw_first {
                "raw first"
            } else {
                "Bottomline first"
            },
            raw.as_secs_f64(),
            ing.total.as_secs_f64(),
            rate / raw_rate
        );
    }
    let (_dir, ledger) = last.ok_or("no round ran")?;
    let raw_med = median(&raw_rates);
    let ingest_med = median(&ingest_rates);
    let ratio = ingest_med / raw_med;
    let paired_med = median(&paired);
    let spread = |xs: &[f64]| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let (paired_lo, paired_hi) = spread(&paired);
    // CPU seconds, less sensitive than wall time to other processes on a shared machine.
    let cpu_ratio = median(&raw_cpu) / median(&ingest_cpu);

    // ---- stats: the county at every period of the year ----
    let periods = periods_of_year()?;
    let mut per_period = Vec::with_capacity(periods.len());
    let t = Instant::now();
    for &p in &periods {
        let tp = Instant::now();
        black_box(ledger.indicators(county, p)?);
        per_period.push(tp.elapsed());
    }
    let stats_total = t.elapsed();
    let period_max = per_period.iter().max().copied().unwrap_or_default();
    let period_mean = stats_total / periods.len().max(1) as u32;

    // ---- whole-county report: every division × current week/month/quarter/half/year ----
    let divisions: Vec<Code> = ledger.registry().subtree(county).map(|d| d.code).collect();
    let report_periods = [
        Period::new(Kind::Week, YEAR, 47)?,
        Period::containing(Kind::Month, TODAY),
        Period::containing(Kind::Quarter, TODAY),
        Period::containing(Kind::Half, TODAY),
        Period::containing(Kind::Year, TODAY),
    ];
    let t = Instant::now();
    for &d in &divisions {
        for &p in &report_periods {
            black_box(ledger.indicators(d, p)?);
        }
    }
    let report = t.elapsed();

    // ---- sizes and sanity (not timed) ----
    let stored = ledger.all_cells()?;
    let cells_consistent = stored == ledger.recompute_cells()?;
    let disk = ledger.store().size_on_disk();
    // Every changed block takes the next change-log sequence: the sequence counts block writes.
    let block_writes = ledger.cell_seq()?;
    let by_household = ledger.store().count(TreeId::ByHousehold);
    // Cells are stored in blocks per (division, period): count them and their bytes.
    let (mut blocks, mut block_bytes) = (0u64, 0u64);
    let mut blocks_per_kind = Map::new();
    for kv in ledger.store().scan_prefix(TreeId::Cells, b"") {
        let (k, v) = kv?;
        blocks += 1;
        block_bytes += v.len() as u64;
        if let Some((_, p)) = bottomline::cells::decode_block_key(&k) {
            let n = blocks_per_kind.entry(p.kind().as_str()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
    }
    let peak = peak_rss_kib();

    let mut per_kind_records = Map::new();
    let mut per_kind_cells_written = Map::new();
    for (i, (kind, cs)) in records.iter().enumerate() {
        per_kind_records.insert(kind.as_str().into(), json!(cs.len()));
        per_kind_cells_written.insert(kind.as_str().into(), json!(per_kind_cells.get(i)));
    }
    let kib_to_mib = |k: Option<u64>| k.map(|k| round2(k as f64 / 1024.0));
    let out = json!({
        "county": COUNTY,
        "households": summary.households,
        "records": n_records,
        "records_per_kind": Value::Object(per_kind_records),
        "rounds": ROUNDS,
        "raw_records_per_s": raw_med.round(),
        "ingest_records_per_s": ingest_med.round(),
        "ratio": round3(ratio),
        "paired_ratio_median": round3(paired_med),
        "paired_ratio_min": round3(paired_lo),
        "paired_ratio_max": round3(paired_hi),
        "paired_ratio_runs": paired.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
        "raw_cpu_s_runs": raw_cpu.iter().map(|c| round3(*c)).collect::<Vec<_>>(),
        "ingest_cpu_s_runs": ingest_cpu.iter().map(|c| round3(*c)).collect::<Vec<_>>(),
        "cpu_ratio": round3(cpu_ratio),
        "ratio_target": RATIO_TARGET,
        "ratio_target_met": ratio >= RATIO_TARGET,
        "raw_runs_records_per_s": raw_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "ingest_runs_records_per_s": ingest_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "cells": stored.len(),
        "cells_written": cells_written,
        "per_kind_cells_written": Value::Object(per_kind_cells_written),
        "cell_blocks": blocks,
        "cell_block_mib": round2(mib(block_bytes)),
        "cell_block_writes": block_writes,
        "cell_blocks_per_period_kind": Value::Object(blocks_per_kind),
        "household_index_entries": by_household,
        "stats_periods": periods.len(),
        "stats_72_periods_ms": round3(stats_total.as_secs_f64() * 1e3),
        "stats_period_mean_us": period_mean.as_micros(),
        "stats_period_max_us": period_max.as_micros(),
        "whole_county_report_ms": round3(report.as_secs_f64() * 1e3),
        "whole_county_report_divisions": divisions.len(),
        "whole_county_report_queries": divisions.len() * report_periods.len(),
        "peak_rss_mib": kib_to_mib(peak),
        "peak_rss_after_parse_mib": kib_to_mib(rss_after_parse),
        "peak_rss_during_ingest_mib": kib_to_mib(peak_ingest_kib),
        "disk_mib": round2(mib(disk)),
        "cells_consistent": cells_consistent,
        "open_lock_retries": open_retries,
    });
    println!("{out}");
    eprintln!(
        "raw {raw_med:.0} rec/s, Bottomline {ingest_med:.0} rec/s, ratio {ratio:.2} \
         (target {RATIO_TARGET}: {}; per-round ratios median {paired_med:.2}, \
         {paired_lo:.2}–{paired_hi:.2}; CPU-time ratio {cpu_ratio:.2}); stats {} periods {:.1} ms (max {} µs); whole-county \
         report {} divisions × 5 periods {:.1} ms; {} cells, consistent: {cells_consistent}; \
         peak RSS {:.0} MiB; disk {:.1} MiB",
        if ratio >= RATIO_TARGET {
            "met"
        } else {
            "NOT met"
        },
        periods.len(),
        stats_total.as_secs_f64() * 1e3,
        period_max.as_micros(),
        divisions.len(),
        report.as_secs_f64() * 1e3,
        stored.len(),
        peak.unwrap_or(0) as f64 / 1024.0,
        mib(disk),
    );
    Ok(())
}

/// Three decimals, for seconds and ratios.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
