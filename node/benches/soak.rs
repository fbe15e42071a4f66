//! Soak benchmark (issue #19, point 5): the Shaanxi-size tree as processes under sustained
//! writes at every county and ticket traffic, sampled over time: does any node's memory,
//! any backlog or the flush latency grow without bound? A command, not part of CI.
//!
//! **The tree** is the footprint benchmark's (`footprint/tree.rs`, reused as is): 1 province,
//! 10 cities, `BENCH_COUNTIES` (107) counties with realistic households by default
//! (`BENCH_HOUSEHOLDS`), generated once and kept in `BENCH_DATA` when given, each county
//! imported offline, every node its own `bottomline serve` process over mTLS with the
//! deployment samples' `cache_mib`; in addition each county has an inbox of its own and
//! every node its HTTP listener on 127.0.0.1 (for `/metrics`). The soak starts once the
//! province holds every county's figures.
//!
//! **The load**, from then on (`soak/load.rs`):
//! - *writes*: before the tree starts, each county's next-day sets are written (the
//!   footprint's next day: a day's share of its year of risk signals and measures with new
//!   ids, 0.1 % of its households with a corrected income). Day k is dated the day after the
//!   data minus k: no record may be dated after today, so the series goes back in time —
//!   the ids are new each day and the later days are late records for past weeks. Every
//!   `BENCH_WRITE_EVERY_S` (60) each county gets its next set moved into its inbox, the
//!   counties in turn at an even pace (a drop every 60/107 s), so every county writes all
//!   along; a county whose previous set is still in its inbox skips its turn (`deferred`).
//! - *tickets*: every `BENCH_TICKET_EVERY_S` (30) the province issues an inventory
//!   (`Tickets/Inventory`, a `tickets.csv`) of `BENCH_TICKETS` tickets (default one per
//!   county) over the counties in turn, and one city in turn issues a ticket to each of its
//!   counties (`Tickets/Issue`). Each county's clerk visits it every `BENCH_CLERK_S` (10,
//!   the visits spread over the interval): it lists its tickets at its node and accepts
//!   the delivered ones, starts the accepted ones and rectifies the rectifying ones (one
//!   step per visit), as the county; every `BENCH_CLERK_S` each issuer lists its rectified
//!   tickets at its node and verifies them (closed). All calls go through the Rust
//!   `TicketsClient` in this process, with one operator certificate (`bench.soak`, province,
//!   operator), one channel per node.
//!
//! **Phases.** *Warm-up*: the load runs until `BENCH_WARMUP_S` (default: one write period,
//! so every county imported once) has passed and every node ran its first self-check (a
//! node checks itself every `BENCH_CHECK_SECS`, the first time at a random point of its first
//! period; the first check leaves a county ~15 MiB larger for good, which would look like
//! growth inside the window), at most the check period + 60 s + 3 s per node. The soak's
//! default period is half the window, between 30 and 300 s (300 for the 10-minute soak), so
//! the window sees the nodes' periodic checks; `BENCH_CHECK_SECS=0` turns them off. *Soak*:
//! the window of `BENCH_SOAK_S` (600) seconds. *Drain*: no new writes or tickets; the clerks
//! and issuers go on until every ticket issued is closed, every inbox is empty and every
//! link is drained (each parent holds its child's change log and ticket log up to their
//! heads, each child acked its parent's ticket log) in two looks a second apart between
//! which no node's heads moved (the looks are not snapshots), at most
//! `BENCH_DRAIN_S` (300). *Final*: one more sample, then the checks below. *Restart*
//! (`soak/restart.rs`; `BENCH_RESTART_S`, 60, 0 for none): the province idle for that
//! span, stopped and started on its soaked store, relinked, caught up and checked once, idle
//! for the span again: whether its floor comes back (memory that follows its data) or not
//! (memory the soaked process had accumulated), and its `Stats` still equal to the counties'.
//!
//! **Samples** (`soak/sample.rs`), every `BENCH_SAMPLE_S` (10) seconds from the start of the
//! load, in every phase: per node its `VmRSS` (`/proc`) and the largest and the smallest (its
//! *floor*) of a sampler thread reading it every `BENCH_RSS_SAMPLE_MS` (1000) since the
//! previous sample; from its
//! `Status` (gRPC) its uplink's backlog (blocks, ticket events), its children's (blocks and
//! change-log positions behind, ticket events up and down) and the longest time since a
//! child's last message; from its `/metrics` the store's size and the flushes since the
//! previous sample (`bottomline_flush_duration_seconds`: count, mean and p99 from the
//! histogram's `_sum`, `_count` and bucket deltas). One JSON line per sample on stdout as
//! it is taken: `t_s` (from the start of the load), `phase`, `aggregates` (RSS summed,
//! province, largest city, largest and median county, the same from the floors; total backlog and its parts; every
//! node's flushes pooled: count, mean, p99; the largest node p99 and the largest flush, as
//! its bucket's upper bound; self-checks run and failed), `load` (drops, records, deferred,
//! inboxes not yet empty, rejected files, tickets issued, clerk steps, verified, errors),
//! `columns` and `nodes` (a row per node, the columns named in `columns` and explained in
//! the first line). A line on stderr too.
//!
//! **Summary** (`soak/verdict.rs`), the last stdout line (`"type": "summary"`): per series
//! of the window — from the floors: province RSS, largest city RSS, median and largest county
//! RSS, RSS summed; total backlog, the pooled flush p99 (and, not judged, the same RSS figures
//! at the sample instants, the largest node p99, the largest flush, the province's store, the
//! province's and the largest city's ticket-log caches, the slowest Status reply) — the
//! averages of its first,
//! middle and last thirds, its least-squares slope per minute over the window and over its
//! last half, and `bounded`: the last third's average is at most the middle third's plus
//! an allowance, and the line fitted over the last half rises over it by at most the same
//! allowance (memory: max(2 MiB, 5 %), backlog: max(100, 50 %), latency: max(5 ms, 50 %)
//! of the middle third). Every node's own RSS floor and backlog series are judged the same way
//! (those that are not bounded are listed); each node's heap in use is judged as memory too,
//! outside the verdict, to tell what a rising floor is (`nodes_heap_in_use_rising`: live
//! memory if it rises with the floor, fragmentation if the floor rises alone). Memory is judged on the floors because a leak or
//! creeping fragmentation raises what a node keeps between its bursts of work, while the RSS at
//! a sample instant catches an import or a self-check in one sample and not the next (in a
//! six-county run, one county's anonymous RSS read 27–36 MiB in looks 20 s apart while its
//! heap in use stayed at 40–43 MiB). The verdict is `bounded` when all of them are, the tree
//! drained within `BENCH_DRAIN_S` and the final sample's total backlog is at most 10;
//! `growing` (naming what) otherwise; `not judged` under 6 window samples. Then, as the
//! footprint checks: whether the province's `Stats` of every county equal the county's own
//! (every year a drop was dated in); whether every issuer holds all its tickets closed and
//! every county all the tickets issued to it closed; the nodes' self-checks; ERROR/WARN
//! lines of the logs; unclean exits. Reports; never fails on a verdict.
//!
//! Other settings as in the footprint benchmark: `BENCH_IMPORT_JOBS` (2), `BENCH_POLL_MS`
//! (500, while waiting for the tree), `BENCH_DEADLINE_S` (1800, for the province to hold
//! everything), `BENCH_KEEP=1` (keep the temp dir: stores, configs, logs, inboxes),
//! `BENCH_NODE_LOG` (the nodes' `RUST_LOG`, default `info`). The realistic tree takes
//! 10–20 minutes to generate and import on two cores before the soak starts (`BENCH_DATA`
//! saves the generation next time), then the warm-up (about the check period, at most 12
//! minutes), the window and the drain. Run:
//!
//! ```sh
//! BENCH_DATA=/tmp/footprint-data cargo bench -p bottomline --bench soak > soak.jsonl
//! BENCH_COUNTIES=6 BENCH_HOUSEHOLDS=2000 BENCH_SOAK_S=90 cargo bench -p bottomline --bench soak
//! tail -1 soak.jsonl | jq '.verdict, .series'
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::security::{Identity, Role};
use serde_json::{json, Value};
use tokio::sync::watch as channel;
use tokio::time::MissedTickBehavior;

mod common;
use common::Res;

// The footprint benchmark's modules: the soak uses part of each.
#[allow(dead_code)]
#[path = "footprint/context.rs"]
mod context;
#[allow(dead_code)]
#[path = "footprint/county.rs"]
mod county;
#[allow(dead_code)]
#[path = "footprint/data.rs"]
mod data;
#[allow(dead_code)]
#[path = "footprint/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "footprint/tree.rs"]
mod tree;
#[allow(dead_code)]
#[path = "footprint/watch.rs"]
mod watch;

#[path = "soak/load.rs"]
mod load;
#[path = "soak/restart.rs"]
mod restart;
#[path = "soak/sample.rs"]
mod sample;
#[path = "soak/verdict.rs"]
mod verdict;

pub use context::{cache_mib, mem_json, round1, Ctx, Figures, Settings};

use context::{code_state, dir_of, env_num, machine};
use load::{Counters, Phase};
use procs::{Sampler, Tree};
use sample::{Looker, Probe, Sample};
use verdict::Kind;

/// The soak's own settings (the tree's are the footprint's [`Settings`]).
struct Soak {
    window: Duration,
    sample: Duration,
    write_every: Duration,
    ticket_every: Duration,
    /// Tickets per province inventory (None: one per county).
    tickets: Option<usize>,
    clerk: Duration,
    warmup: Duration,
    drain: Duration,
    /// The idle span measured before and after the province's restart (None: no restart).
    restart: Option<Duration>,
}

fn secs(name: &str, default: f64) -> Duration {
    Duration::from_secs_f64(env_num(name).unwrap_or(default).max(0.1))
}

impl Soak {
    fn from_env() -> Soak {
        let write_every = secs("BENCH_WRITE_EVERY_S", 60.0);
        Soak {
            window: secs("BENCH_SOAK_S", 600.0),
            sample: secs("BENCH_SAMPLE_S", 10.0),
            write_every,
            ticket_every: secs("BENCH_TICKET_EVERY_S", 30.0),
            tickets: env_num("BENCH_TICKETS"),
            clerk: secs("BENCH_CLERK_S", 10.0),
            warmup: env_num("BENCH_WARMUP_S").map_or(write_every, Duration::from_secs_f64),
            drain: secs("BENCH_DRAIN_S", 300.0),
            restart: Some(env_num("BENCH_RESTART_S").unwrap_or(60.0))
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64),
        }
    }

    /// The nodes' self-check period unless `BENCH_CHECK_SECS` says: half the window, 30 to
    /// 300 s.
    fn check_secs(&self) -> f64 {
        (self.window.as_secs_f64() / 2.0).clamp(30.0, 300.0).round()
    }
}

/// How long the warm-up waits at most for every node's first self-check: the period, a
/// minute and 3 s per node (the footprint's wait); 0 without checks.
fn checks_margin(check_secs: f64, nodes: usize) -> f64 {
    if check_secs > 0.0 {
        check_secs + 60.0 + 3.0 * nodes as f64
    } else {
        0.0
    }
}

/// Every node's HTTP address, from the logs (up to 60 s).
async fn http_addrs(tree: &mut Tree) -> Res<HashMap<Code, String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found: HashMap<Code, String> = tree
            .nodes
            .iter()
            .filter_map(|n| Some((n.code, procs::http_addr(n)?)))
            .collect();
        if found.len() == tree.nodes.len() {
            return Ok(found);
        }
        tree.check_running()?;
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} nodes did not log their HTTP address",
                tree.nodes.len() - found.len(),
                tree.nodes.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the sample lines say of the load: its counters, the inboxes not yet empty, the
/// files the inboxes refused.
fn load_json(counters: &Counters, inboxes: &Path, counties: &[Code]) -> Value {
    let mut v = counters.json();
    let busy = counties
        .iter()
        .filter(|c| load::inbox_busy(&inboxes.join(c.to_string())))
        .count();
    let rejected: usize = counties
        .iter()
        .map(|c| load::rejected(&inboxes.join(c.to_string())).len())
        .sum();
    v["inboxes_not_empty"] = json!(busy);
    v["files_rejected"] = json!(rejected);
    v
}

/// Print a sample: its JSON line on stdout, a short line on stderr.
fn emit(t_s: f64, phase: &str, window_t_s: Option<f64>, s: &Sample, load: Value) {
    let mut line = sample::sample_json(t_s, phase, s, load.clone());
    if let Some(w) = window_t_s {
        line["window_t_s"] = json!(round1(w));
    }
    println!("{line}");
    let a = &s.agg;
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    eprintln!(
        "  {t_s:>6.0} s {phase:<8} RSS Σ {:.0} MiB (floors {:.0}), province {:.1}, city max {:.1}, county max {:.1} / median {:.1} (floor {:.1}); backlog {} (behind {}); flushes {} p99 {} ms (node max {}); drops {} (deferred {}), tickets {} issued / {} verified; checks {} ({} failed){}",
        a.rss_total,
        a.floor.total,
        a.province_rss,
        a.city_rss_max,
        a.county_rss_max,
        a.county_rss_median,
        a.floor.county_median,
        a.backlog_total(),
        a.behind,
        a.flushes,
        f(a.flush_p99_ms),
        f(a.flush_p99_ms_max),
        load["drops"],
        load["drops_deferred"],
        load["tickets_issued"],
        load["verified"],
        a.self_checked,
        a.self_check_failed,
        if a.problems > 0 {
            format!("; {} nodes not answering", a.problems)
        } else {
            String::new()
        },
    );
}

/// A load task that ended early: its error (it ends only when told to).
async fn ended_early<T>(h: &mut tokio::task::JoinHandle<Res<T>>, what: &str) -> Res<()> {
    if h.is_finished() {
        return match h.await? {
            Ok(_) => Err(format!("the {what} stopped").into()),
            Err(e) => Err(format!("the {what}: {e}").into()),
        };
    }
    Ok(())
}

/// The summary's series and per-node verdicts over the window's samples.
fn judge_window(window: &[(f64, Sample)]) -> (Value, Vec<String>, bool) {
    type Pick = fn(&sample::Agg) -> Option<f64>;
    // Memory is judged on the floors (what a node kept between its bursts of work: a leak
    // or creeping fragmentation raises it); the RSS at the sample instant, which catches an
    // import or a self-check in one sample and not the next, is printed beside it.
    let aggregate: [(&str, Kind, bool, Pick); 18] = [
        ("province_rss_floor_mib", Kind::Memory, true, |a| {
            Some(a.floor.province)
        }),
        ("city_rss_floor_max_mib", Kind::Memory, true, |a| {
            Some(a.floor.city_max)
        }),
        ("county_rss_floor_median_mib", Kind::Memory, true, |a| {
            Some(a.floor.county_median)
        }),
        ("county_rss_floor_max_mib", Kind::Memory, true, |a| {
            Some(a.floor.county_max)
        }),
        ("rss_floor_total_mib", Kind::Memory, true, |a| {
            Some(a.floor.total)
        }),
        ("province_rss_mib", Kind::Memory, false, |a| {
            Some(a.province_rss)
        }),
        ("city_rss_max_mib", Kind::Memory, false, |a| {
            Some(a.city_rss_max)
        }),
        ("county_rss_median_mib", Kind::Memory, false, |a| {
            Some(a.county_rss_median)
        }),
        ("county_rss_max_mib", Kind::Memory, false, |a| {
            Some(a.county_rss_max)
        }),
        ("rss_total_mib", Kind::Memory, false, |a| Some(a.rss_total)),
        ("backlog_total", Kind::Backlog, true, |a| {
            Some(a.backlog_total() as f64)
        }),
        ("flush_p99_ms", Kind::Latency, true, |a| a.flush_p99_ms),
        ("flush_p99_ms_max_node", Kind::Latency, false, |a| {
            a.flush_p99_ms_max
        }),
        ("flush_max_bucket_ms", Kind::Latency, false, |a| {
            a.flush_max_ms.filter(|v| v.is_finite())
        }),
        ("province_store_mib", Kind::Memory, false, |a| {
            Some(a.province_store)
        }),
        ("province_ticket_cache_mib", Kind::Memory, false, |a| {
            Some(a.province_ticket_cache)
        }),
        ("city_ticket_cache_max_mib", Kind::Memory, false, |a| {
            Some(a.city_ticket_cache_max)
        }),
        ("status_ms_max", Kind::Latency, false, |a| {
            Some(a.status_ms_max)
        }),
    ];
    let mut series = serde_json::Map::new();
    let mut growing = Vec::new();
    let mut judged = true;
    for (name, kind, in_verdict, pick) in aggregate {
        let points: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|(t, s)| Some((*t, pick(&s.agg)?)))
            .collect();
        let (mut j, bounded) = verdict::judge(kind, &points);
        j["in_verdict"] = json!(in_verdict);
        if in_verdict {
            match bounded {
                Some(false) => growing.push(name.to_string()),
                None => judged = false,
                Some(true) => {}
            }
        }
        series.insert(name.to_string(), j);
    }
    // Every node's own RSS floor and backlog; and, not in the verdict but to read one, its
    // heap in use (at the sample instant, work included): a floor that rises with it is live
    // memory, one that rises without it fragmentation.
    let nodes = window.first().map_or(0, |(_, s)| s.rows.len());
    let mut nodes_growing = Vec::new();
    let mut heap_rising = Vec::new();
    for i in 0..nodes {
        let code = window[0].1.rows[i].code;
        let rss: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|(t, s)| Some((*t, s.rows.get(i)?.rss_floor?)))
            .collect();
        let backlog: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|(t, s)| {
                let r = s.rows.get(i)?;
                Some((
                    *t,
                    (r.up_blocks + r.up_tickets + r.children_tickets_down) as f64,
                ))
            })
            .collect();
        let heap: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|(t, s)| Some((*t, s.rows.get(i)?.heap_in_use?)))
            .collect();
        for (what, kind, points, in_verdict) in [
            ("rss_floor_mib", Kind::Memory, rss, true),
            ("backlog", Kind::Backlog, backlog, true),
            ("heap_in_use_mib", Kind::Memory, heap, false),
        ] {
            let (j, bounded) = verdict::judge(kind, &points);
            if bounded == Some(false) {
                let out = if in_verdict {
                    &mut nodes_growing
                } else {
                    &mut heap_rising
                };
                out.push(json!({
                    "node": code.map(|c| c.to_string()),
                    "series": what,
                    "middle_third_avg": j["middle_third_avg"],
                    "last_third_avg": j["last_third_avg"],
                    "rise_over_last_half": j["rise_over_last_half"],
                    "allowance": j["allowance"],
                }));
            }
        }
    }
    if !nodes_growing.is_empty() {
        growing.push(format!("{} node series", nodes_growing.len()));
    }
    series.insert("nodes_not_bounded".into(), json!(nodes_growing));
    series.insert("nodes_heap_in_use_rising".into(), json!(heap_rising));
    (Value::Object(series), growing, judged)
}

// Runs on this (the main) thread, not on a worker: the nodes are spawned from it and are
// told to stop when it ends (see `procs`).
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let t_run = Instant::now();
    let soak = Soak::from_env();
    let mut s = Settings::with_parts(false, false, true);
    s.sample = Duration::from_millis(env_num("BENCH_RSS_SAMPLE_MS").unwrap_or(1000u64).max(10));
    s.check_secs = Some(s.check_secs.unwrap_or_else(|| soak.check_secs()));
    let bin = common::procs::binary("soak")?;
    let tmp = tempfile::Builder::new().prefix("soak-").tempdir()?;
    let operator = Identity::Operator {
        name: "bench.soak".into(),
        division: Code::parse("61")?,
        role: Role::Operator,
    };
    let mut cx = Ctx::open(s, bin, tmp.path(), "Bottomline soak benchmark", &operator)?;
    let check_secs = cx.s.check_secs.unwrap_or(0.0);
    let mut settings = json!({
        "households_per_county": cx.s.households.map_or_else(|| json!("realistic"), |h| json!(h)),
        "counties": cx.s.counties,
        "cities": cx.s.cities,
        "data": dir_of(&cx.data),
        "soak_s": soak.window.as_secs_f64(),
        "sample_s": soak.sample.as_secs_f64(),
        "rss_sample_ms": cx.s.sample.as_millis() as u64,
        "write_every_s": soak.write_every.as_secs_f64(),
        "ticket_every_s": soak.ticket_every.as_secs_f64(),
        "clerk_s": soak.clerk.as_secs_f64(),
        "warmup_s": soak.warmup.as_secs_f64(),
        "drain_s": soak.drain.as_secs_f64(),
        "restart_s": soak.restart.map(|r| r.as_secs_f64()),
        "check_secs": check_secs,
        "tls": "mTLS",
        "cache_mib": {"county": cache_mib("county"), "city": cache_mib("city"), "province": cache_mib("province")},
    });
    eprintln!(
        "soak: {} counties, households per county {}, {} s window, working in {}",
        cx.s.counties,
        cx.s.households_tag(),
        soak.window.as_secs_f64(),
        tmp.path().display()
    );

    // The tree's data, the next-day sets, the tree.
    let prepared = tree::prepare(&cx).await?;
    let counties = prepared.counties.clone();
    let per_inventory = soak.tickets.unwrap_or(counties.len()).max(1);
    settings["tickets_per_inventory"] = json!(per_inventory);
    // Enough sets for the longest warm-up and the window.
    let nodes = prepared.parents.len() + counties.len();
    let longest_warmup = soak
        .warmup
        .as_secs_f64()
        .max(checks_margin(check_secs, nodes));
    let per_county = ((longest_warmup + soak.window.as_secs_f64()) / soak.write_every.as_secs_f64())
        .ceil() as usize
        + 2;
    let first = prepared.set.end.tomorrow()?;
    eprintln!("writing {per_county} next-day sets per county (from {first} back) …");
    let t_days = Instant::now();
    let days = Arc::new(load::Days::write(
        &prepared.set.dir,
        &counties,
        &cx.tmp.join("days"),
        first,
        per_county,
    )?);
    let days_s = t_days.elapsed().as_secs_f64();
    let inboxes = cx.tmp.join("inbox");
    let sampler = Sampler::start(cx.s.sample);
    let extras = tree::Extras {
        inbox: Some(&inboxes),
        inbox_each: true,
        http: true,
    };
    let started = tree::start(&mut cx, &prepared, extras, &sampler).await?;
    let tree::Started {
        mut tree,
        clients,
        t0,
        listening_s,
        linked,
        held,
    } = started;
    let since_t0 = |t: &Instant| round1(t.duration_since(t0).as_secs_f64());
    let http = http_addrs(&mut tree).await?;
    let probes = tree
        .nodes
        .iter()
        .map(|n| Probe {
            code: n.code,
            pid: n.pid(),
            sync: clients[&n.code].clone(),
            http: http[&n.code].clone(),
        })
        .collect();
    let mut looker = Looker::new(probes);
    let urls = |codes: &[Code]| -> Res<Vec<(Code, String)>> {
        codes.iter().map(|c| Ok((*c, tree.url(*c)?))).collect()
    };
    let issuer_api = load::connect(&urls(&prepared.parents)?, &cx.client_tls).await?;
    let county_api = load::connect(&urls(&counties)?, &cx.client_tls).await?;
    let setup = json!({
        "nodes": nodes,
        "households": prepared.imports.households,
        "records": prepared.imports.records.iter().sum::<u64>(),
        "data_end": prepared.set.end.to_string(),
        "gen_s": prepared.set.gen.as_ref().map(|g| round1(g.wall_s)),
        "imports": prepared.imports.json(&counties, cx.s.import_jobs),
        "next_day_sets": {
            "per_county": per_county,
            "first_day": first.to_string(),
            "records_per_set": days.records_json(),
            "written_s": round1(days_s),
        },
        "listening_s": round1(listening_s),
        "linked_s": since_t0(&linked.all),
        "province_holds_all_s": held.all.as_ref().map(since_t0),
    });
    let head = json!({
        "benchmark": "soak",
        "binary": dir_of(&cx.bin),
        "code": code_state(),
        "date": bottomline::period::today_in_china().to_string(),
        "machine_at_start": machine(),
        "settings": settings,
        "setup": setup,
    });
    let mut start_line = head.clone();
    start_line["type"] = json!("start");
    start_line["columns"] = json!(sample::COLUMNS);
    start_line["columns_note"] = json!(sample::COLUMNS_NOTE);
    println!("{start_line}");

    // The load, and the samples.
    let counters = Arc::new(Counters::default());
    let t_load = Instant::now();
    let base = looker.look(&sampler).await;
    emit(
        0.0,
        "baseline",
        None,
        &base,
        load_json(&counters, &inboxes, &counties),
    );
    let (phase_tx, phase_rx) = channel::channel(Phase::Soak);
    let ticket_deadline = bottomline::period::today_in_china()
        .checked_add(jiff::Span::new().days(30))
        .map_err(|e| e.to_string())?;
    let mut writer = tokio::spawn(load::writer(
        days.clone(),
        counties.clone(),
        inboxes.clone(),
        soak.write_every,
        counters.clone(),
        phase_rx.clone(),
    ));
    let mut issuers = tokio::spawn(load::issuers(
        issuer_api,
        counties.clone(),
        load::Tickets {
            every: soak.ticket_every,
            per_inventory,
            clerk: soak.clerk,
            deadline: ticket_deadline,
        },
        counters.clone(),
        phase_rx.clone(),
    ));
    let mut clerks = tokio::spawn(load::clerks(
        county_api,
        soak.clerk,
        counters.clone(),
        phase_rx.clone(),
    ));
    let checks_deadline =
        t_load + Duration::from_secs_f64(checks_margin(check_secs, nodes)).max(soak.warmup);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + soak.sample, soak.sample);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut window_from: Option<(Instant, f64)> = None;
    let mut window: Vec<(f64, Sample)> = Vec::new();
    let mut warmup_note = None;
    eprintln!(
        "load on: warm-up (≥ {:.0} s{}), then a {:.0} s window; a sample every {:.0} s",
        soak.warmup.as_secs_f64(),
        if check_secs > 0.0 {
            ", and until every node checked itself once"
        } else {
            ""
        },
        soak.window.as_secs_f64(),
        soak.sample.as_secs_f64()
    );
    loop {
        tick.tick().await;
        let smp = looker.look(&sampler).await;
        tree.check_running()?;
        ended_early(&mut writer, "writer").await?;
        ended_early(&mut issuers, "issuers").await?;
        ended_early(&mut clerks, "clerks").await?;
        let t_s = t_load.elapsed().as_secs_f64();
        let load = load_json(&counters, &inboxes, &counties);
        match window_from {
            None => {
                emit(t_s, "warmup", None, &smp, load);
                let warm = t_load.elapsed() >= soak.warmup;
                let checked = check_secs <= 0.0 || smp.agg.self_checked == nodes;
                let late = Instant::now() > checks_deadline;
                if warm && (checked || late) {
                    if !checked {
                        warmup_note = Some(format!(
                            "{} of {nodes} nodes had run a self-check when the warm-up ended",
                            smp.agg.self_checked
                        ));
                    }
                    eprintln!("window opens at {t_s:.0} s");
                    window_from = Some((Instant::now(), t_s));
                }
            }
            Some((from, _)) => {
                let w = from.elapsed().as_secs_f64();
                emit(t_s, "soak", Some(w), &smp, load);
                window.push((w / 60.0, smp));
                if from.elapsed() >= soak.window {
                    break;
                }
            }
        }
    }
    let (window_start_s, window_end_s) = (
        window_from.map_or(0.0, |w| w.1),
        t_load.elapsed().as_secs_f64(),
    );

    // Drain: no new writes or tickets; wait until everything is closed and delivered.
    eprintln!("draining: no new writes or tickets …");
    let _ = phase_tx.send(Phase::Drain);
    (&mut writer).await??;
    let t_drain = Instant::now();
    let mut next_sample = t_drain + soak.sample;
    let mut quiet_looks = 0;
    let mut last_heads = Vec::new();
    let mut drained_s = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tree.check_running()?;
        ended_early(&mut issuers, "issuers").await?;
        ended_early(&mut clerks, "clerks").await?;
        let inboxes_empty = counties
            .iter()
            .all(|c| !load::inbox_busy(&inboxes.join(c.to_string())));
        let closed = Counters::get(&counters.verified) >= Counters::get(&counters.issued);
        let st = watch::all_status(&clients).await?;
        let heads = watch::heads(&st);
        if inboxes_empty && closed && watch::quiet(&st) {
            // Two quiet looks in a row with no head moved in between: nothing in flight.
            quiet_looks = if heads == last_heads {
                quiet_looks + 1
            } else {
                1
            };
        } else {
            quiet_looks = 0;
        }
        last_heads = heads;
        if quiet_looks >= 2 {
            drained_s = Some(t_drain.elapsed().as_secs_f64());
            break;
        }
        if t_drain.elapsed() > soak.drain {
            break;
        }
        if Instant::now() >= next_sample {
            next_sample += soak.sample;
            let smp = looker.look(&sampler).await;
            let load = load_json(&counters, &inboxes, &counties);
            emit(t_load.elapsed().as_secs_f64(), "drain", None, &smp, load);
        }
    }
    match drained_s {
        Some(s) => eprintln!("drained after {s:.1} s"),
        None => eprintln!("not drained within {:?}", soak.drain),
    }
    let _ = phase_tx.send(Phase::End);
    let mut issuer_api = issuers.await??;
    let mut county_api = clerks.await??;
    let fin = looker.look(&sampler).await;
    let load_end = load_json(&counters, &inboxes, &counties);
    emit(
        t_load.elapsed().as_secs_f64(),
        "final",
        None,
        &fin,
        load_end.clone(),
    );

    // The checks.
    let mut years: BTreeSet<i16> = counters
        .days
        .lock()
        .map(|d| d.iter().map(|d| d.year()).collect())
        .unwrap_or_default();
    years.insert(prepared.set.end.year());
    let periods: Vec<String> = years.iter().map(ToString::to_string).collect();
    let (matched, compared, differ) =
        watch::stats_match_years(&clients, prepared.province, &counties, &periods).await?;
    eprintln!("the province's Stats equal the county's own: {matched}/{compared}");
    let tickets = load::check_tickets(&mut issuer_api, &mut county_api, &counters).await?;
    let st = watch::all_status(&clients).await?;
    let mut failed_checks: Vec<String> = st
        .iter()
        .filter(|(_, s)| s.self_check.as_ref().is_some_and(|c| !c.ok))
        .map(|(c, _)| c.to_string())
        .collect();
    failed_checks.sort();
    let checks_run = st.values().filter(|s| s.self_check.is_some()).count();
    let rejected: Vec<String> = counties
        .iter()
        .flat_map(|c| load::rejected(&inboxes.join(c.to_string())))
        .take(3)
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    // The province restarted on its soaked store: does its floor come back? (The soak's
    // log problems are counted before: a restart makes the cities warn of their link.)
    let logs = tree::logs_json(&tree);
    let restarted = match soak.restart {
        Some(span) => {
            let r = restart::province(
                &mut tree,
                &clients,
                &sampler,
                prepared.province,
                &http[&prepared.province],
                span,
                check_secs,
                &counties,
                &periods,
            )
            .await;
            let mut r = r.unwrap_or_else(|e| json!({ "error": e.to_string() }));
            let after = tree::logs_json(&tree);
            for what in ["errors", "warnings"] {
                r[format!("log_{what}_during")] =
                    json!(after[what].as_u64().unwrap_or(0) - logs[what].as_u64().unwrap_or(0));
            }
            Some(r)
        }
        None => None,
    };
    let (unclean, killed) = tree.stop();
    drop(sampler);

    // The summary.
    let (series, growing, judged) = judge_window(&window);
    let max_backlog = window
        .iter()
        .map(|(_, s)| s.agg.backlog_total())
        .max()
        .unwrap_or(0);
    let final_backlog = fin.agg.backlog_total();
    let drained = drained_s.is_some() && final_backlog <= 10;
    let verdict = if !judged {
        "not judged".to_string()
    } else if growing.is_empty() && drained {
        "bounded".to_string()
    } else {
        let mut what = growing.clone();
        if !drained {
            what.push("not drained".into());
        }
        format!("growing: {}", what.join(", "))
    };
    let tickets_ok = tickets["issuers_holding_all_closed"]
        .as_str()
        .zip(tickets["counties_holding_all_closed"].as_str())
        .is_some_and(|(a, b)| {
            let full = |s: &str| s.split_once('/').is_some_and(|(x, y)| x == y);
            full(a) && full(b)
        });
    let consistent = matched == compared && compared > 0 && tickets_ok;
    eprintln!(
        "\nsoak verdict: {verdict}; consistent after the soak: {consistent} (Stats {matched}/{compared}, tickets {}/{})",
        tickets["issuers_holding_all_closed"].as_str().unwrap_or("?"),
        tickets["counties_holding_all_closed"].as_str().unwrap_or("?")
    );
    for (name, j) in series.as_object().into_iter().flatten() {
        if j.get("unit").is_some() {
            eprintln!(
                "  {name:<24} first {:>9} middle {:>9} last {:>9}  slope/min {:>8} (last half {:>8}) {}",
                j["first_third_avg"],
                j["middle_third_avg"],
                j["last_third_avg"],
                j["slope_per_min"],
                j["slope_per_min_last_half"],
                if j["in_verdict"] == json!(true) {
                    format!("bounded {}", j["bounded"])
                } else {
                    "(not in the verdict)".to_string()
                }
            );
        }
    }
    for n in series["nodes_not_bounded"].as_array().into_iter().flatten() {
        eprintln!("  not bounded: {n}");
    }
    for n in series["nodes_heap_in_use_rising"]
        .as_array()
        .into_iter()
        .flatten()
    {
        eprintln!("  heap in use rising (not in the verdict): {n}");
    }
    let mut summary = head;
    summary["type"] = json!("summary");
    summary["machine_at_end"] = machine();
    summary["verdict"] = json!(verdict);
    summary["criterion"] = json!(
        "a series is bounded when its last third's average is at most its middle third's \
         plus an allowance and the least-squares line over its last half rises over that \
         half by at most the same allowance; allowance: memory max(2 MiB, 5 %), backlog \
         max(100, 50 %), latency max(5 ms, 50 %) of the middle third's average. bounded: \
         every series in_verdict and every node's own RSS and backlog series bounded, the \
         tree drained (every ticket closed, every inbox empty, every link drained) within \
         drain_s, and the final total backlog at most 10"
    );
    summary["window"] = json!({
        "from_s": round1(window_start_s),
        "to_s": round1(window_end_s),
        "samples": window.len(),
        "warmup_note": warmup_note,
    });
    summary["series"] = series;
    summary["drain"] = json!({
        "drained_s": drained_s.map(round1),
        "final_backlog_total": final_backlog,
        "window_backlog_max": max_backlog,
        "final": fin.agg.json(),
    });
    summary["consistent"] = json!(consistent);
    summary["stats_equal_at_province"] = json!(format!("{matched}/{compared}"));
    summary["stats_years"] = json!(years.iter().collect::<Vec<_>>());
    summary["stats_differ"] = json!(differ);
    summary["tickets"] = tickets;
    summary["load"] = load_end;
    summary["load_errors"] = json!(counters
        .first_errors
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default());
    summary["inbox_rejections"] = json!(rejected);
    summary["province_restart"] = json!(restarted);
    summary["self_checks"] = json!({
        "nodes_checked": checks_run,
        "failed": failed_checks,
    });
    summary["logs"] = logs;
    summary["unclean_exits"] = json!(unclean.iter().map(ToString::to_string).collect::<Vec<_>>());
    summary["killed"] = json!(killed.iter().map(ToString::to_string).collect::<Vec<_>>());
    summary["wall_s"] = json!(round1(t_run.elapsed().as_secs_f64()));
    if cx.s.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    println!("{summary}");
    Ok(())
}
