//! Footprint benchmark (issue #16, points 2 and 6): the memory and disk a deployment's
//! processes take, each node its own `bottomline serve` process and each import its own
//! `bottomline import` process, as they run in production (the release binary cargo builds for
//! the benchmark; nodes over mutual TLS with a CA the benchmark makes in its temp dir; the
//! deployment samples' `cache_mib`, read from `deploy/{province,city,county}.toml`; sync settings and
//! `check_secs` at their defaults).
//!
//! Three parts (`BENCH_PARTS=import,serve,tree`, default all):
//!
//! - **import**: one county (610102) generated with `bottomline gen` (realistic size by
//!   default: ~86 000 households for this county and a year of events) and imported with
//!   `bottomline import` into a fresh data dir. Peak RSS is the kernel's `ru_maxrss` of the
//!   import process (`wait4`); also records/s, wall and CPU time. Target ≤ 100 MiB.
//! - **serve**: that data dir served by a county node under a city and the province (three
//!   processes, the parents' registries imported first). The county's `VmRSS` is sampled
//!   every `BENCH_SAMPLE_MS` (200) from its spawn until the province holds all its figures
//!   (every parent acked its child's change log up to the child's head, in two `Status`
//!   polls in a row), then `BENCH_SETTLE_S` (10) more seconds: max (the largest sample or
//!   the final `VmHWM`, whichever is larger) and final (target ≤ 48 MiB). Then two drops
//!   into the county's inbox while it serves, each until the province holds the result
//!   again plus the settle time: the **next day** (a day's share of the year's risk signals
//!   and measures, new ids dated the day after the data, and 0.1 % of the households with a
//!   corrected income) and a **full resend** (all the county's files again, as a system
//!   exporting everything daily sends them; every row unchanged). Peak RSS during each: the
//!   largest sample, or `VmHWM` if it rose meanwhile.
//! - **tree**: the Shaanxi shape, 1 province, 10 cities, `BENCH_COUNTIES` (107) counties,
//!   one process each. The counties' data is generated for the province and imported
//!   offline first, `BENCH_IMPORT_JOBS` (2) imports at a time (each import's peak RSS), the
//!   cities' and the province's registries too; then the tree is started (province, cities,
//!   counties, each level once the one above listens). Measured: from spawning the province
//!   until its `Status` and every city's show each child acked up to the child's head
//!   (target ≤ 60 s; also when each node's uplink first showed connected, and when the
//!   cities first held all their counties); then, over the settle time after that point,
//!   each process's largest sampled `VmRSS` (province ≤ 160 MiB, each city ≤ 96 MiB, the
//!   counties' max and median), the sums of `VmRSS`, `VmHWM` and PSS over all processes
//!   at the end, and the largest sum of `VmRSS` at one sampling tick over that time
//!   (`tree_rss_total_max_mib`: the tree's own peak; ≤ 4 GiB for each sum), the bytes on disk of every store (province ≤ 256 MiB), each province file's
//!   size, and the province's Stats of every county compared with the county's own. After
//!   the nodes stop, `bottomline check` of the province (the only CLI view of a store's
//!   content: its cell count).
//!
//! Self-checks: a node checks itself every `check_secs` (default 600 s), the first time at a
//! random point of its first period (at least 10 s after its start), so by default the
//! windows above end before it. `BENCH_CHECK_SECS=N` sets the nodes' period and makes both
//! windows also wait until every node ran its first check (up to N + 60 s + 3 s per node); 0 turns the
//! checks off.
//!
//! Households per county: `BENCH_HOUSEHOLDS` (default 0 = realistic, ~65 000 on average; the
//! whole realistic tree takes 10–20 minutes on two cores, mostly the 107 imports and the
//! sync). Generated files are kept in `BENCH_DATA=DIR` when given and reused by later runs
//! with the same parameters. `BENCH_POLL_MS` (500): `Status` polling; `BENCH_DEADLINE_S`
//! (1800): how long to wait for the province to hold everything; `BENCH_KEEP=1` keeps the
//! temp dir (stores, configs, logs); `BENCH_NODE_LOG`: the nodes' `RUST_LOG` (default
//! `info`). The nodes inherit the environment (e.g. `MALLOC_ARENA_MAX`).
//!
//! Prints one JSON object on stdout (`figures`: each headline figure with its target, then the
//! details per part; `code`: the commit and whether the work tree was clean), progress and a
//! summary on stderr. Reports; never fails on a target. Run:
//!
//! ```sh
//! BENCH_COUNTIES=12 BENCH_HOUSEHOLDS=3000 cargo bench -p bottomline --bench footprint
//! BENCH_PARTS=import,serve BENCH_DATA=/tmp/footprint-data cargo bench -p bottomline --bench footprint
//! BENCH_PARTS=tree BENCH_DATA=/tmp/footprint-data cargo bench -p bottomline --bench footprint
//! ```

use bottomline::division::Code;
use bottomline::security::{Identity, Role};
use serde_json::json;

mod common;
use common::Res;

#[path = "footprint/context.rs"]
mod context;
#[path = "footprint/county.rs"]
mod county;
#[path = "footprint/data.rs"]
mod data;
#[path = "footprint/procs.rs"]
mod procs;
#[path = "footprint/tree.rs"]
mod tree;
#[path = "footprint/watch.rs"]
mod watch;

pub use context::{cache_mib, mem_json, round1, Ctx, Figures, Settings};
use context::{code_state, dir_of, machine};

// Runs on this (the main) thread, not on a worker: the child processes are spawned from it
// and are told to stop when it ends (see `procs`).
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let s = Settings::from_env()?;
    let bin = procs::binary()?;
    let tmp = tempfile::Builder::new().prefix("footprint-").tempdir()?;
    let operator = Identity::Operator {
        name: "bench.viewer".into(),
        division: Code::parse("61")?,
        role: Role::Viewer,
    };
    let mut cx = Ctx::open(
        s,
        bin,
        tmp.path(),
        "Bottomline footprint benchmark",
        &operator,
    )?;
    let s = &cx.s;
    let parts: Vec<&str> = [
        s.import.then_some("import"),
        s.serve.then_some("serve"),
        s.tree.then_some("tree"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut report = json!({
        "benchmark": "footprint",
        "binary": dir_of(&cx.bin),
        "code": code_state(),
        "date": bottomline::period::today_in_china().to_string(),
        "machine_at_start": machine(),
        "settings": {
            "households_per_county": s.households.map_or_else(|| json!("realistic"), |h| json!(h)),
            "counties": s.counties,
            "cities": s.cities,
            "parts": parts,
            "data": dir_of(&cx.data),
            "import_jobs": s.import_jobs,
            "settle_s": s.settle.as_secs_f64(),
            "status_poll_ms": s.poll.as_millis() as u64,
            "rss_sample_ms": s.sample.as_millis() as u64,
            "check_secs": s.check_secs,
            "tls": "mTLS",
            "cache_mib": {"county": cache_mib("county"), "city": cache_mib("city"), "province": cache_mib("province")},
        },
    });
    eprintln!(
        "footprint: parts {}, households per county {}, working in {}",
        report["settings"]["parts"],
        s.households_tag(),
        tmp.path().display()
    );
    let keep = s.keep;
    let mut figs = Figures::default();
    let mut imported = None;
    if cx.s.import {
        let (j, dir) = county::import(&cx, &mut figs).await?;
        report["import"] = j;
        imported = Some(dir);
    }
    if cx.s.serve {
        report["serve"] = county::serve(&mut cx, &mut figs, imported).await?;
    }
    if cx.s.tree {
        report["tree"] = tree::run(&mut cx, &mut figs).await?;
    }
    report["machine_at_end"] = machine();
    report["figures"] = figs.json();
    figs.print();
    if keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
