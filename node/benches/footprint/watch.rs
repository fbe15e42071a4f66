//! What the footprint benchmark asks the running nodes, over mTLS with an operator
//! certificate: `Status` (are the links up; does every parent hold its children's figures)
//! and `Stats` (does the province show each county's figures as the county does).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline::security::tls::{self, ClientTls, Expect};
use bottomline_proto::v1 as pb;

use crate::common::Res;
use crate::procs::Tree;

pub type SyncClient = pb::sync_client::SyncClient<tonic::transport::Channel>;

/// A `Sync` client per node, each over its own channel.
pub async fn connect(tree: &Tree, tls: &ClientTls) -> Res<HashMap<Code, SyncClient>> {
    let mut out = HashMap::new();
    for n in &tree.nodes {
        let url = n.url.clone().ok_or("a node without address")?;
        let ch = tls::channel(
            &url,
            Some(tls),
            Expect::Any,
            Duration::from_secs(5),
            Some(Duration::from_secs(60)),
        )
        .await
        .map_err(|e| format!("node {}: {e}", n.code))?;
        let c = pb::sync_client::SyncClient::new(ch).max_decoding_message_size(16 << 20);
        out.insert(n.code, c);
    }
    Ok(out)
}

/// Every node's `Status`, asked concurrently.
pub async fn all_status(
    clients: &HashMap<Code, SyncClient>,
) -> Res<HashMap<Code, pb::StatusReply>> {
    let mut set = tokio::task::JoinSet::new();
    for (&code, c) in clients {
        let mut c = c.clone();
        set.spawn(async move { (code, c.status(pb::StatusRequest {}).await) });
    }
    let mut out = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (code, s) = r?;
        let s = s.map_err(|e| format!("status of {code}: {e}"))?;
        out.insert(code, s.into_inner());
    }
    Ok(out)
}

/// The nodes whose uplink is not connected (the top node has none).
pub fn unlinked(st: &HashMap<Code, pb::StatusReply>) -> Vec<Code> {
    let mut v: Vec<Code> = st
        .iter()
        .filter(|(c, s)| {
            c.parent().is_some_and(|p| st.contains_key(&p))
                && !s.uplink.as_ref().is_some_and(|u| u.connected)
        })
        .map(|(c, _)| *c)
        .collect();
    v.sort();
    v
}

/// Per node whose parent has not made its change log durable up to its head: (node, its
/// head − what the parent acked). Empty when every parent holds all its children's figures,
/// so the top node holds everyone's.
pub fn behind(st: &HashMap<Code, pb::StatusReply>) -> Vec<(Code, u64)> {
    let mut v = Vec::new();
    for (code, s) in st {
        let Some(ps) = code.parent().and_then(|p| st.get(&p)) else {
            continue;
        };
        let me = code.to_string();
        let acked = ps
            .children
            .iter()
            .find(|c| c.division == me)
            .map_or(0, |c| c.acked);
        if acked < s.head {
            v.push((*code, s.head - acked));
        }
    }
    v.sort();
    v
}

/// Whether every link is drained: for each node with a parent, the parent made its change
/// log and its ticket log durable up to their heads, and it acked the parent's ticket log up
/// to the parent's head (the ticket benchmark's quiet tree).
#[allow(dead_code)] // the soak benchmark's
pub fn quiet(st: &HashMap<Code, pb::StatusReply>) -> bool {
    st.iter().all(|(code, s)| {
        let Some(ps) = code.parent().and_then(|p| st.get(&p)) else {
            return true;
        };
        let me = code.to_string();
        ps.children
            .iter()
            .find(|c| c.division == me)
            .is_some_and(|c| {
                c.acked >= s.head
                    && c.ticket_acked_up >= s.ticket_head
                    && c.ticket_acked_down >= ps.ticket_head
            })
    })
}

/// Every node's change-log and ticket-log heads, in code order: two looks at a tree that
/// are [`quiet`] mean it is at rest only when these did not move between them (the looks
/// are not snapshots: a node's reply can predate an event its parent's reply shows
/// delivered).
#[allow(dead_code)] // the soak benchmark's
pub fn heads(st: &HashMap<Code, pb::StatusReply>) -> Vec<(Code, u64, u64)> {
    let mut v: Vec<_> = st
        .iter()
        .map(|(c, s)| (*c, s.head, s.ticket_head))
        .collect();
    v.sort();
    v
}

/// When the links came up: all of them, and each node's (the first reply that showed its
/// uplink connected).
pub struct Linked {
    pub all: Instant,
    pub each: HashMap<Code, Instant>,
}

/// Poll every `poll` until every node's uplink is connected, or an error at `deadline`.
pub async fn wait_linked(
    clients: &HashMap<Code, SyncClient>,
    tree: &mut Tree,
    poll: Duration,
    deadline: Instant,
) -> Res<Linked> {
    let mut each = HashMap::new();
    loop {
        let st = all_status(clients).await?;
        let now = Instant::now();
        let down = unlinked(&st);
        for c in st.keys().filter(|c| !down.contains(c)) {
            each.entry(*c).or_insert(now);
        }
        if down.is_empty() {
            return Ok(Linked { all: now, each });
        }
        tree.check_running()?;
        if Instant::now() > deadline {
            return Err(format!(
                "{} links did not come up ({:?}…)",
                down.len(),
                &down[..down.len().min(5)]
            )
            .into());
        }
        tokio::time::sleep(poll).await;
    }
}

/// When the top node held everything, and per level of children (by their code's length:
/// 4 = cities, 6 = counties) the first reply that showed every parent holding all its
/// children of that level.
pub struct Held {
    pub all: Option<Instant>,
    pub levels: BTreeMap<usize, Instant>,
}

/// Poll every `poll` until [`behind`] is empty in two replies in a row; `all` is when the
/// first of the two came (an upper bound: it got there between the previous poll and that
/// one), `None` at `deadline`. Says on stderr every 10 s how far along it is.
pub async fn wait_held(
    clients: &HashMap<Code, SyncClient>,
    tree: &mut Tree,
    poll: Duration,
    deadline: Instant,
) -> Res<Held> {
    let started = Instant::now();
    let mut said = Instant::now();
    let mut held: Option<Instant> = None;
    let mut levels = BTreeMap::new();
    loop {
        let st = all_status(clients).await?;
        let now = Instant::now();
        let b = behind(&st);
        for len in st
            .keys()
            .filter(|c| c.parent().is_some_and(|p| st.contains_key(&p)))
            .map(|c| c.len())
        {
            if !b.iter().any(|(c, _)| c.len() == len) {
                levels.entry(len).or_insert(now);
            }
        }
        if b.is_empty() {
            match held {
                Some(at) => {
                    return Ok(Held {
                        all: Some(at),
                        levels,
                    })
                }
                None => held = Some(now),
            }
        } else {
            held = None;
            if said.elapsed() >= Duration::from_secs(10) {
                said = Instant::now();
                // A parent acks a child's first sweep only when it is complete: the top
                // node's own head shows the progress meanwhile.
                let top = st
                    .iter()
                    .find(|(c, _)| !c.parent().is_some_and(|p| st.contains_key(&p)))
                    .map_or(0, |(_, s)| s.head);
                eprintln!(
                    "  {:.0} s: {} links not acked up to their child's head (e.g. {}); the top node's change log at {top}",
                    started.elapsed().as_secs_f64(),
                    b.len(),
                    b[0].0,
                );
            }
        }
        tree.check_running()?;
        if Instant::now() > deadline {
            return Ok(Held { all: None, levels });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Poll every `poll` until every node's `Status` shows a self-check finished at or after
/// `since_unix_ms` (0: any; each node runs its first 10 s after its start, then every
/// `check_secs`); the instant the reply saying so came, or `None` at `deadline`.
pub async fn wait_self_checked(
    clients: &HashMap<Code, SyncClient>,
    tree: &mut Tree,
    since_unix_ms: i64,
    poll: Duration,
    deadline: Instant,
) -> Res<Option<Instant>> {
    loop {
        let st = all_status(clients).await?;
        if st
            .values()
            .all(|s| self_check(s).is_some_and(|(at, _)| at >= since_unix_ms))
        {
            return Ok(Some(Instant::now()));
        }
        tree.check_running()?;
        if Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(poll).await;
    }
}

/// For each county: whether the province's `Stats` of the county for `period` equal the
/// county's own. Returns (equal, compared, the first that differ).
pub async fn stats_match(
    clients: &HashMap<Code, SyncClient>,
    province: Code,
    counties: &[Code],
    period: &str,
) -> Res<(usize, usize, Vec<Code>)> {
    let mut top = clients.get(&province).ok_or("no province client")?.clone();
    let (mut equal, mut differ) = (0, Vec::new());
    for &c in counties {
        let req = pb::StatsRequest {
            division: c.to_string(),
            period: period.to_string(),
        };
        let mut own = clients.get(&c).ok_or("no county client")?.clone();
        let a = own.stats(req.clone()).await?.into_inner().indicators;
        let b = top.stats(req).await?.into_inner().indicators;
        if a == b && !a.is_empty() {
            equal += 1;
        } else if differ.len() < 5 {
            differ.push(c);
        }
    }
    Ok((equal, counties.len(), differ))
}

/// [`stats_match`] for each of `years`: (equal, compared, the first that differ as
/// "code (year)").
#[allow(dead_code)] // the soak benchmark's
pub async fn stats_match_years(
    clients: &HashMap<Code, SyncClient>,
    province: Code,
    counties: &[Code],
    years: &[String],
) -> Res<(usize, usize, Vec<String>)> {
    let (mut matched, mut compared, mut differ) = (0, 0, Vec::new());
    for y in years {
        let (m, c, d) = stats_match(clients, province, counties, y).await?;
        matched += m;
        compared += c;
        differ.extend(d.into_iter().map(|c| format!("{c} ({y})")));
    }
    Ok((matched, compared, differ))
}

/// The node's last self-check, as (unix ms, ok), if one ran.
pub fn self_check(st: &pb::StatusReply) -> Option<(i64, bool)> {
    st.self_check.as_ref().map(|c| (c.at_unix_ms, c.ok))
}
