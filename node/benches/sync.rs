//! Sync benchmark (issue #3, point 9): a Shaanxi-size tree on one machine.
//!
//! 1 province, 10 cities and 107 counties run in this process, each with its own sled store,
//! over real gRPC on 127.0.0.1. Every county dials its city through a byte-counting TCP proxy
//! that the benchmark can cut. Base data: every county gets generated data
//! (`BENCH_HOUSEHOLDS` households per county, default 3 000; 0 = realistic ~65 000) imported
//! while the tree runs, then the tree converges.
//!
//! 1. **Commit → province latency under a burst**: in each of `BENCH_ROUNDS` rounds (default
//!    10) all 107 counties commit at once (5 new risk signals and 1 measure each, one durable
//!    `Ledger::apply`); for each county the time from its commit returning to the province's
//!    replica of that county's week block equalling the county's is recorded. p50/p99/max.
//! 2. **Bytes per changed cell**: bytes the counties sent through their proxies during the
//!    bursts (gRPC, HTTP/2 and heartbeats included) divided by the cell updates the bursts made
//!    at the counties (a cell changed in each of the rounds counts once per round).
//! 3. **Catch-up after 30 days offline**: one county's link is cut; 30 days of changes are
//!    committed there (one apply per day: signals, measures, household corrections); then the
//!    link heals. Time from the link re-established to the city's durable ack of everything
//!    and to the province reflecting every changed block; bytes through the proxy versus the
//!    encoded size of the changed cells (target ≤ 2 s and ≤ 2×).
//!
//! Prints one JSON object on stdout and a summary on stderr. Reports; never fails on a
//! target. Run with `cargo bench -p bottomline --bench sync`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::domain::{
    Cents, Measure, MeasureType, Record, RecordKind, Signal, SignalSource, SignalType,
};
use bottomline::gen::{GenOptions, GenScope};
use bottomline::ledger::{Change, Ledger};
use bottomline::period::{Kind, Period};
use bottomline::stats::CellSource;
use jiff::civil::{date, Date};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod common;
use common::{percentile, start_node, Res, Running};

const TODAY: Date = date(2026, 11, 24);
const GEN_END: Date = date(2026, 11, 20);
const CITIES: u32 = 10;
const COUNTIES: u32 = 107;
const LATENCY_P99_TARGET_MS: f64 = 1000.0;
const CATCHUP_SECS_TARGET: f64 = 2.0;
const CATCHUP_BYTES_TARGET: f64 = 2.0;

/// A TCP proxy that counts bytes each way and can be cut (drops live connections, refuses
/// new ones) and healed.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Res<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (cut, cut_rx) = watch::channel(false);
        let (u, d) = (up.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, u.clone(), cut_rx.clone()));
                tokio::spawn(pipe(sr, cw, d.clone(), cut_rx.clone()));
            }
        });
        Ok(Proxy {
            addr,
            up,
            down,
            cut,
        })
    }

    fn bytes(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
        )
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = from.read(&mut buf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ = async { cut.wait_for(|c| *c).await.map(|_| ()) } => return,
        }
    }
}

/// Every node's parent has made its whole change log durable.
fn converged(nodes: &HashMap<Code, Running>) -> bool {
    nodes.iter().all(
        |(code, n)| match code.parent().and_then(|p| nodes.get(&p)) {
            Some(parent) => {
                parent.handle.ledger.child_acked(*code).unwrap_or(0)
                    >= n.handle.ledger.durable_seq()
            }
            None => true,
        },
    )
}

async fn wait_converged(nodes: &HashMap<Code, Running>, what: &str) -> f64 {
    let t = Instant::now();
    let mut last = Instant::now();
    while !converged(nodes) {
        if last.elapsed() > Duration::from_secs(10) {
            last = Instant::now();
            eprintln!(
                "  … {what}: waiting for convergence ({:.0} s)",
                t.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.elapsed().as_secs_f64()
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

fn measure(id: String, household: &str, i: usize, day: Date) -> Record {
    Record::Measure(Measure {
        id,
        household_code: household.to_string(),
        kind: MeasureType::from_code(1 + (i % 9) as u8).unwrap_or(MeasureType::Other),
        date: day,
        amount: Cents(50_000 + i as i64 * 11),
    })
}

/// The non-zero cells of (division, period) as a map.
fn block(l: &Ledger, division: Code, period: Period) -> Vec<(bottomline::stats::CellKey, i64)> {
    l.cells_of(division, period).unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let households_per_county = common::env_or::<u32>("BENCH_HOUSEHOLDS", 3000);
    let rounds = common::env_or::<u32>("BENCH_ROUNDS", 10) as usize;
    let tmp = tempfile::tempdir()?;
    let files: PathBuf = tmp.path().join("files");
    let data = tmp.path().join("nodes");
    let started = Instant::now();

    let summary = bottomline::gen::generate(
        &GenOptions {
            seed: 11,
            out: files.clone(),
            scope: GenScope::Province {
                code: "61".into(),
                cities: CITIES,
                counties: COUNTIES,
            },
            end: GEN_END,
            households_per_county: (households_per_county > 0).then_some(households_per_county),
        },
        &mut |_| {},
    )?;
    eprintln!(
        "generated {} counties, {} households in {:.1} s",
        summary.counties.len(),
        summary.households,
        started.elapsed().as_secs_f64()
    );

    // The tree: province, cities, counties (through proxies).
    let province = Code::parse("61")?;
    let counties: Vec<Code> = summary
        .counties
        .iter()
        .map(|c| Code::parse(c))
        .collect::<Result<_, _>>()?;
    let mut cities: Vec<Code> = counties.iter().filter_map(|c| c.parent()).collect();
    cities.dedup();
    let mut nodes: HashMap<Code, Running> = HashMap::new();
    let p = start_node(&data, province, None, true).await?;
    let p_addr = p.addr.ok_or("province address")?;
    nodes.insert(province, p);
    for &c in &cities {
        let n = start_node(&data, c, Some(format!("http://{p_addr}")), true).await?;
        nodes.insert(c, n);
    }
    let mut proxies: HashMap<Code, Proxy> = HashMap::new();
    for &c in &counties {
        let city = c.parent().ok_or("county without city")?;
        let proxy = Proxy::start(nodes[&city].addr.ok_or("city address")?).await?;
        let n = start_node(&data, c, Some(format!("http://{}", proxy.addr)), false).await?;
        proxies.insert(c, proxy);
        nodes.insert(c, n);
    }

    // Base data, imported while the tree runs.
    let t_import = Instant::now();
    let county_ledgers: Vec<Arc<Ledger>> = counties
        .iter()
        .map(|c| nodes[c].handle.ledger.clone())
        .collect();
    let records = Arc::new(AtomicU64::new(0));
    {
        let files = files.clone();
        let records = records.clone();
        tokio::task::spawn_blocking(move || {
            common::import_all(&county_ledgers, &files, TODAY, &records)
        })
        .await??;
    }
    let import_secs = t_import.elapsed().as_secs_f64();
    let settle_secs = wait_converged(&nodes, "base data").await;
    let province_cells = nodes[&province].handle.ledger.all_cells()?.len();
    eprintln!(
        "imported {} records into {} counties in {import_secs:.1} s; tree converged {settle_secs:.1} s later ({province_cells} non-zero cells at the province)",
        records.load(Ordering::SeqCst),
        counties.len()
    );

    // 1 + 2: bursts at all counties.
    let week = Period::containing(Kind::Week, TODAY);
    let hh: HashMap<Code, Vec<String>> = counties
        .iter()
        .map(|c| (*c, households(&nodes[c].handle.ledger, 64)))
        .collect();
    let bytes_before: u64 = proxies.values().map(|p| p.bytes().0).sum();
    let mut latencies_ms: Vec<f64> = Vec::new();
    let mut city_latencies_ms: Vec<f64> = Vec::new();
    let mut commit_spans_ms: Vec<f64> = Vec::new();
    let p_ledger = nodes[&province].handle.ledger.clone();
    let mut burst_cells = 0usize;
    for round in 0..rounds {
        let round_heads: HashMap<Code, u64> = counties
            .iter()
            .map(|c| (*c, nodes[c].handle.ledger.durable_seq()))
            .collect();
        let burst_start = Instant::now();
        // Commits report as they return, so the watch below starts with the first one.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let commits: Vec<_> = counties
            .iter()
            .map(|&c| {
                let l = nodes[&c].handle.ledger.clone();
                let hs = hh[&c].clone();
                let done_tx = done_tx.clone();
                tokio::task::spawn_blocking(move || -> Res<()> {
                    let mut changes = Vec::new();
                    for i in 0..5 {
                        let h = &hs[(round * 5 + i) % hs.len()];
                        changes.push(Change::Put(signal(
                            format!("B{c}-{round}-{i}"),
                            h,
                            round * 5 + i,
                            TODAY,
                        )));
                    }
                    let h = &hs[round % hs.len()];
                    changes.push(Change::Put(measure(
                        format!("BM{c}-{round}"),
                        h,
                        round,
                        TODAY,
                    )));
                    l.apply(&changes, TODAY)?;
                    let at = Instant::now();
                    let _ = done_tx.send((c, at, block(&l, c, week), false));
                    Ok(())
                })
            })
            .collect();
        drop(done_tx);
        // (county, commit returned, its week block after the commit, seen at the city)
        let mut pending: Vec<(Code, Instant, Vec<_>, bool)> = Vec::new();
        let mut returned = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while returned < counties.len() || !pending.is_empty() {
            while let Ok(p) = done_rx.try_recv() {
                pending.push(p);
                returned += 1;
                if returned == counties.len() {
                    commit_spans_ms.push(burst_start.elapsed().as_secs_f64() * 1e3);
                }
            }
            let now = Instant::now();
            pending.retain_mut(|(c, at, want, at_city)| {
                if !*at_city {
                    let city = &nodes[&c.parent().unwrap_or(*c)].handle.ledger;
                    if block(city, *c, week) == *want {
                        *at_city = true;
                        city_latencies_ms.push(now.duration_since(*at).as_secs_f64() * 1e3);
                    }
                }
                if *at_city && block(&p_ledger, *c, week) == *want {
                    latencies_ms.push(now.duration_since(*at).as_secs_f64() * 1e3);
                    false
                } else {
                    true
                }
            });
            if Instant::now() > deadline {
                return Err(
                    format!("{} counties never reached the province", pending.len()).into(),
                );
            }
            // 5 ms: finer polling of 214 blocks would take CPU from the nodes being measured.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for c in commits {
            c.await??;
        }
        wait_converged(&nodes, "burst").await;
        // The cell updates this round made at the counties (a cell changed in every round
        // counts every round: each update travels).
        for c in &counties {
            let h = round_heads[c];
            burst_cells += nodes[c].handle.ledger.sweep(h, h, usize::MAX)?.cells.len();
        }
    }
    let burst_bytes: u64 = proxies.values().map(|p| p.bytes().0).sum::<u64>() - bytes_before;
    latencies_ms.sort_by(f64::total_cmp);
    city_latencies_ms.sort_by(f64::total_cmp);
    commit_spans_ms.sort_by(f64::total_cmp);
    let city_p50 = percentile(&city_latencies_ms, 0.5);
    let city_p99 = percentile(&city_latencies_ms, 0.99);
    let span_p50 = percentile(&commit_spans_ms, 0.5);
    let p50 = percentile(&latencies_ms, 0.5);
    let p99 = percentile(&latencies_ms, 0.99);
    let max = latencies_ms.last().copied().unwrap_or(f64::NAN);
    let bytes_per_cell = burst_bytes as f64 / burst_cells.max(1) as f64;
    eprintln!(
        "burst: {} commits (all 107 counties commit in {span_p50:.0} ms, median round), latency county commit → city p50 {city_p50:.1} ms p99 {city_p99:.1} ms, → province p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (target p99 ≤ {LATENCY_P99_TARGET_MS} ms); {burst_bytes} bytes for {burst_cells} changed cells = {bytes_per_cell:.1} bytes/cell",
        latencies_ms.len()
    );

    // 3: one county offline for 30 days of changes, then catch-up.
    let x = counties[counties.len() / 2];
    let xl = nodes[&x].handle.ledger.clone();
    let city = x.parent().ok_or("county without city")?;
    let proxy = &proxies[&x];
    let _ = proxy.cut.send(true);
    let uplink = nodes[&x].handle.uplink.clone();
    let t_cut = Instant::now();
    while uplink.lock().map(|u| u.connected).unwrap_or(true) {
        if t_cut.elapsed() > Duration::from_secs(30) {
            return Err("the cut county still shows its link up".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h0 = xl.durable_seq();
    let floor = nodes[&city].handle.ledger.child_acked(x)?;
    let xh = households(&xl, 400);
    let mut offline_records = 0;
    for d in 0..30i64 {
        let day = TODAY.checked_sub(jiff::Span::new().days(29 - d))?;
        let mut changes = Vec::new();
        for i in 0..12 {
            let n = d as usize * 12 + i;
            changes.push(Change::Put(signal(
                format!("OFF{x}-{n}"),
                &xh[n % xh.len()],
                n,
                day,
            )));
        }
        for i in 0..10 {
            let n = d as usize * 10 + i;
            changes.push(Change::Put(measure(
                format!("OFFM{x}-{n}"),
                &xh[(n * 7) % xh.len()],
                n,
                day,
            )));
        }
        // Two household corrections a day (members re-counted).
        for i in 0..2 {
            let code = &xh[(d as usize * 2 + i) % xh.len()];
            if let Some(Record::Household(mut h)) = xl.get(RecordKind::Household, code)? {
                h.members = h.members % 8 + 1;
                changes.push(Change::Put(Record::Household(h)));
            }
        }
        offline_records += changes.len();
        xl.apply(&changes, TODAY)?;
    }
    let changed = xl.sweep(floor, floor, usize::MAX)?;
    let changed_cells = changed.cells.len();
    let encoded = bottomline::rpc::encoded_cells_len(&changed.cells);
    let changed_blocks: Vec<(Code, Period)> = {
        let mut v: Vec<_> = changed
            .cells
            .iter()
            .map(|(k, _)| (k.division, k.period))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(xl.durable_seq(), changed.pos.max(h0));
    let (up0, down0) = proxy.bytes();
    let t_heal = Instant::now();
    let _ = proxy.cut.send(false);
    let connected = Arc::new(AtomicBool::new(false));
    let mut t_linked = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let head = xl.durable_seq();
    let city_ledger = nodes[&city].handle.ledger.clone();
    let mut t_city = None;
    let mut t_province = None;
    while t_province.is_none() {
        if t_linked.is_none() && uplink.lock().map(|u| u.connected).unwrap_or(false) {
            t_linked = Some(Instant::now());
            connected.store(true, Ordering::SeqCst);
        }
        if t_city.is_none() && city_ledger.child_acked(x)? >= head {
            t_city = Some(Instant::now());
        }
        if t_city.is_some()
            && changed_blocks
                .iter()
                .all(|&(d, per)| block(&p_ledger, d, per) == block(&xl, d, per))
        {
            t_province = Some(Instant::now());
        }
        if Instant::now() > deadline {
            return Err("the county never caught up".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (up1, down1) = proxy.bytes();
    let linked = t_linked.unwrap_or(t_heal);
    let reconnect_ms = linked.duration_since(t_heal).as_secs_f64() * 1e3;
    let catchup_city_s = t_city.map_or(f64::NAN, |t| t.duration_since(linked).as_secs_f64());
    let catchup_province_s =
        t_province.map_or(f64::NAN, |t| t.duration_since(linked).as_secs_f64());
    let catchup_up = up1 - up0;
    let catchup_down = down1 - down0;
    let bytes_ratio = catchup_up as f64 / encoded.max(1) as f64;
    eprintln!(
        "catch-up of {x} after {offline_records} records over 30 days offline: {changed_cells} changed cells in {} blocks ({encoded} bytes encoded); reconnect {reconnect_ms:.0} ms after heal, then city acked all in {catchup_city_s:.3} s, province reflects all in {catchup_province_s:.3} s (target ≤ {CATCHUP_SECS_TARGET} s); {catchup_up} bytes up + {catchup_down} down = {bytes_ratio:.2}× the encoded cells (target ≤ {CATCHUP_BYTES_TARGET}×)",
        changed_blocks.len()
    );

    // Everything still adds up.
    wait_converged(&nodes, "final").await;
    let p_total = p_ledger
        .indicators(province, week)?
        .count("signals", "total");
    let sum: i64 = counties
        .iter()
        .map(|c| {
            nodes[c]
                .handle
                .ledger
                .indicators(*c, week)
                .map(|i| i.count("signals", "total"))
                .unwrap_or(0)
        })
        .sum();
    let consistent = p_total == sum;

    let report = json!({
        "bench": "sync",
        "tree": {"province": 1, "cities": cities.len(), "counties": counties.len()},
        "base": {
            "households_per_county": if households_per_county == 0 { json!("realistic") } else { json!(households_per_county) },
            "households": summary.households,
            "records": records.load(Ordering::SeqCst),
            "import_secs": import_secs,
            "converge_after_import_secs": settle_secs,
            "province_cells": province_cells,
        },
        "burst": {
            "rounds": rounds,
            "commits": latencies_ms.len(),
            "records_per_commit": 6,
            "latency_ms": {"p50": p50, "p99": p99, "max": max},
            "latency_to_city_ms": {"p50": city_p50, "p99": city_p99},
            "burst_commit_span_ms_median": span_p50,
            "p99_target_ms": LATENCY_P99_TARGET_MS,
            "p99_met": p99 <= LATENCY_P99_TARGET_MS,
            "bytes_up": burst_bytes,
            "changed_cells": burst_cells,
            "bytes_per_changed_cell": bytes_per_cell,
        },
        "catch_up": {
            "county": x.to_string(),
            "days_offline": 30,
            "records": offline_records,
            "changed_cells": changed_cells,
            "changed_blocks": changed_blocks.len(),
            "encoded_cell_bytes": encoded,
            "reconnect_after_heal_ms": reconnect_ms,
            "city_acked_secs": catchup_city_s,
            "province_reflects_secs": catchup_province_s,
            "secs_target": CATCHUP_SECS_TARGET,
            "bytes_up": catchup_up,
            "bytes_down": catchup_down,
            "bytes_ratio": bytes_ratio,
            "bytes_ratio_target": CATCHUP_BYTES_TARGET,
            "met": catchup_province_s <= CATCHUP_SECS_TARGET && bytes_ratio <= CATCHUP_BYTES_TARGET,
        },
        "province_equals_sum_of_counties": consistent,
        "total_secs": started.elapsed().as_secs_f64(),
    });
    println!("{report}");

    for (_, n) in nodes.iter() {
        let _ = n.stop.send(true);
    }
    for (_, n) in nodes {
        n.task.await??;
    }
    Ok(())
}
