//! Part 3 of the footprint benchmark: the Shaanxi-shaped tree as processes, its counties
//! imported offline first (see the benchmark's doc).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bottomline::division::Code;
use serde_json::{json, Value};

use crate::common::{percentile, Res};
use crate::county::{import_registries, wait_checks, SERVING_TARGET_MIB};
use crate::data;
use crate::procs::{mem_of, mib, pss_of, Finished, Job, Mem, NodeSpec, Sampler, Tick, Tree};
use crate::watch::{self, SyncClient};
use crate::{cache_mib, mem_json, round1, Ctx, Figures};

const HOLDS_ALL_TARGET_S: f64 = 60.0;
const PROVINCE_RSS_TARGET_MIB: f64 = 160.0;
const CITY_RSS_TARGET_MIB: f64 = 96.0;
const TREE_TOTAL_TARGET_MIB: f64 = 4096.0;
const PROVINCE_STORE_TARGET_MIB: f64 = 256.0;
/// How long the nodes may take to start listening and to link.
const START_DEADLINE: Duration = Duration::from_secs(300);

/// max, median, min of `v`, rounded.
fn spread(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "max": v.last().map(|x| round1(*x)),
        "median": round1(percentile(&v, 0.5)),
        "min": v.first().map(|x| round1(*x)),
    })
}

fn max_of(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

fn median_of(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Where the node of `code` keeps its store.
pub fn store_dir(dir: &Path, code: Code) -> PathBuf {
    dir.join(code.to_string())
}

/// The tree's data, ready to start: generated (or reused), every county imported into its
/// store under `dir`, the province's and the cities' registries too.
pub struct Prepared {
    pub province: Code,
    pub set: data::GenSet,
    pub cities: Vec<Code>,
    pub counties: Vec<Code>,
    /// The province, then the cities.
    pub parents: Vec<Code>,
    /// Where the stores, configs and logs of the nodes are.
    pub dir: PathBuf,
    pub imports: Imports,
}

/// Generate (or reuse) the province's set and import it into the stores of the tree, in
/// `cx.tmp/tree`.
pub async fn prepare(cx: &Ctx) -> Res<Prepared> {
    let province = Code::parse("61")?;
    let set = province_set(cx).await?;
    let counties = data::counties_in(&set.dir)?;
    let mut cities: Vec<Code> = counties.iter().filter_map(|c| c.parent()).collect();
    cities.dedup();
    let dir = cx.tmp.join("tree");
    std::fs::create_dir_all(&dir)?;

    let imports = import_counties(cx, &set.dir, &counties, &dir).await?;
    let parents: Vec<Code> = std::iter::once(province).chain(cities.clone()).collect();
    import_registries(cx, &set.dir, &dir, &parents).await?;
    Ok(Prepared {
        province,
        set,
        cities,
        counties,
        parents,
        dir,
        imports,
    })
}

/// The tree running: linked, and (unless it missed the deadline) the province holding
/// every county's figures.
pub struct Started {
    pub tree: Tree,
    /// A `Sync` client per node.
    pub clients: HashMap<Code, SyncClient>,
    /// When the province was spawned.
    pub t0: Instant,
    /// Seconds from `t0` until every node listened.
    pub listening_s: f64,
    pub linked: watch::Linked,
    pub held: watch::Held,
}

/// Start the prepared tree (each node sampled by `sampler`), wait until every link is up
/// and then until the province holds everything (`cx.s.deadline`).
pub async fn start(
    cx: &mut Ctx,
    p: &Prepared,
    extras: Extras<'_>,
    sampler: &Sampler,
) -> Res<Started> {
    eprintln!(
        "part tree: starting {} node processes …",
        p.parents.len() + p.counties.len()
    );
    let t0 = Instant::now();
    let mut tree = start_tree_with(cx, &p.dir, &p.parents, &p.counties, extras, sampler).await?;
    let listening_s = t0.elapsed().as_secs_f64();
    let since = |t: &Instant| t.duration_since(t0).as_secs_f64();
    let clients = watch::connect(&tree, &cx.client_tls).await?;
    let deadline = t0 + START_DEADLINE;
    let linked = watch::wait_linked(&clients, &mut tree, cx.s.poll, deadline).await?;
    eprintln!(
        "  listening after {listening_s:.1} s, all linked after {:.1} s",
        since(&linked.all)
    );
    let held = watch::wait_held(&clients, &mut tree, cx.s.poll, t0 + cx.s.deadline).await?;
    match held.all.as_ref().map(since) {
        Some(s) => eprintln!("  the province holds every county's figures after {s:.1} s"),
        None => eprintln!(
            "  the province did not hold everything within {:?}",
            cx.s.deadline
        ),
    }
    Ok(Started {
        tree,
        clients,
        t0,
        listening_s,
        linked,
        held,
    })
}

/// Part 3; see the benchmark's doc.
pub async fn run(cx: &mut Ctx, figs: &mut Figures) -> Res<Value> {
    let prepared = prepare(cx).await?;
    let sampler = Sampler::start(cx.s.sample);
    let Started {
        mut tree,
        clients,
        t0,
        listening_s: listening,
        linked,
        held,
    } = start(cx, &prepared, Extras::default(), &sampler).await?;
    let Prepared {
        province,
        set,
        cities,
        counties,
        dir,
        imports,
        ..
    } = prepared;
    let since = |t: &Instant| t.duration_since(t0).as_secs_f64();
    let link_times = |len: usize| -> Vec<f64> {
        let v = linked.each.iter().filter(|(c, _)| c.len() == len);
        v.map(|(_, t)| since(t)).collect()
    };
    let held_s = held.all.as_ref().map(since);

    // Memory from that point over the settle time.
    let t_held = Instant::now();
    let at_held = snapshot(&tree);
    let checked = wait_checks(cx, &clients, &mut tree).await?;
    tokio::time::sleep(cx.s.settle).await;
    let memory = Memory::read(&tree, &sampler, at_held, t_held);
    let all_pids: Vec<u32> = tree.nodes.iter().map(|n| n.pid()).collect();
    let total_max = sampler.max_sum_mib(&all_pids, sampler.t(t_held), sampler.t(Instant::now()));
    let series = series_json(&sampler, &tree, t0);

    // What the province shows of each county and knows of itself; the stores, running.
    let year = set.end.year().to_string();
    let (matched, compared, differ) = match held.all {
        Some(_) => watch::stats_match(&clients, province, &counties, &year).await?,
        None => (0, 0, Vec::new()),
    };
    let st = watch::all_status(&clients).await?;
    let checks_run = st.values().filter(|s| s.self_check.is_some()).count();
    let province_check = st
        .get(&province)
        .and_then(|s| s.self_check.clone())
        .map(|c| json!({"ok": c.ok, "what": c.what, "cells": c.cells, "differing": c.differing}));
    let store_mib = |c: &Code| data::mib_of(data::dir_bytes(&store_dir(&dir, *c)));
    let province_store = store_mib(&province);
    let city_stores: Vec<f64> = cities.iter().map(store_mib).collect();
    let county_stores: Vec<f64> = counties.iter().map(store_mib).collect();
    let logs = logs_json(&tree);
    let nodes = tree.nodes.len();
    let t_stop = Instant::now();
    let (unclean, killed) = tree.stop();
    let stop_s = t_stop.elapsed().as_secs_f64();
    drop(sampler);
    let (files, check) = province_after_stop(cx, &store_dir(&dir, province)).await?;

    let levels = Levels::of(&tree);
    let rss = |idx: &[usize]| -> Vec<f64> { idx.iter().map(|&i| memory.max_after[i]).collect() };
    let (city_rss, county_rss) = (rss(&levels.cities), rss(&levels.counties));
    let total = |f: &dyn Fn(&Mem) -> u64| mib(memory.at_end.iter().flatten().map(f).sum());
    let total_pss = mib(memory.pss.iter().flatten().sum());
    let peaks: Vec<f64> = imports.runs.iter().map(|f| f.peak_rss_mib).collect();
    for (name, value, target, unit) in [
        (
            "tree_start_to_province_holds_all_s",
            held_s,
            Some(HOLDS_ALL_TARGET_S),
            "s",
        ),
        (
            "province_rss_mib",
            max_of(&rss(&levels.province)),
            Some(PROVINCE_RSS_TARGET_MIB),
            "MiB",
        ),
        (
            "city_rss_mib_max",
            max_of(&city_rss),
            Some(CITY_RSS_TARGET_MIB),
            "MiB",
        ),
        (
            "county_rss_mib_max",
            max_of(&county_rss),
            Some(SERVING_TARGET_MIB),
            "MiB",
        ),
        (
            "county_rss_mib_median",
            Some(median_of(&county_rss)),
            None,
            "MiB",
        ),
        (
            "tree_rss_total_mib",
            Some(total(&|m| m.rss)),
            Some(TREE_TOTAL_TARGET_MIB),
            "MiB",
        ),
        (
            "tree_rss_total_max_mib",
            total_max,
            Some(TREE_TOTAL_TARGET_MIB),
            "MiB",
        ),
        (
            "tree_hwm_total_mib",
            Some(total(&|m| m.hwm)),
            Some(TREE_TOTAL_TARGET_MIB),
            "MiB",
        ),
        ("tree_pss_total_mib", Some(total_pss), None, "MiB"),
        (
            "province_store_mib",
            Some(province_store),
            Some(PROVINCE_STORE_TARGET_MIB),
            "MiB",
        ),
        ("city_store_mib_max", max_of(&city_stores), None, "MiB"),
        ("tree_import_peak_rss_mib_max", max_of(&peaks), None, "MiB"),
        (
            "tree_import_peak_rss_mib_median",
            Some(median_of(&peaks)),
            None,
            "MiB",
        ),
    ] {
        figs.add(name, value, target, unit);
    }

    let by_level = |idx: &[usize]| -> f64 {
        let v = idx.iter().filter_map(|&i| memory.at_end[i]);
        round1(v.map(|m| mib(m.rss)).sum())
    };
    let hwm = |idx: &[usize]| -> Vec<f64> {
        let v = idx.iter().filter_map(|&i| memory.at_end[i]);
        v.map(|m| mib(m.hwm)).collect()
    };
    let mut largest = levels.counties.clone();
    largest.sort_by(|&a, &b| memory.max_after[b].total_cmp(&memory.max_after[a]));
    largest.truncate(3);
    Ok(json!({
        "nodes": nodes,
        "cities": cities.len(),
        "counties": counties.len(),
        "households": imports.households,
        "records": imports.records.iter().sum::<u64>(),
        "data_end": set.end.to_string(),
        "gen_s": set.gen.as_ref().map(|g| round1(g.wall_s)),
        "imports": imports.json(&counties, cx.s.import_jobs),
        "listening_s": round1(listening),
        "linked_s": round1(since(&linked.all)),
        "linked_each_s": {"cities": spread(link_times(4)), "counties": spread(link_times(6))},
        "counties_held_by_their_cities_s": held.levels.get(&6).map(since).map(round1),
        "tree_start_to_province_holds_all_s": held_s.map(round1),
        "target_s": HOLDS_ALL_TARGET_S,
        "nodes_self_checked_at_end": checks_run,
        "self_checks_done_s": checked.as_ref().map(since).map(round1),
        "memory_note": "rss_mib_after_held_max: the largest VmRSS sampled from the point the \
            province held everything to the end of the settle time after it (and, with \
            BENCH_CHECK_SECS, after every node's first self-check); at_held, at_end: \
            /proc/PID/status at those two points",
        "province": memory.nodes_json(&tree, &levels.province).pop(),
        "cities_memory": memory.nodes_json(&tree, &levels.cities),
        "city_vm_hwm_mib": spread(hwm(&levels.cities)),
        "counties_memory": {
            "rss_mib_after_held": spread(county_rss),
            "vm_hwm_mib": spread(hwm(&levels.counties)),
            "largest": memory.nodes_json(&tree, &largest),
        },
        "totals_mib": {
            "vm_rss": round1(total(&|m| m.rss)),
            "vm_hwm": round1(total(&|m| m.hwm)),
            "rss_anon": round1(total(&|m| m.anon)),
            "pss": round1(total_pss),
            "by_level_vm_rss": {
                "province": by_level(&levels.province),
                "cities": by_level(&levels.cities),
                "counties": by_level(&levels.counties),
            },
        },
        "rss_series_mib": series,
        "stores_mib": {
            "province": province_store,
            "province_target": PROVINCE_STORE_TARGET_MIB,
            "cities": cities.iter().zip(&city_stores)
                .map(|(c, m)| (c.to_string(), json!(m)))
                .collect::<serde_json::Map<_, _>>(),
            "counties": spread(county_stores.clone()),
            "counties_total": round1(county_stores.iter().sum()),
        },
        "province_files": files,
        "province_check_cli": check,
        "province_self_check": province_check,
        "stats_equal_at_province": format!("{matched}/{compared}"),
        "stats_differ": differ.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "logs": logs,
        "stop_s": round1(stop_s),
        "unclean_exits": unclean.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "killed": killed.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

/// The province's set (generated once per shape and household count).
async fn province_set(cx: &Ctx) -> Res<data::GenSet> {
    let s = &cx.s;
    let name = format!(
        "province-61-{}x{}-{}",
        s.cities,
        s.counties,
        s.households_tag()
    );
    let scope = [
        "--province".to_string(),
        "61".to_string(),
        "--cities".to_string(),
        s.cities.to_string(),
        "--counties".to_string(),
        s.counties.to_string(),
    ];
    data::ensure(&cx.bin, cx.data.join(name), &scope, s.households, &cx.logs).await
}

/// The counties' imports, one process each.
pub struct Imports {
    runs: Vec<Finished>,
    /// Record rows each wrote.
    pub records: Vec<u64>,
    pub households: u64,
    wall_s: f64,
}

impl Imports {
    pub fn json(&self, counties: &[Code], parallel: usize) -> Value {
        let rate = self.runs.iter().zip(&self.records);
        let per_county = counties.iter().zip(&self.runs).zip(&self.records);
        json!({
            "parallel": parallel,
            "wall_s": round1(self.wall_s),
            "peak_rss_mib": spread(self.runs.iter().map(|f| f.peak_rss_mib).collect()),
            "records_per_s": spread(rate.map(|(f, r)| *r as f64 / f.wall_s).collect()),
            "per_county": per_county
                .map(|((c, f), r)| json!([c.to_string(), r, round1(f.wall_s), round1(f.peak_rss_mib)]))
                .collect::<Vec<_>>(),
            "per_county_columns": ["county", "records", "wall_s", "peak_rss_mib"],
        })
    }
}

/// Import every county's files into its data dir under `dir`, `import_jobs` at a time.
async fn import_counties(cx: &Ctx, set: &Path, counties: &[Code], dir: &Path) -> Res<Imports> {
    eprintln!(
        "part tree: importing {} counties, {} at a time …",
        counties.len(),
        cx.s.import_jobs
    );
    let cmds = counties
        .iter()
        .map(|&c| {
            let files = data::county_files(set, c);
            let cmd = data::import_cmd(&cx.bin, &store_dir(dir, c), c, &files);
            (cmd, format!("import-{c}"))
        })
        .collect();
    let t = Instant::now();
    let mut said = Instant::now();
    let runs = crate::procs::run_all(cmds, &cx.logs, cx.s.import_jobs, |f, i, n| {
        if said.elapsed() >= Duration::from_secs(10) || i == n {
            said = Instant::now();
            eprintln!(
                "  {i}/{n} imported ({:.0} s); last {}: {} records in {:.1} s, peak RSS {:.1} MiB",
                t.elapsed().as_secs_f64(),
                f.what,
                data::records_imported(&f.stdout),
                f.wall_s,
                f.peak_rss_mib
            );
        }
    })
    .await?;
    let records = runs
        .iter()
        .map(|f| data::records_imported(&f.stdout))
        .collect();
    let households = runs
        .iter()
        .flat_map(|f| data::rows_imported(&f.stdout))
        .filter(|(n, _)| n == "households.csv")
        .map(|(_, n)| n)
        .sum();
    Ok(Imports {
        runs,
        records,
        households,
        wall_s: t.elapsed().as_secs_f64(),
    })
}

/// What the nodes get beyond the deployment samples' settings ([`start_tree_with`]).
#[derive(Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The counties' inbox: this directory, or with `inbox_each` a directory of its own
    /// under it for each county (`<inbox>/<code>`).
    pub inbox: Option<&'a Path>,
    pub inbox_each: bool,
    /// Every node's HTTP listener (`/metrics`) on a free loopback port.
    pub http: bool,
}

/// Start the province and cities (`parents`, the province first) and the counties, a level
/// at a time (a child needs its parent's address), each sampled from its spawn; each node's
/// store is `dir/<code>`, the counties' inbox `inbox` if given.
pub async fn start_tree(
    cx: &mut Ctx,
    dir: &Path,
    parents: &[Code],
    counties: &[Code],
    inbox: Option<&Path>,
    sampler: &Sampler,
) -> Res<Tree> {
    let extras = Extras {
        inbox,
        ..Extras::default()
    };
    start_tree_with(cx, dir, parents, counties, extras, sampler).await
}

/// [`start_tree`] with the [`Extras`] given.
pub async fn start_tree_with(
    cx: &mut Ctx,
    dir: &Path,
    parents: &[Code],
    counties: &[Code],
    extras: Extras<'_>,
    sampler: &Sampler,
) -> Res<Tree> {
    let deadline = Instant::now() + START_DEADLINE;
    let mut tree = Tree::default();
    let levels: [&[Code]; 3] = [&parents[..1], &parents[1..], counties];
    for (level, codes) in levels.into_iter().enumerate() {
        let from = tree.nodes.len();
        for &code in codes {
            let tls = cx.node_tls(code)?;
            let parent = code.parent().filter(|p| !p.is_root());
            let parent = parent.map(|p| tree.url(p)).transpose()?;
            let data_dir = store_dir(dir, code);
            let inbox = extras.inbox.filter(|_| level == 2).map(|i| {
                if extras.inbox_each {
                    i.join(code.to_string())
                } else {
                    i.to_path_buf()
                }
            });
            let spec = NodeSpec {
                code,
                data_dir: &data_dir,
                parent: parent.as_deref(),
                cache_mib: cache_mib(["province", "city", "county"][level]),
                inbox: inbox.as_deref(),
                check_secs: cx.s.check_secs,
                http: extras.http,
                tls: &tls,
            };
            tree.spawn(&cx.bin, dir, spec.code, &spec.toml())?;
            sampler.track(tree.nodes[tree.nodes.len() - 1].pid());
        }
        tree.wait_listening(from, true, deadline).await?;
    }
    Ok(tree)
}

/// The indexes into `tree.nodes` of each level.
struct Levels {
    province: Vec<usize>,
    cities: Vec<usize>,
    counties: Vec<usize>,
}

impl Levels {
    fn of(tree: &Tree) -> Levels {
        let at = |len: usize| -> Vec<usize> {
            let n = tree.nodes.iter().enumerate();
            n.filter(|(_, n)| n.code.len() == len)
                .map(|(i, _)| i)
                .collect()
        };
        Levels {
            province: at(2),
            cities: at(4),
            counties: at(6),
        }
    }
}

fn snapshot(tree: &Tree) -> Vec<Option<Mem>> {
    tree.nodes.iter().map(|n| mem_of(n.pid())).collect()
}

/// Every node's memory after the province held everything.
struct Memory {
    at_held: Vec<Option<Mem>>,
    at_end: Vec<Option<Mem>>,
    pss: Vec<Option<u64>>,
    /// The largest `VmRSS` sampled from `at_held` to `at_end` (or read then), MiB.
    max_after: Vec<f64>,
}

impl Memory {
    fn read(tree: &Tree, sampler: &Sampler, at_held: Vec<Option<Mem>>, since: Instant) -> Memory {
        let at_end = snapshot(tree);
        let (from, to) = (sampler.t(since), sampler.t(Instant::now()));
        let max_after = tree
            .nodes
            .iter()
            .zip(&at_end)
            .map(|(n, m)| {
                let sampled = sampler.max_mib(n.pid(), from, to).unwrap_or(0.0);
                sampled.max(m.map_or(0.0, |m| mib(m.rss)))
            })
            .collect();
        Memory {
            at_held,
            at_end,
            pss: tree.nodes.iter().map(|n| pss_of(n.pid())).collect(),
            max_after,
        }
    }

    fn nodes_json(&self, tree: &Tree, idx: &[usize]) -> Vec<Value> {
        idx.iter()
            .map(|&i| {
                json!({
                    "division": tree.nodes[i].code.to_string(),
                    "rss_mib_after_held_max": round1(self.max_after[i]),
                    "at_held": mem_json(self.at_held[i]),
                    "at_end": mem_json(self.at_end[i]),
                    "pss_mib": self.pss[i].map(|k| round1(mib(k))),
                })
            })
            .collect()
    }
}

/// `VmRSS` from `t0` on, in about 60 buckets: the sum over all nodes and the largest node of
/// each level (the largest sample of each bucket).
fn series_json(sampler: &Sampler, tree: &Tree, t0: Instant) -> Value {
    let from = sampler.t(t0);
    let step = ((sampler.t(Instant::now()) - from) / 60.0).ceil().max(1.0);
    let levels = Levels::of(tree);
    let pids = |idx: &[usize]| -> Vec<u32> { idx.iter().map(|&i| tree.nodes[i].pid()).collect() };
    let of = |pids: Vec<u32>, sum: bool| {
        move |k: &Tick| -> Option<u64> {
            let v = k
                .rss
                .iter()
                .filter(|(p, _)| pids.contains(p))
                .map(|(_, r)| *r);
            if sum {
                v.reduce(|a, b| a + b)
            } else {
                v.max()
            }
        }
    };
    let all = tree.nodes.iter().map(|n| n.pid()).collect();
    json!({
        "step_s": step,
        "total": sampler.series(from, step, of(all, true)),
        "province": sampler.series(from, step, of(pids(&levels.province), false)),
        "city_max": sampler.series(from, step, of(pids(&levels.cities), false)),
        "county_max": sampler.series(from, step, of(pids(&levels.counties), false)),
    })
}

/// ERROR and WARN lines of all node logs: counts and the first few.
pub fn logs_json(tree: &Tree) -> Value {
    let (mut errors, mut warnings) = (0, 0);
    let (mut first_errors, mut first_warnings) = (Vec::new(), Vec::new());
    for n in &tree.nodes {
        let p = crate::procs::log_problems(n);
        errors += p.errors;
        warnings += p.warnings;
        if let Some(f) = p.first_error.filter(|_| first_errors.len() < 5) {
            first_errors.push(format!("{}: {f}", n.code));
        }
        if let Some(f) = p.first_warning.filter(|_| first_warnings.len() < 5) {
            first_warnings.push(format!("{}: {f}", n.code));
        }
    }
    json!({"errors": errors, "warnings": warnings, "first_errors": first_errors,
        "first_warnings": first_warnings})
}

/// The province's store once stopped: its files with their sizes, and `bottomline check`
/// (its cell count; the CLI has no other view of a store's content).
async fn province_after_stop(cx: &Ctx, store: &Path) -> Res<(Value, Value)> {
    let files = data::files_under(store)
        .into_iter()
        .map(|(f, b, a)| json!({"file": f, "mib": data::mib_of(b), "allocated_mib": data::mib_of(a)}))
        .collect();
    let mut cmd = std::process::Command::new(&cx.bin);
    cmd.arg("check").arg("--data").arg(store);
    let check = Job::start(cmd, &cx.logs, "check-61")?.finish().await?;
    let problems: Vec<&str> = check
        .stderr
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .collect();
    let check = json!({
        "ok": check.success,
        "output": check.stdout.trim(),
        "stderr": problems.join("\n"),
        "wall_s": round1(check.wall_s),
        "peak_rss_mib": round1(check.peak_rss_mib),
    });
    Ok((Value::Array(files), check))
}
