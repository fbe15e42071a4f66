//! Parts 1 and 2 of the footprint benchmark: one county imported by the CLI, then served under
//! a city and the province, with two drops into its inbox (see the benchmark's doc).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bottomline::division::Code;
use serde_json::{json, Value};

use crate::common::Res;
use crate::data::{self, GenSet};
use crate::procs::{mem_of, mib, Job, Sampler, Tree};
use crate::tree;
use crate::watch::{self, SyncClient};
use crate::{mem_json, round1, Ctx, Figures};

/// The county of parts 1 and 2.
const COUNTY: &str = "610102";
const IMPORT_PEAK_TARGET_MIB: f64 = 100.0;
pub const SERVING_TARGET_MIB: f64 = 48.0;
/// How long the links may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(120);

/// The one-county set (generated once per household count).
async fn county_set(cx: &Ctx) -> Res<GenSet> {
    let dir = cx
        .data
        .join(format!("county-{COUNTY}-{}", cx.s.households_tag()));
    let scope = ["--county".to_string(), COUNTY.to_string()];
    data::ensure(&cx.bin, dir, &scope, cx.s.households, &cx.logs).await
}

/// Part 1: import the county with the CLI into a fresh data dir. Returns the report and the
/// data dir (part 2 serves it).
pub async fn import(cx: &Ctx, figs: &mut Figures) -> Res<(Value, PathBuf)> {
    let county = Code::parse(COUNTY)?;
    let set = county_set(cx).await?;
    let dir = cx.tmp.join("import").join(COUNTY);
    let files = data::county_files(&set.dir, county);
    eprintln!("part import: county {COUNTY} into a fresh data dir …");
    let cmd = data::import_cmd(&cx.bin, &dir, county, &files);
    let f = Job::start(cmd, &cx.logs, &format!("import-{COUNTY}"))?
        .finish()
        .await?
        .ok()?;
    let rows = data::rows_imported(&f.stdout);
    let records = data::records_imported(&f.stdout);
    let households = rows
        .iter()
        .find(|(n, _)| n == "households.csv")
        .map_or(0, |(_, n)| *n);
    let store = data::dir_bytes(&dir);
    let per_s = records as f64 / f.wall_s;
    eprintln!(
        "  {records} records ({households} households) in {:.1} s: {per_s:.0} records/s, peak RSS {:.1} MiB, store {:.1} MiB",
        f.wall_s,
        f.peak_rss_mib,
        data::mib_of(store)
    );
    figs.add(
        "county_import_peak_rss_mib",
        Some(f.peak_rss_mib),
        Some(IMPORT_PEAK_TARGET_MIB),
        "MiB",
    );
    figs.add("county_import_records_per_s", Some(per_s), None, "rec/s");
    figs.add("county_import_wall_s", Some(f.wall_s), None, "s");
    let report = json!({
        "county": COUNTY,
        "households": households,
        "records": records,
        "rows_per_file": rows.iter().map(|(n, r)| (n.clone(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "wall_s": round1(f.wall_s),
        "records_per_s": per_s.round(),
        "cpu_s": {"user": f.user_s, "sys": f.sys_s},
        "peak_rss_mib": round1(f.peak_rss_mib),
        "peak_rss_source": "ru_maxrss of the import process (wait4)",
        "target_peak_rss_mib": IMPORT_PEAK_TARGET_MIB,
        "store_mib": data::mib_of(store),
        "gen_s": set.gen.as_ref().map(|g| g.wall_s),
        "data_end": set.end.to_string(),
    });
    Ok((report, dir))
}

/// Import the registry (`divisions_for` the node) into each of `codes`' data dirs under
/// `dir`, two at a time.
pub async fn import_registries(cx: &Ctx, set: &Path, dir: &Path, codes: &[Code]) -> Res<()> {
    let mut cmds = Vec::new();
    for &c in codes {
        let divs = data::divisions_for(set, c, &dir.join("divisions").join(c.to_string()))?;
        let cmd = data::import_cmd(&cx.bin, &dir.join(c.to_string()), c, &[divs]);
        cmds.push((cmd, format!("registry-{c}")));
    }
    crate::procs::run_all(cmds, &cx.logs, 2, |_, _, _| {}).await?;
    Ok(())
}

/// Part 2: serve the county under its city and the province; see the benchmark's doc.
pub async fn serve(cx: &mut Ctx, figs: &mut Figures, imported: Option<PathBuf>) -> Res<Value> {
    let county = Code::parse(COUNTY)?;
    let city = county.parent().ok_or("a county has a city")?;
    let province = city.parent().ok_or("a city has a province")?;
    let set = county_set(cx).await?;
    let dir = cx.tmp.join("serve");
    std::fs::create_dir_all(&dir)?;
    let county_dir = tree::store_dir(&dir, county);
    match imported {
        // Part 1's store, served as it was left.
        Some(d) => std::fs::rename(d, &county_dir)?,
        None => {
            eprintln!("part serve: importing county {COUNTY} first …");
            let files = data::county_files(&set.dir, county);
            let cmd = data::import_cmd(&cx.bin, &county_dir, county, &files);
            Job::start(cmd, &cx.logs, &format!("import-{COUNTY}"))?
                .finish()
                .await?
                .ok()?;
        }
    }
    import_registries(cx, &set.dir, &dir, &[province, city]).await?;
    let inbox = dir.join("inbox");

    eprintln!("part serve: province, city and county {COUNTY} as processes …");
    let sampler = Sampler::start(cx.s.sample);
    let parents = [province, city];
    let mut tree = tree::start_tree(cx, &dir, &parents, &[county], Some(&inbox), &sampler).await?;
    let pid = tree.nodes[2].pid();
    let t_start = tree.nodes[2].spawned;
    let start_unix_ms = bottomline::ledger::unix_ms_now() - t_start.elapsed().as_millis() as i64;
    let clients = watch::connect(&tree, &cx.client_tls).await?;
    let deadline = Instant::now() + START_DEADLINE;
    let linked = watch::wait_linked(&clients, &mut tree, cx.s.poll, deadline).await?;
    let held = watch::wait_held(&clients, &mut tree, cx.s.poll, t_start + cx.s.deadline)
        .await?
        .all;
    let since = |t: Instant| round1(t.saturating_duration_since(t_start).as_secs_f64());
    match held {
        Some(h) => eprintln!(
            "  the province holds all the county's figures {:.1} s after its spawn",
            since(h)
        ),
        None => eprintln!("  the province did not hold the county's figures in time"),
    }
    let checked = wait_checks(cx, &clients, &mut tree).await?;
    tokio::time::sleep(cx.s.settle).await;
    let t_end = Instant::now();
    let window = (sampler.t(t_start), sampler.t(t_end));
    let serving_now = mem_of(pid);
    // The window starts with the process: its VmHWM is the exact peak (the samples can miss
    // a short one).
    let serving_max = sampler
        .max_mib(pid, window.0, window.1)
        .into_iter()
        .chain(serving_now.map(|m| mib(m.hwm)))
        .reduce(f64::max);
    let st = watch::all_status(&clients).await?;
    let check = st
        .get(&county)
        .and_then(watch::self_check)
        .map(|(at, ok)| json!({"at_s": round1((at - start_unix_ms) as f64 / 1000.0), "ok": ok}));
    let series = sampler.series(window.0, 1.0, |k| {
        k.rss.iter().find(|(p, _)| *p == pid).map(|(_, r)| *r)
    });
    eprintln!(
        "  county RSS while it syncs: max {:.1} MiB, after {:.0} s more {:.1} MiB (VmHWM {:.1})",
        serving_max.unwrap_or(f64::NAN),
        cx.s.settle.as_secs_f64(),
        serving_now.map_or(f64::NAN, |m| mib(m.rss)),
        serving_now.map_or(f64::NAN, |m| mib(m.hwm)),
    );
    figs.add(
        "serving_county_rss_mib_max",
        serving_max,
        Some(SERVING_TARGET_MIB),
        "MiB",
    );
    figs.add(
        "serving_county_rss_mib_final",
        serving_now.map(|m| mib(m.rss)),
        Some(SERVING_TARGET_MIB),
        "MiB",
    );

    // The inbox, while it serves.
    let mut drops = Drops {
        tree: &mut tree,
        clients: &clients,
        sampler: &sampler,
        pid,
        inbox: &inbox,
        cx,
    };
    let day = set.end.tomorrow()?;
    let stage = dir.join("stage-next-day");
    let n = data::next_day(&set.dir.join(COUNTY), &stage, day)?;
    eprintln!(
        "  next day into the inbox: {} signals, {} measures, {} household corrections …",
        n.signals, n.measures, n.household_corrections
    );
    let mut next_day = drops.drop_and_wait(&stage).await?;
    next_day["records"] = json!({"signals": n.signals, "measures": n.measures,
        "household_corrections": n.household_corrections, "total": n.records()});
    let stage = dir.join("stage-resend");
    std::fs::create_dir_all(&stage)?;
    let mut resent = 0;
    for f in data::county_files(&set.dir, county) {
        let name = f.file_name().ok_or("a file name")?;
        std::fs::copy(&f, stage.join(name))?;
        resent += 1;
    }
    eprintln!("  all the county's files again into the inbox ({resent} files) …");
    let resend = drops.drop_and_wait(&stage).await?;
    for (what, j) in [("next day", &next_day), ("full resend", &resend)] {
        figs.add(
            &format!(
                "serving_county_inbox_{}_rss_mib_max",
                what.replace(' ', "_")
            ),
            j["peak_rss_mib"].as_f64(),
            Some(SERVING_TARGET_MIB),
            "MiB",
        );
    }

    let (mut matched, mut compared) = (0, 0);
    if held.is_some() {
        let year = set.end.year().to_string();
        let (m, c, _) = watch::stats_match(&clients, province, &[county], &year).await?;
        (matched, compared) = (m, c);
    }
    let nodes: Vec<Value> = tree
        .nodes
        .iter()
        .map(|n| json!({"division": n.code.to_string(), "memory": mem_json(mem_of(n.pid()))}))
        .collect();
    let county_store = data::dir_bytes(&county_dir);
    let problems: Vec<Value> = tree
        .nodes
        .iter()
        .map(|n| {
            let p = crate::procs::log_problems(n);
            json!({"division": n.code.to_string(), "errors": p.errors, "warnings": p.warnings,
                "first_error": p.first_error, "first_warning": p.first_warning})
        })
        .collect();
    let (unclean, killed) = tree.stop();
    Ok(json!({
        "county": COUNTY,
        "linked_s": since(linked.all),
        "province_holds_all_s": held.map(since),
        "self_checks_done_s": checked.map(since),
        "window_s": round1(window.1 - window.0),
        "serving_rss_mib": {
            "max": serving_max,
            "final": serving_now.map(|m| round1(mib(m.rss))),
            "target": SERVING_TARGET_MIB,
        },
        "county_memory_final": mem_json(serving_now),
        "county_self_check": check,
        "county_rss_series_mib": series,
        "inbox_next_day": next_day,
        "inbox_full_resend": resend,
        "nodes_memory_at_end": nodes,
        "county_store_mib_at_end": data::mib_of(county_store),
        "stats_equal_at_province": format!("{matched}/{compared}"),
        "logs": problems,
        "unclean_exits": unclean.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "killed": killed.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

/// With `BENCH_CHECK_SECS` set, wait until every node ran its first self-check (a node runs
/// it at a random point of its first period, at least 10 s after its start), so that the
/// memory window includes it; up to the period, a minute and 3 s per node more. Without it the nodes keep
/// their default period (600 s) and the window ends before their first check.
pub async fn wait_checks(
    cx: &Ctx,
    clients: &std::collections::HashMap<Code, SyncClient>,
    tree: &mut Tree,
) -> Res<Option<Instant>> {
    let Some(period) = cx.s.check_secs.filter(|c| *c > 0.0) else {
        return Ok(None);
    };
    // A realistic county's check takes ~3 s of CPU: a tree's checks queue on two cores.
    let margin = 60.0 + 3.0 * clients.len() as f64;
    let deadline = Instant::now() + Duration::from_secs_f64(period + margin);
    let done = watch::wait_self_checked(clients, tree, 0, cx.s.poll, deadline).await?;
    if done.is_none() {
        eprintln!("  not every node ran its self-check within {period} s + {margin} s");
    }
    Ok(done)
}

/// Drops into the serving county's inbox.
struct Drops<'a> {
    tree: &'a mut Tree,
    clients: &'a std::collections::HashMap<Code, SyncClient>,
    sampler: &'a Sampler,
    pid: u32,
    inbox: &'a Path,
    cx: &'a Ctx,
}

impl Drops<'_> {
    /// Move the files of `stage` into the inbox at once; wait until the node took them all
    /// (moved to `done/` or `rejected/`), then until the province holds the result, then the
    /// settle time. Peak sampled RSS over all of it.
    async fn drop_and_wait(&mut self, stage: &Path) -> Res<Value> {
        let rejected =
            |dir: &Path| std::fs::read_dir(dir.join("rejected")).map_or(0, |d| d.count());
        let rejected_before = rejected(self.inbox);
        let before = mem_of(self.pid);
        let names: Vec<std::ffi::OsString> = std::fs::read_dir(stage)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        let t0 = Instant::now();
        for n in &names {
            std::fs::rename(stage.join(n), self.inbox.join(n))?;
        }
        let deadline = t0 + self.cx.s.deadline;
        loop {
            if !names.iter().any(|n| self.inbox.join(n).exists()) {
                break;
            }
            if Instant::now() > deadline {
                return Err("the inbox did not take the files in time".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let taken = t0.elapsed().as_secs_f64();
        if rejected(self.inbox) > rejected_before {
            let reports: Vec<String> = std::fs::read_dir(self.inbox.join("rejected"))?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".report.txt"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            return Err(format!("the inbox rejected a file:\n{}", reports.join("\n")).into());
        }
        let held = watch::wait_held(self.clients, self.tree, self.cx.s.poll, deadline)
            .await?
            .all;
        let held_s = held.map(|h| h.saturating_duration_since(t0).as_secs_f64());
        tokio::time::sleep(self.cx.s.settle).await;
        let t1 = Instant::now();
        let sampled = self
            .sampler
            .max_mib(self.pid, self.sampler.t(t0), self.sampler.t(t1));
        self.tree.check_running()?;
        let after = mem_of(self.pid);
        // A VmHWM that rose during the drop is its exact peak (the samples can miss a short
        // one).
        let hwm_rose = match (before, after) {
            (Some(b), Some(a)) if a.hwm > b.hwm => Some(mib(a.hwm)),
            _ => None,
        };
        let peak = sampled
            .into_iter()
            .chain(after.map(|m| mib(m.rss)))
            .chain(hwm_rose)
            .reduce(f64::max);
        eprintln!(
            "    taken in {taken:.1} s, held at the province after {:.1} s; county RSS before {:.1}, peak {:.1}, after {:.1} MiB",
            held_s.unwrap_or(f64::NAN),
            before.map_or(f64::NAN, |m| mib(m.rss)),
            peak.unwrap_or(f64::NAN),
            after.map_or(f64::NAN, |m| mib(m.rss)),
        );
        Ok(json!({
            "files": names.iter().map(|n| n.to_string_lossy().to_string()).collect::<Vec<_>>(),
            "imported_s": round1(taken),
            "imported_s_note": "from the drop until the inbox moved every file to done/ (includes the inbox's two looks, 2 s apart)",
            "province_holds_all_s": held_s.map(round1),
            "rss_before_mib": before.map(|m| round1(mib(m.rss))),
            "peak_rss_mib": peak,
            "memory_after": mem_json(after),
        }))
    }
}
