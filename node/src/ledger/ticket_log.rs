//! Rectification tickets in the store: the node's **ticket log**, ticket routes, the node's
//! event counter and Lamport clock, per-link cursors, and the statistics cells of the tickets
//! this node serves.
//!
//! - Every event a node holds (its own and received ones) is in the ticket log exactly once,
//!   at a local position, with where it came from (`from`: the peer that delivered it, none
//!   for events created here) and the **route** of its ticket: its target and the top of its
//!   span (the issuer, or for a sub-ticket the top of the split ticket it belongs to). The
//!   sync layer reads the log from a per-link cursor and sends an entry **up** when the top is
//!   above this node, **down** to the child whose subtree holds the target, never back to the
//!   peer it came from ([`Logged::for_parent`], [`Logged::for_child`]). So every node from the
//!   top of a ticket's span to the node serving its target holds all of its events.
//! - An event is stored once per node (by its id); a duplicate delivery changes nothing.
//! - Events, the log, routes, counters, cursors and ticket cells of one batch are one atomic
//!   commit, flushed (group commit) before the call returns: a batch is acked only after that.
//! - The node serving a ticket's target ([`Ledger::serves`]) records the delivery: storing a
//!   legal `Issued` event there creates the `Delivered` event in the same commit.
//! - **Ticket cells**: tickets that are not sub-tickets count at the node serving their
//!   target, for the target's lineage up to the node, like records. Their contributions are
//!   [`crate::tickets::stat_flows`] and the overdue part of [`crate::tickets::stock_deltas`]
//!   dated **on or before the node's `as_of` day** (today in China time, advanced once a day
//!   by [`Ledger::refresh_ticket_cells`]): a ticket turns overdue in the cells on the day it
//!   does, not when it is issued with a deadline. The contributions written are kept per
//!   ticket, so each change writes only the difference.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{cells_err, unix_ms_now, Ledger, LedgerError, Result};
use crate::division::{Code, Level};
use crate::period::EARLIEST;
use crate::security::sign::{self, Hash, Seal};
use crate::stats::{self, CellKey, Stored};
use crate::store::{TreeId, WriteSet};
use crate::tickets::codec::{self, Sealed};
use crate::tickets::{
    self as tk, Event, EventId, EventKind, Ticket, TicketFlow, TicketKey, TicketState, TicketStock,
};

const META_TICKET_HEAD: &[u8] = b"ticket_head";
const META_TICKET_SEQ: &[u8] = b"ticket_seq";
const META_TICKET_CLOCK: &[u8] = b"ticket_clock";
const META_TICKET_AS_OF: &[u8] = b"ticket_as_of";
/// Per child: the child's ticket-log position this node has stored.
const UP_PREFIX: &[u8] = b"ticket_up/";
/// Per child: this node's ticket-log position the child has acked.
const DOWN_PREFIX: &[u8] = b"ticket_down/";

const ROUTE_V1: u8 = 1;
const CONTRIB_V1: u8 = 1;

/// Most events created here per commit (a 10 000-ticket inventory is a few commits and one
/// flush).
const CHUNK_EVENTS: usize = 4000;

/// Most log entries one [`Ledger::ticket_log`] call scans.
pub const MAX_SCAN: u64 = 50_000;
/// Most ticket-log entries one backlog count ([`Ledger::ticket_backlog_up`],
/// [`Ledger::ticket_backlog_down`]) scans: the most recent ones. A count is exact for a cursor
/// at most this far behind the head, and a lower bound (the events among the last
/// `MAX_BACKLOG_SCAN` entries) for one further behind, whose lag shows in its position anyway.
pub const MAX_BACKLOG_SCAN: u64 = 50_000;
/// Where a ticket's events travel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Route {
    target: Code,
    top: Code,
    parent: Option<TicketKey>,
}

/// An action on tickets taken at this node (what the CLI and the gRPC API offer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// The target accepts.
    Accept,
    /// The target starts rectifying.
    Start,
    /// The target reports the rectification with a note.
    Rectify {
        /// What was done.
        note: String,
    },
    /// The issuer verifies and closes (销号).
    Verify,
    /// The issuer returns it for rework.
    Return {
        /// Why.
        reason: String,
    },
    /// A division on the path flags or lifts supervision (督办).
    Supervise {
        /// Flag (true) or lift.
        on: bool,
    },
    /// The target splits it into sub-tickets for these child divisions.
    Split {
        /// Direct children of the target.
        into: Vec<Code>,
    },
    /// The target of a spot-check task records the check's result; with findings, the
    /// ticket for them is issued in the same commit (`finding`: issued by a division this
    /// node serves, source `spot_check`).
    Check {
        /// What was checked and found.
        note: String,
        /// The ticket for the problems found; `None`: no findings.
        finding: Option<Box<Ticket>>,
    },
}

impl Act {
    /// The action's name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Accept => "accept",
            Act::Start => "start",
            Act::Rectify { .. } => "rectify",
            Act::Verify => "verify",
            Act::Return { .. } => "return",
            Act::Supervise { on: true } => "supervise",
            Act::Supervise { on: false } => "unsupervise",
            Act::Split { .. } => "split",
            Act::Check { .. } => "check",
        }
    }
}

fn ticket_prefix(key: &TicketKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(crate::division::CODE_KEY_LEN + key.id.len() + 1);
    k.extend_from_slice(&key.issuer.key());
    k.extend_from_slice(key.id.as_bytes());
    // Ids have no control characters, so the 0 ends the id and keeps prefixes distinct.
    k.push(0);
    k
}

fn event_key(key: &TicketKey, id: EventId) -> Vec<u8> {
    let mut k = ticket_prefix(key);
    k.extend_from_slice(&id.origin.key());
    k.extend_from_slice(&id.seq.to_be_bytes());
    k
}

fn decode_ticket_prefix(k: &[u8]) -> Option<TicketKey> {
    let n = crate::division::CODE_KEY_LEN;
    let issuer = Code::from_key(k.get(..n)?)?;
    let id = std::str::from_utf8(k.get(n..k.len().checked_sub(1)?)?).ok()?;
    Some(TicketKey::new(issuer, id))
}

fn corrupt(what: &'static str, detail: impl ToString) -> LedgerError {
    LedgerError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn encode_json(marker: u8, v: &impl Serialize) -> Vec<u8> {
    let mut out = vec![marker];
    // Serialising plain data to a Vec cannot fail.
    serde_json::to_writer(&mut out, v).unwrap_or_default();
    out
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    marker: u8,
    v: &[u8],
) -> Result<T> {
    match v.split_first() {
        Some((m, body)) if *m == marker => {
            serde_json::from_slice(body).map_err(|e| corrupt(what, e))
        }
        _ => Err(corrupt(what, "unknown format marker")),
    }
}

fn u64_of(v: Option<crate::store::Bytes>) -> u64 {
    v.and_then(|v| {
        v.get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
    })
    .unwrap_or(0)
}

fn cursor_key(prefix: &[u8], child: Code) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&child.key());
    k
}

/// Contributions of one served ticket: (indicator, date) → value.
type Contrib = BTreeMap<(u8, Date), i64>;

/// The contributions of a (resolved) ticket state to the ticket cells, dated up to `as_of`.
fn contributions(s: &TicketState, as_of: Date) -> Contrib {
    let mut c = Contrib::new();
    let mut add = |ind: Stored, d: Date, n: i64| {
        if d <= as_of && d >= EARLIEST {
            *c.entry((ind as u8, d)).or_default() += n;
        }
    };
    for (flow, d, n) in tk::stat_flows(s) {
        let ind = match flow {
            TicketFlow::Issued => Stored::TicketsIssued,
            TicketFlow::Rectified => Stored::TicketsRectified,
            TicketFlow::Closed => Stored::TicketsClosed,
        };
        add(ind, d, n);
    }
    for (stock, d, n) in tk::stock_deltas(s) {
        if stock == TicketStock::Overdue {
            add(Stored::TicketsOverdue, d, n);
        }
    }
    if let Some(r) = tk::spot_check_done(s) {
        add(Stored::SpotChecksDone, r.on, 1);
        if r.findings {
            add(Stored::SpotCheckFindings, r.on, 1);
        }
    }
    c.retain(|_, v| *v != 0);
    c
}

/// A batch of ticket events being prepared under the write lock.
struct Pending {
    ws: WriteSet,
    head: u64,
    seq: u64,
    clock: u64,
    events: HashMap<TicketKey, Vec<Event>>,
    routes: HashMap<TicketKey, Route>,
    ids: HashSet<EventId>,
    touched: BTreeSet<TicketKey>,
    added: usize,
    logged: Vec<LogEntry>,
    /// Certificates of the signers of received events, to store with them.
    certs: BTreeMap<Hash, Vec<u8>>,
}

impl Ledger {
    /// Whether this node serves `division`: its own division, and everything below a county
    /// (towns and villages have no nodes of their own; a county node acts for them). Above
    /// county level every child division has its own node.
    pub fn serves(&self, division: Code) -> bool {
        division == self.division
            || (self.division.level() >= Level::County && self.division.contains(division))
    }

    /// Highest position of the ticket log that is flushed (the sync layer sends nothing above).
    pub fn ticket_head(&self) -> u64 {
        self.ticket_durable
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves after the next flush that made ticket events durable.
    pub fn tickets_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.tickets_changed.notified()
    }

    pub(super) fn stored_ticket_head(&self) -> Result<u64> {
        Ok(u64_of(self.store.get(TreeId::Meta, META_TICKET_HEAD)?))
    }

    /// The state of one ticket (split tickets resolved from their sub-tickets held here).
    pub fn ticket(&self, key: &TicketKey) -> Result<Option<TicketState>> {
        let p = self.pending()?;
        self.fold_tree(&p, key)
    }

    /// Every event of one ticket held here.
    pub fn ticket_events(&self, key: &TicketKey) -> Result<Vec<Event>> {
        let p = self.pending()?;
        self.events_of(&p, key)
    }

    /// Every event of one ticket held here with its body's bytes and its creator's seal, in
    /// log order: what anyone holding the CA can check (who rectified, who verified).
    pub fn sealed_events(&self, key: &TicketKey) -> Result<Vec<Sealed>> {
        let mut out = Vec::new();
        for r in self
            .store
            .scan_prefix(TreeId::TicketEvents, &ticket_prefix(key))
        {
            let (_, pos) = r?;
            let v = self
                .store
                .get(TreeId::TicketLog, &pos)?
                .ok_or_else(|| corrupt("ticket log", format!("an event of {key} is missing")))?;
            let e = LogEntry::decode(u64_of(Some(pos)), &v)?;
            out.push(Sealed {
                event: e.logged.event,
                body: e.body,
                seal: e.seal,
            });
        }
        Ok(out)
    }

    /// The states of every ticket held here.
    pub fn tickets(&self) -> Result<BTreeMap<TicketKey, TicketState>> {
        let mut events = Vec::new();
        for r in self.store.scan_prefix(TreeId::TicketLog, b"") {
            let (k, v) = r?;
            events.push(LogEntry::decode(u64_of(Some(k)), &v)?.logged.event);
        }
        Ok(tk::fold_all(&events))
    }

    /// Bring the ticket cells up to `today` (China date) if the day changed since they were
    /// last brought up to date: overdue days and late-dated events come due. Returns the
    /// number of tickets recounted (0 when nothing was due).
    pub fn refresh_ticket_cells(&self, today: Date) -> Result<usize> {
        if self.ticket_as_of()?.is_some_and(|d| d >= today) {
            return Ok(0);
        }
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let p = self.pending()?;
        let n = self.served_roots()?.len();
        self.finish_as_of(w, p, today)?;
        Ok(n)
    }

    /// The day the ticket cells are brought up to (`None` before any ticket was counted).
    pub fn ticket_as_of(&self) -> Result<Option<Date>> {
        Ok(match self.store.get(TreeId::Meta, META_TICKET_AS_OF)? {
            Some(v) => Some(
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt("ticket as-of day", "not a date"))?,
            ),
            None => None,
        })
    }

    /// The ticket cells the stored contribution records add up to (part of what the cells
    /// must equal; see `recompute_cells`).
    pub(super) fn ticket_cells_into(&self, out: &mut BTreeMap<CellKey, i64>) -> Result<()> {
        for r in self.store.scan_prefix(TreeId::TicketContrib, b"") {
            let (k, v) = r?;
            let key = decode_ticket_prefix(&k)
                .ok_or_else(|| corrupt("ticket contribution", "bad key"))?;
            let target = self
                .stored_route(&key)?
                .ok_or_else(|| corrupt("ticket contribution", format!("{key} has no route")))?
                .target;
            for ((ind, d), n) in decode_contrib(&v)? {
                self.emit(target, ind, d, n, &mut |k, v| {
                    *out.entry(k).or_insert(0) += v
                })?;
            }
        }
        Ok(())
    }

    /// The ticket contributions recomputed from the events, against what is written: the
    /// tickets whose written contributions differ (empty when the ticket cells are right).
    pub fn check_ticket_cells(&self) -> Result<Vec<TicketKey>> {
        let p = self.pending()?;
        let as_of = self.ticket_as_of()?.unwrap_or(EARLIEST);
        let mut wrong = Vec::new();
        let mut roots: BTreeSet<TicketKey> = self.served_roots()?.into_iter().collect();
        for r in self.store.scan_prefix(TreeId::TicketRoutes, b"") {
            let (k, v) = r?;
            let key = decode_ticket_prefix(&k).ok_or_else(|| corrupt("ticket route", "bad key"))?;
            let route: Route = decode_json("ticket route", ROUTE_V1, &v)?;
            if route.parent.is_none() && self.serves(route.target) {
                roots.insert(key);
            }
        }
        for key in roots {
            let want = match self.fold_tree(&p, &key)? {
                Some(s) => contributions(&s, as_of),
                None => Contrib::new(),
            };
            if want != self.written_contrib(&key)? {
                wrong.push(key);
            }
        }
        Ok(wrong)
    }

    fn check_actor(&self, actor: Code) -> Result<()> {
        if self.serves(actor) {
            Ok(())
        } else {
            Err(LedgerError::TicketRefused(format!(
                "node {} cannot act for division {actor}: a node acts for its own division{}",
                self.division,
                if self.division.level() >= Level::County {
                    " and the towns and villages below it"
                } else {
                    " only (the divisions below it have nodes of their own)"
                }
            )))
        }
    }

    fn pending(&self) -> Result<Pending> {
        Ok(Pending {
            ws: WriteSet::new(),
            head: self.stored_ticket_head()?,
            seq: u64_of(self.store.get(TreeId::Meta, META_TICKET_SEQ)?),
            clock: u64_of(self.store.get(TreeId::Meta, META_TICKET_CLOCK)?),
            events: HashMap::new(),
            routes: HashMap::new(),
            ids: HashSet::new(),
            touched: BTreeSet::new(),
            added: 0,
            logged: Vec::new(),
            certs: BTreeMap::new(),
        })
    }

    /// A new event created here, after everything this node holds (node-wide Lamport clock).
    fn new_event(
        &self,
        p: &mut Pending,
        ticket: TicketKey,
        actor: Code,
        at_unix_ms: i64,
        kind: EventKind,
    ) -> Event {
        p.seq += 1;
        p.clock += 1;
        Event {
            id: EventId {
                origin: self.division,
                seq: p.seq,
            },
            ticket,
            lamport: p.clock,
            at_unix_ms,
            actor,
            kind,
        }
    }

    fn stored_route(&self, key: &TicketKey) -> Result<Option<Route>> {
        match self.store.get(TreeId::TicketRoutes, &ticket_prefix(key))? {
            Some(v) => Ok(Some(decode_json("ticket route", ROUTE_V1, &v)?)),
            None => Ok(None),
        }
    }

    fn route(&self, p: &Pending, key: &TicketKey) -> Result<Option<Route>> {
        match p.routes.get(key) {
            Some(r) => Ok(Some(r.clone())),
            None => self.stored_route(key),
        }
    }

    fn events_of(&self, p: &Pending, key: &TicketKey) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for r in self
            .store
            .scan_prefix(TreeId::TicketEvents, &ticket_prefix(key))
        {
            let (_, pos) = r?;
            let v = self
                .store
                .get(TreeId::TicketLog, &pos)?
                .ok_or_else(|| corrupt("ticket log", format!("an event of {key} is missing")))?;
            out.push(LogEntry::decode(0, &v)?.logged.event);
        }
        if let Some(v) = p.events.get(key) {
            out.extend(v.iter().cloned());
        }
        Ok(out)
    }

    /// Add one event to the batch unless it is held already; the serving node's `Delivered`
    /// follows a first legal `Issued`.
    fn add_event(&self, p: &mut Pending, from: Option<Code>, sealed: Sealed) -> Result<()> {
        let Sealed {
            event: e,
            body,
            seal,
        } = sealed;
        let key = e.ticket.clone();
        if p.ids.contains(&e.id) {
            return Ok(());
        }
        let known = self.route(p, &key)?;
        // An issue of a ticket without a route here cannot be stored yet (storing it makes
        // the route), so only other events need the lookup.
        let new_issue = known.is_none() && matches!(e.kind, EventKind::Issued(_));
        if !new_issue
            && self
                .store
                .get(TreeId::TicketEvents, &event_key(&key, e.id))?
                .is_some()
        {
            return Ok(());
        }
        let route = match (&known, &e.kind) {
            (Some(r), _) => r.clone(),
            (None, EventKind::Issued(t)) => {
                let top = match &t.parent {
                    Some(pk) => self.route(p, pk)?.map_or(t.issuer, |r| r.top),
                    None => t.issuer,
                };
                let r = Route {
                    target: t.target,
                    top,
                    parent: t.parent.clone(),
                };
                p.ws.put(
                    TreeId::TicketRoutes,
                    ticket_prefix(&key),
                    encode_json(ROUTE_V1, &r),
                );
                p.routes.insert(key.clone(), r.clone());
                r
            }
            (None, _) => {
                // An event of a ticket whose issue has not arrived (links keep the order, so
                // only a misbehaving peer sends this): kept for the fold, forwarded nowhere.
                tracing::warn!(event = %e.id, ticket = %key, "ticket event before its issue");
                Route {
                    target: self.division,
                    top: self.division,
                    parent: None,
                }
            }
        };
        p.head += 1;
        let logged = Logged {
            pos: p.head,
            from,
            target: route.target,
            top: route.top,
            event: e.clone(),
        };
        // Stored when the batch commits: events created here are sealed together first.
        p.logged.push(LogEntry { logged, body, seal });
        p.ws.put(
            TreeId::TicketEvents,
            event_key(&key, e.id),
            p.head.to_be_bytes().to_vec(),
        );
        p.clock = p.clock.max(e.lamport);
        if e.id.origin == self.division {
            // One of this node's own events, sent back after a restore: never reuse its id.
            p.seq = p.seq.max(e.id.seq);
        }
        p.ids.insert(e.id);
        p.added += 1;
        p.touched.insert(key.clone());
        let deliver = match &e.kind {
            EventKind::Issued(t) => {
                new_issue && self.serves(t.target) && tk::check(None, &e).is_ok()
            }
            _ => false,
        };
        p.events.entry(key.clone()).or_default().push(e);
        if deliver {
            let d = self.new_event(
                p,
                key,
                route.target,
                unix_ms_now(),
                EventKind::Delivered { at: self.division },
            );
            self.add_event(p, None, Sealed::new(d))?;
        }
        Ok(())
    }

    /// The ticket's state with its split tree resolved from the sub-tickets held here.
    fn fold_tree(&self, p: &Pending, root: &TicketKey) -> Result<Option<TicketState>> {
        let mut all = Vec::new();
        let mut stack = vec![root.clone()];
        let mut seen = BTreeSet::new();
        while let Some(k) = stack.pop() {
            if !seen.insert(k.clone()) {
                continue;
            }
            let evs = self.events_of(p, &k)?;
            if let Some(s) = tk::fold(&evs) {
                stack.extend(s.split.iter().cloned());
            }
            all.extend(evs);
        }
        Ok(tk::fold_all(&all).remove(root))
    }

    /// The ticket counted in the statistics that `key`'s events change, if this node counts
    /// it: the top of its split tree as far as held here, when that is not a sub-ticket and
    /// this node serves its target.
    fn counted_root(&self, p: &Pending, key: &TicketKey) -> Result<Option<TicketKey>> {
        let mut k = key.clone();
        for _ in 0..16 {
            let Some(r) = self.route(p, &k)? else {
                return Ok(None);
            };
            match r.parent {
                None => return Ok(self.serves(r.target).then_some(k)),
                Some(pk) => k = pk,
            }
        }
        Ok(None)
    }

    fn served_roots(&self) -> Result<Vec<TicketKey>> {
        let mut out = Vec::new();
        for r in self.store.scan_prefix(TreeId::TicketContrib, b"") {
            let (k, _) = r?;
            out.push(
                decode_ticket_prefix(&k)
                    .ok_or_else(|| corrupt("ticket contribution", "bad key"))?,
            );
        }
        Ok(out)
    }

    fn written_contrib(&self, key: &TicketKey) -> Result<Contrib> {
        match self.store.get(TreeId::TicketContrib, &ticket_prefix(key))? {
            Some(v) => decode_contrib(&v),
            None => Ok(Contrib::new()),
        }
    }

    fn emit(
        &self,
        target: Code,
        ind: u8,
        date: Date,
        n: i64,
        out: &mut impl FnMut(CellKey, i64),
    ) -> Result<()> {
        let ind = Stored::from_code(ind)
            .ok_or_else(|| corrupt("ticket contribution", "unknown indicator"))?;
        stats::emit_cells(target, self.division, date, ind, 0, n, out);
        Ok(())
    }

    /// Write events created here (built on `built`, which assigned their ids and Lamport
    /// times) under the write lock they were checked under, in commits of at most
    /// [`CHUNK_EVENTS`] events (sled slows down on larger batches), then flush once. An
    /// interruption can leave a prefix written; issuing the same tickets again completes it.
    fn write_chunks(
        &self,
        w: std::sync::MutexGuard<'_, ()>,
        built: &Pending,
        groups: Vec<Vec<Event>>,
    ) -> Result<()> {
        let today = crate::period::today_in_china();
        let mut chunk: Vec<Event> = Vec::new();
        let mut groups = groups.into_iter().peekable();
        let mut last = None;
        while let Some(g) = groups.next() {
            chunk.extend(g);
            if chunk.len() >= CHUNK_EVENTS || groups.peek().is_none() {
                let mut p = self.pending()?;
                p.seq = p.seq.max(built.seq);
                p.clock = p.clock.max(built.clock);
                for e in std::mem::take(&mut chunk) {
                    self.add_event(&mut p, None, Sealed::new(e))?;
                }
                last = self.commit_pending(p, today)?.or(last);
            }
        }
        drop(w);
        match last {
            Some(c) => self.flush_through(c),
            None => Ok(()),
        }
    }

    /// Write the batch and flush it (group commit, after releasing the write lock).
    fn finish(&self, w: std::sync::MutexGuard<'_, ()>, p: Pending) -> Result<()> {
        let today = crate::period::today_in_china();
        self.finish_as_of(w, p, today)
    }

    fn finish_as_of(
        &self,
        w: std::sync::MutexGuard<'_, ()>,
        p: Pending,
        today: Date,
    ) -> Result<()> {
        let commit = self.commit_pending(p, today)?;
        drop(w);
        match commit {
            Some(c) => self.flush_through(c),
            None => Ok(()),
        }
    }

    /// Commit the batch (under the write lock): its events, the ticket cells of the counted
    /// tickets it changed (all of them when the day moved on), counters. Returns the commit's
    /// number for [`Ledger::flush_through`], `None` when there was nothing to write.
    fn commit_pending(&self, mut p: Pending, today: Date) -> Result<Option<u64>> {
        let stored_as_of = self.ticket_as_of()?;
        let as_of = stored_as_of.map_or(today, |d| d.max(today));
        let mut roots = BTreeSet::new();
        for k in &p.touched {
            if let Some(r) = self.counted_root(&p, k)? {
                roots.insert(r);
            }
        }
        if stored_as_of != Some(as_of) {
            // The day moved on: every counted ticket's contributions come due up to today.
            roots.extend(self.served_roots()?);
        }
        let mut deltas: BTreeMap<CellKey, i64> = BTreeMap::new();
        for key in &roots {
            let Some(route) = self.route(&p, key)? else {
                continue;
            };
            let new = match self.fold_tree(&p, key)? {
                Some(s) => contributions(&s, as_of),
                None => Contrib::new(),
            };
            let old = self.written_contrib(key)?;
            if new == old
                && self
                    .store
                    .get(TreeId::TicketContrib, &ticket_prefix(key))?
                    .is_some()
            {
                continue;
            }
            let mut diff: BTreeMap<(u8, Date), i64> = new.clone();
            for (k, v) in &old {
                *diff.entry(*k).or_default() -= v;
            }
            for ((ind, d), n) in diff {
                self.emit(route.target, ind, d, n, &mut |k, v| {
                    *deltas.entry(k).or_insert(0) += v
                })?;
            }
            p.ws.put(
                TreeId::TicketContrib,
                ticket_prefix(key),
                encode_contrib(&new),
            );
        }
        let groups = crate::cells::group(deltas);
        if !groups.is_empty() {
            let reader = crate::cells::BlockReader::new(&self.store).map_err(cells_err)?;
            let mut log = crate::cells::LogWriter::new(&self.store);
            let mut seq = self.cell_seq()?;
            for (bk, ds) in &groups {
                crate::cells::stage_block(&reader, *bk, ds, &mut seq, &mut p.ws, &mut log)
                    .map_err(cells_err)?;
            }
            log.stage(&mut p.ws);
            p.ws.put(
                TreeId::Meta,
                super::META_CELL_SEQ,
                seq.to_be_bytes().to_vec(),
            );
        }
        self.stage_ticket_index(&mut p)?;
        if p.ws.is_empty() && stored_as_of == Some(as_of) {
            return Ok(None);
        }
        p.ws.put(
            TreeId::Meta,
            META_TICKET_HEAD,
            p.head.to_be_bytes().to_vec(),
        );
        p.ws.put(TreeId::Meta, META_TICKET_SEQ, p.seq.to_be_bytes().to_vec());
        p.ws.put(
            TreeId::Meta,
            META_TICKET_CLOCK,
            p.clock.to_be_bytes().to_vec(),
        );
        p.ws.put(
            TreeId::Meta,
            META_TICKET_AS_OF,
            as_of.to_string().into_bytes(),
        );
        self.seal_own(&mut p.logged);
        for e in &p.logged {
            p.ws.put(TreeId::TicketLog, e.logged.pos.to_be_bytes(), e.encode());
        }
        for (fp, der) in std::mem::take(&mut p.certs) {
            p.ws.put(TreeId::Certs, fp, der);
        }
        self.store.commit(p.ws)?;
        if !p.logged.is_empty() {
            // In position order: commits are serialised by the write lock held here.
            let mut cache = self.ticket_cache.lock().unwrap_or_else(|p| p.into_inner());
            for e in p.logged {
                cache.push(Arc::new(e));
            }
        }
        let commit = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        Ok(Some(commit))
    }
}

/// The sub-ticket id for child division `child` of a ticket `id` split at `splitter`: the
/// parent's id and the child's own digits (`610102` split into `610102001` → `ID.001`).
pub fn sub_id(id: &str, splitter: Code, child: Code) -> String {
    let c = child.to_string();
    let own = c
        .get(splitter.len()..)
        .filter(|s| !s.is_empty())
        .unwrap_or(&c);
    format!("{id}.{own}")
}

fn encode_contrib(c: &Contrib) -> Vec<u8> {
    let v: Vec<(u8, Date, i64)> = c.iter().map(|((i, d), n)| (*i, *d, *n)).collect();
    encode_json(CONTRIB_V1, &v)
}

fn decode_contrib(v: &[u8]) -> Result<Contrib> {
    let list: Vec<(u8, Date, i64)> = decode_json("ticket contribution", CONTRIB_V1, v)?;
    Ok(list.into_iter().map(|(i, d, n)| ((i, d), n)).collect())
}

mod act;
mod cache;
mod entry;
mod index;
mod reading;
mod seals;
#[cfg(test)]
mod tests;

pub(super) use cache::{LogCache, RecentEntries};
use entry::*;
pub use entry::{LogEntry, Logged};
