//! `/metrics` of a running tree (a city and its county, in-process over gRPC): the city's
//! exposition shows the county's lag and backlog, the cells it applied from it, its flushes
//! and store size, and the gRPC calls made to it by method and status code; `promtool check
//! metrics` accepts it (skipped, with a notice, where promtool is not installed).
//!
//! The calls go to the city's own gRPC server, and the metrics are the city's own
//! (`NodeHandle::metrics`), rendered as its `/metrics` renders them.

mod common;
use common::{eventually, stop};

use std::time::Duration;

use bottomline::http::metrics::{CellsFrom, NodeView};
use bottomline_proto::v1 as pb;
use jiff::civil::date;

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.2\n";
const CITY: &str = "6101";
const COUNTY: &str = "610102";

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a sample value"))
}

/// `promtool check metrics` on `text`: success and what it said; `None` without promtool.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

fn assert_promtool_accepts(what: &str, text: &str) {
    match promtool_check(text) {
        None => common::skip("SKIP: promtool not installed (apt-get install prometheus)"),
        Some((ok, said)) => {
            println!("promtool check metrics ({what}): success={ok} {said:?}");
            assert!(ok, "promtool check metrics ({what}): {said}\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_exposes_its_county_its_calls_and_its_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    common::generate_county(&files, COUNTY, 11, 300);
    let nodes = tmp.path().join("nodes");
    let city = common::start(&nodes, CITY, None, true, SYNC).await;
    let county = common::start(&nodes, COUNTY, city.addr.as_deref(), false, SYNC).await;
    common::import_generated(county.ledger(), &files, COUNTY, date(2026, 11, 24));
    let head = county.ledger().cell_seq().expect("head");
    assert!(head > 0);
    eventually("the city holds everything the county wrote", || {
        city.ledger()
            .child_acked(common::code(COUNTY))
            .expect("acked")
            >= head
    })
    .await;
    eventually("the county's link is up at the city", || {
        city.handle
            .children
            .lock()
            .expect("children")
            .get(&common::code(COUNTY))
            .is_some_and(|c| c.connected)
    })
    .await;

    // The city's own gRPC API, behind its metrics layer.
    let metrics = city.handle.metrics.clone();
    let channel = tonic::transport::Channel::from_shared(city.addr.clone().expect("listens"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::sync_client::SyncClient::new(channel.clone());
    for _ in 0..3 {
        client
            .stats(pb::StatsRequest {
                division: COUNTY.into(),
                period: "2026-11".into(),
            })
            .await
            .expect("stats");
    }
    let bad = client
        .stats(pb::StatsRequest {
            division: COUNTY.into(),
            period: "November".into(),
        })
        .await
        .expect_err("a period that is not one");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    client.status(pb::StatusRequest {}).await.expect("status");
    // A service nobody serves: tonic's UNIMPLEMENTED, counted as "unknown".
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let unserved: Result<tonic::Response<pb::StatusReply>, _> = grpc
        .unary(
            tonic::Request::new(pb::StatusRequest {}),
            http::uri::PathAndQuery::from_static("/nope.v1.Nothing/Call"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(
        unserved.expect_err("nobody serves it").code(),
        tonic::Code::Unimplemented
    );

    let view = {
        let handle = city.handle.clone();
        tokio::task::spawn_blocking(move || {
            NodeView::gather(&handle, Duration::from_secs(30), Duration::from_secs(60))
        })
        .await
        .expect("join")
        .expect("view")
    };
    let text = metrics.render(&view);
    println!("{text}");
    let child = |name: &str| format!("bottomline_{name}{{child=\"{COUNTY}\"}}");
    let lag = sample(&text, &child("child_lag_seconds")).expect("the county's lag");
    assert!((0.0..30.0).contains(&lag), "lag {lag}");
    assert!(sample(&text, &child("child_backlog_blocks")).is_some());
    assert_eq!(sample(&text, &child("child_connected")), Some(1.0));
    assert_eq!(sample(&text, &child("child_silent")), Some(0.0));
    for direction in ["up", "down"] {
        let series = format!(
            "bottomline_child_ticket_backlog_events{{child=\"{COUNTY}\",direction=\"{direction}\"}}"
        );
        assert!(sample(&text, &series).is_some(), "{series}");
    }
    let applied = sample(&text, r#"bottomline_cells_applied_total{source="child"}"#)
        .expect("cells applied from children");
    assert!(applied > 0.0);
    assert_eq!(
        applied as u64,
        city.ledger()
            .metrics()
            .cells_applied_total(CellsFrom::Child)
    );
    let stats = |code: &str| {
        sample(
            &text,
            &format!(
                "bottomline_grpc_requests_total{{method=\"/bottomline.v1.Sync/Stats\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(stats("0"), Some(3.0));
    assert_eq!(stats("3"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"bottomline_grpc_requests_total{method="/bottomline.v1.Sync/Status",code="0"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bottomline_grpc_request_duration_seconds_count{method="/bottomline.v1.Sync/Stats"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bottomline_grpc_requests_total{method="unknown",code="12"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains("nope.v1"), "{text}");
    // In flight: the county's Link stream, open for as long as the link is up.
    assert_eq!(
        sample(&text, "bottomline_grpc_requests_in_flight"),
        Some(1.0)
    );
    assert!(sample(&text, "bottomline_flush_duration_seconds_count").expect("flushes") > 0.0);
    assert!(sample(&text, "bottomline_store_size_bytes").expect("store size") > 0.0);
    assert!(sample(&text, "bottomline_change_log_head").expect("head") > 0.0);
    assert_promtool_accepts("city", &text);

    // The county: its own writes, and its link to the city.
    let county_metrics = county.handle.metrics.clone();
    let view = {
        let handle = county.handle.clone();
        tokio::task::spawn_blocking(move || {
            NodeView::gather(&handle, Duration::from_secs(30), Duration::from_secs(60))
        })
        .await
        .expect("join")
        .expect("view")
    };
    let text = county_metrics.render(&view);
    assert!(
        sample(&text, r#"bottomline_cells_applied_total{source="local"}"#).expect("local cells")
            > 0.0
    );
    assert_eq!(sample(&text, "bottomline_uplink_connected"), Some(1.0));
    assert!(sample(&text, "bottomline_uplink_backlog_blocks").is_some());
    assert!(!text.contains("bottomline_child_"), "{text}");
    assert_promtool_accepts("county", &text);
    // OpenMetrics for a scraper that asks for it.
    assert!(county_metrics
        .render_openmetrics(&view)
        .ends_with("# EOF\n"));

    drop(client);
    stop(county).await;
    stop(city).await;
}
