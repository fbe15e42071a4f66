//! The county's workflow at a running county node, over its gRPC API: `bottomline warn`
//! (department data → risk signals by rules), `bottomline case open|advance|decide|list`
//! (identification within 15 days), `bottomline monitored eliminate` (risk elimination).
//! Department files themselves are imported like record files (`bottomline import`, the
//! inbox, `import --addr`).

use std::path::PathBuf;

use anyhow::Context;
use bottomline::report::{table, Format};
use bottomline::rpc::workflow_client::{CaseRow, SignalRow, WorkflowClient};
use clap::{Args, Subcommand};

/// Where and as whom.
#[derive(Args)]
pub struct Conn {
    /// The county node's gRPC address (`https://host:port`).
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Or the node's config file (its `listen` address, and its certificate unless
    /// --ca/--cert/--key are given).
    #[arg(short, long, global = true, env = "BOTTOMLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    auth: crate::cli_auth::ClientAuth,
}

impl Conn {
    fn run<F, Fut>(self, f: F) -> anyhow::Result<()>
    where
        F: FnOnce(WorkflowClient) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let target = crate::cli_auth::Target::resolve(self.addr, self.config, &self.auth)?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(async move {
            let c = WorkflowClient::connect(&target.addr, target.tls.as_ref()).await?;
            f(c).await
        })
    }
}

fn rules_text(rules: Option<PathBuf>) -> anyhow::Result<String> {
    match rules.or_else(|| std::env::var_os("BOTTOMLINE_WARNING_RULES").map(PathBuf::from)) {
        Some(p) => {
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read the rules file {}", p.display()))?;
            // Checked here too, so that a bad file is named by its path.
            bottomline::warning::WarningRules::parse(&t)
                .map_err(|e| anyhow::anyhow!("rules file {}: {e}", p.display()))?;
            Ok(t)
        }
        None => Ok(String::new()),
    }
}

/// `bottomline warn`.
#[derive(Args)]
pub struct WarnArgs {
    #[command(flatten)]
    conn: Conn,
    /// The rules (TOML; default: the defaults of deploy/warning-rules.toml, or
    /// $BOTTOMLINE_WARNING_RULES).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Show what would be created, changed or left stale; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove the rule-made signals the rules no longer make.
    #[arg(long)]
    prune: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn signals_table(title: &str, rows: &[SignalRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.household_code.clone(),
                s.rule.clone(),
                s.kind.clone(),
                if s.department == 0 {
                    String::new()
                } else {
                    s.department.to_string()
                },
                s.amount.clone(),
                s.date.clone(),
            ]
        })
        .collect();
    format!(
        "{title} ({}):\n{}",
        rows.len(),
        table(
            &[
                "信号",
                "户编码",
                "规则",
                "类型",
                "部门",
                "金额（元）",
                "日期"
            ],
            &cells
        )
    )
}

/// Run `bottomline warn`.
pub fn run_warn(a: WarnArgs) -> anyhow::Result<()> {
    let rules = rules_text(a.rules)?;
    let (dry, prune, format) = (a.dry_run, a.prune, a.format);
    a.conn.run(|mut c| async move {
        let r = c.warn(&rules, dry, prune).await?;
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                for (what, rows) in [
                    ("new", &r.new),
                    ("changed", &r.changed),
                    ("stale", &r.stale),
                ] {
                    for s in rows {
                        w.serialize((what, s))?;
                    }
                }
                print!("{}", String::from_utf8(w.into_inner()?)?);
            }
            Format::Table => {
                print!("{}", signals_table("new", &r.new));
                print!("{}", signals_table("changed", &r.changed));
                print!(
                    "{}",
                    signals_table(
                        if prune {
                            "stale (removed)"
                        } else {
                            "stale (kept; --prune removes them)"
                        },
                        &r.stale
                    )
                );
                println!(
                    "{} department rows: {} new, {} changed, {} stale, {} unchanged; {}",
                    r.rows,
                    r.new.len(),
                    r.changed.len(),
                    r.stale.len(),
                    r.unchanged,
                    if r.dry_run {
                        "dry run, nothing written".to_string()
                    } else {
                        format!("{} signals written", r.written)
                    }
                );
            }
        }
        Ok(())
    })
}

/// `bottomline case …`.
#[derive(Args)]
pub struct CaseArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: CaseCmd,
}

#[derive(Subcommand)]
enum CaseCmd {
    /// Open a case (a signal or a self-declaration): pending at stage declared.
    Open {
        /// Case id, unique in the county.
        #[arg(long)]
        id: String,
        /// The household.
        #[arg(long)]
        household: String,
        /// The day the risk was found (yyyy-mm-dd).
        #[arg(long)]
        discovered: String,
        /// 绿色通道 (disasters, accidents): assistance first, decided at any stage.
        #[arg(long)]
        green_channel: bool,
        /// What was declared or found.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Move a case to its next stage: village review → town check → county approval.
    Advance {
        /// Case id.
        id: String,
        /// The step's day (default: today).
        #[arg(long, default_value = "")]
        date: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Decide a case at county approval: include it (creating the monitoring row) or reject it.
    Decide {
        /// Case id.
        id: String,
        /// Include with this category: unstable_alleviated, marginal or sudden_hardship.
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        include: Option<String>,
        /// Reject, with the reason (e.g. "income above the line").
        #[arg(long)]
        reject: Option<String>,
        /// The decision's day (default: today).
        #[arg(long, default_value = "")]
        date: String,
    },
    /// Pending cases, oldest first (day 10 and later marked DUE, past 15 days OVERDUE; exit
    /// status 1 when any is overdue), or one case with its steps.
    List {
        /// Only cases at day 10 or later.
        #[arg(long)]
        due: bool,
        /// One case, with its steps.
        #[arg(long)]
        id: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

fn case_line(c: &CaseRow) -> String {
    format!(
        "{} {} {} discovered {} ({} days){}{}{}",
        c.id,
        c.household_code,
        if c.outcome == "pending" {
            format!("pending at {}", c.stage)
        } else {
            format!("{} on {}", c.outcome, c.decided_date)
        },
        c.discovered_date,
        c.days,
        if c.green_channel { " 绿色通道" } else { "" },
        if c.overdue {
            " OVERDUE"
        } else if c.due {
            " DUE"
        } else {
            ""
        },
        c.steps
            .iter()
            .map(|s| format!(
                "\n  {} {} → {} by {}{}",
                s.date,
                s.action,
                s.to,
                s.by,
                if s.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.note)
                }
            ))
            .collect::<String>()
    )
}

/// Run `bottomline case`.
pub fn run_case(a: CaseArgs) -> anyhow::Result<()> {
    let cmd = a.cmd;
    a.conn.run(|mut c| async move {
        match cmd {
            CaseCmd::Open {
                id,
                household,
                discovered,
                green_channel,
                note,
            } => {
                let r = c
                    .open(&id, &household, &discovered, green_channel, &note)
                    .await?;
                println!("{}", case_line(&r));
            }
            CaseCmd::Advance { id, date, note } => {
                let r = c.advance(&id, &date, &note).await?;
                println!("{}", case_line(&r));
            }
            CaseCmd::Decide {
                id,
                include,
                reject,
                date,
            } => {
                let r = match (include, reject) {
                    (Some(cat), _) => c.decide(&id, "include", &cat, "", &date).await?,
                    (None, Some(reason)) => c.decide(&id, "reject", "", &reason, &date).await?,
                    (None, None) => anyhow::bail!("--include CATEGORY or --reject REASON"),
                };
                println!("{}", case_line(&r));
            }
            CaseCmd::List { due, id, format } => {
                let l = c.list(id.as_deref(), due).await?;
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&l)?),
                    Format::Csv => {
                        let mut w = csv::Writer::from_writer(Vec::new());
                        for r in &l.cases {
                            w.serialize((
                                &r.id,
                                &r.household_code,
                                &r.discovered_date,
                                &r.outcome,
                                &r.stage,
                                r.green_channel,
                                r.days,
                                r.due,
                                r.overdue,
                            ))?;
                        }
                        print!("{}", String::from_utf8(w.into_inner()?)?);
                    }
                    Format::Table => {
                        for r in &l.cases {
                            println!("{}", case_line(r));
                        }
                        println!(
                            "{}: {} due (day 10 or later), {} overdue (past 15 days)",
                            l.today, l.due, l.overdue
                        );
                    }
                }
                if l.overdue > 0 {
                    std::process::exit(1);
                }
            }
        }
        Ok(())
    })
}

/// `bottomline monitored …`.
#[derive(Args)]
pub struct MonitoredArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: MonitoredCmd,
}

#[derive(Subcommand)]
enum MonitoredCmd {
    /// Record a household's risk as eliminated (风险消除), after the checks the rules name
    /// (income above the line, measures in place …); refused with the reasons otherwise.
    Eliminate {
        /// The household.
        household: String,
        /// The elimination's day (yyyy-mm-dd).
        #[arg(long)]
        date: String,
        /// The rules (TOML; default: the defaults, or $BOTTOMLINE_WARNING_RULES).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

/// Run `bottomline monitored`.
pub fn run_monitored(a: MonitoredArgs) -> anyhow::Result<()> {
    let MonitoredCmd::Eliminate {
        household,
        date,
        rules,
    } = a.cmd;
    let rules = rules_text(rules)?;
    a.conn.run(|mut c| async move {
        let (category, identified, eliminated) = c.eliminate(&household, &date, &rules).await?;
        println!(
            "{household} ({category}, identified {identified}): risk eliminated on {eliminated}"
        );
        Ok(())
    })
}
