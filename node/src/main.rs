//! The `bottomline` command: one binary, one subcommand per job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bottomline::division::{Code, Level};
use bottomline::domain::RecordKind;
use bottomline::gen::{GenOptions, GenScope};
use bottomline::import::{FileKind, ImportEvent};
use bottomline::ledger::{Change, Ledger};
use bottomline::period::{today_in_china, Kind as PeriodKind, Period};
use bottomline::regions;
use bottomline::report::{render, render_region, Format};
use bottomline::store::StoreOptions;
use clap::{Parser, Subcommand};

mod cli_auth;
mod cli_pki;
mod cli_report;
mod cli_spotcheck;
mod cli_tickets;
mod cli_user;
mod cli_workflow;

#[derive(Parser)]
#[command(
    name = "bottomline",
    version,
    about = "Dynamic monitoring and assistance to prevent return to poverty: county, city and province nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (county, city or province) from its TOML config: the sync service, stats,
    /// gRPC health and reflection, and the link to its parent. Stops in order on SIGTERM/SIGINT.
    Serve {
        /// The node's config file.
        #[arg(short, long, env = "BOTTOMLINE_CONFIG")]
        config: PathBuf,
    },
    /// Import interchange files (CSV or JSON lines) into a node's data dir.
    ///
    /// Each file is all or nothing: every row is validated first, and one bad row rejects the
    /// whole file with an error naming file, line, field and reason. Files are taken in
    /// dependency order (divisions, households, monitored, signals, cases, measures); the import
    /// stops at the first rejected file. Re-importing a file changes nothing; a record with a
    /// known id and new content is a correction.
    Import {
        /// The node's data directory (the node must not be running; see --addr).
        #[arg(long, env = "BOTTOMLINE_DATA", required_unless_present = "addr")]
        data: Option<PathBuf>,
        /// A running county node's gRPC address (`https://host:port`): the files are sent to
        /// it and imported while it serves (needs an operator or node certificate covering
        /// its division: --ca/--cert/--key).
        #[arg(long, conflicts_with_all = ["data", "division", "kind"])]
        addr: Option<String>,
        #[command(flatten)]
        auth: cli_auth::ClientAuth,
        /// The node's division; required the first time a data dir is used.
        #[arg(long)]
        division: Option<Code>,
        /// What the files hold, when their names do not say it (households, signals, …).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<FileKind>,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the indicators of a division for a period, from a data dir or a running node.
    Stats {
        /// The node's data directory (when the node is not running).
        #[arg(long, env = "BOTTOMLINE_DATA", required_unless_present = "addr")]
        data: Option<PathBuf>,
        /// A running node's gRPC address (`https://host:port`), e.g. the province for a
        /// drill-down into any division below it.
        #[arg(long, conflicts_with = "data")]
        addr: Option<String>,
        #[command(flatten)]
        auth: cli_auth::ClientAuth,
        /// Division to report on (default: the node's own).
        #[arg(long)]
        division: Option<Code>,
        /// 2026-W47, 2026-11, 2026-Q4, 2026-H2 or 2026 (with --trend, the year).
        #[arg(long)]
        period: Period,
        /// Every child of the division, one line each (the region report).
        #[arg(long, conflicts_with_all = ["level", "trend"])]
        children: bool,
        /// Every division at this level below the division (city, county; town and village at
        /// a county node).
        #[arg(long, conflicts_with = "trend")]
        level: Option<Level>,
        /// The division over every week or month of the year --period.
        #[arg(long, value_parser = ["week", "month"])]
        trend: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Delete records by id (a household only when nothing refers to it).
    Delete {
        /// The node's data directory.
        #[arg(long, env = "BOTTOMLINE_DATA")]
        data: PathBuf,
        /// household, monitored, signal, case or measure.
        #[arg(long, value_parser = parse_record_kind)]
        kind: RecordKind,
        /// Ids (household codes for households and monitoring rows).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Show a running node's links: its uplink, and per child the last contact, the acked
    /// position, the backlog, the ticket link both ways (acked position/events waiting) and a
    /// SILENT or STALLED warning. Exits with status 1 when a child is silent or stalled.
    Status {
        /// The node's gRPC address (`https://host:port`).
        #[arg(long, required_unless_present = "config")]
        addr: Option<String>,
        /// Or the node's config file (its `listen` address, and its certificate unless
        /// --ca/--cert/--key are given). --addr wins: in the image BOTTOMLINE_CONFIG is
        /// always set, and `status --addr` must still reach a relay or another node.
        #[arg(short, long, env = "BOTTOMLINE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        auth: cli_auth::ClientAuth,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Rectification tickets (问题整改) at a running node: issue, act, list, show, progress.
    ///
    /// Ticket keys are ISSUER/ID. The actor is the node's own division unless --actor says
    /// otherwise (a county node also acts for its towns and villages).
    Tickets(Box<cli_tickets::TicketsArgs>),
    /// Double-random spot checks (双随机) at a running node: draw a week (province), verify a
    /// draw from its published seed (any node holding it), record a result (county).
    Spotcheck(Box<cli_spotcheck::SpotCheckArgs>),
    /// Department warnings at a running county node: the rules (deploy/warning-rules.toml)
    /// over the department data it holds make risk signals; --dry-run shows what would change.
    Warn(Box<cli_workflow::WarnArgs>),
    /// Identification cases at a running county node: open, advance through village review,
    /// town check and county approval, decide (include or reject), list the due and overdue.
    Case(Box<cli_workflow::CaseArgs>),
    /// Monitoring objects at a running county node: record a risk as eliminated.
    Monitored(Box<cli_workflow::MonitoredArgs>),
    /// The work cycle's reports (周统计, 月度通报, 季度调度, 半年小结, 年度总结) as HTML, CSV
    /// (UTF-8 with a BOM) or XLSX, from a data dir or a running node (--addr); the rules in
    /// a TOML file (deploy/report-rules.toml).
    Report(Box<cli_report::ReportArgs>),
    /// The double continuous (双连续) of a year: each region's base score, its verdict in
    /// every monthly notification and quarterly ranking, the consecutive pairs with the
    /// notifications as evidence, and its total.
    Assess(Box<cli_report::AssessArgs>),
    /// Certificates: the provincial CA, node/operator/relay certificates, renewal and revocation (no openssl needed).
    Pki(cli_pki::PkiArgs),
    /// People who log in to the dashboard: add, passwd, remove, list (only the accounts
    /// file; works while the node runs).
    User(cli_user::UserArgs),
    /// Check a node's statistics (the node stopped): at a county every cell against a
    /// recomputation from the records and tickets; at a city or the province every cell of its
    /// own division against the sum of its children's (reports the first differing cells).
    Check {
        /// The node's data directory.
        #[arg(long, env = "BOTTOMLINE_DATA")]
        data: PathBuf,
    },
    /// Run a whole hierarchy on this machine: generate a province, start the province, city
    /// and county nodes (in this process, on 127.0.0.1), import every county while the tree
    /// syncs, print what to try, and stay up until Ctrl-C.
    Demo {
        /// Where the demo keeps generated files and data dirs.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
        /// Cities.
        #[arg(long, default_value_t = 2)]
        cities: u32,
        /// Counties, spread over the cities.
        #[arg(long, default_value_t = 4)]
        counties: u32,
        /// Households per county (default: 5 000 for a quick start; 0 for realistic size,
        /// ~65 000 per county).
        #[arg(long, default_value_t = 5000)]
        households: u32,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Port of the province; the cities take the next ones. 0 takes any free ports.
        #[arg(long, default_value_t = 7100)]
        port: u16,
        /// Counties imported at the same time.
        #[arg(long, default_value_t = 2)]
        import_threads: usize,
        /// Dashboard port of the province on 127.0.0.1 (http://127.0.0.1:8480/); the cities
        /// and counties take the next ones. 0 takes any free ports.
        #[arg(long, default_value_t = 8480)]
        http_port: u16,
    },
    /// Generate deterministic synthetic data in the interchange format.
    ///
    /// Writes OUT/divisions.csv (the registry) and OUT/<county>/*.csv for each county.
    Gen {
        /// Random seed: the same seed and --end give byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Generate one county (e.g. 610102).
        #[arg(long, conflicts_with_all = ["cities", "counties"])]
        county: Option<String>,
        /// Province code for a whole province.
        #[arg(long, default_value = "61")]
        province: String,
        /// Cities of the province.
        #[arg(long, default_value_t = 10)]
        cities: u32,
        /// Counties of the province, spread over the cities.
        #[arg(long, default_value_t = 107)]
        counties: u32,
        /// Households per county (default: realistic, ~65 000 on average).
        #[arg(long)]
        households: Option<u32>,
        /// Last day of the data (default: today in China).
        #[arg(long)]
        end: Option<jiff::civil::Date>,
        /// Also write each county's department files (medical, accidents, labour, incomes)
        /// for the year ending at --end.
        #[arg(long)]
        department: bool,
    },
}

fn parse_kind(s: &str) -> Result<FileKind, String> {
    FileKind::parse(s).ok_or_else(|| {
        format!("unknown kind {s:?}: divisions, households, monitored, signals, cases, measures, medical, accidents, labour or incomes")
    })
}

fn parse_record_kind(s: &str) -> Result<RecordKind, String> {
    RecordKind::parse(s)
        .ok_or_else(|| format!("unknown kind {s:?}: household, monitored, signal, case or measure"))
}

fn main() -> ExitCode {
    bottomline::memory::setup();
    let cli = Cli::parse();
    // The demo runs a whole tree in one process: only warnings unless RUST_LOG asks for more.
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    // A node's `log_format` (a config that does not load is reported by `serve`, in text).
    let configured = match &cli.command {
        Command::Serve { config } => bottomline::config::Config::load(config)
            .ok()
            .map(|c| c.log_format),
        _ => None,
    };
    bottomline::config::LogFormat::chosen(configured).init(default_filter);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let opts = StoreOptions::default();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Import {
            addr: Some(addr),
            auth,
            files,
            ..
        } => {
            let t = cli_auth::Target::resolve(Some(addr), None, &auth)?;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt
                .block_on(bottomline::rpc::import_files(
                    &t.addr,
                    t.tls.as_ref(),
                    &files,
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for f in &r.imported {
                println!(
                    "{}: {} rows: {} new, {} corrected, {} unchanged; {} statistics cells updated",
                    f.file, f.rows, f.inserted, f.corrected, f.unchanged, f.cells_written
                );
            }
            if let Some((file, error)) = r.rejected {
                bail!(
                    "{file} was refused by {}; nothing of it was imported:\n{error}",
                    t.addr
                );
            }
            Ok(())
        }
        Command::Import {
            data,
            division,
            kind,
            files,
            ..
        } => {
            let data = data.context("give --data DIR or --addr https://host:port")?;
            let ledger = Ledger::open_or_init(&data, division, &opts)?;
            let today = today_in_china();
            let mut last = Instant::now();
            let mut progress = |ev: ImportEvent| {
                if last.elapsed() < Duration::from_millis(500) {
                    return;
                }
                last = Instant::now();
                match ev {
                    ImportEvent::Read { file, rows } => {
                        eprintln!("{}: {rows} rows read", file.display())
                    }
                    ImportEvent::Written { file, progress } => eprintln!(
                        "{}: {}/{} written ({:.0} %)",
                        file.display(),
                        progress.done,
                        progress.total,
                        progress.done as f64 * 100.0 / progress.total.max(1) as f64
                    ),
                }
            };
            let mut done = |r: &bottomline::import::FileReport| {
                let a = &r.applied;
                println!(
                    "{}: {} rows: {} new, {} corrected, {} unchanged; {} statistics cells updated",
                    r.file.display(),
                    r.rows,
                    a.inserted,
                    a.corrected,
                    a.unchanged,
                    a.cells_written
                );
            };
            bottomline::import::import_files(
                &ledger,
                &files,
                kind,
                today,
                &mut progress,
                &mut done,
            )?;
            Ok(())
        }
        Command::Stats {
            data: None,
            addr: Some(addr),
            auth,
            division,
            period,
            children,
            level,
            trend,
            format,
        } => {
            let t = cli_auth::Target::resolve(Some(addr), None, &auth)?;
            let rt = tokio::runtime::Runtime::new()?;
            if let Some(q) = region_query(division, period, children, level, trend.as_deref()) {
                let (entries, names) = rt
                    .block_on(bottomline::rpc::fetch_report(&t.addr, t.tls.as_ref(), &q))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                print!("{}", render_region(&entries, &names, format));
                return Ok(());
            }
            let (ind, names) = rt
                .block_on(bottomline::rpc::fetch_stats(
                    &t.addr,
                    t.tls.as_ref(),
                    division,
                    period,
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", render(&ind, &names, format));
            Ok(())
        }
        Command::Stats {
            data,
            division,
            period,
            children,
            level,
            trend,
            format,
            ..
        } => {
            let data = data.context("give --data DIR or --addr https://host:port")?;
            let ledger = Ledger::open(&data, &opts)?;
            if let Some(q) = region_query(division, period, children, level, trend.as_deref()) {
                let division = q.division.unwrap_or(ledger.division());
                let periods = regions::periods(q.period, q.until, q.each)?;
                let members = regions::members(&ledger, division, q.scope)?;
                let entries = regions::report(&ledger, &members, &periods)?;
                print!(
                    "{}",
                    render_region(
                        entries.iter().map(|e| e.as_ref()),
                        &ledger.registry(),
                        format
                    )
                );
                return Ok(());
            }
            let division = division.unwrap_or(ledger.division());
            if !ledger.division().contains(division) {
                bail!(
                    "division {division} is outside this node's subtree ({})",
                    ledger.division()
                );
            }
            let ind = ledger.indicators(division, period)?;
            print!("{}", render(&ind, &ledger.registry(), format));
            Ok(())
        }
        Command::Delete { data, kind, ids } => {
            let ledger = Ledger::open(&data, &opts)?;
            let changes: Vec<Change> = ids.into_iter().map(|id| Change::Delete(kind, id)).collect();
            match ledger.apply(&changes, today_in_china()) {
                Ok(a) => {
                    println!("{} deleted", a.deleted);
                    Ok(())
                }
                Err(bottomline::ledger::LedgerError::Refused(rs)) => {
                    for r in &rs {
                        if let Change::Delete(_, id) = &changes[r.index] {
                            eprintln!("{} {id}: {}", kind.as_str(), r.error);
                        }
                    }
                    bail!("{} deletion(s) refused; nothing was deleted", rs.len())
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Status {
            addr,
            config,
            auth,
            format,
        } => {
            let t = cli_auth::Target::resolve(addr, config, &auth)?;
            let rt = tokio::runtime::Runtime::new()?;
            let st = rt
                .block_on(bottomline::rpc::fetch_status(&t.addr, t.tls.as_ref()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!(
                "{}",
                bottomline::report::render_status(&st, format, bottomline::ledger::unix_ms_now())
            );
            let silent = st.children.iter().filter(|c| c.silent).count();
            if silent > 0 {
                bail!("{silent} child(ren) of {} silent", st.division);
            }
            let stalled = st.children.iter().filter(|c| c.stalled).count();
            if stalled > 0 {
                bail!("{stalled} child link(s) of {} stalled", st.division);
            }
            if let Some(c) = st.self_check.as_ref().filter(|c| !c.ok) {
                bail!(
                    "the self-check of {} failed: {} cells differ",
                    st.division,
                    c.differing
                );
            }
            Ok(())
        }
        Command::Tickets(args) => cli_tickets::run(*args),
        Command::Spotcheck(args) => cli_spotcheck::run(*args),
        Command::Warn(args) => cli_workflow::run_warn(*args),
        Command::Case(args) => cli_workflow::run_case(*args),
        Command::Monitored(args) => cli_workflow::run_monitored(*args),
        Command::Report(args) => cli_report::run_report(*args),
        Command::Assess(args) => cli_report::run_assess(*args),
        Command::Pki(args) => cli_pki::run(args),
        Command::User(args) => cli_user::run(args),
        Command::Check { data } => {
            let ledger = Ledger::open(&data, &opts)?;
            // The ticket cells the node wrote must equal its tickets' events, folded again.
            let wrong = ledger.check_ticket_cells()?;
            if !wrong.is_empty() {
                let first: Vec<String> = wrong.iter().take(5).map(|k| k.to_string()).collect();
                bail!(
                    "the statistics of {} ticket(s) differ from their events (first: {})",
                    wrong.len(),
                    first.join(", ")
                );
            }
            // A county against its records; a parent against its children's replicas.
            let r = ledger.self_check()?;
            if r.ok() {
                println!("ok: {} cells — {}", r.cells, r.what);
                Ok(())
            } else {
                for m in &r.first {
                    eprintln!("  {m}");
                }
                bail!("{} of {} cells differ — {}", r.differing, r.cells, r.what)
            }
        }
        Command::Demo {
            dir,
            cities,
            counties,
            households,
            seed,
            port,
            import_threads,
            http_port,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let shutdown = {
                let _in_runtime = rt.enter();
                bottomline::node::shutdown_signal()
            };
            rt.block_on(bottomline::demo::run(
                bottomline::demo::DemoOptions {
                    dir,
                    cities,
                    counties,
                    households: (households > 0).then_some(households),
                    seed,
                    port,
                    today: today_in_china(),
                    import_threads,
                    http_port,
                },
                shutdown,
            ))
        }
        Command::Gen {
            seed,
            out,
            county,
            province,
            cities,
            counties,
            households,
            end,
            department,
        } => {
            let end = end.unwrap_or_else(today_in_china);
            let scope = match county {
                Some(c) => GenScope::County(c),
                None => GenScope::Province {
                    code: province,
                    cities,
                    counties,
                },
            };
            let started = Instant::now();
            let mut last = Instant::now();
            let summary = bottomline::gen::generate(
                &GenOptions {
                    seed,
                    out: out.clone(),
                    scope,
                    end,
                    households_per_county: households,
                },
                &mut |p| {
                    if last.elapsed() >= Duration::from_millis(500)
                        || p.counties_done == p.counties_total
                    {
                        last = Instant::now();
                        eprintln!(
                            "{}/{} counties, {} households",
                            p.counties_done, p.counties_total, p.households_done
                        );
                    }
                },
            )
            .with_context(|| format!("generating into {}", out.display()))?;
            println!(
                "wrote {} in {:.1} s (seed {seed}, data up to {end}): {} counties, {} divisions, \
                 {} households ({} persons), {} monitoring rows, {} signals, {} cases, {} measures",
                out.display(),
                started.elapsed().as_secs_f64(),
                summary.counties.len(),
                summary.divisions,
                summary.households,
                summary.persons,
                summary.monitored,
                summary.signals,
                summary.cases,
                summary.measures
            );
            if department {
                let mut total = bottomline::gen::department::DeptSummary::default();
                for c in &summary.counties {
                    let d = bottomline::gen::department::department_files(&out.join(c), seed, end)
                        .with_context(|| format!("department files of {c}"))?;
                    total.medical += d.medical;
                    total.accidents += d.accidents;
                    total.labour += d.labour;
                    total.incomes += d.incomes;
                }
                println!(
                    "department files: {} medical settlements, {} accidents, {} labour-force changes, {} income checks ({} rows)",
                    total.medical,
                    total.accidents,
                    total.labour,
                    total.incomes,
                    total.total()
                );
            }
            Ok(())
        }
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = bottomline::config::Config::load(path)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        // Signals first: a SIGTERM while the store opens stops the node cleanly.
        let shutdown = bottomline::node::shutdown_signal();
        let handle = bottomline::node::open(&config)?;
        let listener = match config.listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            None => None,
        };
        if let Some(l) = &listener {
            tracing::info!(addr = %l.local_addr()?, "listening");
        }
        bottomline::node::run(config, handle, listener, shutdown).await
    })
}

/// The region report `stats` asks for, if any (`--children`, `--level`, `--trend`).
fn region_query(
    division: Option<Code>,
    period: Period,
    children: bool,
    level: Option<Level>,
    trend: Option<&str>,
) -> Option<bottomline::rpc::ReportQuery> {
    let (scope, each) = match (children, level, trend) {
        (true, _, _) => (regions::Scope::Children, None),
        (_, Some(l), _) => (regions::Scope::Level(l), None),
        (_, _, Some("week")) => (regions::Scope::Only, Some(PeriodKind::Week)),
        (_, _, Some(_)) => (regions::Scope::Only, Some(PeriodKind::Month)),
        _ => return None,
    };
    Some(bottomline::rpc::ReportQuery {
        division,
        scope,
        period,
        until: None,
        each,
    })
}
