//! Issue #16 point 4: every node checks itself — a county against its records, a parent
//! against its children's replicas — in the background (shown in `status`) and with
//! `bottomline check` on a stopped node's data dir.

mod common;

use common::{eventually_async, Running};

const SYNC: &str = "reconnect_secs = 0.05\n";

async fn start(dir: &std::path::Path, division: &str, parent: Option<&str>) -> Running {
    common::start_with_top(dir, division, parent, true, SYNC, "check_secs = 0.2\n").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_level_checks_itself_in_the_background_and_on_demand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = dir.join("files");
    common::generate_county(&files, "610102", 7, 150);
    common::generate_county(&files, "610103", 8, 150);
    let province = start(dir, "61", None).await;
    let city = start(dir, "6101", province.addr.as_deref()).await;
    let a = start(dir, "610102", city.addr.as_deref()).await;
    let b = start(dir, "610103", city.addr.as_deref()).await;
    let today = jiff::civil::date(2026, 11, 20);
    common::import_generated(a.ledger(), &files, "610102", today);
    common::import_generated(b.ledger(), &files, "610103", today);
    let (ha, hb) = (a.ledger().durable_seq(), b.ledger().durable_seq());
    eventually_async("the city holds both counties", || async {
        city.ledger()
            .child_acked(common::code("610102"))
            .unwrap_or(0)
            >= ha
            && city
                .ledger()
                .child_acked(common::code("610103"))
                .unwrap_or(0)
                >= hb
    })
    .await;
    for (n, what) in [(&city, "children"), (&a, "records")] {
        let addr = n.addr.clone().expect("addr");
        eventually_async("a self-check ran after the data arrived", || async {
            let st = bottomline::rpc::fetch_status(&addr, None)
                .await
                .expect("status");
            st.self_check
                .is_some_and(|c| c.ok && c.cells > 0 && c.what.contains(what))
        })
        .await;
    }
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["status", "--addr", city.addr.as_deref().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("self-check: ok"), "{text}");
    let city_dir = city.ledger().store().path().to_owned();
    common::stop(b).await;
    common::stop(a).await;
    common::stop(city).await;
    common::stop(province).await;
    // On demand, on the stopped city's data dir.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["check", "--data"])
        .arg(&city_dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("ok: ") && text.contains("sum of its 2 children"),
        "{text}"
    );
}
