//! Security benchmark (issue #15, point 8): sync intake at the province, mutual TLS versus
//! plaintext (target: mTLS ≥ 0.8× the plaintext throughput).
//!
//! What is measured is the cost of the mTLS links as they exist today. The relay and signed
//! envelopes (issue #15's other points) are not built yet and are not part of it.
//!
//! 1. **Setup (not measured).** A province is generated (seed 15, `BENCH_CITIES` cities,
//!    default 10, `BENCH_COUNTIES` counties, default 107, `BENCH_HOUSEHOLDS` households per
//!    county, default 1 000). The cities (listening, no parent) and the counties (dialling
//!    their city, plaintext) run in this process; every county is imported (on 2 threads), and
//!    once every city has made each county's whole change log durable, the counties and the
//!    cities are stopped. Every node certificate is issued here, by a CA the benchmark makes in
//!    its temp dir.
//! 2. **Intake (measured).** In each of `BENCH_ROUNDS` rounds (default 3) both modes are
//!    measured, alternating which goes first: a province starts on a fresh data dir (mTLS or
//!    plaintext), the cities' stores are opened on their data dirs with the province as parent
//!    (same mode), and the time is taken from the start of the cities' run tasks until the
//!    province has made every city's whole change log durable (its `child_acked(city)` has
//!    reached the city's durable head). Throughput is the cells the cities ship (their whole
//!    change logs from floor 0: every cell of their subtrees, zeros included) per second.
//!    Then the province's replica of two cities (rotating) is checked against the cities' own
//!    cells and everything is stopped.
//!
//! Everything shares the machine's cores, so the figure is the whole pipeline — TLS, HTTP/2,
//! the province applying, aggregating and flushing replicas — with and without encryption.
//! Prints one JSON object on stdout (per round and mode: seconds, cells/s, CPU seconds; the
//! medians; their ratio and whether the target holds; peak RSS) and a summary on stderr.
//! Reports; never fails on a target, but exits non-zero when the data is wrong. Run with
//! `cargo bench -p bottomline --bench security`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::gen::{GenOptions, GenScope};
use bottomline::ledger::Ledger;
use jiff::civil::{date, Date};
use serde_json::json;

mod common;
use common::{
    peak_rss_mib, prepare_node, rss_mib, start_node, start_node_with, tls_files, Res, Running,
};

const TODAY: Date = date(2026, 11, 24);
const GEN_END: Date = date(2026, 11, 20);
const SEED: u64 = 15;
const RATIO_TARGET: f64 = 0.8;

/// CPU seconds of this process so far (user + system).
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    common::percentile(&v, 0.5)
}

/// The two transports compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Mtls,
    Plain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Mtls => "mtls",
            Mode::Plain => "plaintext",
        }
    }
}

/// One measured intake.
struct Sample {
    seconds: f64,
    linked_s: f64,
    cpu_s: f64,
    cells_per_s: f64,
    province_cells: usize,
    province_log_head: u64,
    rss_mib: Option<f64>,
}

/// Cells a node ships to a new parent: its whole change log swept from floor 0.
fn cells_to_ship(l: &Ledger) -> Res<u64> {
    let (mut pos, mut n) = (0, 0u64);
    loop {
        let s = l.sweep(0, pos, 1000)?;
        n += s.cells.len() as u64;
        pos = s.pos;
        if s.complete {
            return Ok(n);
        }
    }
}

/// Everything one intake needs.
struct Setup {
    tmp: PathBuf,
    data: PathBuf,
    pki: PathBuf,
    province: Code,
    cities: Vec<Code>,
    /// Each city's durable change-log head after the setup.
    heads: HashMap<Code, u64>,
    /// Cells the cities ship to a new parent, in all.
    cells: u64,
}

/// Province in `mode` on a fresh data dir, the cities on theirs dialling it; timed from the
/// cities' start to the province holding every city's whole log durably. `check` are the
/// cities whose replicas are compared with their own cells afterwards.
async fn intake(setup: &Setup, mode: Mode, round: usize, check: &[Code]) -> Res<Sample> {
    let pki = (mode == Mode::Mtls).then_some(setup.pki.as_path());
    let prov_dir = setup.tmp.join(format!("province-{round}-{}", mode.name()));
    let prov = start_node_with(&prov_dir, setup.province, None, true, pki).await?;
    let url = prov.url()?;
    let mut prepared = Vec::new();
    for &c in &setup.cities {
        let p = prepare_node(&setup.data, c, Some(url.clone()), false, pki).await?;
        let head = p.handle().ledger.durable_seq();
        if head != setup.heads[&c] {
            return Err(format!(
                "city {c} reopened at log head {head}, not {}",
                setup.heads[&c]
            )
            .into());
        }
        prepared.push(p);
    }
    let pl = prov.handle.ledger.clone();
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let cities: Vec<Running> = prepared.into_iter().map(|p| p.run()).collect();
    let mut linked_s = None;
    let mut last_note = Instant::now();
    let seconds = loop {
        if linked_s.is_none()
            && cities
                .iter()
                .all(|n| n.handle.uplink.lock().map(|u| u.connected).unwrap_or(false))
        {
            linked_s = Some(t0.elapsed().as_secs_f64());
        }
        let mut done = true;
        for c in &setup.cities {
            if pl.child_acked(*c)? < setup.heads[c] {
                done = false;
                break;
            }
        }
        if done {
            break t0.elapsed().as_secs_f64();
        }
        if t0.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{} intake not done within 1800 s", mode.name()).into());
        }
        if last_note.elapsed() > Duration::from_secs(30) {
            last_note = Instant::now();
            eprintln!(
                "  … {} intake: {:.0} s",
                mode.name(),
                t0.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let cpu_s = cpu_secs() - cpu0;
    let linked_s = linked_s.unwrap_or(seconds);
    let rss = rss_mib();

    // The data: the province's replica of each checked city equals the city's own cells.
    let city_ledgers: Vec<Arc<Ledger>> = cities
        .iter()
        .filter(|n| check.contains(&n.handle.ledger.division()))
        .map(|n| n.handle.ledger.clone())
        .collect();
    let p = pl.clone();
    let (province_cells, province_log_head) =
        tokio::task::spawn_blocking(move || -> Res<(usize, u64)> {
            let all = p.all_cells()?;
            for city in &city_ledgers {
                let code = city.division();
                let own = city.all_cells()?;
                let replica: BTreeMap<_, _> = all
                    .iter()
                    .filter(|(k, _)| code.contains(k.division))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                if own != replica {
                    let differ = own
                        .iter()
                        .filter(|(k, v)| replica.get(k) != Some(v))
                        .count()
                        + replica.keys().filter(|k| !own.contains_key(k)).count();
                    return Err(format!(
                        "the province's cells of city {code} differ from the city's own: {} there, {} at the city, {differ} differing",
                        replica.len(),
                        own.len()
                    )
                    .into());
                }
            }
            Ok((all.len(), p.durable_seq()))
        })
        .await??;
    drop(pl);
    for n in cities {
        n.shutdown().await?;
    }
    prov.shutdown().await?;
    std::fs::remove_dir_all(&prov_dir)?;
    Ok(Sample {
        seconds,
        linked_s,
        cpu_s,
        cells_per_s: setup.cells as f64 / seconds,
        province_cells,
        province_log_head,
        rss_mib: rss,
    })
}

fn sample_json(s: &Sample) -> serde_json::Value {
    json!({
        "seconds": s.seconds,
        "cells_per_s": s.cells_per_s,
        "all_cities_linked_s": s.linked_s,
        "cpu_s": s.cpu_s,
        "province_nonzero_cells": s.province_cells,
        "province_log_head": s.province_log_head,
        "rss_mib_at_end_of_intake": s.rss_mib,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let n_cities = common::env_or::<u32>("BENCH_CITIES", 10);
    let n_counties = common::env_or::<u32>("BENCH_COUNTIES", 107);
    let households_per_county = common::env_or::<u32>("BENCH_HOUSEHOLDS", 1000);
    let rounds = common::env_or::<u32>("BENCH_ROUNDS", 3) as usize;
    let tmp = tempfile::tempdir()?;
    let files = tmp.path().join("files");
    let data = tmp.path().join("nodes");
    let pki = tmp.path().join("pki");
    let started = Instant::now();

    let summary = bottomline::gen::generate(
        &GenOptions {
            seed: SEED,
            out: files.clone(),
            scope: GenScope::Province {
                code: "61".into(),
                cities: n_cities,
                counties: n_counties,
            },
            end: GEN_END,
            households_per_county: (households_per_county > 0).then_some(households_per_county),
        },
        &mut |_| {},
    )?;
    let generate_s = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} counties, {} households in {generate_s:.1} s",
        summary.counties.len(),
        summary.households,
    );

    // 1. Setup: the cities hold their counties' whole logs.
    let province = Code::parse("61")?;
    let counties: Vec<Code> = summary
        .counties
        .iter()
        .map(|c| Code::parse(c))
        .collect::<Result<_, _>>()?;
    let mut cities: Vec<Code> = counties.iter().filter_map(|c| c.parent()).collect();
    cities.sort();
    cities.dedup();
    for &c in std::iter::once(&province).chain(&cities) {
        tls_files(&pki, c)?;
    }
    let mut city_nodes: HashMap<Code, Running> = HashMap::new();
    for &c in &cities {
        city_nodes.insert(c, start_node(&data, c, None, true).await?);
    }
    let mut county_nodes: Vec<Running> = Vec::new();
    for &c in &counties {
        let city = c.parent().ok_or("county without city")?;
        let url = city_nodes[&city].url()?;
        county_nodes.push(start_node(&data, c, Some(url), false).await?);
    }
    let t_import = Instant::now();
    let records = Arc::new(AtomicU64::new(0));
    {
        let ledgers: Vec<Arc<Ledger>> = county_nodes
            .iter()
            .map(|n| n.handle.ledger.clone())
            .collect();
        let (files, records) = (files.clone(), records.clone());
        tokio::task::spawn_blocking(move || common::import_all(&ledgers, &files, TODAY, &records))
            .await??;
    }
    let import_s = t_import.elapsed().as_secs_f64();
    let t_settle = Instant::now();
    let mut last_note = Instant::now();
    loop {
        let mut done = true;
        for n in &county_nodes {
            let l = &n.handle.ledger;
            let city = &city_nodes[&l.division().parent().ok_or("county without city")?];
            if city.handle.ledger.child_acked(l.division())? < l.durable_seq() {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        if t_settle.elapsed() > Duration::from_secs(1800) {
            return Err("the cities did not take in their counties within 1800 s".into());
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            last_note = Instant::now();
            eprintln!(
                "  … setup: waiting for the cities ({:.0} s)",
                t_settle.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settle_s = t_settle.elapsed().as_secs_f64();
    for n in county_nodes {
        n.shutdown().await?;
    }
    let mut heads = HashMap::new();
    let mut cells = 0;
    for &c in &cities {
        let l = city_nodes[&c].handle.ledger.clone();
        heads.insert(c, l.durable_seq());
        cells += tokio::task::spawn_blocking(move || cells_to_ship(&l)).await??;
    }
    for (_, n) in city_nodes {
        n.shutdown().await?;
    }
    let setup_rss = peak_rss_mib();
    eprintln!(
        "imported {} records into {} counties in {import_s:.1} s; the cities held them {settle_s:.1} s later; {cells} cells to ship from {} cities",
        records.load(Ordering::SeqCst),
        counties.len(),
        cities.len()
    );

    // 2. Intake at a fresh province, both modes per round, alternating which goes first.
    let setup = Setup {
        tmp: tmp.path().to_path_buf(),
        data,
        pki,
        province,
        cities: cities.clone(),
        heads,
        cells,
    };
    let mut per_round = Vec::new();
    let (mut mtls, mut plain) = (Vec::new(), Vec::new());
    let mut checked: Vec<String> = Vec::new();
    let mut province_cells = None;
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Mode::Mtls, Mode::Plain]
        } else {
            [Mode::Plain, Mode::Mtls]
        };
        let n = cities.len();
        let mut check = vec![cities[round % n], cities[(round + n / 2) % n]];
        check.dedup();
        checked.extend(check.iter().map(|c| c.to_string()));
        let mut this = serde_json::Map::new();
        this.insert("round".into(), json!(round));
        this.insert("first".into(), json!(order[0].name()));
        this.insert(
            "checked_cities".into(),
            json!(check.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
        let mut rates = HashMap::new();
        for mode in order {
            let s = intake(&setup, mode, round, &check).await?;
            // Every intake ends with the same province.
            match province_cells {
                None => province_cells = Some((s.province_cells, s.province_log_head)),
                Some(p) if p == (s.province_cells, s.province_log_head) => {}
                Some(p) => {
                    return Err(format!(
                        "{} intake of round {round}: {} cells at log head {} at the province, earlier {} at {}",
                        mode.name(),
                        s.province_cells,
                        s.province_log_head,
                        p.0,
                        p.1
                    )
                    .into())
                }
            }
            eprintln!(
                "round {round} {:>9}: {:.2} s, {:.0} cells/s (all cities linked at {:.3} s; CPU {:.1} s)",
                mode.name(),
                s.seconds,
                s.cells_per_s,
                s.linked_s,
                s.cpu_s
            );
            rates.insert(mode, s.cells_per_s);
            this.insert(mode.name().into(), sample_json(&s));
            match mode {
                Mode::Mtls => mtls.push(s),
                Mode::Plain => plain.push(s),
            }
        }
        this.insert(
            "ratio_mtls_over_plaintext".into(),
            json!(rates[&Mode::Mtls] / rates[&Mode::Plain]),
        );
        per_round.push(serde_json::Value::Object(this));
    }
    let rate = |v: &[Sample]| median(&v.iter().map(|s| s.cells_per_s).collect::<Vec<_>>());
    let secs = |v: &[Sample]| median(&v.iter().map(|s| s.seconds).collect::<Vec<_>>());
    let cpu = |v: &[Sample]| median(&v.iter().map(|s| s.cpu_s).collect::<Vec<_>>());
    let (m_rate, p_rate) = (rate(&mtls), rate(&plain));
    let ratio = m_rate / p_rate;
    let peak = peak_rss_mib();
    let (prov_cells, prov_head) = province_cells.unwrap_or_default();
    eprintln!(
        "median: mTLS {m_rate:.0} cells/s ({:.2} s), plaintext {p_rate:.0} cells/s ({:.2} s); ratio {ratio:.2} (target ≥ {RATIO_TARGET}: {}); CPU {:.1} vs {:.1} s; peak RSS {:.0} MiB; total {:.0} s",
        secs(&mtls),
        secs(&plain),
        if ratio >= RATIO_TARGET { "met" } else { "MISSED" },
        cpu(&mtls),
        cpu(&plain),
        peak.unwrap_or(f64::NAN),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "benchmark": "security",
            "measures": "sync intake at the province from its cities' whole logs, mTLS vs plaintext",
            "not_measured": "relay, signed envelopes (not built yet)",
            "seed": SEED,
            "cities": cities.len(),
            "counties": counties.len(),
            "households_per_county": households_per_county,
            "households": summary.households,
            "records_imported": records.load(Ordering::SeqCst),
            "setup": {"generate_s": generate_s, "import_s": import_s, "cities_held_counties_s": settle_s},
            "cells_shipped_per_intake": cells,
            "province_nonzero_cells": prov_cells,
            "province_log_head": prov_head,
            "rounds": per_round,
            "median": {
                "mtls_cells_per_s": m_rate,
                "plaintext_cells_per_s": p_rate,
                "mtls_s": secs(&mtls),
                "plaintext_s": secs(&plain),
                "mtls_cpu_s": cpu(&mtls),
                "plaintext_cpu_s": cpu(&plain),
            },
            "ratio_mtls_over_plaintext": ratio,
            "target_ratio": RATIO_TARGET,
            "target_met": ratio >= RATIO_TARGET,
            "data_checked": {"cities": checked, "ok": true},
            "peak_rss_mib": {"after_setup": setup_rss, "end": peak},
            "total_s": started.elapsed().as_secs_f64(),
        }))?
    );
    Ok(())
}
