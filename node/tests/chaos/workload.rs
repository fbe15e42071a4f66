//! What the users do while the chaos runs: counties import their files part by part over
//! `bottomline import --addr`, the province and the cities issue tickets with `bottomline
//! tickets issue|inventory`, the counties accept, start and rectify them and the issuers
//! verify or return them, all through the CLI. A call that fails (its node was killed or cut
//! off) is tried again later; a call that succeeded is never repeated, so the end state
//! shows whether anything acknowledged was lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bottomline::rpc::tickets_client::{ListFilter, TicketRow, TicketsClient};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{at, jitter};
use crate::common::procs::BIN;

/// How long one CLI call may take before it is abandoned (its process killed).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the whole workload may take.
const WORK_DEADLINE: Duration = Duration::from_secs(150);

/// Run the CLI with `args`; `Ok(stdout)` when it exited 0, `Err(output)` otherwise or when
/// it timed out.
pub async fn cli(args: &[String]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("BOTTOMLINE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(CALL_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!("timed out after {CALL_TIMEOUT:?}")),
        Ok(Err(e)) => panic!("cannot run {BIN}: {e}"),
        Ok(Ok(o)) => {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            if o.status.success() {
                Ok(out)
            } else {
                Err(format!("{out}{}", String::from_utf8_lossy(&o.stderr)))
            }
        }
    }
}

/// The first line of a CLI failure, for the log.
fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// What happened, for the final checks.
#[derive(Default)]
pub struct Outcome {
    /// Import parts acknowledged, by county.
    pub imports_acked: BTreeMap<String, usize>,
    /// Import calls that failed.
    pub import_failures: usize,
    /// Per (ticket key, action): calls acknowledged and calls made.
    pub acts: BTreeMap<(String, &'static str), (u32, u32)>,
    /// Tickets whose issue call was acknowledged.
    pub issued_acked: BTreeSet<String>,
    /// Ticket calls that failed.
    pub ticket_failures: usize,
    /// The node each worker ("import", "tickets") is calling right now: the chaos aims at it
    /// now and then, to kill a node in the middle of a call.
    pub busy: BTreeMap<&'static str, String>,
}

/// Run `args` as `worker`'s call to `division`, marked busy meanwhile.
async fn call(
    out: &Mutex<Outcome>,
    worker: &'static str,
    division: &str,
    args: &[String],
) -> Result<String, String> {
    out.lock()
        .unwrap()
        .busy
        .insert(worker, division.to_string());
    let r = cli(args).await;
    out.lock().unwrap().busy.remove(worker);
    r
}

// ------------------------------------------------------------------------------------------
// Imports
// ------------------------------------------------------------------------------------------

/// Import every county's parts in order over its node's API, counties interleaved at random,
/// retrying each part until it is acknowledged.
pub async fn import_all(
    addrs: &BTreeMap<String, String>,
    parts: &BTreeMap<String, Vec<Vec<PathBuf>>>,
    seed: u64,
    t0: Instant,
    out: &Mutex<Outcome>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1a9_0a7);
    let mut next: BTreeMap<&String, usize> = parts.keys().map(|c| (c, 0)).collect();
    let mut failures: BTreeMap<(String, usize), u32> = BTreeMap::new();
    let deadline = Instant::now() + WORK_DEADLINE;
    loop {
        let open: Vec<&String> = next
            .iter()
            .filter(|(c, k)| **k < parts[**c].len())
            .map(|(c, _)| *c)
            .collect();
        let Some(county) = open.choose(&mut rng).copied() else {
            break;
        };
        assert!(Instant::now() < deadline, "imports did not finish");
        let k = next[county];
        let mut args = vec!["import".to_string(), "--addr".into(), addrs[county].clone()];
        args.extend(parts[county][k].iter().map(|p| p.display().to_string()));
        match call(out, "import", county, &args).await {
            Ok(_) => {
                *next.get_mut(county).expect("county") += 1;
                *out.lock()
                    .unwrap()
                    .imports_acked
                    .entry(county.clone())
                    .or_default() += 1;
                eprintln!("{} import {county} part {} acknowledged", at(t0), k + 1);
            }
            Err(e) => {
                out.lock().unwrap().import_failures += 1;
                let n = failures.entry((county.clone(), k)).or_default();
                *n += 1;
                assert!(
                    *n < 60,
                    "import of {county} part {} keeps failing: {e}",
                    k + 1
                );
                eprintln!(
                    "{} import {county} part {} failed ({}), later again",
                    at(t0),
                    k + 1,
                    first_line(&e)
                );
            }
        }
        tokio::time::sleep(jitter(&mut rng, 100, 900)).await;
    }
}

// ------------------------------------------------------------------------------------------
// Tickets
// ------------------------------------------------------------------------------------------

/// How far a ticket goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Accepted, started, rectified, verified: closed.
    Close,
    /// Rectified, returned once by the issuer, rectified again, verified: closed.
    ReturnOnce,
    /// Accepted and started: rectifying.
    Start,
    /// Accepted only.
    Accept,
    /// Rectified, never verified: rectified.
    Rectify,
}

impl Plan {
    const ALL: [Plan; 5] = [
        Plan::Close,
        Plan::ReturnOnce,
        Plan::Start,
        Plan::Accept,
        Plan::Rectify,
    ];

    /// The state it ends in, and its returns.
    pub fn end(self) -> (&'static str, u32) {
        match self {
            Plan::Close => ("closed", 0),
            Plan::ReturnOnce => ("closed", 1),
            Plan::Start => ("rectifying", 0),
            Plan::Accept => ("accepted", 0),
            Plan::Rectify => ("rectified", 0),
        }
    }
}

/// One ticket of the workload.
#[derive(Clone, Debug)]
pub struct Planned {
    pub key: String,
    pub issuer: String,
    pub id: String,
    pub target: String,
    pub plan: Plan,
}

impl Planned {
    /// The nodes that hold it: from its issuer down to its target.
    pub fn holders(&self) -> Vec<String> {
        let mut h = vec![self.issuer.clone()];
        if self.issuer.len() == 2 {
            h.push(self.target[..4].to_string());
        }
        h.push(self.target.clone());
        h
    }
}

/// Two tickets per county from the province (one inventory) and one per county from each
/// of `issuing_cities` (one `issue` call each); plans assigned in turn.
pub fn plan_tickets(counties: &[String], issuing_cities: &[&str]) -> Vec<Planned> {
    let mut v = Vec::new();
    for round in 0..2 {
        for (i, c) in counties.iter().enumerate() {
            let id = format!("P{:02}", round * counties.len() + i + 1);
            v.push((String::from("61"), id, c.clone()));
        }
    }
    for city in issuing_cities {
        for c in counties.iter().filter(|c| c.starts_with(city)) {
            v.push((city.to_string(), format!("K{c}"), c.clone()));
        }
    }
    v.into_iter()
        .enumerate()
        .map(|(i, (issuer, id, target))| Planned {
            key: format!("{issuer}/{id}"),
            issuer,
            id,
            target,
            plan: Plan::ALL[i % Plan::ALL.len()],
        })
        .collect()
}

fn deadline_date() -> String {
    bottomline::period::today_in_china()
        .checked_add(jiff::Span::new().days(30))
        .expect("date")
        .to_string()
}

/// Every ticket `addr` holds (`None` when the node does not answer in time).
pub async fn list_all(addr: &str) -> Option<Vec<TicketRow>> {
    let call = async {
        let mut c = TicketsClient::connect(addr, None).await.ok()?;
        c.list(&ListFilter::default())
            .await
            .ok()
            .map(|(rows, _)| rows)
    };
    tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .ok()
        .flatten()
}

/// Whether `addr` holds `key` (`None` when it does not answer).
async fn holds(addr: &str, key: &str) -> Option<bool> {
    let call = async {
        let mut c = TicketsClient::connect(addr, None).await.ok()?;
        match c.show(key).await {
            Ok(_) => Some(true),
            Err(e) if e.code() == Some(tonic::Code::NotFound) => Some(false),
            Err(_) => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .ok()
        .flatten()
}

/// Issue `group` (one inventory from the province, or one ticket from a city) unless its
/// issuer holds it already (an earlier call that failed may have been committed). True once
/// issued.
async fn issue(
    addrs: &BTreeMap<String, String>,
    group: &[&Planned],
    dir: &Path,
    out: &Mutex<Outcome>,
    t0: Instant,
) -> bool {
    let first = group[0];
    let addr = &addrs[&first.issuer];
    match holds(addr, &first.key).await {
        None => return false,
        Some(true) => return true,
        Some(false) => {}
    }
    let deadline = deadline_date();
    let mut args: Vec<String> = vec!["tickets".into(), "--addr".into(), addr.clone()];
    if group.len() > 1 {
        let mut csv = String::from("id,target,category,source,severity,deadline,description\n");
        for t in group {
            csv.push_str(&format!(
                "{},{},housing safety,inspection,high,{deadline},finding {} of the inspection\n",
                t.id, t.target, t.id
            ));
        }
        let file = dir.join("chaos-inventory.csv");
        std::fs::write(&file, csv).expect("write inventory");
        args.extend(["inventory".into(), file.display().to_string()]);
        args.extend(["--name".into(), "chaos".into()]);
    } else {
        args.extend(
            [
                "issue",
                "--id",
                &first.id,
                "--target",
                &first.target,
                "--category",
                "income",
                "--source",
                "self_found",
                "--severity",
                "medium",
                "--deadline",
                &deadline,
                "--description",
                "income check overdue",
            ]
            .map(String::from),
        );
    }
    match call(out, "tickets", &first.issuer, &args).await {
        Ok(_) => {
            let mut o = out.lock().unwrap();
            o.issued_acked.extend(group.iter().map(|t| t.key.clone()));
            eprintln!(
                "{} issued {} ticket(s) at {}",
                at(t0),
                group.len(),
                first.issuer
            );
            true
        }
        Err(e) => {
            out.lock().unwrap().ticket_failures += 1;
            eprintln!(
                "{} issuing at {} failed ({}), later again",
                at(t0),
                first.issuer,
                first_line(&e)
            );
            false
        }
    }
}

/// One action on `keys` at `division`'s node through the CLI, recorded per ticket.
async fn act(
    (division, addr): (&str, &str),
    action: &'static str,
    keys: &[String],
    out: &Mutex<Outcome>,
    t0: Instant,
) {
    if keys.is_empty() {
        return;
    }
    let mut args: Vec<String> = vec!["tickets".into(), "--addr".into(), addr.into()];
    args.push(action.into());
    args.extend(keys.iter().cloned());
    match action {
        "rectify" => args.extend(["--note".into(), "fixed, photos attached".into()]),
        "return" => args.extend(["--reason".into(), "the photos are missing".into()]),
        _ => {}
    }
    let r = call(out, "tickets", division, &args).await;
    let mut o = out.lock().unwrap();
    for k in keys {
        let e = o.acts.entry((k.clone(), action)).or_default();
        e.1 += 1;
        if r.is_ok() {
            e.0 += 1;
        }
    }
    match r {
        Ok(_) => eprintln!("{} {action} {} ticket(s) at {division}", at(t0), keys.len()),
        Err(e) => {
            o.ticket_failures += 1;
            eprintln!(
                "{} {action} at {division} failed ({}), later again",
                at(t0),
                first_line(&e)
            );
        }
    }
}

/// Drive every planned ticket to its end state: issue them (the province's at once, the
/// cities' one by one along the way), then, reading the states at each node, act as the
/// plans say until every node holding a ticket shows its end state.
pub async fn drive_tickets(
    addrs: &BTreeMap<String, String>,
    plans: &[Planned],
    dir: &Path,
    seed: u64,
    t0: Instant,
    out: &Mutex<Outcome>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x71c_4e75);
    let by_key: BTreeMap<&str, &Planned> = plans.iter().map(|p| (p.key.as_str(), p)).collect();
    let province: Vec<&Planned> = plans.iter().filter(|p| p.issuer == "61").collect();
    let mut to_issue: Vec<Vec<&Planned>> = vec![province];
    to_issue.extend(plans.iter().filter(|p| p.issuer != "61").map(|p| vec![p]));
    let groups = to_issue.len();
    let counties: BTreeSet<&str> = plans.iter().map(|p| p.target.as_str()).collect();
    let issuers: BTreeSet<&str> = plans.iter().map(|p| p.issuer.as_str()).collect();
    let deadline = Instant::now() + WORK_DEADLINE;
    tokio::time::sleep(jitter(&mut rng, 200, 1500)).await;
    loop {
        assert!(
            Instant::now() < deadline,
            "the tickets did not reach their end states"
        );
        // Issue the next group (the province's first), now and then.
        if let Some(group) = to_issue.first() {
            if (to_issue.len() == groups || rng.random_bool(0.6))
                && issue(addrs, group, dir, out, t0).await
            {
                to_issue.remove(0);
            }
        }
        // The counties act on what they hold.
        let mut order: Vec<&str> = counties.iter().copied().collect();
        order.shuffle(&mut rng);
        for c in order {
            // Not every county every time: the work spreads over the chaos.
            if !rng.random_bool(0.5) {
                continue;
            }
            let Some(rows) = list_all(&addrs[c]).await else {
                continue;
            };
            let mut todo: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
            for r in rows.iter().filter(|r| r.target == c) {
                let Some(p) = by_key.get(r.key.as_str()) else {
                    continue;
                };
                let action = match (r.state.as_str(), p.plan) {
                    ("delivered", _) => "accept",
                    ("accepted", Plan::Accept) => continue,
                    ("accepted", _) => "start",
                    ("rectifying", Plan::Close | Plan::ReturnOnce | Plan::Rectify) => "rectify",
                    _ => continue,
                };
                todo.entry(action).or_default().push(r.key.clone());
            }
            for (action, keys) in todo {
                act((c, &addrs[c]), action, &keys, out, t0).await;
            }
        }
        // The issuers verify or return what was rectified.
        for i in &issuers {
            if !rng.random_bool(0.6) {
                continue;
            }
            let Some(rows) = list_all(&addrs[*i]).await else {
                continue;
            };
            let mut todo: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
            for r in rows
                .iter()
                .filter(|r| r.issuer == *i && r.state == "rectified")
            {
                let Some(p) = by_key.get(r.key.as_str()) else {
                    continue;
                };
                let action = match (p.plan, r.returns) {
                    (Plan::ReturnOnce, 0) => "return",
                    (Plan::Close | Plan::ReturnOnce, _) => "verify",
                    _ => continue,
                };
                todo.entry(action).or_default().push(r.key.clone());
            }
            for (action, keys) in todo {
                act((i, &addrs[*i]), action, &keys, out, t0).await;
            }
        }
        if to_issue.is_empty() && at_end_everywhere(addrs, plans).await {
            eprintln!("{} every ticket is in its end state at every node", at(t0));
            return;
        }
        tokio::time::sleep(jitter(&mut rng, 200, 900)).await;
    }
}

/// Every node holding a planned ticket shows its end state.
pub async fn at_end_everywhere(addrs: &BTreeMap<String, String>, plans: &[Planned]) -> bool {
    let nodes: BTreeSet<String> = plans.iter().flat_map(|p| p.holders()).collect();
    for n in nodes {
        let Some(rows) = list_all(&addrs[&n]).await else {
            return false;
        };
        let held: BTreeMap<&str, &TicketRow> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
        for p in plans.iter().filter(|p| p.holders().contains(&n)) {
            let (state, returns) = p.plan.end();
            match held.get(p.key.as_str()) {
                Some(r) if r.state == state && r.returns == returns => {}
                _ => return false,
            }
        }
    }
    true
}
