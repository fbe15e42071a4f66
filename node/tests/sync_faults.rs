//! Sync under faults (issue #3, point 8), with real nodes on 127.0.0.1:
//!
//! 1. `kill -9` of a county process in the middle of its first sync, then a restart: the
//!    province converges to the ground truth with nothing counted twice, every process stops
//!    cleanly on SIGTERM, and the province's store holds exact replicas and level sums.
//! 2. A county's link to its city cut for a while (a TCP proxy the test controls) with writes
//!    on both sides: the cut county's changes stay away from the province while the healthy
//!    county's arrive; after the heal everything converges exactly.
//! 3. A raw client on a parent's `Link` sends real cell batches twice, out of order, replays old
//!    batches after newer ones and replays everything after a reconnect: the parent's replica
//!    and aggregate equal the child's cells exactly, and a cell that went to zero reaches zero.

mod common;
use common::procs::{log_field, Proc, BIN};
use common::{eventually, eventually_async, stop, Running, DEADLINE, POLL};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bottomline::division::Code;
use bottomline::domain::{Cents, Record, RecordKind};
use bottomline::gen::{GenOptions, GenScope};
use bottomline::ledger::{Change, Ledger};
use bottomline::period::{today_in_china, Kind, Period};
use bottomline::stats::{CellKey, Value};
use bottomline::store::StoreOptions;
use bottomline_proto::v1 as pb;
use jiff::civil::{date, Date};
use pb::envelope::Payload;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Last day of the generated data, and "today" for in-process applies.
const END: Date = date(2026, 11, 20);
const TODAY: Date = date(2026, 11, 24);

/// Periods of every kind checked for convergence.
const PERIODS: [&str; 6] = ["2026-W47", "2026-11", "2026-Q3", "2026-H1", "2026", "2025"];

/// Indicators that must be present (and add up) in every comparison.
const NAMES: [&str; 5] = [
    "monitored_households",
    "monitored_persons",
    "signals",
    "measures",
    "measure_amount",
];

// ------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------

type Cells = BTreeMap<CellKey, i64>;

/// Generate a province `61` with one city and `counties` counties; returns the files dir and
/// the county codes.
fn generate(dir: &Path, seed: u64, counties: u32, households: u32) -> (PathBuf, Vec<String>) {
    let files = dir.join("files");
    let summary = bottomline::gen::generate(
        &GenOptions {
            seed,
            out: files.clone(),
            scope: GenScope::Province {
                code: "61".into(),
                cities: 1,
                counties,
            },
            end: END,
            households_per_county: Some(households),
        },
        &mut |_| {},
    )
    .expect("gen");
    assert_eq!(summary.counties.len(), counties as usize);
    (files, summary.counties)
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("division code")
}

fn period(s: &str) -> Period {
    Period::parse(s).expect("period")
}

/// A scratch ledger holding `county`'s files: the ground truth.
fn truth_ledger(dir: &Path, files: &Path, county: &str, today: Date) -> Ledger {
    let l = Ledger::open_or_init(dir, Some(code(county)), &StoreOptions::default())
        .expect("scratch ledger");
    common::import_generated(&l, files, county, today);
    l
}

/// Cells of `l` in the subtree of `top`.
fn subtree_cells(l: &Ledger, top: Code) -> Cells {
    let mut c = l.all_cells().expect("cells");
    c.retain(|k, _| top.contains(k.division));
    c
}

/// The cells of `children`'s own divisions, summed and re-addressed to `parent`.
fn rolled_up(cells: &Cells, children: &[Code], parent: Code) -> Cells {
    let mut out = Cells::new();
    for (k, v) in cells.iter().filter(|(k, _)| children.contains(&k.division)) {
        let mut k = *k;
        k.division = parent;
        *out.entry(k).or_insert(0) += v;
    }
    out.retain(|_, v| *v != 0);
    out
}

/// `division`'s own cells within `cells`.
fn own(cells: &Cells, division: Code) -> Cells {
    let mut c = cells.clone();
    c.retain(|k, _| k.division == division);
    c
}

/// Counts and amounts (not ratios) by (indicator, dimension).
type Snapshot = BTreeMap<(String, String), i64>;

fn snapshot(l: &Ledger, division: &str, p: &str) -> Snapshot {
    l.indicators(code(division), period(p))
        .expect("indicators")
        .rows
        .iter()
        .filter_map(|r| match r.value {
            Value::Count(n) | Value::Fen(n) => {
                Some(((r.indicator.to_string(), r.dimension.clone()), n))
            }
            Value::Ratio(_) | Value::Average(_) => None,
        })
        .collect()
}

fn sum_snapshots(s: impl IntoIterator<Item = Snapshot>) -> Snapshot {
    let mut out = Snapshot::new();
    for m in s {
        for (k, v) in m {
            *out.entry(k).or_insert(0) += v;
        }
    }
    out
}

fn total(s: &Snapshot, name: &str) -> i64 {
    s.get(&(name.to_string(), "total".to_string()))
        .copied()
        .unwrap_or_else(|| panic!("indicator {name} missing from {s:?}"))
}

fn count(l: &Ledger, division: &str, p: &str, name: &str) -> i64 {
    l.indicators(code(division), period(p))
        .expect("indicators")
        .count(name, "total")
}

// ------------------------------------------------------------------------------------------
// Real processes
// ------------------------------------------------------------------------------------------

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("{body}[sync]\nbatch_blocks = 20\nreconnect_secs = 0.05\n"),
    )
    .expect("write config");
    path
}

fn cli_import(data: &Path, county: &str, files: &Path) {
    let out = Command::new(BIN)
        .args(["import", "--division", county, "--data"])
        .arg(data)
        .args(common::county_files(files, county))
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import {county}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reported period whose block of `county`'s own cells is first in `l`'s change log.
fn early_period(l: &Ledger, county: Code) -> String {
    let all = l.sweep(0, 0, usize::MAX).expect("sweep");
    assert!(all.complete);
    let mut first: BTreeMap<Period, u64> = BTreeMap::new();
    for (k, v) in &all.cells {
        if k.division == county && Kind::REPORTED.contains(&k.period.kind()) {
            let s = first.entry(k.period).or_insert(0);
            *s = (*s).max(v.seq);
        }
    }
    let (p, seq) = first
        .into_iter()
        .min_by_key(|(_, s)| *s)
        .expect("county cells");
    assert!(
        seq < all.pos / 2,
        "{p} is logged at {seq} of {}: too late to show a partial sync",
        all.pos
    );
    p.to_string()
}

type Client = pb::sync_client::SyncClient<tonic::transport::Channel>;

/// Counts and amounts of `division` for `p` as the node answers the Stats RPC.
async fn rpc_snapshot(client: &mut Client, division: &str, p: &str) -> Snapshot {
    let reply = client
        .stats(pb::StatsRequest {
            division: division.to_string(),
            period: p.to_string(),
        })
        .await
        .expect("Stats RPC")
        .into_inner();
    reply
        .indicators
        .into_iter()
        .filter(|i| !i.is_ratio)
        .map(|i| ((i.name, i.dimension), i.value))
        .collect()
}

/// True when the node answers exactly `want` for every (division, period).
async fn rpc_matches(client: &mut Client, want: &BTreeMap<(String, String), Snapshot>) -> bool {
    for ((d, p), w) in want {
        if rpc_snapshot(client, d, p).await != *w {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_killed_mid_sync_restarts_and_converges_without_double_counting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (files, counties) = generate(tmp.path(), 11, 2, 2500);
    let (victim, other) = (counties[0].clone(), counties[1].clone());

    // Ground truth: the same files imported into scratch ledgers in this process.
    let today = today_in_china();
    let truths: Vec<Ledger> = counties
        .iter()
        .map(|c| truth_ledger(&tmp.path().join("truth").join(c), &files, c, today))
        .collect();
    let mut want: BTreeMap<(String, String), Snapshot> = BTreeMap::new();
    for p in PERIODS {
        for (c, t) in counties.iter().zip(&truths) {
            want.insert((c.clone(), p.into()), snapshot(t, c, p));
        }
        let sum = sum_snapshots(counties.iter().zip(&truths).map(|(c, t)| snapshot(t, c, p)));
        want.insert(("6101".into(), p.into()), sum.clone());
        want.insert(("61".into(), p.into()), sum);
    }
    let year = &want[&(victim.clone(), "2026".to_string())];
    for name in NAMES {
        assert!(total(year, name) > 0, "{name} is not empty in the data");
    }

    // Import each county into its data dir before its node starts (the node holds the lock).
    let nodes = tmp.path().join("nodes");
    std::fs::create_dir_all(&nodes).expect("mkdir");
    for c in &counties {
        cli_import(&nodes.join(c), c, &files);
    }

    let q = |s: &Path| format!("{:?}", s.display().to_string());
    let p_cfg = write_config(
        &nodes,
        "61",
        &format!(
            "division = \"61\"\ndata_dir = {}\ninsecure = true\nlisten = \"127.0.0.1:0\"\n",
            q(&nodes.join("61"))
        ),
    );
    let mut province = Proc::serve("province 61", &p_cfg);
    let p_addr = province.addr().await;
    let c_cfg = write_config(
        &nodes,
        "6101",
        &format!(
            "division = \"6101\"\ndata_dir = {}\ninsecure = true\nlisten = \"127.0.0.1:0\"\nparent = \"{p_addr}\"\n",
            q(&nodes.join("6101"))
        ),
    );
    let mut city = Proc::serve("city 6101", &c_cfg);
    let c_addr = city.addr().await;
    let county_cfg = |c: &str| {
        write_config(
            &nodes,
            c,
            &format!(
                "division = \"{c}\"\ndata_dir = {}\ninsecure = true\nparent = \"{c_addr}\"\n",
                q(&nodes.join(c))
            ),
        )
    };
    let mut county = Proc::serve(&format!("county {victim}"), &county_cfg(&victim));
    let mut second = Proc::serve(&format!("county {other}"), &county_cfg(&other));

    let mut client = Client::connect(p_addr.clone())
        .await
        .expect("connect to the province");

    // Wait until the province shows part, but not all, of the victim's data; then kill -9.
    // "Part": the county-level period whose block comes first in the victim's change log (the
    // sweep sends blocks in log order) has arrived; "not all": the periods checked below differ.
    let early = early_period(&truths[0], code(&victim));
    let victim_want: BTreeMap<_, _> = want
        .iter()
        .filter(|((d, _), _)| *d == victim)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    eventually_async(&format!("part of {victim}'s data at the province"), || {
        let (mut client, victim, early) = (client.clone(), victim.clone(), early.clone());
        async move {
            let got = rpc_snapshot(&mut client, &victim, &early).await;
            got.values().any(|v| *v != 0)
        }
    })
    .await;
    assert!(
        !rpc_matches(&mut client, &victim_want).await,
        "the county synced completely before it could be killed: use more data"
    );
    county.kill9();
    let connects_before = city
        .matching(&["child connected", &format!("child={victim}")])
        .len();
    assert!(connects_before >= 1, "the victim had linked to the city");

    // Restart it: it resumes from the floor the city made durable, which is below its head
    // (the kill hit the first sweep, so everything is sent again).
    let mut county = Proc::serve(
        &format!("county {victim} (restarted)"),
        &county_cfg(&victim),
    );
    let line = city
        .wait_for_line(
            &["child connected", &format!("child={victim}")],
            connects_before,
        )
        .await;
    let field = |f: &str| -> u64 {
        log_field(&line, f)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {f} in {line:?}"))
    };
    let (acked, head) = (field("acked"), field("head"));
    assert!(
        acked < head,
        "killed mid-sync: the durable floor {acked} is below the head {head}"
    );
    // The interrupted sweep continues where the city's durable copy ends, not from scratch.
    let resume = field("resume_pos");
    assert!(
        acked < resume && resume <= head,
        "the restarted county resumes its sweep at {resume}, past its floor {acked}"
    );

    // The province converges to the ground truth for the county, the city and itself.
    let deadline = Instant::now() + DEADLINE;
    while !rpc_matches(&mut client, &want).await {
        assert!(
            Instant::now() < deadline,
            "the province did not converge to the ground truth"
        );
        tokio::time::sleep(POLL).await;
    }
    for p in PERIODS {
        let key = ("61".to_string(), p.to_string());
        assert_eq!(rpc_snapshot(&mut client, "61", p).await, want[&key], "{p}");
    }
    drop(client);

    // The indicators read above come from the county-level blocks; the villages' blocks may
    // still be on their way. Wait until every link is drained (Status): the city has made
    // each county's whole log durable (the counties no longer write, so the head they sent
    // on connecting is final), then the province the city's whole log.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let city_st = bottomline::rpc::fetch_status(&c_addr, None)
            .await
            .expect("city status");
        let counties_done = counties.iter().all(|cc| {
            city_st
                .children
                .iter()
                .any(|ch| ch.division.to_string() == *cc && ch.head > 0 && ch.acked == ch.head)
        });
        if counties_done {
            let prov_st = bottomline::rpc::fetch_status(&p_addr, None)
                .await
                .expect("province status");
            if prov_st
                .children
                .iter()
                .any(|ch| ch.division.to_string() == "6101" && ch.acked == city_st.head)
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the links did not drain");
        tokio::time::sleep(POLL).await;
    }

    // Ordered shutdown of every node: SIGTERM, exit status 0.
    for n in [&mut county, &mut second, &mut city, &mut province] {
        let st = n.terminate().await;
        assert!(st.success(), "{} exited with {st}", n.name);
        assert!(
            n.lines().iter().any(|l| l.contains("store flushed")),
            "{} logged its ordered shutdown",
            n.name
        );
    }

    // The stores: exact replicas at the province and the city, every level = Σ children.
    let opts = StoreOptions::default();
    let p = Ledger::open(&nodes.join("61"), &opts).expect("open province");
    let c = Ledger::open(&nodes.join("6101"), &opts).expect("open city");
    let p_cells = p.all_cells().expect("cells");
    let mut codes = vec![];
    for (code_s, t) in counties.iter().zip(&truths) {
        let cc = code(code_s);
        codes.push(cc);
        let l = Ledger::open(&nodes.join(code_s), &opts).expect("open county");
        let cells = l.all_cells().expect("cells");
        assert_eq!(cells, l.recompute_cells().expect("recompute"), "{code_s}");
        assert_eq!(
            cells,
            t.all_cells().expect("cells"),
            "{code_s} = ground truth"
        );
        let upward = l.upward_cells().expect("cells");
        assert!(
            subtree_cells(&p, cc) == upward,
            "province replica of {code_s}"
        );
        assert!(subtree_cells(&c, cc) == upward, "city replica of {code_s}");
    }
    let city_code = code("6101");
    assert!(
        subtree_cells(&p, city_code) == c.all_cells().expect("cells"),
        "province replica of the city"
    );
    assert!(own(&p_cells, city_code) == rolled_up(&p_cells, &codes, city_code));
    assert!(own(&p_cells, code("61")) == rolled_up(&p_cells, &[city_code], code("61")));
    assert!(!own(&p_cells, code("61")).is_empty());
}

// ------------------------------------------------------------------------------------------
// In-process nodes
// ------------------------------------------------------------------------------------------

/// Sync settings of this file's nodes.
const SYNC: &str = "batch_blocks = 50\nreconnect_secs = 0.05\n";

async fn start(dir: &Path, division: &str, parent: Option<&str>, listen: bool) -> Running {
    common::start(dir, division, parent, listen, SYNC).await
}

/// A TCP proxy the test controls: `cut` drops every live connection and closes new ones at
/// once (like a link that is down); `heal` lets connections through again.
struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyShared {
    cut: AtomicBool,
    /// Connections closed at once because the link was cut.
    refused: AtomicU64,
    /// Connections passed through.
    passed: AtomicU64,
    conns: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared: Arc<ProxyShared> = Default::default();
        let sh = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                // The check and the registration happen under the lock `cut` takes, so no
                // connection slips through a cut.
                let mut conns = sh.conns.lock().unwrap_or_else(|p| p.into_inner());
                if sh.cut.load(Ordering::SeqCst) {
                    sh.refused.fetch_add(1, Ordering::SeqCst);
                    drop(down);
                    continue;
                }
                sh.passed.fetch_add(1, Ordering::SeqCst);
                conns.retain(|c| !c.is_finished());
                conns.push(tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }));
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cut the link: returns once every live connection is closed.
    async fn cut(&self) {
        let live: Vec<_> = {
            let mut conns = self.shared.conns.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.cut.store(true, Ordering::SeqCst);
            conns.drain(..).collect()
        };
        for c in live {
            c.abort();
            let _ = c.await;
        }
    }

    fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }
}

fn first_measure(l: &Ledger) -> bottomline::domain::Measure {
    match l
        .records(RecordKind::Measure)
        .next()
        .expect("a measure")
        .expect("record")
    {
        Record::Measure(m) => m,
        other => panic!("not a measure: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_with_writes_on_both_sides_converges_after_the_heal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (files, counties) = generate(tmp.path(), 12, 2, 1000);
    let nodes = tmp.path().join("nodes");
    let province = start(&nodes, "61", None, true).await;
    let city = start(&nodes, "6101", province.addr.as_deref(), true).await;
    let city_addr: SocketAddr = city
        .addr
        .as_deref()
        .and_then(|a| a.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .expect("city address");
    let proxy = Proxy::start(city_addr).await;
    // County A dials the city through the proxy, county B directly.
    let a = start(&nodes, &counties[0], Some(&proxy.url()), false).await;
    let b = start(&nodes, &counties[1], city.addr.as_deref(), false).await;
    let (a_code, b_code) = (a.ledger().division(), b.ledger().division());
    let (a_s, b_s) = (a_code.to_string(), b_code.to_string());
    common::import_generated(a.ledger(), &files, &a_s, TODAY);
    common::import_generated(b.ledger(), &files, &b_s, TODAY);

    let p = province.handle.ledger.clone();
    let c = city.handle.ledger.clone();
    let city_code = c.division();
    let replica_of = |n: &Running| {
        subtree_cells(&p, n.ledger().division()) == n.ledger().upward_cells().expect("cells")
    };
    let level_sums = || {
        let cells = p.all_cells().expect("cells");
        own(&cells, city_code) == rolled_up(&cells, &[a_code, b_code], city_code)
            && own(&cells, code("61")) == rolled_up(&cells, &[city_code], code("61"))
    };
    eventually("the first sync completes", || {
        replica_of(&a)
            && replica_of(&b)
            && subtree_cells(&p, city_code) == c.all_cells().expect("cells")
    })
    .await;
    assert!(proxy.shared.passed.load(Ordering::SeqCst) >= 1);
    let a_before = a.ledger().upward_cells().expect("cells");
    let amount_before = count(&p, &a_s, "2026", "measure_amount");

    // Cut A's link, then write at A (a back-dated correction, a deletion, a new record) and at
    // B (a correction).
    proxy.cut().await;
    let mut corrected = first_measure(a.ledger());
    corrected.date = date(2026, 3, 10);
    corrected.amount = Cents(corrected.amount.0 + 50_000);
    let mut added = corrected.clone();
    added.id = "FAULT-M-1".into();
    added.date = date(2026, 11, 19);
    let signal = match a
        .ledger()
        .records(RecordKind::Signal)
        .next()
        .expect("a signal")
        .expect("record")
    {
        Record::Signal(s) => s,
        other => panic!("not a signal: {other:?}"),
    };
    let applied = a
        .ledger()
        .apply(
            &[
                Change::Put(Record::Measure(corrected)),
                Change::Put(Record::Measure(added)),
                Change::Delete(RecordKind::Signal, signal.id.clone()),
            ],
            TODAY,
        )
        .expect("writes at A");
    assert_eq!(
        (applied.inserted, applied.corrected, applied.deleted),
        (1, 1, 1)
    );
    let mut b_measure = first_measure(b.ledger());
    b_measure.amount = Cents(b_measure.amount.0 + 70_000);
    b.ledger()
        .apply(&[Change::Put(Record::Measure(b_measure))], TODAY)
        .expect("write at B");
    assert_ne!(a.ledger().upward_cells().expect("cells"), a_before);

    // B's change reaches the province while A keeps knocking at the cut link in vain.
    eventually("B's change at the province, A refused twice", || {
        replica_of(&b) && level_sums() && proxy.refused() >= 2
    })
    .await;
    assert!(
        subtree_cells(&p, a_code) == a_before,
        "A's writes must not reach the province during the cut"
    );
    assert!(subtree_cells(&c, a_code) == a_before, "nor the city");
    assert_eq!(count(&p, &a_s, "2026", "measure_amount"), amount_before);
    assert_ne!(
        count(a.ledger(), &a_s, "2026", "measure_amount"),
        amount_before
    );
    // A second write at A while still cut: only its final state may arrive later.
    let mut again = first_measure(a.ledger());
    again.amount = Cents(again.amount.0 + 1);
    a.ledger()
        .apply(&[Change::Put(Record::Measure(again))], TODAY)
        .expect("second write at A");

    proxy.heal();
    eventually("A's writes reach the province after the heal", || {
        replica_of(&a)
            && replica_of(&b)
            && subtree_cells(&p, city_code) == c.all_cells().expect("cells")
            && level_sums()
    })
    .await;
    for per in PERIODS {
        for name in NAMES {
            let sum = count(a.ledger(), &a_s, per, name) + count(b.ledger(), &b_s, per, name);
            assert_eq!(count(&p, "61", per, name), sum, "{name} {per}");
            assert_eq!(count(&p, "6101", per, name), sum, "{name} {per}");
        }
    }
    for n in [a, b] {
        assert_eq!(
            n.ledger().all_cells().expect("cells"),
            n.ledger().recompute_cells().expect("recompute")
        );
        stop(n).await;
    }
    stop(city).await;
    stop(province).await;
    drop(proxy);
}

// ------------------------------------------------------------------------------------------
// Raw Link client
// ------------------------------------------------------------------------------------------

fn envelope(origin: Code, seq: u64, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: origin.to_string(),
        seq,
        payload: Some(payload),
        ..Default::default()
    }
}

/// One whole sweep of `l`'s change log from `floor`, as the uplink would batch it; only the
/// last batch carries the new floor.
fn sweep_batches(l: &Ledger, floor: u64, limit: usize) -> Vec<pb::Envelope> {
    let me = l.division();
    let (mut pos, mut out) = (floor, vec![]);
    loop {
        let s = l.sweep(floor, pos, limit).expect("sweep");
        if s.pos == pos && !s.complete {
            panic!("a sweep step made no progress at {pos}");
        }
        let batch = pb::CellBatch {
            cells: s
                .cells
                .iter()
                .map(|(k, v)| bottomline::rpc::cell_to_pb(k, v))
                .collect(),
            floor: if s.complete { s.pos } else { floor },
            ..Default::default()
        };
        out.push(envelope(me, s.pos, Payload::Cells(batch)));
        pos = s.pos;
        if s.complete {
            return out;
        }
    }
}

/// A raw link to a parent, speaking as child `me`.
struct RawLink {
    tx: mpsc::Sender<pb::Envelope>,
    inbound: tonic::Streaming<pb::Envelope>,
    welcome: pb::Welcome,
    sent: usize,
}

impl RawLink {
    async fn open(addr: &str, me: Code, head: u64) -> RawLink {
        let mut client = Client::connect(addr.to_string()).await.expect("connect");
        let (tx, rx) = mpsc::channel(256);
        let hello = pb::Hello {
            division: me.to_string(),
            head,
            software: "sync_faults raw client".into(),
            ..Default::default()
        };
        tx.send(envelope(me, 0, Payload::Hello(hello)))
            .await
            .expect("send Hello");
        let mut inbound = client
            .link(ReceiverStream::new(rx))
            .await
            .expect("Link")
            .into_inner();
        let welcome = match tokio::time::timeout(DEADLINE, inbound.message()).await {
            Ok(Ok(Some(pb::Envelope {
                payload: Some(Payload::Welcome(w)),
                ..
            }))) => w,
            other => panic!("expected Welcome, got {other:?}"),
        };
        RawLink {
            tx,
            inbound,
            welcome,
            sent: 0,
        }
    }

    async fn send(&mut self, env: &pb::Envelope) {
        self.tx.send(env.clone()).await.expect("send");
        self.sent += 1;
    }

    /// Wait for one ack per envelope sent (the parent acks after its flush); returns the
    /// acked sequences in order.
    async fn acks(&mut self) -> Vec<u64> {
        let mut seqs = vec![];
        while seqs.len() < self.sent {
            match tokio::time::timeout(DEADLINE, self.inbound.message()).await {
                Ok(Ok(Some(pb::Envelope {
                    payload: Some(Payload::Ack(a)),
                    ..
                }))) => seqs.push(a.seq),
                Ok(Ok(Some(_))) => {}
                other => panic!("expected an Ack, got {other:?}"),
            }
        }
        self.sent = 0;
        seqs
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_replayed_batches_never_double_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (files, counties) = generate(tmp.path(), 13, 1, 800);
    let child_s = counties[0].clone();
    let child = code(&child_s);
    let parent_code = child.parent().expect("a county has a city");
    assert_eq!(parent_code, code("6101"));
    let parent = start(
        &tmp.path().join("nodes"),
        &parent_code.to_string(),
        None,
        true,
    )
    .await;
    let addr = parent.addr.clone().expect("parent listens");
    let p = parent.handle.ledger.clone();
    // The child is a plain ledger in this process; the test is its uplink.
    let l = truth_ledger(&tmp.path().join("child"), &files, &child_s, TODAY);
    let head = l.durable_seq();
    assert!(head > 0);
    let exact = |l: &Ledger| {
        let cells = l.upward_cells().expect("cells");
        let pc = p.all_cells().expect("cells");
        subtree_cells(&p, child) == cells
            && own(&pc, parent_code) == rolled_up(&cells, &[child], parent_code)
    };

    // Session 1: every batch twice, neighbours swapped, then the oldest replayed at the end.
    let batches = sweep_batches(&l, 0, 25);
    assert!(
        batches.len() >= 6,
        "{} batches: use more data",
        batches.len()
    );
    let mut link = RawLink::open(&addr, child, head).await;
    assert_eq!(link.welcome.acked, 0, "a new child starts from 0");
    assert_eq!(link.welcome.division, parent_code.to_string());
    let mut order: Vec<usize> = (0..batches.len()).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for &i in &order {
        link.send(&batches[i]).await;
        link.send(&batches[i]).await;
    }
    link.send(&batches[0]).await;
    link.send(&batches[1]).await;
    let acks = link.acks().await;
    assert_eq!(acks.len(), 2 * batches.len() + 2);
    assert!(
        exact(&l),
        "replica and aggregate equal the child after session 1"
    );
    let cells_after_1 = p.all_cells().expect("cells");
    assert_eq!(p.child_acked(child).expect("acked"), head);

    // Session 2: reconnect; the parent resumes us from the head; replay everything from 0
    // anyway, last batch first.
    drop(link);
    let mut link = RawLink::open(&addr, child, head).await;
    assert_eq!(link.welcome.acked, head, "the floor was made durable");
    let replay = sweep_batches(&l, 0, 40);
    for b in replay.iter().rev() {
        link.send(b).await;
    }
    link.acks().await;
    assert!(exact(&l));
    assert!(
        p.all_cells().expect("cells") == cells_after_1,
        "a full replay changes nothing"
    );
    // An old batch (floor 0) does not move the durable floor back.
    assert_eq!(p.child_acked(child).expect("acked"), head);

    // A cell goes to zero at the child: delete a measure that is alone in its county and week
    // (the county's own cells are what travels up; a village's stay at the county).
    let mut by_cell: BTreeMap<Period, Vec<String>> = BTreeMap::new();
    for r in l.records(RecordKind::Measure) {
        if let Record::Measure(m) = r.expect("record") {
            let week = Period::containing(Kind::Week, m.date);
            by_cell.entry(week).or_default().push(m.id);
        }
    }
    let lonely = by_cell
        .values()
        .find(|ids| ids.len() == 1)
        .map(|ids| ids[0].clone())
        .expect("a measure alone in its county and week");
    let before = l.all_cells().expect("cells");
    l.apply(&[Change::Delete(RecordKind::Measure, lonely)], TODAY)
        .expect("delete");
    let after = l.all_cells().expect("cells");
    let zeroed: Vec<CellKey> = before
        .keys()
        .filter(|k| !after.contains_key(k) && bottomline::cells::travels_up(k.division))
        .copied()
        .collect();
    assert!(!zeroed.is_empty(), "some cell went to zero at the child");
    let head2 = l.durable_seq();
    assert!(head2 > head);

    // Session 3: the new changes (tombstones included) twice, then all of session 1 replayed
    // after them: the zero must stand.
    drop(link);
    let mut link = RawLink::open(&addr, child, head2).await;
    assert_eq!(link.welcome.acked, head);
    let fresh = sweep_batches(&l, head, 25);
    let tombstones = fresh
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::Cells(b)) => Some(b.cells.iter().filter(|c| c.value == 0).count()),
            _ => None,
        })
        .sum::<usize>();
    assert!(tombstones >= zeroed.len(), "zeros travel");
    for b in fresh.iter().chain(&fresh) {
        link.send(b).await;
    }
    for b in &batches {
        link.send(b).await;
    }
    link.acks().await;
    assert!(
        exact(&l),
        "replica and aggregate equal the child after the deletion"
    );
    let pc = p.all_cells().expect("cells");
    for k in &zeroed {
        assert!(!pc.contains_key(k), "{k:?} reached zero at the parent");
        if k.division == child {
            let agg = CellKey {
                division: parent_code,
                ..*k
            };
            assert!(
                !pc.contains_key(&agg),
                "{agg:?} reached zero in the aggregate"
            );
        }
    }
    assert_eq!(p.child_acked(child).expect("acked"), head2);

    // A batch with a cell outside the child's subtree is refused and changes nothing.
    let mut bad = bottomline::rpc::cell_to_pb(
        zeroed.first().expect("a key"),
        &bottomline::ledger::CellValue {
            value: 999,
            seq: u64::MAX / 2,
            version: u64::MAX / 2,
        },
    );
    bad.division = "610199".into();
    link.send(&envelope(
        child,
        head2 + 1,
        Payload::Cells(pb::CellBatch {
            cells: vec![bad],
            floor: head2 + 1,
            ..Default::default()
        }),
    ))
    .await;
    match tokio::time::timeout(DEADLINE, link.inbound.message()).await {
        Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}"),
        other => panic!("expected the link to be refused, got {other:?}"),
    }
    assert!(p.all_cells().expect("cells") == pc, "nothing applied");
    assert_eq!(p.child_acked(child).expect("acked"), head2);
    drop(link);
    stop(parent).await;
}
