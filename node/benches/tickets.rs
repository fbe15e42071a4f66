//! Ticket benchmark (issue #4, point 7): a 10 000-ticket inventory from the province to 107
//! counties.
//!
//! 1 province, 10 cities and 107 counties (the Shaanxi shape), each with its own sled store,
//! over real gRPC on 127.0.0.1. In each of `BENCH_ROUNDS` rounds (default 3) the province
//! issues an inventory of `BENCH_TICKETS` tickets (default 10 000) spread over the counties,
//! in one durable issue. Every county runs a clerk that accepts its tickets once they are
//! durable there (one accept of all of them). Measured from the start of the issue:
//!
//! - **durable at the targets**: when every county's ticket log holds its tickets' issue and
//!   delivery events, flushed (target ≤ 3 s);
//! - **all accepted, visible at the province**: when the province's flushed ticket log holds
//!   every ticket's acceptance (target ≤ 5 s); then checked by folding: all are `accepted`.
//!
//! Two modes (`"mode"` in the report):
//!
//! - **processes** (the default): every node is its own `bottomline serve` process, as a
//!   deployment runs it (`tickets/procs.rs`). The benchmark issues through the province's
//!   `Tickets` API, the clerks poll their county's `Status` and accept through its API, and the
//!   province's `Status` says when its log holds every acceptance. Nodes in one process share
//!   sled's process-wide lock (../shared/GUIDE.md), so only this mode measures the tree.
//!   `BENCH_POLL_MS` (default 20) sets the polling interval, `BENCH_NODE_LOG` the nodes'
//!   `RUST_LOG` (default `info`; the logs stay in the temp dir while it runs).
//! - **in-process** (`BENCH_PROCS=0`): all 118 nodes in this process (`benches/common`), the
//!   clerks and the measurement reading the ledgers directly; kept for comparison.
//!
//! Every link runs over mutual TLS, as deployments do (certificates from a CA the benchmark
//! makes in its temp dir); `BENCH_TLS=0` runs the tree in plaintext instead. The report says
//! which (`"tls"`).
//!
//! Prints one JSON object on stdout and a line per round on stderr. Reports; never fails on a
//! target. Run with `cargo bench -p bottomline --bench tickets`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::ledger::{Act, Ledger};
use bottomline::period::today_in_china;
use bottomline::tickets::{Severity, State, Ticket, TicketSource};
use jiff::civil::Date;
use serde_json::json;

mod common;
use common::{percentile, start_node_with, Res, Running};

#[path = "tickets/procs.rs"]
mod procs;

const CITIES: u32 = 10;
const COUNTIES: u32 = 107;
const DURABLE_TARGET_S: f64 = 3.0;
const ACCEPTED_TARGET_S: f64 = 5.0;

/// The Shaanxi shape: the province, its 10 cities and 107 counties (11 in the first 7
/// cities, 10 in the others), each list sorted.
fn shape() -> Res<(Code, Vec<Code>, Vec<Code>)> {
    let province = Code::parse("61")?;
    let mut counties: Vec<Code> = Vec::new();
    for i in 0..COUNTIES {
        let city = 1 + i % CITIES;
        let n = 2 + i / CITIES;
        counties.push(Code::parse(&format!("61{city:02}{n:02}"))?);
    }
    counties.sort();
    let mut cities: Vec<Code> = counties.iter().filter_map(|c| c.parent()).collect();
    cities.dedup();
    Ok((province, cities, counties))
}

/// The deadline of every benchmark ticket: 30 days from today (China date).
fn ticket_deadline() -> Res<Date> {
    Ok(today_in_china()
        .checked_add(jiff::Span::new().days(30))
        .map_err(|e| e.to_string())?)
}

/// The inventory of round `round`: `per_round` tickets `R{round}-{i:05}` over the counties in
/// turn, in inventory `bench-{round}` (both modes issue exactly these).
fn round_tickets(
    province: Code,
    counties: &[Code],
    round: usize,
    per_round: usize,
    deadline: Date,
) -> Vec<Ticket> {
    (0..per_round)
        .map(|i| Ticket {
            issuer: province,
            id: format!("R{round}-{i:05}"),
            target: counties[i % counties.len()],
            category: "assistance not in place".into(),
            source: TicketSource::Inspection,
            severity: Severity::Medium,
            deadline,
            description: format!("inspection finding {i} of round {round}"),
            household_code: None,
            parent: None,
            inventory: Some(format!("bench-{round}")),
            spot_check: None,
        })
        .collect()
}

/// The report's first fields, the same in both modes.
fn report_head(mode: &str, tls: bool, nodes: usize, counties: usize) -> serde_json::Value {
    json!({
        "benchmark": "tickets",
        "mode": mode,
        "tls": tls,
        "nodes": nodes,
        "counties": counties,
        "targets": {"durable_at_targets_s": DURABLE_TARGET_S, "accepted_visible_at_province_s": ACCEPTED_TARGET_S},
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let cfg = procs::Settings {
        per_round: common::env_or::<u32>("BENCH_TICKETS", 10_000) as usize,
        rounds: common::env_or::<u32>("BENCH_ROUNDS", 3) as usize,
        tls: std::env::var("BENCH_TLS").map_or(true, |v| v != "0"),
    };
    if std::env::var("BENCH_PROCS").is_ok_and(|v| v == "0") {
        in_process(cfg).await
    } else {
        // Run on this (the main) thread, not on a worker: the nodes are spawned from it and
        // are told to stop when it ends (see `common::procs::Tree`).
        procs::run(cfg).await
    }
}

/// A county clerk: accepts every delivered ticket as it arrives; reports when its `want`
/// tickets of this round were durable (issue + delivery flushed) and when all are accepted.
async fn clerk(ledger: Arc<Ledger>, base: u64, want: u64, t0: Instant) -> Res<(f64, f64)> {
    let me = ledger.division();
    let mut durable_at = None;
    loop {
        let changed = ledger.tickets_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // Issue + delivery of each ticket; acceptances come after both.
        let head = ledger.ticket_head() - base;
        if durable_at.is_none() && head >= 2 * want {
            durable_at = Some(t0.elapsed().as_secs_f64());
        }
        if durable_at.is_some() {
            let l = ledger.clone();
            let accepted = tokio::task::spawn_blocking(move || -> Res<usize> {
                let delivered: Vec<_> = l
                    .tickets()?
                    .into_values()
                    .filter(|s| s.state == State::Delivered && s.ticket.target == me)
                    .map(|s| s.key())
                    .collect();
                if !delivered.is_empty() {
                    l.act_on_tickets(me, &delivered, &Act::Accept)?;
                }
                Ok(delivered.len())
            })
            .await??;
            if accepted > 0 || ledger.ticket_head() - base >= 3 * want {
                return Ok((durable_at.unwrap_or_default(), t0.elapsed().as_secs_f64()));
            }
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Every parent holds its children's whole change logs (cells) and every node's ticket
/// links are drained (each child acked its parent's ticket log, each parent its child's).
fn quiet(nodes: &HashMap<Code, Running>) -> bool {
    nodes.iter().all(
        |(code, n)| match code.parent().and_then(|p| nodes.get(&p)) {
            Some(parent) => {
                let (pl, cl) = (&parent.handle.ledger, &n.handle.ledger);
                pl.child_acked(*code).unwrap_or(0) >= cl.durable_seq()
                    && pl.ticket_up_acked(*code).unwrap_or(0) >= cl.ticket_head()
                    && pl.ticket_down_acked(*code).unwrap_or(0) >= pl.ticket_head()
            }
            None => true,
        },
    )
}

/// The in-process mode (`BENCH_PROCS=0`): every node in this process.
async fn in_process(cfg: procs::Settings) -> Res<()> {
    let procs::Settings {
        per_round,
        rounds,
        tls,
    } = cfg;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("nodes");
    let pki_dir = tmp.path().join("pki");
    let pki = tls.then_some(pki_dir.as_path());

    let (province, cities, counties) = shape()?;
    let mut nodes: HashMap<Code, Running> = HashMap::new();
    let p = start_node_with(&data, province, None, true, pki).await?;
    let p_url = p.url()?;
    nodes.insert(province, p);
    for &c in &cities {
        let n = start_node_with(&data, c, Some(p_url.clone()), true, pki).await?;
        nodes.insert(c, n);
    }
    for &c in &counties {
        let city = c.parent().ok_or("county without city")?;
        let url = nodes[&city].url()?;
        let n = start_node_with(&data, c, Some(url), false, pki).await?;
        nodes.insert(c, n);
    }
    // Wait until every link is up.
    let t_link = Instant::now();
    loop {
        let up = nodes
            .values()
            .filter(|n| n.handle.uplink.lock().map(|u| u.connected).unwrap_or(false))
            .count();
        if up == nodes.len() - 1 {
            break;
        }
        if t_link.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {up} of {} links came up", nodes.len() - 1).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "tree of {} nodes in this process linked ({}) in {:.1} s",
        nodes.len(),
        if tls { "mTLS" } else { "plaintext" },
        t_link.elapsed().as_secs_f64()
    );

    let prov = nodes[&province].handle.ledger.clone();
    let deadline = ticket_deadline()?;
    let mut results = Vec::new();
    for round in 0..rounds {
        // Each round starts on a quiet tree: the previous round's ticket cells have reached
        // the province and every ticket link has delivered everything.
        let t_quiet = Instant::now();
        while !quiet(&nodes) {
            if t_quiet.elapsed() > Duration::from_secs(120) {
                return Err("the tree did not settle between rounds".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tickets = round_tickets(province, &counties, round, per_round, deadline);
        let mut want: HashMap<Code, u64> = HashMap::new();
        for t in &tickets {
            *want.entry(t.target).or_default() += 1;
        }
        let prov_base = prov.ticket_head();
        let city_want: Vec<(Arc<Ledger>, u64, u64)> = cities
            .iter()
            .map(|c| {
                let l = nodes[c].handle.ledger.clone();
                let n: u64 = want
                    .iter()
                    .filter(|(k, _)| c.contains(**k))
                    .map(|(_, v)| v)
                    .sum();
                let base = l.ticket_head();
                (l, base, n)
            })
            .collect();
        let cpu0 = procs::self_cpu_s();
        let t0 = Instant::now();
        // When every city holds its tickets' issues (the first hop), for the breakdown.
        let at_cities = tokio::spawn(async move {
            loop {
                if city_want
                    .iter()
                    .all(|(l, base, n)| l.ticket_head() - base >= *n)
                {
                    return t0.elapsed().as_secs_f64();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let clerks: Vec<_> = counties
            .iter()
            .map(|c| {
                let l = nodes[c].handle.ledger.clone();
                let base = l.ticket_head();
                tokio::spawn(clerk(l, base, want[c], t0))
            })
            .collect();
        let p = prov.clone();
        tokio::task::spawn_blocking(move || p.issue_tickets(province, tickets)).await??;
        let issued_s = t0.elapsed().as_secs_f64();
        // Visible at the province: every acceptance flushed there (issue, delivery and
        // acceptance of each ticket: three events per ticket in its log).
        let total = per_round as u64;
        let accepted_s = loop {
            if prov.ticket_head() - prov_base >= 3 * total {
                break t0.elapsed().as_secs_f64();
            }
            if t0.elapsed() > Duration::from_secs(300) {
                return Err("the inventory was not accepted within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let cpu_s = procs::self_cpu_s() - cpu0;
        let mut durable = Vec::new();
        let mut accepted_at_county = Vec::new();
        for c in clerks {
            let (d, a) = c.await??;
            durable.push(d);
            accepted_at_county.push(a);
        }
        let at_cities_s = at_cities.await?;
        durable.sort_by(f64::total_cmp);
        accepted_at_county.sort_by(f64::total_cmp);
        // Check by folding that what the log holds is what was measured.
        let p = prov.clone();
        let prefix = format!("R{round}-");
        let (n_accepted, n_round) = tokio::task::spawn_blocking(move || -> Res<(usize, usize)> {
            let states = p.tickets()?;
            let mine: Vec<_> = states
                .values()
                .filter(|s| s.ticket.id.starts_with(&prefix))
                .collect();
            Ok((
                mine.iter().filter(|s| s.state == State::Accepted).count(),
                mine.len(),
            ))
        })
        .await??;
        let all_durable_s = durable.last().copied().unwrap_or(f64::NAN);
        eprintln!(
            "round {round}: issued (durable at the province) {:.3} s; at all cities {at_cities_s:.3} s; durable at all targets {:.3} s (p50 {:.3}); all accepted at the province {:.3} s; {n_accepted}/{n_round} accepted by fold",
            issued_s,
            all_durable_s,
            percentile(&durable, 0.5),
            accepted_s
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
            "cpu_s": {"process": cpu_s},
        }));
    }
    let mut report = report_head("in-process", tls, nodes.len(), counties.len());
    report["peak_rss_mib"] = json!(common::peak_rss_mib());
    report["rounds"] = json!(results);
    println!("{}", serde_json::to_string_pretty(&report)?);
    for n in nodes.values() {
        let _ = n.stop.send(true);
    }
    for (_, n) in nodes {
        let _ = n.task.await;
    }
    Ok(())
}
