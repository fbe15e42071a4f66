//! Tests of the ticket domain: rules, folds, splits, dates, figures, inventories.
use super::*;

fn c(s: &str) -> Code {
    Code::parse(s).unwrap()
}

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

/// 2026-03-01 12:00 China time plus `days`.
fn ms(days: i64) -> i64 {
    1_772_337_600_000 + days * 86_400_000
}

fn ticket(issuer: &str, id: &str, target: &str) -> Ticket {
    Ticket {
        issuer: c(issuer),
        id: id.into(),
        target: c(target),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: d("2026-03-10"),
        description: "roof leaks".into(),
        household_code: None,
        parent: None,
        inventory: None,
        spot_check: None,
    }
}

/// A tiny event factory: every event gets a fresh id at its origin.
struct Sim {
    seq: u64,
    events: Vec<Event>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            seq: 0,
            events: Vec::new(),
        }
    }

    fn ev(&mut self, key: &TicketKey, actor: &str, kind: EventKind, day: i64) -> Event {
        self.seq += 1;
        let lamport = self.state_of(key).map_or(1, |s| s.next_lamport());
        Event {
            id: EventId {
                origin: c(actor),
                seq: self.seq,
            },
            ticket: key.clone(),
            lamport,
            at_unix_ms: ms(day),
            actor: c(actor),
            kind,
        }
    }

    /// Check against the current state, then record it (legal or not).
    fn act(
        &mut self,
        key: &TicketKey,
        actor: &str,
        kind: EventKind,
        day: i64,
    ) -> Result<(), TicketError> {
        let e = self.ev(key, actor, kind, day);
        let r = check(self.state_of(key).as_ref(), &e);
        self.events.push(e);
        r
    }

    fn state_of(&self, key: &TicketKey) -> Option<TicketState> {
        let mine: Vec<Event> = self
            .events
            .iter()
            .filter(|e| e.ticket == *key)
            .cloned()
            .collect();
        fold(&mine)
    }

    /// The state of the first ticket issued.
    fn state(&self) -> TicketState {
        self.state_of(&self.events[0].ticket).unwrap()
    }
}

fn rectified_ticket() -> (Sim, TicketKey) {
    let mut sim = Sim::new();
    let t = ticket("61", "T-0007", "610102");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    sim.act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
        .unwrap();
    sim.act(&k, "610102", EventKind::Accepted, 1).unwrap();
    sim.act(&k, "610102", EventKind::Started, 1).unwrap();
    sim.act(
        &k,
        "610102",
        EventKind::Rectified {
            note: "roof fixed".into(),
        },
        3,
    )
    .unwrap();
    (sim, k)
}

#[test]
fn the_whole_lifecycle_with_a_return() {
    let (mut sim, k) = rectified_ticket();
    assert_eq!(sim.state().state, State::Rectified);
    assert_eq!(sim.state().rectified_on, Some(d("2026-03-04")));
    sim.act(
        &k,
        "61",
        EventKind::Returned {
            reason: "photos missing".into(),
        },
        4,
    )
    .unwrap();
    let s = sim.state();
    assert_eq!(s.state, State::Rectifying);
    assert_eq!(s.rectified_on, None);
    assert_eq!(s.returns, 1);
    assert_eq!(s.return_reason.as_deref(), Some("photos missing"));
    sim.act(
        &k,
        "610102",
        EventKind::Rectified {
            note: "photos attached".into(),
        },
        5,
    )
    .unwrap();
    sim.act(&k, "61", EventKind::Verified, 6).unwrap();
    let s = sim.state();
    assert_eq!(s.state, State::Closed);
    assert_eq!(s.closed_on, Some(d("2026-03-07")));
    assert_eq!(s.rectified_on, Some(d("2026-03-06")));
    assert_eq!(s.note.as_deref(), Some("photos attached"));
    assert!(s.history.iter().all(|h| h.outcome == EntryOutcome::Applied));
    let states: Vec<State> = s.timeline.iter().map(|t| t.state).collect();
    use State::*;
    assert_eq!(
        states,
        [Issued, Delivered, Accepted, Rectifying, Rectified, Rectifying, Rectified, Closed]
    );
    assert_eq!(s.state_on(d("2026-03-04")), Some(Rectified));
    assert_eq!(s.state_on(d("2026-02-28")), None);
}

#[test]
fn the_message_names_ticket_state_and_rule() {
    let mut sim = Sim::new();
    let t = ticket("61", "T-0007", "610102");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    let e = sim.act(&k, "61", EventKind::Verified, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-0007 is issued, not rectified: only a rectified ticket can be verified"
    );
    let e = sim.act(&k, "610102", EventKind::Accepted, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-0007 is issued, not delivered: only a delivered ticket can be accepted"
    );
    let e = sim.act(&k, "6101", EventKind::Accepted, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-0007: 6101 may not accept it: only its target 610102 can"
    );
}

#[test]
fn every_target_side_action_needs_the_target_and_its_state() {
    let mut sim = Sim::new();
    let t = ticket("61", "T-1", "610102");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    // Delivery: only the target, at its own node.
    let e = sim
        .act(&k, "61", EventKind::Delivered { at: c("61") }, 0)
        .unwrap_err();
    assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
    let e = sim
        .act(&k, "610102", EventKind::Delivered { at: c("6101") }, 0)
        .unwrap_err();
    assert!(e.to_string().contains("names node 6101"), "{e}");
    let e = sim.act(&k, "610102", EventKind::Started, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-1 is issued, not accepted: only an accepted ticket can be started"
    );
    sim.act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
        .unwrap();
    let e = sim
        .act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
        .unwrap_err();
    assert!(e.to_string().contains("is delivered, not issued"), "{e}");
    sim.act(&k, "610102", EventKind::Accepted, 0).unwrap();
    let e = sim
        .act(
            &k,
            "610102",
            EventKind::Rectified {
                note: "done".into(),
            },
            0,
        )
        .unwrap_err();
    assert!(e.to_string().contains("is accepted, not rectifying"), "{e}");
    sim.act(&k, "610102", EventKind::Started, 0).unwrap();
    let e = sim
        .act(&k, "610102", EventKind::Rectified { note: " ".into() }, 0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-1: the rectification note is empty"
    );
    let e = sim
        .act(&k, "6101", EventKind::Rectified { note: "x".into() }, 0)
        .unwrap_err();
    assert!(e.to_string().contains("only its target 610102"), "{e}");
    // A town below the target is not the target either.
    let e = sim
        .act(
            &k,
            "610102001",
            EventKind::Rectified { note: "x".into() },
            0,
        )
        .unwrap_err();
    assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
    // The target cannot verify its own rectification.
    sim.act(&k, "610102", EventKind::Rectified { note: "x".into() }, 0)
        .unwrap();
    let e = sim.act(&k, "610102", EventKind::Verified, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-1: 610102 may not verify it: only its issuer 61 can"
    );
}

#[test]
fn issuer_side_actions() {
    let (mut sim, k) = rectified_ticket();
    let e = sim
        .act(
            &k,
            "6101",
            EventKind::Returned {
                reason: "no".into(),
            },
            4,
        )
        .unwrap_err();
    assert!(e.to_string().contains("only its issuer 61"), "{e}");
    let e = sim
        .act(&k, "61", EventKind::Returned { reason: "".into() }, 4)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-0007: the return reason is empty"
    );
    sim.act(&k, "61", EventKind::Verified, 4).unwrap();
    let e = sim.act(&k, "61", EventKind::Verified, 4).unwrap_err();
    assert!(e.to_string().contains("is closed, not rectified"), "{e}");
    let e = sim
        .act(&k, "61", EventKind::Returned { reason: "x".into() }, 4)
        .unwrap_err();
    assert!(e.to_string().contains("is closed, not rectified"), "{e}");
    let e = sim.act(&k, "610102", EventKind::Started, 4).unwrap_err();
    assert!(e.to_string().contains("is closed, not accepted"), "{e}");
}

#[test]
fn supervision_rules() {
    let mut sim = Sim::new();
    let t = ticket("61", "T-2", "610102001");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    let on = EventKind::Supervise { on: true };
    let off = EventKind::Supervise { on: false };
    // The target and divisions off the path may not.
    for who in ["610102001", "6102", "610103", "62", "610102001001"] {
        let e = sim.act(&k, who, on.clone(), 0).unwrap_err();
        assert!(matches!(e, TicketError::NotAllowed { .. }), "{who}: {e}");
    }
    let e = sim.act(&k, "6101", off.clone(), 0).unwrap_err();
    assert_eq!(e.to_string(), "ticket 61/T-2: not under supervision");
    sim.act(&k, "6101", on.clone(), 0).unwrap();
    assert_eq!(sim.state().supervised_by, Some(c("6101")));
    let e = sim.act(&k, "61", on.clone(), 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/T-2: already under supervision by 6101"
    );
    let e = sim.act(&k, "610102", off.clone(), 0).unwrap_err();
    assert!(
        e.to_string().contains("only 6101 or a division above it"),
        "{e}"
    );
    sim.act(&k, "61", off.clone(), 0).unwrap();
    assert!(!sim.state().supervised());
    sim.act(&k, "610102", on.clone(), 0).unwrap();
    sim.act(&k, "610102", off, 0).unwrap();
}

#[test]
fn a_closed_ticket_cannot_change_supervision() {
    let (mut sim, k) = rectified_ticket();
    sim.act(&k, "61", EventKind::Verified, 4).unwrap();
    let e = sim
        .act(&k, "6101", EventKind::Supervise { on: true }, 4)
        .unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn issue_rules() {
    let t = ticket("61", "T-3", "610102");
    let k = t.key();
    let mk = |actor: &str, origin: &str, key: TicketKey, t: Ticket| Event {
        id: EventId {
            origin: c(origin),
            seq: 1,
        },
        ticket: key,
        lamport: 1,
        at_unix_ms: ms(0),
        actor: c(actor),
        kind: EventKind::Issued(t),
    };
    assert!(check(None, &mk("61", "61", k.clone(), t.clone())).is_ok());
    let e = check(None, &mk("6101", "6101", k.clone(), t.clone())).unwrap_err();
    assert!(
        e.to_string()
            .contains("may not issue it: only its issuer 61"),
        "{e}"
    );
    let e = check(None, &mk("61", "6101", k.clone(), t.clone())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "event 6101#1 was created by node 6101 on behalf of 61, which is outside that node's subtree"
    );
    let e = check(
        None,
        &mk("61", "61", TicketKey::new(c("61"), "X"), t.clone()),
    )
    .unwrap_err();
    assert!(matches!(e, TicketError::WrongTicket { .. }), "{e}");
    // A node may act for a division below it (a county for its village).
    let v = ticket("610102", "V-1", "610102001001");
    let vk = v.key();
    let ok = Event {
        actor: c("610102"),
        ..mk("610102", "610102", vk.clone(), v.clone())
    };
    assert!(check(None, &ok).is_ok());
    let s = fold(std::slice::from_ref(&ok)).unwrap();
    let deliver = Event {
        id: EventId {
            origin: c("610102"),
            seq: 2,
        },
        lamport: 2,
        actor: c("610102001001"),
        kind: EventKind::Delivered { at: c("610102") },
        ..ok.clone()
    };
    assert!(check(Some(&s), &deliver).is_ok());
    let e = check(Some(&s), &ok).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 610102/V-1 is already issued; ids are unique per issuer"
    );
    let accept = Event {
        kind: EventKind::Accepted,
        ..deliver.clone()
    };
    let e = check(None, &accept).unwrap_err();
    assert!(e.to_string().contains("has not been issued"), "{e}");
    let other = Event {
        ticket: k,
        ..accept
    };
    let e = check(Some(&s), &other).unwrap_err();
    assert_eq!(
        e.to_string(),
        "event 610102#2 is for ticket 61/T-3, not 610102/V-1"
    );
    let bad_time = Event {
        at_unix_ms: i64::MAX,
        ..deliver
    };
    assert!(matches!(
        check(Some(&s), &bad_time),
        Err(TicketError::BadTime { .. })
    ));
}

#[test]
fn ticket_validation_names_every_bad_field() {
    let mut t = ticket("6101", "bad id", "6101");
    t.category = "".into();
    t.description = "x".repeat(MAX_TEXT_CHARS + 1);
    t.deadline = d("2014-12-31");
    t.household_code = Some("61020100100100001".into());
    let fields: Vec<&str> = t.validate().unwrap_err().iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "id",
            "target",
            "category",
            "description",
            "deadline",
            "household_code"
        ]
    );
    let mut t = ticket("6101", "T", "6102");
    assert!(t.validate().unwrap_err()[0]
        .reason
        .contains("not in the subtree of the issuer 6101"));
    t.target = c("610102");
    t.household_code = Some("61010300100100001".into());
    let e = &t.validate().unwrap_err()[0];
    assert_eq!(e.field, "household_code");
    assert!(
        e.reason.contains("outside the target 610102"),
        "{}",
        e.reason
    );
    t.household_code = Some("6101020010010".into());
    assert!(t.validate().is_ok());
    t.household_code = Some("abc".into());
    assert!(t.validate().is_err());
    t.household_code = None;
    t.category = "类".repeat(MAX_CATEGORY_CHARS);
    assert!(t.validate().is_ok());
    t.category.push('类');
    assert_eq!(t.validate().unwrap_err()[0].field, "category");
    // Sub-tickets.
    let mut s = ticket("6101", "S", "610102");
    s.parent = Some(TicketKey::new(c("61"), "P"));
    assert!(s.validate().is_ok());
    s.target = c("610102001");
    assert_eq!(s.validate().unwrap_err()[0].field, "target");
    s.target = c("610102");
    s.parent = Some(TicketKey::new(c("6101"), "P"));
    assert_eq!(s.validate().unwrap_err()[0].field, "parent");
    s.parent = Some(s.key());
    assert_eq!(s.validate().unwrap_err()[0].field, "parent");
    // The root may issue to a province.
    assert!(ticket("", "N", "61").validate().is_ok());
}

fn split_setup() -> (Sim, TicketKey, Vec<Ticket>) {
    let mut sim = Sim::new();
    let t = ticket("61", "P", "6101");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    sim.act(&k, "6101", EventKind::Delivered { at: c("6101") }, 0)
        .unwrap();
    let subs: Vec<Ticket> = ["610102", "610103"]
        .iter()
        .enumerate()
        .map(|(i, target)| Ticket {
            parent: Some(k.clone()),
            inventory: None,
            ..ticket("6101", &format!("P-{i}"), target)
        })
        .collect();
    let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
    let e = sim
        .act(
            &k,
            "6101",
            EventKind::Split {
                children: keys.clone(),
            },
            1,
        )
        .unwrap_err();
    assert!(e.to_string().contains("is delivered, not accepted"), "{e}");
    sim.act(&k, "6101", EventKind::Accepted, 1).unwrap();
    (sim, k, subs)
}

#[test]
fn split_rules() {
    let (mut sim, k, subs) = split_setup();
    let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
    let split = |children: Vec<TicketKey>| EventKind::Split { children };
    let e = sim.act(&k, "61", split(keys.clone()), 1).unwrap_err();
    assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
    let e = sim.act(&k, "6101", split(vec![]), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/P cannot be split: no sub-tickets are listed"
    );
    let e = sim
        .act(&k, "6101", split(vec![keys[0].clone(), keys[0].clone()]), 1)
        .unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = sim
        .act(&k, "6101", split(vec![TicketKey::new(c("61"), "Q")]), 1)
        .unwrap_err();
    assert!(
        e.to_string().contains("must be issued by the target 6101"),
        "{e}"
    );
    sim.act(&k, "6101", split(keys.clone()), 1).unwrap();
    let e = sim.act(&k, "6101", split(keys), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/P cannot be split: it is already split"
    );
    let e = sim.act(&k, "6101", EventKind::Started, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ticket 61/P is split into sub-tickets: it cannot be started itself; it closes when all its sub-tickets close"
    );
    let e = sim
        .act(&k, "6101", EventKind::Rectified { note: "x".into() }, 1)
        .unwrap_err();
    assert!(matches!(e, TicketError::IsSplit { .. }), "{e}");
    let e = sim.act(&k, "61", EventKind::Verified, 1).unwrap_err();
    assert!(matches!(e, TicketError::IsSplit { .. }), "{e}");
    // Supervision still works on a split ticket.
    sim.act(&k, "61", EventKind::Supervise { on: true }, 1)
        .unwrap();
    // A village cannot split.
    let mut v = Sim::new();
    let t = ticket("610102", "V", "610102001001");
    let vk = t.key();
    v.act(&vk, "610102", EventKind::Issued(t), 0).unwrap();
    v.act(
        &vk,
        "610102001001",
        EventKind::Delivered {
            at: c("610102001001"),
        },
        0,
    )
    .unwrap();
    v.act(&vk, "610102001001", EventKind::Accepted, 0).unwrap();
    let e = v
        .act(
            &vk,
            "610102001001",
            split(vec![TicketKey::new(c("610102001001"), "x")]),
            0,
        )
        .unwrap_err();
    assert!(e.to_string().contains("is a village"), "{e}");
}

fn work(sim: &mut Sim, t: &Ticket, day: i64, verify: bool) {
    let k = t.key();
    let target = t.target.to_string();
    let issuer = t.issuer.to_string();
    sim.act(&k, &target, EventKind::Delivered { at: t.target }, day)
        .unwrap();
    sim.act(&k, &target, EventKind::Accepted, day).unwrap();
    sim.act(&k, &target, EventKind::Started, day).unwrap();
    sim.act(&k, &target, EventKind::Rectified { note: "ok".into() }, day)
        .unwrap();
    if verify {
        sim.act(&k, &issuer, EventKind::Verified, day).unwrap();
    }
}

#[test]
fn a_split_ticket_closes_when_all_its_sub_tickets_close() {
    let (mut sim, k, subs) = split_setup();
    let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
    sim.act(&k, "6101", EventKind::Split { children: keys }, 1)
        .unwrap();
    for s in &subs {
        sim.act(&s.key(), "6101", EventKind::Issued(s.clone()), 1)
            .unwrap();
    }
    let all = fold_all(&sim.events);
    assert_eq!(all.len(), 3);
    assert_eq!(all[&k].state, State::Rectifying);
    work(&mut sim, &subs[0], 2, true);
    work(&mut sim, &subs[1], 4, false);
    let all = fold_all(&sim.events);
    assert_eq!(all[&k].state, State::Rectified);
    assert_eq!(all[&k].rectified_on, Some(d("2026-03-05")));
    assert_eq!(all[&k].closed_on, None);
    sim.act(
        &subs[1].key(),
        "6101",
        EventKind::Returned {
            reason: "no".into(),
        },
        5,
    )
    .unwrap();
    let all = fold_all(&sim.events);
    assert_eq!(all[&k].state, State::Rectifying);
    assert_eq!(all[&k].rectified_on, None);
    sim.act(
        &subs[1].key(),
        "610103",
        EventKind::Rectified { note: "ok".into() },
        6,
    )
    .unwrap();
    sim.act(&subs[1].key(), "6101", EventKind::Verified, 7)
        .unwrap();
    let mut all = fold_all(&sim.events);
    let p = all[&k].clone();
    assert_eq!(p.state, State::Closed);
    assert_eq!(p.closed_on, Some(d("2026-03-08")));
    assert_eq!(p.rectified_on, Some(d("2026-03-07")));
    assert_eq!(p.state_on(d("2026-03-05")), Some(State::Rectified));
    assert_eq!(p.state_on(d("2026-03-06")), Some(State::Rectifying));
    assert!(!p.overdue(d("2026-12-31")));
    // Idempotent.
    resolve_splits(&mut all);
    assert_eq!(all[&k], p);
    // Alone, without its sub-tickets, it stays rectifying.
    assert_eq!(fold(&sim.events).unwrap().state, State::Rectifying);
}

#[test]
fn a_missing_or_foreign_sub_ticket_keeps_the_parent_open() {
    let (mut sim, k, subs) = split_setup();
    let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
    sim.act(&k, "6101", EventKind::Split { children: keys }, 1)
        .unwrap();
    sim.act(
        &subs[0].key(),
        "6101",
        EventKind::Issued(subs[0].clone()),
        1,
    )
    .unwrap();
    // The second sub-ticket claims no parent.
    let orphan = Ticket {
        parent: None,
        inventory: None,
        ..subs[1].clone()
    };
    sim.act(&orphan.key(), "6101", EventKind::Issued(orphan.clone()), 1)
        .unwrap();
    work(&mut sim, &subs[0], 2, true);
    work(&mut sim, &orphan, 2, true);
    let all = fold_all(&sim.events);
    assert_eq!(all[&k].state, State::Rectifying);
    assert_eq!(all[&orphan.key()].state, State::Closed);
}

#[test]
fn fold_is_order_independent_and_records_ignored_events() {
    let (mut sim, k) = rectified_ticket();
    let _ = sim.act(&k, "6102", EventKind::Verified, 4);
    sim.act(&k, "61", EventKind::Verified, 4).unwrap();
    let reference = sim.state();
    let ignored: Vec<&HistoryEntry> = reference
        .history
        .iter()
        .filter(|h| h.outcome != EntryOutcome::Applied)
        .collect();
    assert_eq!(ignored.len(), 1);
    assert!(
        matches!(&ignored[0].outcome, EntryOutcome::Ignored { reason } if reason.contains("6102 may not verify"))
    );
    let mut evs = sim.events.clone();
    evs.reverse();
    evs.extend(sim.events.iter().cloned());
    assert_eq!(fold(&evs).unwrap(), reference);
    // Events arriving without the issue: nothing to show yet.
    assert_eq!(fold(&sim.events[1..]), None);
    // A conflicting event reusing an id is ignored, whichever arrives first.
    let mut forged = sim.events[4].clone();
    forged.kind = EventKind::Rectified {
        note: "forged".into(),
    };
    let mut a = sim.events.clone();
    a.push(forged.clone());
    let mut b = vec![forged];
    b.extend(sim.events.iter().cloned());
    assert_eq!(fold(&a), fold(&b));
    let s = fold(&a).unwrap();
    assert!(s.history.iter().any(|h| matches!(&h.outcome,
        EntryOutcome::Ignored { reason } if reason.contains("same id"))));
}

#[test]
fn events_before_the_issue_are_kept_as_ignored() {
    let mut sim = Sim::new();
    let t = ticket("61", "T", "6101");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
    let mut early = sim.ev(&k, "6101", EventKind::Delivered { at: c("6101") }, 0);
    early.lamport = 0;
    sim.events.push(early);
    let s = sim.state();
    assert_eq!(s.state, State::Issued);
    assert_eq!(s.history.len(), 2);
    assert!(matches!(&s.history[0].outcome,
        EntryOutcome::Ignored { reason } if reason.contains("has not been issued")));
}

#[test]
fn dates_are_china_dates_and_monotone() {
    // 2026-03-01 16:30 UTC is 2026-03-02 in China.
    assert_eq!(china_date(1_772_382_600_000), Some(d("2026-03-02")));
    assert_eq!(china_date(i64::MAX), None);
    let mut sim = Sim::new();
    let t = ticket("61", "T", "6101");
    let k = t.key();
    sim.act(&k, "61", EventKind::Issued(t), 5).unwrap();
    // The target's clock is 3 days behind.
    sim.act(&k, "6101", EventKind::Delivered { at: c("6101") }, 2)
        .unwrap();
    let s = sim.state();
    assert_eq!(s.issued_on, d("2026-03-06"));
    assert_eq!(s.delivered_on, Some(d("2026-03-06")));
}

#[test]
fn overdue_and_stocks() {
    let (mut sim, k) = rectified_ticket(); // deadline 03-10, rectified 03-04
    let s = sim.state();
    assert!(!s.overdue(d("2026-03-20")), "rectified is not overdue");
    sim.act(&k, "61", EventKind::Returned { reason: "r".into() }, 14)
        .unwrap(); // 03-15
    let s = sim.state();
    assert!(!s.overdue(d("2026-03-10")));
    assert!(s.overdue(d("2026-03-16")));
    assert!(!s.overdue_at(d("2026-03-14")));
    assert!(s.overdue_at(d("2026-03-15")));
    sim.act(&k, "610102", EventKind::Rectified { note: "n".into() }, 19)
        .unwrap(); // 03-20
    sim.act(&k, "61", EventKind::Verified, 21).unwrap(); // 03-22
    let s = sim.state();
    assert_eq!(
        stock_deltas(&s),
        vec![
            (TicketStock::Open, d("2026-03-01"), 1),
            (TicketStock::Open, d("2026-03-22"), -1),
            (TicketStock::Overdue, d("2026-03-15"), 1),
            (TicketStock::Overdue, d("2026-03-20"), -1),
        ]
    );
    assert_eq!(
        stat_flows(&s),
        vec![
            (TicketFlow::Issued, d("2026-03-01"), 1),
            (TicketFlow::Rectified, d("2026-03-20"), 1),
            (TicketFlow::Closed, d("2026-03-22"), 1),
        ]
    );
    // Deltas agree with the direct predicates on every day.
    let mut day = d("2026-02-25");
    while day < d("2026-04-01") {
        let sum = |k: TicketStock| -> i64 {
            stock_deltas(&s)
                .iter()
                .filter(|(s, dd, _)| *s == k && *dd <= day)
                .map(|x| x.2)
                .sum()
        };
        assert_eq!(sum(TicketStock::Open) == 1, s.open_at(day), "{day}");
        assert_eq!(sum(TicketStock::Overdue) == 1, s.overdue_at(day), "{day}");
        day = day.tomorrow().unwrap();
    }
}

#[test]
fn figures_and_clearance_rate() {
    let (mut sim, k) = rectified_ticket();
    let open = {
        let mut o = Sim::new();
        let t = ticket("61", "T-2", "6101");
        o.act(&t.key(), "61", EventKind::Issued(t.clone()), 0)
            .unwrap();
        o.state()
    };
    sim.act(&k, "61", EventKind::Verified, 40).unwrap(); // 2026-04-10
    let closed = sim.state();
    let march = figures([&closed, &open], d("2026-03-01"), d("2026-03-31"));
    assert_eq!(
        march,
        TicketFigures {
            issued: 2,
            rectified: 1,
            closed: 0,
            open: 2,
            overdue: 1,
            issued_to_date: 2,
            closed_to_date: 0,
        }
    );
    assert_eq!(march.clearance_rate(), Some(0.0));
    let april = figures([&closed, &open], d("2026-04-01"), d("2026-04-30"));
    assert_eq!((april.issued, april.closed, april.open), (0, 1, 1));
    assert_eq!(april.clearance_rate(), Some(0.5));
    assert_eq!(TicketFigures::default().clearance_rate(), None);
}

const HEADER: &str = "id,target,category,source,severity,deadline,description";

#[test]
fn inventory_parses_by_header_name() {
    let csv = "\u{feff}description,deadline,severity,source,category,target,id,household_code\n\
               roof,2026-04-01,high,spot_check,housing,610102,A-1,\n\
               \"water, again\",2026-04-02,low,self_found,water,6101,A-2,61010200100100001\n";
    let ts = parse_inventory(c("61"), csv.as_bytes()).unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].key(), TicketKey::new(c("61"), "A-1"));
    assert_eq!(ts[0].household_code, None);
    assert_eq!(ts[1].description, "water, again");
    assert_eq!(ts[1].source, TicketSource::SelfFound);
    assert_eq!(ts[1].household_code.as_deref(), Some("61010200100100001"));
}

#[test]
fn inventory_refuses_bad_files_and_rows() {
    let err = |csv: &str| {
        parse_inventory(c("6101"), csv.as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert!(err("").contains("empty"));
    assert!(err(&format!("{HEADER}\n")).contains("no tickets"));
    assert!(err(&format!("{HEADER},color\n")).contains("unknown column \"color\""));
    assert!(err(&format!("{HEADER},id\n")).contains("column \"id\" appears twice"));
    assert!(err("id,target\n").contains("required column \"category\" is missing"));
    let rows = format!(
        "{HEADER}\n\
         A,610102,c,inspection,high,2026-04-01,d\n\
         A,610102,c,inspection,high,2026-04-01,d\n\
         B,6102,c,inspection,urgent,2026-02-30,d\n\
         C,610102,,nowhere,low,2026-04-01,\n\
         D,610102,c\n"
    );
    let e = parse_inventory(c("6101"), rows.as_bytes()).unwrap_err();
    let InventoryError::Rows(errors) = &e else {
        panic!("{e}")
    };
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got[0],
        "line 3, field id: id \"A\" already appears on line 2"
    );
    assert!(
        got[1].starts_with("line 4, field severity: unknown value \"urgent\""),
        "{}",
        got[1]
    );
    assert_eq!(
        got[2],
        "line 4, field deadline: 2026-02-30 is not a calendar date"
    );
    assert_eq!(got[3], "line 5, field category: missing value");
    assert!(got[4].starts_with("line 5, field source: unknown value \"nowhere\""));
    assert_eq!(got[5], "line 5, field description: missing value");
    assert_eq!(got[6], "line 6: 3 fields where the header has 7");
    assert_eq!(got.len(), 7);
    // A well-formed target outside the issuer's subtree.
    let e = err(&format!("{HEADER}\nB,6102,c,inspection,low,2026-04-01,d\n"));
    assert!(
        e.contains("line 2, field target: division 6102 is not in the subtree of the issuer 6101"),
        "{e}"
    );
    assert!(
        err(&format!("{HEADER}\nB,6101,c,inspection,low,2026-04-01,d\n"))
            .contains("is the issuer itself")
    );
    let bad_utf8 = [
        HEADER.as_bytes(),
        b"\nA,610102,\xff,inspection,low,2026-04-01,d\n",
    ]
    .concat();
    let e = parse_inventory(c("6101"), bad_utf8.as_slice())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2, field category: not valid UTF-8"), "{e}");
}

#[test]
fn inventory_progress_per_child_region() {
    let mk = |id: &str, target: &str, steps: usize| {
        let mut sim = Sim::new();
        let t = ticket("61", id, target);
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t.clone()), 0).unwrap();
        if steps > 0 {
            work(&mut sim, &t, 1, steps > 1);
        }
        sim.state()
    };
    let states = [
        mk("1", "610102", 2),
        mk("2", "610102001", 1),
        mk("3", "610103", 2),
        mk("4", "6101", 0),
        mk("5", "6102", 0),
    ];
    let p = inventory_progress(c("6101"), &states, d("2026-03-20"));
    assert_eq!(p.total.issued, 4);
    assert_eq!(p.total.open, 2);
    let rows: Vec<(String, u64, u64, u64, u64, bool)> = p
        .regions
        .iter()
        .map(|r| {
            (
                r.division.to_string(),
                r.issued,
                r.rectified,
                r.closed,
                r.overdue,
                r.cleared_to_zero(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("6101".into(), 1, 0, 0, 1, false),
            ("610102".into(), 2, 1, 1, 0, false),
            ("610103".into(), 1, 0, 1, 0, true),
        ]
    );
    let p = inventory_progress(c("61"), &states, d("2026-03-20"));
    let codes: Vec<String> = p.regions.iter().map(|r| r.division.to_string()).collect();
    assert_eq!(codes, ["6101", "6102"]);
    assert_eq!(p.regions[0].issued, 4);
}
