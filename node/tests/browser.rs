//! The dashboard in a real browser (issue #17 point 5): headless Chromium from Debian's
//! packages, driven over WebDriver (`chromedriver`), opens the demo's province dashboard,
//! drills down to a county, sees a chart and the ticket list with an overdue ticket
//! highlighted, switches language, logs in as a viewer and fails to verify a ticket.
//! Screenshots are written to `target/tmp/browser/` (kept as test artifacts).
//!
//! `.ci/run` installs `chromium` and `chromium-driver` when they are missing; where they
//! cannot be installed the test prints `SKIP` with the reason.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use bottomline::demo::{DemoOptions, DEMO_ACCOUNTS};
use fantoccini::{Client, ClientBuilder, Locator};

/// Where the screenshots go.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(chromedriver: &PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    common::eventually_async("chromedriver listens", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    driver
}

async fn browser(driver: &Driver, chromium: &PathBuf) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1600,1000", "--lang=zh-CN"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Poll a JavaScript condition (an expression) until it is true.
async fn until(c: &Client, what: &str, js: &str) {
    let deadline = Instant::now() + common::DEADLINE;
    loop {
        let v = c
            .execute(&format!("return !!({js});"), vec![])
            .await
            .expect("script runs");
        if v.as_bool() == Some(true) {
            return;
        }
        if Instant::now() > deadline {
            let body = c
                .execute("return document.body.innerText.slice(0, 2000);", vec![])
                .await
                .ok();
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("waiting for {what}: `{js}` never held; page text: {body:?}");
        }
        tokio::time::sleep(common::POLL).await;
    }
}

/// The page finished rendering its view.
async fn ready(c: &Client, what: &str) {
    until(c, what, "document.body.dataset.ready === '1'").await;
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn shot(c: &Client, name: &str) -> PathBuf {
    let path = artifacts().join(format!("{name}.png"));
    if let Ok(png) = c.screenshot().await {
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        find_tool(&["chromium", "chromium-browser", "google-chrome"]),
        find_tool(&["chromedriver"]),
    ) else {
        common::skip(format_args!(
            "SKIP dashboard_in_a_real_browser: chromium and chromedriver are not installed \
             (apt-get install chromium chromium-driver; .ci/run does it)"
        ));
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let today = bottomline::period::today_in_china();
    let opts = DemoOptions {
        dir: tmp.path().to_owned(),
        cities: 2,
        counties: 3,
        households: Some(400),
        seed: 5,
        port: 0,
        today,
        import_threads: 2,
        http_port: 0,
    };
    let demo = bottomline::demo::start(&opts, Arc::new(|_| {}))
        .await
        .expect("demo starts");
    common::eventually("the demo tree converges", || {
        demo.behind().expect("behind") == 0
    })
    .await;
    // The demo's inventory: two tickets per county, the second past its deadline; the first
    // county rectifies its first, which the province may then verify.
    let keys = demo.issue_tickets(today).await.expect("tickets issued");
    common::eventually("every ticket delivered", || {
        demo.tickets_undelivered(&keys).expect("undelivered") == 0
    })
    .await;
    let rectified = keys[0].clone();
    demo.rectify_at_target(&rectified).await.expect("rectified");
    common::eventually("the rectification reaches the province", || {
        demo.province_ticket_state(&rectified).expect("state")
            == Some(bottomline::tickets::State::Rectified)
    })
    .await;
    let province: SocketAddr = demo.province().http_addr().expect("province dashboard");
    let county = demo.counties[0];
    let city = county.parent().expect("a county has a city");

    let driver = start_driver(&chromedriver).await;
    let c = browser(&driver, &chromium).await;
    c.goto(&format!("http://{province}/")).await.expect("goto");
    ready(&c, "the province view").await;
    // Chinese by default, the province's name, indicator names in Chinese.
    let lang = c
        .execute("return document.documentElement.lang;", vec![])
        .await
        .expect("lang");
    assert_eq!(lang.as_str(), Some("zh-CN"));
    let name = text(&c, "#division-name").await;
    assert!(name.contains("省"), "province name shown: {name:?}");
    until(
        &c,
        "Chinese indicator names",
        "document.body.innerText.includes('监测户数')",
    )
    .await;
    until(
        &c,
        "the trend chart",
        "document.querySelector('#chart-trend canvas, #chart-trend svg')",
    )
    .await;
    let province_png = shot(&c, "province").await;

    // Drill down: the city, then the county.
    click(&c, &format!("#children tr[data-division=\"{city}\"]")).await;
    until(
        &c,
        "the city view",
        &format!("location.hash.includes('{city}') && document.body.dataset.ready === '1'"),
    )
    .await;
    click(&c, &format!("#children tr[data-division=\"{county}\"]")).await;
    until(
        &c,
        "the county view",
        &format!("location.hash.includes('{county}') && document.body.dataset.ready === '1'"),
    )
    .await;
    let crumbs = text(&c, "#breadcrumbs").await;
    assert!(
        crumbs.contains("省"),
        "breadcrumbs from the province: {crumbs:?}"
    );
    until(
        &c,
        "a chart at the county",
        "document.querySelector('#chart-trend canvas, #chart-trend svg')",
    )
    .await;
    // The county's tickets: the overdue one highlighted.
    until(
        &c,
        "an overdue ticket highlighted",
        "document.querySelector('#tickets tr.overdue')",
    )
    .await;
    let overdue_key = c
        .execute(
            "return document.querySelector('#tickets tr.overdue').dataset.key;",
            vec![],
        )
        .await
        .expect("overdue key");
    assert!(
        overdue_key
            .as_str()
            .is_some_and(|k| k.ends_with(&format!("DEMO-{county}-2"))),
        "the overdue ticket is the county's second: {overdue_key}"
    );
    shot(&c, "county").await;

    // English.
    click(&c, "#lang-en").await;
    until(&c, "English", "document.documentElement.lang === 'en'").await;
    ready(&c, "the county view in English").await;
    until(
        &c,
        "English indicator names",
        "document.body.innerText.toLowerCase().includes('monitored households')",
    )
    .await;
    shot(&c, "county-en").await;

    // Log in as a viewer; a viewer may not verify.
    let (viewer, _, password) = DEMO_ACCOUNTS[0];
    c.goto(&format!("http://{province}/")).await.expect("goto");
    ready(&c, "the province view again").await;
    c.find(Locator::Css("#login-name"))
        .await
        .expect("login form")
        .send_keys(viewer)
        .await
        .expect("name typed");
    c.find(Locator::Css("#login-password"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("password typed");
    click(&c, "#login-submit").await;
    until(
        &c,
        "logged in",
        &format!(
            "document.querySelector('#user-name') && document.querySelector('#user-name').innerText.includes('{viewer}')"
        ),
    )
    .await;
    ready(&c, "the view after login").await;
    until(
        &c,
        "the rectified ticket listed",
        &format!("document.querySelector('#tickets tr[data-key=\"{rectified}\"]')"),
    )
    .await;
    click(&c, &format!("#tickets tr[data-key=\"{rectified}\"]")).await;
    until(
        &c,
        "the ticket's detail",
        "document.querySelector('#ticket-detail #act-verify')",
    )
    .await;
    click(&c, "#ticket-detail #act-verify").await;
    until(
        &c,
        "the refusal shown",
        "document.querySelector('#act-error') && document.querySelector('#act-error').innerText.includes('may read but not act')",
    )
    .await;
    shot(&c, "viewer-refused").await;
    // Nothing changed: the ticket is still waiting for verification.
    assert_eq!(
        demo.province_ticket_state(&rectified).expect("state"),
        Some(bottomline::tickets::State::Rectified)
    );
    c.close().await.expect("browser closed");
    drop(driver);
    demo.stop().await.expect("demo stops");
    assert!(province_png.exists());
}
