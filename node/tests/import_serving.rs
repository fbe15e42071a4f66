//! Issue #16 point 1: a county takes files while it serves — through its inbox directory and
//! through `bottomline import --addr` — and the changed figures reach the province; a bad file
//! is rejected with a report naming line, field and reason and changes nothing; parents take
//! no record files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bottomline::division::Code;
use bottomline::ledger::Ledger;
use bottomline::period::Period;
use bottomline::security::tls::{ClientTls, TlsFiles};
use bottomline::security::{Identity, Role};
use common::{eventually, Running};

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.2\n";

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn person(dir: &Path, name: &str, division: &str, role: Role) -> TlsFiles {
    common::tls_files(
        dir,
        &Identity::Operator {
            name: name.into(),
            division: c(division),
            role,
        },
    )
}

/// The county's figures for 2026, and the province's copy of them, are the same.
fn province_holds(province: &Ledger, county: &Ledger) -> bool {
    let p = Period::parse("2026").expect("period");
    province.indicators(c("610102"), p).ok() == county.indicators(c("610102"), p).ok()
}

fn count(l: &Ledger, indicator: &str) -> i64 {
    let p = Period::parse("2026").expect("period");
    l.indicators(c("610102"), p)
        .expect("indicators")
        .count(indicator, "total")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Drop `files` into `inbox` the way a writer should: under a temporary name, then renamed.
fn drop_into(inbox: &Path, files: &[PathBuf]) {
    for f in files {
        let name = f.file_name().expect("name");
        let part = inbox.join(format!("{}.part", name.to_string_lossy()));
        std::fs::copy(f, &part).expect("copy");
        std::fs::rename(&part, inbox.join(name)).expect("rename");
    }
}

async fn tree(dir: &Path, inbox: &Path) -> (Running, Running, Running) {
    let province = common::start_secure(dir, "61", None, true, SYNC).await;
    let p = province.addr.clone().expect("addr");
    let city = common::start_secure(dir, "6101", Some(&p), true, SYNC).await;
    let top = format!(
        "inbox = {:?}\ninbox_poll_secs = 0.05\n",
        inbox.display().to_string()
    );
    let county =
        common::start_secure_with(dir, "610102", city.addr.as_deref(), true, SYNC, &top).await;
    eventually("the node made its inbox", || {
        inbox.join("rejected").is_dir()
    })
    .await;
    (province, city, county)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_county_imports_its_inbox_and_the_province_moves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = dir.join("files");
    common::generate_county(&files, "610102", 7, 300);
    let inbox = dir.join("inbox");
    let (province, city, county) = tree(dir, &inbox).await;
    let (prov, cl) = (province.ledger(), county.ledger());
    let f = |name: &str| files.join("610102").join(name);

    // The registry and the households, then a day's events: each set is imported while the
    // node serves, filed under done/, and the province follows.
    drop_into(
        &inbox,
        &[f("divisions.csv"), f("households.csv"), f("monitored.csv")],
    );
    eventually("the first files are imported and filed", || {
        names_in(&inbox.join("done")).len() == 3
    })
    .await;
    assert!(count(cl, "monitored_households") > 0);
    eventually("the province holds the county's figures", || {
        province_holds(prov, cl)
    })
    .await;
    let signals_before = count(prov, "signals");
    drop_into(
        &inbox,
        &[f("signals.csv"), f("cases.csv"), f("measures.csv")],
    );
    eventually("the day's events are imported and filed", || {
        names_in(&inbox.join("done")).len() == 6
    })
    .await;
    assert!(count(cl, "signals") > signals_before);
    eventually("the province's figures move with them", || {
        province_holds(prov, cl) && count(prov, "signals") > signals_before
    })
    .await;
    assert!(names_in(&inbox).is_empty(), "the inbox is empty");
    assert!(names_in(&inbox.join("rejected")).is_empty());

    // A bad file: rejected with a report naming the line and the field; nothing changes.
    let cells = cl.all_cells().expect("cells");
    let good = std::fs::read_to_string(f("households.csv")).expect("read");
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let mut cols: Vec<&str> = lines[2].split(',').collect();
    cols[2] = "two";
    lines[2] = cols.join(",");
    lines.push("6101020010010999,610102001001,3,0,1000.00,王五,610102198001011234".to_string());
    let bad = dir.join("households.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    drop_into(
        &inbox,
        &[bad, dir.join("notes.txt")].map(|p| {
            if !p.exists() {
                std::fs::write(&p, "not an interchange file").expect("write");
            }
            p
        }),
    );
    eventually("both files are rejected", || {
        names_in(&inbox.join("rejected")).len() == 4
    })
    .await;
    let rejected = names_in(&inbox.join("rejected"));
    let report_of = |stem: &str| {
        let r = rejected
            .iter()
            .find(|n| n.ends_with(&format!("{stem}.report.txt")))
            .unwrap_or_else(|| panic!("no report for {stem}: {rejected:?}"));
        std::fs::read_to_string(inbox.join("rejected").join(r)).expect("report")
    };
    let report = report_of("households.csv");
    println!("{report}");
    assert!(report.contains("line 3, field members"), "{report}");
    assert!(report.contains("id_number"), "{report}");
    assert!(report.contains("nothing of it was imported"), "{report}");
    assert!(report_of("notes.txt").contains("cannot tell what the file holds"));
    assert_eq!(cl.all_cells().expect("cells"), cells, "nothing changed");
    assert!(names_in(&inbox).is_empty());

    common::stop(county).await;
    common::stop(city).await;
    common::stop(province).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_addr_sends_files_to_a_serving_county_as_the_certificate_allows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = dir.join("files");
    common::generate_county(&files, "610102", 7, 200);
    let inbox = dir.join("inbox");
    let (province, city, county) = tree(dir, &inbox).await;
    let url = county.addr.clone().expect("county listens");
    let all = common::county_files(&files, "610102");

    // The CLI, as a script runs it, with an operator of the county.
    let op = person(dir, "clerk", "610102", Role::Operator);
    let out = Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["import", "--addr", &url])
        .arg("--ca")
        .arg(&op.ca)
        .arg("--cert")
        .arg(&op.cert)
        .arg("--key")
        .arg(&op.key)
        .args(&all)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bottomline import --addr");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("households.csv: 200 rows: 200 new"),
        "{stdout}"
    );
    let cl = county.ledger();
    assert!(count(cl, "monitored_households") > 0);
    eventually("the province holds the county's figures", || {
        province_holds(province.ledger(), cl)
    })
    .await;

    // Again: nothing new.
    let tls = ClientTls::load(&op).expect("tls");
    let r = bottomline::rpc::import_files(&url, Some(&tls), &all)
        .await
        .expect("import");
    assert!(r.rejected.is_none());
    assert!(r
        .imported
        .iter()
        .all(|f| f.inserted == 0 && f.corrected == 0));

    // A bad file: the reply names it, its line and field; the CLI exits non-zero.
    let bad = dir.join("bad").join("signals.csv");
    std::fs::create_dir_all(bad.parent().unwrap()).expect("dir");
    let text = std::fs::read_to_string(files.join("610102").join("signals.csv")).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    let broken = lines[1].replacen("2026-", "2026/", 1);
    lines[1] = &broken;
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    let cells = cl.all_cells().expect("cells");
    let r = bottomline::rpc::import_files(&url, Some(&tls), std::slice::from_ref(&bad))
        .await
        .expect("import call");
    let (file, error) = r.rejected.expect("rejected");
    assert_eq!(file, "signals.csv");
    assert!(error.contains("line 2, field"), "{error}");
    assert_eq!(cl.all_cells().expect("cells"), cells);

    // A viewer may not import; an operator of another county may not; a city takes no
    // record files.
    for (who, files) in [
        ("viewer", person(dir, "v", "610102", Role::Viewer)),
        ("another county", person(dir, "o", "610103", Role::Operator)),
    ] {
        let tls = ClientTls::load(&files).expect("tls");
        let e = bottomline::rpc::import_files(&url, Some(&tls), &all)
            .await
            .expect_err(who);
        assert!(
            e.to_string().contains("PermissionDenied") || e.to_string().contains("may"),
            "{who}: {e}"
        );
    }
    let city_op = person(dir, "city.op", "6101", Role::Operator);
    let tls = ClientTls::load(&city_op).expect("tls");
    let e = bottomline::rpc::import_files(city.addr.as_deref().unwrap(), Some(&tls), &all)
        .await
        .expect_err("a city takes no records");
    assert!(
        e.to_string().contains("county node that serves them"),
        "{e}"
    );
    assert_eq!(cl.all_cells().expect("cells"), cells);

    common::stop(county).await;
    common::stop(city).await;
    common::stop(province).await;
}
