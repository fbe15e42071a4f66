//! deploy/compose.yaml and deploy/Containerfile as the tests read them: the compose file as
//! JSON (through python3 and PyYAML, which resolves its `<<: *node` merges) and what a
//! service's volumes are. Shared by `deploy_files` (the files agree with each other) and
//! `compose_tree` (the tree they declare runs).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's `deploy/`.
pub fn deploy() -> PathBuf {
    root().join("deploy")
}

/// A file's text; a missing file fails the test.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// deploy/compose.yaml as JSON, or why it cannot be read here (python3 or PyYAML missing:
/// the caller prints it as a SKIP). A YAML syntax error fails.
pub fn compose_yaml() -> Result<Value, String> {
    let path = deploy().join("compose.yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&path)
        .output()
        .map_err(|e| format!("the compose file's checks need python3 ({e})"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'yaml'") {
        return Err("the compose file's checks need PyYAML (pip install pyyaml)".into());
    }
    assert!(out.status.success(), "{}: {stderr}", path.display());
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// A list of strings (absent: empty).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A service's volumes: (source, target, read-only).
pub fn mounts(svc: &Value) -> Vec<(String, String, bool)> {
    strings(&svc["volumes"])
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            assert!(parts.len() >= 2, "volume {v}");
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts.get(2) == Some(&"ro"),
            )
        })
        .collect()
}

/// Whether a volume source is a named volume (not a path on the host).
pub fn named(source: &str) -> bool {
    !source.starts_with('.') && !source.starts_with('/')
}
