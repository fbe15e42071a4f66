//! `bottomline tickets …`: rectification tickets at a running node, over its gRPC API.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use bottomline::division::Code;
use bottomline::ledger::Act;
use bottomline::report::{table, Format};
use bottomline::rpc::tickets_client::{
    ListFilter, NewTicket, ProgressReport, ProgressRow, TicketRow, TicketsClient,
};
use clap::{Args, Subcommand};

/// Where and as whom.
#[derive(Args)]
pub struct TicketsArgs {
    /// The node's gRPC address (`https://host:port`).
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Or the node's config file (its `listen` address, and its certificate unless
    /// --ca/--cert/--key are given).
    #[arg(short, long, global = true, env = "BOTTOMLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    auth: crate::cli_auth::ClientAuth,
    /// The division acting (default: your certificate's; a county node also acts for its
    /// towns and villages). It must lie within your certificate's division.
    #[arg(long, global = true)]
    actor: Option<Code>,
    #[command(subcommand)]
    cmd: TicketsCmd,
}

#[derive(Subcommand)]
enum TicketsCmd {
    /// Issue one ticket to a division below the actor.
    Issue {
        /// Id, unique among the issuer's tickets.
        #[arg(long)]
        id: String,
        /// Target division code.
        #[arg(long)]
        target: String,
        /// Category (free text, e.g. housing safety).
        #[arg(long)]
        category: String,
        /// inspection, spot_check, assessment, department_feedback or self_found.
        #[arg(long)]
        source: String,
        /// low, medium or high.
        #[arg(long)]
        severity: String,
        /// Rectification deadline (yyyy-mm-dd, China date, inclusive).
        #[arg(long)]
        deadline: String,
        /// What is wrong.
        #[arg(long)]
        description: String,
        /// The household concerned.
        #[arg(long)]
        household_code: Option<String>,
        /// The inventory it belongs to.
        #[arg(long)]
        inventory: Option<String>,
    },
    /// Issue an inventory (清单交办) from a tickets.csv file: every row or none.
    ///
    /// Columns: id, target, category, source, severity, deadline, description and optionally
    /// household_code, in any order.
    Inventory {
        /// The tickets.csv file.
        file: PathBuf,
        /// The inventory's name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tickets the node holds.
    List {
        /// Only in this state (issued, delivered, accepted, rectifying, rectified, closed).
        #[arg(long)]
        state: Option<String>,
        /// Only targeting this division's subtree.
        #[arg(long)]
        target: Option<Code>,
        /// Only of this inventory.
        #[arg(long)]
        inventory: Option<String>,
        /// Only overdue tickets.
        #[arg(long)]
        overdue: bool,
        /// Only issued by this division.
        #[arg(long)]
        issuer: Option<Code>,
        /// At most this many (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one ticket (ISSUER/ID) with its history.
    Show {
        /// ISSUER/ID.
        key: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Accept delivered tickets (as their target).
    Accept {
        /// ISSUER/ID of each ticket.
        #[arg(
            required_unless_present = "all_delivered",
            conflicts_with = "all_delivered"
        )]
        keys: Vec<String>,
        /// Every delivered ticket whose target is the actor.
        #[arg(long)]
        all_delivered: bool,
    },
    /// Start rectifying accepted tickets.
    Start {
        /// ISSUER/ID of each ticket.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Report tickets rectified, with a note.
    Rectify {
        /// ISSUER/ID of each ticket.
        #[arg(required = true)]
        keys: Vec<String>,
        /// What was done.
        #[arg(long)]
        note: String,
    },
    /// Verify and close rectified tickets (销号; as their issuer).
    Verify {
        /// ISSUER/ID of each ticket.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Return rectified tickets for rework (as their issuer).
    Return {
        /// ISSUER/ID of each ticket.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Why the rectification is not accepted.
        #[arg(long)]
        reason: String,
    },
    /// Flag supervision (督办) of tickets, or lift it with --off.
    Supervise {
        /// ISSUER/ID of each ticket.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Lift the supervision instead.
        #[arg(long)]
        off: bool,
    },
    /// Split an accepted ticket into sub-tickets for child divisions of its target.
    Split {
        /// ISSUER/ID.
        key: String,
        /// Child division codes, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        into: Vec<Code>,
    },
    /// Progress to "cleared to zero" (清零) per region.
    Progress {
        /// Only the tickets of this inventory (default: all tickets held).
        #[arg(long)]
        inventory: Option<String>,
        /// The division looking (default: the node's own).
        #[arg(long)]
        division: Option<Code>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// Run `bottomline tickets …`.
pub fn run(args: TicketsArgs) -> anyhow::Result<()> {
    let target = crate::cli_auth::Target::resolve(args.addr, args.config, &args.auth)?;
    let actor = args.actor;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut c = TicketsClient::connect(&target.addr, target.tls.as_ref()).await?;
        match args.cmd {
            TicketsCmd::Issue {
                id,
                target,
                category,
                source,
                severity,
                deadline,
                description,
                household_code,
                inventory,
            } => {
                let keys = c
                    .issue(
                        actor,
                        vec![NewTicket {
                            id,
                            target,
                            category,
                            source,
                            severity,
                            deadline,
                            description,
                            household_code,
                            inventory,
                        }],
                    )
                    .await?;
                for k in keys {
                    println!("issued {k}");
                }
            }
            TicketsCmd::Inventory { file, name } => {
                let name = match name {
                    Some(n) => n,
                    None => file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .context("give the inventory a --name")?,
                };
                let csv = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let keys = c
                    .inventory(actor, &name, csv)
                    .await
                    .with_context(|| file.display().to_string())?;
                println!("inventory {name}: {} ticket(s) issued", keys.len());
                for k in keys {
                    println!("  {k}");
                }
            }
            TicketsCmd::List {
                state,
                target,
                inventory,
                overdue,
                issuer,
                limit,
                format,
            } => {
                let f = ListFilter {
                    state,
                    target,
                    inventory,
                    overdue,
                    issuer,
                    limit,
                };
                let (rows, total) = c.list(&f).await?;
                print!("{}", render_list(&rows, total, format));
            }
            TicketsCmd::Show { key, format } => {
                let t = c.show(&key).await?;
                print!("{}", render_show(&t, format));
            }
            TicketsCmd::Accept {
                keys,
                all_delivered,
            } => {
                let keys = if all_delivered {
                    let own = target
                        .tls
                        .as_ref()
                        .and_then(|t| t.own().identity.division());
                    let me = match actor.or(own) {
                        Some(a) => a,
                        None => {
                            bottomline::rpc::fetch_status(&target.addr, None)
                                .await
                                .map_err(|e| anyhow::anyhow!("{e}"))?
                                .division
                        }
                    };
                    let (rows, _) = c
                        .list(&ListFilter {
                            state: Some("delivered".into()),
                            target: Some(me),
                            ..Default::default()
                        })
                        .await?;
                    let keys: Vec<String> = rows
                        .into_iter()
                        .filter(|r| r.target == me.to_string())
                        .map(|r| r.key)
                        .collect();
                    if keys.is_empty() {
                        println!("no delivered ticket targets {me}");
                        return Ok(());
                    }
                    keys
                } else {
                    keys
                };
                act(&mut c, actor, &keys, &Act::Accept).await?;
            }
            TicketsCmd::Start { keys } => act(&mut c, actor, &keys, &Act::Start).await?,
            TicketsCmd::Rectify { keys, note } => {
                act(&mut c, actor, &keys, &Act::Rectify { note }).await?
            }
            TicketsCmd::Verify { keys } => act(&mut c, actor, &keys, &Act::Verify).await?,
            TicketsCmd::Return { keys, reason } => {
                act(&mut c, actor, &keys, &Act::Return { reason }).await?
            }
            TicketsCmd::Supervise { keys, off } => {
                act(&mut c, actor, &keys, &Act::Supervise { on: !off }).await?
            }
            TicketsCmd::Split { key, into } => {
                let rows = act_rows(&mut c, actor, &[key], &Act::Split { into }).await?;
                for r in rows {
                    for s in &r.split {
                        println!("  sub-ticket {s}");
                    }
                }
            }
            TicketsCmd::Progress {
                inventory,
                division,
                format,
            } => {
                let p = c.progress(inventory.as_deref(), division).await?;
                print!("{}", render_progress(&p, format));
            }
        }
        Ok(())
    })
}

async fn act_rows(
    c: &mut TicketsClient,
    actor: Option<Code>,
    keys: &[String],
    a: &Act,
) -> anyhow::Result<Vec<TicketRow>> {
    let rows = c.act(actor, keys, a).await?;
    println!("{}: {} ticket(s)", a.name(), rows.len());
    print!("{}", table_of(&rows));
    Ok(rows)
}

async fn act(
    c: &mut TicketsClient,
    actor: Option<Code>,
    keys: &[String],
    a: &Act,
) -> anyhow::Result<()> {
    act_rows(c, actor, keys, a).await.map(drop)
}

fn table_of(rows: &[TicketRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.target.clone(),
                r.target_name.clone(),
                r.state.clone(),
                r.deadline.clone(),
                if r.overdue {
                    "OVERDUE".into()
                } else {
                    String::new()
                },
                r.supervised_by
                    .as_ref()
                    .map(|s| format!("by {s}"))
                    .unwrap_or_default(),
                r.category.clone(),
            ]
        })
        .collect();
    table(
        &[
            "KEY",
            "TARGET",
            "NAME",
            "STATE",
            "DEADLINE",
            "OVERDUE",
            "SUPERVISED",
            "CATEGORY",
        ],
        &body,
    )
}

fn json(v: &impl serde::Serialize) -> String {
    // Plain data: serialisation cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn csv_text(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(&r);
    }
    // Writing to a Vec cannot fail.
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn render_list(rows: &[TicketRow], total: u32, format: Format) -> String {
    match format {
        Format::Table => {
            let mut s = table_of(rows);
            if rows.len() < total as usize {
                let _ = writeln!(s, "({} of {total} tickets shown)", rows.len());
            } else {
                let _ = writeln!(s, "({total} ticket(s))");
            }
            s
        }
        Format::Json => json(&serde_json::json!({ "total": total, "tickets": rows })),
        Format::Csv => csv_text(
            &[
                "key",
                "issuer",
                "id",
                "target",
                "target_name",
                "state",
                "deadline",
                "overdue",
                "supervised_by",
                "category",
                "source",
                "severity",
                "inventory",
                "parent",
                "issued_on",
                "rectified_on",
                "closed_on",
            ],
            rows.iter().map(|r| {
                vec![
                    r.key.clone(),
                    r.issuer.clone(),
                    r.id.clone(),
                    r.target.clone(),
                    r.target_name.clone(),
                    r.state.clone(),
                    r.deadline.clone(),
                    r.overdue.to_string(),
                    opt(&r.supervised_by),
                    r.category.clone(),
                    r.source.clone(),
                    r.severity.clone(),
                    opt(&r.inventory),
                    opt(&r.parent),
                    r.issued_on.clone(),
                    opt(&r.rectified_on),
                    opt(&r.closed_on),
                ]
            }),
        ),
    }
}

/// A Unix-ms time as China local time.
fn china_time(ms: i64) -> String {
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn render_show(t: &TicketRow, format: Format) -> String {
    match format {
        Format::Json => json(t),
        Format::Csv => csv_text(
            &[
                "time",
                "event",
                "lamport",
                "actor",
                "action",
                "detail",
                "ignored",
                "signed_by",
            ],
            t.history.iter().map(|h| {
                vec![
                    china_time(h.at_unix_ms),
                    h.event.clone(),
                    h.lamport.to_string(),
                    h.actor.clone(),
                    h.action.clone(),
                    h.detail.clone(),
                    opt(&h.ignored),
                    h.signed_by.clone(),
                ]
            }),
        ),
        Format::Table => {
            let mut s = String::new();
            let target = if t.target_name.is_empty() {
                t.target.clone()
            } else {
                format!("{} {}", t.target, t.target_name)
            };
            let state = if t.overdue {
                format!("{} (OVERDUE)", t.state)
            } else {
                t.state.clone()
            };
            let mut fields: Vec<(&str, String)> = vec![
                ("ticket", t.key.clone()),
                ("state", state),
                ("issuer", t.issuer.clone()),
                ("target", target),
                ("category", t.category.clone()),
                ("source", t.source.clone()),
                ("severity", t.severity.clone()),
                ("deadline", t.deadline.clone()),
                ("description", t.description.clone()),
            ];
            let optional: [(&str, Option<String>); 12] = [
                ("household", t.household_code.clone()),
                ("inventory", t.inventory.clone()),
                ("parent", t.parent.clone()),
                ("supervised by", t.supervised_by.clone()),
                (
                    "split into",
                    (!t.split.is_empty()).then(|| t.split.join(", ")),
                ),
                ("note", t.note.clone()),
                (
                    "returned",
                    (t.returns > 0).then(|| format!("{} time(s)", t.returns)),
                ),
                ("return reason", t.return_reason.clone()),
                ("issued on", Some(t.issued_on.clone())),
                ("delivered on", t.delivered_on.clone()),
                ("rectified on", t.rectified_on.clone()),
                ("closed on", t.closed_on.clone()),
            ];
            fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
            let w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
            for (k, v) in &fields {
                let _ = writeln!(s, "{:w$} {v}", format!("{k}:"));
            }
            let _ = writeln!(s, "history:");
            let rows: Vec<Vec<String>> = t
                .history
                .iter()
                .map(|h| {
                    let mut detail = h.detail.clone();
                    if let Some(r) = &h.ignored {
                        if !detail.is_empty() {
                            detail.push_str("  ");
                        }
                        let _ = write!(detail, "ignored: {r}");
                    }
                    vec![
                        format!("  {}", china_time(h.at_unix_ms)),
                        h.actor.clone(),
                        h.action.clone(),
                        detail,
                        h.signed_by.clone(),
                    ]
                })
                .collect();
            s.push_str(&table(
                &["  TIME (UTC+8)", "ACTOR", "ACTION", "DETAIL", "SIGNED BY"],
                &rows,
            ));
            s
        }
    }
}

fn progress_cells(r: &ProgressRow) -> Vec<String> {
    vec![
        r.division.clone(),
        r.name.clone(),
        r.issued.to_string(),
        r.open.to_string(),
        r.rectified.to_string(),
        r.closed.to_string(),
        r.overdue.to_string(),
        if r.cleared_to_zero { "yes" } else { "no" }.into(),
    ]
}

fn render_progress(p: &ProgressReport, format: Format) -> String {
    const HEADER: [&str; 8] = [
        "DIVISION",
        "NAME",
        "ISSUED",
        "OPEN",
        "RECTIFIED",
        "CLOSED",
        "OVERDUE",
        "CLEARED",
    ];
    match format {
        Format::Json => json(p),
        Format::Csv => {
            let header: Vec<String> = HEADER.iter().map(|h| h.to_lowercase()).collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut rows: Vec<Vec<String>> = p.regions.iter().map(progress_cells).collect();
            let mut total = progress_cells(&p.total);
            total[1] = "total".into();
            rows.push(total);
            csv_text(&header, rows)
        }
        Format::Table => {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "{} at {}{} on {}",
                p.inventory
                    .as_ref()
                    .map_or("all tickets".to_string(), |n| format!("inventory {n}")),
                p.total.division,
                if p.total.name.is_empty() {
                    String::new()
                } else {
                    format!(" {}", p.total.name)
                },
                p.today
            );
            let mut rows: Vec<Vec<String>> = p.regions.iter().map(progress_cells).collect();
            let mut total = progress_cells(&p.total);
            total[0] = "total".into();
            total[1] = String::new();
            rows.push(total);
            s.push_str(&table(&HEADER, &rows));
            s
        }
    }
}
