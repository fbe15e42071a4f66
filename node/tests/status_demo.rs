//! `bottomline status` and `bottomline demo` with real nodes on 127.0.0.1:0.
//!
//! - A city with one county: the status report shows the county linked, its acked position
//!   equal to its durable head and no backlog; once the county stops, it turns SILENT after the
//!   configured time (heartbeats stop), and the report says so over gRPC too.
//! - A province, a city and a county: with the county stopped, tickets issued to it at the
//!   province wait at the city, and the city's status shows them as the county's ticket
//!   backlog (the county SILENT); once the county is back the backlog drains to 0 and every
//!   ticket cursor equals the sender's ticket-log head. Events the county creates while the
//!   province is gone show as the city's uplink ticket backlog.
//! - The demo starts a whole tree in one process and the province converges to the sum of
//!   its counties, and its ticket inventory reaches every county.

mod common;
use common::{eventually_async as eventually, stop, Running};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::ledger::{unix_ms_now, Act};
use bottomline::period::{today_in_china, Period};
use bottomline::report::Format;
use bottomline::rpc::{fetch_status, ChildReport, NodeStatus};
use bottomline::tickets::{Severity, State, Ticket, TicketKey, TicketSource};
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
    common::generate_county(&files, "610102", 3, 800);
    let nodes = tmp.path().join("nodes");
    let city = start(&nodes, "6101", None, true).await;
    let addr = city.addr.clone().expect("listens");
    let county = start(&nodes, "610102", Some(&addr), false).await;
    common::import_generated(&county.handle.ledger, &files, "610102", date(2026, 11, 24));
    let head = county.handle.ledger.durable_seq();
    assert!(head > 0);
    let code = Code::parse("610102").expect("code");

    // Linked, everything acked, no backlog (as the county's heartbeat reports it).
    eventually("the county is fully acked with no backlog", || {
        let addr = addr.clone();
        async move {
            let st = bottomline::rpc::fetch_status(&addr, None)
                .await
                .expect("status");
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

    let st = bottomline::rpc::fetch_status(&addr, None)
        .await
        .expect("status");
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
            let st = bottomline::rpc::fetch_status(&addr, None)
                .await
                .expect("status");
            st.children
                .iter()
                .any(|c| c.division == code && !c.connected && c.silent && c.acked == head)
        }
    })
    .await;
    let st = bottomline::rpc::fetch_status(&addr, None)
        .await
        .expect("status");
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
    let st = bottomline::rpc::fetch_status(&addr, None)
        .await
        .expect("status");
    let c = st
        .children
        .iter()
        .find(|c| c.division == code)
        .expect("known after restart");
    assert_eq!(c.acked, head);
    assert!(c.last_contact_unix_ms > 0);
    stop(city).await;
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

/// The report on `child` in `st`, if the node knows it.
fn child(st: &NodeStatus, child: Code) -> Option<&ChildReport> {
    st.children.iter().find(|c| c.division == child)
}

/// The status of the node at `addr` once `ok` holds for it (polled until the deadline).
async fn status_when(what: &str, addr: &str, ok: impl Fn(&NodeStatus) -> bool) -> NodeStatus {
    let last = std::sync::Mutex::new(None);
    let (last_ref, ok) = (&last, &ok);
    eventually(what, move || async move {
        let st = fetch_status(addr, None).await.expect("status");
        let done = ok(&st);
        *last_ref.lock().expect("lock") = Some(st);
        done
    })
    .await;
    last.into_inner()
        .expect("lock")
        .expect("polled at least once")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_ticket_backlog_of_a_stopped_county() {
    const N: u64 = 5;
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = tmp.path().join("nodes");
    let province = start(&nodes, "61", None, true).await;
    let p_addr = province.addr.clone().expect("listens");
    let city = start(&nodes, "6101", Some(&p_addr), true).await;
    let c_addr = city.addr.clone().expect("listens");
    let county = start(&nodes, "610102", Some(&c_addr), false).await;
    let (p, ci, co) = (code("61"), code("6101"), code("610102"));
    status_when("the city is linked to the province", &p_addr, |st| {
        child(st, ci).is_some_and(|c| c.connected)
    })
    .await;
    status_when("the county is linked to the city", &c_addr, |st| {
        child(st, co).is_some_and(|c| c.connected)
    })
    .await;

    // The county goes away; the province issues tickets to it: they reach the city and wait.
    stop(county).await;
    let deadline = today_in_china()
        .checked_add(jiff::Span::new().days(10))
        .expect("date");
    let tickets: Vec<Ticket> = (1..=N)
        .map(|n| Ticket {
            issuer: p,
            id: format!("T-{n}"),
            target: co,
            category: "housing safety".into(),
            source: TicketSource::Inspection,
            severity: Severity::Medium,
            deadline,
            description: "roof of a monitored household leaks".into(),
            household_code: None,
            parent: None,
            inventory: Some("status-test".into()),
            spot_check: None,
        })
        .collect();
    let keys: Vec<TicketKey> = province.ledger().issue_tickets(p, tickets).expect("issue");
    assert_eq!(keys.len() as u64, N);
    let st = status_when(
        "the city shows the stopped county's ticket backlog, and the county silent",
        &c_addr,
        |st| {
            child(st, co).is_some_and(|c| {
                !c.connected && c.silent && c.ticket_backlog_down == N && c.ticket_acked_down == 0
            })
        },
    )
    .await;
    // The tickets are at the city (its log holds their issues), not yet at the county.
    assert_eq!(st.ticket_head, N);
    assert_eq!(st.ticket_head, city.ledger().ticket_head());
    for k in &keys {
        let s = city.ledger().ticket(k).expect("ticket").expect("held");
        assert_eq!(s.state, State::Issued, "{k}");
    }
    // The city acked the province's whole log (nothing of it goes back up).
    let st = status_when("the city's uplink is drained", &c_addr, |st| {
        st.uplink.connected && st.uplink.ticket_backlog == 0
    })
    .await;
    let table = bottomline::report::render_status(&st, Format::Table, unix_ms_now());
    assert!(table.contains("tickets down"), "{table}");
    assert!(table.contains(&format!(" 0/{N} ")), "{table}");
    assert!(table.contains("SILENT"), "{table}");
    let json = bottomline::report::render_status(&st, Format::Json, unix_ms_now());
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["ticket_head"], N);
    assert_eq!(v["children"][0]["tickets_down"]["backlog"], N);
    assert_eq!(v["children"][0]["silent"], true);
    let csv = bottomline::report::render_status(&st, Format::Csv, unix_ms_now());
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let row: Vec<&str> = lines.next().expect("row").split(',').collect();
    let col = |name: &str| {
        row[header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))]
    };
    assert_eq!(col("ticket_backlog_down"), N.to_string());
    assert_eq!(col("ticket_acked_down"), "0");
    // The province's link to the city is drained both ways.
    let pst = fetch_status(&p_addr, None).await.expect("status");
    let c = child(&pst, ci).expect("the city");
    assert_eq!(c.ticket_backlog_down, 0);

    // The county comes back: the backlog drains and every cursor meets its sender's head.
    let county = start(&nodes, "610102", Some(&c_addr), false).await;
    // Delivered (visible once committed) and durable (the flush follows the commit): the
    // county's flushed log holds the issues and its deliveries.
    eventually("the county holds every ticket delivered, flushed", || {
        let done = keys.iter().all(|k| {
            county
                .ledger()
                .ticket(k)
                .expect("ticket")
                .is_some_and(|s| s.state == State::Delivered)
        }) && county.ledger().ticket_head() == 2 * N;
        async move { done }
    })
    .await;
    let county_head = county.ledger().ticket_head();
    status_when(
        "the city's link to the county is drained both ways",
        &c_addr,
        |st| {
            child(st, co).is_some_and(|c| {
                c.connected
                    && !c.silent
                    && c.ticket_backlog_down == 0
                    && c.ticket_acked_down == st.ticket_head
                    && c.ticket_acked_up == county_head
                    && c.ticket_backlog_up == 0
            }) && st.uplink.ticket_acked == st.ticket_head
                && st.uplink.ticket_backlog == 0
                // The city's flushed log: the issues and the county's deliveries (the
                // positions above are committed before the flush that moves the head).
                && st.ticket_head == 2 * N
        },
    )
    .await;
    eventually("the county's uplink has the city's last ticket ack", || {
        let up = county.handle.uplink.lock().expect("lock").clone();
        async move { up.connected && up.ticket_acked == county_head }
    })
    .await;
    let pst = status_when("the province holds the deliveries", &p_addr, |st| {
        child(st, ci).is_some_and(|c| c.ticket_acked_up == 2 * N && c.ticket_backlog_down == 0)
    })
    .await;
    assert_eq!(pst.ticket_head, 2 * N);

    // The province goes away; what the county does next waits at the city for its parent.
    stop(province).await;
    county
        .ledger()
        .act_on_tickets(co, &keys[..2], &Act::Accept)
        .expect("accept");
    let st = status_when(
        "the city's uplink shows the events waiting for the province",
        &c_addr,
        |st| !st.uplink.connected && st.uplink.ticket_backlog == 2,
    )
    .await;
    assert_eq!(st.ticket_head, 2 * N + 2);
    assert_eq!(st.uplink.ticket_acked, 2 * N);
    let table = bottomline::report::render_status(&st, Format::Table, unix_ms_now());
    assert!(
        table.contains(&format!(
            "tickets: parent acked {}, backlog 2 events",
            2 * N
        )),
        "{table}"
    );
    stop(county).await;
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
        http_port: 0,
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
    // The demo's ticket inventory reaches every county: exactly its own two tickets.
    let keys = demo.issue_tickets(opts.today).await.expect("issue");
    assert_eq!(keys.len(), 2 * demo.counties.len());
    eventually("every county holds its demo tickets delivered", || {
        let left = demo.tickets_undelivered(&keys).expect("tickets");
        async move { left == 0 }
    })
    .await;
    let key = |c: Code, n: u32| TicketKey::new(p.division(), format!("DEMO-{c}-{n}"));
    for &c in &demo.counties {
        let held = demo
            .node(c)
            .expect("county node")
            .handle
            .ledger
            .tickets()
            .expect("tickets");
        let held: Vec<&TicketKey> = held.keys().collect();
        assert_eq!(held, [&key(c, 1), &key(c, 2)], "{c}");
    }
    // Issuing again (the demo run again) changes nothing.
    assert_eq!(demo.issue_tickets(opts.today).await.expect("again"), keys);
    assert_eq!(p.tickets().expect("tickets").len(), keys.len());
    // The second ticket of every county is overdue; the first county rectifies its first.
    let today = today_in_china();
    for &c in &demo.counties {
        let s = p.ticket(&key(c, 2)).expect("ticket").expect("held");
        assert!(s.overdue(today), "{c}: {s:?}");
    }
    let first = key(demo.counties[0], 1);
    assert_eq!(first, keys[0]);
    demo.rectify_at_target(&first).await.expect("rectify");
    eventually("the province holds the county's rectification", || {
        let s = demo.province_ticket_state(&first).expect("state");
        async move { s == Some(State::Rectified) }
    })
    .await;
    demo.rectify_at_target(&first).await.expect("done already");

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
            let st = bottomline::rpc::fetch_status(&addr, None)
                .await
                .expect("status");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_accepts_and_then_stalls_is_reported_not_waited_on_forever() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A "parent" that takes TCP connections and never says a word.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = format!("http://{}", stall.local_addr().expect("addr"));
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let acceptor = tokio::spawn(async move {
        while let Ok((conn, _)) = stall.accept().await {
            keep.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
    });
    let county = common::start(
        tmp.path(),
        "610102",
        Some(&addr),
        false,
        "reconnect_secs = 0.05\nconnect_timeout_secs = 0.3\n",
    )
    .await;
    common::eventually(
        "the stalled parent is reported as the uplink's error",
        || {
            let u = county
                .handle
                .uplink
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            !u.connected
                && u.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("did not answer within 0.3 s"))
        },
    )
    .await;
    // It keeps retrying (new connections), rather than hanging on the first one.
    common::eventually("the county redials", || {
        held.lock().unwrap_or_else(|p| p.into_inner()).len() >= 2
    })
    .await;
    common::stop(county).await;
    acceptor.abort();
}
