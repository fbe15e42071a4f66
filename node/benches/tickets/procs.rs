//! The ticket benchmark's process mode (the default): every node of the Shaanxi tree is its
//! own `bottomline serve` process, as a deployment runs it (one sled per process, so no node
//! waits on another's sled lock).
//!
//! - **Tree.** A CA of the benchmark's own (`Pki::open_or_init` in the temp dir), a node
//!   certificate per division and one operator certificate (`bench.op`, province, operator)
//!   for every client call. Each node gets a TOML config (`division`, `data_dir`, `parent`,
//!   `listen = "127.0.0.1:0"`, `[tls]`, `[sync] reconnect_secs = 0.05`: the in-process
//!   mode's settings) and its log in `<tmp>/nodes/<code>.log`; the address it bound is read
//!   from its `listening addr=` line, so no port is picked and released. The province starts
//!   first, then the cities, then the counties (every node listens: the counties serve the
//!   clerks' API calls); then every node's `Status` must show its uplink connected (120 s).
//! - **Round.** The tree is quiet first (below). The benchmark issues the round's tickets (the
//!   in-process mode's: same ids, targets, text, inventory) through the province's `Tickets`
//!   API (`issue`, one call); t0 is just before the call, which returns once they are durable
//!   at the province. Then, over channels opened once at the start:
//!   - one clerk task per county polls its county's `Status` every `BENCH_POLL_MS` (default
//!     20, the counties staggered over the interval) until the county's durable ticket head
//!     moved by 2 × its tickets (issue + delivery of each, flushed: what the in-process clerk
//!     reads from `Ledger::ticket_head`) — "durable at the target"; then it lists the
//!     round's delivered tickets at its county and accepts them in one `act` call, as the
//!     in-process clerk does one `act_on_tickets`. (`List` would not do for the durable
//!     time: it folds the store, which shows a commit before its flush.)
//!   - each city's `Status` is polled the same way (a task per city) for "held at all
//!     cities" (head moved by the city's tickets);
//!   - the province's `Status` is polled until its durable ticket head moved by 3 × the
//!     tickets (every acceptance flushed there) — "all accepted visible at the province". Its
//!     `List` would fold all 10 000 × rounds tickets on every poll; the count is checked once
//!     afterwards with two `List` calls (round's inventory: held, and accepted).
//!
//!   Polling starts when the issue call returned (nothing reaches a county before the
//!   province's flush), so the issue runs without it. A time is when the reply that showed
//!   the head there arrived: up to one interval plus the node's reply time late, never early
//!   (a city busy forwarding answers slowest, so "held at all cities" can come out after
//!   "durable at all targets", which it cannot physically be).
//! - **Quiet** (before each round): every node's `Status`, twice in a row, shows each child's
//!   change log acked by its parent up to the child's head, its ticket log acked up to the
//!   child's ticket head, and the parent's ticket log acked by the child up to the parent's
//!   ticket head (the in-process mode's condition, read over the API).
//! - **Cost.** Per round the CPU time of the 118 processes and of the benchmark process from t0
//!   to the province poll's end (`/proc/PID/stat`, `getrusage`); the province's peak RSS
//!   before and after the round's check; at the end the peak RSS of every process
//!   (`VmHWM`), summed (shared pages counted in each process) and the largest per level.
//! - **Stop.** SIGTERM to every node, 30 s to exit, then SIGKILL; the same from `Drop` on any
//!   error path, and every node is spawned with `PR_SET_PDEATHSIG` (SIGTERM) from the main
//!   thread, so none outlives the benchmark even if it is killed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::ledger::Act;
use bottomline::rpc::tickets_client::{ListFilter, NewTicket, TicketsClient};
use bottomline::security::pki::Pki;
use bottomline::security::tls::{self, ClientTls, Expect, TlsFiles};
use bottomline::security::{Identity, Role};
use bottomline::tickets::{State, Ticket};
use bottomline_proto::v1 as pb;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;

use crate::common::procs::{binary, peak_rss_mib_of, Tree, STOP_GRACE};
use crate::common::{node_toml, percentile, Res};
use crate::{
    report_head, round_tickets, shape, ticket_deadline, ACCEPTED_TARGET_S, DURABLE_TARGET_S,
};

/// What both modes take from the environment.
pub struct Settings {
    /// Tickets per round (`BENCH_TICKETS`).
    pub per_round: usize,
    /// Rounds (`BENCH_ROUNDS`).
    pub rounds: usize,
    /// mTLS on every link and call (`BENCH_TLS`, default on).
    pub tls: bool,
}

/// How long the tree may take to start and link, to settle between rounds, and a round.
const START_DEADLINE: Duration = Duration::from_secs(120);
const QUIET_DEADLINE: Duration = Duration::from_secs(120);
const ROUND_DEADLINE: Duration = Duration::from_secs(300);

type SyncClient = pb::sync_client::SyncClient<tonic::transport::Channel>;

/// Start the node of `code` in `tree` from a config written under `dir`: the in-process
/// mode's settings ([`node_toml`]). Must run on the main thread (see [`Tree::spawn`]).
fn spawn_node(
    tree: &mut Tree,
    bin: &Path,
    dir: &Path,
    code: Code,
    parent: Option<&str>,
    tls: Option<&TlsFiles>,
) -> Res<()> {
    tree.spawn(bin, dir, code, &node_toml(dir, code, parent, true, tls))
}

/// CPU time (user + system) this process used so far, in seconds.
pub fn self_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU time (user + system, all threads) process `pid` used so far, in seconds.
fn cpu_s_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

fn nodes_cpu_s(tree: &Tree) -> f64 {
    tree.nodes.iter().filter_map(|n| cpu_s_of(n.pid())).sum()
}

async fn status(c: &SyncClient) -> Res<pb::StatusReply> {
    Ok(c.clone().status(pb::StatusRequest {}).await?.into_inner())
}

/// Every node's `Status`, asked concurrently.
async fn all_status(clients: &HashMap<Code, SyncClient>) -> Res<HashMap<Code, pb::StatusReply>> {
    let mut set = tokio::task::JoinSet::new();
    for (&code, c) in clients {
        let c = c.clone();
        set.spawn(async move { (code, status(&c).await) });
    }
    let mut out = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (code, s) = r?;
        out.insert(code, s.map_err(|e| format!("status of {code}: {e}"))?);
    }
    Ok(out)
}

/// The in-process mode's quiet condition over `Status` replies: for every node with a
/// parent, the parent acked its change log and ticket log up to their heads, and it acked
/// the parent's ticket log up to the parent's head.
fn quiet(st: &HashMap<Code, pb::StatusReply>) -> bool {
    st.iter().all(|(code, s)| {
        let Some(ps) = code.parent().and_then(|p| st.get(&p)) else {
            return true;
        };
        let me = code.to_string();
        ps.children
            .iter()
            .find(|c| c.division == me)
            .is_some_and(|c| {
                c.acked >= s.head
                    && c.ticket_acked_up >= s.ticket_head
                    && c.ticket_acked_down >= ps.ticket_head
            })
    })
}

/// Poll the node's `Status` every `poll` until its durable ticket head reaches `head`;
/// returns when the reply saying so arrived, in seconds from `t0` (an upper bound: the head
/// got there between the previous reply and this one).
async fn wait_head(sync: &SyncClient, head: u64, t0: Instant, poll: Duration) -> Res<f64> {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = status(sync).await?.ticket_head;
        if now >= head {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > ROUND_DEADLINE {
            return Err(format!("ticket head {now} of {head} after {ROUND_DEADLINE:?}").into());
        }
    }
}

/// A county clerk: from `delay` after the issue returned, polls its county's `Status` every
/// `poll` until its durable ticket head moved by `2 × want` (issue + delivery of each of its
/// tickets); then accepts the round's delivered tickets with one `act` call per poll until
/// all `want` are accepted. Returns (durable, all accepted) in seconds from `t0`.
#[allow(clippy::too_many_arguments)]
async fn clerk(
    code: Code,
    sync: SyncClient,
    api: Arc<Mutex<TicketsClient>>,
    base: u64,
    want: u64,
    inventory: String,
    t0: Instant,
    delay: Duration,
    poll: Duration,
) -> Res<(f64, f64)> {
    tokio::time::sleep(delay).await;
    let durable = wait_head(&sync, base + 2 * want, t0, poll)
        .await
        .map_err(|e| format!("county {code}: {e}"))?;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let filter = ListFilter {
        state: Some(State::Delivered.to_string()),
        target: Some(code),
        inventory: Some(inventory),
        ..ListFilter::default()
    };
    let mut api = api.lock().await;
    let mut accepted = 0;
    loop {
        // The first tick is at once.
        tick.tick().await;
        let (rows, _) = api.list(&filter).await?;
        if !rows.is_empty() {
            let keys: Vec<String> = rows.into_iter().map(|r| r.key).collect();
            api.act(Some(code), &keys, &Act::Accept).await?;
            accepted += keys.len() as u64;
        }
        if accepted >= want {
            return Ok((durable, t0.elapsed().as_secs_f64()));
        }
        if t0.elapsed() > ROUND_DEADLINE {
            return Err(format!("county {code}: {accepted} of {want} accepted").into());
        }
    }
}

fn new_ticket(t: Ticket) -> NewTicket {
    NewTicket {
        id: t.id,
        target: t.target.to_string(),
        category: t.category,
        source: t.source.to_string(),
        severity: t.severity.to_string(),
        deadline: t.deadline.to_string(),
        description: t.description,
        household_code: t.household_code,
        inventory: t.inventory,
    }
}

/// The process mode: see the module doc.
pub async fn run(cfg: Settings) -> Res<()> {
    let Settings {
        per_round,
        rounds,
        tls,
    } = cfg;
    let poll =
        Duration::from_millis(crate::common::env_or::<u32>("BENCH_POLL_MS", 20).max(1) as u64);
    let bin = binary("tickets")?;
    // Declared before the tree, so dropped after it: the nodes stop before their stores go.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("nodes");
    std::fs::create_dir_all(&dir)?;
    let (province, cities, counties) = shape()?;

    let mut pki = if tls {
        Some(Pki::open_or_init(
            &tmp.path().join("pki"),
            "Bottomline benchmark",
        )?)
    } else {
        None
    };
    let mut files = |id: Identity| -> Res<Option<TlsFiles>> {
        pki.as_mut()
            .map(|p| p.files_for(&id))
            .transpose()
            .map_err(Into::into)
    };
    let client_files = files(Identity::Operator {
        name: "bench.op".into(),
        division: province,
        role: Role::Operator,
    })?;
    let client_tls = client_files.as_ref().map(ClientTls::load).transpose()?;
    let client_tls = client_tls.as_ref();
    let mut node_files = HashMap::new();
    for &c in std::iter::once(&province).chain(&cities).chain(&counties) {
        node_files.insert(c, files(Identity::Node { division: c })?);
    }

    // Start the tree, a level at a time (a child needs its parent's address).
    let t_start = Instant::now();
    let deadline = t_start + START_DEADLINE;
    let mut tree = Tree::default();
    spawn_node(
        &mut tree,
        &bin,
        &dir,
        province,
        None,
        node_files[&province].as_ref(),
    )?;
    tree.wait_listening(0, tls, deadline).await?;
    let p_url = tree.url(province)?;
    for &c in &cities {
        spawn_node(
            &mut tree,
            &bin,
            &dir,
            c,
            Some(&p_url),
            node_files[&c].as_ref(),
        )?;
    }
    tree.wait_listening(1, tls, deadline).await?;
    let from = tree.nodes.len();
    for &c in &counties {
        let parent = tree.url(c.parent().ok_or("county without city")?)?;
        spawn_node(
            &mut tree,
            &bin,
            &dir,
            c,
            Some(&parent),
            node_files[&c].as_ref(),
        )?;
    }
    tree.wait_listening(from, tls, deadline).await?;
    let started_s = t_start.elapsed().as_secs_f64();

    // Channels opened once: Status to every node, the Tickets API of the province and the
    // counties.
    let mut sync: HashMap<Code, SyncClient> = HashMap::new();
    let mut api: HashMap<Code, Arc<Mutex<TicketsClient>>> = HashMap::new();
    for n in &tree.nodes {
        let url = n.url.clone().ok_or("a node without address")?;
        let ch = tls::channel(
            &url,
            client_tls,
            Expect::Any,
            Duration::from_secs(5),
            Some(Duration::from_secs(60)),
        )
        .await
        .map_err(|e| format!("node {}: {e}", n.code))?;
        sync.insert(n.code, pb::sync_client::SyncClient::new(ch));
        if n.code == province || n.code.parent().is_some_and(|p| cities.contains(&p)) {
            let c = TicketsClient::connect(&url, client_tls).await?;
            api.insert(n.code, Arc::new(Mutex::new(c)));
        }
    }
    loop {
        let st = all_status(&sync).await?;
        let down: Vec<Code> = st
            .iter()
            .filter(|(c, s)| **c != province && !s.uplink.as_ref().is_some_and(|u| u.connected))
            .map(|(c, _)| *c)
            .collect();
        if down.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let n = tree.nodes.iter().find(|n| n.code == down[0]);
            return Err(format!(
                "{} of {} links did not come up ({:?}…); log of {}:\n{}",
                down.len(),
                tree.nodes.len() - 1,
                &down[..down.len().min(5)],
                down[0],
                n.map(|n| n.tail(20)).unwrap_or_default()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "tree of {} node processes ({}) listening in {started_s:.1} s, linked in {:.1} s; polling every {} ms",
        tree.nodes.len(),
        if tls { "mTLS" } else { "plaintext" },
        t_start.elapsed().as_secs_f64(),
        poll.as_millis()
    );
    let linked_s = t_start.elapsed().as_secs_f64();

    let ticket_deadline = ticket_deadline()?;
    let prov_api = api[&province].clone();
    let prov_sync = sync[&province].clone();
    let mut results = Vec::new();
    for round in 0..rounds {
        // A quiet tree, seen twice in a row; its heads are the round's bases.
        let t_quiet = Instant::now();
        let mut quiet_polls = 0;
        let heads = loop {
            let st = all_status(&sync).await?;
            quiet_polls = if quiet(&st) { quiet_polls + 1 } else { 0 };
            if quiet_polls >= 2 {
                break st
                    .into_iter()
                    .map(|(c, s)| (c, s.ticket_head))
                    .collect::<HashMap<Code, u64>>();
            }
            if t_quiet.elapsed() > QUIET_DEADLINE {
                return Err("the tree did not settle between rounds".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let quiet_s = t_quiet.elapsed().as_secs_f64();
        let inventory = format!("bench-{round}");
        let tickets = round_tickets(province, &counties, round, per_round, ticket_deadline);
        let mut want: HashMap<Code, u64> = HashMap::new();
        for t in &tickets {
            *want.entry(t.target).or_default() += 1;
        }
        let city_want: Vec<(SyncClient, u64, u64)> = cities
            .iter()
            .map(|c| {
                let n = want.iter().filter(|(k, _)| c.contains(**k)).map(|(_, v)| v);
                (sync[c].clone(), heads[c], n.sum())
            })
            .collect();
        let new: Vec<NewTicket> = tickets.into_iter().map(new_ticket).collect();
        let total = per_round as u64;

        let (cpu_nodes0, cpu_self0) = (nodes_cpu_s(&tree), self_cpu_s());
        let t0 = Instant::now();
        let keys = prov_api.lock().await.issue(None, new).await?;
        let issued_s = t0.elapsed().as_secs_f64();
        if keys.len() != per_round {
            return Err(format!("issued {} of {per_round} tickets", keys.len()).into());
        }
        // One poller per city (a city busy with the round answers slowly: asked one after
        // the other, they would add up).
        let at_cities: Vec<_> = city_want
            .into_iter()
            .enumerate()
            .map(|(i, (c, base, n))| {
                let delay = poll.mul_f64(i as f64 / cities.len() as f64);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    wait_head(&c, base + n, t0, poll).await
                })
            })
            .collect();
        let working: Vec<Code> = counties
            .iter()
            .copied()
            .filter(|c| want.get(c).is_some_and(|w| *w > 0))
            .collect();
        let clerks: Vec<_> = working
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Staggered over one interval, so the polls do not come in bursts.
                let delay = poll.mul_f64(i as f64 / working.len() as f64);
                tokio::spawn(clerk(
                    *c,
                    sync[c].clone(),
                    api[c].clone(),
                    heads[c],
                    want[c],
                    inventory.clone(),
                    t0,
                    delay,
                    poll,
                ))
            })
            .collect();
        // Visible at the province: every acceptance flushed there (issue, delivery and
        // acceptance of each ticket: three events per ticket in its log).
        let prov_base = heads[&province];
        let accepted_s = wait_head(&prov_sync, prov_base + 3 * total, t0, poll)
            .await
            .map_err(|e| format!("the inventory was not accepted at the province: {e}"))?;
        let cpu_nodes = nodes_cpu_s(&tree) - cpu_nodes0;
        let cpu_self = self_cpu_s() - cpu_self0;
        let mut durable = Vec::new();
        let mut accepted_at_county = Vec::new();
        for c in clerks {
            let (d, a) = c.await??;
            durable.push(d);
            accepted_at_county.push(a);
        }
        let mut at_cities_s: f64 = 0.0;
        for c in at_cities {
            at_cities_s = at_cities_s.max(c.await??);
        }
        durable.sort_by(f64::total_cmp);
        accepted_at_county.sort_by(f64::total_cmp);
        let prov_pid = tree.nodes[0].pid();
        let prov_hwm_before_check = peak_rss_mib_of(prov_pid);
        // Check at the province (its List folds its log) that all of the round are accepted.
        let (n_accepted, n_round) = {
            let mut p = prov_api.lock().await;
            let count = |state: Option<State>| ListFilter {
                state: state.map(|s| s.to_string()),
                inventory: Some(inventory.clone()),
                limit: 1,
                ..ListFilter::default()
            };
            let (_, accepted) = p.list(&count(Some(State::Accepted))).await?;
            let (_, held) = p.list(&count(None)).await?;
            (accepted as usize, held as usize)
        };
        let prov_hwm = (prov_hwm_before_check, peak_rss_mib_of(prov_pid));
        let all_durable_s = durable.last().copied().unwrap_or(f64::NAN);
        eprintln!(
            "round {round}: issued (durable at the province) {issued_s:.3} s; at all cities {at_cities_s:.3} s; durable at all targets {all_durable_s:.3} s (p50 {:.3}, p99 {:.3}); all accepted at the province {accepted_s:.3} s; {n_accepted}/{n_round} accepted at the province; CPU {cpu_nodes:.2} s nodes + {cpu_self:.2} s benchmark; quiet after {quiet_s:.1} s",
            percentile(&durable, 0.5),
            percentile(&durable, 0.99),
        );
        results.push(json!({
            "round": round,
            "tickets": per_round,
            "issued_durable_at_province_s": issued_s,
            "held_at_all_cities_s": at_cities_s,
            "durable_at_all_targets_s": all_durable_s,
            "durable_at_target_p50_s": percentile(&durable, 0.5),
            "durable_at_target_p99_s": percentile(&durable, 0.99),
            "all_accepted_at_counties_s": accepted_at_county.last().copied().unwrap_or(f64::NAN),
            "all_accepted_visible_at_province_s": accepted_s,
            "accepted_by_fold": n_accepted,
            "held_by_fold": n_round,
            "durable_target_met": all_durable_s <= DURABLE_TARGET_S,
            "accepted_target_met": accepted_s <= ACCEPTED_TARGET_S && n_accepted == per_round,
            "cpu_s": {"nodes": cpu_nodes, "benchmark": cpu_self},
            "quiet_wait_s": quiet_s,
            // The province's peak RSS so far: before and after the two List calls.
            "province_peak_rss_mib": {"before_check": prov_hwm.0, "after_check": prov_hwm.1},
        }));
    }

    // Peak memory of every node, then stop them.
    let mut rss_total = 0.0;
    let mut rss_max: HashMap<&str, f64> = HashMap::new();
    for n in &tree.nodes {
        let Some(mib) = peak_rss_mib_of(n.pid()) else {
            continue;
        };
        rss_total += mib;
        let level = match n.code.to_string().len() {
            2 => "province",
            4 => "city",
            _ => "county",
        };
        let m = rss_max.entry(level).or_default();
        *m = m.max(mib);
    }
    let n_nodes = tree.nodes.len();
    let t_stop = Instant::now();
    let (unclean, killed) = tree.stop();
    let stop_s = t_stop.elapsed().as_secs_f64();
    if !unclean.is_empty() || !killed.is_empty() {
        eprintln!("unclean exits {unclean:?}; killed after {STOP_GRACE:?}: {killed:?}");
        if let Some(n) = tree.nodes.iter().find(|n| unclean.contains(&n.code)) {
            eprintln!("log of {}:\n{}", n.code, n.tail(20));
        }
    }
    let mut report = report_head("processes", tls, n_nodes, counties.len());
    report["poll_ms"] = json!(poll.as_millis() as u64);
    report["started_s"] = json!(started_s);
    report["linked_s"] = json!(linked_s);
    report["peak_rss_total_mib"] = json!(rss_total);
    report["peak_rss_max_mib"] = json!(rss_max);
    report["stopped_s"] = json!(stop_s);
    report["unclean_exits"] = json!(unclean.len());
    report["killed"] = json!(killed.len());
    report["rounds"] = json!(results);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
