//! Personal data never leaves a county (invariant 9; issue #15 point 6).
//!
//! A generated county (3 000 households, every one with a head name and an ID number) is
//! imported into a running county node linked to its city through a recording TCP proxy; the
//! tree syncs the county's whole change log up, and tickets (one naming a household) travel
//! down and are accepted and rectified back up. Every byte the county sent, and every byte it
//! received, is searched for each generated head name and ID number: none is there, while the
//! county's own store holds them all.
//!
//! The nodes run with `insecure = true` (plaintext gRPC), which is what makes the captured
//! bytes readable: with mTLS the capture would be ciphertext. The check is on what the protocol
//! carries, whatever protects it on the wire.

mod common;
use common::{eventually, stop};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bottomline::division::Code;
use bottomline::domain::{Record, RecordKind};
use bottomline::ledger::Act;
use bottomline::period::today_in_china;
use bottomline::tickets::{Severity, State, Ticket, TicketSource};
use jiff::civil::date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SYNC: &str = "batch_blocks = 50\nreconnect_secs = 0.05\nheartbeat_secs = 0.5\n";
const COUNTY: &str = "610102";
const HOUSEHOLDS: u32 = 3000;

type Capture = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy recording every byte client→upstream in `up` and upstream→client in `down`.
struct RecordingProxy {
    addr: SocketAddr,
    up: Capture,
    down: Capture,
    accept: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    async fn start(upstream: SocketAddr) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (up, down): (Capture, Capture) = Default::default();
        let (u, d) = (up.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, u.clone()));
                tokio::spawn(pump(sr, cw, d.clone()));
            }
        });
        RecordingProxy {
            addr,
            up,
            down,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copy `from` to `to`, appending every byte to `log`, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Capture,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn len(c: &Capture) -> usize {
    c.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// The first needle found in `hay`, with its offset (needles of any length, one pass per
/// length, each window looked up in the set).
fn first_needle<'a>(hay: &[u8], needles: &'a HashSet<String>) -> Option<(usize, &'a str)> {
    let lens: std::collections::BTreeSet<usize> = needles.iter().map(String::len).collect();
    let by_bytes: HashSet<&[u8]> = needles.iter().map(|s| s.as_bytes()).collect();
    lens.into_iter()
        .filter_map(|n| {
            hay.windows(n)
                .position(|w| by_bytes.contains(w))
                .map(|at| (at, std::str::from_utf8(&hay[at..at + n]).expect("a needle")))
        })
        .min_by_key(|&(at, _)| at)
        .map(|(at, s)| (at, needles.get(s).expect("needle").as_str()))
}

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_county_traffic_holds_no_names_or_id_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    common::generate_county(&files, COUNTY, 15, HOUSEHOLDS);

    // The needles: every head name and ID number of the generated households.
    let mut heads: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut rd = csv::Reader::from_path(files.join(COUNTY).join("households.csv")).expect("csv");
    let hdr = rd.headers().expect("header").clone();
    let col = |name: &str| hdr.iter().position(|h| h == name).expect(name);
    let (hc, nc, ic) = (col("household_code"), col("head_name"), col("id_number"));
    for r in rd.records() {
        let r = r.expect("row");
        heads.insert(r[hc].to_string(), (r[nc].to_string(), r[ic].to_string()));
    }
    let names: HashSet<String> = heads.values().map(|(n, _)| n.clone()).collect();
    let ids: HashSet<String> = heads.values().map(|(_, i)| i.clone()).collect();
    assert_eq!(heads.len(), HOUSEHOLDS as usize);
    assert!(names.len() >= 500, "{} distinct names", names.len());
    assert_eq!(ids.len(), heads.len(), "one ID number per head");
    for n in &names {
        let chars = n.chars().count();
        assert!((2..=4).contains(&chars) && n.len() >= 6, "name {n:?}");
        assert!(n.chars().all(|ch| ch as u32 >= 0x4e00), "name {n:?}");
    }
    assert!(ids.iter().all(|i| i.len() == 18), "ID numbers are 18 chars");
    let all: HashSet<String> = names.union(&ids).cloned().collect();

    // Province ← city ← proxy ← county, all in plaintext.
    let nodes = tmp.path().join("nodes");
    let province = common::start(&nodes, "61", None, true, SYNC).await;
    let city = common::start(&nodes, "6101", province.addr.as_deref(), true, SYNC).await;
    let city_addr: SocketAddr = city.addr.as_deref().expect("city listens")["http://".len()..]
        .parse()
        .expect("city addr");
    let proxy = RecordingProxy::start(city_addr).await;
    let county = common::start(&nodes, COUNTY, Some(&proxy.url()), false, SYNC).await;
    eventually("the county linked through the proxy", || {
        len(&proxy.up) > 0 && len(&proxy.down) > 0
    })
    .await;

    // Import while linked: the change log flows up as it is flushed.
    let ledger = county.handle.ledger.clone();
    let gen_files = files.clone();
    tokio::task::spawn_blocking(move || {
        common::import_generated(&ledger, &gen_files, COUNTY, date(2026, 11, 24))
    })
    .await
    .expect("join");
    let head = county.ledger().durable_seq();
    assert!(head > 0, "the import was logged");
    eventually("the city made the county's whole log durable", || {
        city.ledger().child_acked(c(COUNTY)).expect("child acked") >= head
    })
    .await;

    // Tickets down from the province (one about a household), worked at the county.
    let household = heads.keys().next().expect("a household").clone();
    let ticket = |id: &str, household_code: Option<String>| Ticket {
        issuer: c("61"),
        id: id.into(),
        target: c(COUNTY),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: today_in_china()
            .checked_add(jiff::Span::new().days(10))
            .expect("date"),
        description: "roof of a monitored household leaks".into(),
        household_code,
        parent: None,
        inventory: Some("2026-inspection".into()),
        spot_check: None,
    };
    let keys = province
        .ledger()
        .issue_tickets(
            c("61"),
            vec![ticket("P1", Some(household.clone())), ticket("P2", None)],
        )
        .expect("issue");
    let state = |l: &bottomline::ledger::Ledger, i: usize| {
        l.ticket(&keys[i]).expect("ticket").map(|s| s.state)
    };
    eventually("both tickets delivered, seen at the province", || {
        (0..2).all(|i| state(province.ledger(), i) == Some(State::Delivered))
    })
    .await;
    for act in [
        Act::Accept,
        Act::Start,
        Act::Rectify {
            note: "roof repaired, photos attached".into(),
        },
    ] {
        county
            .ledger()
            .act_on_tickets(c(COUNTY), &keys[..1], &act)
            .expect("act");
    }
    eventually("rectified at the province", || {
        state(province.ledger(), 0) == Some(State::Rectified)
    })
    .await;

    // The county's own store holds every name and ID number: the needles are real.
    let mut read_back = 0;
    for r in county.ledger().records(RecordKind::Household) {
        let Record::Household(h) = r.expect("record") else {
            panic!("not a household");
        };
        let (name, id) = &heads[&h.household_code];
        assert_eq!(h.head_name.as_ref(), Some(name), "{}", h.household_code);
        assert_eq!(h.id_number.as_ref(), Some(id), "{}", h.household_code);
        read_back += 1;
    }
    assert_eq!(read_back, heads.len());

    stop(county).await;
    stop(city).await;
    stop(province).await;

    let up = proxy.up.lock().expect("capture").clone();
    let down = proxy.down.lock().expect("capture").clone();
    eprintln!(
        "captured {} bytes county→city, {} bytes city→county; {} names, {} ID numbers",
        up.len(),
        down.len(),
        names.len(),
        ids.len()
    );
    assert!(
        up.len() > 64 * 1024,
        "sync went through the proxy: {}",
        up.len()
    );
    // The capture is the protocol in clear: the ticket traffic is in it.
    let has = |hay: &[u8], s: &str| hay.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        has(&up, "roof repaired") && has(&down, &household),
        "plaintext capture"
    );
    // The search finds a planted needle, name or ID number, where it was planted.
    for planted in [heads[&household].0.as_str(), heads[&household].1.as_str()] {
        let mut hay = up[..4096].to_vec();
        hay.extend_from_slice(planted.as_bytes());
        assert_eq!(first_needle(&hay, &all), Some((4096, planted)));
    }
    if let Some((at, needle)) = first_needle(&up, &all) {
        panic!("county→city traffic carries personal data {needle:?} at byte {at}");
    }
    if let Some((at, needle)) = first_needle(&down, &all) {
        panic!("city→county traffic carries personal data {needle:?} at byte {at}");
    }
}
