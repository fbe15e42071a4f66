//! The `bottomline-relay` binary as a real process: `kill -9` after acking keeps every
//! envelope in custody (nothing lost, nothing doubled), and SIGTERM stops it cleanly.

mod common;

use std::process::Command;
use std::time::Instant;

use bottomline_proto::v1 as pb;
use common::*;
use pb::envelope::Payload;

#[test]
fn prints_its_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_custody_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parent = FakeParent::start(d).await;
    parent.set_acking(false);
    let port = free_port();
    let config = d.join("relay.toml");
    std::fs::write(&config, relay_toml(d, &parent.url, port)).unwrap();
    let log = d.join("relay.log");
    let url = format!("https://127.0.0.1:{port}");
    let mut p = spawn(&config, &log);
    ready(&url, d, &mut p).await;

    let mut child = Child::link(
        dial(&url, &node(d, COUNTY)).await.unwrap(),
        hello(COUNTY, 20),
    )
    .await
    .unwrap();
    let up: Vec<pb::Envelope> = (1..=5u64)
        .map(|i| match i {
            3 => tickets(COUNTY, 7),
            _ => cells(COUNTY, 4 * i, 4 * i - 4),
        })
        .collect();
    for e in &up {
        child.send(e.clone()).await;
    }
    for _ in 0..up.len() {
        let a = child.next().await;
        assert!(
            matches!(a.payload, Some(Payload::Ack(_) | Payload::TicketAck(_))),
            "{a:?}"
        );
    }
    // Acked, so stored: kill -9 now, with the parent away while the relay comes back.
    p.kill().unwrap();
    p.wait().unwrap();
    drop(child);
    parent.set_up(false);
    let mut p = spawn(&config, &log);
    let st = ready(&url, d, &mut p).await;
    let c = child_of(&st, COUNTY).expect("the lane survived");
    assert_eq!((c.custody_up, c.custody_down), (5, 0), "{c:?}");
    // The county resumes after its custody.
    let child = Child::link(
        dial(&url, &node(d, COUNTY)).await.unwrap(),
        hello(COUNTY, 21),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            child.welcome.acked,
            child.welcome.resume_pos,
            child.welcome.ticket_acked
        ),
        (16, 20, 7)
    );
    // The parent returns and acks: it gets each entry once, in order, and custody empties.
    let seen = parent.log().received.len();
    parent.set_acking(true);
    parent.set_up(true);
    eventually("custody up emptied", || async {
        status(&url, &operator(d))
            .await
            .ok()
            .and_then(|s| child_of(&s, COUNTY).map(|c| c.custody_up))
            == Some(0)
    })
    .await;
    let again: Vec<pb::Envelope> = parent.log().received[seen..]
        .iter()
        .filter(|(_, e)| !matches!(e.payload, Some(Payload::Hello(_))))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(again, up);

    // SIGTERM: an ordered stop with exit status 0.
    let killed = Command::new("kill")
        .args(["-TERM", &p.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + DEADLINE;
    let exit = loop {
        if let Some(s) = p.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(POLL).await;
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit:?}\n{text}");
    assert!(text.contains("custody flushed"), "{text}");
}
