//! What the footprint benchmark's parts share, and the soak benchmark with them: the
//! settings from the environment, the run's context (binary, temp dir, generated data, the
//! CA and an operator's client certificate), the headline figures, the deployment samples'
//! `cache_mib`, and the report's head (the commit, the machine).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::security::pki::Pki;
use bottomline::security::tls::{ClientTls, TlsFiles};
use bottomline::security::Identity;
use serde_json::{json, Value};

use crate::common::Res;
use crate::procs;

/// sled's page cache (MiB) of a level's node (`province`, `city`, `county`): its
/// `cache_mib` in the deployment sample `deploy/<level>.toml`, else the default.
pub fn cache_mib(level: &str) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(format!("{level}.toml"));
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("cache_mib")?.as_integer())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(bottomline::store::DEFAULT_CACHE_MIB)
}

/// What the run does, from the environment.
pub struct Settings {
    /// Households per county; `None` = realistic.
    pub households: Option<u32>,
    pub counties: u32,
    pub cities: u32,
    pub import: bool,
    pub serve: bool,
    pub tree: bool,
    /// Where generated sets are kept (`BENCH_DATA`), else the temp dir.
    pub data: Option<PathBuf>,
    pub import_jobs: usize,
    pub settle: Duration,
    pub poll: Duration,
    pub sample: Duration,
    pub check_secs: Option<f64>,
    pub deadline: Duration,
    pub keep: bool,
}

/// The environment variable `name` parsed as a `T` (surrounding blanks ignored), if set.
pub fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Settings {
    /// The footprint benchmark's settings: the parts from `BENCH_PARTS`.
    pub fn from_env() -> Res<Settings> {
        let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "import,serve,tree".into());
        let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
        if let Some(p) = parts
            .iter()
            .find(|p| !["import", "serve", "tree"].contains(p))
        {
            return Err(format!("BENCH_PARTS: unknown part {p:?} (import, serve, tree)").into());
        }
        Ok(Settings::with_parts(
            parts.contains(&"import"),
            parts.contains(&"serve"),
            parts.contains(&"tree"),
        ))
    }

    /// The settings of the environment with the parts given.
    pub fn with_parts(import: bool, serve: bool, tree: bool) -> Settings {
        let counties = env_num("BENCH_COUNTIES").unwrap_or(107u32).max(1);
        Settings {
            households: env_num("BENCH_HOUSEHOLDS").filter(|h: &u32| *h > 0),
            counties,
            cities: counties.min(10),
            import,
            serve,
            tree,
            data: std::env::var_os("BENCH_DATA").map(PathBuf::from),
            import_jobs: env_num("BENCH_IMPORT_JOBS").unwrap_or(2usize).max(1),
            settle: Duration::from_secs_f64(env_num("BENCH_SETTLE_S").unwrap_or(10.0)),
            poll: Duration::from_millis(env_num("BENCH_POLL_MS").unwrap_or(500u64).max(10)),
            sample: Duration::from_millis(env_num("BENCH_SAMPLE_MS").unwrap_or(200u64).max(10)),
            check_secs: env_num("BENCH_CHECK_SECS"),
            deadline: Duration::from_secs_f64(env_num("BENCH_DEADLINE_S").unwrap_or(1800.0)),
            keep: std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1"),
        }
    }

    /// How a generated set's directory names its household count.
    pub fn households_tag(&self) -> String {
        self.households
            .map_or_else(|| "realistic".into(), |h| h.to_string())
    }
}

/// What every part uses.
pub struct Ctx {
    pub s: Settings,
    pub bin: PathBuf,
    /// The run's temp dir: stores, configs, node logs.
    pub tmp: PathBuf,
    /// CLI runs' stdout and stderr.
    pub logs: PathBuf,
    /// Where generated sets are.
    pub data: PathBuf,
    pki: Pki,
    /// The certificate of the benchmark's own calls (an operator's).
    pub client_tls: ClientTls,
}

impl Ctx {
    /// The context of a run in `tmp`: its `logs/`, the generated sets in `BENCH_DATA` or
    /// `tmp/gen`, a CA in `tmp/pki` named `ca_name`, and `operator`'s client certificate.
    pub fn open(
        s: Settings,
        bin: PathBuf,
        tmp: &Path,
        ca_name: &str,
        operator: &Identity,
    ) -> Res<Ctx> {
        let logs = tmp.join("logs");
        std::fs::create_dir_all(&logs)?;
        let data = s.data.clone().unwrap_or_else(|| tmp.join("gen"));
        std::fs::create_dir_all(&data)?;
        let mut pki = Pki::open_or_init(&tmp.join("pki"), ca_name)?;
        let client_tls = ClientTls::load(&pki.files_for(operator)?)?;
        Ok(Ctx {
            s,
            bin,
            tmp: tmp.to_path_buf(),
            logs,
            data,
            pki,
            client_tls,
        })
    }

    /// The certificate files of the node of `code`.
    pub fn node_tls(&mut self, code: Code) -> Res<TlsFiles> {
        Ok(self.pki.files_for(&Identity::Node { division: code })?)
    }
}

/// The headline figures, each with its target (a maximum) when the issue gives one.
#[derive(Default)]
pub struct Figures(Vec<(String, Option<f64>, Option<f64>, &'static str)>);

impl Figures {
    pub fn add(&mut self, name: &str, value: Option<f64>, target: Option<f64>, unit: &'static str) {
        let value = value.map(|v| (v * 100.0).round() / 100.0);
        self.0.push((name.to_string(), value, target, unit));
    }

    pub fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (name, value, target, unit) in &self.0 {
            let met = match (value, target) {
                (Some(v), Some(t)) => json!(v <= t),
                _ => Value::Null,
            };
            m.insert(
                name.clone(),
                json!({"value": value, "target_max": target, "met": met, "unit": unit}),
            );
        }
        Value::Object(m)
    }

    pub fn print(&self) {
        eprintln!("\nfootprint figures:");
        for (name, value, target, unit) in &self.0 {
            let v = value.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"));
            let t = match (value, target) {
                (Some(v), Some(t)) => {
                    format!("[≤ {t}] {}", if v <= t { "met" } else { "MISSED" })
                }
                (None, Some(t)) => format!("[≤ {t}] not measured"),
                _ => String::new(),
            };
            eprintln!("  {name:<46} {v:>9} {unit:<6} {t}");
        }
    }
}

/// The commit the benchmark was built from and the files changed since (`git`, if there).
pub fn code_state() -> Value {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let changed =
        git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| s.lines().count());
    json!({"commit": git(&["rev-parse", "--short", "HEAD"]), "files_changed": changed})
}

/// Load average and memory of the machine (`/proc`), for the report's head.
pub fn machine() -> Value {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib / 1024);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_total_mib": total,
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Memory figures as JSON, in MiB.
pub fn mem_json(m: Option<procs::Mem>) -> Value {
    let r = |kib: u64| round1(procs::mib(kib));
    match m {
        Some(m) => json!({
            "vm_rss_mib": r(m.rss),
            "vm_hwm_mib": r(m.hwm),
            "rss_anon_mib": r(m.anon),
            "rss_file_mib": r(m.file),
        }),
        None => Value::Null,
    }
}

/// `v` rounded to 0.1.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A path as text, for the report.
pub fn dir_of(p: &Path) -> String {
    p.display().to_string()
}
