//! `bottomline report` and `bottomline assess` as a bureau runs them (issue #18 points 2 and
//! 3): the binary on a county's data dir writes the monthly notification of its towns as CSV
//! (UTF-8 with a BOM, Chinese headings and names), HTML and XLSX, prints the year's
//! assessment, and refuses a period of the wrong kind naming the argument.

mod common;

use std::process::Command;

fn bottomline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(args)
        .output()
        .expect("bottomline runs")
}

fn ok(args: &[&str]) -> String {
    let out = bottomline(args);
    assert!(
        out.status.success(),
        "bottomline {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_county_writes_its_notification_in_three_formats_and_its_assessment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    common::generate_county(&files, "610102", 4, 400);
    let data = tmp.path().join("county");
    {
        let ledger = bottomline::ledger::Ledger::open_or_init(
            &data,
            Some(common::code("610102")),
            &bottomline::store::StoreOptions::default(),
        )
        .expect("store");
        common::import_generated(&ledger, &files, "610102", jiff::civil::date(2026, 11, 24));
        let registry = ledger.registry();
        assert!(registry.children(common::code("610102")).count() > 1);
    }
    let d = data.to_str().expect("utf-8 path");
    let out = |name: &str| tmp.path().join(name);
    let csv = out("notification.csv");
    let csv_s = csv.to_str().expect("path");
    ok(&[
        "report",
        "--data",
        d,
        "--kind",
        "monthly",
        "--period",
        "2026-10",
        "--as-of",
        "2026-11-24",
        "--format",
        "csv",
        "--out",
        csv_s,
    ]);
    let bytes = std::fs::read(&csv).expect("csv written");
    assert!(
        bytes.starts_with(&[0xEF, 0xBB, 0xBF]),
        "a BOM for Excel and WPS"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    assert!(text.contains("15日内认定率"), "{text}");
    // Every town of the county by its Chinese name.
    let ledger_names: Vec<String> = {
        let ledger =
            bottomline::ledger::Ledger::open(&data, &bottomline::store::StoreOptions::default())
                .expect("store");
        let registry = ledger.registry();
        registry
            .children(common::code("610102"))
            .map(|t| t.name.clone())
            .collect()
    };
    for name in &ledger_names {
        assert!(text.contains(name.as_str()), "{name} in the notification");
    }
    assert!(text.contains("表扬") || text.contains("批评"), "{text}");

    let html = out("notification.html");
    ok(&[
        "report",
        "--data",
        d,
        "--kind",
        "monthly",
        "--period",
        "2026-10",
        "--as-of",
        "2026-11-24",
        "--format",
        "html",
        "--out",
        html.to_str().expect("path"),
    ]);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<html") && page.contains(&ledger_names[0]));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );

    let xlsx = out("notification.xlsx");
    ok(&[
        "report",
        "--data",
        d,
        "--kind",
        "monthly",
        "--period",
        "2026-10",
        "--as-of",
        "2026-11-24",
        "--format",
        "xlsx",
        "--out",
        xlsx.to_str().expect("path"),
    ]);
    let book = std::fs::read(&xlsx).expect("xlsx written");
    assert!(book.starts_with(b"PK"), "an XLSX is a zip file");

    let printed = ok(&[
        "assess",
        "--data",
        d,
        "--year",
        "2026",
        "--as-of",
        "2026-11-24",
    ]);
    assert!(printed.contains(&ledger_names[0]), "{printed}");

    // A period of the wrong kind: refused, naming the argument; nothing written.
    let wrong = out("wrong.csv");
    let bad = bottomline(&[
        "report",
        "--data",
        d,
        "--kind",
        "monthly",
        "--period",
        "2026-W44",
        "--format",
        "csv",
        "--out",
        wrong.to_str().expect("path"),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--period") || err.contains("period"), "{err}");
    assert!(!wrong.exists());
}
