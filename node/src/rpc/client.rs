//! The CLI's one-query clients of a node's `Sync` service: `status` and `stats --addr`,
//! returning plain Rust values.

use std::time::Duration;

use bottomline_proto::v1 as pb;

use super::{ChildReport, UplinkState};
use crate::division::Code;
use crate::period::Period;
use crate::security::tls::{self, ClientTls, Expect};
use crate::stats::Value;

/// A node's link states as `bottomline status` shows them (decoded from the `Status` RPC).
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// The node's division.
    pub division: Code,
    /// Its software version string.
    pub software: String,
    /// Highest durable position of its change log.
    pub head: u64,
    /// Highest durable position of its ticket log.
    pub ticket_head: u64,
    /// When a quiet child counts as silent.
    pub silent_child_secs: u64,
    /// When a child with a backlog and no progress counts as stalled.
    pub stalled_child_secs: f64,
    /// Its own link to its parent.
    pub uplink: UplinkState,
    /// Its children's links.
    pub children: Vec<ChildReport>,
    /// Names of the node and its children, as far as the node knows them.
    pub names: crate::division::Registry,
    /// Set when the node is a relay: its certificate name (`division` is then the parent
    /// it relays to, and each child carries its custody).
    pub relay: Option<String>,
    /// The node's last check of itself, if one ran.
    pub self_check: Option<SelfCheckView>,
}

/// A node's last check of itself, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfCheckView {
    /// When it finished (Unix ms).
    pub at_unix_ms: i64,
    /// No cell differed.
    pub ok: bool,
    /// What was compared.
    pub what: String,
    /// Cells compared.
    pub cells: u64,
    /// Cells that differ.
    pub differing: u64,
    /// The first differing cells, as text.
    pub first: Vec<String>,
}

fn name_into(names: &mut crate::division::Registry, code: Code, name: &str) {
    if !name.is_empty() {
        names.insert(crate::division::Division {
            code,
            name: name.to_string(),
        });
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client of the node at `addr` for one query (the CLI's `status` and `stats --addr`),
/// over mTLS with `tls`.
async fn query_client(
    addr: &str,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<pb::sync_client::SyncClient<tonic::transport::Channel>, BoxError> {
    let channel = tls::channel(
        addr,
        tls,
        Expect::Any,
        Duration::from_secs(5),
        Some(timeout),
    )
    .await
    .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    Ok(pb::sync_client::SyncClient::new(channel)
        .max_decoding_message_size(super::MESSAGE_LIMIT)
        .max_encoding_message_size(super::MESSAGE_LIMIT))
}

/// Ask the node at `addr` (`https://host:port`; `http://` for an insecure node) for its link
/// states.
pub async fn fetch_status(
    addr: &str,
    tls: Option<&ClientTls>,
) -> Result<NodeStatus, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = query_client(addr, tls, Duration::from_secs(30)).await?;
    let r = client.status(pb::StatusRequest {}).await?.into_inner();
    let up = r.uplink.unwrap_or_default();
    let mut names = crate::division::Registry::new();
    let division = Code::parse(&r.division)?;
    name_into(&mut names, division, &r.name);
    for c in &r.children {
        if let Ok(code) = Code::parse(&c.division) {
            name_into(&mut names, code, &c.name);
        }
    }
    let children = r
        .children
        .iter()
        .map(|c| {
            Ok(ChildReport {
                division: Code::parse(&c.division)?,
                connected: c.connected,
                last_contact_unix_ms: c.last_contact_unix_ms,
                acked: c.acked,
                head: c.head,
                backlog: c.backlog,
                silent: c.silent,
                ticket_acked_up: c.ticket_acked_up,
                ticket_backlog_up: c.ticket_backlog_up,
                ticket_acked_down: c.ticket_acked_down,
                ticket_backlog_down: c.ticket_backlog_down,
                ticket_backlog_down_at_least: c.ticket_backlog_down_at_least,
                via_relay: (!c.via_relay.is_empty()).then(|| c.via_relay.clone()),
                stalled: c.stalled,
                custody: (!r.relay.is_empty()).then_some(super::Custody {
                    up: c.custody_up,
                    down: c.custody_down,
                    parent_connected: c.parent_connected,
                }),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(NodeStatus {
        names,
        division,
        software: r.software,
        head: r.head,
        ticket_head: r.ticket_head,
        silent_child_secs: r.silent_child_secs,
        stalled_child_secs: r.stalled_child_secs,
        relay: (!r.relay.is_empty()).then(|| r.relay.clone()),
        self_check: r.self_check.map(|c| SelfCheckView {
            at_unix_ms: c.at_unix_ms,
            ok: c.ok,
            what: c.what,
            cells: c.cells,
            differing: c.differing,
            first: c.first,
        }),
        uplink: UplinkState {
            parent: (!up.parent.is_empty()).then_some(up.parent),
            connected: up.connected,
            acked: up.acked,
            backlog: up.backlog,
            ticket_acked: up.ticket_acked,
            ticket_backlog: up.ticket_backlog,
            last_error: (!up.last_error.is_empty()).then_some(up.last_error),
            // Not on the wire: the node's own view.
            ..UplinkState::default()
        },
        children,
    })
}

/// Ask the node at `addr` for the indicators of `division` (empty: its own) for `period`.
pub async fn fetch_stats(
    addr: &str,
    tls: Option<&ClientTls>,
    division: Option<Code>,
    period: Period,
) -> Result<
    (crate::stats::Indicators, crate::division::Registry),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let mut client = query_client(addr, tls, Duration::from_secs(60)).await?;
    let r = client
        .stats(pb::StatsRequest {
            division: division.map(|d| d.to_string()).unwrap_or_default(),
            period: period.to_string(),
        })
        .await?
        .into_inner();
    let mut names = crate::division::Registry::new();
    let ind = indicators_of(r, &mut names)?;
    Ok((ind, names))
}

/// What a region report asks for (see [`crate::regions`]).
#[derive(Clone, Debug)]
pub struct ReportQuery {
    /// The division (the node's own when `None`).
    pub division: Option<Code>,
    /// Which divisions.
    pub scope: crate::regions::Scope,
    /// The period, the first of a run, or the year of `each`.
    pub period: Period,
    /// The last period of a run.
    pub until: Option<Period>,
    /// Every week or month of the year `period`.
    pub each: Option<crate::period::Kind>,
}

/// Ask the node at `addr` for a region report: the entries (divisions in code order, each
/// with its periods) and the divisions' names.
pub async fn fetch_report(
    addr: &str,
    tls: Option<&ClientTls>,
    q: &ReportQuery,
) -> Result<
    (Vec<crate::stats::Indicators>, crate::division::Registry),
    Box<dyn std::error::Error + Send + Sync>,
> {
    use crate::regions::Scope;
    let mut client = query_client(addr, tls, Duration::from_secs(60)).await?;
    let (scope, level) = match q.scope {
        Scope::Children => (pb::ReportScope::Children, String::new()),
        Scope::Level(l) => (pb::ReportScope::Level, l.as_str().to_string()),
        Scope::Only => (pb::ReportScope::Division, String::new()),
    };
    let r = client
        .report(pb::ReportRequest {
            division: q.division.map(|d| d.to_string()).unwrap_or_default(),
            scope: scope as i32,
            level,
            period: q.period.to_string(),
            until: q.until.map(|p| p.to_string()).unwrap_or_default(),
            each: q.each.map(|k| k.as_str().to_string()).unwrap_or_default(),
        })
        .await?
        .into_inner();
    let mut names = crate::division::Registry::new();
    let mut entries = Vec::with_capacity(r.rows.len());
    for row in r.rows {
        if row.values.len() != r.columns.len() {
            return Err(format!(
                "a report row of {} has {} values for {} columns",
                row.division,
                row.values.len(),
                r.columns.len()
            )
            .into());
        }
        let division = Code::parse(&row.division)?;
        name_into(&mut names, division, &row.name);
        let rows = r
            .columns
            .iter()
            .zip(&row.values)
            // A division without signals from a department has no row for it.
            .filter(|(c, v)| !(c.dimension.starts_with("department=") && **v == 0.0))
            .map(|(c, &v)| crate::stats::Row {
                indicator: c.indicator.clone(),
                dimension: c.dimension.clone(),
                value: match c.unit.as_str() {
                    "fen" => Value::Fen(v as i64),
                    "ratio" => Value::Ratio((!v.is_nan()).then_some(v)),
                    "average" => Value::Average((!v.is_nan()).then_some(v)),
                    _ => Value::Count(v as i64),
                },
            })
            .collect();
        entries.push(crate::stats::Indicators {
            division,
            period: Period::parse(&row.period)?,
            first_day: day(&row.first_day)?,
            last_day: day(&row.last_day)?,
            rows,
        });
    }
    Ok((entries, names))
}

fn day(s: &str) -> Result<jiff::civil::Date, String> {
    s.parse()
        .map_err(|e| format!("bad date {s:?} in the reply: {e}"))
}

/// A `StatsReply` as indicators; the division's name goes into `names`.
fn indicators_of(
    r: pb::StatsReply,
    names: &mut crate::division::Registry,
) -> Result<crate::stats::Indicators, Box<dyn std::error::Error + Send + Sync>> {
    let rows = r
        .indicators
        .into_iter()
        .map(|i| {
            let value = match i.unit.as_str() {
                "fen" => Value::Fen(i.value),
                "ratio" => Value::Ratio(i.defined.then_some(i.ratio)),
                "average" => Value::Average(i.defined.then_some(i.ratio)),
                _ if i.is_ratio => Value::Ratio(Some(i.ratio)),
                _ => Value::Count(i.value),
            };
            crate::stats::Row {
                indicator: i.name,
                dimension: i.dimension,
                value,
            }
        })
        .collect();
    let division = Code::parse(&r.division)?;
    name_into(names, division, &r.name);
    Ok(crate::stats::Indicators {
        division,
        period: Period::parse(&r.period)?,
        first_day: day(&r.first_day)?,
        last_day: day(&r.last_day)?,
        rows,
    })
}

/// One file imported into a running node (`bottomline import --addr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteImported {
    /// The file's name.
    pub file: String,
    /// What it held.
    pub kind: String,
    /// Data rows read.
    pub rows: u64,
    /// New records.
    pub inserted: u64,
    /// Corrections.
    pub corrected: u64,
    /// Unchanged records.
    pub unchanged: u64,
    /// Statistics cells written.
    pub cells_written: u64,
}

/// What an import into a running node did: the files imported, and the first one refused
/// with the reason (every bad line, field and reason).
#[derive(Clone, Debug, Default)]
pub struct RemoteImport {
    /// Imported, in dependency order.
    pub imported: Vec<RemoteImported>,
    /// The refused file and why.
    pub rejected: Option<(String, String)>,
}

/// Pieces of a file sent per message (below gRPC's 4 MiB message limit).
const IMPORT_CHUNK: usize = 1 << 20;

/// Stream `paths` to the `Import` service of the county node at `addr`, which imports them
/// while it serves. Each file is read in pieces while it is sent.
pub async fn import_files(
    addr: &str,
    tls: Option<&ClientTls>,
    paths: &[std::path::PathBuf],
) -> Result<RemoteImport, BoxError> {
    let mut named = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name", p.display()))?
            .to_string();
        named.push((p.clone(), name));
    }
    let channel = tls::channel(addr, tls, Expect::Any, Duration::from_secs(5), None)
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let mut client = pb::import_client::ImportClient::new(channel)
        .max_decoding_message_size(super::MESSAGE_LIMIT)
        .max_encoding_message_size(super::MESSAGE_LIMIT);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportChunk>(4);
    let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
        use std::io::Read;
        for (path, name) in named {
            let mut f =
                std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut sent_any = false;
            loop {
                let mut buf = vec![0u8; IMPORT_CHUNK];
                let n = f
                    .read(&mut buf)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if n == 0 && sent_any {
                    break;
                }
                buf.truncate(n);
                let chunk = pb::ImportChunk {
                    file_name: name.clone(),
                    data: buf,
                };
                if tx.blocking_send(chunk).is_err() {
                    return Ok(());
                }
                sent_any = true;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(())
    });
    let reply = client
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reader.await.map_err(|e| e.to_string())??;
    let r = reply?.into_inner();
    Ok(RemoteImport {
        imported: r
            .files
            .into_iter()
            .map(|f| RemoteImported {
                file: f.file_name,
                kind: f.kind,
                rows: f.rows,
                inserted: f.inserted,
                corrected: f.corrected,
                unchanged: f.unchanged,
                cells_written: f.cells_written,
            })
            .collect(),
        rejected: (!r.rejected_file.is_empty()).then_some((r.rejected_file, r.error)),
    })
}
