//! Tickets under faults with real `bottomline serve` processes (issue #4, point 6): a county
//! offline while an inventory is issued to it, and `kill -9` of the city in the middle of the
//! delivery. After the city restarts and the county comes back, every ticket has reached
//! exactly its target, once, and every level holds the same states and histories.

mod common;
use common::procs::Proc;
use common::{eventually_async, POLL};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottomline::division::Code;
use bottomline::ledger::{Act, Ledger};
use bottomline::rpc::tickets_client::{ListFilter, TicketsClient};
use bottomline::store::StoreOptions;
use bottomline::tickets::{EventKind, State, TicketKey, TicketState};

fn code(s: &str) -> Code {
    Code::parse(s).expect("division code")
}

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("{body}[sync]\nreconnect_secs = 0.05\nheartbeat_secs = 0.5\n"),
    )
    .expect("write config");
    path
}

/// A port that was free a moment ago (the city must come back on the same address).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// How many tickets `addr` holds in `state` (any state when `None`).
async fn count(addr: &str, state: Option<&str>) -> u32 {
    let Ok(mut c) = TicketsClient::connect(addr, None).await else {
        return 0;
    };
    let f = ListFilter {
        state: state.map(str::to_string),
        limit: 1,
        ..Default::default()
    };
    c.list(&f).await.map(|(_, total)| total).unwrap_or(0)
}

async fn wait_count(addr: &str, state: Option<&str>, want: u32, what: &str) {
    eventually_async(what, || async move { count(addr, state).await == want }).await;
}

fn inventory_csv(n: usize, targets: &[&str], deadline: &str) -> Vec<u8> {
    let mut s = String::from("id,target,category,source,severity,deadline,description\n");
    for i in 0..n {
        s.push_str(&format!(
            "F{i:05},{},housing safety,inspection,high,{deadline},finding {i} of the inspection\n",
            targets[i % targets.len()]
        ));
    }
    s.into_bytes()
}

fn states(l: &Ledger) -> BTreeMap<TicketKey, TicketState> {
    l.tickets().expect("tickets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn city_killed_mid_delivery_and_county_offline_every_ticket_arrives_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nodes = dir.join("nodes");
    let data = |d: &str| {
        format!(
            "data_dir = {:?}\ninsecure = true\n",
            nodes.join(d).display().to_string()
        )
    };

    let p_cfg = write_config(
        dir,
        "61",
        &format!(
            "division = \"61\"\n{}listen = \"127.0.0.1:0\"\n",
            data("61")
        ),
    );
    let mut province = Proc::serve("province 61", &p_cfg);
    let p_addr = province.addr().await;
    let city_addr = format!("http://127.0.0.1:{}", free_port());
    let c_cfg = write_config(
        dir,
        "6101",
        &format!(
            "division = \"6101\"\n{}parent = \"{p_addr}\"\nlisten = \"{}\"\n",
            data("6101"),
            city_addr.trim_start_matches("http://")
        ),
    );
    let mut city = Proc::serve("city 6101", &c_cfg);
    assert_eq!(city.addr().await, city_addr);
    let county_cfg = |d: &str| {
        write_config(
            dir,
            d,
            &format!(
                "division = \"{d}\"\n{}parent = \"{city_addr}\"\nlisten = \"127.0.0.1:0\"\n",
                data(d)
            ),
        )
    };
    let (a_cfg, b_cfg) = (county_cfg("610102"), county_cfg("610103"));
    let mut county_a = Proc::serve("county 610102", &a_cfg);
    let a_addr = county_a.addr().await;
    // County B runs once (so the city knows it), then goes offline.
    let mut county_b = Proc::serve("county 610103", &b_cfg);
    county_b.addr().await;
    assert!(county_b.terminate().await.success());

    // The province issues an inventory of 4 000 tickets, half to each county.
    let total = 4000;
    let deadline = bottomline::period::today_in_china()
        .checked_add(jiff::Span::new().days(15))
        .expect("date")
        .to_string();
    let mut p = TicketsClient::connect(&p_addr, None)
        .await
        .expect("province API");
    let keys = p
        .inventory(
            None,
            "faults",
            inventory_csv(total, &["610102", "610103"], &deadline),
        )
        .await
        .expect("inventory");
    assert_eq!(keys.len(), total);

    // As soon as county A holds some of its tickets, kill -9 the city.
    let first = loop {
        let n = count(&a_addr, None).await;
        if n > 0 {
            break n;
        }
        tokio::time::sleep(POLL).await;
    };
    city.kill9();
    eprintln!("city killed with {first} of 2000 tickets at county 610102");

    // The city comes back on its address; the county comes back online.
    let mut city = Proc::serve("city 6101 (restarted)", &c_cfg);
    assert_eq!(city.addr().await, city_addr);
    let mut county_b = Proc::serve("county 610103 (back)", &b_cfg);
    let b_addr = county_b.addr().await;
    let half = (total / 2) as u32;
    wait_count(
        &a_addr,
        Some("delivered"),
        half,
        "county A holds its tickets, delivered",
    )
    .await;
    wait_count(
        &b_addr,
        Some("delivered"),
        half,
        "county B holds its tickets, delivered",
    )
    .await;
    wait_count(
        &p_addr,
        Some("delivered"),
        total as u32,
        "every delivery seen at the province",
    )
    .await;

    // Both counties accept everything; the province sees every acceptance.
    for addr in [&a_addr, &b_addr] {
        let mut c = TicketsClient::connect(addr, None)
            .await
            .expect("county API");
        let (rows, n) = c
            .list(&ListFilter {
                state: Some("delivered".into()),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(n, half);
        let keys: Vec<String> = rows.into_iter().map(|r| r.key).collect();
        c.act(None, &keys, &Act::Accept).await.expect("accept all");
    }
    wait_count(
        &p_addr,
        Some("accepted"),
        total as u32,
        "every acceptance at the province",
    )
    .await;
    wait_count(
        &city_addr,
        Some("accepted"),
        total as u32,
        "every acceptance at the city",
    )
    .await;

    // The counties' ticket cells reach the province like any statistics.
    let week = bottomline::period::Period::containing(
        bottomline::period::Kind::Week,
        bottomline::period::today_in_china(),
    );
    eventually_async("the province counts every ticket issued", || {
        let p_addr = p_addr.clone();
        async move {
            match bottomline::rpc::fetch_stats(&p_addr, None, Some(code("61")), week).await {
                Ok((i, _)) => i.count("tickets_issued", "total") == total as i64,
                Err(_) => false,
            }
        }
    })
    .await;
    for n in [&mut county_a, &mut county_b, &mut city, &mut province] {
        let st = n.terminate().await;
        assert!(st.success(), "{} exited with {st}", n.name);
    }

    // `bottomline check` at each county: cells = records + tickets recomputed.
    for d in ["610102", "610103"] {
        let out = std::process::Command::new(common::procs::BIN)
            .args(["check", "--data"])
            .arg(nodes.join(d))
            .output()
            .expect("run check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("ok:"),
            "check at {d}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The stores: each ticket once at exactly its target, one delivery, identical states.
    let opts = StoreOptions::default();
    let open = |d: &str| Ledger::open(&nodes.join(d), &opts).expect("open store");
    let (pl, cl, al, bl) = (open("61"), open("6101"), open("610102"), open("610103"));
    let (ps, cs, a_s, b_s) = (states(&pl), states(&cl), states(&al), states(&bl));
    assert_eq!(ps.len(), total);
    assert_eq!(
        ps, cs,
        "province and city hold identical states and histories"
    );
    assert_eq!(a_s.len() + b_s.len(), total);
    for (k, s) in &a_s {
        assert_eq!(
            s.ticket.target,
            code("610102"),
            "{k} reached only its target"
        );
        assert_eq!(Some(s), ps.get(k), "{k}: county A = province");
    }
    for (k, s) in &b_s {
        assert_eq!(
            s.ticket.target,
            code("610103"),
            "{k} reached only its target"
        );
        assert_eq!(Some(s), ps.get(k), "{k}: county B = province");
    }
    for (k, s) in &ps {
        assert_eq!(s.state, State::Accepted, "{k}");
        let target = if s.ticket.target == code("610102") {
            &al
        } else {
            &bl
        };
        for l in [&pl, &cl, target] {
            let evs = l.ticket_events(k).expect("events");
            let deliveries = evs
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Delivered { .. }))
                .count();
            assert_eq!(deliveries, 1, "{k} at {}: delivered once", l.division());
            assert_eq!(
                evs.len(),
                3,
                "{k} at {}: issue, delivery, acceptance",
                l.division()
            );
        }
    }
    // The ticket cells at each county count its tickets once; the province sums them.
    let issued = |l: &Ledger, d: &str| {
        l.indicators(code(d), week)
            .expect("indicators")
            .count("tickets_issued", "total")
    };
    assert_eq!(issued(&al, "610102"), half as i64);
    assert_eq!(issued(&bl, "610103"), half as i64);
    assert_eq!(issued(&pl, "61"), total as i64);
}
