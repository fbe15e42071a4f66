//! Rectification tickets through the real gRPC API and the `bottomline tickets` CLI: a
//! province, a city and a county on 127.0.0.1:0 — a ticket issued at the province reaches the
//! county, is worked there, verified at the province and shows closed at every level; illegal
//! actions are refused naming the ticket and its state; a bad inventory is refused whole;
//! progress clears to zero. A county alone: tickets to its towns, a split into villages.

mod common;
use common::{eventually_async, stop, Running};

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use bottomline::division::Code;
use bottomline::ledger::Act;
use bottomline::rpc::tickets_client::{ListFilter, NewTicket, TicketRow, TicketsClient};

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 1\n";

async fn start(dir: &Path, division: &str, parent: Option<&str>) -> Running {
    common::start(dir, division, parent, true, SYNC).await
}

fn addr(n: &Running) -> String {
    n.addr.clone().expect("listening")
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

/// A deadline `days` from today (China date).
fn in_days(days: i64) -> String {
    bottomline::period::today_in_china()
        .checked_add(jiff::Span::new().days(days))
        .expect("date")
        .to_string()
}

fn new_ticket(id: &str, target: &str, deadline: &str) -> NewTicket {
    NewTicket {
        id: id.into(),
        target: target.into(),
        category: "housing safety".into(),
        source: "inspection".into(),
        severity: "high".into(),
        deadline: deadline.into(),
        description: "roof leaks".into(),
        household_code: None,
        inventory: None,
    }
}

async fn client(n: &Running) -> TicketsClient {
    TicketsClient::connect(&addr(n), None)
        .await
        .expect("connect")
}

/// The ticket's state at the node, or `None` while it does not hold it.
async fn state_at(n: &Running, key: &str) -> Option<String> {
    let mut c = TicketsClient::connect(&addr(n), None).await.ok()?;
    c.show(key).await.ok().map(|t| t.state)
}

async fn wait_state(n: &Running, key: &str, state: &str) {
    let what = format!("{key} {state} at {}", n.ledger().division());
    eventually_async(&what, || async {
        state_at(n, key).await.as_deref() == Some(state)
    })
    .await;
}

/// Run the CLI (on the blocking pool: the nodes share this runtime).
async fn cli<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_bottomline"))
            .args(&args)
            .env_remove("BOTTOMLINE_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run bottomline")
    })
    .await
    .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run the CLI and require success; returns stdout.
async fn cli_ok(args: &[&str]) -> String {
    let out = cli(args).await;
    assert!(
        out.status.success(),
        "bottomline {args:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Run the CLI and require failure; returns stderr.
async fn cli_err(args: &[&str]) -> String {
    let out = cli(args).await;
    assert!(
        !out.status.success(),
        "bottomline {args:?} succeeded:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_travels_down_is_worked_and_closes_at_every_level() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let province = start(tmp.path(), "61", None).await;
    let city = start(tmp.path(), "6101", Some(&addr(&province))).await;
    let county = start(tmp.path(), "610102", Some(&addr(&city))).await;
    let (pa, ca, ka) = (addr(&province), addr(&city), addr(&county));
    let key = "61/2026-001";

    // Issue at the province (API), into an inventory.
    let mut p = client(&province).await;
    let keys = p
        .issue(
            None,
            vec![NewTicket {
                inventory: Some("spring".into()),
                ..new_ticket("2026-001", "610102", &in_days(30))
            }],
        )
        .await
        .expect("issue");
    assert_eq!(keys, [key]);
    // Held at the province at once (issued, or already delivered: the tree is fast).
    assert!(matches!(
        state_at(&province, key).await.as_deref(),
        Some("issued" | "delivered")
    ));
    // The same id again is refused.
    let e = p
        .issue(None, vec![new_ticket("2026-001", "6101", &in_days(30))])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::AlreadyExists), "{e}");
    assert!(
        e.to_string()
            .contains("ticket 61/2026-001 is already issued"),
        "{e}"
    );

    // Delivered at the county, and the delivery travels back up.
    wait_state(&county, key, "delivered").await;
    wait_state(&city, key, "delivered").await;
    wait_state(&province, key, "delivered").await;

    // The county accepts (CLI), and a second accept is refused naming ticket and state.
    let out = cli_ok(&["tickets", "--addr", &ka, "accept", key]).await;
    assert!(out.contains(key) && out.contains("accepted"), "{out}");
    let err = cli_err(&["tickets", "--addr", &ka, "accept", key]).await;
    assert!(
        err.contains("error: ticket 61/2026-001 is accepted, not delivered"),
        "{err}"
    );
    // Starting with an unknown ticket among the keys refuses the whole call.
    let err = cli_err(&["tickets", "--addr", &ka, "start", key, "61/nope"]).await;
    assert!(err.contains("ticket 61/nope has not been issued"), "{err}");
    assert_eq!(state_at(&county, key).await.as_deref(), Some("accepted"));
    cli_ok(&["tickets", "--addr", &ka, "start", key]).await;
    // Rectify needs a note (API): refused before the ledger.
    let mut k = client(&county).await;
    let e = k
        .act(
            None,
            &[key.to_string()],
            &Act::Rectify { note: "  ".into() },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument), "{e}");
    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "rectify",
        key,
        "--note",
        "roof repaired, photos filed",
    ])
    .await;
    // The county may not verify: only the issuer can.
    let e = k
        .act(None, &[key.to_string()], &Act::Verify)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    assert!(
        e.to_string()
            .contains("ticket 61/2026-001: 610102 may not verify it: only its issuer 61 can"),
        "{e}"
    );
    let err = cli_err(&["tickets", "--addr", &ka, "verify", key]).await;
    assert!(err.contains("610102 may not verify it"), "{err}");
    // The province cannot act for the county (it has a node of its own).
    let e = p
        .act(Some(code("610102")), &[key.to_string()], &Act::Accept)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");

    // The city flags supervision while it travels.
    wait_state(&city, key, "rectified").await;
    let out = cli_ok(&["tickets", "--addr", &ca, "supervise", key]).await;
    assert!(out.contains("by 6101"), "{out}");

    // The province verifies (CLI) once the rectification and the supervision arrived (a
    // verification ordered before the flag would make the flag an ignored event).
    wait_state(&province, key, "rectified").await;
    eventually_async("supervision at the province", || async {
        let Ok(mut c) = TicketsClient::connect(&pa, None).await else {
            return false;
        };
        c.show(key)
            .await
            .is_ok_and(|t| t.supervised_by.as_deref() == Some("6101"))
    })
    .await;
    let err = cli_err(&["tickets", "--addr", &pa, "return", key, "--reason", ""]).await;
    assert!(err.contains("reason"), "{err}");
    cli_ok(&["tickets", "--addr", &pa, "verify", key]).await;
    for n in [&province, &city, &county] {
        wait_state(n, key, "closed").await;
    }
    // Every level shows the whole history, the supervision included.
    for n in [&province, &city, &county] {
        let t: TicketRow = client(n).await.show(key).await.expect("show");
        let actions: Vec<&str> = t
            .history
            .iter()
            .filter(|h| h.ignored.is_none())
            .map(|h| h.action.as_str())
            .collect();
        for a in [
            "issue",
            "deliver",
            "accept",
            "start",
            "rectify",
            "supervise",
            "verify",
        ] {
            assert!(
                actions.contains(&a),
                "{a} missing at {}: {actions:?}",
                n.ledger().division()
            );
        }
        assert_eq!(t.note.as_deref(), Some("roof repaired, photos filed"));
        assert!(t.closed_on.is_some());
    }
    let shown = cli_ok(&["tickets", "--addr", &ka, "show", key]).await;
    for want in [
        "ticket:",
        "61/2026-001",
        "closed",
        "history:",
        "deliver",
        "at node 610102",
        "roof repaired",
    ] {
        assert!(shown.contains(want), "{want} missing in:\n{shown}");
    }

    // Lists at each level.
    let (rows, total) = client(&city)
        .await
        .list(&ListFilter {
            state: Some("closed".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((total, rows.len()), (1, 1));
    assert!(rows[0].history.is_empty());
    let table = cli_ok(&["tickets", "--addr", &pa, "list", "--target", "6101"]).await;
    assert!(
        table.contains("KEY") && table.contains(key) && table.contains("closed"),
        "{table}"
    );
    let csv = cli_ok(&[
        "tickets",
        "--addr",
        &pa,
        "list",
        "--format",
        "csv",
        "--state",
        "rectified",
    ])
    .await;
    assert_eq!(csv.lines().count(), 1, "{csv}");

    // Progress at the province: the county's region (via its city) is cleared to zero.
    let prog = p.progress(Some("spring"), None).await.expect("progress");
    assert_eq!(prog.total.issued, 1);
    assert_eq!(prog.total.open, 0);
    assert_eq!(prog.regions.len(), 1);
    assert_eq!(prog.regions[0].division, "6101");
    assert!(prog.regions[0].cleared_to_zero);
    let prog = p
        .progress(Some("spring"), Some(code("6101")))
        .await
        .expect("progress");
    assert_eq!(prog.regions[0].division, "610102");
    assert_eq!((prog.regions[0].closed, prog.regions[0].open), (1, 0));
    let json = cli_ok(&[
        "tickets",
        "--addr",
        &pa,
        "progress",
        "--inventory",
        "spring",
        "--division",
        "6101",
        "--format",
        "json",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["regions"][0]["division"], "610102");
    assert_eq!(v["regions"][0]["cleared_to_zero"], true);
    assert_eq!(v["total"]["closed"], 1);
    let table = cli_ok(&[
        "tickets",
        "--addr",
        &pa,
        "progress",
        "--inventory",
        "spring",
    ])
    .await;
    assert!(
        table.contains("inventory spring at 61") && table.contains("yes"),
        "{table}"
    );

    stop(county).await;
    stop(city).await;
    stop(province).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_line_field_and_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let province = start(tmp.path(), "61", None).await;
    let pa = addr(&province);
    let mut p = client(&province).await;

    let e = p
        .issue(None, vec![new_ticket("A", "610102", "2026-13-01")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument));
    assert!(
        e.to_string()
            .contains("tickets[0].deadline: 2026-13-01 is not a calendar date"),
        "{e}"
    );
    let e = p
        .issue(
            None,
            vec![
                new_ticket("A", "610102", &in_days(3)),
                NewTicket {
                    source: "rumour".into(),
                    ..new_ticket("B", "6201", &in_days(3))
                },
            ],
        )
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("tickets[1].source: unknown value \"rumour\""),
        "{m}"
    );
    assert!(
        m.contains("tickets[1].target: division 6201 is not in the subtree of the issuer 61"),
        "{m}"
    );
    let err = cli_err(&[
        "tickets",
        "--addr",
        &pa,
        "issue",
        "--id",
        "X",
        "--target",
        "61x",
        "--category",
        "c",
        "--source",
        "inspection",
        "--severity",
        "low",
        "--deadline",
        "2026-01-01",
        "--description",
        "d",
    ])
    .await;
    assert!(
        err.contains("error: ") && err.contains("tickets[0].target: division code \"61x\""),
        "{err}"
    );
    let err = cli_err(&["tickets", "--addr", &pa, "show", "61"]).await;
    assert!(err.contains("key: \"61\" is not a ticket key"), "{err}");
    let err = cli_err(&["tickets", "--addr", &pa, "show", "61/none"]).await;
    assert!(
        err.contains("ticket 61/none is not held at node 61"),
        "{err}"
    );
    let e = p
        .list(&ListFilter {
            state: Some("lost".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("state: unknown value \"lost\""),
        "{e}"
    );

    // An inventory with one bad row: refused whole, naming line and field.
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let bad = dir.join("autumn.csv");
    std::fs::write(
        &bad,
        format!(
            "id,target,category,source,severity,deadline,description\n\
             I-1,610102,housing,spot_check,high,{d},roof\n\
             I-2,610103,water,spot_check,low,2026-02-30,well\n",
            d = in_days(10)
        ),
    )
    .expect("write");
    let err = cli_err(&[
        "tickets",
        "--addr",
        &pa,
        "inventory",
        bad.to_str().expect("utf-8"),
    ])
    .await;
    assert!(
        err.contains("line 3, field deadline: 2026-02-30 is not a calendar date"),
        "{err}"
    );
    assert!(err.contains("no ticket was issued"), "{err}");
    let (rows, total) = p.list(&ListFilter::default()).await.expect("list");
    assert_eq!((rows.len(), total), (0, 0), "nothing is issued");
    let e = p.inventory(None, "", b"id\n".to_vec()).await.unwrap_err();
    assert!(e.to_string().starts_with("inventory: missing value"), "{e}");

    // The good file is issued under its file stem; progress per city.
    let good = dir.join("autumn-fixed.csv");
    std::fs::write(
        &good,
        format!(
            "id,target,category,source,severity,deadline,description\n\
             I-1,610102,housing,spot_check,high,{d},roof\n\
             I-2,610103,water,spot_check,low,{d},well\n\
             I-3,6102,water,spot_check,low,2020-01-01,old well\n",
            d = in_days(10)
        ),
    )
    .expect("write");
    let out = cli_ok(&[
        "tickets",
        "--addr",
        &pa,
        "inventory",
        good.to_str().expect("utf-8"),
    ])
    .await;
    assert!(
        out.contains("inventory autumn-fixed: 3 ticket(s) issued"),
        "{out}"
    );
    let prog = p
        .progress(Some("autumn-fixed"), None)
        .await
        .expect("progress");
    let rows: Vec<(&str, u64, u64, bool)> = prog
        .regions
        .iter()
        .map(|r| (r.division.as_str(), r.issued, r.overdue, r.cleared_to_zero))
        .collect();
    assert_eq!(rows, [("6101", 2, 0, false), ("6102", 1, 1, false)]);
    let table = cli_ok(&["tickets", "--addr", &pa, "list", "--overdue"]).await;
    assert!(
        table.contains("61/I-3") && table.contains("OVERDUE"),
        "{table}"
    );
    assert!(!table.contains("61/I-1"), "{table}");
    let limited = cli_ok(&["tickets", "--addr", &pa, "list", "--limit", "1"]).await;
    assert!(limited.contains("(1 of 3 tickets shown)"), "{limited}");

    stop(province).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_alone_works_tickets_for_its_towns_and_splits_into_villages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let county = start(tmp.path(), "610102", None).await;
    let ka = addr(&county);
    let town = "610102001";

    // A ticket to a town is delivered at once: the county node serves its towns.
    let out = cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "issue",
        "--id",
        "K-1",
        "--target",
        town,
        "--category",
        "income",
        "--source",
        "self_found",
        "--severity",
        "medium",
        "--deadline",
        &in_days(5),
        "--description",
        "subsidy not paid",
        "--household-code",
        "61010200100100001",
    ])
    .await;
    assert!(out.contains("issued 610102/K-1"), "{out}");
    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "issue",
        "--id",
        "K-2",
        "--target",
        town,
        "--category",
        "housing",
        "--source",
        "inspection",
        "--severity",
        "high",
        "--deadline",
        &in_days(5),
        "--description",
        "two villages",
    ])
    .await;
    assert_eq!(
        state_at(&county, "610102/K-1").await.as_deref(),
        Some("delivered")
    );

    // The county cannot accept for the town; the town accepts everything delivered to it.
    let err = cli_err(&["tickets", "--addr", &ka, "accept", "610102/K-1"]).await;
    assert!(
        err.contains("610102 may not accept it: only its target 610102001 can"),
        "{err}"
    );
    let out = cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        town,
        "accept",
        "--all-delivered",
    ])
    .await;
    assert!(out.contains("accept: 2 ticket(s)"), "{out}");
    let err = cli_err(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        "610103",
        "start",
        "610102/K-1",
    ])
    .await;
    assert!(err.contains("cannot act for division 610103"), "{err}");

    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        town,
        "start",
        "610102/K-1",
    ])
    .await;
    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        town,
        "rectify",
        "610102/K-1",
        "--note",
        "paid",
    ])
    .await;
    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "return",
        "610102/K-1",
        "--reason",
        "receipt missing",
    ])
    .await;
    assert_eq!(
        state_at(&county, "610102/K-1").await.as_deref(),
        Some("rectifying")
    );
    cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        town,
        "rectify",
        "610102/K-1",
        "--note",
        "receipt filed",
    ])
    .await;
    cli_ok(&["tickets", "--addr", &ka, "verify", "610102/K-1"]).await;
    let t = client(&county)
        .await
        .show("610102/K-1")
        .await
        .expect("show");
    assert_eq!((t.state.as_str(), t.returns), ("closed", 1));
    assert_eq!(t.household_code.as_deref(), Some("61010200100100001"));

    // Split K-2 into two villages; the split ticket closes when both close.
    let (v1, v2) = ("610102001001", "610102001002");
    let out = cli_ok(&[
        "tickets",
        "--addr",
        &ka,
        "--actor",
        town,
        "split",
        "610102/K-2",
        "--into",
        &format!("{v1},{v2}"),
    ])
    .await;
    assert!(out.contains("sub-ticket 610102001/K-2.001"), "{out}");
    assert_eq!(
        state_at(&county, "610102/K-2").await.as_deref(),
        Some("rectifying")
    );
    for (v, sub) in [(v1, "610102001/K-2.001"), (v2, "610102001/K-2.002")] {
        assert_eq!(state_at(&county, sub).await.as_deref(), Some("delivered"));
        let mut c = client(&county).await;
        for a in [
            Act::Accept,
            Act::Start,
            Act::Rectify {
                note: "done".into(),
            },
        ] {
            c.act(Some(code(v)), &[sub.to_string()], &a)
                .await
                .expect("act");
        }
        c.act(Some(code(town)), &[sub.to_string()], &Act::Verify)
            .await
            .expect("verify");
    }
    let shown = cli_ok(&["tickets", "--addr", &ka, "show", "610102/K-2"]).await;
    assert!(
        shown.contains("closed") && shown.contains("split into:"),
        "{shown}"
    );
    let prog = client(&county)
        .await
        .progress(None, None)
        .await
        .expect("progress");
    assert_eq!(
        prog.total.issued, 2,
        "sub-tickets count through their split ticket"
    );
    assert!(prog.total.cleared_to_zero);
    assert!(t.history.iter().all(|h| h.ignored.is_none()));

    stop(county).await;
}
