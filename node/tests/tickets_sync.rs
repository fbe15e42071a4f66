//! Tickets through a real 3-level tree (province ← 2 cities ← 3 counties) over gRPC on
//! 127.0.0.1:0: every ticket reaches exactly its target, once, hop by hop; actions at any level
//! travel to every level on the path; all levels end with identical states and histories; a
//! county offline while tickets are issued to it receives them when it comes back; split
//! tickets close when their sub-tickets close; ticket figures reach the statistics.

mod common;
use common::{eventually, stop, Running};

use std::collections::BTreeMap;
use std::path::Path;

use bottomline::division::Code;
use bottomline::ledger::{Act, Ledger};
use bottomline::period::{today_in_china, Period};
use bottomline::tickets::{
    EventKind, Severity, State, Ticket, TicketKey, TicketSource, TicketState,
};

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.5\n";

async fn start(dir: &Path, division: &str, parent: Option<&str>) -> Running {
    common::start(dir, division, parent, true, SYNC).await
}

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn ticket(issuer: &str, id: &str, target: &str, deadline_days: i64) -> Ticket {
    Ticket {
        issuer: c(issuer),
        id: id.into(),
        target: c(target),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: today_in_china()
            .checked_add(jiff::Span::new().days(deadline_days))
            .expect("date"),
        description: "roof of a monitored household leaks".into(),
        household_code: None,
        parent: None,
        inventory: Some("2026-inspection".into()),
        spot_check: None,
    }
}

fn state(l: &Ledger, key: &TicketKey) -> Option<State> {
    l.ticket(key).expect("ticket").map(|s| s.state)
}

/// The states (histories included) of the tickets a node holds, for comparison across levels.
fn states(l: &Ledger) -> BTreeMap<TicketKey, TicketState> {
    let all = l.tickets().expect("tickets");
    // The ticket index (what List and Progress read) follows the folded states exactly.
    let folded: Vec<TicketState> = all.values().cloned().map(TicketState::summary).collect();
    assert_eq!(l.ticket_summaries(None, None).expect("index"), folded);
    all
}

/// The tree of this file: province 61, cities 6101 and 6102, counties 610102 and 610103
/// (in 6101) and 610202 (in 6102).
struct Tree {
    province: Running,
    cities: Vec<Running>,
    counties: Vec<Running>,
}

async fn tree(dir: &Path) -> Tree {
    let province = start(dir, "61", None).await;
    let p = province.addr.clone().expect("addr");
    let c1 = start(dir, "6101", Some(&p)).await;
    let c2 = start(dir, "6102", Some(&p)).await;
    let (a1, a2) = (
        c1.addr.clone().expect("addr"),
        c2.addr.clone().expect("addr"),
    );
    let counties = vec![
        start(dir, "610102", Some(&a1)).await,
        start(dir, "610103", Some(&a1)).await,
        start(dir, "610202", Some(&a2)).await,
    ];
    Tree {
        province,
        cities: vec![c1, c2],
        counties,
    }
}

impl Tree {
    async fn stop(self) {
        for n in self.counties {
            stop(n).await;
        }
        for n in self.cities {
            stop(n).await;
        }
        stop(self.province).await;
    }
}

/// The node a division's tickets live at, in this tree.
fn node_of<'a>(t: &'a Tree, target: &str) -> &'a Running {
    t.counties
        .iter()
        .chain(&t.cities)
        .find(|n| n.ledger().division() == c(target))
        .unwrap_or(&t.province)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_travel_down_and_every_state_change_back_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path()).await;
    let prov = t.province.ledger();
    let targets = ["610102", "610103", "610202", "6102"];
    let tickets: Vec<Ticket> = targets
        .iter()
        .enumerate()
        .map(|(i, tg)| ticket("61", &format!("T{i}"), tg, 10))
        .collect();
    let keys = prov.issue_tickets(c("61"), tickets).expect("issue");
    assert_eq!(keys.len(), 4);
    // Delivered exactly at the target's node, by that node, once.
    for (k, tg) in keys.iter().zip(targets) {
        let n = node_of(&t, tg);
        eventually(&format!("{k} delivered at {tg}"), || {
            state(n.ledger(), k) == Some(State::Delivered)
        })
        .await;
        let delivered: Vec<_> = n
            .ledger()
            .ticket_events(k)
            .expect("events")
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Delivered { .. }))
            .collect();
        assert_eq!(delivered.len(), 1, "{k}: one delivery");
        assert_eq!(delivered[0].id.origin, c(tg));
        // The delivery travels back up to the issuer.
        eventually(&format!("{k} delivered, seen at the province"), || {
            state(prov, k) == Some(State::Delivered)
        })
        .await;
    }
    // Tickets reach only the nodes on their path.
    let t0 = &keys[0];
    assert!(t.counties[1].ledger().ticket(t0).expect("read").is_none());
    assert!(t.counties[2].ledger().ticket(t0).expect("read").is_none());
    assert!(t.cities[1].ledger().ticket(t0).expect("read").is_none());

    // The county works the ticket; the city flags supervision meanwhile.
    let county = t.counties[0].ledger();
    county
        .act_on_tickets(c("610102"), std::slice::from_ref(t0), &Act::Accept)
        .expect("accept");
    county
        .act_on_tickets(c("610102"), std::slice::from_ref(t0), &Act::Start)
        .expect("start");
    t.cities[0]
        .ledger()
        .act_on_tickets(
            c("6101"),
            std::slice::from_ref(t0),
            &Act::Supervise { on: true },
        )
        .expect("supervise");
    county
        .act_on_tickets(
            c("610102"),
            std::slice::from_ref(t0),
            &Act::Rectify {
                note: "roof repaired, photos attached".into(),
            },
        )
        .expect("rectify");
    eventually("rectified at the province", || {
        state(prov, t0) == Some(State::Rectified)
    })
    .await;
    // Only the issuer verifies; the county cannot.
    let err = county
        .act_on_tickets(c("610102"), std::slice::from_ref(t0), &Act::Verify)
        .expect_err("a target cannot verify");
    assert!(err.to_string().contains("61/T0"), "{err}");
    // The province returns it once, then verifies the rework.
    prov.act_on_tickets(
        c("61"),
        std::slice::from_ref(t0),
        &Act::Return {
            reason: "photos missing".into(),
        },
    )
    .expect("return");
    eventually("returned at the county", || {
        state(county, t0) == Some(State::Rectifying)
    })
    .await;
    county
        .act_on_tickets(
            c("610102"),
            std::slice::from_ref(t0),
            &Act::Rectify {
                note: "photos attached".into(),
            },
        )
        .expect("rectify again");
    eventually("rectified again at the province", || {
        state(prov, t0) == Some(State::Rectified)
    })
    .await;
    prov.act_on_tickets(c("61"), std::slice::from_ref(t0), &Act::Verify)
        .expect("verify");
    eventually("closed at the county", || {
        state(county, t0) == Some(State::Closed)
    })
    .await;
    eventually("closed at the city", || {
        state(t.cities[0].ledger(), t0) == Some(State::Closed)
    })
    .await;
    // Every level on the path shows the same state and the same history.
    let (sp, sc, sk) = (
        prov.ticket(t0).expect("p").expect("held"),
        t.cities[0].ledger().ticket(t0).expect("c").expect("held"),
        county.ticket(t0).expect("k").expect("held"),
    );
    assert_eq!(sp, sc);
    assert_eq!(sp, sk);
    assert_eq!(sp.returns, 1);
    assert!(sp
        .history
        .iter()
        .all(|h| matches!(h.outcome, bottomline::tickets::EntryOutcome::Applied)));

    // Ticket figures reach the statistics at every level, counted once at the target.
    let today = today_in_china();
    let week = Period::containing(bottomline::period::Kind::Week, today);
    for (l, div, issued, closed) in [
        (county, "610102", 1, 1),
        (t.cities[0].ledger(), "6101", 2, 1),
        (t.cities[0].ledger(), "610102", 1, 1),
        (prov, "61", 4, 1),
        (prov, "6102", 2, 0),
    ] {
        let want = |i: &bottomline::stats::Indicators| {
            i.count("tickets_issued", "total") == issued
                && i.count("tickets_closed", "total") == closed
                && i.count("tickets_open", "total") == issued - closed
        };
        eventually(
            &format!("ticket figures of {div} at {}", l.division()),
            || want(&l.indicators(c(div), week).expect("indicators")),
        )
        .await;
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_county_receives_its_tickets_when_it_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path()).await;
    let Tree {
        province,
        cities,
        mut counties,
    } = t;
    // County 610103 goes offline; the province issues it 20 tickets meanwhile.
    let offline = counties.remove(1);
    stop(offline).await;
    let prov = province.ledger();
    let tickets: Vec<Ticket> = (0..20)
        .map(|i| ticket("61", &format!("OFF{i}"), "610103", 5))
        .collect();
    let keys = prov.issue_tickets(c("61"), tickets).expect("issue");
    // They wait at the city, which holds them durably.
    eventually("the city holds the tickets", || {
        keys.iter()
            .all(|k| state(cities[0].ledger(), k) == Some(State::Issued))
    })
    .await;
    let back = start(dir.path(), "610103", cities[0].addr.as_deref()).await;
    for k in &keys {
        eventually(&format!("{k} delivered after the county is back"), || {
            state(back.ledger(), k) == Some(State::Delivered)
        })
        .await;
    }
    back.ledger()
        .act_on_tickets(c("610103"), &keys, &Act::Accept)
        .expect("accept all");
    eventually("all accepted, seen at the province", || {
        keys.iter().all(|k| state(prov, k) == Some(State::Accepted))
    })
    .await;
    // Exactly one delivery each, at every level.
    for l in [prov, cities[0].ledger(), back.ledger()] {
        for k in &keys {
            let n = l
                .ticket_events(k)
                .expect("events")
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Delivered { .. }))
                .count();
            assert_eq!(n, 1, "{k} at {}", l.division());
        }
    }
    assert_eq!(states(prov), states(cities[0].ledger()));
    assert_eq!(states(back.ledger()), states(cities[0].ledger()));
    counties.insert(1, back);
    Tree {
        province,
        cities,
        counties,
    }
    .stop()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_city_splits_a_ticket_and_it_closes_when_all_sub_tickets_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path()).await;
    let prov = t.province.ledger();
    let city = t.cities[0].ledger();
    let keys = prov
        .issue_tickets(c("61"), vec![ticket("61", "S1", "6101", 20)])
        .expect("issue");
    let k = &keys[0];
    eventually("delivered at the city", || {
        state(city, k) == Some(State::Delivered)
    })
    .await;
    city.act_on_tickets(c("6101"), std::slice::from_ref(k), &Act::Accept)
        .expect("accept");
    // Splitting before accepting is refused with the state named; after, it works.
    let subs = city
        .act_on_tickets(
            c("6101"),
            std::slice::from_ref(k),
            &Act::Split {
                into: vec![c("610102"), c("610103")],
            },
        )
        .expect("split");
    assert_eq!(subs[0].split.len(), 2);
    let sub_keys = subs[0].split.clone();
    for (sk, county) in sub_keys.iter().zip(&t.counties[..2]) {
        eventually(&format!("{sk} delivered"), || {
            state(county.ledger(), sk) == Some(State::Delivered)
        })
        .await;
        let l = county.ledger();
        let d = l.division();
        for act in [
            Act::Accept,
            Act::Start,
            Act::Rectify {
                note: "done".into(),
            },
        ] {
            l.act_on_tickets(d, std::slice::from_ref(sk), &act)
                .expect("act");
        }
    }
    // The sub-tickets' issuer (the city) verifies them; the parent ticket closes by itself.
    for sk in &sub_keys {
        eventually(&format!("{sk} rectified at the city"), || {
            state(city, sk) == Some(State::Rectified)
        })
        .await;
    }
    city.act_on_tickets(c("6101"), &sub_keys[..1], &Act::Verify)
        .expect("verify one");
    assert_eq!(state(city, k), Some(State::Rectified));
    city.act_on_tickets(c("6101"), &sub_keys[1..], &Act::Verify)
        .expect("verify other");
    assert_eq!(state(city, k), Some(State::Closed));
    // The province, the split ticket's issuer, sees it closed too (sub-ticket events travel up).
    eventually("closed at the province", || {
        state(prov, k) == Some(State::Closed)
    })
    .await;
    assert_eq!(
        prov.ticket(k).expect("p").expect("held"),
        city.ticket(k).expect("c").expect("held")
    );
    // The split ticket counts once, at the city; its sub-tickets are not counted again.
    let week = Period::containing(bottomline::period::Kind::Week, today_in_china());
    eventually("the province counts the split ticket once", || {
        let i = prov.indicators(c("61"), week).expect("indicators");
        i.count("tickets_issued", "total") == 1 && i.count("tickets_closed", "total") == 1
    })
    .await;
    t.stop().await;
}

// ------------------------------------------------------------------------------------------
// Duplicated deliveries over a raw Link client
// ------------------------------------------------------------------------------------------

use bottomline::tickets::{Event, EventId};
use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn envelope(origin: Code, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: origin.to_string(),
        seq: 0,
        payload: Some(payload),
        ..Default::default()
    }
}

fn event_pb(e: &Event) -> pb::TicketEvent {
    bottomline::tickets::codec::to_pb(&bottomline::tickets::codec::encode_body(e), None)
}

/// A raw link to a parent, speaking as child `me`.
struct RawLink {
    tx: mpsc::Sender<pb::Envelope>,
    inbound: tonic::Streaming<pb::Envelope>,
    welcome: pb::Welcome,
}

impl RawLink {
    async fn open(addr: &str, me: Code) -> RawLink {
        let mut client = pb::sync_client::SyncClient::connect(addr.to_string())
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(64);
        let hello = pb::Hello {
            division: me.to_string(),
            software: "tickets_sync raw client".into(),
            ..Default::default()
        };
        tx.send(envelope(me, Payload::Hello(hello)))
            .await
            .expect("Hello");
        let mut inbound = client
            .link(ReceiverStream::new(rx))
            .await
            .expect("Link")
            .into_inner();
        let welcome = match tokio::time::timeout(common::DEADLINE, inbound.message()).await {
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
        }
    }

    /// The next message that is not a cells ack.
    async fn next(&mut self) -> Option<Payload> {
        loop {
            match tokio::time::timeout(common::DEADLINE, self.inbound.message()).await {
                Ok(Ok(Some(pb::Envelope {
                    payload: Some(Payload::Ack(_)),
                    ..
                }))) => continue,
                Ok(Ok(Some(e))) => return e.payload,
                Ok(Ok(None)) => return None,
                Ok(Err(status)) => panic!("link error: {status}"),
                Err(_) => panic!("nothing from the parent within the deadline"),
            }
        }
    }

    /// Down batches until one reaching `upto`; returns their events.
    async fn tickets_down(&mut self, upto: u64) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            match self.next().await {
                Some(Payload::Tickets(b)) => {
                    for t in &b.events {
                        out.push(
                            bottomline::tickets::codec::decode_body(&t.body).expect("event body"),
                        );
                    }
                    if b.upto >= upto {
                        return out;
                    }
                }
                other => panic!("expected ticket events, got {other:?}"),
            }
        }
    }

    /// The error that ends the link (after whatever was still on its way).
    async fn refused(&mut self) -> tonic::Status {
        loop {
            match tokio::time::timeout(common::DEADLINE, self.inbound.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Err(status)) => return status,
                other => panic!("expected the link to be refused, got {other:?}"),
            }
        }
    }

    async fn send_up(&mut self, me: Code, events: &[Event], upto: u64) -> u64 {
        let batch = pb::TicketBatch {
            events: events.iter().map(event_pb).collect(),
            upto,
            certificates: vec![],
            ..Default::default()
        };
        self.tx
            .send(envelope(me, Payload::Tickets(batch)))
            .await
            .expect("send");
        loop {
            match self.next().await {
                Some(Payload::TicketAck(a)) => return a.upto,
                // The parent moves its cursor past the county's own events (not sent back)
                // with an empty batch; nothing for the county.
                Some(Payload::Tickets(b)) if b.events.is_empty() => continue,
                other => panic!("expected a TicketAck, got {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_and_replayed_ticket_deliveries_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let province = start(dir.path(), "61", None).await;
    let city = start(dir.path(), "6101", province.addr.as_deref()).await;
    let (prov, cl) = (province.ledger(), city.ledger());
    let me = c("610102");
    let keys = prov
        .issue_tickets(
            c("61"),
            (0..5)
                .map(|i| ticket("61", &format!("D{i}"), "610102", 7))
                .collect(),
        )
        .expect("issue");
    eventually("the city holds the tickets", || {
        keys.iter().all(|k| state(cl, k) == Some(State::Issued))
    })
    .await;
    let city_addr = city.addr.clone().expect("addr");

    // First link: the 5 issues arrive; the county does not ack them and drops the link.
    let mut link = RawLink::open(&city_addr, me).await;
    assert_eq!(link.welcome.down_acked, 0);
    let head = cl.ticket_head();
    let first = link.tickets_down(head).await;
    assert_eq!(first.len(), 5);
    drop(link);
    // Second link: the same events again (nothing was acked), now acked.
    let mut link = RawLink::open(&city_addr, me).await;
    let again = link.tickets_down(head).await;
    assert_eq!(
        again, first,
        "unacked events are sent again, in the same order"
    );
    let ack = pb::TicketAck { upto: head };
    link.tx
        .send(envelope(me, Payload::TicketAck(ack)))
        .await
        .expect("ack");

    // The county stores, delivers and accepts (events as its node would create them).
    let mut up = Vec::new();
    let mut seq = 0;
    for (i, issued) in first.iter().enumerate() {
        for (step, kind) in [
            (1, EventKind::Delivered { at: me }),
            (2, EventKind::Accepted),
        ] {
            seq += 1;
            up.push(Event {
                id: EventId { origin: me, seq },
                ticket: issued.ticket.clone(),
                lamport: issued.lamport + step,
                at_unix_ms: bottomline::ledger::unix_ms_now() + i as i64,
                actor: me,
                kind,
            });
        }
    }
    // Sent whole, twice; then an old prefix replayed after the newer batch; then everything
    // again on a new link.
    assert_eq!(link.send_up(me, &up, 10).await, 10);
    assert_eq!(link.send_up(me, &up, 10).await, 10);
    assert_eq!(link.send_up(me, &up[..4], 4).await, 4);
    let mut rev = up.clone();
    rev.reverse();
    assert_eq!(link.send_up(me, &rev, 10).await, 10);
    drop(link);
    let mut link = RawLink::open(&city_addr, me).await;
    assert_eq!(
        link.welcome.ticket_acked, 10,
        "the city stored the county's position durably and does not go back"
    );
    assert_eq!(link.welcome.down_acked, head, "the county's ack was kept");
    assert_eq!(link.send_up(me, &up, 10).await, 10);

    // Each event held once at the city and the province; every ticket accepted at both.
    for l in [cl, prov] {
        eventually(&format!("accepted at {}", l.division()), || {
            keys.iter().all(|k| state(l, k) == Some(State::Accepted))
        })
        .await;
        for k in &keys {
            let evs = l.ticket_events(k).expect("events");
            let mut ids: Vec<_> = evs.iter().map(|e| e.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                evs.len(),
                "{k} at {}: no event twice",
                l.division()
            );
            assert_eq!(evs.len(), 3, "{k}: issue, delivery, acceptance");
        }
    }
    assert_eq!(states(cl), states(prov));

    // A county cannot deliver events created outside its subtree: the whole batch is refused.
    let forged = Event {
        id: EventId {
            origin: c("610103"),
            seq: 1,
        },
        ticket: keys[0].clone(),
        lamport: 100,
        at_unix_ms: bottomline::ledger::unix_ms_now(),
        actor: c("610103"),
        kind: EventKind::Started,
    };
    let batch = pb::TicketBatch {
        events: vec![event_pb(&forged)],
        upto: 11,
        certificates: vec![],
        ..Default::default()
    };
    link.tx
        .send(envelope(me, Payload::Tickets(batch)))
        .await
        .expect("send");
    let refused = link.refused().await;
    assert!(
        refused.message().contains("610103"),
        "the refusal names the foreign origin: {refused}"
    );
    assert_eq!(cl.ticket_events(&keys[0]).expect("events").len(), 3);

    // Nor issue a ticket to a division outside its own subtree (its sibling).
    let mut link = RawLink::open(&city_addr, me).await;
    let mut bad = ticket("610102", "SIDEWAYS", "610102", 5);
    bad.target = c("610103");
    let forged = Event {
        id: EventId {
            origin: me,
            seq: 50,
        },
        ticket: bad.key(),
        lamport: 200,
        at_unix_ms: bottomline::ledger::unix_ms_now(),
        actor: me,
        kind: EventKind::Issued(bad.clone()),
    };
    let batch = pb::TicketBatch {
        events: vec![event_pb(&forged)],
        upto: 12,
        certificates: vec![],
        ..Default::default()
    };
    link.tx
        .send(envelope(me, Payload::Tickets(batch)))
        .await
        .expect("send");
    let refused = link.refused().await;
    assert!(
        refused.message().contains("610103"),
        "the refusal names the target outside the subtree: {refused}"
    );
    assert!(cl.ticket(&bad.key()).expect("read").is_none());
    assert!(cl.ticket_events(&bad.key()).expect("events").is_empty());
    stop(city).await;
    stop(province).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overdue_ticket_counts_as_overdue_until_rectified_at_every_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path()).await;
    let prov = t.province.ledger();
    let county = t.counties[0].ledger();
    // A back-filled inventory: the deadline passed three days ago.
    let keys = prov
        .issue_tickets(c("61"), vec![ticket("61", "LATE", "610102", -3)])
        .expect("issue");
    let k = &keys[0];
    eventually("delivered", || state(county, k) == Some(State::Delivered)).await;
    let week = Period::containing(bottomline::period::Kind::Week, today_in_china());
    let overdue = |l: &Ledger, d: &str| {
        l.indicators(c(d), week)
            .expect("indicators")
            .count("tickets_overdue", "total")
    };
    assert_eq!(overdue(county, "610102"), 1);
    eventually("overdue at the province", || overdue(prov, "61") == 1).await;
    assert!(prov
        .ticket(k)
        .expect("read")
        .expect("held")
        .overdue(today_in_china()));
    for act in [
        Act::Accept,
        Act::Start,
        Act::Rectify {
            note: "done late".into(),
        },
    ] {
        county
            .act_on_tickets(c("610102"), std::slice::from_ref(k), &act)
            .expect("act");
    }
    assert_eq!(overdue(county, "610102"), 0);
    eventually("no longer overdue at the province", || {
        overdue(prov, "61") == 0
    })
    .await;
    t.stop().await;
}
