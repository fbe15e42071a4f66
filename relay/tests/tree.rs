//! A real county node and a real city node (signed envelopes over mTLS) with the relay
//! between them, all in process on 127.0.0.1: the county's statistics reach the city and a
//! city's ticket reaches the county through the relay; the relay holds the county's batches
//! while the city is down and hands them over after the county went offline; it holds the
//! city's ticket while the county is down and delivers it while the city is offline.

mod common;

use std::path::{Path, PathBuf};

use bottomline::domain::RecordKind;
use bottomline::ledger::Change;
use bottomline::node::{self, NodeHandle};
use bottomline::tickets::{Severity, State, Ticket, TicketKey, TicketSource};
use bottomline_relay::Relay;
use common::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A node running in this process.
struct Running {
    handle: NodeHandle,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_node(
    dir: &Path,
    division: &str,
    parent: Option<&str>,
    listen: Option<u16>,
) -> Running {
    let tls = node(dir, division);
    let mut toml = format!(
        "division = \"{division}\"\ndata_dir = {:?}\n",
        dir.join(division).display().to_string()
    );
    if let Some(p) = parent {
        toml.push_str(&format!("parent = \"{p}\"\n"));
    }
    if let Some(port) = listen {
        toml.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
    }
    toml.push_str(&tls.to_toml_section());
    toml.push_str(
        "[sync]\nreconnect_secs = 0.05\nheartbeat_secs = 0.5\nconnect_timeout_secs = 1.0\n",
    );
    let config = bottomline::config::Config::parse(&toml).expect("node config");
    let handle = node::open(&config).expect("open node");
    let listener = match listen {
        Some(port) => Some(TcpListener::bind(("127.0.0.1", port)).await.expect("bind")),
        None => None,
    };
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(node::run(config, handle.clone(), listener, async move {
        let _ = rx.await;
    }));
    Running { handle, stop, task }
}

async fn stop_node(n: Running) {
    let _ = n.stop.send(());
    n.task.await.expect("join").expect("clean shutdown");
}

/// Generate a small county data set into `files` and import it into `n`.
fn import(n: &Running, files: &Path) {
    import_county(n, files, COUNTY);
}

/// Generate county `county`'s small data set into `files` and import it into `n`.
fn import_county(n: &Running, files: &Path, county: &str) {
    let end = jiff::civil::date(2026, 11, 20);
    bottomline::gen::generate(
        &bottomline::gen::GenOptions {
            seed: 7,
            out: files.to_path_buf(),
            scope: bottomline::gen::GenScope::County(county.into()),
            end,
            households_per_county: Some(80),
        },
        &mut |_| {},
    )
    .expect("gen");
    let paths: Vec<PathBuf> = bottomline::import::FILE_ORDER
        .iter()
        .map(|k| files.join(county).join(format!("{k}.csv")))
        .collect();
    bottomline::import::import_files(
        &n.handle.ledger,
        &paths,
        None,
        end,
        &mut |_| {},
        &mut |_| {},
    )
    .expect("import");
}

/// Delete the county's assistance measures (their cells change: zero travels too).
fn delete_measures(n: &Running, files: &Path) {
    delete_county_measures(n, files, COUNTY);
}

fn delete_county_measures(n: &Running, files: &Path, county: &str) {
    let csv = std::fs::read_to_string(files.join(county).join("measures.csv")).expect("measures");
    let changes: Vec<Change> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|id| Change::Delete(RecordKind::Measure, id.to_string()))
        .collect();
    assert!(!changes.is_empty());
    n.handle
        .ledger
        .apply(&changes, jiff::civil::date(2026, 11, 20))
        .expect("delete");
}

fn ticket(id: &str) -> Ticket {
    ticket_for(id, COUNTY)
}

fn ticket_for(id: &str, county: &str) -> Ticket {
    Ticket {
        issuer: code(CITY),
        id: id.into(),
        target: code(county),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: bottomline::period::today_in_china()
            .checked_add(jiff::Span::new().days(10))
            .expect("date"),
        description: "roof of a monitored household leaks".into(),
        household_code: None,
        parent: None,
        inventory: None,
        spot_check: None,
    }
}

fn state(n: &Running, key: &TicketKey) -> Option<State> {
    n.handle
        .ledger
        .ticket(key)
        .expect("ticket")
        .map(|s| s.state)
}

/// The county's durable head, as the city holds it.
fn city_has(city: &Running, head: u64) -> bool {
    city_has_of(city, COUNTY, head)
}

fn city_has_of(city: &Running, county: &str, head: u64) -> bool {
    city.handle
        .ledger
        .child_resume(code(county))
        .expect("resume")
        .0
        >= head
}

async fn relay_custody(url: &str, dir: &Path) -> (u64, u64) {
    relay_custody_of(url, dir, COUNTY).await
}

async fn relay_custody_of(url: &str, dir: &Path, county: &str) -> (u64, u64) {
    match status(url, &operator(dir)).await {
        Ok(st) => child_of(&st, county).map_or((0, 0), |c| (c.custody_up, c.custody_down)),
        Err(_) => (u64::MAX, u64::MAX),
    }
}

/// The cells of `county`'s subtree held at `n`.
fn cells_of(
    n: &Running,
    county: &str,
) -> std::collections::BTreeMap<bottomline::stats::CellKey, i64> {
    let mut cells = n.handle.ledger.all_cells().expect("cells");
    cells.retain(|k, _| code(county).contains(k.division));
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_county_and_its_city_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = d.join("files");
    let port = free_port();
    let city_url = format!("https://127.0.0.1:{port}");
    let city = start_node(d, CITY, None, Some(port)).await;
    let relay = Relay::start(relay_config(d, &city_url)).await.unwrap();
    let url = relay.url();
    let county = start_node(d, COUNTY, Some(&url), None).await;

    // Statistics up, a ticket down, its delivery back up: all through the relay.
    import(&county, &files);
    let head = county.handle.ledger.durable_seq();
    assert!(head > 0);
    eventually("the city holds the county's log", || async {
        city_has(&city, head)
    })
    .await;
    let via = city
        .handle
        .children
        .lock()
        .unwrap()
        .get(&code(COUNTY))
        .and_then(|c| c.via_relay.clone());
    assert_eq!(via.as_deref(), Some("r1"));
    let keys = city
        .handle
        .ledger
        .issue_tickets(code(CITY), vec![ticket("T1")])
        .expect("issue");
    let t1 = &keys[0];
    eventually("T1 delivered at the county", || async {
        state(&county, t1) == Some(State::Delivered)
    })
    .await;
    eventually("T1's delivery seen at the city", || async {
        state(&city, t1) == Some(State::Delivered)
    })
    .await;

    // The city goes down: the county's new batches are acked by the relay and kept; the
    // county goes offline; the city returns and gets them from the relay alone.
    stop_node(city).await;
    delete_measures(&county, &files);
    let head = county.handle.ledger.durable_seq();
    eventually("the county's log in custody", || async {
        county.handle.uplink.lock().unwrap().acked >= head
    })
    .await;
    assert!(relay_custody(&url, d).await.0 > 0);
    stop_node(county).await;
    let city = start_node(d, CITY, None, Some(port)).await;
    eventually(
        "the city holds the county's log, the county offline",
        || async { city_has(&city, head) },
    )
    .await;
    eventually("custody up emptied", || async {
        relay_custody(&url, d).await.0 == 0
    })
    .await;

    // The city issues a ticket while the county is offline: the relay keeps it; the city
    // goes down; the county returns and gets it from the relay alone.
    let keys = city
        .handle
        .ledger
        .issue_tickets(code(CITY), vec![ticket("T2")])
        .expect("issue");
    let t2 = keys[0].clone();
    eventually("T2 in custody", || async {
        relay_custody(&url, d).await.1 > 0
    })
    .await;
    stop_node(city).await;
    let county = start_node(d, COUNTY, Some(&url), None).await;
    eventually("T2 delivered at the county, the city offline", || async {
        state(&county, &t2) == Some(State::Delivered)
    })
    .await;
    eventually("custody down emptied", || async {
        relay_custody(&url, d).await.1 == 0
    })
    .await;
    let city = start_node(d, CITY, None, Some(port)).await;
    eventually("T2's delivery seen at the city", || async {
        state(&city, &t2) == Some(State::Delivered)
    })
    .await;
    // The ticket cells the delivery changed at the county follow.
    let head = county.handle.ledger.durable_seq();
    eventually("the city holds the county's whole log", || async {
        city_has(&city, head)
    })
    .await;

    stop_node(county).await;
    relay.shutdown().await.unwrap();
    stop_node(city).await;
}

/// A relay process killed with -9 while it holds a backlog both ways — the city's ticket for
/// a county that is offline, and another county's batches for the city that is down — comes
/// back with both, and hands each over exactly once: the city ends with exactly each county's
/// cells and the ticket is delivered, its delivery seen at the city.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_with_a_backlog_both_ways_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = d.join("files");
    let (port, rport) = (free_port(), free_port());
    let city_url = format!("https://127.0.0.1:{port}");
    let url = format!("https://127.0.0.1:{rport}");
    let config = d.join("relay.toml");
    std::fs::write(&config, relay_toml(d, &city_url, rport)).unwrap();
    let log = d.join("relay.log");
    let city = start_node(d, CITY, None, Some(port)).await;
    let mut relay = spawn(&config, &log);
    ready(&url, d, &mut relay).await;
    let a = start_node(d, COUNTY, Some(&url), None).await;
    let b = start_node(d, COUNTY2, Some(&url), None).await;
    import_county(&a, &files, COUNTY);
    import_county(&b, &files, COUNTY2);
    for (n, c) in [(&a, COUNTY), (&b, COUNTY2)] {
        let head = n.handle.ledger.durable_seq();
        eventually("the city holds each county's log", || async {
            city_has_of(&city, c, head)
        })
        .await;
    }

    // Down: county A goes offline; the city's ticket for it waits at the relay.
    stop_node(a).await;
    let keys = city
        .handle
        .ledger
        .issue_tickets(code(CITY), vec![ticket_for("K1", COUNTY)])
        .expect("issue");
    let k1 = keys[0].clone();
    eventually("K1 in custody for A", || async {
        let (_, down) = relay_custody_of(&url, d, COUNTY).await;
        down > 0 && down != u64::MAX
    })
    .await;
    // Up: the city goes down; county B's change waits at the relay.
    stop_node(city).await;
    delete_county_measures(&b, &files, COUNTY2);
    let b_head = b.handle.ledger.durable_seq();
    eventually("B's change acked by the relay", || async {
        b.handle.uplink.lock().unwrap().acked >= b_head
    })
    .await;
    let held = (
        relay_custody_of(&url, d, COUNTY).await,
        relay_custody_of(&url, d, COUNTY2).await,
    );
    assert!(
        held.0 .1 > 0 && held.1 .0 > 0 && held.0 .1 != u64::MAX && held.1 .0 != u64::MAX,
        "custody both ways: {held:?}"
    );
    println!(
        "custody before kill -9: A (up, down) = {:?}, B = {:?}",
        held.0, held.1
    );

    // kill -9, and back: the custody is all there.
    relay.kill().unwrap();
    relay.wait().unwrap();
    let mut relay = spawn(&config, &log);
    ready(&url, d, &mut relay).await;
    let after = (
        relay_custody_of(&url, d, COUNTY).await,
        relay_custody_of(&url, d, COUNTY2).await,
    );
    assert_eq!(after, held, "custody after kill -9");

    // The city and county A return: everything arrives once.
    let city = start_node(d, CITY, None, Some(port)).await;
    let a = start_node(d, COUNTY, Some(&url), None).await;
    eventually("K1 delivered at A", || async {
        state(&a, &k1) == Some(State::Delivered)
    })
    .await;
    eventually("K1's delivery seen at the city", || async {
        state(&city, &k1) == Some(State::Delivered)
    })
    .await;
    for (n, c) in [(&a, COUNTY), (&b, COUNTY2)] {
        let head = n.handle.ledger.durable_seq();
        eventually("the city holds each county's whole log", || async {
            city_has_of(&city, c, head)
        })
        .await;
        assert_eq!(
            cells_of(&city, c),
            n.handle.ledger.upward_cells().expect("cells"),
            "the city holds exactly {c}'s cells"
        );
    }
    eventually("custody drained both ways", || async {
        relay_custody_of(&url, d, COUNTY).await == (0, 0)
            && relay_custody_of(&url, d, COUNTY2).await == (0, 0)
    })
    .await;
    assert_eq!(
        city.handle.ledger.ticket_events(&k1).expect("events").len(),
        2,
        "issued and delivered, once each"
    );
    stop_node(a).await;
    stop_node(b).await;
    stop_node(city).await;
    relay.kill().unwrap();
    relay.wait().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Issue #16 point 3 through a relay: a county restored from an older backup is recognised
/// by the relay (its custody and cursor are not the restored store's history any more) and
/// by the city, which replaces what it held of the county with what it now holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_county_restored_behind_the_relay_is_replaced_at_its_city() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = d.join("files");
    let port = free_port();
    let city = start_node(d, CITY, None, Some(port)).await;
    let relay = Relay::start(relay_config(d, &format!("https://127.0.0.1:{port}")))
        .await
        .unwrap();
    let url = relay.url();
    let mut county = start_node(d, COUNTY, Some(&url), None).await;
    let same = |city: &Running, county: &Running| {
        cells_of(city, COUNTY) == county.handle.ledger.upward_cells().expect("cells")
    };

    import(&county, &files);
    eventually("the city holds the county", || async {
        same(&city, &county)
    })
    .await;
    // The backup, the node stopped; then a week of changes that reach the city.
    stop_node(county).await;
    copy_dir(&d.join(COUNTY), &d.join("backup"));
    county = start_node(d, COUNTY, Some(&url), None).await;
    let before = county.handle.ledger.all_cells().expect("cells");
    delete_measures(&county, &files);
    assert_ne!(county.handle.ledger.all_cells().expect("cells"), before);
    eventually("the week's changes reach the city", || async {
        same(&city, &county)
    })
    .await;

    // Restored from the backup: the city holds the backup's figures again, not the week's.
    stop_node(county).await;
    std::fs::remove_dir_all(d.join(COUNTY)).expect("remove");
    copy_dir(&d.join("backup"), &d.join(COUNTY));
    county = start_node(d, COUNTY, Some(&url), None).await;
    assert_eq!(county.handle.ledger.all_cells().expect("cells"), before);
    eventually("the city replaced what it held of the county", || async {
        same(&city, &county)
    })
    .await;
    // The week again: counted once.
    delete_measures(&county, &files);
    eventually("the week again reaches the city", || async {
        same(&city, &county)
    })
    .await;
    eventually("custody up emptied", || async {
        relay_custody(&url, d).await.0 == 0
    })
    .await;

    stop_node(county).await;
    relay.shutdown().await.unwrap();
    stop_node(city).await;
}
