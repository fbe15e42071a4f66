//! Crash tests with real processes: an import killed between its records and its
//! statistics, or killed -9 at an arbitrary moment, leaves a store that repairs itself on the
//! next open and, after the import is re-run, equals a store that was never interrupted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bottomline::ledger::Ledger;
use bottomline::store::StoreOptions;

const BIN: &str = env!("CARGO_BIN_EXE_bottomline");

fn files(dir: &Path) -> Vec<PathBuf> {
    bottomline::import::FILE_ORDER
        .iter()
        .map(|f| dir.join(format!("{f}.csv")))
        .collect()
}

fn gen(out: &Path) -> PathBuf {
    let st = Command::new(BIN)
        .args([
            "gen",
            "--seed",
            "3",
            "--county",
            "610102",
            "--households",
            "20000",
        ])
        .args(["--end", "2026-11-20", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("run gen");
    assert!(st.success());
    out.join("610102")
}

fn import(data: &Path, county_dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["import", "--division", "610102", "--data"])
        .arg(data)
        .args(files(county_dir))
        .output()
        .expect("run import")
}

fn cells(data: &Path) -> std::collections::BTreeMap<bottomline::stats::CellKey, i64> {
    let l = Ledger::open(data, &StoreOptions::default()).expect("open");
    let cells = l.all_cells().expect("cells");
    assert_eq!(
        cells,
        l.recompute_cells().expect("recompute"),
        "cells = records"
    );
    cells
}

#[test]
fn killed_between_records_and_cells_repairs_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let county = gen(&tmp.path().join("gen"));
    let reference = tmp.path().join("reference");
    assert!(import(&reference, &county).status.success());

    let crashed = tmp.path().join("crashed");
    let out = Command::new(BIN)
        .env("BOTTOMLINE_FAILPOINT", "ledger.between_records_and_cells")
        .args(["import", "--division", "610102", "--data"])
        .arg(&crashed)
        .args(files(&county))
        .output()
        .expect("run import");
    assert!(!out.status.success(), "the failpoint aborts the import");
    // The record files of one import are written as one apply: it died after the records of
    // every file were durable and before any cell was written, so no file was reported done.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for f in ["households.csv", "monitored.csv", "measures.csv"] {
        assert!(!stdout.contains(f), "{stdout}");
    }

    // `check` opens the store, which repairs the cells from the records.
    let check = Command::new(BIN)
        .args(["check", "--data"])
        .arg(&crashed)
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{err}");
    assert!(err.contains("statistics recomputed"), "{err}");
    let repaired = cells(&crashed);
    assert!(
        !repaired.is_empty(),
        "the monitoring rows' cells were recomputed"
    );

    // Re-running the import completes it; the result equals the uninterrupted one.
    let again = import(&crashed, &county);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(cells(&crashed), cells(&reference));
}

#[test]
fn kill_9_during_import_then_rerun_equals_uninterrupted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let county = gen(&tmp.path().join("gen"));
    let reference = tmp.path().join("reference");
    assert!(import(&reference, &county).status.success());
    let want = cells(&reference);

    for round in 0..3 {
        let data = tmp.path().join(format!("killed{round}"));
        let mut child = Command::new(BIN)
            .args(["import", "--division", "610102", "--data"])
            .arg(&data)
            .args(files(&county))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn import");
        // Kill once the round-th file has been reported done: at different stages each round.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        for _ in 0..=round {
            if lines.next().is_none() {
                break;
            }
        }
        // SIGKILL: no destructors, no flush.
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let again = import(&data, &county);
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(cells(&data), want, "round {round}");
    }
}
