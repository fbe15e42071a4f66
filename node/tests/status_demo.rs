//! `bottomline status` and `bottomline demo` with real nodes on 127.0.0.1:0.
//!
//! - A city with one county: the status report shows the county linked, its acked position
//!   equal to its durable head and no backlog; once the county stops, it turns SILENT after the
//!   configured time (heartbeats stop), and the report says so over gRPC too.
//! - The demo starts a whole tree in one process and the province converges to the sum of
//!   its counties.

mod common;
use common::{eventually_async as eventually, stop, Running};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::ledger::unix_ms_now;
use bottomline::period::Period;
use bottomline::report::Format;
use jiff::civil::date;

/// Sync settings of this file's nodes.
const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.2\nsilent_child_secs = 1\n";

async fn start(dir: &Path, division: &str, parent: Option<&str>, listen: bool) -> Running {
    common::start(dir, division, parent, listen, SYNC).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_acked_backlog_and_a_silent_child() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    bottomline::gen::generate(
        &bottomline::gen::GenOptions {
            seed: 3,
            out: files.clone(),
            scope: bottomline::gen::GenScope::County("610102".into()),
            end: date(2026, 11, 20),
            households_per_county: Some(800),
        },
        &mut |_| {},
    )
    .expect("gen");
    let nodes = tmp.path().join("nodes");
    let city = start(&nodes, "6101", None, true).await;
    let addr = city.addr.clone().expect("listens");
    let county = start(&nodes, "610102", Some(&addr), false).await;
    let paths: Vec<_> = bottomline::import::FILE_ORDER
        .iter()
        .map(|k| files.join("610102").join(format!("{k}.csv")))
        .collect();
    bottomline::import::import_files(
        &county.handle.ledger,
        &paths,
        None,
        date(2026, 11, 24),
        &mut |_| {},
        &mut |_| {},
    )
    .expect("import");
    let head = county.handle.ledger.durable_seq();
    assert!(head > 0);
    let code = Code::parse("610102").expect("code");

    // Linked, everything acked, no backlog (as the county's heartbeat reports it).
    eventually("the county is fully acked with no backlog", || {
        let addr = addr.clone();
        async move {
            let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
            st.children.iter().any(|c| {
                c.division == code
                    && c.connected
                    && c.acked == head
                    && c.head == head
                    && c.backlog == 0
                    && !c.silent
            })
        }
    })
    .await;
    // The county learns of the last ack a moment after the city made it durable.
    eventually("the county has the city's last ack", || {
        let acked = county.handle.uplink.lock().expect("lock").acked;
        async move { acked == head }
    })
    .await;
    let up = county.handle.uplink.lock().expect("lock").clone();
    assert!(up.connected);
    assert_eq!(up.acked, head);
    assert_eq!(up.backlog, 0);
    assert_eq!(up.parent.as_deref(), Some(addr.as_str()));

    let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
    assert_eq!(st.division.to_string(), "6101");
    assert!(st.uplink.parent.is_none(), "the city is the top here");
    let table = bottomline::report::render_status(&st, Format::Table, unix_ms_now());
    assert!(table.contains("610102"), "{table}");
    assert!(!table.contains("SILENT"), "{table}");

    // The county goes away: after silent_child_secs it is reported silent, durably known.
    stop(county).await;
    eventually("the stopped county is reported silent", || {
        let addr = addr.clone();
        async move {
            let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
            st.children
                .iter()
                .any(|c| c.division == code && !c.connected && c.silent && c.acked == head)
        }
    })
    .await;
    let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
    let table = bottomline::report::render_status(&st, Format::Table, unix_ms_now());
    assert!(table.contains("SILENT"), "{table}");
    assert!(table.contains("WARNING: 1 child(ren) silent"), "{table}");
    let json = bottomline::report::render_status(&st, Format::Json, unix_ms_now());
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["children"][0]["silent"], true);
    assert_eq!(v["children"][0]["acked"], head);
    stop(city).await;

    // After a restart of the city, the child is still known from its durable position.
    let city = start(&nodes, "6101", None, true).await;
    let addr = city.addr.clone().expect("listens");
    let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
    let c = st
        .children
        .iter()
        .find(|c| c.division == code)
        .expect("known after restart");
    assert_eq!(c.acked, head);
    assert!(c.last_contact_unix_ms > 0);
    stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_tree_converges_to_the_sum_of_its_counties() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = bottomline::demo::DemoOptions {
        dir: tmp.path().to_owned(),
        cities: 2,
        counties: 3,
        households: Some(400),
        seed: 9,
        port: 0,
        today: date(2026, 11, 24),
        import_threads: 2,
    };
    let demo = bottomline::demo::start(&opts, Arc::new(|_| {}))
        .await
        .expect("demo starts");
    assert_eq!(demo.nodes.len(), 1 + 2 + 3);
    eventually("the demo tree converges", || {
        let ok = demo.converged().expect("converged");
        async move { ok }
    })
    .await;
    let p = demo.province().handle.ledger.clone();
    for per in ["2026-W47", "2026-11", "2026-Q4", "2026-H2", "2026"] {
        let period = Period::parse(per).expect("period");
        for name in ["monitored_households", "signals", "measure_amount"] {
            let sum: i64 = demo
                .counties
                .iter()
                .map(|&c| {
                    demo.node(c)
                        .expect("county node")
                        .handle
                        .ledger
                        .indicators(c, period)
                        .expect("indicators")
                        .count(name, "total")
                })
                .sum();
            let at_top = p
                .indicators(p.division(), period)
                .expect("indicators")
                .count(name, "total");
            assert_eq!(at_top, sum, "{name} {per}");
        }
    }
    // The province knows the names of its subtree.
    let first = demo.counties[0];
    assert_ne!(p.registry().name(first), first.to_string());
    // The configs it wrote are valid node configs.
    for n in &demo.nodes {
        let path = tmp
            .path()
            .join("configs")
            .join(format!("{}.toml", n.config.division));
        let c = Config::load(&path).expect("config written by the demo");
        assert_eq!(c.division, n.config.division);
    }
    demo.stop().await.expect("ordered stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_stops_in_order_while_its_child_stays_linked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = tmp.path().join("nodes");
    let city = start(&nodes, "6101", None, true).await;
    let addr = city.addr.clone().expect("listens");
    let county = start(&nodes, "610102", Some(&addr), false).await;
    let code = Code::parse("610102").expect("code");
    eventually("the county is linked", || {
        let addr = addr.clone();
        async move {
            let st = bottomline::rpc::fetch_status(&addr).await.expect("status");
            st.children
                .iter()
                .any(|c| c.division == code && c.connected)
        }
    })
    .await;
    // The city stops first: its open link stream must not keep it from stopping.
    tokio::time::timeout(Duration::from_secs(20), stop(city))
        .await
        .expect("the city stops in bounded time with a child linked");
    eventually("the county sees its uplink down", || {
        let up = county.handle.uplink.lock().expect("lock").connected;
        async move { !up }
    })
    .await;
    stop(county).await;
}
