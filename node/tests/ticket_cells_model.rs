//! Property (invariant 13, ticket cells): a county node issues tickets to its towns and
//! villages (as the county, and as a town to its villages), with deadlines before and after
//! today, and takes random actions on them — legal and illegal, by the right division and by
//! others, on several tickets at once, splitting town tickets into their villages and working
//! the sub-tickets — with the ledger closed and reopened in the middle and the ticket day
//! moved on now and then. A model of the rules predicts every verdict; a refused call changes
//! nothing. Throughout: the written ticket contributions equal a recomputation
//! (`check_ticket_cells`), the cells equal `recompute_cells`. At the reopen and at the end:
//! for every division and every reported period containing today (plus the years before and
//! after), the ticket indicators equal `tickets::figures` over the folded states of the
//! counted (non-sub) tickets in that division, with stocks as of min(period end, the node's
//! `as_of` day), and — independently of the ledger's fold — the model's counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bottomline::division::{Code, Level};
use bottomline::ledger::{sub_id, Act, Ledger};
use bottomline::period::{today_in_china, Kind, Period};
use bottomline::stats::{CellKey, Value};
use bottomline::store::StoreOptions;
use bottomline::tickets::{self, Severity, State, Ticket, TicketKey, TicketSource, TicketState};
use jiff::civil::Date;
use proptest::prelude::*;

const COUNTY: &str = "610102";
const TOWNS: [&str; 2] = ["610102001", "610102002"];
const VILLAGES: [&str; 4] = [
    "610102001001",
    "610102001002",
    "610102002001",
    "610102002002",
];
/// Who may try to act: the county and everything below it, plus the city above and a
/// neighbouring county (which this node does not serve).
const ACTORS: [&str; 9] = [
    "610102",
    "610102001",
    "610102002",
    "610102001001",
    "610102001002",
    "610102002001",
    "610102002002",
    "6101",
    "610103",
];
/// Who may try to issue (indices into `ACTORS`): the county, both towns, a village, the city.
const ISSUERS: [usize; 5] = [0, 1, 2, 3, 7];
/// Ticket ids; the last two collide with the sub-ticket ids of splits of `T0` into
/// `…001` and of `T1` into `…002` when a town issues them.
const IDS: [&str; 6] = ["T0", "T1", "T2", "T3", "T0.001", "T1.002"];

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

/// The direct children of a division of this tree.
fn children(d: Code) -> Vec<Code> {
    let kids: &[&str] = match d.to_string().as_str() {
        COUNTY => &TOWNS,
        "610102001" => &VILLAGES[..2],
        "610102002" => &VILLAGES[2..],
        _ => &[],
    };
    kids.iter().map(|s| c(s)).collect()
}

fn plus_days(d: Date, n: i64) -> Date {
    d.checked_add(jiff::Span::new().days(n)).expect("date")
}

fn ticket(issuer: Code, id: &str, target: Code, deadline: Date) -> Ticket {
    Ticket {
        issuer,
        id: id.into(),
        target,
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::Medium,
        deadline,
        description: "roof of a monitored household leaks".into(),
        household_code: None,
        parent: None,
        inventory: Some("2026-inspection".into()),
        spot_check: None,
    }
}

/// The target of a new ticket, relative to its issuer.
#[derive(Clone, Copy, Debug)]
enum Aim {
    /// A direct child of the issuer (the i-th, modulo).
    Child(usize),
    /// A grandchild of the issuer (the i-th, modulo).
    Grandchild(usize),
    /// Any of `ACTORS` (mostly illegal: the issuer itself, above it, outside it).
    Any(usize),
}

#[derive(Clone, Debug)]
struct NewTicket {
    id: usize,
    aim: Aim,
    /// Deadline in days from today.
    deadline: i64,
}

/// Who takes an action, relative to the ticket it is taken on.
/// Which ticket an action is taken on.
#[derive(Clone, Copy, Debug)]
enum Pick {
    /// The i-th ticket held (sorted by key), modulo their number.
    Any(usize),
    /// The i-th ticket that is still open and not split, sub-tickets first (so that
    /// sequences get far), or the i-th held when there is none.
    Workable(usize),
    /// As `Workable`, together with every other workable ticket in the same state whose
    /// natural actor for the action is the same (one call on many tickets).
    Batch(usize),
}

#[derive(Clone, Copy, Debug)]
enum Who {
    /// Whoever the rules want for the action (target, issuer, or the issuer for supervision).
    Natural,
    Target,
    Issuer,
    /// The target's parent division.
    Above,
    Any(usize),
}

#[derive(Clone, Copy, Debug)]
enum Do {
    /// The step that moves the (first) ticket on from its state: split rather than start
    /// for 0 (into all children) and 1 (into the first), return rather than verify for 0.
    Next(u8),
    Accept,
    Start,
    /// With a non-empty note (true) or a blank one.
    Rectify(bool),
    Verify,
    /// With a non-empty reason (true) or a blank one.
    Return(bool),
    Supervise(bool),
    /// Into: 0 all children, 1 the first child, 2 the first child twice, 3 the target itself
    /// and its first child, 4 a village outside the target.
    Split(u8),
}

#[derive(Clone, Debug)]
enum Op {
    /// `actor` indexes `ISSUERS`.
    Issue {
        actor: usize,
        tickets: Vec<NewTicket>,
    },
    Act {
        keys: Vec<Pick>,
        who: Who,
        act: Do,
    },
    /// `refresh_ticket_cells(today + n days)`.
    Refresh(u8),
    Reopen,
}

fn arb_aim() -> impl Strategy<Value = Aim> {
    prop_oneof![
        4 => (0usize..4).prop_map(Aim::Child),
        3 => (0usize..4).prop_map(Aim::Grandchild),
        1 => (0..ACTORS.len()).prop_map(Aim::Any),
    ]
}

fn arb_new_ticket() -> impl Strategy<Value = NewTicket> {
    (0..IDS.len(), arb_aim(), -3i64..=3).prop_map(|(id, aim, deadline)| NewTicket {
        id,
        aim,
        deadline,
    })
}

fn arb_pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        1 => (0usize..64).prop_map(Pick::Any),
        3 => prop_oneof![3 => Just(0usize), 1 => Just(1)].prop_map(Pick::Workable),
        2 => prop_oneof![3 => Just(0usize), 1 => Just(1)].prop_map(Pick::Batch),
    ]
}

fn arb_who() -> impl Strategy<Value = Who> {
    prop_oneof![
        8 => Just(Who::Natural),
        1 => Just(Who::Target),
        1 => Just(Who::Issuer),
        1 => Just(Who::Above),
        1 => (0..ACTORS.len()).prop_map(Who::Any),
    ]
}

fn arb_do() -> impl Strategy<Value = Do> {
    prop_oneof![
        20 => (0u8..4).prop_map(Do::Next),
        1 => Just(Do::Accept),
        1 => Just(Do::Start),
        1 => any::<bool>().prop_map(Do::Rectify),
        1 => Just(Do::Verify),
        1 => any::<bool>().prop_map(Do::Return),
        2 => any::<bool>().prop_map(Do::Supervise),
        2 => (0u8..5).prop_map(Do::Split),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (
            prop_oneof![4 => Just(0usize), 2 => Just(1), 2 => Just(2), 1 => Just(3), 1 => Just(4)],
            proptest::collection::vec(arb_new_ticket(), 1..4),
        )
            .prop_map(|(actor, tickets)| Op::Issue { actor, tickets }),
        18 => (
            prop_oneof![
                4 => arb_pick().prop_map(|p| vec![p]),
                1 => proptest::collection::vec(arb_pick(), 2),
            ],
            arb_who(),
            arb_do(),
        )
            .prop_map(|(keys, who, act)| Op::Act { keys, who, act }),
        1 => (0u8..3).prop_map(Op::Refresh),
        1 => Just(Op::Reopen),
    ]
}

/// Up to 30 operations: an issue by the county, random ones, a reopen, random ones.
fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(arb_new_ticket(), 1..4),
        proptest::collection::vec(arb_op(), 4..14),
        proptest::collection::vec(arb_op(), 4..15),
    )
        .prop_map(|(tickets, first, second)| {
            let mut ops = vec![Op::Issue { actor: 0, tickets }];
            ops.extend(first);
            ops.push(Op::Reopen);
            ops.extend(second);
            ops
        })
}

/// What the model knows of a ticket.
#[derive(Clone, Debug)]
struct M {
    ticket: Ticket,
    /// Its own state (a split ticket stays rectifying; its shown state is derived).
    own: State,
    split: Vec<TicketKey>,
    supervised_by: Option<Code>,
}

type Model = BTreeMap<TicketKey, M>;

/// The state the ledger must show: a split ticket's derived from its sub-tickets.
fn shown(model: &Model, key: &TicketKey) -> State {
    let m = &model[key];
    if m.split.is_empty() {
        return m.own;
    }
    let subs: Vec<Option<State>> = m
        .split
        .iter()
        .map(|k| {
            model
                .get(k)
                .filter(|s| {
                    s.ticket.parent.as_ref() == Some(key) && s.ticket.issuer == m.ticket.target
                })
                .map(|_| shown(model, k))
        })
        .collect();
    if subs.iter().all(|s| *s == Some(State::Closed)) {
        State::Closed
    } else if subs
        .iter()
        .all(|s| matches!(s, Some(State::Rectified | State::Closed)))
    {
        State::Rectified
    } else {
        State::Rectifying
    }
}

/// The children a split variant lists for `target`.
fn split_into(target: Code, variant: u8) -> Vec<Code> {
    let kids = children(target);
    let first = kids.first().copied();
    match variant {
        0 => kids,
        1 => first.into_iter().collect(),
        2 => first.into_iter().flat_map(|k| [k, k]).collect(),
        3 => std::iter::once(target).chain(first).collect(),
        _ => {
            // A village of the other town (or of the first town, for a village target).
            let outside = if c(TOWNS[0]).contains(target) {
                VILLAGES[2]
            } else {
                VILLAGES[0]
            };
            vec![c(outside)]
        }
    }
}

/// The concrete action `what` resolves to on ticket `m`.
fn resolve_act(what: Do, m: &M) -> Act {
    let split_ok = m.ticket.target.level() != Level::Village;
    match what {
        Do::Next(v) => match m.own {
            State::Issued | State::Delivered => Act::Accept,
            State::Accepted if v < 2 && split_ok => Act::Split {
                into: split_into(m.ticket.target, v),
            },
            State::Accepted => Act::Start,
            State::Rectifying => Act::Rectify {
                note: "repaired".into(),
            },
            State::Rectified if v == 0 => Act::Return {
                reason: "not repaired".into(),
            },
            State::Rectified => Act::Verify,
            State::Closed => Act::Supervise {
                on: m.supervised_by.is_none(),
            },
        },
        Do::Accept => Act::Accept,
        Do::Start => Act::Start,
        Do::Rectify(ok) => Act::Rectify {
            note: if ok { "repaired" } else { "  " }.into(),
        },
        Do::Verify => Act::Verify,
        Do::Return(ok) => Act::Return {
            reason: if ok { "not repaired" } else { "" }.into(),
        },
        Do::Supervise(on) => Act::Supervise { on },
        Do::Split(v) => Act::Split {
            into: split_into(m.ticket.target, v),
        },
    }
}

fn resolve_actor(who: Who, act: &Act, m: &M) -> Code {
    let t = &m.ticket;
    match who {
        Who::Natural => match act {
            Act::Verify | Act::Return { .. } | Act::Supervise { .. } => t.issuer,
            _ => t.target,
        },
        Who::Target => t.target,
        Who::Issuer => t.issuer,
        Who::Above => t.target.parent().unwrap_or(t.issuer),
        Who::Any(i) => c(ACTORS[i]),
    }
}

/// Whether the node serves (acts for) `d`.
fn served(d: Code) -> bool {
    c(COUNTY).contains(d)
}

/// The model's verdict on `act` by `actor` on `key`: the model after it, or `None` when
/// it must be refused. Independent of the library's rules (written from SPEC / `check`'s
/// documentation).
fn model_act(model: &Model, actor: Code, key: &TicketKey, act: &Act) -> Option<Vec<M>> {
    let m = model.get(key)?;
    let t = &m.ticket;
    let split = !m.split.is_empty();
    let mut n = m.clone();
    let by_target = actor == t.target;
    let by_issuer = actor == t.issuer;
    let ok = match act {
        Act::Accept => by_target && m.own == State::Delivered,
        Act::Start => by_target && !split && m.own == State::Accepted,
        Act::Rectify { note } => {
            by_target
                && !split
                && t.spot_check.is_none()
                && m.own == State::Rectifying
                && !note.trim().is_empty()
        }
        Act::Check { note, .. } => {
            by_target
                && t.spot_check.is_some()
                && matches!(
                    m.own,
                    State::Delivered | State::Accepted | State::Rectifying
                )
                && !note.trim().is_empty()
        }
        Act::Verify => by_issuer && !split && m.own == State::Rectified,
        Act::Return { reason } => {
            by_issuer && !split && m.own == State::Rectified && !reason.trim().is_empty()
        }
        Act::Supervise { on } => {
            let on_path = t.issuer.contains(actor) && actor.contains(t.target) && actor != t.target;
            // Not on a closed ticket, a split ticket closed through its sub-tickets included.
            on_path
                && m.own != State::Closed
                && shown(model, key) != State::Closed
                && match (on, m.supervised_by) {
                    (true, Some(_)) | (false, None) => false,
                    (false, Some(by)) => actor.contains(by),
                    (true, None) => true,
                }
        }
        Act::Split { into } => {
            let subs: BTreeSet<&Code> = into.iter().collect();
            by_target
                && !split
                && m.own == State::Accepted
                && t.target.level() != Level::Village
                && !into.is_empty()
                && subs.len() == into.len()
                && into.iter().all(|k| k.parent() == Some(t.target))
                && into.iter().all(|k| {
                    !model.contains_key(&TicketKey::new(t.target, sub_id(&t.id, t.target, *k)))
                })
        }
    };
    if !ok {
        return None;
    }
    let mut out = Vec::new();
    match act {
        Act::Accept => n.own = State::Accepted,
        Act::Start => n.own = State::Rectifying,
        Act::Rectify { .. } | Act::Check { .. } => n.own = State::Rectified,
        Act::Verify => n.own = State::Closed,
        Act::Return { .. } => n.own = State::Rectifying,
        Act::Supervise { on } => n.supervised_by = on.then_some(actor),
        Act::Split { into } => {
            n.own = State::Rectifying;
            for k in into {
                let sub = Ticket {
                    issuer: t.target,
                    id: sub_id(&t.id, t.target, *k),
                    target: *k,
                    parent: Some(key.clone()),
                    ..t.clone()
                };
                n.split.push(sub.key());
                out.push(M {
                    ticket: sub,
                    own: State::Delivered,
                    split: Vec::new(),
                    supervised_by: None,
                });
            }
        }
    }
    out.insert(0, n);
    Some(out)
}

/// The model's verdict on issuing `tickets` as `actor`: the new tickets, or `None`.
fn model_issue(model: &Model, actor: Code, tickets: &[Ticket]) -> Option<Vec<M>> {
    if !served(actor) {
        return None;
    }
    let mut keys = BTreeSet::new();
    let mut out = Vec::new();
    for t in tickets {
        let legal = t.issuer == actor && t.issuer.contains(t.target) && t.issuer != t.target;
        if !legal || !keys.insert(t.key()) {
            return None;
        }
        match model.get(&t.key()) {
            // The same ticket again changes nothing; other content under its key is refused.
            Some(m) if m.ticket == *t => {}
            Some(_) => return None,
            None => out.push(M {
                ticket: t.clone(),
                // Served here: delivered in the commit that stores it.
                own: State::Delivered,
                split: Vec::new(),
                supervised_by: None,
            }),
        }
    }
    Some(out)
}

fn open(dir: &Path) -> Ledger {
    Ledger::open_or_init(dir, Some(c(COUNTY)), &StoreOptions::default()).expect("open ledger")
}

/// Everything a refused call must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tickets: BTreeMap<TicketKey, TicketState>,
    cells: BTreeMap<CellKey, i64>,
    head: u64,
    as_of: Option<Date>,
}

fn snapshot(l: &Ledger) -> Snapshot {
    Snapshot {
        tickets: l.tickets().expect("tickets"),
        cells: l.all_cells().expect("cells"),
        head: l.ticket_head(),
        as_of: l.ticket_as_of().expect("as of"),
    }
}

/// After every operation: the ledger's states follow the model, the ticket cells are right.
fn check_states(l: &Ledger, model: &Model, as_of: Option<Date>) -> Result<(), TestCaseError> {
    let states = l.tickets().expect("tickets");
    prop_assert_eq!(
        states.keys().collect::<Vec<_>>(),
        model.keys().collect::<Vec<_>>()
    );
    for (k, s) in &states {
        let m = &model[k];
        prop_assert_eq!(&s.ticket, &m.ticket, "{}", k);
        prop_assert_eq!(s.state, shown(model, k), "{}", k);
        prop_assert_eq!(s.supervised_by, m.supervised_by, "{}", k);
        prop_assert_eq!(&s.split, &m.split, "{}", k);
    }
    // The ticket index (what List and Progress read) follows the folded states exactly.
    let summaries = l.ticket_summaries(None, None).expect("index");
    let folded: Vec<TicketState> = states.values().cloned().map(TicketState::summary).collect();
    prop_assert_eq!(&summaries, &folded);
    let day0 = as_of.unwrap_or_else(today_in_china);
    for day in [day0, day0.tomorrow().expect("day")] {
        let overdue: Vec<TicketState> = folded.iter().filter(|s| s.overdue(day)).cloned().collect();
        prop_assert_eq!(l.ticket_summaries(Some(day), None).expect("index"), overdue);
    }
    // What progress counts: every ticket but a sub-ticket whose split ticket is held here.
    let counted: Vec<&TicketState> = folded
        .iter()
        .filter(|s| {
            s.ticket
                .parent
                .as_ref()
                .is_none_or(|p| !states.contains_key(p))
        })
        .collect();
    let items = |inventory: Option<&str>| -> Vec<tickets::ProgressItem> {
        counted
            .iter()
            .filter(|s| inventory.is_none_or(|n| s.ticket.inventory.as_deref() == Some(n)))
            .map(|s| tickets::ProgressItem::from(*s))
            .collect()
    };
    for inventory in [Some("2026-inspection"), None] {
        prop_assert_eq!(
            l.inventory_items(inventory).expect("index"),
            items(inventory)
        );
    }
    // The rows a listing filters: every ticket's, and the overdue ones of a day.
    let rows = |day: Option<Date>| -> Vec<(TicketKey, tickets::ProgressItem)> {
        folded
            .iter()
            .filter(|s| day.is_none_or(|d| s.overdue(d)))
            .map(|s| (s.key(), tickets::ProgressItem::from(s)))
            .collect()
    };
    for day in [None, Some(day0.tomorrow().expect("day"))] {
        prop_assert_eq!(l.ticket_rows(day, None).expect("index"), rows(day));
    }
    prop_assert_eq!(l.ticket_as_of().expect("as of"), as_of);
    let wrong = l.check_ticket_cells().expect("check ticket cells");
    prop_assert!(wrong.is_empty(), "ticket cells differ for {:?}", wrong);
    prop_assert_eq!(
        l.all_cells().expect("cells"),
        l.recompute_cells().expect("recompute")
    );
    Ok(())
}

fn all_divisions() -> Vec<Code> {
    std::iter::once(COUNTY)
        .chain(TOWNS)
        .chain(VILLAGES)
        .map(c)
        .collect()
}

/// The ticket indicators of every division and period against `tickets::figures` over the
/// ledger's folded states, and against the model's own counts.
fn check_figures(
    l: &Ledger,
    model: &Model,
    today: Date,
    as_of: Option<Date>,
) -> Result<(), TestCaseError> {
    let upto = as_of.unwrap_or(today);
    let states = l.tickets().expect("tickets");
    let year = Period::containing(Kind::Year, today);
    let mut periods = BTreeSet::from([year.prev(), year.next()]);
    for kind in Kind::REPORTED {
        periods.insert(Period::containing(kind, today));
        periods.insert(Period::containing(kind, upto));
    }
    for division in all_divisions() {
        let counted: Vec<&TicketState> = states
            .values()
            .filter(|s| s.ticket.parent.is_none() && division.contains(s.ticket.target))
            .collect();
        for &p in &periods {
            let last = p.last_day().min(upto);
            let f = tickets::figures(counted.iter().copied(), p.first_day(), last);
            let ind = l.indicators(division, p).expect("indicators");
            let got = [
                ind.count("tickets_issued", "total"),
                ind.count("tickets_rectified", "total"),
                ind.count("tickets_closed", "total"),
                ind.count("tickets_open", "total"),
                ind.count("tickets_overdue", "total"),
            ];
            let want = [f.issued, f.rectified, f.closed, f.open, f.overdue].map(|v| v as i64);
            prop_assert_eq!(
                got,
                want,
                "{} {} (issued, rectified, closed, open, overdue)",
                division,
                p
            );
            prop_assert_eq!(
                ind.get("ticket_clearance_rate", "total"),
                Some(Value::Ratio(f.clearance_rate())),
                "{} {}",
                division,
                p
            );
            if p == year.prev() {
                // Everything was issued today.
                prop_assert_eq!(got, [0; 5], "{} {}", division, p);
                prop_assert_eq!(
                    ind.get("ticket_clearance_rate", "total"),
                    Some(Value::Ratio(None))
                );
            }
            if p.contains(today) {
                // The model's counts: every event is dated today, so every flow falls in
                // each period containing today; stocks as of min(period end, as_of).
                let mine: Vec<(&TicketKey, &M)> = model
                    .iter()
                    .filter(|(_, m)| {
                        m.ticket.parent.is_none() && division.contains(m.ticket.target)
                    })
                    .collect();
                let n = |pred: &dyn Fn(&TicketKey, &M) -> bool| {
                    mine.iter().filter(|(k, m)| pred(k, m)).count() as i64
                };
                let issued = mine.len() as i64;
                let closed = n(&|k, _| shown(model, k) == State::Closed);
                let rectified =
                    n(&|k, _| matches!(shown(model, k), State::Rectified | State::Closed));
                let overdue =
                    n(&|k, m| m.ticket.deadline < last && shown(model, k).is_unrectified());
                prop_assert_eq!(
                    got,
                    [issued, rectified, closed, issued - closed, overdue],
                    "model: {} {}",
                    division,
                    p
                );
            }
        }
    }
    Ok(())
}

/// Run one sequence. Returns early (passing) if the China date changes while it runs:
/// events would then be dated on two days and the model's "everything is today" is off.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let today = today_in_china();
    let mut ledger = open(dir.path());
    let mut model = Model::new();
    let mut as_of: Option<Date> = None;
    for op in ops {
        if today_in_china() != today {
            return Ok(());
        }
        let before = snapshot(&ledger);
        // Whether the call was refused (or, for a repeated issue, had nothing new to write).
        let mut unchanged = false;
        match op {
            Op::Issue { actor, tickets } => {
                let actor = c(ACTORS[ISSUERS[*actor]]);
                let list: Vec<Ticket> = tickets
                    .iter()
                    .map(|nt| {
                        let target = match nt.aim {
                            Aim::Child(i) => {
                                let k = children(actor);
                                k.get(i % k.len().max(1)).copied()
                            }
                            Aim::Grandchild(i) => {
                                let g: Vec<Code> =
                                    children(actor).into_iter().flat_map(children).collect();
                                g.get(i % g.len().max(1)).copied()
                            }
                            Aim::Any(i) => Some(c(ACTORS[i])),
                        }
                        .unwrap_or(actor);
                        ticket(actor, IDS[nt.id], target, plus_days(today, nt.deadline))
                    })
                    .collect();
                let want = model_issue(&model, actor, &list);
                let got = ledger.issue_tickets(actor, list.clone());
                prop_assert_eq!(
                    got.is_ok(),
                    want.is_some(),
                    "issue {:?} as {}: {:?}",
                    list,
                    actor,
                    got
                );
                unchanged = want.as_ref().is_none_or(Vec::is_empty);
                if let Some(new) = want {
                    if !new.is_empty() {
                        as_of = Some(as_of.map_or(today, |d| d.max(today)));
                        prop_assert!(ledger.ticket_head() > before.head);
                    }
                    for m in new {
                        model.insert(m.ticket.key(), m);
                    }
                }
            }
            Op::Act {
                keys: pick,
                who,
                act,
            } => {
                if model.is_empty() {
                    continue;
                }
                let all: Vec<TicketKey> = model.keys().cloned().collect();
                let mut workable: Vec<(bool, TicketKey)> = model
                    .iter()
                    .filter(|(k, m)| m.split.is_empty() && shown(&model, k) != State::Closed)
                    .map(|(k, m)| (m.ticket.parent.is_none(), k.clone()))
                    .collect();
                workable.sort();
                let workable: Vec<TicketKey> = workable.into_iter().map(|(_, k)| k).collect();
                let mut keys: Vec<TicketKey> = pick
                    .iter()
                    .map(|p| match p {
                        Pick::Workable(i) | Pick::Batch(i) if !workable.is_empty() => {
                            workable[i % workable.len()].clone()
                        }
                        Pick::Workable(i) | Pick::Batch(i) | Pick::Any(i) => {
                            all[i % all.len()].clone()
                        }
                    })
                    .collect();
                let first = &model[&keys[0]];
                let act = resolve_act(*act, first);
                let actor = resolve_actor(*who, &act, first);
                if matches!(pick[0], Pick::Batch(_)) {
                    let natural = resolve_actor(Who::Natural, &act, first);
                    keys.extend(
                        workable
                            .iter()
                            .filter(|k| {
                                let m = &model[*k];
                                m.own == first.own
                                    && resolve_actor(Who::Natural, &act, m) == natural
                            })
                            .cloned(),
                    );
                }
                // All or nothing: every (distinct) key must pass, each on its own state.
                let mut distinct = Vec::new();
                for k in &keys {
                    if !distinct.contains(k) {
                        distinct.push(k.clone());
                    }
                }
                let want: Option<Vec<Vec<M>>> = if served(actor) {
                    distinct
                        .iter()
                        .map(|k| model_act(&model, actor, k, &act))
                        .collect()
                } else {
                    None
                };
                let got = ledger.act_on_tickets(actor, &keys, &act);
                unchanged = got.is_err();
                prop_assert_eq!(
                    got.is_ok(),
                    want.is_some(),
                    "{:?} by {} on {:?}: {:?}",
                    act,
                    actor,
                    keys,
                    got.as_ref()
                        .map(|v| v.iter().map(|s| s.state).collect::<Vec<_>>())
                );
                if let (Some(want), Ok(states)) = (want, got) {
                    for m in want.into_iter().flatten() {
                        model.insert(m.ticket.key(), m);
                    }
                    as_of = Some(as_of.map_or(today, |d| d.max(today)));
                    prop_assert!(ledger.ticket_head() > before.head);
                    // The states returned are the ones the ledger now shows.
                    let now = ledger.tickets().expect("tickets");
                    prop_assert_eq!(states.len(), distinct.len());
                    for (k, s) in distinct.iter().zip(&states) {
                        prop_assert_eq!(s, &now[k], "{}", k);
                    }
                }
            }
            Op::Refresh(n) => {
                let day = plus_days(today, i64::from(*n));
                let recounted = ledger.refresh_ticket_cells(day).expect("refresh");
                let due = as_of.is_none_or(|d| d < day);
                let counted = model.values().filter(|m| m.ticket.parent.is_none()).count();
                prop_assert_eq!(recounted, if due { counted } else { 0 });
                if due {
                    as_of = Some(day);
                }
            }
            Op::Reopen => {
                drop(ledger);
                ledger = Ledger::open(dir.path(), &StoreOptions::default()).expect("reopen");
                prop_assert_eq!(&snapshot(&ledger), &before, "reopen changed the ledger");
                check_states(&ledger, &model, as_of)?;
                if today_in_china() == today {
                    check_figures(&ledger, &model, today, as_of)?;
                }
                continue;
            }
        }
        if today_in_china() != today {
            return Ok(());
        }
        if unchanged {
            prop_assert_eq!(&snapshot(&ledger), &before, "{:?} left changes behind", op);
        }
        check_states(&ledger, &model, as_of)?;
    }
    if today_in_china() != today {
        return Ok(());
    }
    check_figures(&ledger, &model, today, as_of)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ticket_cells_follow_the_tickets(ops in arb_ops()) {
        run(&ops)?;
    }
}
