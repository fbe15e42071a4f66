//! Pieces shared by the multi-node benchmarks: in-process nodes on 127.0.0.1 (plaintext or
//! mTLS with a CA of the benchmark's own), percentiles, peak RSS.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::ledger::Ledger;
use bottomline::node::{self, NodeHandle};
use bottomline::security::pki::Pki;
use bottomline::security::Identity;
use jiff::civil::Date;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod procs;

/// The benchmarks' error type.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A node running in the benchmark's process.
pub struct Running {
    /// Its shared state.
    pub handle: NodeHandle,
    /// Where it listens.
    pub addr: Option<SocketAddr>,
    /// Whether it serves (and dials) over mTLS.
    pub tls: bool,
    /// Set to stop it.
    pub stop: watch::Sender<bool>,
    /// Its run task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The URL a child dials to reach it (`https://…` over mTLS, `http://…` in plaintext).
    pub fn url(&self) -> Res<String> {
        let addr = self.addr.ok_or("the node does not listen")?;
        let scheme = if self.tls { "https" } else { "http" };
        Ok(format!("{scheme}://{addr}"))
    }

    /// Stop it and wait for its ordered shutdown (store flushed); an unclean one is an error.
    pub async fn shutdown(self) -> Res<()> {
        let _ = self.stop.send(true);
        self.task.await?.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A node whose store is open and whose listener is bound, not yet running: what
/// [`Prepared::run`] starts (so a benchmark can time the run without the store's opening).
pub struct Prepared {
    config: Config,
    handle: NodeHandle,
    listener: Option<TcpListener>,
    tls: bool,
}

impl Prepared {
    /// Serve the dashboard and HTTP API too, on a free loopback port (the bound address is
    /// in `handle().http_addr` once running).
    pub fn with_http(mut self) -> Prepared {
        self.config.http_listen = Some(([127, 0, 0, 1], 0).into());
        self
    }

    /// Its shared state.
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// Start its run task.
    pub fn run(self) -> Running {
        let addr = self.listener.as_ref().and_then(|l| l.local_addr().ok());
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(node::run(
            self.config,
            self.handle.clone(),
            self.listener,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ));
        Running {
            handle: self.handle,
            addr,
            tls: self.tls,
            stop,
            task,
        }
    }
}

/// Start the node of `code` in plaintext with its data dir under `dir`, dialling `parent` if
/// given and listening on a free port if `listen`.
pub async fn start_node(
    dir: &Path,
    code: Code,
    parent: Option<String>,
    listen: bool,
) -> Res<Running> {
    start_node_with(dir, code, parent, listen, None).await
}

/// [`start_node`], over mTLS when `pki` names a CA directory (made there on first use, with
/// the node's certificate issued on first use): the node then serves only mTLS clients and
/// dials its parent (an `https://` URL) with its certificate.
pub async fn start_node_with(
    dir: &Path,
    code: Code,
    parent: Option<String>,
    listen: bool,
    pki: Option<&Path>,
) -> Res<Running> {
    Ok(prepare_node(dir, code, parent, listen, pki).await?.run())
}

/// The node of [`start_node_with`], opened and bound but not running.
pub async fn prepare_node(
    dir: &Path,
    code: Code,
    parent: Option<String>,
    listen: bool,
    pki: Option<&Path>,
) -> Res<Prepared> {
    let tls = pki.map(|pki| tls_files(pki, code)).transpose()?;
    let toml = node_toml(dir, code, parent.as_deref(), listen, tls.as_ref());
    let config = Config::parse(&toml)?;
    let handle = node::open(&config)?;
    let listener = if listen {
        Some(TcpListener::bind("127.0.0.1:0").await?)
    } else {
        None
    };
    Ok(Prepared {
        config,
        handle,
        listener,
        tls: pki.is_some(),
    })
}

/// The TLS files of node `code` from the CA in `pki` (CA and certificate made on first use).
pub fn tls_files(pki: &Path, code: Code) -> Res<bottomline::security::tls::TlsFiles> {
    let mut ca = Pki::open_or_init(pki, "Bottomline benchmark")?;
    Ok(ca.files_for(&Identity::Node { division: code })?)
}

/// The config of the benchmarks' node `code` (its store in `dir/<code>`, on 127.0.0.1 when
/// `listen`, mTLS with `tls` else plaintext, a 50 ms reconnect), as TOML.
pub fn node_toml(
    dir: &Path,
    code: Code,
    parent: Option<&str>,
    listen: bool,
    tls: Option<&bottomline::security::tls::TlsFiles>,
) -> String {
    // Top-level keys first: the [tls] and [sync] tables follow.
    let mut toml = format!(
        "division = \"{code}\"\ndata_dir = {:?}\n",
        dir.join(code.to_string()).display().to_string()
    );
    if let Some(p) = parent {
        toml.push_str(&format!("parent = \"{p}\"\n"));
    }
    if listen {
        toml.push_str("listen = \"127.0.0.1:0\"\n");
    }
    match tls {
        None => toml.push_str("insecure = true\n"),
        Some(files) => toml.push_str(&files.to_toml_section()),
    }
    toml.push_str("[sync]\nreconnect_secs = 0.05\n");
    toml
}

/// Import every county's generated files (`files/<county>/*.csv`) as of `today`, two at a
/// time (the machine has two cores), counting the rows into `records`.
pub fn import_all(
    ledgers: &[Arc<Ledger>],
    files: &Path,
    today: Date,
    records: &AtomicU64,
) -> Res<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| -> Res<()> {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Res<()> {
                    while let Some(l) = ledgers.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let paths: Vec<PathBuf> = bottomline::import::FILE_ORDER
                            .iter()
                            .map(|k| {
                                files
                                    .join(l.division().to_string())
                                    .join(format!("{k}.csv"))
                            })
                            .collect();
                        bottomline::import::import_files(
                            l,
                            &paths,
                            None,
                            today,
                            &mut |_| {},
                            &mut |r| {
                                records.fetch_add(r.rows, Ordering::SeqCst);
                            },
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "import thread panicked")??;
        }
        Ok(())
    })
}

/// The environment variable `name` parsed as a `T`, else `default` (the benchmarks' settings).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 107 counties of a Shaanxi-size tree: 10 cities of 10 or 11 counties.
pub fn shaanxi_counties() -> Vec<Code> {
    let mut out = Vec::new();
    for city in 1..=10u32 {
        let n = if city <= 7 { 11 } else { 10 };
        for county in 1..=n {
            out.push(Code::parse(&format!("61{city:02}{county:02}")).expect("county code"));
        }
    }
    out.truncate(107);
    out
}

/// The `p` quantile of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The process's peak resident set size in MiB (`VmHWM`), when the platform reports it.
pub fn peak_rss_mib() -> Option<f64> {
    proc_status_mib("VmHWM:")
}

/// The process's resident set size now in MiB (`VmRSS`), when the platform reports it.
pub fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The cells that travel up from one realistic county (610102, `bottomline gen` with `seed`,
/// events up to `end`, imported the next day), as the template of a Shaanxi-size province;
/// `households` 0 means realistic (~86 000). Generated and imported under `dir`.
pub fn county_template(
    dir: &Path,
    seed: u64,
    households: u32,
    end: Date,
) -> Res<std::collections::BTreeMap<bottomline::stats::CellKey, i64>> {
    let files = dir.join("files");
    bottomline::gen::generate(
        &bottomline::gen::GenOptions {
            seed,
            out: files.clone(),
            scope: bottomline::gen::GenScope::County("610102".into()),
            end,
            households_per_county: (households > 0).then_some(households),
        },
        &mut |_| {},
    )?;
    let county = Ledger::open_or_init(
        &dir.join("county"),
        Some(Code::parse("610102")?),
        &bottomline::store::StoreOptions::default(),
    )?;
    let paths: Vec<PathBuf> = bottomline::import::FILE_ORDER
        .iter()
        .map(|k| files.join("610102").join(format!("{k}.csv")))
        .collect();
    bottomline::import::import_files(
        &county,
        &paths,
        None,
        end.tomorrow()?,
        &mut |_| {},
        &mut |_| {},
    )?;
    Ok(county.upward_cells()?)
}

/// A Shaanxi-size province store at `dir/61`: the 107 counties of [`shaanxi_counties`] under
/// their 10 cities, each county's figures the template's scaled by a factor of its own
/// (0.80 … 1.20, so no two are alike) plus `extra(county, index)` cells of its own (e.g.
/// tickets), each city's replica (its counties and its sums) applied as the sync applies it,
/// with a registry naming every division. Returns each city's replica position.
pub fn shaanxi_province(
    dir: &Path,
    template: &std::collections::BTreeMap<bottomline::stats::CellKey, i64>,
    extra: &dyn Fn(Code, usize) -> Vec<(bottomline::stats::CellKey, i64)>,
) -> Res<std::collections::BTreeMap<Code, u64>> {
    use bottomline::cells::Replica;
    use bottomline::division::Division;
    use bottomline::stats::CellKey;
    use std::collections::BTreeMap;
    let prov = Ledger::open_or_init(
        &dir.join("61"),
        Some(Code::parse("61")?),
        &bottomline::store::StoreOptions::default(),
    )?;
    let mut divisions = vec![Division {
        code: Code::parse("61")?,
        name: "陕西省".into(),
    }];
    let mut by_city: BTreeMap<Code, Vec<Code>> = BTreeMap::new();
    for c in shaanxi_counties() {
        let city = c.parent().ok_or("a county has a city")?;
        by_city.entry(city).or_default().push(c);
    }
    for (city, cs) in &by_city {
        divisions.push(Division {
            code: *city,
            name: format!("{}市", &city.to_string()[2..]),
        });
        for c in cs {
            divisions.push(Division {
                code: *c,
                name: format!("{}县", &c.to_string()[2..]),
            });
        }
    }
    prov.put_divisions(&divisions)?;
    let mut positions = BTreeMap::new();
    let mut index = 0;
    for (i, (city, cs)) in by_city.iter().enumerate() {
        let mut own: BTreeMap<CellKey, i64> = BTreeMap::new();
        let mut sums: BTreeMap<CellKey, i64> = BTreeMap::new();
        for (j, c) in cs.iter().enumerate() {
            let scale = 80 + ((i * 11 + j) * 37 % 41) as i64;
            let cells = template
                .iter()
                .map(|(k, v)| (CellKey { division: *c, ..*k }, v * scale / 100))
                .chain(extra(*c, index));
            for (key, value) in cells {
                *own.entry(key).or_insert(0) += value;
                *sums
                    .entry(CellKey {
                        division: *city,
                        ..key
                    })
                    .or_insert(0) += value;
            }
            index += 1;
        }
        let cells: Vec<Replica> = own
            .into_iter()
            .chain(sums)
            .map(|(key, value)| Replica {
                key,
                value,
                version: 1,
            })
            .collect();
        let n = cells.len() as u64;
        for (b, chunk) in cells.chunks(4096).enumerate() {
            let pos = ((b + 1) * 4096).min(n as usize) as u64;
            prov.apply_replicas(*city, chunk, pos, pos)?;
        }
        positions.insert(*city, n);
    }
    Ok(positions)
}
