//! The harness of `chaos_tree.rs`: a tree of real `bottomline serve` processes on addresses
//! fixed up front (so a node restarted from its data dir comes back where its children and
//! the test look for it), the generated data split into import parts, and the seeded random
//! choices of the chaos.

pub mod checks;
pub mod netns;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::common::procs::{Proc, BIN};

/// Last day of the generated data.
pub const END: &str = "2026-11-20";

/// The chaos seed: `CHAOS_SEED` when set (to replay a run), otherwise from the clock.
pub fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CHAOS_SEED={s:?} is not a number")),
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                % 1_000_000_007
        }
    }
}

/// A random duration in `[lo, hi]` milliseconds: a pause of the chaos itself, never a wait
/// for something to happen.
pub fn jitter(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..=hi))
}

/// Seconds since `t0`, for the chaos log.
pub fn at(t0: Instant) -> String {
    format!("[{:6.2}s]", t0.elapsed().as_secs_f64())
}

/// A port on `ip` that was free a moment ago, below the ephemeral range (so no outgoing
/// connection takes it while its node is down).
pub fn free_port(rng: &mut ChaCha8Rng, ip: &str) -> u16 {
    loop {
        let port = rng.random_range(20_000..32_000);
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// One node of the tree.
pub struct Node {
    /// Its division code.
    pub division: String,
    /// Its parent's index in [`Tree::nodes`].
    pub parent: Option<usize>,
    /// The address it listens on (and is dialled at).
    pub ip: String,
    pub port: u16,
    /// The network namespace it runs in (`None`: the test's own).
    pub netns: Option<String>,
    pub config: PathBuf,
    pub data: PathBuf,
}

impl Node {
    /// `http://ip:port`.
    pub fn addr(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// Province, city or county.
    pub fn level(&self) -> &'static str {
        match self.division.len() {
            2 => "province",
            4 => "city",
            _ => "county",
        }
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.level(), self.division)
    }
}

/// The processes of a tree: `nodes[0]` is the province, then the cities, then the counties.
pub struct Tree {
    pub nodes: Vec<Node>,
    /// The running process of each node (`None` while it is down).
    pub procs: Vec<Option<Proc>>,
    /// Every earlier process, killed or stopped, kept for its log.
    pub past: Vec<Proc>,
    /// Processes started per node.
    pub starts: Vec<u32>,
}

/// Where a node runs: its address and namespace.
pub struct Place {
    pub ip: String,
    pub port: u16,
    pub netns: Option<String>,
}

impl Tree {
    /// Lay out the province, `cities` and their counties under `dir`, each node placed by
    /// `place`, and write every config.
    pub fn layout(
        dir: &Path,
        province: &str,
        cities: &[(String, Vec<String>)],
        mut place: impl FnMut(&str) -> Place,
    ) -> Tree {
        let mut nodes = Vec::new();
        let mut push = |division: &str, parent: Option<usize>| {
            let p = place(division);
            nodes.push(Node {
                division: division.to_string(),
                parent,
                ip: p.ip,
                port: p.port,
                netns: p.netns,
                config: dir.join(format!("{division}.toml")),
                data: dir.join("nodes").join(division),
            });
            nodes.len() - 1
        };
        let top = push(province, None);
        let city_idx: Vec<usize> = cities.iter().map(|(c, _)| push(c, Some(top))).collect();
        for ((_, counties), ci) in cities.iter().zip(city_idx) {
            for c in counties {
                push(c, Some(ci));
            }
        }
        for n in &nodes {
            let parent = n
                .parent
                .map(|p| format!("parent = \"{}\"\n", nodes[p].addr()))
                .unwrap_or_default();
            let body = format!(
                "division = \"{}\"\ndata_dir = {:?}\ninsecure = true\nlisten = \"{}:{}\"\n\
                 {parent}check_secs = 2.0\n[sync]\nbatch_blocks = 20\nreconnect_secs = 0.05\n\
                 heartbeat_secs = 0.3\nconnect_timeout_secs = 2.0\n",
                n.division,
                n.data.display().to_string(),
                n.ip,
                n.port,
            );
            std::fs::write(&n.config, body).expect("write config");
        }
        let count = nodes.len();
        Tree {
            nodes,
            procs: (0..count).map(|_| None).collect(),
            past: Vec::new(),
            starts: vec![0; count],
        }
    }

    pub fn index(&self, division: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.division == division)
            .unwrap_or_else(|| panic!("no node {division}"))
    }

    pub fn addr_of(&self, division: &str) -> String {
        self.nodes[self.index(division)].addr()
    }

    /// Division → address, for the workload.
    pub fn addrs(&self) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .map(|n| (n.division.clone(), n.addr()))
            .collect()
    }

    /// Spawn node `i` (not waiting for it to listen).
    pub fn spawn(&mut self, i: usize) {
        assert!(
            self.procs[i].is_none(),
            "{} runs already",
            self.nodes[i].label()
        );
        self.starts[i] += 1;
        let n = &self.nodes[i];
        let name = format!("{} (process {})", n.label(), self.starts[i]);
        let p = match &n.netns {
            None => Proc::serve(&name, &n.config),
            Some(ns) => Proc::serve_in_netns(&name, &n.config, ns),
        };
        self.procs[i] = Some(p);
    }

    /// Wait until node `i` logged that it listens.
    pub async fn listening(&mut self, i: usize) {
        let p = self.procs[i].as_mut().expect("running");
        p.wait_for_line(&["listening", "addr="], 0).await;
    }

    /// Start every node and wait until each listens.
    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.spawn(i);
        }
        for i in 0..self.nodes.len() {
            self.listening(i).await;
        }
    }

    /// `kill -9` node `i`.
    pub fn kill9(&mut self, i: usize) {
        let mut p = self.procs[i].take().expect("running");
        p.kill9();
        self.past.push(p);
    }

    /// SIGTERM every node, children first; each must exit 0 after its ordered shutdown.
    pub async fn stop_all(&mut self) {
        for i in (0..self.nodes.len()).rev() {
            let Some(mut p) = self.procs[i].take() else {
                continue;
            };
            let st = p.terminate().await;
            assert!(st.success(), "{} exited with {st}", p.name);
            assert!(
                p.lines().iter().any(|l| l.contains("store flushed")),
                "{} logged its ordered shutdown",
                p.name
            );
            self.past.push(p);
        }
    }

    /// Every log line of every process (earlier ones too) containing `needle`, with the
    /// process named.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.past
            .iter()
            .chain(self.procs.iter().flatten())
            .flat_map(|p| {
                p.matching(&[needle])
                    .into_iter()
                    .map(move |l| format!("{}: {l}", p.name))
            })
            .collect()
    }
}

/// The generated data: every county's files, split into the parts its imports send.
pub struct Data {
    pub files: PathBuf,
    /// (city, its counties), as `bottomline gen` laid them out.
    pub cities: Vec<(String, Vec<String>)>,
    /// County → its parts in order, each a list of files.
    pub parts: BTreeMap<String, Vec<Vec<PathBuf>>>,
}

impl Data {
    pub fn counties(&self) -> Vec<String> {
        self.parts.keys().cloned().collect()
    }
}

/// `bottomline gen` a province `61` of `cities` cities and `counties` counties with
/// `households` each, and split each county's files into 4 imports: the registry with the
/// first half of the households; the second half with the monitoring rows; signals and
/// cases; measures.
pub fn generate(dir: &Path, seed: u64, cities: u32, counties: u32, households: u32) -> Data {
    let files = dir.join("files");
    let out = Command::new(BIN)
        .args(["gen", "--seed", &seed.to_string(), "--out"])
        .arg(&files)
        .args(["--cities", &cities.to_string()])
        .args(["--counties", &counties.to_string()])
        .args(["--households", &households.to_string(), "--end", END])
        .output()
        .expect("run bottomline gen");
    assert!(
        out.status.success(),
        "gen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&files)
        .expect("files")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), counties as usize, "{names:?}");
    let mut by_city: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &names {
        by_city
            .entry(c[..4].to_string())
            .or_default()
            .push(c.clone());
    }
    let mut parts = BTreeMap::new();
    for c in &names {
        let src = files.join(c);
        let part_dir = |k: usize| {
            let d = dir.join("parts").join(c).join(k.to_string());
            std::fs::create_dir_all(&d).expect("mkdir part");
            d
        };
        let copy = |k: usize, name: &str| {
            let to = part_dir(k).join(name);
            std::fs::copy(src.join(name), &to).expect("copy part");
            to
        };
        let text = std::fs::read_to_string(src.join("households.csv")).expect("households");
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        let rows: Vec<&str> = lines.collect();
        let (a, b) = rows.split_at(rows.len() / 2);
        let half = |k: usize, rows: &[&str]| {
            let to = part_dir(k).join("households.csv");
            let mut s = format!("{header}\n");
            for r in rows {
                s.push_str(r);
                s.push('\n');
            }
            std::fs::write(&to, s).expect("write part");
            to
        };
        let list = vec![
            vec![copy(0, "divisions.csv"), half(0, a)],
            vec![half(1, b), copy(1, "monitored.csv")],
            vec![copy(2, "signals.csv"), copy(2, "cases.csv")],
            vec![copy(3, "measures.csv")],
        ];
        parts.insert(c.clone(), list);
    }
    Data {
        files,
        cities: by_city.into_iter().collect(),
        parts,
    }
}
