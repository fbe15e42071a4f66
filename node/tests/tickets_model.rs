//! Model tests of the ticket domain (issue #4): random legal and illegal actions by random
//! actors on a small tree (61 → 6101 → 610102 → 610102001, plus divisions off the path),
//! events created with partial knowledge (so Lamport times collide), delivered to several
//! simulated nodes shuffled and duplicated: every node must fold to the identical state, and
//! with full knowledge every verdict must match an independent model of the rules.

use std::collections::BTreeMap;

use bottomline::division::{Code, Level};
use bottomline::tickets::{
    self, check, fold, fold_all, Event, EventId, EventKind, Severity, State, Ticket, TicketKey,
    TicketSource, TicketState,
};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn c(s: &str) -> Code {
    Code::parse(s).unwrap()
}

/// The path of the tree the tickets live on.
const TREE: [&str; 4] = ["61", "6101", "610102", "610102001"];
/// Every division that may try to act: the path, a village below it, and divisions off it.
const ACTORS: [&str; 9] = [
    "61",
    "6101",
    "610102",
    "610102001",
    "610102001001",
    "62",
    "6102",
    "610103",
    "610102002",
];

/// Two child divisions of each division of the tree.
fn children_of(t: Code) -> Vec<Code> {
    let kids: &[&str] = match t.to_string().as_str() {
        "61" => &["6101", "6102"],
        "6101" => &["610102", "610103"],
        "610102" => &["610102001", "610102002"],
        "610102001" => &["610102001001", "610102001002"],
        _ => &[],
    };
    kids.iter().map(|s| c(s)).collect()
}

fn ticket(issuer: Code, id: &str, target: Code, parent: Option<TicketKey>) -> Ticket {
    Ticket {
        issuer,
        id: id.into(),
        target,
        category: "housing".into(),
        source: TicketSource::Inspection,
        severity: Severity::Medium,
        deadline: "2026-03-10".parse().unwrap(),
        description: "roof leaks".into(),
        household_code: None,
        parent,
        inventory: None,
        spot_check: None,
    }
}

/// One random action.
#[derive(Clone, Debug)]
struct Action {
    /// 0 = the ticket, 1 and 2 = its possible sub-tickets.
    ticket: usize,
    /// Index into ACTORS, or ACTORS.len() = the ticket's target, +1 = its issuer.
    actor: usize,
    /// Which kind of event.
    kind: u8,
    /// Supervision on/off, a non-empty note/reason, a split into both sub-tickets.
    flag: bool,
    /// The creating node: 0 = the actor, 1 = the actor's parent, 2 = an unrelated node.
    origin: u8,
    /// How much of the history the creator has seen (0..=255 of 255).
    view: u8,
    /// Days after 2026-03-01.
    day: u8,
}

fn action() -> impl Strategy<Value = Action> {
    (
        prop_oneof![3 => Just(0usize), 1 => 1usize..3],
        0..ACTORS.len() + 2,
        0u8..9,
        prop::bool::weighted(0.8),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        any::<u8>(),
        0u8..30,
    )
        .prop_map(|(ticket, actor, kind, flag, origin, view, day)| Action {
            ticket,
            actor,
            kind,
            flag,
            origin,
            view,
            day,
        })
}

/// The simulated world: the tickets that may exist and every event created so far.
struct World {
    tickets: Vec<Ticket>,
    events: Vec<Event>,
    seq: BTreeMap<Code, u64>,
    clock: BTreeMap<Code, u64>,
}

impl World {
    /// A ticket from `TREE[issuer]` to `TREE[target]`, issued, with sub-tickets for two
    /// children of the target that can be issued by actions.
    fn new(issuer: usize, target: usize) -> World {
        let (issuer, target) = (c(TREE[issuer]), c(TREE[target]));
        let root = ticket(issuer, "T-1", target, None);
        let mut tickets = vec![root.clone()];
        for (i, kid) in children_of(target).into_iter().enumerate() {
            tickets.push(ticket(target, &format!("T-1.{i}"), kid, Some(root.key())));
        }
        let mut w = World {
            tickets,
            events: Vec::new(),
            seq: BTreeMap::new(),
            clock: BTreeMap::new(),
        };
        let issue = w.event(issuer, issuer, root.key(), EventKind::Issued(root), 1, 0);
        w.events.push(issue);
        w
    }

    fn event(
        &mut self,
        origin: Code,
        actor: Code,
        ticket: TicketKey,
        kind: EventKind,
        lamport: u64,
        day: u8,
    ) -> Event {
        let seq = self.seq.entry(origin).or_default();
        *seq += 1;
        let clock = self.clock.entry(origin).or_default();
        let lamport = lamport.max(*clock + 1);
        *clock = lamport;
        Event {
            id: EventId { origin, seq: *seq },
            ticket,
            lamport,
            at_unix_ms: 1_772_337_600_000 + i64::from(day) * 86_400_000,
            actor,
            kind,
        }
    }

    /// The state of `key` folded from the first `n` events.
    fn state_in(&self, key: &TicketKey, n: usize) -> Option<TicketState> {
        let mine: Vec<Event> = self.events[..n]
            .iter()
            .filter(|e| e.ticket == *key)
            .cloned()
            .collect();
        fold(&mine)
    }

    /// Create the event of `a` as its creator sees the world; returns it with the state the
    /// creator checked it against.
    fn create(&mut self, a: &Action) -> (Event, Option<TicketState>) {
        let t = self.tickets[a.ticket.min(self.tickets.len() - 1)].clone();
        let actor = match a.actor {
            i if i < ACTORS.len() => c(ACTORS[i]),
            i if i == ACTORS.len() => t.target,
            _ => t.issuer,
        };
        let origin = match a.origin {
            0 => actor,
            1 => actor.parent().unwrap_or(actor),
            _ => c("62"),
        };
        let n = (self.events.len() * usize::from(a.view)).div_ceil(255);
        let view = self.state_in(&t.key(), n);
        let kind = match a.kind {
            0 => EventKind::Issued(t.clone()),
            1 => EventKind::Delivered { at: origin },
            2 => EventKind::Accepted,
            3 => EventKind::Started,
            4 => EventKind::Rectified {
                note: if a.flag { "done".into() } else { " ".into() },
            },
            5 => EventKind::Verified,
            6 => EventKind::Returned {
                reason: if a.flag { "redo".into() } else { "".into() },
            },
            7 => EventKind::Supervise { on: a.flag },
            _ => {
                let subs: Vec<TicketKey> = self
                    .tickets
                    .iter()
                    .filter(|s| s.parent.as_ref() == Some(&t.key()))
                    .map(Ticket::key)
                    .take(if a.flag { 2 } else { 1 })
                    .collect();
                EventKind::Split { children: subs }
            }
        };
        // After everything the creator has seen of this ticket, folded or not.
        let lamport =
            tickets::next_lamport(self.events[..n].iter().filter(|e| e.ticket == t.key()));
        let e = self.event(origin, actor, t.key(), kind, lamport, a.day);
        (e, view)
    }
}

/// An independent statement of the rules, for the full-knowledge property.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    issued: bool,
    state: State,
    supervised_by: Option<Code>,
    split: Vec<TicketKey>,
}

impl Model {
    fn new() -> Model {
        Model {
            issued: false,
            state: State::Issued,
            supervised_by: None,
            split: Vec::new(),
        }
    }

    /// Whether `e` is legal, and if so the model after it.
    fn step(&self, t: &Ticket, e: &Event) -> Option<Model> {
        let mut m = self.clone();
        let (target, issuer, a) = (t.target, t.issuer, e.actor);
        if !e.id.origin.contains(a) {
            return None;
        }
        if let EventKind::Issued(x) = &e.kind {
            return (!self.issued && a == issuer && x == t).then(|| Model {
                issued: true,
                ..Model::new()
            });
        }
        if !self.issued {
            return None;
        }
        let s = self.state;
        let ok = match &e.kind {
            EventKind::Issued(_) => false,
            EventKind::Delivered { at } => a == target && *at == e.id.origin && s == State::Issued,
            EventKind::Accepted => a == target && s == State::Delivered,
            EventKind::Started => a == target && m.split.is_empty() && s == State::Accepted,
            EventKind::Rectified { note } => {
                a == target
                    && m.split.is_empty()
                    && t.spot_check.is_none()
                    && s == State::Rectifying
                    && !note.trim().is_empty()
            }
            EventKind::Verified => a == issuer && m.split.is_empty() && s == State::Rectified,
            EventKind::Returned { reason } => {
                a == issuer
                    && m.split.is_empty()
                    && s == State::Rectified
                    && !reason.trim().is_empty()
            }
            EventKind::Supervise { on } => {
                let on_path = issuer.contains(a) && a.contains(target) && a != target;
                on_path
                    && s != State::Closed
                    && match (on, self.supervised_by) {
                        (true, None) => true,
                        (false, Some(by)) => a.contains(by),
                        _ => false,
                    }
            }
            EventKind::Checked { note, .. } => {
                a == target
                    && t.spot_check.is_some()
                    && matches!(s, State::Delivered | State::Accepted | State::Rectifying)
                    && !note.trim().is_empty()
            }
            EventKind::Split { children } => {
                a == target
                    && m.split.is_empty()
                    && t.spot_check.is_none()
                    && s == State::Accepted
                    && target.level() != Level::Village
                    && !children.is_empty()
                    && children.iter().all(|k| k.issuer == target)
            }
        };
        if !ok {
            return None;
        }
        match &e.kind {
            EventKind::Delivered { .. } => m.state = State::Delivered,
            EventKind::Accepted => m.state = State::Accepted,
            EventKind::Started | EventKind::Returned { .. } => m.state = State::Rectifying,
            EventKind::Rectified { .. } | EventKind::Checked { .. } => m.state = State::Rectified,
            EventKind::Verified => m.state = State::Closed,
            EventKind::Supervise { on } => m.supervised_by = on.then_some(a),
            EventKind::Split { children } => {
                m.split = children.clone();
                m.state = State::Rectifying;
            }
            EventKind::Issued(_) => {}
        }
        Some(m)
    }
}

/// `events` as seen at a node: shuffled, some duplicated.
fn arrival(events: &[Event], seed: u64) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = events.to_vec();
    for e in events {
        if rng.random_bool(0.3) {
            v.push(e.clone());
        }
    }
    v.shuffle(&mut rng);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With partial knowledge (colliding Lamport times, stale views), every node folds the
    /// same set of events to the identical states, histories included, whatever the arrival
    /// order and duplicates.
    #[test]
    fn every_node_folds_to_the_same_state(
        issuer in 0usize..3,
        offset in 1usize..4,
        actions in prop::collection::vec(action(), 0..40),
        seeds in prop::collection::vec(any::<u64>(), 4),
    ) {
        let target = (issuer + offset).min(3);
        let mut w = World::new(issuer, target);
        for a in &actions {
            let (e, _) = w.create(a);
            w.events.push(e);
        }
        let reference = fold_all(&w.events);
        prop_assert!(reference.contains_key(&w.tickets[0].key()));
        for seed in seeds {
            let seen = arrival(&w.events, seed);
            prop_assert_eq!(&fold_all(&seen), &reference);
            prop_assert_eq!(fold(&seen), fold(&w.events));
        }
        // Every event of a known ticket is in its history exactly once.
        for (key, s) in &reference {
            let n = w.events.iter().filter(|e| e.ticket == *key).count();
            prop_assert_eq!(s.history.len(), n);
        }
    }

    /// With full knowledge, `check` agrees with the model on every action, the fold follows
    /// the model, outsiders can never act, and a split ticket is closed exactly when all its
    /// sub-tickets are.
    #[test]
    fn verdicts_follow_the_rules(
        issuer in 0usize..3,
        offset in 1usize..4,
        actions in prop::collection::vec(action(), 0..60),
    ) {
        let target = (issuer + offset).min(3);
        let mut w = World::new(issuer, target);
        // The ticket itself is issued by `World::new`; its sub-tickets are not yet.
        let mut models = vec![Model::new(); w.tickets.len()];
        models[0] = Model::new().step(&w.tickets[0], &w.events[0]).unwrap();
        for a in &actions {
            let a = Action { view: 255, ..a.clone() };
            let i = a.ticket.min(w.tickets.len() - 1);
            let t = w.tickets[i].clone();
            let (e, view) = w.create(&a);
            let verdict = check(view.as_ref(), &e);
            let expected = models[i].step(&t, &e);
            prop_assert_eq!(verdict.is_ok(), expected.is_some(), "{:?}: {:?}", e, verdict);
            let on_path = t.issuer.contains(e.actor) && e.actor.contains(t.target);
            if !on_path {
                prop_assert!(verdict.is_err(), "outsider {} acted: {:?}", e.actor, e);
            }
            if let Some(m) = expected {
                models[i] = m;
            }
            w.events.push(e);
            let s = w.state_in(&t.key(), w.events.len());
            prop_assert_eq!(s.is_some(), models[i].issued);
            if let Some(s) = s {
                prop_assert_eq!(s.state, models[i].state);
                prop_assert_eq!(s.supervised_by, models[i].supervised_by);
                prop_assert_eq!(&s.split, &models[i].split);
            }
        }
        // Split tickets are derived from their sub-tickets.
        let all = fold_all(&w.events);
        let root = &all[&w.tickets[0].key()];
        if root.is_split() {
            let kids: Vec<Option<State>> = root
                .split
                .iter()
                .map(|k| all.get(k).map(|s| s.state))
                .collect();
            let expected = if kids.iter().all(|s| *s == Some(State::Closed)) {
                State::Closed
            } else if kids
                .iter()
                .all(|s| matches!(s, Some(State::Rectified | State::Closed)))
            {
                State::Rectified
            } else {
                State::Rectifying
            };
            prop_assert_eq!(root.state, expected);
            prop_assert_eq!(root.closed_on.is_some(), expected == State::Closed);
        }
    }

    /// A ticket split into sub-tickets that all close is closed at every node, on the date the
    /// last sub-ticket closed, whatever the arrival order.
    #[test]
    fn split_family_closes_everywhere(
        last_days in prop::collection::vec(0u8..20, 2),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let mut w = World::new(0, 1); // 61 → 6101
        let root = w.tickets[0].clone();
        let subs: Vec<Ticket> = w.tickets[1..].to_vec();
        let full = |w: &mut World, ticket: usize, actor: Code, kind: EventKind, day: u8| {
            let key = w.tickets[ticket].key();
            let view = w.state_in(&key, w.events.len());
            let lamport = view.as_ref().map_or(1, TicketState::next_lamport);
            let e = w.event(actor, actor, key, kind, lamport, day);
            prop_assert!(check(view.as_ref(), &e).is_ok(), "{:?}", e);
            w.events.push(e);
            Ok(())
        };
        let t = root.target;
        full(&mut w, 0, t, EventKind::Delivered { at: t }, 0)?;
        full(&mut w, 0, t, EventKind::Accepted, 0)?;
        full(&mut w, 0, t, EventKind::Split { children: subs.iter().map(Ticket::key).collect() }, 0)?;
        for (i, s) in subs.iter().enumerate() {
            let (k, d) = (s.target, last_days[i]);
            full(&mut w, i + 1, t, EventKind::Issued(s.clone()), 0)?;
            full(&mut w, i + 1, k, EventKind::Delivered { at: k }, d)?;
            full(&mut w, i + 1, k, EventKind::Accepted, d)?;
            full(&mut w, i + 1, k, EventKind::Started, d)?;
            full(&mut w, i + 1, k, EventKind::Rectified { note: "done".into() }, d)?;
            full(&mut w, i + 1, t, EventKind::Verified, d)?;
        }
        let reference = fold_all(&w.events);
        let p = &reference[&root.key()];
        prop_assert_eq!(p.state, State::Closed);
        let last = *last_days.iter().max().unwrap();
        let expected: jiff::civil::Date = "2026-03-01".parse().unwrap();
        let expected = expected.checked_add(jiff::Span::new().days(i64::from(last))).unwrap();
        prop_assert_eq!(p.closed_on, Some(expected));
        for seed in seeds {
            prop_assert_eq!(&fold_all(&arrival(&w.events, seed)), &reference);
        }
    }
}

/// The province flags supervision while the county rectifies, neither having seen the
/// other's event (equal Lamport times): both apply, in the same order at every node.
#[test]
fn concurrent_supervision_and_rectification_converge() {
    let mut w = World::new(0, 2); // 61 → 610102
    let key = w.tickets[0].key();
    let county = c("610102");
    for kind in [
        EventKind::Delivered { at: county },
        EventKind::Accepted,
        EventKind::Started,
    ] {
        let view = w.state_in(&key, w.events.len()).unwrap();
        let e = w.event(county, county, key.clone(), kind, view.next_lamport(), 1);
        check(Some(&view), &e).unwrap();
        w.events.push(e);
    }
    // Both act on the same view.
    let view = w.state_in(&key, w.events.len()).unwrap();
    let l = view.next_lamport();
    let province = c("61");
    let sup = w.event(
        province,
        province,
        key.clone(),
        EventKind::Supervise { on: true },
        l,
        2,
    );
    let rect = w.event(
        county,
        county,
        key.clone(),
        EventKind::Rectified {
            note: "done".into(),
        },
        l,
        2,
    );
    assert_eq!(sup.lamport, rect.lamport);
    check(Some(&view), &sup).unwrap();
    check(Some(&view), &rect).unwrap();
    let base = w.events.clone();
    // The province node has its own event first, the county node its own; a city node gets
    // both in a different order, duplicated.
    let at_province = [base.clone(), vec![sup.clone()], vec![rect.clone()]].concat();
    let at_county = [base.clone(), vec![rect.clone()], vec![sup.clone()]].concat();
    let at_city = [
        vec![rect.clone(), sup.clone()],
        base.clone(),
        vec![sup.clone()],
    ]
    .concat();
    let states: Vec<TicketState> = [at_province, at_county, at_city]
        .iter()
        .map(|evs| fold(evs).unwrap())
        .collect();
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0], states[2]);
    let s = &states[0];
    assert_eq!(s.state, State::Rectified);
    assert_eq!(s.supervised_by, Some(province));
    assert!(s
        .history
        .iter()
        .all(|h| h.outcome == bottomline::tickets::EntryOutcome::Applied));
}

/// A conflicting pair (the issuer verifies while a city flags supervision on the rectified
/// ticket, concurrently) resolves the same way everywhere: one of them is ignored, recorded.
#[test]
fn concurrent_verify_and_supervise_resolve_identically() {
    let mut w = World::new(0, 2);
    let key = w.tickets[0].key();
    let county = c("610102");
    for kind in [
        EventKind::Delivered { at: county },
        EventKind::Accepted,
        EventKind::Started,
        EventKind::Rectified { note: "n".into() },
    ] {
        let view = w.state_in(&key, w.events.len()).unwrap();
        let e = w.event(county, county, key.clone(), kind, view.next_lamport(), 1);
        w.events.push(e);
    }
    let l = w.state_in(&key, w.events.len()).unwrap().next_lamport();
    let verify = w.event(c("61"), c("61"), key.clone(), EventKind::Verified, l, 2);
    let sup = w.event(
        c("6101"),
        c("6101"),
        key.clone(),
        EventKind::Supervise { on: true },
        l,
        2,
    );
    let a = fold(&[w.events.clone(), vec![verify.clone(), sup.clone()]].concat()).unwrap();
    let b = fold(&[vec![sup, verify], w.events.clone()].concat()).unwrap();
    assert_eq!(a, b);
    // Origin 61 sorts before 6101: verified first, the supervision comes too late.
    assert_eq!(a.state, State::Closed);
    assert!(!a.supervised());
    let last = a.history.last().unwrap();
    assert!(
        matches!(&last.outcome, bottomline::tickets::EntryOutcome::Ignored { reason } if reason.contains("closed")),
        "{last:?}"
    );
}
