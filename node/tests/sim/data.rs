//! The simulation's data: three generated counties (`bottomline gen`, small), read once per
//! test binary and cut into the chunks the counties write during a run.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bottomline::division::Code;
use bottomline::domain::{Record, RecordKind};
use jiff::civil::Date;

/// The day the counties' writes are validated against.
pub const TODAY: Date = jiff::civil::date(2026, 11, 20);

/// Records per chunk.
const CHUNK: usize = 12;

/// Each county's records, in dependency order, in chunks.
pub struct Data {
    pub chunks: BTreeMap<Code, Vec<Vec<Record>>>,
    /// Each county's divisions (its towns and villages).
    pub divisions: BTreeMap<Code, Vec<bottomline::division::Division>>,
    _dir: tempfile::TempDir,
}

/// The data of every run (generated on first use).
pub fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chunks = BTreeMap::new();
        let mut divisions = BTreeMap::new();
        for (i, county) in ["610102", "610103", "610202"].iter().enumerate() {
            bottomline::gen::generate(
                &bottomline::gen::GenOptions {
                    seed: 40 + i as u64,
                    out: dir.path().to_path_buf(),
                    scope: bottomline::gen::GenScope::County(county.to_string()),
                    end: TODAY,
                    households_per_county: Some(40),
                },
                &mut |_| {},
            )
            .expect("gen");
            let divs =
                bottomline::import::read_divisions(&dir.path().join(county).join("divisions.csv"))
                    .expect("divisions");
            divisions.insert(Code::parse(county).expect("code"), divs);
            let mut records = Vec::new();
            for (file, kind) in [
                ("households", RecordKind::Household),
                ("monitored", RecordKind::Monitored),
                ("signals", RecordKind::Signal),
                ("cases", RecordKind::Case),
                ("measures", RecordKind::Measure),
            ] {
                let path = dir.path().join(county).join(format!("{file}.csv"));
                records.extend(bottomline::import::parse_records(&path, kind).expect("parse"));
            }
            let cut: Vec<Vec<Record>> = records.chunks(CHUNK).map(<[Record]>::to_vec).collect();
            chunks.insert(Code::parse(county).expect("code"), cut);
        }
        Data {
            chunks,
            divisions,
            _dir: dir,
        }
    })
}
