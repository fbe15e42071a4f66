//! `bottomline demo`: a whole hierarchy on one machine.
//!
//! Generates a province (default 2 cities, 4 counties; Shaanxi size with `--cities 10
//! --counties 107`), starts every node in this process — the province and the cities listen
//! on 127.0.0.1, the counties only dial their city, exactly as `serve` would run them —
//! imports each county's files while the tree runs, waits until the province holds every
//! county's statistics, issues a small ticket inventory ([`DEMO_INVENTORY`]: two tickets per
//! county, one of them past its deadline) and waits until every county holds its tickets,
//! has the first county rectify one of them (in process: the counties have no API of their
//! own here), prints what to open and run, and stays up until the shutdown future resolves
//! (Ctrl-C). The node configs it uses are written to `DIR/configs/*.toml`, so any
//! node can later be run on its own with `bottomline serve --config`.
//!
//! Running again on the same directory reopens the nodes: the files are regenerated
//! byte-identically and re-importing them changes nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::division::{Code, Division};
use crate::gen::{GenOptions, GenScope};
use crate::ledger::{Act, Ledger};
use crate::node::{self, NodeHandle};
use crate::period::{Kind, Period};
use crate::security::pki::Pki;
use crate::security::tls::TlsFiles;
use crate::security::{Identity, Role};
use crate::tickets::{Severity, State, Ticket, TicketKey, TicketSource};

/// The inventory the demo's tickets belong to.
pub const DEMO_INVENTORY: &str = "demo";

/// The demo's ticket inventory: from the province to every county, `DEMO-{county}-1` due in
/// 10 days and `DEMO-{county}-2` due 3 days before `today` (so it is overdue).
pub fn demo_tickets(province: Code, counties: &[Code], today: Date) -> Vec<Ticket> {
    let day = |n: i64| {
        today
            .checked_add(jiff::Span::new().days(n))
            .unwrap_or(today)
    };
    counties
        .iter()
        .flat_map(|&county| {
            [
                Ticket {
                    issuer: province,
                    id: format!("DEMO-{county}-1"),
                    target: county,
                    category: "housing safety".into(),
                    source: TicketSource::Inspection,
                    severity: Severity::High,
                    deadline: day(10),
                    description: "a monitored household's roof leaks".into(),
                    household_code: None,
                    parent: None,
                    inventory: Some(DEMO_INVENTORY.into()),
                    spot_check: None,
                },
                Ticket {
                    issuer: province,
                    id: format!("DEMO-{county}-2"),
                    target: county,
                    category: "medical insurance".into(),
                    source: TicketSource::SpotCheck,
                    severity: Severity::Medium,
                    deadline: day(-3),
                    description: "two persons of a monitored household are not insured".into(),
                    household_code: None,
                    parent: None,
                    inventory: Some(DEMO_INVENTORY.into()),
                    spot_check: None,
                },
            ]
        })
        .collect()
}

/// What to start.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where files, configs and data dirs go.
    pub dir: PathBuf,
    /// Cities.
    pub cities: u32,
    /// Counties, spread over the cities.
    pub counties: u32,
    /// Households per county (None: realistic, ~65 000).
    pub households: Option<u32>,
    /// Generator seed.
    pub seed: u64,
    /// Port of the province; cities take the next ones. 0: any free ports.
    pub port: u16,
    /// "Today" (the last day of generated data and the validation date).
    pub today: Date,
    /// Parallel county imports.
    pub import_threads: usize,
    /// Dashboard port of the province (on 127.0.0.1); the cities and counties take the
    /// next ones. 0: any free ports.
    pub http_port: u16,
}

/// A node of the running demo.
pub struct DemoNode {
    /// Its config (as written to `configs/`).
    pub config: Config,
    /// Its shared state.
    pub handle: NodeHandle,
    /// Where it listens (province and cities).
    pub addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A running demo hierarchy.
pub struct Demo {
    /// Province first, then the cities, then the counties.
    pub nodes: Vec<DemoNode>,
    stop: watch::Sender<bool>,
    /// Counties generated.
    pub counties: Vec<Code>,
    /// The certificate files of the province operator the demo prints commands for.
    pub operator: TlsFiles,
}

impl DemoNode {
    /// Where its dashboard listens.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.handle.http_addr.get().copied()
    }
}

impl Demo {
    /// The province node.
    pub fn province(&self) -> &DemoNode {
        &self.nodes[0]
    }

    /// The node serving `code`.
    pub fn node(&self, code: Code) -> Option<&DemoNode> {
        self.nodes.iter().find(|n| n.config.division == code)
    }

    /// Nodes whose parent has not yet made their whole change log durable.
    pub fn behind(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for node in &self.nodes {
            let Some(parent) = node.config.division.parent().and_then(|p| self.node(p)) else {
                continue;
            };
            if parent.handle.ledger.child_acked(node.config.division)?
                < node.handle.ledger.durable_seq()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// True when every node's parent has made the node's whole change log durable.
    pub fn converged(&self) -> anyhow::Result<bool> {
        Ok(self.behind()? == 0)
    }

    /// Issue the demo inventory ([`demo_tickets`]) at the province; tickets it already holds
    /// (the demo run again, maybe on a later day) are kept as they are. Returns the keys of
    /// every demo ticket.
    pub async fn issue_tickets(&self, today: Date) -> anyhow::Result<Vec<TicketKey>> {
        let ledger = self.province().handle.ledger.clone();
        let tickets = demo_tickets(ledger.division(), &self.counties, today);
        tokio::task::spawn_blocking(move || {
            let keys: Vec<TicketKey> = tickets.iter().map(Ticket::key).collect();
            let mut new = Vec::new();
            for t in tickets {
                if ledger.ticket(&t.key())?.is_none() {
                    new.push(t);
                }
            }
            if !new.is_empty() {
                ledger.issue_tickets(ledger.division(), new)?;
            }
            Ok(keys)
        })
        .await?
    }

    /// The tickets of `keys` that the node serving their target does not hold as delivered
    /// (or further) yet.
    pub fn tickets_undelivered(&self, keys: &[TicketKey]) -> anyhow::Result<usize> {
        let mut n = 0;
        for k in keys {
            let Some(node) = self.tickets_target(k)?.and_then(|t| self.node(t)) else {
                n += 1;
                continue;
            };
            if node
                .handle
                .ledger
                .ticket(k)?
                .is_none_or(|s| s.state == State::Issued)
            {
                n += 1;
            }
        }
        Ok(n)
    }

    fn tickets_target(&self, key: &TicketKey) -> anyhow::Result<Option<Code>> {
        Ok(self
            .province()
            .handle
            .ledger
            .ticket(key)?
            .map(|s| s.ticket.target))
    }

    /// Take ticket `key` at its target's node through accept, start and rectify (as far as it
    /// has not gone yet), as the county would through its API: the demo's counties only dial.
    pub async fn rectify_at_target(&self, key: &TicketKey) -> anyhow::Result<()> {
        let target = self
            .tickets_target(key)?
            .ok_or_else(|| anyhow::anyhow!("the province holds no ticket {key}"))?;
        let ledger = self
            .node(target)
            .ok_or_else(|| anyhow::anyhow!("no node serves {target}"))?
            .handle
            .ledger
            .clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || loop {
            let state = ledger
                .ticket(&key)?
                .ok_or_else(|| anyhow::anyhow!("{target} holds no ticket {key}"))?
                .state;
            let act = match state {
                State::Issued => anyhow::bail!("{key} is not delivered at {target} yet"),
                State::Delivered => Act::Accept,
                State::Accepted => Act::Start,
                State::Rectifying => Act::Rectify {
                    note: "roof repaired by the village team; photos attached".into(),
                },
                State::Rectified | State::Closed => return Ok(()),
            };
            ledger.act_on_tickets(target, std::slice::from_ref(&key), &act)?;
        })
        .await?
    }

    /// The state of ticket `key` at the province.
    pub fn province_ticket_state(&self, key: &TicketKey) -> anyhow::Result<Option<State>> {
        Ok(self.province().handle.ledger.ticket(key)?.map(|s| s.state))
    }

    /// Stop every node in order and wait for each to flush.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for n in self.nodes.into_iter().rev() {
            n.task.await??;
        }
        Ok(())
    }
}

fn toml_config(
    division: Code,
    data_dir: &Path,
    listen: Option<SocketAddr>,
    http_listen: SocketAddr,
    parent: Option<&str>,
    cache_mib: u64,
    tls: &TlsFiles,
) -> String {
    let mut t = format!(
        "# Written by `bottomline demo`.\ndivision = \"{division}\"\ndata_dir = {:?}\ncache_mib = {cache_mib}\n",
        data_dir.display().to_string()
    );
    if let Some(l) = listen {
        t.push_str(&format!("listen = \"{l}\"\n"));
    }
    if let Some(p) = parent {
        t.push_str(&format!("parent = \"{p}\"\n"));
    }
    t.push_str(&format!("http_listen = \"{http_listen}\"\n"));
    t.push_str("\n[sync]\nreconnect_secs = 0.2\nheartbeat_secs = 2.0\nsilent_child_secs = 30\n");
    t.push('\n');
    t.push_str(&tls.to_toml_section());
    t
}

/// The demo's dashboard accounts at the province: (name, role, password). A demo only: a
/// real node's accounts are added by `bottomline user add`, which asks for the password.
pub const DEMO_ACCOUNTS: [(&str, Role, &str); 2] = [
    ("demo.viewer", Role::Viewer, "viewer-demo-2026"),
    ("demo.operator", Role::Operator, "operator-demo-2026"),
];

/// Add [`DEMO_ACCOUNTS`] to the province's accounts file (kept from an earlier run).
fn demo_accounts(config: &Config) -> anyhow::Result<()> {
    let path = config.accounts_path();
    let have = crate::http::accounts::list(&path)?;
    for (name, role, password) in DEMO_ACCOUNTS {
        if !have.iter().any(|a| a.name == name) {
            crate::http::accounts::add(&path, config.division, name, role, None, password)?;
        }
    }
    Ok(())
}

/// The person the demo prints commands for: an operator of the province.
pub fn demo_operator() -> Identity {
    Identity::Operator {
        name: "demo.operator".into(),
        division: Code::parse("61").expect("61 is a province code"),
        role: Role::Operator,
    }
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (use --port 0 to take any free ports)")
    })
}

/// Where progress lines go.
pub type Say = Arc<dyn Fn(String) + Send + Sync>;

/// Generate the data and start the tree; county imports run on `import_threads` threads while
/// the nodes sync. Progress goes to `say`.
pub async fn start(opts: &DemoOptions, say: Say) -> anyhow::Result<Demo> {
    let files = opts.dir.join("files");
    let configs = opts.dir.join("configs");
    std::fs::create_dir_all(&configs)?;
    let started = Instant::now();
    let gen_opts = GenOptions {
        seed: opts.seed,
        out: files.clone(),
        scope: GenScope::Province {
            code: "61".into(),
            cities: opts.cities,
            counties: opts.counties,
        },
        end: opts.today,
        households_per_county: opts.households,
    };
    let summary = tokio::task::spawn_blocking(move || {
        crate::gen::generate(&gen_opts, &mut |_| {}).map_err(anyhow::Error::from)
    })
    .await??;
    say(format!(
        "generated {} counties, {} households ({} persons), {} monitoring rows, {} signals, {} measures into {} in {:.1} s",
        summary.counties.len(),
        summary.households,
        summary.persons,
        summary.monitored,
        summary.signals,
        summary.measures,
        files.display(),
        started.elapsed().as_secs_f64()
    ));
    let counties: Vec<Code> = summary
        .counties
        .iter()
        .map(|c| Code::parse(c).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let province = Code::parse("61").map_err(anyhow::Error::msg)?;
    let mut cities: Vec<Code> = counties.iter().filter_map(|c| c.parent()).collect();
    cities.dedup();

    let (stop, stop_rx) = watch::channel(false);
    let mut nodes: Vec<DemoNode> = Vec::new();
    let mut addr_of: std::collections::HashMap<Code, String> = Default::default();
    let mut port = opts.port;
    let mut http_port = opts.http_port;
    let levels = [vec![province], cities.clone(), counties.clone()];
    let mut identities: Vec<Identity> = levels
        .iter()
        .flatten()
        .map(|&division| Identity::Node { division })
        .collect();
    identities.push(demo_operator());
    // The demo's own CA in `dir/pki`, made on the first run and kept for the next ones.
    let pki_dir = opts.dir.join("pki");
    let mut tls = tokio::task::spawn_blocking(move || {
        let mut pki = Pki::open_or_init(&pki_dir, "Bottomline demo")?;
        identities
            .iter()
            .map(|id| pki.files_for(id))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??
    .into_iter();
    say(format!(
        "certificates: the demo's own CA and one certificate per node in {}",
        opts.dir.join("pki").display()
    ));
    for (depth, codes) in levels.iter().enumerate() {
        for &code in codes {
            let files = tls.next().expect("one certificate per node");
            let listens = depth < 2;
            let listener = if listens {
                let l = bind(port).await?;
                if port != 0 {
                    port += 1;
                }
                Some(l)
            } else {
                None
            };
            let listen = listener.as_ref().map(|l| l.local_addr()).transpose()?;
            let parent = code.parent().and_then(|p| addr_of.get(&p)).cloned();
            let cache = match depth {
                0 => 64,
                1 => 16,
                _ => crate::store::DEFAULT_CACHE_MIB,
            };
            let data = opts.dir.join("nodes").join(code.to_string());
            let http_listen: SocketAddr = ([127, 0, 0, 1], http_port).into();
            if http_port != 0 {
                http_port += 1;
            }
            let text = toml_config(
                code,
                &data,
                listen,
                http_listen,
                parent.as_deref(),
                cache,
                &files,
            );
            let path = configs.join(format!("{code}.toml"));
            std::fs::write(&path, &text)?;
            let config = Config::load(&path)?;
            if depth == 0 {
                demo_accounts(&config)?;
            }
            let handle = node::open(&config)?;
            if let Some(l) = listen {
                addr_of.insert(code, format!("https://{l}"));
            }
            let mut rx = stop_rx.clone();
            let task = tokio::spawn(node::run(
                config.clone(),
                handle.clone(),
                listener,
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            ));
            nodes.push(DemoNode {
                config,
                handle,
                addr: listen,
                task,
            });
        }
    }
    let demo = Demo {
        nodes,
        stop,
        counties,
        operator: tls.next().expect("the operator's certificate comes last"),
    };
    say(format!(
        "started {} nodes: province {} on {}, {} cities, {} counties dialling their city",
        demo.nodes.len(),
        province,
        addr_of.get(&province).map_or("-", |s| s.as_str()),
        cities.len(),
        demo.counties.len()
    ));

    // Names for every level: each node keeps its ancestors and its subtree.
    let all = crate::import::read_divisions(&files.join("divisions.csv"))?;
    for n in demo.nodes.iter().take(1 + cities.len()) {
        let me = n.config.division;
        let mine: Vec<Division> = all
            .iter()
            .filter(|d| me.contains(d.code) || d.code.contains(me))
            .cloned()
            .collect();
        let ledger = n.handle.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.put_divisions(&mine)).await??;
    }

    // Import every county while the tree runs: its cells flow up as they are flushed.
    let county_ledgers: Vec<Arc<Ledger>> = demo
        .nodes
        .iter()
        .filter(|n| demo.counties.contains(&n.config.division))
        .map(|n| n.handle.ledger.clone())
        .collect();
    let threads = opts.import_threads.max(1);
    let today = opts.today;
    let total = county_ledgers.len();
    let import_started = Instant::now();
    let import = move || -> anyhow::Result<()> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| -> anyhow::Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> anyhow::Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let Some(ledger) = county_ledgers.get(i) else {
                                return Ok(());
                            };
                            let code = ledger.division();
                            let paths: Vec<PathBuf> = crate::import::FILE_ORDER
                                .iter()
                                .map(|k| files.join(code.to_string()).join(format!("{k}.csv")))
                                .collect();
                            let mut records = 0u64;
                            crate::import::import_files(
                                ledger,
                                &paths,
                                None,
                                today,
                                &mut |_| {},
                                &mut |r| records += r.rows,
                            )?;
                            let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            say(format!(
                            "imported county {code} {} ({records} records) [{d}/{total}, {:.0} s]",
                            ledger.registry().name(code),
                            import_started.elapsed().as_secs_f64()
                        ));
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("an import thread panicked"))??;
            }
            Ok(())
        })
    };
    // On the blocking pool: the nodes keep running on the runtime meanwhile.
    tokio::task::spawn_blocking(import).await??;
    crate::memory::release_memory();
    Ok(demo)
}

/// Run the demo: start it, wait for the province to hold everything, print what to try, and
/// stay up until `shutdown` resolves.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let demo = start(&opts, Arc::new(|s: String| println!("{s}"))).await?;
    let mut last = Instant::now();
    loop {
        let behind = demo.behind()?;
        if behind == 0 {
            break;
        }
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            println!(
                "syncing: {behind} node(s) still delivering to their parent; province change log at {}",
                demo.province().handle.ledger.durable_seq()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = demo.province();
    let week = Period::containing(Kind::Week, opts.today);
    let year = Period::containing(Kind::Year, opts.today);
    let ledger = p.handle.ledger.clone();
    let (w, y) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((
            ledger.indicators(ledger.division(), week)?,
            ledger.indicators(ledger.division(), year)?,
        ))
    })
    .await??;
    let addr = p.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let county = demo.counties.first().copied();
    let city = county.and_then(|c| c.parent());
    println!(
        "\nthe province holds every county's statistics ({:.1} s after start): {} households monitored ({} persons) at the end of {week}; {} risk signals and {} measures in {year}",
        started.elapsed().as_secs_f64(),
        w.count("monitored_households", "total"),
        w.count("monitored_persons", "total"),
        y.count("signals", "total"),
        y.count("measures", "total"),
    );

    // A small ticket inventory down the tree; the first county rectifies one ticket.
    let tickets_started = Instant::now();
    let keys = demo.issue_tickets(opts.today).await?;
    let mut last = Instant::now();
    loop {
        let left = demo.tickets_undelivered(&keys)?;
        if left == 0 {
            break;
        }
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            println!(
                "tickets: {left} of {} not yet delivered at their county",
                keys.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sample = keys.first().cloned();
    let mut closed = false;
    if let Some(k) = &sample {
        demo.rectify_at_target(k).await?;
        loop {
            match demo.province_ticket_state(k)? {
                Some(State::Rectified) => break,
                // Verified in an earlier run of the demo.
                Some(State::Closed) => {
                    closed = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    println!(
        "the province issued inventory \"{DEMO_INVENTORY}\" ({} tickets: 2 per county, the second past its deadline) and every county holds its tickets ({:.1} s){}",
        keys.len(),
        tickets_started.elapsed().as_secs_f64(),
        match (&sample, county) {
            (Some(k), Some(c)) => format!("; county {c} accepted and rectified {k}"),
            _ => String::new(),
        }
    );
    let pki = opts.dir.join("pki");
    if let Some(h) = p.http_addr() {
        println!("\nThe command center's dashboard (Chinese; English with the switch at the top):");
        println!("  http://{h}/   (province {})", p.config.division);
        if let Some(c) = city.and_then(|c| demo.node(c)).and_then(|n| n.http_addr()) {
            println!("  http://{c}/   (a city)");
        }
        if let Some(c) = county
            .and_then(|c| demo.node(c))
            .and_then(|n| n.http_addr())
        {
            println!("  http://{c}/   (a county: its towns and villages)");
        }
        println!(
            "  reading needs no login on this machine; to act on tickets log in at the province \
             as {} / {} (a viewer: {} / {})",
            DEMO_ACCOUNTS[1].0, DEMO_ACCOUNTS[1].2, DEMO_ACCOUNTS[0].0, DEMO_ACCOUNTS[0].2
        );
        println!("  http://{h}/metrics   (Prometheus)");
    }
    let (ca, cert, key) = (&demo.operator.ca, &demo.operator.cert, &demo.operator.key);
    println!(
        "\nThe tree is running over mutual TLS (Ctrl-C stops it). Try, in another terminal, as \
         {}:",
        demo_operator()
    );
    println!(
        "  export BOTTOMLINE_CA={} BOTTOMLINE_CERT={} BOTTOMLINE_KEY={}",
        ca.display(),
        cert.display(),
        key.display()
    );
    println!("  bottomline status --addr https://{addr}");
    if let Some(city) = city.and_then(|c| demo.node(c)).and_then(|n| n.addr) {
        println!("  bottomline status --addr https://{city}");
    }
    println!("  bottomline stats --addr https://{addr} --period {week}");
    if let Some(c) = county {
        println!(
            "  bottomline stats --addr https://{addr} --division {c} --period {year} --format json"
        );
    }
    let grpcurl = format!(
        "grpcurl -cacert {} -cert {} -key {}",
        ca.display(),
        cert.display(),
        key.display()
    );
    println!(
        "  {grpcurl} -d '{{\"division\":\"{}\",\"period\":\"{}\"}}' {addr} bottomline.v1.Sync/Stats",
        city.map(|c| c.to_string()).unwrap_or_default(),
        Period::containing(Kind::Quarter, opts.today)
    );
    println!("  {grpcurl} {addr} list");
    println!("Tickets (at the province; a city sees the tickets of its subtree):");
    println!("  bottomline tickets --addr https://{addr} progress --inventory {DEMO_INVENTORY}");
    println!("  bottomline tickets --addr https://{addr} list --overdue");
    if let (Some(k), Some(c)) = (&sample, county) {
        let other = format!("{}/DEMO-{c}-2", p.config.division);
        println!("  bottomline tickets --addr https://{addr} show {k}");
        if let Some((code, city)) = city.and_then(|c| Some((c, demo.node(c)?.addr?))) {
            println!(
                "  bottomline tickets --addr https://{city} --actor {code} supervise {other}   # the city flags 督办"
            );
        }
        if !closed {
            println!(
                "  bottomline tickets --addr https://{addr} verify {k}   # the issuer closes (销号) what {c} rectified"
            );
        }
        println!(
            "The counties here only dial their city, so they have no Tickets API to call; a county node \
             that listens (`listen = \"127.0.0.1:PORT\"` in its config) takes its actions, with a \
             certificate of the county (`bottomline pki issue --dir {} --operator NAME --division {c} \
             --role operator`):",
            pki.display()
        );
        println!("  bottomline tickets --addr https://127.0.0.1:PORT accept --all-delivered");
        println!("  bottomline tickets --addr https://127.0.0.1:PORT start {other}");
        println!(
            "  bottomline tickets --addr https://127.0.0.1:PORT rectify {other} --note \"both insured\""
        );
    }
    println!(
        "Node configs: {} (each can run alone with `bottomline serve --config`).",
        opts.dir.join("configs").display()
    );
    shutdown.await;
    println!("stopping: every node stops accepting, stops its uplink and flushes");
    demo.stop().await?;
    println!("stopped");
    Ok(())
}
