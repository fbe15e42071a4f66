//! The HTTP API and its access rules (issue #17 points 1 and 3), over real HTTP against
//! running nodes: anonymous reading on loopback only, accounts with argon2 hashes, a viewer
//! reads and may not act, an operator acts within the node's subtree, failed logins are
//! limited, a removed account's session ends, `bottomline user` works on a running node, and
//! a listener others can reach refuses to start without accounts.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use bottomline::http::accounts;
use bottomline::security::Role;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Reply {
    status: u16,
    set_cookie: Option<String>,
    body: Value,
    text: String,
}

/// One HTTP request: `body` as JSON for a POST, `cookie` as the session.
async fn call(
    client: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    cookie: Option<&str>,
) -> Reply {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let res = client
        .request(req.body(Full::new(bytes)).expect("request"))
        .await
        .expect("HTTP call");
    let status = res.status().as_u16();
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_string());
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        set_cookie,
        body,
        text,
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn http_addr(n: &Running) -> SocketAddr {
    eventually("the HTTP listener is bound", || {
        n.handle.http_addr.get().is_some()
    })
    .await;
    *n.handle.http_addr.get().expect("bound")
}

async fn login(c: &HttpClient, addr: SocketAddr, name: &str, password: &str) -> Reply {
    call(
        c,
        addr,
        "POST",
        "/api/login",
        Some(json!({ "name": name, "password": password })),
        None,
    )
    .await
}

/// A column's value in a report row.
fn value(report: &Value, row: usize, indicator: &str) -> f64 {
    let col = report["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c["indicator"] == indicator && c["dimension"] == "total")
        .unwrap_or_else(|| panic!("no column {indicator}"));
    report["rows"][row]["values"][col]
        .as_f64()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_an_operator_acts_and_anonymous_only_reads_on_loopback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let city = code("6101");
    let acc = dir.join("6101").join("accounts.toml");
    accounts::add(&acc, city, "wang", Role::Viewer, None, "viewer-pass-1").expect("viewer");
    accounts::add(&acc, city, "li", Role::Operator, None, "operator-pass-1").expect("operator");
    let parent = start_with_top(
        dir,
        "6101",
        None,
        true,
        "",
        "http_listen = \"127.0.0.1:0\"\n",
    )
    .await;
    let county = start(dir, "610102", parent.addr.as_deref(), false, "").await;
    let files = dir.join("files");
    generate_county(&files, "610102", 3, 300);
    import_generated(
        county.ledger(),
        &files,
        "610102",
        jiff::civil::date(2026, 11, 20),
    );
    let addr = http_addr(&parent).await;
    let c = client();

    // Anonymous on loopback: reads, as a viewer of the node's division.
    let me = call(&c, addr, "GET", "/api/me", None, None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["anonymous"], true);
    assert_eq!(me.body["user"], Value::Null);
    assert_eq!(me.body["node"]["division"], "6101");
    assert_eq!(me.body["holds_levels"], json!(["city", "county"]));
    let tree = call(&c, addr, "GET", "/api/tree", None, None).await;
    assert_eq!(tree.status, 200, "{}", tree.text);

    // The region report over HTTP is the node's own figures.
    let want = county
        .ledger()
        .indicators(code("610102"), "2026".parse().expect("period"))
        .expect("indicators")
        .count("monitored_households", "total");
    assert!(want > 0);
    let deadline = std::time::Instant::now() + DEADLINE;
    let report = loop {
        let rep = call(&c, addr, "GET", "/api/report?period=2026", None, None).await;
        let shows = rep.status == 200
            && rep.body["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["division"] == "610102"))
            && value(&rep.body, 0, "monitored_households") == want as f64;
        if shows {
            break rep.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the city's report never showed the county: {}",
            rep.text
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(report["rows"][0]["division"], "610102");
    assert_eq!(report["rows"][0]["period"], "2026");
    let trend = call(
        &c,
        addr,
        "GET",
        "/api/report?division=610102&scope=division&period=2026&each=week",
        None,
        None,
    )
    .await;
    assert_eq!(trend.status, 200, "{}", trend.text);
    assert_eq!(trend.body["rows"].as_array().map(Vec::len), Some(53));
    // Outside the node's subtree, and a bad period: clear refusals.
    let outside = call(&c, addr, "GET", "/api/report?division=6102", None, None).await;
    assert!(
        outside.status == 403
            && outside.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("outside")),
        "{} {}",
        outside.status,
        outside.text
    );
    let bad = call(&c, addr, "GET", "/api/report?period=2026-13", None, None).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.body["error"].as_str().is_some_and(|e| !e.is_empty()));

    // Acting needs a login.
    let csv = "id,target,category,source,severity,deadline,description\n\
               H-1,610102,housing safety,inspection,high,2027-01-10,roof\n\
               H-2,610102,housing safety,inspection,low,2027-01-20,well\n";
    let inv = json!({ "inventory": "winter", "csv": csv });
    let anon = call(
        &c,
        addr,
        "POST",
        "/api/tickets/inventory",
        Some(inv.clone()),
        None,
    )
    .await;
    assert_eq!(anon.status, 401, "{}", anon.text);

    // Wrong password; then the viewer.
    let wrong = login(&c, addr, "wang", "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"], "wrong name or password");
    let unknown = login(&c, addr, "nobody", "not-the-password").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body["error"], wrong.body["error"]);
    let viewer = login(&c, addr, "wang", "viewer-pass-1").await;
    assert_eq!(viewer.status, 200, "{}", viewer.text);
    assert_eq!(viewer.body["user"]["role"], "viewer");
    let vcookie = viewer.set_cookie.expect("a session cookie");
    let me = call(&c, addr, "GET", "/api/me", None, Some(&vcookie)).await;
    assert_eq!(me.body["user"]["name"], "wang");
    let refused = call(
        &c,
        addr,
        "POST",
        "/api/tickets/inventory",
        Some(inv.clone()),
        Some(&vcookie),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("may read but not act")),
        "{}",
        refused.text
    );

    // The operator issues; both see the tickets; the viewer may not verify.
    let op = login(&c, addr, "li", "operator-pass-1").await;
    assert_eq!(op.status, 200, "{}", op.text);
    let ocookie = op.set_cookie.expect("a session cookie");
    let issued = call(
        &c,
        addr,
        "POST",
        "/api/tickets/inventory",
        Some(inv),
        Some(&ocookie),
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    assert_eq!(issued.body["keys"], json!(["6101/H-1", "6101/H-2"]));
    let list = call(
        &c,
        addr,
        "GET",
        "/api/tickets?target=610102",
        None,
        Some(&vcookie),
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["total"], 2);
    let show = call(
        &c,
        addr,
        "GET",
        "/api/ticket?key=6101/H-1",
        None,
        Some(&vcookie),
    )
    .await;
    assert_eq!(show.status, 200, "{}", show.text);
    assert_eq!(show.body["target"], "610102");
    assert!(show.body["history"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    let act = json!({ "keys": ["6101/H-1"], "action": "supervise" });
    let v_act = call(
        &c,
        addr,
        "POST",
        "/api/tickets/act",
        Some(act.clone()),
        Some(&vcookie),
    )
    .await;
    assert_eq!(v_act.status, 403, "{}", v_act.text);
    let o_act = call(
        &c,
        addr,
        "POST",
        "/api/tickets/act",
        Some(act),
        Some(&ocookie),
    )
    .await;
    assert_eq!(o_act.status, 200, "{}", o_act.text);
    assert_eq!(o_act.body["tickets"][0]["supervised_by"], "6101");
    // Verifying what nobody rectified: the ticket's state refuses it, with the reason.
    let early = call(
        &c,
        addr,
        "POST",
        "/api/tickets/act",
        Some(json!({ "keys": ["6101/H-2"], "action": "verify" })),
        Some(&ocookie),
    )
    .await;
    assert_eq!(early.status, 409, "{}", early.text);
    let progress = call(
        &c,
        addr,
        "GET",
        "/api/progress?inventory=winter",
        None,
        None,
    )
    .await;
    assert_eq!(progress.status, 200, "{}", progress.text);
    assert_eq!(progress.body["total"]["issued"], 2);
    let health = call(&c, addr, "GET", "/api/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["children"][0]["division"], "610102");
    assert!(health.body["now_unix_ms"].as_i64().is_some_and(|t| t > 0));

    // Failed logins are limited: five are free, the sixth locks the name; then even the right
    // password waits.
    for _ in 0..6 {
        assert_eq!(login(&c, addr, "li", "guess-guess").await.status, 401);
    }
    let limited = login(&c, addr, "li", "operator-pass-1").await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.body["retry_after_secs"]
        .as_u64()
        .is_some_and(|s| s >= 1));

    // A changed password ends the sessions opened with the old one.
    let again = login(&c, addr, "wang", "viewer-pass-1").await;
    let wcookie = again.set_cookie.expect("a session cookie");
    accounts::set_password(&acc, "wang", "viewer-pass-2").expect("passwd");
    let me = call(&c, addr, "GET", "/api/me", None, Some(&wcookie)).await;
    assert_eq!(
        me.body["user"],
        Value::Null,
        "the old password's session ended"
    );
    let again = login(&c, addr, "wang", "viewer-pass-2").await;
    assert_eq!(again.status, 200, "{}", again.text);
    let vcookie = again.set_cookie.expect("a session cookie");

    // Logging out ends the session; removing an account ends its sessions.
    let out = call(
        &c,
        addr,
        "POST",
        "/api/logout",
        Some(json!({})),
        Some(&ocookie),
    )
    .await;
    assert_eq!(out.status, 200);
    let me = call(&c, addr, "GET", "/api/me", None, Some(&ocookie)).await;
    assert_eq!(me.body["user"], Value::Null);
    accounts::remove(&acc, "wang").expect("removed");
    let me = call(&c, addr, "GET", "/api/me", None, Some(&vcookie)).await;
    assert_eq!(
        me.body["user"],
        Value::Null,
        "a removed account's session ended"
    );

    // The dashboard and the metrics.
    let page = call(&c, addr, "GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/assets/app.js"));
    let js = call(&c, addr, "GET", "/assets/echarts.min.js", None, None).await;
    assert_eq!(js.status, 200);
    assert!(js.text.len() > 500_000, "ECharts is served from the binary");
    let metrics = call(&c, addr, "GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("bottomline_http_requests_total{"));
    assert!(metrics
        .text
        .contains("route=\"/api/tickets/act\",status=\"403\""));
    assert!(metrics
        .text
        .contains("bottomline_child_lag_seconds{child=\"610102\"}"));
    stop(county).await;
    stop(parent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_others_can_reach_needs_accounts_and_a_login() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // No accounts: refused at start, saying what to do.
    let text = format!(
        "division = \"6101\"\ndata_dir = {:?}\ninsecure = true\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"0.0.0.0:0\"\n",
        dir.join("a").display().to_string()
    );
    let config = bottomline::config::Config::parse(&text).expect("config");
    let handle = bottomline::node::open(&config).expect("open");
    let err = bottomline::node::run(config, handle, None, async {})
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("bottomline user add"), "{err}");
    // Anonymous reading on such a listener: refused too.
    let text = format!(
        "division = \"6101\"\ndata_dir = {:?}\ninsecure = true\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"0.0.0.0:0\"\nhttp_anonymous = true\n",
        dir.join("b").display().to_string()
    );
    let config = bottomline::config::Config::parse(&text).expect("config");
    accounts::add(
        &config.accounts_path(),
        code("6101"),
        "wang",
        Role::Viewer,
        None,
        "viewer-pass-1",
    )
    .expect("account");
    let handle = bottomline::node::open(&config).expect("open");
    let err = bottomline::node::run(config, handle, None, async {})
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("loopback"), "{err}");

    // With an account: it serves, and everything but the page, the login and the metrics
    // needs a session. The account is added by the CLI while the node runs.
    accounts::add(
        &dir.join("6101").join("accounts.toml"),
        code("6101"),
        "wang",
        Role::Viewer,
        None,
        "viewer-pass-1",
    )
    .expect("account");
    let node = start_with_top(dir, "6101", None, true, "", "http_listen = \"0.0.0.0:0\"\n").await;
    let port = http_addr(&node).await.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let c = client();
    let me = call(&c, addr, "GET", "/api/me", None, None).await;
    assert_eq!(me.body["anonymous"], false);
    let report = call(&c, addr, "GET", "/api/report", None, None).await;
    assert_eq!(report.status, 401, "{}", report.text);
    assert_eq!(call(&c, addr, "GET", "/", None, None).await.status, 200);
    assert_eq!(
        call(&c, addr, "GET", "/metrics", None, None).await.status,
        200
    );
    assert_eq!(login(&c, addr, "zhao", "operator-pass-2").await.status, 401);

    let config_path = dir.join("6101.toml");
    std::fs::write(
        &config_path,
        format!(
            "division = \"6101\"\ndata_dir = {:?}\ninsecure = true\nlisten = \"127.0.0.1:0\"\n",
            dir.join("6101").display().to_string()
        ),
    )
    .expect("config written");
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args([
            "user",
            "add",
            "zhao",
            "--role",
            "operator",
            "--password-stdin",
            "--config",
        ])
        .arg(&config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bottomline user add");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = cli.stdin.take().expect("stdin");
        stdin
            .write_all(b"operator-pass-2\n")
            .await
            .expect("password");
    }
    let out = cli.wait_with_output().await.expect("CLI ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = login(&c, addr, "zhao", "operator-pass-2").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let cookie = ok.set_cookie.expect("session");
    let report = call(
        &c,
        addr,
        "GET",
        "/api/report?scope=division",
        None,
        Some(&cookie),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let short = tokio::process::Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["user", "passwd", "zhao", "--password-stdin", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bottomline user passwd");
    assert!(!short.status.success(), "an empty password is refused");
    stop(node).await;
}
