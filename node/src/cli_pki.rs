//! `bottomline pki …`: the provincial CA on disk — init, issue, list, renew, revoke.
//! Everything is done by [`bottomline::security::pki`]; this file parses and prints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bottomline::division::Code;
use bottomline::security::identity::check_name;
use bottomline::security::pki::{Entry, IssueOptions, Issued, Pki, CRL_DAYS, DEFAULT_DAYS};
use bottomline::security::{Identity, Role};
use clap::{Args, Subcommand, ValueEnum};

/// The CA directory and what to do in it.
#[derive(Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    cmd: PkiCmd,
}

/// The CA directory.
#[derive(Args)]
struct Dir {
    /// The CA directory (ca.pem, ca.key, crl.pem, index.json, certs/).
    #[arg(long, env = "BOTTOMLINE_PKI")]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum PkiCmd {
    /// Create the provincial CA in a new directory: ca.pem, ca.key (0600), crl.pem, index.json.
    Init {
        #[command(flatten)]
        dir: Dir,
        /// The CA's name (its certificate says "Bottomline CA NAME").
        #[arg(long, default_value = "Province")]
        name: String,
    },
    /// Issue a certificate: a node (--division), a person (--operator, --division, --role) or
    /// a relay (--relay). Writes certs/STEM.pem (with the CA) and certs/STEM.key (0600).
    Issue {
        #[command(flatten)]
        dir: Dir,
        /// A node serving this division; with --operator, the person's division.
        #[arg(long, required_unless_present = "relay")]
        division: Option<Code>,
        /// A person using the CLI (ASCII letters, digits, '.', '_', '-').
        #[arg(long, value_parser = parse_name, requires = "role", conflicts_with = "relay")]
        operator: Option<String>,
        /// The person's role: viewer (reads) or operator (reads and acts).
        #[arg(long, value_parser = parse_role, requires = "operator")]
        role: Option<Role>,
        /// A relay between networks.
        #[arg(long, value_parser = parse_name, conflicts_with = "division")]
        relay: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// A DNS name the node or relay is reached by (repeatable; default localhost and
        /// 127.0.0.1 when neither --dns nor --ip is given).
        #[arg(long)]
        dns: Vec<String>,
        /// An IP address the node or relay is reached at (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
    /// List every certificate issued, with its state (valid, expired, revoked).
    List {
        #[command(flatten)]
        dir: Dir,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// A new certificate (new key, new serial) for the same identity and names; the old one
    /// stays valid until it expires.
    Renew {
        #[command(flatten)]
        dir: Dir,
        /// The stem (node-610102, operator-zhang.san, relay-r1) or the bare name/division.
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
    /// Revoke a certificate (a serial) or all of a stem's, and rewrite crl.pem.
    Revoke {
        #[command(flatten)]
        dir: Dir,
        /// A stem (every certificate of it), a bare name/division, or a serial in hex.
        target: String,
        /// Why (free text; key-compromise, superseded, cessation-of-operation,
        /// affiliation-changed, privilege-withdrawn also go into the CRL as reason codes).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Re-sign crl.pem with the same revoked serials and a fresh nextUpdate (it is declared
    /// fresh for 30 days; nodes warn three days before it runs out). Run it from cron, e.g.
    /// weekly, then publish crl.pem as after a revocation.
    RefreshCrl {
        #[command(flatten)]
        dir: Dir,
    },
}

/// Printed after crl.pem is rewritten.
const PUBLISH_HINT: &str =
    "running nodes reload crl.pem within their reload interval; copy it to nodes on other machines";

/// How `list` prints.
#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON array.
    Json,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
}

fn parse_name(s: &str) -> Result<String, String> {
    check_name(s).map(|()| s.to_string())
}

/// Run one `bottomline pki` command.
pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    match args.cmd {
        PkiCmd::Init { dir, name } => {
            let pki = Pki::init(&dir.dir, &name)?;
            println!(
                "created the CA \"Bottomline CA {name}\" in {}",
                pki.dir().display()
            );
            println!(
                "  {}  the CA certificate: copy it to every node and operator",
                pki.ca_path().display()
            );
            println!(
                "  {}  the CA key (mode 0600): keep it here, back it up offline",
                pki.dir().join("ca.key").display()
            );
            println!(
                "  {}  the revocation list (empty)",
                pki.crl_path().display()
            );
            println!(
                "next: bottomline pki issue --dir {} --division CODE",
                pki.dir().display()
            );
        }
        PkiCmd::Issue {
            dir,
            division,
            operator,
            role,
            relay,
            days,
            dns,
            ip,
        } => {
            let identity = match (operator, relay, division, role) {
                (Some(name), None, Some(division), Some(role)) => Identity::Operator {
                    name,
                    division,
                    role,
                },
                (None, Some(name), None, None) => Identity::Relay { name },
                (None, None, Some(division), None) => Identity::Node { division },
                // clap's requires/conflicts rule the other combinations out.
                _ => anyhow::bail!(
                    "give --division CODE (a node), --operator NAME --division CODE --role ROLE, \
                     or --relay NAME"
                ),
            };
            if matches!(identity, Identity::Operator { .. }) && (!dns.is_empty() || !ip.is_empty())
            {
                anyhow::bail!("--dns and --ip are for nodes and relays, not operators");
            }
            let mut pki = Pki::open(&dir.dir)?;
            let opts = IssueOptions {
                days,
                dns,
                ips: ip,
                valid_from: None,
            };
            let issued = pki.issue(&identity, &opts)?;
            print_issued(&pki, &issued, "issued");
        }
        PkiCmd::List { dir, format } => {
            let pki = Pki::open(&dir.dir)?;
            let entries = pki.list();
            match format {
                ListFormat::Json => {
                    let rows: Vec<_> = entries.iter().map(entry_json).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                ListFormat::Table => print!("{}", table(&entries)),
            }
        }
        PkiCmd::Renew { dir, name, days } => {
            let mut pki = Pki::open(&dir.dir)?;
            let stem = pki.resolve(&name)?;
            let issued = pki.renew(&stem, days)?;
            print_issued(&pki, &issued, "renewed");
            println!(
                "the previous certificate of {stem} stays valid until it expires; \
                 `bottomline pki revoke` its serial to end it sooner"
            );
        }
        PkiCmd::RefreshCrl { dir } => {
            let mut pki = Pki::open(&dir.dir)?;
            pki.refresh_crl()?;
            let revoked = pki.list().iter().filter(|e| e.revoked.is_some()).count();
            println!(
                "wrote {} ({revoked} revoked, fresh for {CRL_DAYS} days)",
                pki.crl_path().display()
            );
            println!("{PUBLISH_HINT}");
        }
        PkiCmd::Revoke {
            dir,
            target,
            reason,
        } => {
            let mut pki = Pki::open(&dir.dir)?;
            let serial = target.to_ascii_lowercase().replace(':', "");
            let target = if pki.list().iter().any(|e| e.serial == serial) {
                target
            } else {
                pki.resolve(&target)?
            };
            let revoked = pki.revoke(&target, reason.as_deref())?;
            if revoked.is_empty() {
                let at: Vec<String> = pki
                    .list()
                    .iter()
                    .filter(|e| e.stem == target || e.serial == serial)
                    .map(|e| {
                        let when = e.revoked.map(day).unwrap_or_default();
                        format!("{} (serial {}) at {when}", e.stem, e.serial)
                    })
                    .collect();
                println!(
                    "already revoked: {}; {} unchanged",
                    at.join(", "),
                    pki.crl_path().display()
                );
            } else {
                for s in &revoked {
                    println!("revoked serial {s}");
                }
                println!("wrote {}", pki.crl_path().display());
                println!("{PUBLISH_HINT}");
            }
        }
    }
    Ok(())
}

fn print_issued(pki: &Pki, issued: &Issued, verb: &str) {
    println!(
        "{verb} {} — serial {}, valid until {}",
        issued.identity,
        issued.serial,
        day(issued.not_after)
    );
    println!(
        "  {}  certificate, then the CA certificate",
        issued.cert_path.display()
    );
    println!("  {}  private key (mode 0600)", issued.key_path.display());
    let ca = pki.ca_path();
    if matches!(issued.identity, Identity::Operator { .. }) {
        println!("to use the CLI as this person, add:");
        println!(
            "  --ca {} --cert {} --key {}",
            shell(&ca),
            shell(&issued.cert_path),
            shell(&issued.key_path)
        );
    } else {
        println!("for the {} config:", issued.identity);
        println!("[tls]");
        println!("ca = {}", toml_str(&ca));
        println!("cert = {}", toml_str(&issued.cert_path));
        println!("key = {}", toml_str(&issued.key_path));
        println!("crl = {}", toml_str(&pki.crl_path()));
    }
}

fn toml_str(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// A path for a shell command line: as is when it is plain, single-quoted otherwise.
fn shell(p: &Path) -> String {
    let s = p.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn day(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn entry_json(e: &Entry) -> serde_json::Value {
    let (kind, name, role) = match &e.identity {
        Identity::Node { .. } => ("node", None, None),
        Identity::Operator { name, role, .. } => {
            ("operator", Some(name.clone()), Some(role.as_str()))
        }
        Identity::Relay { name } => ("relay", Some(name.clone()), None),
    };
    serde_json::json!({
        "stem": e.stem,
        "kind": kind,
        "name": name,
        "division": e.identity.division().map(|d| d.to_string()),
        "role": role,
        "identity": e.identity.to_string(),
        "serial": e.serial,
        "not_before": e.not_before.to_string(),
        "not_after": e.not_after.to_string(),
        "dns": e.dns,
        "ips": e.ips,
        "state": e.state.as_str(),
        "revoked": e.revoked.map(|t| t.to_string()),
        "reason": e.reason,
    })
}

fn table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no certificates issued\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let state = match e.revoked {
                Some(t) => format!("revoked {}", day(t)),
                None => e.state.to_string(),
            };
            vec![
                e.stem.clone(),
                e.identity.to_string(),
                e.serial.clone(),
                day(e.not_after),
                state,
            ]
        })
        .collect();
    bottomline::report::table(&["STEM", "IDENTITY", "SERIAL", "NOT AFTER", "STATE"], &rows)
}
