//! Issue #16 point 5, no silent stalls: a link that keeps sending heartbeats with a backlog
//! but delivers nothing is STALLED in `status` (and moving again once it delivers); ticket
//! batches stay below the message limit, so an inventory of 1 000 tickets with 4 000-character
//! descriptions reaches its county and its deliveries come back.

mod common;

use std::time::Duration;

use bottomline::division::Code;
use bottomline::period::{today_in_china, Period};
use bottomline::tickets::{Severity, State, Ticket, TicketSource};
use bottomline_proto::v1 as pb;
use common::{eventually, eventually_async};
use pb::envelope::Payload;
use pb::sync_client::SyncClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn hello(me: &str, backlog: u64) -> pb::Envelope {
    pb::Envelope {
        origin: me.into(),
        payload: Some(Payload::Hello(pb::Hello {
            division: me.into(),
            head: 10,
            backlog,
            software: "stalls test".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

async fn child_state(addr: &str, child: &str) -> Option<bottomline::rpc::ChildReport> {
    let st = bottomline::rpc::fetch_status(addr, None).await.ok()?;
    st.children.into_iter().find(|r| r.division == c(child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_without_progress_are_stalled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let city = common::start(
        tmp.path(),
        "6101",
        None,
        true,
        "stalled_child_secs = 0.3\nsilent_child_secs = 60\n",
    )
    .await;
    let addr = city.addr.clone().expect("addr");
    let mut client = SyncClient::connect(addr.clone()).await.expect("connect");
    let (tx, rx) = mpsc::channel(64);
    tx.send(hello("610102", 5)).await.expect("queue");
    let mut inbound = client
        .link(ReceiverStream::new(rx))
        .await
        .expect("link")
        .into_inner();
    assert!(matches!(
        inbound
            .message()
            .await
            .expect("welcome")
            .and_then(|e| e.payload),
        Some(Payload::Welcome(_))
    ));
    // A heartbeat every 50 ms (the simulated child's cadence), each saying 5 blocks wait;
    // nothing is delivered.
    let beat = tx.clone();
    let beating = tokio::spawn(async move {
        let mut cadence = tokio::time::interval(Duration::from_millis(50));
        loop {
            cadence.tick().await;
            if beat.send(hello("610102", 5)).await.is_err() {
                return;
            }
        }
    });
    eventually_async("the link shows STALLED", || async {
        child_state(&addr, "610102")
            .await
            .is_some_and(|r| r.stalled && r.connected && !r.silent)
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["status", "--addr", &addr])
        .env_remove("RUST_LOG")
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "status exits non-zero on a stall");
    assert!(text.contains("STALLED"), "{text}");

    // It delivers: moving again.
    beating.abort();
    let key = bottomline::stats::CellKey {
        division: c("610102"),
        period: Period::parse("2026").expect("period"),
        indicator: bottomline::stats::Stored::Measures,
        dim: 1,
    };
    let value = bottomline::ledger::CellValue {
        value: 3,
        seq: 10,
        version: 1,
    };
    tx.send(pb::Envelope {
        origin: "610102".into(),
        seq: 10,
        payload: Some(Payload::Cells(pb::CellBatch {
            cells: vec![bottomline::rpc::cell_to_pb(&key, &value)],
            floor: 10,
            ..Default::default()
        })),
        ..Default::default()
    })
    .await
    .expect("send");
    tx.send(hello("610102", 0)).await.expect("send");
    eventually_async("moving again", || async {
        child_state(&addr, "610102")
            .await
            .is_some_and(|r| !r.stalled && r.acked == 10)
    })
    .await;
    drop(tx);
    common::stop(city).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_of_long_descriptions_travels_in_bounded_batches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sync = "reconnect_secs = 0.05\n";
    let province = common::start_secure(dir, "61", None, true, sync).await;
    let city = common::start_secure(dir, "6101", province.addr.as_deref(), true, sync).await;
    let county = common::start_secure(dir, "610102", city.addr.as_deref(), false, sync).await;
    eventually("the county is linked", || {
        county.handle.uplink.lock().unwrap().connected
    })
    .await;
    // 1 000 tickets of 4 000 characters each (~12 MB of UTF-8): in one batch of up to 1 024
    // events they would pass any sane message limit.
    let text: String = "整改说明".chars().cycle().take(4000).collect();
    let tickets: Vec<Ticket> = (0..1000)
        .map(|i| Ticket {
            issuer: c("61"),
            id: format!("LONG-{i:04}"),
            target: c("610102"),
            category: "long descriptions".into(),
            source: TicketSource::Inspection,
            severity: Severity::Low,
            deadline: today_in_china()
                .checked_add(jiff::Span::new().days(30))
                .expect("date"),
            description: text.clone(),
            household_code: None,
            parent: None,
            inventory: Some("long".into()),
            spot_check: None,
        })
        .collect();
    let keys = province
        .ledger()
        .issue_tickets(c("61"), tickets)
        .expect("issue");
    assert_eq!(keys.len(), 1000);
    let delivered = |l: &bottomline::ledger::Ledger| {
        l.tickets()
            .expect("tickets")
            .values()
            .filter(|s| s.state == State::Delivered)
            .count()
    };
    eventually("all 1 000 delivered at the county", || {
        delivered(county.ledger()) == 1000
    })
    .await;
    eventually("and the deliveries seen at the province", || {
        delivered(province.ledger()) == 1000
    })
    .await;
    let held = county
        .ledger()
        .ticket(&keys[999])
        .expect("ticket")
        .expect("held");
    assert_eq!(held.ticket.description.chars().count(), 4000);
    common::stop(county).await;
    common::stop(city).await;
    common::stop(province).await;
}

/// A ticket sender that fails (here: an event of the county's log that no longer decodes)
/// does not fail unseen: the link ends with the cause, which the county's status shows, and
/// the link is dialled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ticket_sender_ends_its_link_with_the_cause_and_is_redialled() {
    use bottomline::store::{StoreOptions, TreeId, WriteSet};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sync = "reconnect_secs = 0.05\n";
    let city = common::start(dir, "6101", None, true, sync).await;
    let county = common::start(dir, "610102", city.addr.as_deref(), false, sync).await;
    let key = city
        .ledger()
        .issue_tickets(
            c("6101"),
            vec![Ticket {
                issuer: c("6101"),
                id: "T1".into(),
                target: c("610102"),
                category: "c".into(),
                source: TicketSource::Inspection,
                severity: Severity::Low,
                deadline: today_in_china(),
                description: "d".into(),
                household_code: None,
                parent: None,
                inventory: None,
                spot_check: None,
            }],
        )
        .expect("issue")
        .remove(0);
    eventually("the delivery reaches the city", || {
        city.ledger().ticket(&key).ok().flatten().map(|s| s.state) == Some(State::Delivered)
    })
    .await;
    let county_dir = county.ledger().store().path().to_owned();
    common::stop(county).await;
    // While the county is stopped: it accepts, and that event's stored bytes are damaged.
    {
        let l =
            bottomline::ledger::Ledger::open(&county_dir, &StoreOptions::default()).expect("open");
        l.act_on_tickets(
            c("610102"),
            std::slice::from_ref(&key),
            &bottomline::ledger::Act::Accept,
        )
        .expect("accept");
        let pos = l.ticket_head();
        let v = l
            .store()
            .get(TreeId::TicketLog, &pos.to_be_bytes())
            .expect("get")
            .expect("the acceptance");
        let mut ws = WriteSet::new();
        ws.put(
            TreeId::TicketLog,
            pos.to_be_bytes(),
            v[..v.len() - 3].to_vec(),
        );
        l.store().commit(ws).expect("commit");
        l.store().flush().expect("flush");
    }
    let county = common::start(dir, "610102", city.addr.as_deref(), false, sync).await;
    eventually(
        "the failure is reported with its cause, and the link dialled again",
        || {
            let up = county.handle.uplink.lock().unwrap();
            up.links >= 2
                && up.last_error.as_deref().is_some_and(|e| {
                    e.contains("sending ticket events to the parent failed")
                        && e.contains("corrupt")
                })
        },
    )
    .await;
    common::stop(county).await;
    common::stop(city).await;
}

/// A child's `status` shows its uplink backlog as it is when asked, not as of its last
/// heartbeat: with an hour between heartbeats, the blocks its first heartbeat counted are
/// shown delivered as soon as the parent acked them. (The soak's drain saw counties report
/// blocks still waiting that their parents already held.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_backlog_in_status_is_counted_when_asked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    common::generate_county(&files, "610102", 11, 300);
    let nodes = tmp.path().join("nodes");
    // The county's records first, with no parent: everything waits to go up.
    let alone = common::start(&nodes, "610102", None, true, "").await;
    common::import_generated(
        &alone.handle.ledger,
        &files,
        "610102",
        jiff::civil::date(2026, 11, 24),
    );
    let head = alone.handle.ledger.durable_seq();
    assert!(head > 0, "the import changed cells");
    common::stop(alone).await;

    let city = common::start(&nodes, "6101", None, true, "").await;
    let city_addr = city.addr.clone().expect("addr");
    let county = common::start(
        &nodes,
        "610102",
        Some(&city_addr),
        true,
        "heartbeat_secs = 3600\n",
    )
    .await;
    let county_addr = county.addr.clone().expect("addr");
    // Its one heartbeat, sent on linking before any block, counted them all.
    eventually_async(
        "the city heard the county's heartbeat with its backlog",
        || async {
            child_state(&city_addr, "610102")
                .await
                .is_some_and(|r| r.backlog > 0)
        },
    )
    .await;
    eventually_async(
        "the city holds the county's change log up to its head",
        || async {
            child_state(&city_addr, "610102")
                .await
                .is_some_and(|r| r.acked >= head)
        },
    )
    .await;
    // No heartbeat for an hour: the county's status must count what is left now.
    eventually_async("the county's status shows nothing waiting", || async {
        bottomline::rpc::fetch_status(&county_addr, None)
            .await
            .is_ok_and(|s| s.uplink.acked >= head && s.uplink.backlog == 0)
    })
    .await;
    common::stop(county).await;
    common::stop(city).await;
}
