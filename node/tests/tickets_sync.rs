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
    }
}

fn state(l: &Ledger, key: &TicketKey) -> Option<State> {
    l.ticket(key).expect("ticket").map(|s| s.state)
}

/// The states (histories included) of the tickets a node holds, for comparison across levels.
fn states(l: &Ledger) -> BTreeMap<TicketKey, TicketState> {
    l.tickets().expect("tickets")
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
        .act_on_tickets(c("610102"), &[t0.clone()], &Act::Accept)
        .expect("accept");
    county
        .act_on_tickets(c("610102"), &[t0.clone()], &Act::Start)
        .expect("start");
    t.cities[0]
        .ledger()
        .act_on_tickets(c("6101"), &[t0.clone()], &Act::Supervise { on: true })
        .expect("supervise");
    county
        .act_on_tickets(
            c("610102"),
            &[t0.clone()],
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
        .act_on_tickets(c("610102"), &[t0.clone()], &Act::Verify)
        .expect_err("a target cannot verify");
    assert!(err.to_string().contains("61/T0"), "{err}");
    // The province returns it once, then verifies the rework.
    prov.act_on_tickets(
        c("61"),
        &[t0.clone()],
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
            &[t0.clone()],
            &Act::Rectify {
                note: "photos attached".into(),
            },
        )
        .expect("rectify again");
    eventually("rectified again at the province", || {
        state(prov, t0) == Some(State::Rectified)
    })
    .await;
    prov.act_on_tickets(c("61"), &[t0.clone()], &Act::Verify)
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
    city.act_on_tickets(c("6101"), &[k.clone()], &Act::Accept)
        .expect("accept");
    // Splitting before accepting is refused with the state named; after, it works.
    let subs = city
        .act_on_tickets(
            c("6101"),
            &[k.clone()],
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
            l.act_on_tickets(d, &[sk.clone()], &act).expect("act");
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
