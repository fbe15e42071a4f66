//! Relay benchmark (issue #15, point 8): county commit → province latency, direct versus
//! through a relay (target: relay p99 ≤ 1.5 × direct p99).
//!
//! Two small trees run side by side in this process, over mTLS with a CA of the benchmark's
//! own, on 127.0.0.1: each a province (61), one city (6101) and `BENCH_COUNTIES` counties
//! (default 8: 610102, 610103 …). In the **direct** tree the counties dial the city; in the
//! **relay** tree they dial a relay (`bottomline_relay::Relay`) whose parent is the city.
//! Both trees get the same generated data (`BENCH_HOUSEHOLDS` households per county, default
//! 200, imported while the trees run) and converge (the province holds exactly every
//! county's cells) before anything is timed. Nodes and relay run their default `[sync]`
//! settings (heartbeat, batch size, timeouts); only the first reconnection delay is short.
//!
//! In each of `BENCH_ROUNDS` rounds (default 20) both modes are measured, alternating which
//! goes first: every county of the tree commits one new risk signal (one durable
//! `Ledger::apply`; the counties are released together), and for each county the time from
//! its apply returning to the province's replica of that county's week block equalling the
//! county's is recorded (polled every 1 ms; 30 s without it is an error). The tree then
//! settles (every parent acked its children's whole durable log) before the next
//! measurement. Per mode: p50, p99 and max over all commits, the same to the city, and the
//! ratio of the p99s.
//!
//! Everything runs in one process: the 21 sled stores (2 × (1 + 1 + counties) nodes and the
//! relay's custody store) share sled's process-wide lock, so a flush at one node waits
//! behind the writes of every other, and the two trees share the machine's cores (the idle
//! tree only sends heartbeats). A relay hop adds a custody write and an fdatasync under that
//! same lock, which a relay on its own machine would not share.
//!
//! Prints one line per round and mode on stderr and one JSON object on stdout. Reports the
//! target, never fails on it. Run with `cargo bench -p bottomline-relay --bench relay`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::domain::{Cents, Record, RecordKind, Signal, SignalSource, SignalType};
use bottomline::gen::{GenOptions, GenScope};
use bottomline::ledger::{Change, Ledger};
use bottomline::node::{self, NodeHandle};
use bottomline::period::{Kind, Period};
use bottomline::security::pki::Pki;
use bottomline::security::tls::TlsFiles;
use bottomline::security::Identity;
use bottomline::stats::{CellKey, CellSource};
use bottomline_relay::{Relay, RunningRelay};
use jiff::civil::{date, Date};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PROVINCE: &str = "61";
const CITY: &str = "6101";
const GEN_END: Date = date(2026, 11, 20);
const TODAY: Date = date(2026, 11, 24);
const TARGET_RATIO: f64 = 1.5;
/// A commit not at the province within this long fails the benchmark.
const DEADLINE: Duration = Duration::from_secs(30);
/// Setting up (import and convergence) or settling after a round may take this long.
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn code(s: &str) -> Res<Code> {
    Ok(Code::parse(s).map_err(|e| format!("{s}: {e}"))?)
}

// ------------------------------------------------------------------------------------------
// Nodes and relays in this process
// ------------------------------------------------------------------------------------------

/// A node running in this process.
struct Running {
    handle: NodeHandle,
    /// `https://ADDR` when it listens.
    url: Option<String>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn ledger(&self) -> &Arc<Ledger> {
        &self.handle.ledger
    }

    fn url(&self) -> Res<String> {
        Ok(self.url.clone().ok_or("the node does not listen")?)
    }

    /// Stop it and wait for its ordered shutdown; an unclean one is an error.
    async fn shutdown(self) -> Res<()> {
        let _ = self.stop.send(true);
        self.task.await?.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The certificate files of `identity` from the benchmark's CA.
fn tls_files(pki: &mut Pki, identity: &Identity) -> Res<TlsFiles> {
    Ok(pki.files_for(identity)?)
}

/// Start node `division` over mTLS with its data in `dir/<division>`, dialling `parent` if
/// given, listening on a free port of 127.0.0.1 if `listen`. Default `[sync]` settings but
/// a short first reconnection delay.
async fn start_node(
    dir: &Path,
    pki: &mut Pki,
    division: Code,
    parent: Option<&str>,
    listen: bool,
) -> Res<Running> {
    let tls = tls_files(pki, &Identity::Node { division })?;
    // Top-level keys first: the [tls] and [sync] tables follow.
    let mut toml = format!(
        "division = \"{division}\"\ndata_dir = {:?}\n",
        dir.join(division.to_string()).display().to_string()
    );
    if let Some(p) = parent {
        toml.push_str(&format!("parent = \"{p}\"\n"));
    }
    if listen {
        toml.push_str("listen = \"127.0.0.1:0\"\n");
    }
    toml.push_str(&tls.to_toml_section());
    toml.push_str("[sync]\nreconnect_secs = 0.05\n");
    let config = Config::parse(&toml)?;
    let handle = node::open(&config)?;
    let listener = if listen {
        Some(TcpListener::bind("127.0.0.1:0").await?)
    } else {
        None
    };
    let url = match &listener {
        Some(l) => Some(format!("https://{}", l.local_addr()?)),
        None => None,
    };
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(node::run(config, handle.clone(), listener, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    Ok(Running {
        handle,
        url,
        stop,
        task,
    })
}

/// Start a relay for the city at `city_url` with its custody store in `dir/relay` (default
/// settings but a short first reconnection delay).
async fn start_relay(dir: &Path, pki: &mut Pki, city_url: &str) -> Res<RunningRelay> {
    let tls = tls_files(
        pki,
        &Identity::Relay {
            name: "bench".into(),
        },
    )?;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nparent = \"{city_url}\"\nparent_division = \"{CITY}\"\n\
         data_dir = {:?}\nreconnect_secs = 0.05\n{}",
        dir.join("relay").display().to_string(),
        tls.to_toml_section()
    );
    let config = bottomline_relay::Config::parse(&toml)?;
    Ok(Relay::start(config).await?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Relay,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Relay => "relay",
        }
    }
}

/// One tree: province, city, counties (dialling the city, or a relay in front of it).
struct Tree {
    mode: Mode,
    province: Running,
    city: Running,
    relay: Option<RunningRelay>,
    counties: Vec<(Code, Running)>,
}

impl Tree {
    async fn start(dir: &Path, pki: &mut Pki, mode: Mode, counties: &[Code]) -> Res<Tree> {
        let dir = dir.join(mode.name());
        let province = start_node(&dir, pki, code(PROVINCE)?, None, true).await?;
        let city = start_node(&dir, pki, code(CITY)?, Some(&province.url()?), true).await?;
        let relay = match mode {
            Mode::Direct => None,
            Mode::Relay => Some(start_relay(&dir, pki, &city.url()?).await?),
        };
        let parent = match &relay {
            Some(r) => r.url(),
            None => city.url()?,
        };
        let mut nodes = Vec::new();
        for &c in counties {
            nodes.push((c, start_node(&dir, pki, c, Some(&parent), false).await?));
        }
        Ok(Tree {
            mode,
            province,
            city,
            relay,
            counties: nodes,
        })
    }

    /// The province holds exactly each county's cells.
    fn holds_every_county(&self) -> Res<bool> {
        let at_province = self.province.ledger().all_cells()?;
        for (c, n) in &self.counties {
            let mine = n.ledger().all_cells()?;
            let copy: BTreeMap<CellKey, i64> = at_province
                .iter()
                .filter(|(k, _)| c.contains(k.division))
                .map(|(k, v)| (*k, *v))
                .collect();
            if copy != mine {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every parent acked its children's whole durable log (nothing in flight).
    fn settled(&self) -> Res<bool> {
        let city = self.city.ledger();
        for (c, n) in &self.counties {
            if city.child_acked(*c)? < n.ledger().durable_seq() {
                return Ok(false);
            }
        }
        Ok(self.province.ledger().child_acked(city.division())? >= city.durable_seq())
    }

    async fn shutdown(self) -> Res<()> {
        for (_, n) in self.counties {
            n.shutdown().await?;
        }
        if let Some(r) = self.relay {
            r.shutdown().await?;
        }
        self.city.shutdown().await?;
        self.province.shutdown().await
    }
}

/// Poll `f` every `every` until it is true; an error after [`SETTLE_DEADLINE`].
async fn wait_until<F>(what: &str, every: Duration, mut f: F) -> Res<f64>
where
    F: FnMut() -> Res<bool>,
{
    let t = Instant::now();
    while !f()? {
        if t.elapsed() > SETTLE_DEADLINE {
            return Err(format!("timed out after {SETTLE_DEADLINE:?} waiting for: {what}").into());
        }
        tokio::time::sleep(every).await;
    }
    Ok(t.elapsed().as_secs_f64())
}

// ------------------------------------------------------------------------------------------
// Data and commits (as in node/benches/sync.rs)
// ------------------------------------------------------------------------------------------

/// Generate each county's data set into `files/<county>/`.
fn generate(files: &Path, counties: &[Code], households: u32) -> Res<()> {
    for c in counties {
        bottomline::gen::generate(
            &GenOptions {
                seed: 7,
                out: files.to_path_buf(),
                scope: GenScope::County(c.to_string()),
                end: GEN_END,
                households_per_county: Some(households),
            },
            &mut |_| {},
        )?;
    }
    Ok(())
}

/// Import `files/<county>/` into each county ledger, one after the other.
fn import(ledgers: &[Arc<Ledger>], files: &Path) -> Res<()> {
    for l in ledgers {
        let paths: Vec<PathBuf> = bottomline::import::FILE_ORDER
            .iter()
            .map(|k| {
                files
                    .join(l.division().to_string())
                    .join(format!("{k}.csv"))
            })
            .collect();
        bottomline::import::import_files(l, &paths, None, GEN_END, &mut |_| {}, &mut |_| {})?;
    }
    Ok(())
}

fn households(ledger: &Ledger, n: usize) -> Vec<String> {
    ledger
        .records(RecordKind::Household)
        .take(n)
        .filter_map(|r| r.ok().map(|r| r.household_code().to_string()))
        .collect()
}

fn signal(id: String, household: &str, i: usize, day: Date) -> Record {
    Record::Signal(Signal {
        id,
        household_code: household.to_string(),
        source: SignalSource::from_code(2).unwrap_or(SignalSource::GridCheck),
        kind: SignalType::from_code(1 + (i % 9) as u8).unwrap_or(SignalType::Medical),
        department: None,
        amount: Cents(10_000 + i as i64 * 37),
        date: day,
    })
}

/// The non-zero cells of (division, period).
fn block(l: &Ledger, division: Code, period: Period) -> Vec<(CellKey, i64)> {
    l.cells_of(division, period).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// One measurement
// ------------------------------------------------------------------------------------------

/// What one round of one mode measured.
#[derive(Default)]
struct RoundResult {
    /// Per county: commit returned → the province's block equals the county's (ms).
    province_ms: Vec<f64>,
    /// The same to the city (ms).
    city_ms: Vec<f64>,
    /// From releasing the counties to the last commit returning (ms).
    commit_span_ms: f64,
}

/// Every county commits one new risk signal at once; time each to the city and province.
async fn measure(
    tree: &Tree,
    round: usize,
    week: Period,
    households: &[Vec<String>],
) -> Res<RoundResult> {
    let n = tree.counties.len();
    let barrier = Arc::new(Barrier::new(n));
    let released = Instant::now();
    // Commits report as they return, so that watching starts with the first one.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let commits: Vec<_> = tree
        .counties
        .iter()
        .enumerate()
        .map(|(i, (c, node))| {
            let (c, l, barrier, done_tx) =
                (*c, node.ledger().clone(), barrier.clone(), done_tx.clone());
            let hs = &households[i];
            let h = hs[round % hs.len()].clone();
            tokio::task::spawn_blocking(move || -> Res<()> {
                let record = signal(format!("RB{c}-{round}"), &h, round, TODAY);
                barrier.wait();
                l.apply(&[Change::Put(record)], TODAY)?;
                let at = Instant::now();
                let _ = done_tx.send((i, at, block(&l, c, week)));
                Ok(())
            })
        })
        .collect();
    drop(done_tx);

    let mut pending: Vec<Pending> = Vec::new();
    let mut result = RoundResult::default();
    let (city, province) = (tree.city.ledger(), tree.province.ledger());
    let mut returned = 0;
    while returned < n || !pending.is_empty() {
        while let Ok((i, at, want)) = done_rx.try_recv() {
            pending.push((i, at, want, false));
            returned += 1;
            if returned == n {
                result.commit_span_ms = released.elapsed().as_secs_f64() * 1e3;
            }
        }
        let now = Instant::now();
        let mut late = Vec::new();
        pending.retain_mut(|(i, at, want, at_city)| {
            let c = tree.counties[*i].0;
            let ms = now.duration_since(*at).as_secs_f64() * 1e3;
            if !*at_city && block(city, c, week) == *want {
                *at_city = true;
                result.city_ms.push(ms);
            }
            if block(province, c, week) == *want {
                result.province_ms.push(ms);
                return false;
            }
            if now.duration_since(*at) > DEADLINE {
                late.push(c.to_string());
            }
            true
        });
        if !late.is_empty() {
            return Err(format!(
                "{} round {round}: the commits of {} did not reach the province within {DEADLINE:?}",
                tree.mode.name(),
                late.join(", ")
            )
            .into());
        }
        if returned < n && released.elapsed() > DEADLINE {
            return Err(format!("{} round {round}: commits stuck", tree.mode.name()).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for c in commits {
        c.await??;
    }
    wait_until("the tree settles", Duration::from_millis(5), || {
        tree.settled()
    })
    .await?;
    Ok(result)
}

// ------------------------------------------------------------------------------------------
// Statistics and report
// ------------------------------------------------------------------------------------------

/// The `p` quantile of sorted values (NaN when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latencies of one mode over all rounds.
#[derive(Default)]
struct Collected {
    province_ms: Vec<f64>,
    city_ms: Vec<f64>,
    commit_span_ms: Vec<f64>,
}

impl Collected {
    fn add(&mut self, r: RoundResult) {
        self.province_ms.extend(r.province_ms);
        self.city_ms.extend(r.city_ms);
        self.commit_span_ms.push(r.commit_span_ms);
    }

    fn sort(&mut self) {
        self.province_ms.sort_by(f64::total_cmp);
        self.city_ms.sort_by(f64::total_cmp);
        self.commit_span_ms.sort_by(f64::total_cmp);
    }

    fn p99(&self) -> f64 {
        percentile(&self.province_ms, 0.99)
    }

    fn json(&self) -> serde_json::Value {
        let r = |v: f64| (v * 100.0).round() / 100.0;
        json!({
            "samples": self.province_ms.len(),
            "p50_ms": r(percentile(&self.province_ms, 0.5)),
            "p99_ms": r(self.p99()),
            "max_ms": r(self.province_ms.last().copied().unwrap_or(f64::NAN)),
            "city_p50_ms": r(percentile(&self.city_ms, 0.5)),
            "city_p99_ms": r(percentile(&self.city_ms, 0.99)),
            "city_max_ms": r(self.city_ms.last().copied().unwrap_or(f64::NAN)),
            "commit_span_p50_ms": r(percentile(&self.commit_span_ms, 0.5)),
        })
    }
}

fn summary(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} max {:.1}",
        percentile(&s, 0.5),
        s.last().copied().unwrap_or(f64::NAN)
    )
}

/// A commit being timed: county index, when its apply returned, its week block after the
/// commit, and whether the city already holds it.
type Pending = (usize, Instant, Vec<(CellKey, i64)>, bool);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let n_counties = env_usize("BENCH_COUNTIES", 8);
    let rounds = env_usize("BENCH_ROUNDS", 20);
    let households_per_county = env_usize("BENCH_HOUSEHOLDS", 200);
    if !(1..=98).contains(&n_counties) || rounds == 0 || households_per_county == 0 {
        return Err("BENCH_COUNTIES must be 1–98, BENCH_ROUNDS and BENCH_HOUSEHOLDS ≥ 1".into());
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let counties: Vec<Code> = (0..n_counties)
        .map(|i| code(&format!("{CITY}{:02}", i + 2)))
        .collect::<Res<_>>()?;

    // Same data for both trees.
    let files = dir.join("files");
    {
        let (files, counties) = (files.clone(), counties.clone());
        let h = households_per_county as u32;
        tokio::task::spawn_blocking(move || generate(&files, &counties, h)).await??;
    }

    let mut pki = Pki::open_or_init(&dir.join("pki"), "bench")?;
    let mut trees = Vec::new();
    for mode in [Mode::Direct, Mode::Relay] {
        let tree = Tree::start(dir, &mut pki, mode, &counties).await?;
        let ledgers: Vec<Arc<Ledger>> = tree
            .counties
            .iter()
            .map(|(_, n)| n.ledger().clone())
            .collect();
        let files = files.clone();
        tokio::task::spawn_blocking(move || import(&ledgers, &files)).await??;
        trees.push(tree);
    }
    for tree in &trees {
        let secs = wait_until(
            "the province holds every county's cells",
            Duration::from_millis(50),
            || tree.holds_every_county(),
        )
        .await?;
        wait_until("the tree settles", Duration::from_millis(5), || {
            tree.settled()
        })
        .await?;
        eprintln!(
            "{}: imported and converged ({} cells at the province, {secs:.1} s after the last import)",
            tree.mode.name(),
            tree.province.ledger().all_cells()?.len()
        );
    }
    let setup_secs = started.elapsed().as_secs_f64();

    let week = Period::containing(Kind::Week, TODAY);
    // The households each county's signals go to (the same in both trees).
    let hh: Vec<Vec<String>> = trees[0]
        .counties
        .iter()
        .map(|(_, n)| households(n.ledger(), 64))
        .collect();
    if hh.iter().any(|h| h.is_empty()) {
        return Err("a county without households".into());
    }
    let mut collected = [Collected::default(), Collected::default()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for t in order {
            let tree = &trees[t];
            let r = measure(tree, round, week, &hh).await?;
            eprintln!(
                "round {:>2} {:<6}: commits returned in {:5.1} ms; → city {}, → province {} ms",
                round + 1,
                tree.mode.name(),
                r.commit_span_ms,
                summary(&r.city_ms),
                summary(&r.province_ms),
            );
            collected[t].add(r);
        }
    }
    for c in &mut collected {
        c.sort();
    }
    let [direct, relay] = &collected;
    let ratio = relay.p99() / direct.p99();
    let met = ratio <= TARGET_RATIO;
    eprintln!(
        "county commit → province p99: direct {:.1} ms, relay {:.1} ms, ratio {ratio:.2} (target ≤ {TARGET_RATIO}: {})",
        direct.p99(),
        relay.p99(),
        if met { "met" } else { "missed" }
    );
    let report = json!({
        "benchmark": "relay",
        "date": bottomline::period::today_in_china().to_string(),
        "counties": n_counties,
        "rounds": rounds,
        "households": households_per_county,
        "direct": direct.json(),
        "relay": relay.json(),
        "ratio_p99_relay_over_direct": (ratio * 1000.0).round() / 1000.0,
        "target_ratio": TARGET_RATIO,
        "target_met": met,
        "setup_secs": (setup_secs * 10.0).round() / 10.0,
        "total_secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);

    for tree in trees {
        tree.shutdown().await?;
    }
    Ok(())
}
