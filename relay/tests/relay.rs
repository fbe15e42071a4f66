//! The relay in process, between raw county clients and a fake parent (both over mTLS with
//! certificates of a test CA): who may link, custody acked only once stored, envelopes
//! forwarded unchanged both ways, entries deleted only when the next hop acked them, custody
//! surviving a restart while the parent is away, a newer link replacing an older one, a
//! revoked county cut off.

mod common;

use bottomline_proto::v1 as pb;
use bottomline_relay::Relay;
use common::*;
use pb::envelope::Payload;
use tonic::Code as Grpc;

/// An address nothing listens on.
async fn dead_parent() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("https://{}", l.local_addr().unwrap())
}

fn ack_of(e: &pb::Envelope) -> Option<(&'static str, u64)> {
    match &e.payload {
        Some(Payload::Ack(a)) => Some(("ack", a.seq)),
        Some(Payload::TicketAck(a)) => Some(("ticket_ack", a.upto)),
        _ => None,
    }
}

fn ticket_ack(origin: &str, upto: u64) -> pb::Envelope {
    envelope(origin, 0, Payload::TicketAck(pb::TicketAck { upto }), b"")
}

async fn custody(url: &str, dir: &std::path::Path, child: &str) -> Option<(u64, u64)> {
    let s = status(url, &operator(dir)).await.ok()?;
    child_of(&s, child).map(|c| (c.custody_up, c.custody_down))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_is_not_a_direct_child_naming_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let relay = Relay::start(relay_config(d, &dead_parent().await))
        .await
        .unwrap();
    let url = relay.url();
    let cases = [
        (operator(d), hello(COUNTY, 1), "not a direct child of 6101"),
        (
            node(d, "610202"),
            hello("610202", 1),
            "not a direct child of 6101",
        ),
        (node(d, CITY), hello(CITY, 1), "not a direct child of 6101"),
        (
            relay_files(d),
            hello(COUNTY, 1),
            "not a direct child of 6101",
        ),
        (
            node(d, COUNTY),
            hello(COUNTY2, 1),
            "the Hello names \"610103\"",
        ),
        (node(d, COUNTY), cells(COUNTY, 1, 1), "must be Hello"),
    ];
    for (files, first, why) in cases {
        let ch = dial(&url, &files).await.unwrap();
        let s = Child::link(ch, first).await.err().expect("refused");
        assert_eq!(s.code(), Grpc::PermissionDenied, "{s:?}");
        assert!(s.message().contains(why), "{why}: {s:?}");
    }
    // A county of the parent, while the parent was never reached: come back later.
    let ch = dial(&url, &node(d, COUNTY)).await.unwrap();
    let s = Child::link(ch, hello(COUNTY, 1))
        .await
        .err()
        .expect("unavailable");
    assert_eq!(s.code(), Grpc::Unavailable, "{s:?}");
    assert!(
        s.message().contains("has not reached the parent yet"),
        "{s:?}"
    );
    // A relay holds no statistics.
    let ch = dial(&url, &operator(d)).await.unwrap();
    let s = pb::sync_client::SyncClient::new(ch)
        .stats(pb::StatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Grpc::Unimplemented);
    // Status: only the county that named itself has a lane, not linked upstream.
    let st = status(&url, &operator(d)).await.unwrap();
    assert_eq!(st.division, CITY);
    assert_eq!(st.relay, "r1");
    assert!(
        st.software.starts_with("bottomline-relay "),
        "{}",
        st.software
    );
    assert_eq!(st.children.len(), 1, "{st:?}");
    let c = &st.children[0];
    assert_eq!((c.division.as_str(), c.head), (COUNTY, 1));
    assert!(!c.parent_connected && !c.connected);
    let up = st.uplink.unwrap();
    assert!(!up.connected && !up.last_error.is_empty(), "{up:?}");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_unchanged_both_ways_and_deletes_only_what_was_acked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parent = FakeParent::start(d).await;
    let theirs = pb::Welcome {
        division: CITY.into(),
        acked: 5,
        down_acked: 4,
        resume_pos: 7,
        ticket_acked: 3,
        ..Default::default()
    };
    parent.log().welcome.insert(COUNTY.into(), theirs.clone());
    let relay = Relay::start(relay_config(d, &parent.url)).await.unwrap();
    let url = relay.url();
    let h = hello(COUNTY, 10);
    let mut child = Child::link(dial(&url, &node(d, COUNTY)).await.unwrap(), h.clone())
        .await
        .unwrap();
    // The child resumes where the parent's copy ends, and the parent got the child's own
    // Hello from the relay's certificate.
    assert_eq!(child.welcome, theirs);
    assert_eq!(parent.hellos(COUNTY), vec![h]);
    assert_eq!(parent.log().callers, vec!["relay r1".to_string()]);

    // Up: acked by the relay in order, forwarded byte for byte, deleted once the parent acks.
    let up = vec![
        cells(COUNTY, 9, 5),
        cells(COUNTY, 12, 12),
        tickets(COUNTY, 6),
    ];
    for e in &up {
        child.send(e.clone()).await;
    }
    let mut acks = Vec::new();
    for _ in 0..3 {
        let a = child.next().await;
        assert_eq!((a.origin.as_str(), a.signature.is_empty()), (CITY, true));
        if let Some(Payload::Ack(x)) = &a.payload {
            assert_eq!(x.origin, COUNTY, "an Ack names the child's log");
        }
        acks.push(ack_of(&a).expect("an ack"));
    }
    assert_eq!(acks, vec![("ack", 9), ("ack", 12), ("ticket_ack", 6)]);
    eventually("the parent holds the batches", || async {
        parent.batches(COUNTY).len() >= 3
    })
    .await;
    assert_eq!(parent.batches(COUNTY), up);
    eventually("custody up emptied by the parent's acks", || async {
        custody(&url, d, COUNTY).await == Some((0, 0))
    })
    .await;

    // A heartbeat goes up at once, unchanged.
    let hb = hello(COUNTY, 13);
    child.send(hb.clone()).await;
    eventually("the heartbeat reached the parent", || async {
        parent.hellos(COUNTY).last() == Some(&hb)
    })
    .await;

    // Down: the parent's batch is taken into custody (acked upstream in the child's name),
    // reaches the child unchanged, and stays until the child acks it.
    let down = tickets(CITY, 40);
    assert!(parent.push(COUNTY, down.clone()).await);
    assert_eq!(child.next().await, down);
    eventually("the relay acked the down batch upstream", || async {
        parent.batches(COUNTY).contains(&ticket_ack(COUNTY, 40))
    })
    .await;
    assert_eq!(custody(&url, d, COUNTY).await, Some((0, 1)));
    child.send(ticket_ack(COUNTY, 40)).await;
    eventually("custody down emptied by the child's ack", || async {
        custody(&url, d, COUNTY).await == Some((0, 0))
    })
    .await;
    let st = status(&url, &operator(d)).await.unwrap();
    let c = child_of(&st, COUNTY).unwrap();
    assert!(c.connected && c.parent_connected, "{c:?}");
    assert_eq!((c.head, c.backlog, c.ticket_backlog_up), (13, 3, 2));
    assert!(st.uplink.unwrap().connected);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_survives_a_restart_while_the_parent_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parent = FakeParent::start(d).await;
    parent.set_acking(false);
    let relay = Relay::start(relay_config(d, &parent.url)).await.unwrap();
    let url = relay.url();
    let mut child = Child::link(
        dial(&url, &node(d, COUNTY)).await.unwrap(),
        hello(COUNTY, 8),
    )
    .await
    .unwrap();
    let up = vec![cells(COUNTY, 4, 0), cells(COUNTY, 8, 8), tickets(COUNTY, 3)];
    for e in &up {
        child.send(e.clone()).await;
    }
    for _ in 0..3 {
        assert!(ack_of(&child.next().await).is_some());
    }
    // Forwarded, never acked by the parent: still in custody.
    eventually("the parent got the batches", || async {
        parent.batches(COUNTY).len() == 3
    })
    .await;
    assert_eq!(custody(&url, d, COUNTY).await, Some((3, 0)));
    // The child goes offline; the parent sends it a ticket batch, then goes away too.
    drop(child);
    let down = tickets(CITY, 50);
    assert!(parent.push(COUNTY, down.clone()).await);
    eventually("the down batch in custody", || async {
        custody(&url, d, COUNTY).await == Some((3, 1))
    })
    .await;
    parent.set_up(false);
    relay.shutdown().await.unwrap();

    let relay = Relay::start(relay_config(d, &parent.url)).await.unwrap();
    let url = relay.url();
    let st = status(&url, &operator(d)).await.unwrap();
    let c = child_of(&st, COUNTY).expect("the lane is back");
    assert_eq!((c.custody_up, c.custody_down), (3, 1));
    assert!(!c.connected && !c.parent_connected);
    assert_eq!(c.head, 8);
    // The child returns: it resumes after its custody and gets the parent's batch.
    let mut child = Child::link(
        dial(&url, &node(d, COUNTY)).await.unwrap(),
        hello(COUNTY, 9),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            child.welcome.acked,
            child.welcome.resume_pos,
            child.welcome.ticket_acked
        ),
        (8, 8, 3)
    );
    assert_eq!(child.next().await, down);
    child.send(ticket_ack(COUNTY, 50)).await;
    eventually("custody down emptied", || async {
        custody(&url, d, COUNTY).await == Some((3, 0))
    })
    .await;
    // The parent returns: it gets the custody again, in order, and its acks empty it.
    let seen = parent.log().received.len();
    parent.set_acking(true);
    parent.set_up(true);
    eventually("custody up emptied", || async {
        custody(&url, d, COUNTY).await == Some((0, 0))
    })
    .await;
    let again: Vec<pb::Envelope> = parent.log().received[seen..]
        .iter()
        .filter(|(_, e)| !matches!(e.payload, Some(Payload::Hello(_))))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(again, up);
    // Its first message on the new upstream was the child's latest Hello.
    assert_eq!(parent.log().received[seen].1, hello(COUNTY, 9));
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_link_replaces_the_older_and_a_revoked_county_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parent = FakeParent::start(d).await;
    let relay = Relay::start(relay_config(d, &parent.url)).await.unwrap();
    let url = relay.url();
    let files = node(d, COUNTY);
    let mut first = Child::link(dial(&url, &files).await.unwrap(), hello(COUNTY, 1))
        .await
        .unwrap();
    let mut second = Child::link(dial(&url, &files).await.unwrap(), hello(COUNTY, 2))
        .await
        .unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match first.inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the older link ends");
    let s = ended.expect_err("with an error");
    assert_eq!(s.code(), Grpc::Aborted, "{s:?}");
    second.send(cells(COUNTY, 3, 3)).await;
    assert_eq!(ack_of(&second.next().await), Some(("ack", 3)));

    // Revoked while linked: the link ends with the reason.
    bottomline::security::pki::Pki::open(&d.join("pki"))
        .unwrap()
        .revoke("node-610102", Some("test"))
        .unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match second.inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the revoked link ends");
    let s = ended.expect_err("with an error");
    assert_eq!(s.code(), Grpc::PermissionDenied, "{s:?}");
    assert!(s.message().contains("revoked"), "{s:?}");
    // And it cannot link again.
    let again = match dial(&url, &files).await {
        Ok(ch) => Child::link(ch, hello(COUNTY, 4)).await.err(),
        Err(e) => Some(tonic::Status::unavailable(e)),
    };
    assert!(again.is_some(), "a revoked county linked again");
    eventually("the lane shows no child link", || async {
        let st = status(&url, &operator(d)).await.unwrap();
        !child_of(&st, COUNTY).unwrap().connected
    })
    .await;
    relay.shutdown().await.unwrap();
}
