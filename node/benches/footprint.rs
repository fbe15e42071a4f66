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
//!   (≤ 4 GiB), the bytes on disk of every store (province ≤ 256 MiB), each province file's
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::security::pki::Pki;
use bottomline::security::tls::{ClientTls, TlsFiles};
use bottomline::security::{Identity, Role};
use serde_json::{json, Value};

mod common;
use common::Res;

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

/// sled's page cache (MiB) of a level's node (`province`, `city`, `county`): its
/// `cache_mib` in the deployment sample `deploy/<level>.toml`, else the default.
pub fn cache_mib(level: &str) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(format!("{level}.toml"));
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("cache_mib")?.as_integer())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(bottomline::store::DEFAULT_CACHE_MIB)
}

/// What the run does, from the environment.
pub struct Settings {
    /// Households per county; `None` = realistic.
    pub households: Option<u32>,
    pub counties: u32,
    pub cities: u32,
    pub import: bool,
    pub serve: bool,
    pub tree: bool,
    /// Where generated sets are kept (`BENCH_DATA`), else the temp dir.
    pub data: Option<PathBuf>,
    pub import_jobs: usize,
    pub settle: Duration,
    pub poll: Duration,
    pub sample: Duration,
    pub check_secs: Option<f64>,
    pub deadline: Duration,
    pub keep: bool,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Settings {
    fn from_env() -> Res<Settings> {
        let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "import,serve,tree".into());
        let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
        if let Some(p) = parts
            .iter()
            .find(|p| !["import", "serve", "tree"].contains(p))
        {
            return Err(format!("BENCH_PARTS: unknown part {p:?} (import, serve, tree)").into());
        }
        let counties = env_num("BENCH_COUNTIES").unwrap_or(107u32).max(1);
        Ok(Settings {
            households: env_num("BENCH_HOUSEHOLDS").filter(|h: &u32| *h > 0),
            counties,
            cities: counties.min(10),
            import: parts.contains(&"import"),
            serve: parts.contains(&"serve"),
            tree: parts.contains(&"tree"),
            data: std::env::var_os("BENCH_DATA").map(PathBuf::from),
            import_jobs: env_num("BENCH_IMPORT_JOBS").unwrap_or(2usize).max(1),
            settle: Duration::from_secs_f64(env_num("BENCH_SETTLE_S").unwrap_or(10.0)),
            poll: Duration::from_millis(env_num("BENCH_POLL_MS").unwrap_or(500u64).max(10)),
            sample: Duration::from_millis(env_num("BENCH_SAMPLE_MS").unwrap_or(200u64).max(10)),
            check_secs: env_num("BENCH_CHECK_SECS"),
            deadline: Duration::from_secs_f64(env_num("BENCH_DEADLINE_S").unwrap_or(1800.0)),
            keep: std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1"),
        })
    }

    /// How a generated set's directory names its household count.
    fn households_tag(&self) -> String {
        self.households
            .map_or_else(|| "realistic".into(), |h| h.to_string())
    }
}

/// What every part uses.
pub struct Ctx {
    pub s: Settings,
    pub bin: PathBuf,
    /// The run's temp dir: stores, configs, node logs.
    pub tmp: PathBuf,
    /// CLI runs' stdout and stderr.
    pub logs: PathBuf,
    /// Where generated sets are.
    pub data: PathBuf,
    pki: Pki,
    pub client_tls: ClientTls,
}

impl Ctx {
    /// The certificate files of the node of `code`.
    pub fn node_tls(&mut self, code: Code) -> Res<TlsFiles> {
        Ok(self.pki.files_for(&Identity::Node { division: code })?)
    }
}

/// The headline figures, each with its target (a maximum) when the issue gives one.
#[derive(Default)]
pub struct Figures(Vec<(String, Option<f64>, Option<f64>, &'static str)>);

impl Figures {
    pub fn add(&mut self, name: &str, value: Option<f64>, target: Option<f64>, unit: &'static str) {
        let value = value.map(|v| (v * 100.0).round() / 100.0);
        self.0.push((name.to_string(), value, target, unit));
    }

    fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (name, value, target, unit) in &self.0 {
            let met = match (value, target) {
                (Some(v), Some(t)) => json!(v <= t),
                _ => Value::Null,
            };
            m.insert(
                name.clone(),
                json!({"value": value, "target_max": target, "met": met, "unit": unit}),
            );
        }
        Value::Object(m)
    }

    fn print(&self) {
        eprintln!("\nfootprint figures:");
        for (name, value, target, unit) in &self.0 {
            let v = value.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"));
            let t = match (value, target) {
                (Some(v), Some(t)) => {
                    format!("[≤ {t}] {}", if v <= t { "met" } else { "MISSED" })
                }
                (None, Some(t)) => format!("[≤ {t}] not measured"),
                _ => String::new(),
            };
            eprintln!("  {name:<46} {v:>9} {unit:<6} {t}");
        }
    }
}

/// The commit the benchmark was built from and the files changed since (`git`, if there).
fn code_state() -> Value {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let changed =
        git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| s.lines().count());
    json!({"commit": git(&["rev-parse", "--short", "HEAD"]), "files_changed": changed})
}

/// Load average and memory of the machine (`/proc`), for the report's head.
fn machine() -> Value {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib / 1024);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_total_mib": total,
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Memory figures as JSON, in MiB.
pub fn mem_json(m: Option<procs::Mem>) -> Value {
    let r = |kib: u64| round1(procs::mib(kib));
    match m {
        Some(m) => json!({
            "vm_rss_mib": r(m.rss),
            "vm_hwm_mib": r(m.hwm),
            "rss_anon_mib": r(m.anon),
            "rss_file_mib": r(m.file),
        }),
        None => Value::Null,
    }
}

/// `v` rounded to 0.1.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn dir_of(p: &Path) -> String {
    p.display().to_string()
}

// Runs on this (the main) thread, not on a worker: the child processes are spawned from it
// and are told to stop when it ends (see `procs`).
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let s = Settings::from_env()?;
    let bin = procs::binary()?;
    let tmp = tempfile::Builder::new().prefix("footprint-").tempdir()?;
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let data = s.data.clone().unwrap_or_else(|| tmp.path().join("gen"));
    std::fs::create_dir_all(&data)?;
    let mut pki = Pki::open_or_init(&tmp.path().join("pki"), "Bottomline footprint benchmark")?;
    let op = pki.files_for(&Identity::Operator {
        name: "bench.viewer".into(),
        division: Code::parse("61")?,
        role: Role::Viewer,
    })?;
    let client_tls = ClientTls::load(&op)?;
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
        "binary": dir_of(&bin),
        "code": code_state(),
        "date": bottomline::period::today_in_china().to_string(),
        "machine_at_start": machine(),
        "settings": {
            "households_per_county": s.households.map_or_else(|| json!("realistic"), |h| json!(h)),
            "counties": s.counties,
            "cities": s.cities,
            "parts": parts,
            "data": dir_of(&data),
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
    let mut cx = Ctx {
        s,
        bin,
        tmp: tmp.path().to_path_buf(),
        logs,
        data,
        pki,
        client_tls,
    };
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
