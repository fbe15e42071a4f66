//! `bottomline spotcheck …`: double-random spot checks (双随机) at a running node, over its
//! gRPC API — draw a week at the province, verify a draw anywhere it is held, record a result
//! at the county. The draw's tasks are tickets: `bottomline tickets list --inventory
//! spotcheck-2026-W49-county` and `tickets progress` follow them.

use std::path::PathBuf;

use bottomline::report::{table, Format};
use bottomline::rpc::spotcheck_client::{NewResult, PickRow, SpotChecksClient};
use clap::{Args, Subcommand};

/// Where and as whom.
#[derive(Args)]
pub struct SpotCheckArgs {
    /// The node's gRPC address (`https://host:port`).
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Or the node's config file (its `listen` address, and its certificate unless
    /// --ca/--cert/--key are given).
    #[arg(short, long, global = true, env = "BOTTOMLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    auth: crate::cli_auth::ClientAuth,
    #[command(subcommand)]
    cmd: SpotCheckCmd,
}

#[derive(Subcommand)]
enum SpotCheckCmd {
    /// Draw a week (at the province) and issue the picks as tasks to the villages drawn.
    ///
    /// The seed is SHA-256 of the week, the scope and a digest of the province's statistics
    /// of the week before; no village of a county is drawn again before all of them were.
    /// Drawing a week again shows the draw already issued.
    Draw {
        /// ISO week, e.g. 2026-W49.
        #[arg(long)]
        week: String,
        /// county: one village per county; city: one county per city and a village in it.
        #[arg(long, default_value = "county")]
        scope: String,
        /// Show the draw without issuing it.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Rerun a draw from its published seed over what this node holds and compare with the
    /// tasks it holds (the province all, a city its counties, a county its own); exit status
    /// 1 on any difference.
    Verify {
        /// ISO week.
        #[arg(long)]
        week: String,
        /// county or city.
        #[arg(long, default_value = "county")]
        scope: String,
        /// The drawing division (default: the province).
        #[arg(long)]
        drawer: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Record the result of a village's spot check (at its county's node); with findings,
    /// the findings become a ticket (source spot_check) to the village in the same step.
    Record {
        /// The village checked.
        #[arg(long)]
        village: String,
        /// ok or findings.
        #[arg(long)]
        result: String,
        /// What was checked and found.
        #[arg(long)]
        note: String,
        /// The task ISSUER/ID (default: the village's only open task).
        #[arg(long)]
        task: Option<String>,
        /// Only a task of this week.
        #[arg(long)]
        week: Option<String>,
        /// Findings: the ticket's severity (low, medium, high; default medium).
        #[arg(long)]
        severity: Option<String>,
        /// Findings: the ticket's deadline (yyyy-mm-dd; default 30 days on).
        #[arg(long)]
        deadline: Option<String>,
        /// Findings: the ticket's category (default 双随机抽查发现问题).
        #[arg(long)]
        category: Option<String>,
        /// Findings: the household concerned.
        #[arg(long)]
        household_code: Option<String>,
    },
}

fn picks_table(picks: &[PickRow]) -> String {
    let rows: Vec<Vec<String>> = picks
        .iter()
        .map(|p| {
            vec![
                format!("{} {}", p.unit, p.unit_name),
                format!("{} {}", p.county, p.county_name),
                format!("{} {}", p.village, p.village_name),
                p.task.clone(),
                p.state.clone(),
                p.result.clone(),
            ]
        })
        .collect();
    table(&["单位", "县", "村", "任务", "状态", "结果"], &rows)
}

fn csv_of(picks: &[PickRow]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for p in picks {
        w.serialize(p)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Run `bottomline spotcheck`.
pub fn run(args: SpotCheckArgs) -> anyhow::Result<()> {
    let target = crate::cli_auth::Target::resolve(args.addr, args.config, &args.auth)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut c = SpotChecksClient::connect(&target.addr, target.tls.as_ref()).await?;
        match args.cmd {
            SpotCheckCmd::Draw {
                week,
                scope,
                dry_run,
                format,
            } => {
                let d = c.draw(&week, &scope, dry_run).await?;
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&d)?),
                    Format::Csv => print!("{}", csv_of(&d.picks)?),
                    Format::Table => {
                        let how = if d.dry_run {
                            "dry run, nothing issued"
                        } else if d.already_drawn {
                            "drawn before; its tasks"
                        } else {
                            "issued"
                        };
                        println!(
                            "{} draw of {} by {} ({how}): {} picks\nseed   {}\ndigest {} (statistics of the week before)",
                            d.scope,
                            d.week,
                            d.drawer,
                            d.picks.len(),
                            d.seed,
                            d.digest
                        );
                        print!("{}", picks_table(&d.picks));
                    }
                }
                Ok(())
            }
            SpotCheckCmd::Verify {
                week,
                scope,
                drawer,
                format,
            } => {
                let v = c.verify(&week, &scope, drawer.as_deref()).await?;
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                    Format::Csv => print!("{}", csv_of(&v.expected)?),
                    Format::Table => {
                        println!(
                            "{} draw of {} by {}: seed {}",
                            v.scope, v.week, v.drawer, v.published_seed
                        );
                        match v.seed_matches_statistics {
                            Some(true) => println!("the seed equals the one from the statistics now"),
                            Some(false) => println!(
                                "the statistics of the week before changed since the draw (late records): the published seed is the draw's input"
                            ),
                            None => {}
                        }
                        print!("{}", picks_table(&v.expected));
                        for m in &v.mismatches {
                            println!("MISMATCH {m}");
                        }
                        println!(
                            "{}",
                            if v.ok {
                                "verified: every pick held equals the draw"
                            } else {
                                "NOT verified"
                            }
                        );
                    }
                }
                if !v.ok {
                    std::process::exit(1);
                }
                Ok(())
            }
            SpotCheckCmd::Record {
                village,
                result,
                note,
                task,
                week,
                severity,
                deadline,
                category,
                household_code,
            } => {
                let r = c
                    .record(NewResult {
                        village,
                        result,
                        note,
                        task,
                        week,
                        severity,
                        deadline,
                        category,
                        household_code,
                    })
                    .await?;
                println!("recorded {} ({})", r.task, r.state);
                if !r.finding_ticket.is_empty() {
                    println!("issued {} for the findings", r.finding_ticket);
                }
                Ok(())
            }
        }
    })
}
