//! What must hold after the heal: nothing acked is missing, every level equals the ground
//! truth computed from the counties' records, every ticket is in one and the same state
//! everywhere it is held.

use std::collections::BTreeMap;

use bottomline::division::Code;
use bottomline::domain::RecordKind;
use bottomline::ledger::Ledger;
use bottomline::stats::{CellKey, Stored};

use super::World;

type Cells = BTreeMap<CellKey, i64>;

/// What a node sends its parent: the cells of its own division and of the divisions below it
/// down to county level (towns' and villages' cells stay at their county), non-zero.
fn sent_up(l: &Ledger, node: Code) -> Result<Cells, String> {
    let mut cells = l.all_cells().map_err(|e| e.to_string())?;
    cells.retain(|k, v| *v != 0 && node.contains(k.division) && k.division.to_string().len() <= 6);
    Ok(cells)
}

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

fn first_difference(a: &Cells, b: &Cells) -> String {
    for (k, v) in a {
        if b.get(k) != Some(v) {
            return format!("{k:?}: {v} vs {:?}", b.get(k));
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            return format!("{k:?}: missing vs {v}");
        }
    }
    "none".into()
}

/// Every check; the first failure as an error.
pub fn all(w: &World, truth: &BTreeMap<Code, Cells>) -> Result<(), String> {
    records_acked(w)?;
    counties_equal_truth(w, truth)?;
    parents_equal_children(w)?;
    tickets_agree(w)
}

/// Every record a county acked is there, as written, and nothing else.
fn records_acked(w: &World) -> Result<(), String> {
    for county in w.counties() {
        let l = w.ledger(county).ok_or("a node is down after the heal")?;
        let want = w.acked.records.get(&county).cloned().unwrap_or_default();
        let mut have = BTreeMap::new();
        for kind in [
            RecordKind::Household,
            RecordKind::Monitored,
            RecordKind::Signal,
            RecordKind::Case,
            RecordKind::Measure,
        ] {
            for r in l.records(kind) {
                let r = r.map_err(|e| e.to_string())?;
                have.insert((r.kind() as u8, r.id().to_string()), r);
            }
        }
        if have != want {
            let missing = want.keys().find(|k| !have.contains_key(*k));
            return Err(format!(
                "{county}: {} records held, {} acked (first missing: {missing:?})",
                have.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

/// Each county's statistics equal a store that took its acked records in one write, and its
/// cells equal a recomputation from its records and tickets.
fn counties_equal_truth(w: &World, truth: &BTreeMap<Code, Cells>) -> Result<(), String> {
    for county in w.counties() {
        let l = w.ledger(county).ok_or("a node is down after the heal")?;
        let report = l.self_check().map_err(|e| e.to_string())?;
        if !report.ok() {
            return Err(format!("{county}: cells ≠ records: {:?}", report.first));
        }
        let mut have = l.all_cells().map_err(|e| e.to_string())?;
        have.retain(|k, v| *v != 0 && !is_ticket_cell(k));
        let want = &truth[&county];
        if &have != want {
            return Err(format!(
                "{county}: statistics ≠ ground truth; first difference {}",
                first_difference(&have, want)
            ));
        }
    }
    Ok(())
}

/// Every parent holds exactly what each child sends, and its aggregates are their sums.
fn parents_equal_children(w: &World) -> Result<(), String> {
    for n in &w.nodes {
        let Some(parent) = n.parent else { continue };
        let child = n.code;
        let lc = w.ledger(child).ok_or("a node is down after the heal")?;
        let lp = w.ledger(parent).ok_or("a node is down after the heal")?;
        let want = sent_up(lc, child)?;
        let mut have = lp.all_cells().map_err(|e| e.to_string())?;
        have.retain(|k, v| *v != 0 && child.contains(k.division));
        if have != want {
            return Err(format!(
                "{parent} holds other figures of {child} than {child} has; first difference {}",
                first_difference(&have, &want)
            ));
        }
    }
    for n in &w.nodes {
        if n.code.to_string().len() < 6 {
            let l = w.ledger(n.code).ok_or("a node is down after the heal")?;
            let r = l.self_check().map_err(|e| e.to_string())?;
            if !r.ok() {
                return Err(format!(
                    "{}: aggregates ≠ Σ children: {:?}",
                    n.code, r.first
                ));
            }
        }
    }
    Ok(())
}

/// Every ticket is held by every node from its issuer down to the node serving its target, in
/// one and the same state (history included), and every acked action is applied in it.
fn tickets_agree(w: &World) -> Result<(), String> {
    let held: Vec<(Code, BTreeMap<_, _>)> = w
        .nodes
        .iter()
        .map(|n| {
            let l = n.ledger.as_ref().ok_or("a node is down after the heal")?;
            Ok((n.code, l.tickets().map_err(|e| e.to_string())?))
        })
        .collect::<Result<_, String>>()?;
    for (key, actions) in &w.acked.tickets {
        let target = held
            .iter()
            .find_map(|(_, t)| t.get(key))
            .map(|s| s.ticket.target)
            .ok_or_else(|| format!("{key} is held nowhere"))?;
        let mut first: Option<(Code, &bottomline::tickets::TicketState)> = None;
        for (node, tickets) in &held {
            let on_path = key.issuer.contains(*node) && node.contains(target);
            let Some(s) = tickets.get(key) else {
                if on_path {
                    return Err(format!(
                        "{key} is missing at {node}, on its path to {target}"
                    ));
                }
                continue;
            };
            match first {
                None => first = Some((*node, s)),
                Some((n0, s0)) => {
                    if s0 != s {
                        return Err(format!(
                            "{key}: {n0} has it {} (history {}), {node} {} (history {})",
                            s0.state,
                            s0.history.len(),
                            s.state,
                            s.history.len()
                        ));
                    }
                }
            }
        }
        let (_, s) = first.ok_or_else(|| format!("{key} is held nowhere"))?;
        let applied: Vec<(Code, &str)> = s
            .history
            .iter()
            .filter(|h| h.outcome == bottomline::tickets::EntryOutcome::Applied)
            .map(|h| (h.actor, h.kind.action()))
            .collect();
        for (actor, action) in actions {
            let n_acked = actions.iter().filter(|a| a == &&(*actor, *action)).count();
            let n_applied = applied.iter().filter(|a| **a == (*actor, *action)).count();
            if n_applied < n_acked {
                return Err(format!(
                    "{key}: {action} by {actor} was acked {n_acked}× but applied {n_applied}×"
                ));
            }
        }
    }
    Ok(())
}
