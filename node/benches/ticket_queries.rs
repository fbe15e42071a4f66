//! Ticket queries at a province holding many tickets (issue #16 point 7): `list --overdue` and
//! `progress --inventory` through the node's `Tickets` API read the ticket index, not a fold
//! of the whole ticket log.
//!
//! A province node runs in this process (plaintext: the figure is the node's work, not the
//! handshake of a fresh connection; the client's channel is opened once). The benchmark
//! issues `BENCH_TICKETS` tickets (default 100 000) in inventories of 10 000 through
//! `Ledger::issue_tickets` (each inventory one call, timed: the index is written in the same
//! commits), targeting the 107 counties of a Shaanxi-size tree; deadlines are spread over
//! 100 days around today, so about 2 % are overdue. Then, `BENCH_ROUNDS` times (default 30):
//! `List{overdue}` (every overdue ticket, all their fields), `Progress{inventory}` (one
//! inventory, per city), `Progress{}` (every ticket) and `List{inventory, limit 50}`. p50, p99
//! and max per query in ms, and for comparison the fold of the whole log that `List` did
//! before the index (`Ledger::tickets`, timed three times).
//!
//! Prints one JSON object on stdout and a summary on stderr; never fails on a target.
//! Run with `cargo bench -p bottomline --bench ticket_queries`.

use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::rpc::tickets_client::{ListFilter, TicketsClient};
use bottomline::tickets::{Severity, Ticket, TicketSource};
use serde_json::json;

mod common;
use common::{env_or, percentile, shaanxi_counties as counties, start_node, Res};

const PER_INVENTORY: usize = 10_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    json!({
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": samples.last().copied().unwrap_or(0.0),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let tickets: usize = env_or("BENCH_TICKETS", 100_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 30);
    let tmp = tempfile::tempdir()?;
    let province = Code::parse("61")?;
    let node = start_node(tmp.path(), province, None, true).await?;
    let ledger = node.handle.ledger.clone();
    let today = bottomline::period::today_in_china();
    let targets = counties();

    let mut issue_ms = Vec::new();
    let inventories = tickets.div_ceil(PER_INVENTORY);
    for inv in 0..inventories {
        let n = PER_INVENTORY.min(tickets - inv * PER_INVENTORY);
        let name = format!("bench-{inv:02}");
        let batch: Vec<Ticket> = (0..n)
            .map(|i| {
                let days = (i % 100) as i64 - 2;
                Ticket {
                    issuer: province,
                    id: format!("Q{inv:02}-{i:05}"),
                    target: targets[i % targets.len()],
                    category: "housing safety".into(),
                    source: TicketSource::Inspection,
                    severity: Severity::Medium,
                    deadline: today
                        .checked_add(jiff::Span::new().days(days))
                        .expect("deadline"),
                    description: format!("inspection finding {i} of inventory {name}"),
                    household_code: None,
                    parent: None,
                    inventory: Some(name.clone()),
                    spot_check: None,
                }
            })
            .collect();
        let l = ledger.clone();
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || l.issue_tickets(province, batch)).await??;
        issue_ms.push(ms(t0.elapsed()));
        eprintln!("issued {name}: {n} tickets in {:.0} ms", issue_ms[inv]);
    }

    let mut client = TicketsClient::connect(&node.url()?, None).await?;
    let inventory = format!("bench-{:02}", inventories / 2);
    let (mut overdue, mut progress_inv, mut progress_all, mut list_inv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut overdue_rows, mut inv_issued, mut all_issued) = (0, 0, 0);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let (rows, _) = client
            .list(&ListFilter {
                overdue: true,
                ..Default::default()
            })
            .await?;
        overdue.push(ms(t0.elapsed()));
        overdue_rows = rows.len();

        let t0 = Instant::now();
        let p = client.progress(Some(&inventory), None).await?;
        progress_inv.push(ms(t0.elapsed()));
        inv_issued = p.total.issued;

        let t0 = Instant::now();
        let p = client.progress(None, None).await?;
        progress_all.push(ms(t0.elapsed()));
        all_issued = p.total.issued;

        let t0 = Instant::now();
        client
            .list(&ListFilter {
                inventory: Some(inventory.clone()),
                limit: 50,
                ..Default::default()
            })
            .await?;
        list_inv.push(ms(t0.elapsed()));
    }
    // The same reads inside the node, without the RPC: the index's share of each call.
    let (mut index_overdue, mut index_inventory) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (l, inv) = (ledger.clone(), inventory.clone());
        let (a, b) = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let n = l.ticket_summaries(Some(today), None).map(|v| v.len());
            let a = t0.elapsed();
            let t0 = Instant::now();
            let m = l.inventory_items(Some(&inv)).map(|v| v.len());
            (n.map(|_| a), m.map(|_| t0.elapsed()))
        })
        .await?;
        index_overdue.push(ms(a?));
        index_inventory.push(ms(b?));
    }
    let mut fold = Vec::new();
    for _ in 0..3 {
        let l = ledger.clone();
        let t0 = Instant::now();
        let n = tokio::task::spawn_blocking(move || l.tickets().map(|t| t.len())).await??;
        fold.push(ms(t0.elapsed()));
        assert_eq!(n, tickets);
    }
    let expected_overdue = (0..tickets)
        .filter(|i| (i % PER_INVENTORY) % 100 < 2)
        .count();
    let out = json!({
        "bench": "ticket_queries",
        "tickets_held": tickets,
        "rounds": rounds,
        "issue_10k_ms": summary(&mut issue_ms),
        "list_overdue": summary(&mut overdue),
        "list_overdue_rows": overdue_rows,
        "expected_overdue": expected_overdue,
        "progress_inventory": summary(&mut progress_inv),
        "progress_inventory_tickets": inv_issued,
        "progress_all": summary(&mut progress_all),
        "progress_all_tickets": all_issued,
        "list_inventory_limit_50": summary(&mut list_inv),
        "fold_whole_log_ms": summary(&mut fold),
        "index_read_overdue": summary(&mut index_overdue),
        "index_read_inventory": summary(&mut index_inventory),
        "target_ms": 50,
    });
    eprintln!(
        "list --overdue ({overdue_rows} rows): p50 {:.1} ms p99 {:.1} ms; progress --inventory ({inv_issued} tickets): p50 {:.1} ms p99 {:.1} ms; progress (all {all_issued}): p50 {:.1} ms; fold of the whole log {:.0} ms",
        out["list_overdue"]["p50_ms"].as_f64().unwrap_or(0.0),
        out["list_overdue"]["p99_ms"].as_f64().unwrap_or(0.0),
        out["progress_inventory"]["p50_ms"].as_f64().unwrap_or(0.0),
        out["progress_inventory"]["p99_ms"].as_f64().unwrap_or(0.0),
        out["progress_all"]["p50_ms"].as_f64().unwrap_or(0.0),
        out["fold_whole_log_ms"]["p50_ms"].as_f64().unwrap_or(0.0),
    );
    println!("{out}");
    node.shutdown().await?;
    Ok(())
}
