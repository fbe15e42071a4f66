use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tower::{Layer, Service, ServiceExt};

use super::*;

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn child(division: &str, last_contact_unix_ms: i64) -> ChildReport {
    ChildReport {
        division: code(division),
        connected: true,
        last_contact_unix_ms,
        acked: 40,
        head: 52,
        backlog: 12,
        silent: false,
        ticket_acked_up: 3,
        ticket_backlog_up: 4,
        ticket_acked_down: 5,
        ticket_backlog_down: 6,
        ticket_backlog_down_at_least: false,
        via_relay: None,
        stalled: true,
        custody: None,
    }
}

fn view() -> NodeView {
    let now = 1_800_000_000_000;
    NodeView {
        division: code("6101"),
        now_unix_ms: now,
        children: vec![
            child("610102", now - 2_500),
            ChildReport {
                connected: false,
                silent: true,
                stalled: false,
                backlog: 0,
                ..child("610103", 0)
            },
        ],
        uplink: Some(UplinkState {
            parent: Some("http://parent".into()),
            connected: true,
            acked: 9,
            backlog: 7,
            floor: 2,
            ticket_acked: 1,
            ticket_backlog: 2,
            last_error: None,
            links: 3,
        }),
        tickets: State::ALL
            .iter()
            .map(|s| (*s, u64::from(s.code()) * 10))
            .collect(),
        tickets_overdue: 17,
        cases_due: (4, 1),
        store_bytes: 123_456,
        change_log_head: 987,
        ticket_log_head: 65,
        self_check: Some((true, now - 60_000)),
        heap: Some(crate::memory::HeapUsage {
            in_use: 20 << 20,
            free: 3 << 20,
        }),
        ticket_cache: (321, 654_321),
        crl_next_update: Some(1_800_864_000),
    }
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a sample value"))
}

fn metrics() -> Arc<NodeMetrics> {
    NodeMetrics::new(&LedgerMetrics::default())
}

#[test]
fn render_shows_the_view() {
    let m = metrics();
    let text = m.render(&view());
    let expect = [
        (r#"bottomline_node_info{division="6101"}"#, 1.0),
        (r#"bottomline_child_lag_seconds{child="610102"}"#, 2.5),
        (r#"bottomline_child_backlog_blocks{child="610102"}"#, 12.0),
        (r#"bottomline_child_backlog_blocks{child="610103"}"#, 0.0),
        (
            r#"bottomline_child_ticket_backlog_events{child="610102",direction="up"}"#,
            4.0,
        ),
        (
            r#"bottomline_child_ticket_backlog_events{child="610102",direction="down"}"#,
            6.0,
        ),
        (r#"bottomline_child_connected{child="610102"}"#, 1.0),
        (r#"bottomline_child_connected{child="610103"}"#, 0.0),
        (r#"bottomline_child_silent{child="610103"}"#, 1.0),
        (r#"bottomline_child_stalled{child="610102"}"#, 1.0),
        ("bottomline_uplink_connected", 1.0),
        ("bottomline_uplink_backlog_blocks", 7.0),
        ("bottomline_uplink_ticket_backlog_events", 2.0),
        ("bottomline_uplink_links_established", 3.0),
        (r#"bottomline_tickets{state="issued"}"#, 10.0),
        (r#"bottomline_tickets{state="closed"}"#, 60.0),
        ("bottomline_tickets_overdue", 17.0),
        ("bottomline_cases_due", 4.0),
        ("bottomline_cases_overdue", 1.0),
        ("bottomline_store_size_bytes", 123_456.0),
        (r#"bottomline_heap_bytes{state="in_use"}"#, 20_971_520.0),
        (r#"bottomline_heap_bytes{state="free"}"#, 3_145_728.0),
        ("bottomline_ticket_log_cache_entries", 321.0),
        ("bottomline_ticket_log_cache_bytes", 654_321.0),
        (
            "bottomline_crl_next_update_timestamp_seconds",
            1_800_864_000.0,
        ),
        ("bottomline_change_log_head", 987.0),
        ("bottomline_ticket_log_head", 65.0),
        ("bottomline_self_check_ok", 1.0),
        ("bottomline_self_check_timestamp_seconds", 1_799_999_940.0),
        (r#"bottomline_cells_applied_total{source="child"}"#, 0.0),
        ("bottomline_flush_duration_seconds_count", 0.0),
        ("bottomline_grpc_requests_in_flight", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // A child never heard from has no lag.
    assert!(
        !text.contains(r#"child_lag_seconds{child="610103"}"#),
        "{text}"
    );
    // The text format: counters' HELP and TYPE name the _total sample, no UNIT, no EOF.
    assert!(text.contains("# TYPE bottomline_cells_applied_total counter\n"));
    assert!(text.contains("# HELP bottomline_cells_applied_total "));
    assert!(
        !text.contains("# UNIT") && !text.contains("# EOF"),
        "{text}"
    );
    let open = m.render_openmetrics(&view());
    assert!(open.ends_with("# EOF\n"));
    assert!(open.contains("# TYPE bottomline_cells_applied counter\n"));
    assert_eq!(m.render_for(&view(), None).0, CONTENT_TYPE);
    assert_eq!(
        m.render_for(
            &view(),
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        )
        .0,
        OPENMETRICS_CONTENT_TYPE
    );
}

#[test]
fn a_top_node_without_children_has_no_link_series() {
    let v = NodeView {
        children: Vec::new(),
        uplink: None,
        self_check: None,
        crl_next_update: None,
        ..view()
    };
    let text = metrics().render(&v);
    for absent in ["child_", "uplink_", "self_check", "crl_"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    assert_eq!(sample(&text, "bottomline_tickets_overdue"), Some(17.0));
}

#[test]
fn every_family_is_described_once() {
    let m = metrics();
    m.observe_http("/api/stats/{division}", 200, Duration::from_millis(3));
    let text = m.render(&view());
    let mut seen = std::collections::BTreeSet::new();
    for l in text.lines().filter(|l| l.starts_with("# HELP ")) {
        let name = l.split(' ').nth(2).expect("a name");
        assert!(seen.insert(name.to_string()), "second HELP of {name}");
    }
    assert!(seen.len() > 20, "{seen:?}");
}

#[test]
fn http_requests_are_counted_by_route_and_status() {
    let m = metrics();
    m.observe_http("/api/stats/{division}", 200, Duration::from_millis(3));
    m.observe_http("/api/stats/{division}", 200, Duration::from_millis(30));
    m.observe_http("/api/\"x\"\n", 404, Duration::from_millis(1));
    let text = m.render(&view());
    assert_eq!(
        sample(
            &text,
            r#"bottomline_http_requests_total{route="/api/stats/{division}",status="200"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bottomline_http_request_duration_seconds_count{route="/api/stats/{division}"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bottomline_http_requests_total{route="/api/_x__",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn promtool_accepts_the_exposition() {
    let m = metrics();
    m.observe_http("/api/stats/{division}", 200, Duration::from_millis(3));
    let text = m.render(&view());
    match promtool_check(&text) {
        None => println!("SKIP: promtool not installed (apt-get install prometheus)"),
        Some((ok, out)) => assert!(ok, "promtool check metrics: {out}\n{text}"),
    }
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

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A gRPC-like response: `headers` in the head; a body of one data frame and `trailers`
/// (`None`: trailers-only, an empty body).
fn response(
    headers: &[(&'static str, &'static str)],
    trailers: Option<&[(&'static str, &'static str)]>,
) -> http::Response<TestBody> {
    let body = match trailers {
        None => http_body_util::Empty::new().boxed_unsync(),
        Some(t) => {
            let mut map = http::HeaderMap::new();
            for (k, v) in t {
                map.insert(*k, http::HeaderValue::from_static(v));
            }
            Full::new(Bytes::from_static(b"\0\0\0\0\x01x"))
                .with_trailers(std::future::ready(Some(Ok(map))))
                .boxed_unsync()
        }
    };
    let mut res = http::Response::new(body);
    for (k, v) in headers {
        res.headers_mut()
            .insert(*k, http::HeaderValue::from_static(v));
    }
    res
}

/// Call `path` through the layer on a service answering `answer`, reading the body to
/// its end.
async fn call(m: &Arc<NodeMetrics>, path: &str, answer: fn() -> http::Response<TestBody>) {
    let svc = m
        .grpc_layer()
        .layer(tower::service_fn(move |_req: http::Request<()>| {
            std::future::ready(Ok::<_, Infallible>(answer()))
        }));
    let req = http::Request::builder()
        .uri(format!("http://node{path}"))
        .body(())
        .expect("request");
    let res = svc.oneshot(req).await.expect("response");
    res.into_body().collect().await.expect("body");
}

#[tokio::test]
async fn the_layer_counts_calls_by_method_and_code() {
    let m = metrics();
    let stats = "/bottomline.v1.Sync/Stats";
    // OK: the status in the trailers.
    call(&m, stats, || response(&[], Some(&[("grpc-status", "0")]))).await;
    call(&m, stats, || response(&[], Some(&[("grpc-status", "0")]))).await;
    // A handler's error: trailers-only.
    call(&m, stats, || {
        response(
            &[("grpc-status", "3"), ("grpc-message", "bad period")],
            None,
        )
    })
    .await;
    // A stream that ends with an error in its trailers.
    call(&m, "/bottomline.v1.Sync/Link", || {
        response(&[], Some(&[("grpc-status", "14")]))
    })
    .await;
    // A path no service serves: tonic's UNIMPLEMENTED without a message.
    call(&m, "/no.such.Service/Nothing\"", || {
        response(&[("grpc-status", "12")], None)
    })
    .await;
    // A method that is there but says it is not implemented here keeps its name.
    call(&m, "/bottomline.v1.Tickets/Issue", || {
        response(
            &[("grpc-status", "12"), ("grpc-message", "not on a county")],
            None,
        )
    })
    .await;
    // Neither headers nor trailers say: an HTTP 200 is OK.
    call(&m, "/bottomline.v1.Sync/Status", || {
        response(&[], Some(&[]))
    })
    .await;
    assert_eq!(m.grpc_requests(stats, "0"), 2);
    assert_eq!(m.grpc_requests(stats, "3"), 1);
    assert_eq!(m.grpc_requests("/bottomline.v1.Sync/Link", "14"), 1);
    assert_eq!(m.grpc_requests(UNKNOWN_METHOD, "12"), 1);
    assert_eq!(m.grpc_requests("/bottomline.v1.Tickets/Issue", "12"), 1);
    assert_eq!(m.grpc_requests("/bottomline.v1.Sync/Status", "0"), 1);
    let text = m.render(&view());
    assert!(!text.contains("no.such"), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"bottomline_grpc_request_duration_seconds_count{method="/bottomline.v1.Sync/Stats"}"#
        ),
        Some(3.0)
    );
    // Long-lived streams are counted, not timed.
    assert!(
        !text.contains(r#"duration_seconds_count{method="/bottomline.v1.Sync/Link"}"#),
        "{text}"
    );
    assert_eq!(
        sample(&text, "bottomline_grpc_requests_in_flight"),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_call_cut_short_is_cancelled() {
    let m = metrics();
    let mut svc = m
        .grpc_layer()
        .layer(tower::service_fn(|_req: http::Request<()>| {
            std::future::ready(Ok::<_, Infallible>(response(
                &[],
                Some(&[("grpc-status", "0")]),
            )))
        }));
    let req = http::Request::builder()
        .uri("http://node/bottomline.v1.Sync/Report")
        .body(())
        .expect("request");
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    assert_eq!(
        sample(&m.render(&view()), "bottomline_grpc_requests_in_flight"),
        Some(1.0)
    );
    // The client goes away before the body's end.
    drop(res);
    assert_eq!(m.grpc_requests("/bottomline.v1.Sync/Report", "1"), 1);
    assert_eq!(
        sample(&m.render(&view()), "bottomline_grpc_requests_in_flight"),
        Some(0.0)
    );
}
