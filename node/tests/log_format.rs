//! `log_format = "json"` (issue #17 point 4): a node writes one JSON object per log event,
//! which a log collector can read without parsing text.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_node_with_log_format_json_logs_json_objects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "division = \"610102\"\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\ninsecure = true\nlog_format = \"json\"\ncheck_secs = 0\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bottomline"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("BOTTOMLINE_LOG_FORMAT")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the node");
    let stderr = child.stderr.take().expect("stderr");
    // Read lines on a thread so that the test keeps its deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let running = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
                if v["fields"]["message"] == "node running" {
                    break v;
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no \"node running\" event within 30 s; the log said:\n{}",
                    seen.join("\n")
                );
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(running["level"], "INFO", "{running}");
    assert!(running["timestamp"].is_string(), "{running}");
    assert_eq!(running["fields"]["division"], "610102", "{running}");
    assert!(
        seen.iter().any(|l| l.contains("insecure")),
        "the insecure warning comes first, as JSON: {seen:?}"
    );
}
