//! The world of the deterministic simulation: nodes (real ledgers in temporary data dirs),
//! links between each child and its parent (message queues driven through the link engine,
//! `bottomline::link`), and one seeded random generator choosing every step — writes at the
//! counties, tickets issued and worked, messages delivered late, links cut, batches replayed,
//! nodes crashed and reopened. Nothing else is random and nothing runs concurrently, so a seed
//! is a complete description of a run.
//!
//! A link is modelled as what the gRPC stream gives: two ordered queues. A message is delayed
//! by a random number of ticks (never overtaking the one before it on its queue: a stream is
//! ordered); a **loss** is what a stream can lose — everything in flight, with the connection
//! (the child dials again later); a **duplicate** is a data message (cells, tickets, acks) of
//! an earlier connection replayed into the current one, as a relay or a replay attack would.
//! A **crash** drops the node's ledger, its links and everything in their queues; the node
//! reopens from its data dir later. (sled closes cleanly when dropped; the kill -9 tests with
//! real processes cover torn writes.)

pub mod checks;
pub mod data;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;

use bottomline::cells::Replica;
use bottomline::division::Code;
use bottomline::ledger::{Act, Change, Ledger};
use bottomline::lineage::StoreIdentity;
use bottomline::link::{self, CellReceiver, CellSender, TicketSender, Welcome};
use bottomline::store::StoreOptions;
use bottomline::tickets::codec;
use bottomline::tickets::{Severity, State, Ticket, TicketKey, TicketSource};
use bottomline_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use data::Data;

/// The tree: a province, two cities, three counties.
pub const TREE: [(&str, Option<&str>); 6] = [
    ("61", None),
    ("6101", Some("61")),
    ("6102", Some("61")),
    ("610102", Some("6101")),
    ("610103", Some("6101")),
    ("610202", Some("6102")),
];

/// Blocks per cell batch (small, so that sweeps take several batches).
const BATCH_BLOCKS: usize = 3;

/// A message on a link.
#[derive(Clone, Debug)]
pub enum Msg {
    Hello(StoreIdentity),
    Welcome(Welcome),
    Cells {
        cells: Vec<Replica>,
        floor: u64,
        pos: u64,
    },
    Ack(u64),
    Tickets {
        events: Vec<pb::TicketEvent>,
        upto: u64,
    },
    TicketAck(u64),
}

impl Msg {
    fn short(&self) -> String {
        match self {
            Msg::Hello(_) => "Hello".into(),
            Msg::Welcome(w) => format!("Welcome(acked {}, resume {})", w.acked, w.resume_pos),
            Msg::Cells { cells, floor, pos } => {
                format!("Cells({} cells, floor {floor}, pos {pos})", cells.len())
            }
            Msg::Ack(p) => format!("Ack({p})"),
            Msg::Tickets { events, upto } => {
                format!("Tickets({} events, upto {upto})", events.len())
            }
            Msg::TicketAck(u) => format!("TicketAck({u})"),
        }
    }

    /// Data messages may be replayed into a later connection.
    fn replayable(&self) -> bool {
        !matches!(self, Msg::Hello(_) | Msg::Welcome(_))
    }
}

/// One connection of a child to its parent.
struct Conn {
    /// (due tick, message), in order.
    up: VecDeque<(u64, Msg)>,
    down: VecDeque<(u64, Msg)>,
    /// The child's side, once the Welcome arrived.
    child: Option<(CellSender, TicketSender)>,
    /// The parent's side, once the Hello was answered.
    parent: Option<(CellReceiver, TicketSender)>,
}

/// A node of the simulated tree.
pub struct Node {
    pub code: Code,
    pub parent: Option<Code>,
    pub dir: PathBuf,
    pub ledger: Option<Ledger>,
}

/// What the run has acknowledged, to be found after the heal.
#[derive(Default)]
pub struct Acked {
    /// Each county's records as written (kind, id) → record.
    pub records: BTreeMap<Code, BTreeMap<(u8, String), bottomline::domain::Record>>,
    /// Tickets issued, with the actions acked on each (actor, action).
    pub tickets: BTreeMap<TicketKey, Vec<(Code, &'static str)>>,
}

/// Knobs of a run (all faults on by default).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub crash: bool,
    pub cut: bool,
    pub replay: bool,
    pub max_delay: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            crash: true,
            cut: true,
            replay: true,
            max_delay: 6,
        }
    }
}

/// The simulated world.
pub struct World {
    pub seed: u64,
    rng: ChaCha8Rng,
    pub nodes: Vec<Node>,
    conns: BTreeMap<Code, Conn>,
    /// Data messages delivered per child link and direction (true = up), for replays.
    delivered: BTreeMap<(Code, bool), Vec<Msg>>,
    pub tick: u64,
    pub trace: Vec<String>,
    pub acked: Acked,
    data: &'static Data,
    /// Next write chunk per county.
    next_chunk: BTreeMap<Code, usize>,
    tickets_issued: u64,
    faults: Faults,
    _tmp: tempfile::TempDir,
}

/// A scratch directory, in memory where the machine has /dev/shm (a run makes hundreds of
/// durable writes; their fsyncs on a disk would be most of its time).
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

pub fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 4 << 20,
        background_flush_ms: None,
        ..StoreOptions::default()
    }
}

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

impl World {
    /// A fresh world for `seed`.
    pub fn new(seed: u64, data: &'static Data, faults: Faults) -> World {
        let tmp = scratch();
        let nodes = TREE
            .iter()
            .map(|(code, parent)| {
                let dir = tmp.path().join(code);
                let ledger = Ledger::open_or_init(&dir, Some(c(code)), &opts()).expect("open");
                if let Some(divs) = data.divisions.get(&c(code)) {
                    ledger.put_divisions(divs).expect("divisions");
                }
                Node {
                    code: c(code),
                    parent: parent.map(c),
                    dir,
                    ledger: Some(ledger),
                }
            })
            .collect();
        World {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes,
            conns: BTreeMap::new(),
            delivered: BTreeMap::new(),
            tick: 0,
            trace: Vec::new(),
            acked: Acked::default(),
            data,
            next_chunk: BTreeMap::new(),
            tickets_issued: 0,
            faults,
            _tmp: tmp,
        }
    }

    fn log(&mut self, line: String) {
        self.trace.push(format!("{:>5} {line}", self.tick));
    }

    fn node(&self, code: Code) -> &Node {
        self.nodes.iter().find(|n| n.code == code).expect("node")
    }

    fn node_mut(&mut self, code: Code) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.code == code)
            .expect("node")
    }

    pub fn ledger(&self, code: Code) -> Option<&Ledger> {
        self.node(code).ledger.as_ref()
    }

    fn up(&self, code: Code) -> bool {
        self.node(code).ledger.is_some()
    }

    fn children(&self) -> Vec<Code> {
        self.nodes
            .iter()
            .filter(|n| n.parent.is_some())
            .map(|n| n.code)
            .collect()
    }

    pub fn counties(&self) -> Vec<Code> {
        self.nodes
            .iter()
            .filter(|n| n.code.to_string().len() == 6)
            .map(|n| n.code)
            .collect()
    }

    /// One chaotic step.
    pub fn step(&mut self) -> Result<(), String> {
        self.tick += 1;
        let roll = self.rng.random_range(0..100u32);
        match roll {
            0..=29 => self.deliver_one(),
            30..=49 => self.pump_random(),
            50..=55 => self.dial_random(),
            56..=63 => self.write_random(),
            64..=75 => self.ticket_work(),
            76..=78 if self.faults.cut => self.cut_random(),
            79..=80 if self.faults.crash => self.crash_random(),
            81..=86 => self.restart_random(),
            87..=90 if self.faults.replay => self.replay_random(),
            _ => self.deliver_one(),
        }
    }

    /// Restart every node, then run without faults until nothing moves: every link open,
    /// every queue empty, every sender idle. `Err` if that does not happen in `limit` steps.
    pub fn heal(&mut self, limit: usize) -> Result<(), String> {
        self.log("heal".into());
        for i in 0..self.nodes.len() {
            if self.nodes[i].ledger.is_none() {
                let code = self.nodes[i].code;
                self.restart(code)?;
            }
        }
        for _ in 0..limit {
            self.tick += 1;
            for child in self.children() {
                if !self.conns.contains_key(&child) {
                    self.dial(child);
                }
            }
            let mut moved = false;
            for code in self.nodes.iter().map(|n| n.code).collect::<Vec<_>>() {
                moved |= self.pump(code)?;
            }
            // Deliver everything due (time moves on until all is due).
            while let Some(key) = self.any_queued() {
                self.deliver(key.0, key.1, true)?;
                moved = true;
            }
            let open = self
                .conns
                .values()
                .all(|c| c.child.is_some() && c.parent.is_some());
            if !moved && open && self.conns.len() == self.children().len() {
                self.log("quiet".into());
                return Ok(());
            }
        }
        Err(format!(
            "the tree did not quiesce within {limit} rounds after the heal"
        ))
    }

    fn any_queued(&self) -> Option<(Code, bool)> {
        for (child, c) in &self.conns {
            if !c.up.is_empty() {
                return Some((*child, true));
            }
            if !c.down.is_empty() {
                return Some((*child, false));
            }
        }
        None
    }

    // ------------------------------------------------------------------ links

    fn dial_random(&mut self) -> Result<(), String> {
        let children = self.children();
        let child = children[self.rng.random_range(0..children.len())];
        if !self.conns.contains_key(&child) {
            self.dial(child);
        }
        Ok(())
    }

    fn dial(&mut self, child: Code) {
        let parent = self.node(child).parent.expect("a child");
        if !self.up(child) || !self.up(parent) {
            return;
        }
        let id = self.ledger(child).expect("up").identity().clone();
        let mut conn = Conn {
            up: VecDeque::new(),
            down: VecDeque::new(),
            child: None,
            parent: None,
        };
        conn.up.push_back((self.tick, Msg::Hello(id)));
        self.conns.insert(child, conn);
        self.log(format!("dial {child} → {parent}"));
    }

    fn send(&mut self, child: Code, up: bool, msg: Msg) {
        let delay = self.rng.random_range(0..=self.faults.max_delay);
        let tick = self.tick;
        let Some(conn) = self.conns.get_mut(&child) else {
            return;
        };
        let q = if up { &mut conn.up } else { &mut conn.down };
        let due = q
            .back()
            .map_or(tick + delay, |(d, _)| (*d).max(tick + delay));
        q.push_back((due, msg));
    }

    fn cut(&mut self, child: Code, why: &str) {
        if self.conns.remove(&child).is_some() {
            self.log(format!("cut {child}: {why}"));
        }
    }

    fn cut_random(&mut self) -> Result<(), String> {
        let keys: Vec<Code> = self.conns.keys().copied().collect();
        if !keys.is_empty() {
            let k = keys[self.rng.random_range(0..keys.len())];
            self.cut(k, "loss (the connection and what it carried)");
        }
        Ok(())
    }

    fn replay_random(&mut self) -> Result<(), String> {
        let keys: Vec<(Code, bool)> = self
            .delivered
            .iter()
            .filter(|(k, v)| !v.is_empty() && self.conns.contains_key(&k.0))
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let (child, up) = keys[self.rng.random_range(0..keys.len())];
        let old = &self.delivered[&(child, up)];
        let msg = old[self.rng.random_range(0..old.len())].clone();
        self.log(format!(
            "replay {} {} {child}",
            msg.short(),
            if up { "up" } else { "down" }
        ));
        self.send(child, up, msg);
        Ok(())
    }

    fn deliver_one(&mut self) -> Result<(), String> {
        let due: Vec<(Code, bool)> = self
            .conns
            .iter()
            .flat_map(|(child, c)| {
                let mut v = Vec::new();
                if c.up.front().is_some_and(|(d, _)| *d <= self.tick) {
                    v.push((*child, true));
                }
                if c.down.front().is_some_and(|(d, _)| *d <= self.tick) {
                    v.push((*child, false));
                }
                v
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let (child, up) = due[self.rng.random_range(0..due.len())];
        self.deliver(child, up, false)
    }

    /// Deliver the next message of one direction of `child`'s connection (`force`: even if
    /// not due yet).
    fn deliver(&mut self, child: Code, up: bool, force: bool) -> Result<(), String> {
        let tick = self.tick;
        let Some(conn) = self.conns.get_mut(&child) else {
            return Ok(());
        };
        let q = if up { &mut conn.up } else { &mut conn.down };
        if !force && q.front().is_none_or(|(d, _)| *d > tick) {
            return Ok(());
        }
        let Some((_, msg)) = q.pop_front() else {
            return Ok(());
        };
        if msg.replayable() {
            let v = self.delivered.entry((child, up)).or_default();
            v.push(msg.clone());
            if v.len() > 64 {
                v.remove(0);
            }
        }
        let parent = self.node(child).parent.expect("a child");
        if up {
            self.at_parent(parent, child, msg)
        } else {
            self.at_child(child, parent, msg)
        }
    }

    /// Run `f` with `code`'s ledger (taken out of the world while `f` runs); nothing when the
    /// node is down.
    fn with_ledger(
        &mut self,
        code: Code,
        f: impl FnOnce(&mut World, &Ledger) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(l) = self.node_mut(code).ledger.take() else {
            return Ok(());
        };
        let r = f(self, &l);
        self.node_mut(code).ledger = Some(l);
        r
    }

    fn at_parent(&mut self, parent: Code, child: Code, msg: Msg) -> Result<(), String> {
        self.with_ledger(parent, |w, ledger| {
            w.parent_gets(ledger, parent, child, msg)
        })
    }

    fn parent_gets(
        &mut self,
        ledger: &Ledger,
        parent: Code,
        child: Code,
        msg: Msg,
    ) -> Result<(), String> {
        let conn_parent_open = self.conns.get(&child).is_some_and(|c| c.parent.is_some());
        match msg {
            Msg::Hello(id) => {
                let opened = link::open(ledger, child, Some(&id)).map_err(|e| e.to_string())?;
                match opened {
                    link::Opened::Welcome(w) => {
                        let side = (
                            CellReceiver::new(child, (w.acked, w.resume_pos)),
                            TicketSender::new(parent, child, w.down_acked, w.returns_upto),
                        );
                        if let Some(c) = self.conns.get_mut(&child) {
                            c.parent = Some(side);
                        }
                        self.send(child, false, Msg::Welcome(w));
                    }
                    link::Opened::Stale(why) => self.cut(child, &format!("stale Hello: {why}")),
                }
            }
            _ if !conn_parent_open => {
                // The edge ends such a link ("the first message of a link must be Hello").
                self.cut(child, "a message before the Hello");
            }
            Msg::Cells { cells, floor, pos } => {
                let conn = self.conns.get_mut(&child).expect("open");
                let (recv, _) = conn.parent.as_mut().expect("open");
                match recv.apply(ledger, &cells, floor, pos) {
                    Ok(r) => self.send(child, false, Msg::Ack(r.ack)),
                    Err(e) => return Err(format!("{parent} refused cells of {child}: {e}")),
                }
            }
            Msg::Tickets { events, upto } => {
                let sealed = decode(events)?;
                ledger
                    .receive_tickets(child, sealed, &[], upto)
                    .map_err(|e| format!("{parent} refused tickets of {child}: {e}"))?;
                self.send(child, false, Msg::TicketAck(upto));
            }
            Msg::TicketAck(upto) => {
                ledger
                    .set_ticket_down_acked(child, upto)
                    .map_err(|e| e.to_string())?;
                let conn = self.conns.get_mut(&child).expect("open");
                conn.parent.as_mut().expect("open").1.on_ack(upto);
            }
            Msg::Welcome(_) | Msg::Ack(_) => return Err("a child sent a parent's message".into()),
        }
        Ok(())
    }

    fn at_child(&mut self, child: Code, parent: Code, msg: Msg) -> Result<(), String> {
        self.with_ledger(child, |w, ledger| w.child_gets(ledger, child, parent, msg))
    }

    fn child_gets(
        &mut self,
        ledger: &Ledger,
        child: Code,
        parent: Code,
        msg: Msg,
    ) -> Result<(), String> {
        match msg {
            Msg::Welcome(w) => match link::welcomed(ledger, &w).map_err(|e| e.to_string())? {
                Err(why) => return Err(format!("{child} refused the Welcome: {why}")),
                Ok(_) => {
                    let side = (
                        CellSender::new(w.acked, w.resume_pos),
                        TicketSender::new(child, parent, w.ticket_acked, 0),
                    );
                    if let Some(c) = self.conns.get_mut(&child) {
                        c.child = Some(side);
                    }
                }
            },
            _ if self.conns.get(&child).is_none_or(|c| c.child.is_none()) => {
                // The edge ends such a link ("the parent did not answer Hello with Welcome").
                self.cut(child, "a message before the Welcome");
            }
            Msg::Ack(seq) => {
                let conn = self.conns.get_mut(&child).expect("open");
                conn.child.as_mut().expect("open").0.on_ack(seq);
            }
            Msg::Tickets { events, upto } => {
                let sealed = decode(events)?;
                // `upto` is a position of the parent's log: the child acks it (the parent keeps
                // the cursor), and stores no cursor of its own.
                ledger
                    .receive_tickets(parent, sealed, &[], 0)
                    .map_err(|e| format!("{child} refused tickets of {parent}: {e}"))?;
                self.send(child, true, Msg::TicketAck(upto));
            }
            Msg::TicketAck(upto) => {
                let conn = self.conns.get_mut(&child).expect("open");
                conn.child.as_mut().expect("open").1.on_ack(upto);
            }
            Msg::Hello(_) | Msg::Cells { .. } => {
                return Err("a parent sent a child's message".into())
            }
        }
        Ok(())
    }

    /// Send what `code` has to send on its links; true if anything was sent.
    fn pump(&mut self, code: Code) -> Result<bool, String> {
        let mut moved = false;
        self.with_ledger(code, |w, ledger| {
            moved = w.pump_with(ledger, code)?;
            Ok(())
        })?;
        Ok(moved)
    }

    fn pump_with(&mut self, ledger: &Ledger, code: Code) -> Result<bool, String> {
        let mut out: Vec<(Code, bool, Msg)> = Vec::new();
        {
            // Up: its own connection's child side.
            if let Some((cells, tickets)) = self.conns.get_mut(&code).and_then(|c| c.child.as_mut())
            {
                while let Some(b) = cells
                    .next(ledger, BATCH_BLOCKS)
                    .map_err(|e| e.to_string())?
                {
                    let cells = b
                        .cells
                        .iter()
                        .map(|(k, v)| Replica {
                            key: *k,
                            value: v.value,
                            version: v.version,
                        })
                        .collect();
                    out.push((
                        code,
                        true,
                        Msg::Cells {
                            cells,
                            floor: b.floor,
                            pos: b.pos,
                        },
                    ));
                }
                while let Some(b) = tickets.next(ledger).map_err(|e| e.to_string())? {
                    out.push((
                        code,
                        true,
                        Msg::Tickets {
                            events: encode(&b.entries),
                            upto: b.upto,
                        },
                    ));
                }
            }
            // Down: every child connection's parent side.
            for (child, conn) in self.conns.iter_mut() {
                if child.parent() != Some(code) {
                    continue;
                }
                if let Some((_, tickets)) = conn.parent.as_mut() {
                    while let Some(b) = tickets.next(ledger).map_err(|e| e.to_string())? {
                        out.push((
                            *child,
                            false,
                            Msg::Tickets {
                                events: encode(&b.entries),
                                upto: b.upto,
                            },
                        ));
                    }
                }
            }
        }
        let moved = !out.is_empty();
        for (child, up, msg) in out {
            self.send(child, up, msg);
        }
        Ok(moved)
    }

    fn pump_random(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..self.nodes.len());
        let code = self.nodes[i].code;
        self.pump(code).map(|_| ())
    }

    // ------------------------------------------------------------------ crashes

    fn crash_random(&mut self) -> Result<(), String> {
        let i = self.rng.random_range(0..self.nodes.len());
        let code = self.nodes[i].code;
        if self.nodes[i].ledger.is_none() {
            return Ok(());
        }
        self.nodes[i].ledger = None;
        let gone: Vec<Code> = self
            .conns
            .keys()
            .filter(|k| **k == code || k.parent() == Some(code))
            .copied()
            .collect();
        for k in gone {
            self.conns.remove(&k);
        }
        self.log(format!("crash {code}"));
        Ok(())
    }

    fn restart_random(&mut self) -> Result<(), String> {
        let down: Vec<Code> = self
            .nodes
            .iter()
            .filter(|n| n.ledger.is_none())
            .map(|n| n.code)
            .collect();
        if down.is_empty() {
            return Ok(());
        }
        let code = down[self.rng.random_range(0..down.len())];
        self.restart(code)
    }

    fn restart(&mut self, code: Code) -> Result<(), String> {
        let dir = self.node(code).dir.clone();
        let l = Ledger::open(&dir, &opts()).map_err(|e| format!("reopen {code}: {e}"))?;
        self.node_mut(code).ledger = Some(l);
        self.log(format!("restart {code}"));
        Ok(())
    }

    // ------------------------------------------------------------------ writes

    fn write_random(&mut self) -> Result<(), String> {
        let counties = self.counties();
        let county = counties[self.rng.random_range(0..counties.len())];
        if !self.up(county) {
            return Ok(());
        }
        let chunks = &self.data.chunks[&county];
        let next = self.next_chunk.get(&county).copied().unwrap_or(0);
        let changes: Vec<Change> = if next < chunks.len() {
            self.next_chunk.insert(county, next + 1);
            chunks[next].iter().cloned().map(Change::Put).collect()
        } else {
            // Everything written: correct a measure's amount.
            let measures: Vec<_> = self.acked.records[&county]
                .values()
                .filter_map(|r| match r {
                    bottomline::domain::Record::Measure(m) => Some(m.clone()),
                    _ => None,
                })
                .collect();
            if measures.is_empty() {
                return Ok(());
            }
            let mut m = measures[self.rng.random_range(0..measures.len())].clone();
            m.amount = bottomline::domain::Cents(self.rng.random_range(1..500_000));
            vec![Change::Put(bottomline::domain::Record::Measure(m))]
        };
        let ledger = self.ledger(county).expect("up");
        ledger
            .apply(&changes, data::TODAY)
            .map_err(|e| format!("{county} refused a write: {e:?}"))?;
        let n = changes.len();
        let acked = self.acked.records.entry(county).or_default();
        for ch in changes {
            if let Change::Put(r) = ch {
                acked.insert((r.kind() as u8, r.id().to_string()), r);
            }
        }
        self.log(format!("write {county}: {n} records"));
        Ok(())
    }

    /// Issue a ticket at the province or a city, or take the next step on one.
    fn ticket_work(&mut self) -> Result<(), String> {
        if self.rng.random_range(0..3u32) == 0 && self.tickets_issued < 12 {
            let issuers = ["61", "6101", "6102"];
            let issuer = c(issuers[self.rng.random_range(0..issuers.len())]);
            if !self.up(issuer) {
                return Ok(());
            }
            let targets: Vec<Code> = self
                .nodes
                .iter()
                .map(|n| n.code)
                .filter(|t| *t != issuer && issuer.contains(*t))
                .collect();
            let target = targets[self.rng.random_range(0..targets.len())];
            self.tickets_issued += 1;
            let t = Ticket {
                issuer,
                id: format!("T{}", self.tickets_issued),
                target,
                category: "住房安全".into(),
                source: TicketSource::Inspection,
                severity: Severity::Medium,
                deadline: jiff::civil::date(2026, 12, 31),
                description: format!("seed {} ticket {}", self.seed, self.tickets_issued),
                household_code: None,
                parent: None,
                inventory: None,
                spot_check: None,
            };
            let key = t.key();
            self.ledger(issuer)
                .expect("up")
                .issue_tickets(issuer, vec![t])
                .map_err(|e| format!("issue at {issuer}: {e}"))?;
            self.acked.tickets.insert(key.clone(), Vec::new());
            self.log(format!("issue {key} → {target}"));
            return Ok(());
        }
        // Work on a ticket where it can be worked: its target accepts, starts, rectifies; its
        // issuer verifies (or now and then returns it).
        let keys: Vec<TicketKey> = self.acked.tickets.keys().cloned().collect();
        let mut candidates = Vec::new();
        for key in &keys {
            for n in &self.nodes {
                let Some(l) = &n.ledger else { continue };
                let Ok(Some(s)) = l.ticket(key) else { continue };
                let (target, issuer) = (s.ticket.target, s.ticket.issuer);
                let act = match s.state {
                    State::Delivered if l.serves(target) => Some((target, Act::Accept)),
                    State::Accepted if l.serves(target) => Some((target, Act::Start)),
                    State::Rectifying if l.serves(target) => Some((
                        target,
                        Act::Rectify {
                            note: "已整改".into(),
                        },
                    )),
                    State::Rectified if n.code == issuer => Some((issuer, Act::Verify)),
                    _ => None,
                };
                if let Some((actor, act)) = act {
                    candidates.push((key.clone(), n.code, actor, act));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let (key, node, actor, mut act) =
            candidates.swap_remove(self.rng.random_range(0..candidates.len()));
        if matches!(act, Act::Verify) && self.rng.random_range(0..4u32) == 0 {
            act = Act::Return {
                reason: "证明材料不全".into(),
            };
        }
        let name = act.name();
        self.ledger(node)
            .expect("up")
            .act_on_tickets(actor, std::slice::from_ref(&key), &act)
            .map_err(|e| format!("{name} {key} at {node}: {e}"))?;
        self.acked
            .tickets
            .get_mut(&key)
            .expect("issued")
            .push((actor, name));
        self.log(format!("{name} {key} as {actor} at {node}"));
        Ok(())
    }

    /// The last lines of the trace, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let mut s = String::new();
        let from = self.trace.len().saturating_sub(n);
        for l in &self.trace[from..] {
            let _ = writeln!(s, "{l}");
        }
        s
    }
}

fn encode(entries: &[std::sync::Arc<bottomline::ledger::LogEntry>]) -> Vec<pb::TicketEvent> {
    entries
        .iter()
        .map(|e| codec::to_pb(&e.body, e.seal.as_ref()))
        .collect()
}

fn decode(events: Vec<pb::TicketEvent>) -> Result<Vec<codec::Sealed>, String> {
    events
        .into_iter()
        .map(|e| codec::from_pb(e).map_err(|e| format!("undecodable ticket event: {e}")))
        .collect()
}
