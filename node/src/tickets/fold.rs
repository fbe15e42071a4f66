//! Folding events into states: a deterministic function of the *set* of events (ordered by
//! Lamport time, origin, sequence; illegal ones kept as ignored), and split tickets' states
//! derived from their sub-tickets.

use super::*;

/// Apply an event that passed [`check`].
pub(super) fn apply(s: &mut TicketState, e: &Event) {
    // Dates are monotone along the applied history.
    let on = china_date(e.at_unix_ms)
        .unwrap_or(s.issued_on)
        .max(s.last_date());
    match &e.kind {
        EventKind::Issued(_) => {}
        EventKind::Delivered { .. } => {
            s.delivered_on = Some(on);
            s.enter(on, State::Delivered);
        }
        EventKind::Accepted => s.enter(on, State::Accepted),
        EventKind::Started => s.enter(on, State::Rectifying),
        EventKind::Rectified { note } => {
            s.note = Some(note.clone());
            s.rectified_on = Some(on);
            s.enter(on, State::Rectified);
        }
        EventKind::Verified => {
            s.closed_on = Some(on);
            s.enter(on, State::Closed);
        }
        EventKind::Returned { reason } => {
            s.return_reason = Some(reason.clone());
            s.returns += 1;
            s.rectified_on = None;
            s.spot_result = None;
            s.enter(on, State::Rectifying);
        }
        EventKind::Supervise { on: flag } => {
            s.supervised_by = flag.then_some(e.actor);
        }
        EventKind::Split { children } => {
            s.split = children.clone();
            s.enter(on, State::Rectifying);
        }
        EventKind::Checked { findings, note } => {
            s.note = Some(note.clone());
            s.rectified_on = Some(on);
            s.spot_result = Some(SpotResult {
                on,
                findings: *findings,
            });
            s.enter(on, State::Rectified);
        }
    }
    s.own_transitions = s.timeline.len();
}

pub(super) fn entry(e: &Event, outcome: EntryOutcome) -> HistoryEntry {
    HistoryEntry {
        id: e.id,
        lamport: e.lamport,
        actor: e.actor,
        at_unix_ms: e.at_unix_ms,
        kind: e.kind.clone(),
        outcome,
    }
}

/// Sort into fold order and drop exact duplicates.
pub(super) fn ordered<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    let mut v: Vec<&Event> = events.into_iter().collect();
    v.sort_by(|a, b| a.order_key().cmp(&b.order_key()).then_with(|| a.cmp(b)));
    v.dedup_by(|a, b| a == b);
    v
}

pub(super) fn fold_ordered(evs: &[&Event]) -> Option<TicketState> {
    // The ticket is the one of the first event (in fold order) that is a legal issue.
    let first = evs
        .iter()
        .find(|e| matches!(e.kind, EventKind::Issued(_)) && check(None, e).is_ok())?;
    let key = first.ticket.clone();
    let mut state: Option<TicketState> = None;
    let mut before: Vec<HistoryEntry> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut max_lamport = 0;
    for e in evs.iter().filter(|e| e.ticket == key) {
        max_lamport = max_lamport.max(e.lamport);
        let verdict = if !ids.insert(e.id) {
            Err(format!(
                "another event with the same id {} comes earlier in the order",
                e.id
            ))
        } else {
            check(state.as_ref(), e).map_err(|err| err.to_string())
        };
        match (verdict, &mut state) {
            (Ok(()), Some(s)) => {
                apply(s, e);
                s.history.push(entry(e, EntryOutcome::Applied));
            }
            (Ok(()), None) => {
                let EventKind::Issued(t) = &e.kind else {
                    unreachable!("check(None, _) only passes an issue")
                };
                let on = china_date(e.at_unix_ms).unwrap_or(EARLIEST);
                let mut history = std::mem::take(&mut before);
                history.push(entry(e, EntryOutcome::Applied));
                state = Some(TicketState {
                    ticket: t.clone(),
                    state: State::Issued,
                    supervised_by: None,
                    split: Vec::new(),
                    note: None,
                    return_reason: None,
                    returns: 0,
                    issued_on: on,
                    delivered_on: None,
                    rectified_on: None,
                    closed_on: None,
                    spot_result: None,
                    timeline: vec![Transition {
                        on,
                        state: State::Issued,
                    }],
                    history,
                    max_lamport: 0,
                    own_transitions: 1,
                });
            }
            (Err(reason), Some(s)) => s.history.push(entry(e, EntryOutcome::Ignored { reason })),
            (Err(reason), None) => before.push(entry(e, EntryOutcome::Ignored { reason })),
        }
    }
    let mut s = state?;
    s.max_lamport = max_lamport;
    Some(s)
}

/// The Lamport time for the next event a node creates for a ticket: after every event of it
/// the node holds, whether or not they fold into a state yet (one that arrived before the
/// ticket's issue still counts). Ordering a new event after everything its creator has seen
/// is what keeps an action refused at one moment from being replayed as legal later.
pub fn next_lamport<'a>(seen: impl IntoIterator<Item = &'a Event>) -> u64 {
    seen.into_iter().map(|e| e.lamport).max().unwrap_or(0) + 1
}

/// The state of one ticket from its events, in any order, duplicates allowed.
///
/// The ticket is the one of the first legal `Issued` event in fold order; events of other
/// tickets are left out (use [`fold_all`] for mixed sets); `None` when no legal issue is
/// present. Events ordered before the issue are kept in the history as ignored. A split
/// ticket's state is its own (rectifying): see [`resolve_splits`].
pub fn fold(events: &[Event]) -> Option<TicketState> {
    fold_ordered(&ordered(events))
}

/// The states of every ticket in a mixed set of events, split tickets resolved from their
/// sub-tickets ([`resolve_splits`]).
pub fn fold_all(events: &[Event]) -> BTreeMap<TicketKey, TicketState> {
    let mut by_ticket: BTreeMap<&TicketKey, Vec<&Event>> = BTreeMap::new();
    for e in ordered(events) {
        by_ticket.entry(&e.ticket).or_default().push(e);
    }
    let mut states: BTreeMap<TicketKey, TicketState> = by_ticket
        .values()
        .filter_map(|evs| fold_ordered(evs))
        .map(|s| (s.key(), s))
        .collect();
    resolve_splits(&mut states);
    states
}

/// Derive the state of every split ticket in `states` from its sub-tickets' states, deepest
/// first (so nested splits resolve). Idempotent.
///
/// A listed sub-ticket counts only if it is in `states` with `parent` = the split ticket and
/// issued by its target; otherwise it counts as open. The derived state from the split date
/// on is: closed when every sub-ticket is closed, rectified when every one is rectified or
/// closed, rectifying otherwise; `rectified_on` / `closed_on` are the dates the derived state
/// last reached rectified-or-closed / closed, i.e. the latest sub-ticket's.
pub fn resolve_splits(states: &mut BTreeMap<TicketKey, TicketState>) {
    let mut split: Vec<(usize, TicketKey)> = states
        .values()
        .filter(|s| s.is_split())
        .map(|s| (s.ticket.target.len(), s.key()))
        .collect();
    // Deepest targets first: a sub-ticket's target is a child of its parent's target.
    split.sort_by(|a, b| b.cmp(a));
    for (_, key) in split {
        let Some(parent) = states.get(&key) else {
            continue;
        };
        let children: Vec<Option<&TicketState>> = parent
            .split
            .iter()
            .map(|c| {
                states.get(c).filter(|cs| {
                    cs.ticket.parent.as_ref() == Some(&key)
                        && cs.ticket.issuer == parent.ticket.target
                })
            })
            .collect();
        let derive = |day: Option<Date>| -> State {
            let st: Vec<Option<State>> = children
                .iter()
                .map(|c| {
                    c.and_then(|c| match day {
                        Some(d) => c.state_on(d),
                        None => Some(c.state),
                    })
                })
                .collect();
            if st.iter().all(|s| *s == Some(State::Closed)) {
                State::Closed
            } else if st.iter().all(|s| s.is_some_and(|s| !s.is_unrectified())) {
                State::Rectified
            } else {
                State::Rectifying
            }
        };
        let own = parent.own_transitions;
        let mut timeline: Vec<Transition> = parent.timeline[..own].to_vec();
        let split_on = timeline.last().map_or(parent.issued_on, |t| t.on);
        let mut days: Vec<Date> = children
            .iter()
            .flatten()
            .flat_map(|c| c.timeline.iter().map(|t| t.on.max(split_on)))
            .collect();
        days.sort();
        days.dedup();
        for d in days {
            let st = derive(Some(d));
            if timeline.last().map(|t| t.state) != Some(st) {
                timeline.push(Transition { on: d, state: st });
            }
        }
        let current = derive(None);
        if timeline.last().map(|t| t.state) != Some(current) {
            // Only with sub-ticket dates out of order; keep the timeline ending in the state.
            let on = timeline.last().map_or(split_on, |t| t.on);
            timeline.push(Transition { on, state: current });
        }
        let mut rectified_on = None;
        let mut closed_on = None;
        let mut prev = State::Rectifying;
        for t in &timeline[own.saturating_sub(1)..] {
            if !t.state.is_unrectified() && prev.is_unrectified() {
                rectified_on = Some(t.on);
            }
            if t.state.is_unrectified() {
                rectified_on = None;
            }
            if t.state == State::Closed && prev != State::Closed {
                closed_on = Some(t.on);
            }
            prev = t.state;
        }
        if let Some(p) = states.get_mut(&key) {
            p.timeline = timeline;
            p.state = current;
            p.rectified_on = rectified_on;
            p.closed_on = closed_on.filter(|_| current == State::Closed);
        }
    }
}
