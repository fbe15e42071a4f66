//! The change log (one value per commit, see `cells::LogWriter`): each block is logged once,
//! at its latest change, and a sweep in steps of any size, from any floor, returns exactly the
//! entries changed after the floor, each block once.

use std::collections::BTreeMap;

use bottomline::cells::{cells_of_block, decode_block_key, Block};
use bottomline::division::Code;
use bottomline::domain::RecordKind;
use bottomline::gen::{GenOptions, GenScope};
use bottomline::import::{import_file, parse_records};
use bottomline::ledger::{Change, Ledger};
use bottomline::stats::CellKey;
use bottomline::store::{StoreOptions, TreeId};
use jiff::civil::date;

const FILES: [(RecordKind, &str); 5] = [
    (RecordKind::Household, "households.csv"),
    (RecordKind::Monitored, "monitored.csv"),
    (RecordKind::Signal, "signals.csv"),
    (RecordKind::Case, "cases.csv"),
    (RecordKind::Measure, "measures.csv"),
];

/// Every stored entry changed after `floor` that travels up (towns' and villages' cells stay
/// at the county), from the blocks themselves.
fn stored_after(ledger: &Ledger, floor: u64) -> BTreeMap<CellKey, (i64, u64)> {
    let mut out = BTreeMap::new();
    for kv in ledger.store().scan_prefix(TreeId::Cells, b"") {
        let (k, v) = kv.unwrap();
        let (d, p) = decode_block_key(&k).unwrap();
        if !bottomline::cells::travels_up(d) {
            continue;
        }
        let block = Block::decode(&v).unwrap();
        for (key, e) in cells_of_block(d, p, &block) {
            if e.seq > floor {
                out.insert(key, (e.value, e.seq));
            }
        }
    }
    out
}

/// A cell as a sweep returns it: key, then value and sequence.
type Swept = (CellKey, (i64, u64));

/// A whole sweep from `floor` in steps of `limit` blocks: the cells, and where it ended.
fn sweep(ledger: &Ledger, floor: u64, limit: usize) -> (Vec<Swept>, u64) {
    sweep_capped(ledger, floor, limit, usize::MAX)
}

/// The same in steps that also stop before a block that would pass `max_cells` cells.
fn sweep_capped(ledger: &Ledger, floor: u64, limit: usize, max_cells: usize) -> (Vec<Swept>, u64) {
    let mut pos = floor;
    let mut cells = Vec::new();
    for _ in 0..100_000 {
        let step = ledger.sweep_capped(floor, pos, limit, max_cells).unwrap();
        assert!(step.pos >= pos, "a sweep never moves back");
        cells.extend(step.cells.iter().map(|(k, v)| (*k, (v.value, v.seq))));
        pos = step.pos;
        if step.complete {
            return (cells, pos);
        }
    }
    panic!("sweep from {floor} in steps of {limit} did not complete");
}

#[test]
fn sweeps_return_each_changed_block_once_from_any_floor_in_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    bottomline::gen::generate(
        &GenOptions {
            seed: 3,
            out: gen_dir.clone(),
            scope: GenScope::County("610102".into()),
            end: date(2026, 11, 20),
            households_per_county: Some(300),
        },
        &mut |_| {},
    )
    .unwrap();
    let files = gen_dir.join("610102");
    let today = date(2026, 11, 24);
    let ledger = Ledger::open_or_init(
        &tmp.path().join("data"),
        Some(Code::parse("610102").unwrap()),
        &StoreOptions::default(),
    )
    .unwrap();
    import_file(
        &ledger,
        &files.join("divisions.csv"),
        None,
        today,
        &mut |_| {},
    )
    .unwrap();
    let lists: Vec<Vec<Change>> = FILES
        .iter()
        .map(|(k, f)| {
            parse_records(&files.join(f), *k)
                .unwrap()
                .into_iter()
                .map(Change::Put)
                .collect()
        })
        .collect();
    let refs: Vec<&[Change]> = lists.iter().map(|l| l.as_slice()).collect();

    // Two applies: the second changes most blocks of the first again (same division and
    // period), so they leave their old log groups.
    let out = ledger.apply_files(&refs[..2], today, &mut |_| {}).unwrap();
    assert!(out.refused.is_none());
    let floor = ledger.cell_seq().unwrap();
    assert!(floor > 0);
    let out = ledger.apply_files(&refs[2..], today, &mut |_| {}).unwrap();
    assert!(out.refused.is_none());
    // Then each block alone in its commit: delete and restore one signal.
    let Change::Put(signal) = lists[2][0].clone() else {
        unreachable!()
    };
    let id = signal.id().to_string();
    ledger
        .apply(&[Change::Delete(RecordKind::Signal, id)], today)
        .unwrap();
    ledger.apply(&[Change::Put(signal)], today).unwrap();
    let head = ledger.cell_seq().unwrap();

    let blocks = ledger.store().count(TreeId::Cells) as u64;
    assert_eq!(ledger.backlog(0).unwrap(), blocks, "each block logged once");
    assert!(ledger.backlog(floor).unwrap() < blocks);
    for f in [0, floor, head - 3, head] {
        let expected = stored_after(&ledger, f);
        for limit in [1, 7, 1000, usize::MAX] {
            let (cells, pos) = sweep(&ledger, f, limit);
            assert_eq!(pos, head, "floor {f}, limit {limit}");
            let got: BTreeMap<_, _> = cells.iter().copied().collect();
            assert_eq!(
                got.len(),
                cells.len(),
                "floor {f}, limit {limit}: a cell twice"
            );
            assert_eq!(got, expected, "floor {f}, limit {limit}");
        }
        // Capped by cells as the uplink does (here at 1, 50 and 500 cells per step): the same
        // cells, each once, and no step passes its cap unless its one block alone does.
        for cap in [1, 50, 500] {
            let (cells, pos) = sweep_capped(&ledger, f, usize::MAX, cap);
            assert_eq!(pos, head, "floor {f}, cap {cap}");
            let got: BTreeMap<_, _> = cells.iter().copied().collect();
            assert_eq!(got.len(), cells.len(), "floor {f}, cap {cap}: a cell twice");
            assert_eq!(got, expected, "floor {f}, cap {cap}");
            let step = ledger.sweep_capped(f, f, usize::MAX, cap).unwrap();
            // A step capped at one cell holds exactly its first block with changed cells.
            let first = ledger
                .sweep_capped(f, f, usize::MAX, 1)
                .unwrap()
                .cells
                .len();
            assert!(
                step.cells.len() <= cap.max(first) && step.cells.len() >= first,
                "cap {cap}: {} cells, the first block {first}",
                step.cells.len(),
            );
            if expected.len() > cap.max(first) {
                assert!(!step.complete, "cap {cap}: a step stops early");
            }
        }
    }
    ledger.store().flush().unwrap();
    assert_eq!(
        ledger.all_cells().unwrap(),
        ledger.recompute_cells().unwrap()
    );
}
