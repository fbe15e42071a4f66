//! The end state against the ground truth: every county's files imported into a fresh data
//! dir in this process (the truth), the running tree's figures over the `Stats` RPC, and,
//! once every node stopped, the stores themselves (replicas exact, every level = Σ children,
//! every ticket identical wherever it is held, every acknowledged action present).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use bottomline::division::Code;
use bottomline::ledger::Ledger;
use bottomline::period::{today_in_china, Kind, Period};
use bottomline::rpc::{fetch_stats, fetch_status};
use bottomline::stats::{CellKey, Stored, Value};
use bottomline::store::StoreOptions;
use bottomline::tickets::EventKind;

use super::workload::{Outcome, Planned};
use super::{Data, Tree};
use crate::common::{DEADLINE, POLL};

/// Periods of every kind compared.
pub const PERIODS: [&str; 5] = ["2026-W47", "2026-11", "2026-Q3", "2026", "2025"];

pub type Cells = BTreeMap<CellKey, i64>;
/// Counts and amounts (no ratios, no ticket or spot-check figures) by (indicator, dimension).
pub type Snapshot = BTreeMap<(String, String), i64>;

fn code(s: &str) -> Code {
    Code::parse(s).expect("division code")
}

/// Ticket and spot-check cells: the truth has none, the tree has its tickets'.
fn is_ticket_cell(k: &CellKey) -> bool {
    matches!(
        k.indicator,
        Stored::TicketsIssued
            | Stored::TicketsRectified
            | Stored::TicketsClosed
            | Stored::TicketsOverdue
            | Stored::SpotChecksDone
            | Stored::SpotCheckFindings
    )
}

fn snapshot_of(i: &bottomline::stats::Indicators) -> Snapshot {
    i.rows
        .iter()
        .filter(|r| !r.indicator.starts_with("ticket") && !r.indicator.starts_with("spot_check"))
        .filter_map(|r| match r.value {
            Value::Count(n) | Value::Fen(n) => {
                Some(((r.indicator.clone(), r.dimension.clone()), n))
            }
            Value::Ratio(_) | Value::Average(_) => None,
        })
        .collect()
}

/// The ground truth: each county's files in a fresh ledger, and the figures every node
/// should answer for each (division, period).
pub struct Truth {
    pub ledgers: BTreeMap<String, Ledger>,
    pub want: BTreeMap<(String, String), Snapshot>,
}

pub fn truth(dir: &Path, data: &Data) -> Truth {
    let today = today_in_china();
    let mut ledgers = BTreeMap::new();
    for c in data.counties() {
        let l = Ledger::open_or_init(
            &dir.join("truth").join(&c),
            Some(code(&c)),
            &StoreOptions::default(),
        )
        .expect("truth ledger");
        crate::common::import_generated(&l, &data.files, &c, today);
        ledgers.insert(c, l);
    }
    let mut want = BTreeMap::new();
    for p in PERIODS {
        let period = Period::parse(p).expect("period");
        let mut province = Snapshot::new();
        for (city, counties) in &data.cities {
            let mut sum = Snapshot::new();
            for c in counties {
                let s = snapshot_of(&ledgers[c].indicators(code(c), period).expect("truth"));
                for (k, v) in &s {
                    *sum.entry(k.clone()).or_insert(0) += v;
                    *province.entry(k.clone()).or_insert(0) += v;
                }
                want.insert((c.clone(), p.to_string()), s);
            }
            want.insert((city.clone(), p.to_string()), sum);
        }
        want.insert(("61".to_string(), p.to_string()), province);
    }
    let year = &want[&("61".to_string(), "2026".to_string())];
    for name in [
        "monitored_households",
        "signals",
        "measures",
        "measure_amount",
    ] {
        let v = year.get(&(name.to_string(), "total".to_string()));
        assert!(v.is_some_and(|v| *v > 0), "{name} is not empty in the data");
    }
    Truth { ledgers, want }
}

/// What keeps the tree from being quiet (empty when it is): every node up and linked (as the
/// child sees its uplink), every parent holding its child's whole durable change log, no
/// ticket event waiting on any link in either direction.
async fn unquiet(tree: &Tree) -> Vec<String> {
    let mut st = BTreeMap::new();
    for n in &tree.nodes {
        match fetch_status(&n.addr(), None).await {
            Ok(s) => {
                st.insert(n.division.clone(), s);
            }
            Err(e) => return vec![format!("{}: no status: {e}", n.label())],
        }
    }
    let mut why = Vec::new();
    for n in tree.nodes.iter().filter(|n| n.parent.is_some()) {
        let child = &st[&n.division];
        let parent = &st[&tree.nodes[n.parent.expect("parent")].division];
        let Some(seen) = parent
            .children
            .iter()
            .find(|c| c.division.to_string() == n.division)
        else {
            why.push(format!("{}: unknown to its parent", n.label()));
            continue;
        };
        if !child.uplink.connected {
            why.push(format!(
                "{}: uplink down ({:?})",
                n.label(),
                child.uplink.last_error
            ));
        }
        if seen.acked != child.head {
            why.push(format!(
                "{}: parent acked {} of head {}",
                n.label(),
                seen.acked,
                child.head
            ));
        }
        if seen.ticket_backlog_down != 0 || child.uplink.ticket_backlog != 0 {
            why.push(format!(
                "{}: tickets waiting down {} / up {}",
                n.label(),
                seen.ticket_backlog_down,
                child.uplink.ticket_backlog
            ));
        }
    }
    why
}

/// Children linked (their uplink connected) that their parent's `Status` shows disconnected.
pub async fn linked_but_shown_down(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for n in tree.nodes.iter().filter(|n| n.parent.is_some()) {
        let parent = &tree.nodes[n.parent.expect("parent")];
        let (Ok(child), Ok(ps)) = (
            fetch_status(&n.addr(), None).await,
            fetch_status(&parent.addr(), None).await,
        ) else {
            continue;
        };
        let seen = ps
            .children
            .iter()
            .find(|c| c.division.to_string() == n.division);
        if child.uplink.connected && seen.is_some_and(|s| !s.connected) {
            out.push(format!(
                "{} is linked but {}'s Status shows it disconnected",
                n.label(),
                parent.label()
            ));
        }
    }
    out
}

/// Wait until the tree is quiet ([`unquiet`] finds nothing), polling with a deadline.
pub async fn wait_quiet(tree: &Tree) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let why = unquiet(tree).await;
        if why.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the links did not drain:\n{}",
            why.join("\n")
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The running tree answers the truth over `Stats`: the province for every division, each
/// city for itself and its counties, each county for itself; and the province counts every
/// ticket issued and closed.
pub async fn rpc_matches_truth(tree: &Tree, truth: &Truth, plans: &[Planned]) {
    let mut asked: Vec<(String, String)> = Vec::new();
    for n in &tree.nodes {
        asked.push(("61".into(), n.division.clone()));
        if n.level() != "province" {
            asked.push((n.division.clone(), n.division.clone()));
        }
        if n.level() == "county" {
            asked.push((n.division[..4].to_string(), n.division.clone()));
        }
    }
    for (at, division) in &asked {
        let addr = tree.addr_of(at);
        for p in PERIODS {
            let period = Period::parse(p).expect("period");
            let (i, _) = fetch_stats(&addr, None, Some(code(division)), period)
                .await
                .unwrap_or_else(|e| panic!("Stats {division} {p} at {at}: {e}"));
            let want = &truth.want[&(division.clone(), p.to_string())];
            let got = snapshot_of(&i);
            assert!(
                got == *want,
                "{at} answers {division} {p} unlike the truth:\n got {got:?}\nwant {want:?}"
            );
        }
    }
    let year = Period::containing(Kind::Year, today_in_china());
    let (i, _) = fetch_stats(&tree.addr_of("61"), None, Some(code("61")), year)
        .await
        .expect("province stats");
    let closed = plans.iter().filter(|p| p.plan.end().0 == "closed").count() as i64;
    assert_eq!(i.count("tickets_issued", "total"), plans.len() as i64);
    assert_eq!(i.count("tickets_closed", "total"), closed);
    assert_eq!(
        i.count("tickets_open", "total"),
        plans.len() as i64 - closed
    );
}

fn subtree(cells: &Cells, top: Code) -> Cells {
    cells
        .iter()
        .filter(|(k, _)| top.contains(k.division))
        .map(|(k, v)| (*k, *v))
        .collect()
}

fn own(cells: &Cells, d: Code) -> Cells {
    cells
        .iter()
        .filter(|(k, _)| k.division == d)
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// The direct children's own cells summed under `parent`.
fn rolled_up(cells: &Cells, children: &[Code], parent: Code) -> Cells {
    let mut out = Cells::new();
    for (k, v) in cells.iter().filter(|(k, _)| children.contains(&k.division)) {
        let mut k = *k;
        k.division = parent;
        *out.entry(k).or_insert(0) += v;
    }
    out.retain(|_, v| *v != 0);
    out
}

fn nonzero(mut c: Cells) -> Cells {
    c.retain(|_, v| *v != 0);
    c
}

/// The stopped tree's stores: each county's cells equal a recomputation of its records and,
/// without its ticket cells, the truth (so every acknowledged import is there, once); every
/// parent holds exact replicas and its own cells are the sum of its children's.
pub fn stores_match_truth(tree: &Tree, truth: &Truth) -> BTreeMap<String, Ledger> {
    let opts = StoreOptions::default();
    let ledgers: BTreeMap<String, Ledger> = tree
        .nodes
        .iter()
        .map(|n| {
            let l =
                Ledger::open(&n.data, &opts).unwrap_or_else(|e| panic!("open {}: {e}", n.label()));
            (n.division.clone(), l)
        })
        .collect();
    let cells: BTreeMap<&String, Cells> = ledgers
        .iter()
        .map(|(d, l)| (d, l.all_cells().expect("cells")))
        .collect();
    for n in &tree.nodes {
        let d = code(&n.division);
        let l = &ledgers[&n.division];
        let mine = &cells[&n.division];
        if n.level() == "county" {
            assert_eq!(
                *mine,
                l.recompute_cells().expect("recompute"),
                "{}: cells = recomputation",
                n.label()
            );
            let mut records = mine.clone();
            records.retain(|k, _| !is_ticket_cell(k));
            let want = truth.ledgers[&n.division].all_cells().expect("truth cells");
            assert!(
                nonzero(records) == nonzero(want),
                "{}: its cells (tickets aside) equal the truth",
                n.label()
            );
        }
        let upward = if n.level() == "county" {
            l.upward_cells().expect("upward")
        } else {
            mine.clone()
        };
        // Every ancestor holds exactly what the node holds of its subtree.
        let mut up = n.parent;
        while let Some(a) = up {
            let anc = &tree.nodes[a];
            assert!(
                nonzero(subtree(&cells[&anc.division], d)) == nonzero(upward.clone()),
                "{} holds an exact replica of {}",
                anc.label(),
                n.label()
            );
            up = anc.parent;
        }
        let children: Vec<Code> = tree
            .nodes
            .iter()
            .filter(|c| {
                c.parent
                    .is_some_and(|p| tree.nodes[p].division == n.division)
            })
            .map(|c| code(&c.division))
            .collect();
        if !children.is_empty() {
            assert!(
                nonzero(own(mine, d)) == rolled_up(mine, &children, d),
                "{}: its own cells = Σ its children's",
                n.label()
            );
            assert!(!own(mine, d).is_empty(), "{} holds figures", n.label());
        }
    }
    ledgers
}

fn kind_name(k: &EventKind) -> &'static str {
    match k {
        EventKind::Issued(_) => "issue",
        EventKind::Delivered { .. } => "deliver",
        EventKind::Accepted => "accept",
        EventKind::Started => "start",
        EventKind::Rectified { .. } => "rectify",
        EventKind::Verified => "verify",
        EventKind::Returned { .. } => "return",
        _ => "other",
    }
}

/// Every ticket is held exactly by the nodes of its span, in one and the same state with the
/// same events at each, in its planned end state, delivered once; every acknowledged issue
/// and action is among its events (and no action more often than it was asked for).
pub fn tickets_match(
    tree: &Tree,
    ledgers: &BTreeMap<String, Ledger>,
    plans: &[Planned],
    o: &Outcome,
) {
    let by_key: BTreeMap<String, &Planned> = plans.iter().map(|p| (p.key.clone(), p)).collect();
    let mut states = BTreeMap::new();
    for n in &tree.nodes {
        let s = ledgers[&n.division].tickets().expect("tickets");
        let held: BTreeSet<String> = s.keys().map(|k| k.to_string()).collect();
        let want: BTreeSet<String> = plans
            .iter()
            .filter(|p| p.holders().contains(&n.division))
            .map(|p| p.key.clone())
            .collect();
        assert_eq!(
            held,
            want,
            "{} holds exactly the tickets of its spans",
            n.label()
        );
        states.insert(n.division.clone(), s);
    }
    for (division, s) in &states {
        for (k, st) in s {
            let key = k.to_string();
            let p = by_key[&key];
            let (end, returns) = p.plan.end();
            assert_eq!(st.state.to_string(), end, "{key} at {division}");
            assert_eq!(st.returns, returns, "{key} at {division}: returns");
            let issuer = &states[&p.issuer][k];
            assert_eq!(
                st, issuer,
                "{key}: {division} and the issuer {} agree",
                p.issuer
            );
            let events = ledgers[division].ticket_events(k).expect("events");
            let ids: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
            let issuer_ids: BTreeSet<String> = ledgers[&p.issuer]
                .ticket_events(k)
                .expect("events")
                .iter()
                .map(|e| e.id.to_string())
                .collect();
            assert_eq!(
                ids, issuer_ids,
                "{key}: the same events at {division} and the issuer"
            );
            let n =
                |name: &str| events.iter().filter(|e| kind_name(&e.kind) == name).count() as u32;
            assert_eq!(n("deliver"), 1, "{key} at {division}: delivered once");
            assert_eq!(n("issue"), 1, "{key} at {division}: issued once");
            for ((tk, action), (acked, made)) in &o.acts {
                if *tk == key {
                    let got = n(action);
                    assert!(
                        *acked <= got && got <= *made,
                        "{key} at {division}: {got} {action}(s), {acked} acked of {made} calls"
                    );
                }
            }
        }
    }
    for k in &o.issued_acked {
        assert!(
            states[&by_key[k].issuer]
                .keys()
                .any(|t| t.to_string() == *k),
            "{k} acknowledged"
        );
    }
}
