//! `bottomline pki` as a person runs it: init a CA, issue a node, an operator and a relay,
//! list them (JSON), renew, revoke — the list shows it revoked and crl.pem names its serial.
//! Bad input is refused with a message saying what is wrong and a non-zero exit.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use bottomline::security::identity::serial_hex;

fn pki(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .arg("pki")
        .args(args)
        .env("BOTTOMLINE_PKI", dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bottomline")
}

/// Run and expect success; stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = pki(dir, args);
    assert!(
        out.status.success(),
        "bottomline pki {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Run and expect failure; stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = pki(dir, args);
    assert!(
        !out.status.success(),
        "bottomline pki {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

fn list(dir: &Path) -> Vec<serde_json::Value> {
    let text = ok(dir, &["list", "--format", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn find<'a>(rows: &'a [serde_json::Value], serial: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["serial"] == serial)
        .unwrap_or_else(|| panic!("serial {serial} not listed: {rows:?}"))
}

/// The serial printed by issue/renew ("… — serial X, valid until …").
fn serial_of(stdout: &str) -> String {
    let rest = stdout
        .split("serial ")
        .nth(1)
        .unwrap_or_else(|| panic!("no serial in {stdout}"));
    rest.split(',').next().unwrap().trim().to_string()
}

fn crl_serials(path: &Path) -> Vec<String> {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("crl.pem is PEM");
    assert_eq!(pem.label, "X509 CRL");
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).expect("crl.pem parses");
    crl.iter_revoked_certificates()
        .map(|r| serial_hex(r.raw_serial()))
        .collect()
}

#[test]
fn a_ca_issues_lists_renews_and_revokes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().canonicalize().unwrap().join("pki");
    let dir = d.to_str().unwrap();

    let out = ok(&d, &["init", "--dir", dir, "--name", "Shaanxi"]);
    assert!(out.contains("ca.pem") && out.contains("ca.key"), "{out}");
    let err = fails(&d, &["init", "--dir", dir]);
    assert!(err.contains("already holds a CA"), "{err}");

    // A node: the [tls] lines for its config.
    let out = ok(&d, &["issue", "--dir", dir, "--division", "610102"]);
    let node_serial = serial_of(&out);
    for line in [
        "[tls]",
        &format!("ca = \"{dir}/ca.pem\""),
        &format!("cert = \"{dir}/certs/node-610102.pem\""),
        &format!("key = \"{dir}/certs/node-610102.key\""),
        &format!("crl = \"{dir}/crl.pem\""),
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    let key_mode = std::fs::metadata(d.join("certs/node-610102.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // An operator: the CLI flags. --dir from the environment this time.
    let out = ok(
        &d,
        &[
            "issue",
            "--operator",
            "zhang.san",
            "--division",
            "6101",
            "--role",
            "viewer",
            "--days",
            "30",
        ],
    );
    let op_serial = serial_of(&out);
    assert!(
        out.contains(&format!(
            "--ca {dir}/ca.pem --cert {dir}/certs/operator-zhang.san.pem --key {dir}/certs/operator-zhang.san.key"
        )),
        "{out}"
    );

    let out = ok(
        &d,
        &[
            "issue",
            "--relay",
            "r1",
            "--dns",
            "relay.example.cn",
            "--ip",
            "10.1.2.3",
        ],
    );
    let relay_serial = serial_of(&out);

    let rows = list(&d);
    assert_eq!(rows.len(), 3);
    let node = find(&rows, &node_serial);
    assert_eq!(node["stem"], "node-610102");
    assert_eq!(node["kind"], "node");
    assert_eq!(node["division"], "610102");
    assert_eq!(node["state"], "valid");
    assert_eq!(node["dns"], serde_json::json!(["localhost"]));
    let op = find(&rows, &op_serial);
    assert_eq!(op["stem"], "operator-zhang.san");
    assert_eq!(op["kind"], "operator");
    assert_eq!(op["name"], "zhang.san");
    assert_eq!(op["division"], "6101");
    assert_eq!(op["role"], "viewer");
    assert_eq!(op["state"], "valid");
    let relay = find(&rows, &relay_serial);
    assert_eq!(relay["stem"], "relay-r1");
    assert_eq!(relay["kind"], "relay");
    assert_eq!(relay["division"], serde_json::Value::Null);
    assert_eq!(relay["ips"], serde_json::json!(["10.1.2.3"]));
    let table = ok(&d, &["list"]);
    assert!(
        table.contains("node-610102") && table.contains("viewer zhang.san of 6101"),
        "{table}"
    );

    // A second certificate for the same node is refused; renew makes one.
    let err = fails(&d, &["issue", "--division", "610102"]);
    assert!(
        err.contains("node-610102") && err.contains("renew") && err.contains(&node_serial),
        "{err}"
    );
    let out = ok(&d, &["renew", "610102", "--days", "90"]);
    let renewed = serial_of(&out);
    assert_ne!(renewed, node_serial);
    let rows = list(&d);
    assert_eq!(rows.len(), 4);
    assert_eq!(find(&rows, &renewed)["stem"], "node-610102");
    assert_eq!(find(&rows, &node_serial)["state"], "valid");
    // The renewed certificate keeps the relay's names.
    let out = ok(&d, &["renew", "relay-r1"]);
    let relay_renewed = serial_of(&out);
    assert_eq!(
        find(&list(&d), &relay_renewed)["dns"],
        serde_json::json!(["relay.example.cn"])
    );

    // Revoke the operator: listed revoked, in the CRL.
    assert!(crl_serials(&d.join("crl.pem")).is_empty());
    let out = ok(
        &d,
        &[
            "revoke",
            "operator-zhang.san",
            "--reason",
            "left the office",
        ],
    );
    assert!(out.contains(&op_serial), "{out}");
    assert!(out.contains("reload"), "{out}");
    let rows = list(&d);
    let op = find(&rows, &op_serial);
    assert_eq!(op["state"], "revoked");
    assert_eq!(op["reason"], "left the office");
    assert!(op["revoked"].is_string());
    assert_eq!(crl_serials(&d.join("crl.pem")), vec![op_serial.clone()]);
    // Again: nothing to do, and it says so.
    let out = ok(&d, &["revoke", &op_serial]);
    assert!(out.contains("already revoked"), "{out}");
    // One of the node's two certificates, by serial.
    ok(&d, &["revoke", &node_serial]);
    let mut crl = crl_serials(&d.join("crl.pem"));
    crl.sort();
    let mut want = vec![op_serial.clone(), node_serial.clone()];
    want.sort();
    assert_eq!(crl, want);
    assert_eq!(find(&list(&d), &renewed)["state"], "valid");

    // Re-signed with the same serials, a higher number and a later nextUpdate.
    let (number, next) = crl_dates(&d.join("crl.pem"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok(&d, &["refresh-crl"]);
    assert!(out.contains("2 revoked, fresh for 30 days"), "{out}");
    let mut again = crl_serials(&d.join("crl.pem"));
    again.sort();
    assert_eq!(again, want);
    let (number2, next2) = crl_dates(&d.join("crl.pem"));
    assert!(number2 > number, "{number2} after {number}");
    assert!(next2 > next, "{next2} after {next}");
}

/// The CRL's number and nextUpdate (Unix seconds).
fn crl_dates(path: &Path) -> (u64, i64) {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("crl.pem is PEM");
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).expect("crl.pem parses");
    let number = crl
        .crl_number()
        .expect("a CRL number")
        .to_string()
        .parse()
        .unwrap();
    (number, crl.next_update().expect("a nextUpdate").timestamp())
}

#[test]
fn bad_input_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().canonicalize().unwrap().join("pki");
    let dir = d.to_str().unwrap();

    // Before init.
    let err = fails(&d, &["issue", "--dir", dir, "--division", "610102"]);
    assert!(
        err.contains("no CA in") && err.contains("bottomline pki init --dir"),
        "{err}"
    );
    let err = fails(&d, &["list", "--dir", dir]);
    assert!(err.contains("no CA in"), "{err}");

    ok(&d, &["init", "--dir", dir]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "issue",
                "--operator",
                "a",
                "--division",
                "6101",
                "--role",
                "admin",
            ],
            "unknown role",
        ),
        (&["issue", "--division", "6100"], "6100"),
        (&["issue", "--division", "61x"], "digits"),
        (
            &["issue", "--operator", "a", "--division", "6101"],
            "--role",
        ),
        (
            &["issue", "--operator", "a", "--role", "viewer"],
            "--division",
        ),
        (
            &["issue", "--relay", "r1", "--division", "6101"],
            "--division",
        ),
        (&["issue", "--relay", "a b"], "bad name"),
        (&["issue"], "--division"),
        (
            &["issue", "--division", "610102", "--dns", "not a name"],
            "DNS name",
        ),
        (&["issue", "--division", "610102", "--ip", "10.0.0"], "--ip"),
        (
            &[
                "issue",
                "--operator",
                "a",
                "--division",
                "6101",
                "--role",
                "viewer",
                "--dns",
                "x.cn",
            ],
            "--dns",
        ),
        (&["renew", "nobody"], "no certificate \"nobody\""),
        (&["revoke", "node-610102"], "no certificate \"node-610102\""),
        (&["list", "--format", "xml"], "xml"),
    ];
    for (args, want) in cases {
        let err = fails(&d, args);
        assert!(
            err.contains(want),
            "bottomline pki {args:?}: want {want:?} in:\n{err}"
        );
    }
    // Nothing was issued by any of them.
    assert!(list(&d).is_empty());
}
