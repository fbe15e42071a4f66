//! `bottomline report` (the cycle's reports as HTML, CSV or XLSX) and `bottomline assess`
//! (the double continuous of a year), from a data dir (the node stopped) or a running node
//! (`--addr`, over its `Report` service, with the CLI's certificate). The work is
//! `bottomline::cycle`'s; this file reads the arguments and fetches.

use std::path::PathBuf;

use anyhow::Context;
use bottomline::cycle::export::{self, Format};
use bottomline::cycle::figures::{LedgerSource, RpcSource, Source};
use bottomline::cycle::reports::Request;
use bottomline::cycle::{self, CycleError, ReportKind, Rules};
use bottomline::division::{Code, Level};
use bottomline::ledger::Ledger;
use bottomline::period::{today_in_china, Period};
use bottomline::regions::Scope;
use bottomline::store::StoreOptions;
use clap::Args;

use crate::cli_auth;

/// Where the figures come from, whose regions, by which rules, as of which day.
#[derive(Args, Debug)]
pub struct FromArgs {
    /// The node's data directory (the node stopped: a running node locks it; use --addr).
    #[arg(long, env = "BOTTOMLINE_DATA", required_unless_present = "addr")]
    data: Option<PathBuf>,
    /// A running node's gRPC address (`https://host:port`), e.g. the province.
    #[arg(long, conflicts_with = "data")]
    addr: Option<String>,
    #[command(flatten)]
    auth: cli_auth::ClientAuth,
    /// The division reported on (default: the node's own).
    #[arg(long)]
    division: Option<Code>,
    /// Rank every division at this level below it (e.g. county: the province's 107
    /// counties) instead of its children.
    #[arg(long)]
    level: Option<Level>,
    /// The rules (key indicators, weights, praise and criticism, points): a TOML file as
    /// documented in deploy/report-rules.toml; default: the rules described there.
    #[arg(long, env = "BOTTOMLINE_REPORT_RULES")]
    rules: Option<PathBuf>,
    /// The day the report is made (default: today in China): notifications of periods not
    /// over by then are not counted.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<jiff::civil::Date>,
}

/// `bottomline report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// weekly (周统计), monthly (月度通报), quarterly (季度调度), half (半年小结) or annual
    /// (年度总结).
    #[arg(long)]
    kind: ReportKind,
    /// The period, of the report's kind: 2026-W47, 2026-11, 2026-Q4, 2026-H2 or 2026.
    #[arg(long)]
    period: Period,
    #[command(flatten)]
    from: FromArgs,
    /// html (a self-contained page), csv (UTF-8 with a BOM, for Excel and WPS) or xlsx.
    #[arg(long)]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

/// `bottomline assess`.
#[derive(Args, Debug)]
pub struct AssessArgs {
    /// The year assessed (2026).
    #[arg(long)]
    year: Period,
    #[command(flatten)]
    from: FromArgs,
    /// Also write the assessment as html, csv or xlsx (with --out).
    #[arg(long, requires = "out")]
    format: Option<Format>,
    /// The file for --format.
    #[arg(long, requires = "format")]
    out: Option<PathBuf>,
}

/// Open the source the arguments name and run `f` on it.
fn with_source<T>(
    from: &FromArgs,
    f: impl FnOnce(&mut dyn Source) -> Result<T, CycleError>,
) -> anyhow::Result<T> {
    match (&from.data, &from.addr) {
        (_, Some(addr)) => {
            let target = cli_auth::Target::resolve(Some(addr.clone()), None, &from.auth)?;
            Ok(f(&mut RpcSource::new(target.addr, target.tls)?)?)
        }
        (Some(data), None) => {
            let ledger = Ledger::open(data, &StoreOptions::default())
                .with_context(|| format!("opening {}", data.display()))?;
            Ok(f(&mut LedgerSource::new(&ledger))?)
        }
        (None, None) => anyhow::bail!("give --data DIR or --addr https://host:port"),
    }
}

fn scope(from: &FromArgs) -> Scope {
    from.level.map_or(Scope::Children, Scope::Level)
}

/// `bottomline report`: build the report and write it to --out.
pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let rules = Rules::load(args.from.rules.as_deref())?;
    let req = Request {
        kind: args.kind,
        period: args.kind.check_period(args.period)?,
        division: args.from.division,
        scope: scope(&args.from),
        made: args.from.as_of.unwrap_or_else(today_in_china),
    };
    let doc = with_source(&args.from, |src| cycle::build(&req, &rules, src))?;
    export::write_file(&doc, args.format, &args.out)?;
    println!(
        "{}: {} ({}, {} sections)",
        args.out.display(),
        doc.title,
        args.format,
        doc.sections.len()
    );
    Ok(())
}

/// `bottomline assess`: print the year's assessment per region with its evidence, and write
/// it to --out when --format is given.
pub fn run_assess(args: AssessArgs) -> anyhow::Result<()> {
    let rules = Rules::load(args.from.rules.as_deref())?;
    let made = args.from.as_of.unwrap_or_else(today_in_china);
    let scope = scope(&args.from);
    let (assessment, figures) = with_source(&args.from, |src| {
        cycle::assess_year(src, args.from.division, scope, args.year, made, &rules)
    })?;
    print!("{}", assessment.text(&figures));
    if let (Some(format), Some(out)) = (args.format, &args.out) {
        let name = figures.name(figures.division);
        let doc = cycle::Document {
            title: format!(
                "{name}{}年度防返贫动态监测工作考核（双连续）",
                assessment.year
            ),
            lines: vec![
                format!("地区：{name}（{}）", figures.division),
                format!("制表日期：{}", cycle::date_zh(made)),
            ],
            sections: assessment.sections(&figures),
        };
        export::write_file(&doc, format, out)?;
        println!("{}: {} ({format})", out.display(), doc.title);
    }
    Ok(())
}
