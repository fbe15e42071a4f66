//! The ticket index: what `List` and `Progress` read, so that no request folds the whole
//! ticket log (a province holding 100 000 tickets answers `list --overdue` and
//! `progress --inventory` from a few index ranges).
//!
//! Kept in `TreeId::TicketIndex`, written in the same commit as the events that change it
//! (for every ticket a commit touches and the tickets it is a sub-ticket of, whose derived
//! state may move with it):
//!
//! | key                                          | value                                     |
//! |----------------------------------------------|-------------------------------------------|
//! | `S` ‖ ticket                                 | `0x01` ‖ the folded state without its timeline and history (JSON) |
//! | `D` ‖ deadline `yyyy-mm-dd` ‖ ticket         | the ticket's row (below); only while the rectification is owed (overdue can apply) |
//! | `I` ‖ name length (u16 BE) ‖ name ‖ ticket   | `0x01` ‖ target ‖ state ‖ deadline ‖ has parent (what progress counts) |
//! | `A` ‖ ticket                                 | the same row, for every ticket            |
//!
//! `ticket` is the ticket's key prefix (issuer key ‖ id ‖ 0). A store without the index
//! (layout 3) gets it built from its ticket log when it is opened.

use super::*;
use crate::tickets::{ProgressItem, State};

const SUMMARY: u8 = b'S';
const BY_DEADLINE: u8 = b'D';
const BY_INVENTORY: u8 = b'I';
const ROWS: u8 = b'A';
const V1: u8 = 1;
/// Set once the index covers the whole ticket log, to the index's format.
const META_TICKET_INDEX: &[u8] = b"ticket_index";
/// The index's format (2: deadline entries hold the ticket's row); an index of another
/// format is built again from the log when the store opens.
const INDEX_FORMAT: u8 = 2;

fn summary_key(key: &TicketKey) -> Vec<u8> {
    let mut k = vec![SUMMARY];
    k.extend_from_slice(&ticket_prefix(key));
    k
}

fn deadline_key(deadline: Date, key: &TicketKey) -> Vec<u8> {
    let mut k = vec![BY_DEADLINE];
    k.extend_from_slice(deadline.to_string().as_bytes());
    k.extend_from_slice(&ticket_prefix(key));
    k
}

fn inventory_prefix(name: &str) -> Vec<u8> {
    let mut k = vec![BY_INVENTORY];
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// The index entries of one ticket's summary: (key, value) pairs besides the summary itself.
fn entries(s: &TicketState) -> Vec<(Vec<u8>, Vec<u8>)> {
    let key = s.key();
    let mut out = Vec::new();
    let mut row = vec![V1];
    row.extend_from_slice(&s.ticket.target.key());
    row.push(s.state.code());
    row.extend_from_slice(s.ticket.deadline.to_string().as_bytes());
    row.push(u8::from(s.ticket.parent.is_some()));
    if s.state.is_unrectified() {
        out.push((deadline_key(s.ticket.deadline, &key), row.clone()));
    }
    if let Some(name) = &s.ticket.inventory {
        let mut k = inventory_prefix(name);
        k.extend_from_slice(&ticket_prefix(&key));
        out.push((k, row.clone()));
    }
    let mut k = vec![ROWS];
    k.extend_from_slice(&ticket_prefix(&key));
    out.push((k, row));
    out
}

fn decode_summary(v: &[u8]) -> Result<TicketState> {
    match v.split_first() {
        Some((&V1, json)) => serde_json::from_slice(json)
            .map_err(|e| corrupt("ticket index", format!("a summary: {e}"))),
        _ => Err(corrupt("ticket index", "a summary of an unknown format")),
    }
}

/// One `I` row: the progress item, and whether the ticket is a sub-ticket.
fn decode_row(k: &[u8], prefix_len: usize, v: &[u8]) -> Result<(TicketKey, ProgressItem, bool)> {
    let n = crate::division::CODE_KEY_LEN;
    let bad = || corrupt("ticket index", "an inventory row");
    let key = decode_ticket_prefix(k.get(prefix_len..).ok_or_else(bad)?).ok_or_else(bad)?;
    if v.len() != 1 + n + 1 + 10 + 1 || v[0] != V1 {
        return Err(bad());
    }
    let target = Code::from_key(&v[1..1 + n]).ok_or_else(bad)?;
    let state = State::from_code(v[1 + n]).ok_or_else(bad)?;
    let deadline = std::str::from_utf8(&v[2 + n..12 + n])
        .ok()
        .and_then(|d| d.parse::<Date>().ok())
        .ok_or_else(bad)?;
    Ok((
        key,
        ProgressItem {
            target,
            state,
            deadline,
        },
        v[12 + n] == 1,
    ))
}

impl Ledger {
    /// Stage the index of the tickets `p` touched and of the tickets they are sub-tickets
    /// of, as folded with `p`'s events.
    pub(super) fn stage_ticket_index(&self, p: &mut Pending) -> Result<()> {
        let mut keys = BTreeSet::new();
        for k in &p.touched {
            let mut k = k.clone();
            for _ in 0..16 {
                if !keys.insert(k.clone()) {
                    break;
                }
                match self.route(p, &k)?.and_then(|r| r.parent) {
                    Some(parent) => k = parent,
                    None => break,
                }
            }
        }
        for key in keys {
            let new = self.fold_tree(p, &key)?.map(TicketState::summary);
            let old = match self.store.get(TreeId::TicketIndex, &summary_key(&key))? {
                Some(v) => Some(decode_summary(&v)?),
                None => None,
            };
            if new == old {
                continue;
            }
            stage_summary(&mut p.ws, old.as_ref(), new.as_ref());
        }
        Ok(())
    }

    /// Build the index from the ticket log when the store has none (a store of layout 3) or
    /// one of another format, in one commit.
    pub(in crate::ledger) fn ensure_ticket_index(&self) -> Result<()> {
        if self.store.get(TreeId::Meta, META_TICKET_INDEX)?.as_deref() == Some(&[INDEX_FORMAT]) {
            return Ok(());
        }
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let all = self.tickets()?;
        let mut ws = WriteSet::new();
        for r in self.store.scan_prefix(TreeId::TicketIndex, b"") {
            ws.remove(TreeId::TicketIndex, r?.0);
        }
        for s in all.into_values() {
            stage_summary(&mut ws, None, Some(&s.summary()));
        }
        ws.put(TreeId::Meta, META_TICKET_INDEX, vec![INDEX_FORMAT]);
        let n = ws.len();
        self.store.commit(ws)?;
        self.store.flush()?;
        if n > 1 {
            tracing::info!(entries = n - 1, "ticket index built from the ticket log");
        }
        Ok(())
    }

    /// The tickets held here, without their histories (`TicketState::summary`), in key
    /// order: all of them, those still owing their rectification with a deadline before
    /// `overdue_on` (the overdue tickets of that day), or those of one inventory.
    pub fn ticket_summaries(
        &self,
        overdue_on: Option<Date>,
        inventory: Option<&str>,
    ) -> Result<Vec<TicketState>> {
        if overdue_on.is_none() && inventory.is_none() {
            let mut out = Vec::new();
            for r in self.store.scan_prefix(TreeId::TicketIndex, &[SUMMARY]) {
                out.push(decode_summary(&r?.1)?);
            }
            return Ok(out);
        }
        let mut out = Vec::new();
        for (key, row) in self.ticket_rows(overdue_on, inventory)? {
            if overdue_on.is_none_or(|day| row.overdue(day)) {
                out.push(
                    self.ticket_summary(&key)?
                        .ok_or_else(|| corrupt("ticket index", format!("no summary of {key}")))?,
                );
            }
        }
        Ok(out)
    }

    /// The index rows (key, target, state, deadline) of the tickets held here, in key order:
    /// of inventory `inventory` when given, else those still owing their rectification with a
    /// deadline before `overdue_on` when given, else all. What a listing filters before it
    /// reads the few summaries it shows ([`Ledger::ticket_summary`]).
    pub fn ticket_rows(
        &self,
        overdue_on: Option<Date>,
        inventory: Option<&str>,
    ) -> Result<Vec<(TicketKey, ProgressItem)>> {
        let read = |prefix: Vec<u8>| -> Result<Vec<(TicketKey, ProgressItem)>> {
            let mut out = Vec::new();
            for r in self.store.scan_prefix(TreeId::TicketIndex, &prefix) {
                let (k, v) = r?;
                let (key, item, _) = decode_row(&k, prefix.len(), &v)?;
                out.push((key, item));
            }
            Ok(out)
        };
        match (overdue_on, inventory) {
            (_, Some(name)) => read(inventory_prefix(name)),
            (None, None) => read(vec![ROWS]),
            (Some(day), None) => {
                let start = [BY_DEADLINE];
                let mut end = vec![BY_DEADLINE];
                end.extend_from_slice(day.to_string().as_bytes());
                let mut out = Vec::new();
                for r in self.store.range(TreeId::TicketIndex, &start, &end) {
                    let (k, v) = r?;
                    let (key, item, _) = decode_row(&k, 11, &v)?;
                    out.push((key, item));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
        }
    }

    /// The summaries of the tickets held here issued by `issuer` whose id starts with
    /// `id_prefix`, in key order (one prefix scan of the index).
    pub fn ticket_summaries_by_id(
        &self,
        issuer: Code,
        id_prefix: &str,
    ) -> Result<Vec<TicketState>> {
        let mut prefix = vec![SUMMARY];
        prefix.extend_from_slice(&issuer.key());
        prefix.extend_from_slice(id_prefix.as_bytes());
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::TicketIndex, &prefix) {
            out.push(decode_summary(&r?.1)?);
        }
        Ok(out)
    }

    /// One ticket's summary from the index (`None` when it is not held here).
    pub fn ticket_summary(&self, key: &TicketKey) -> Result<Option<TicketState>> {
        self.store
            .get(TreeId::TicketIndex, &summary_key(key))?
            .map(|v| decode_summary(&v))
            .transpose()
    }

    /// What progress counts of the tickets of inventory `name` (`None`: of every ticket)
    /// held here (the sub-tickets whose split ticket is held here left out: a split ticket
    /// counts once, as itself).
    pub fn inventory_items(&self, name: Option<&str>) -> Result<Vec<ProgressItem>> {
        let prefix = name.map_or_else(|| vec![ROWS], inventory_prefix);
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::TicketIndex, &prefix) {
            let (k, v) = r?;
            let (key, item, sub) = decode_row(&k, prefix.len(), &v)?;
            if sub {
                let parent = self
                    .store
                    .get(TreeId::TicketIndex, &summary_key(&key))?
                    .map(|v| decode_summary(&v))
                    .transpose()?
                    .and_then(|s| s.ticket.parent);
                if let Some(pk) = parent {
                    if self
                        .store
                        .get(TreeId::TicketIndex, &summary_key(&pk))?
                        .is_some()
                    {
                        continue;
                    }
                }
            }
            out.push(item);
        }
        Ok(out)
    }
}

/// Stage the change of one ticket's summary from `old` to `new` with its index entries.
fn stage_summary(ws: &mut WriteSet, old: Option<&TicketState>, new: Option<&TicketState>) {
    let old_entries = old.map(entries).unwrap_or_default();
    let new_entries = new.map(entries).unwrap_or_default();
    for (k, _) in &old_entries {
        if !new_entries.iter().any(|(n, _)| n == k) {
            ws.remove(TreeId::TicketIndex, k.clone());
        }
    }
    for (k, v) in new_entries {
        ws.put(TreeId::TicketIndex, k, v);
    }
    match (old, new) {
        (_, Some(s)) => {
            let mut v = vec![V1];
            // Plain data (strings, codes, dates): serialising it cannot fail.
            v.extend_from_slice(&serde_json::to_vec(s).unwrap_or_default());
            ws.put(TreeId::TicketIndex, summary_key(&s.key()), v);
        }
        (Some(s), None) => ws.remove(TreeId::TicketIndex, summary_key(&s.key())),
        (None, None) => {}
    }
}
