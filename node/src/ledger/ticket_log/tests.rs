//! Tests of the ticket log: ids, routes, cursors, caches, backlogs.
use super::cache::{CACHE_AGE, CACHE_BYTES, COUNTY_CACHE_BYTES};
use super::*;
use crate::store::StoreOptions;
use crate::tickets::{Severity, TicketSource};

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn ticket(issuer: &str, id: &str, target: &str) -> Ticket {
    Ticket {
        issuer: c(issuer),
        id: id.into(),
        target: c(target),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::Low,
        deadline: crate::period::today_in_china(),
        description: "roof leaks".into(),
        household_code: None,
        parent: None,
        inventory: None,
        spot_check: None,
    }
}

fn open(dir: &std::path::Path, division: &str) -> Ledger {
    Ledger::open_or_init(dir, Some(c(division)), &StoreOptions::default()).expect("open")
}

#[test]
fn backlog_down_counts_each_childs_entries_after_its_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = open(dir.path(), "6101");
    // Positions 1–3 for 610102 (one of them for a town below it), 4–5 for 610103.
    l.issue_tickets(
        c("6101"),
        vec![
            ticket("6101", "a", "610102"),
            ticket("6101", "b", "610102"),
            ticket("6101", "c", "610102001"),
        ],
    )
    .expect("issue");
    l.issue_tickets(
        c("6101"),
        vec![ticket("6101", "d", "610103"), ticket("6101", "e", "610103")],
    )
    .expect("issue");
    assert_eq!(l.ticket_head(), 5);
    let check = |l: &Ledger| {
        let all = [(c("610102"), 0), (c("610103"), 0), (c("610104"), 0)];
        assert_eq!(l.ticket_backlog_down(&all).expect("backlog"), [3, 2, 0]);
        let mid = [(c("610103"), 4), (c("610102"), 2)];
        assert_eq!(l.ticket_backlog_down(&mid).expect("backlog"), [1, 1]);
        let done = [(c("610102"), 5), (c("610103"), 5)];
        assert_eq!(l.ticket_backlog_down(&done).expect("backlog"), [0, 0]);
        assert!(l.ticket_backlog_down(&[]).expect("backlog").is_empty());
        // The city's own tickets never go up.
        assert_eq!(l.ticket_backlog_up(0).expect("backlog"), 0);
    };
    // From memory, then from the store (a reopened node has no cache), then from both.
    check(&l);
    drop(l);
    let l = open(dir.path(), "6101");
    check(&l);
    l.issue_tickets(c("6101"), vec![ticket("6101", "f", "610103")])
        .expect("issue");
    let all = [(c("610102"), 0), (c("610103"), 0)];
    assert_eq!(l.ticket_backlog_down(&all).expect("backlog"), [3, 3]);
    assert_eq!(
        l.ticket_backlog_down(&[(c("610103"), 5)]).expect("backlog"),
        [1]
    );
    // A bounded scan reads the most recent entries: positions 4..=6 of a window of 3.
    let mut seen = Vec::new();
    l.scan_routing_last(0, 3, |pos, r| seen.push((pos, r.target)))
        .expect("scan");
    seen.sort();
    assert_eq!(seen, [(4, c("610103")), (5, c("610103")), (6, c("610103"))]);
    let mut seen = Vec::new();
    l.scan_routing_last(5, 3, |pos, _| seen.push(pos))
        .expect("scan");
    assert_eq!(seen, [6]);
}

#[test]
fn backlog_up_counts_what_goes_to_the_parent_but_not_what_came_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = open(dir.path(), "610102");
    let (p, me) = (c("61"), c("610102"));
    let issue = |seq: u64, id: &str| Event {
        id: EventId { origin: p, seq },
        ticket: TicketKey::new(p, id),
        lamport: seq,
        at_unix_ms: unix_ms_now(),
        actor: p,
        kind: EventKind::Issued(ticket("61", id, "610102")),
    };
    // From the parent: each issue (not sent back) and the county's delivery (sent up).
    l.receive_tickets(
        c("6101"),
        vec![issue(1, "a"), issue(2, "b")]
            .into_iter()
            .map(crate::tickets::codec::Sealed::new)
            .collect(),
        &[],
        0,
    )
    .expect("receive");
    assert_eq!(l.ticket_head(), 4);
    assert_eq!(l.ticket_backlog_up(0).expect("backlog"), 2);
    let a = TicketKey::new(p, "a");
    l.act_on_tickets(me, std::slice::from_ref(&a), &Act::Accept)
        .expect("accept");
    assert_eq!(l.ticket_backlog_up(0).expect("backlog"), 3);
    // Positions: issue a, delivered a, issue b, delivered b, accepted a.
    assert_eq!(l.ticket_backlog_up(2).expect("backlog"), 2);
    assert_eq!(l.ticket_backlog_up(5).expect("backlog"), 0);
    drop(l);
    let l = open(dir.path(), "610102");
    assert_eq!(l.ticket_backlog_up(0).expect("backlog"), 3);
    assert_eq!(l.ticket_backlog_up(3).expect("backlog"), 2);
    // The province has no parent.
    let dir = tempfile::tempdir().expect("tempdir");
    let top = open(dir.path(), "61");
    top.issue_tickets(p, vec![ticket("61", "x", "610102")])
        .expect("issue");
    assert_eq!(top.ticket_backlog_up(0).expect("backlog"), 0);
}

#[test]
fn log_entries_of_both_formats_decode_to_the_same_event_and_routing() {
    let event = Event {
        id: EventId {
            origin: c("61"),
            seq: 4,
        },
        ticket: TicketKey::new(c("61"), "T-1"),
        lamport: 9,
        at_unix_ms: 1_764_000_000_000,
        actor: c("61"),
        kind: EventKind::Issued(ticket("61", "T-1", "610102")),
    };
    let logged = Logged {
        pos: 12,
        from: Some(c("6101")),
        target: c("610102"),
        top: c("61"),
        event: event.clone(),
    };
    // Format 1 (JSON, from stores before issue #15): still read, unsealed.
    let v1 = encode_json(TLOG_V1, &logged);
    let old = LogEntry::decode(12, &v1).expect("format 1");
    assert_eq!(old.logged, logged);
    assert_eq!(old.seal, None);
    assert_eq!(
        crate::tickets::codec::decode_body(&old.body).unwrap(),
        event
    );
    assert_eq!(stored_routing(&v1).unwrap(), logged.routing());
    // Format 2: the routing, then the event's bytes and seal exactly as stored.
    let seal = Seal {
        signer: [7; 32],
        signature: vec![1, 2, 3],
        index: 1,
        count: 3,
        path: vec![[5; 32], [6; 32]],
    };
    let entry = LogEntry {
        logged: logged.clone(),
        body: old.body.clone(),
        seal: Some(seal.clone()),
    };
    let v2 = entry.encode();
    assert_eq!(v2[0], TLOG_V2);
    let back = LogEntry::decode(12, &v2).expect("format 2");
    assert_eq!(back.logged, logged);
    assert_eq!(back.body, entry.body);
    assert_eq!(back.seal, Some(seal));
    assert_eq!(stored_routing(&v2).unwrap(), logged.routing());
    // A parent-less entry (created here) keeps `from = None`.
    let own = LogEntry {
        logged: Logged {
            from: None,
            ..logged
        },
        body: entry.body,
        seal: None,
    };
    assert_eq!(
        LogEntry::decode(12, &own.encode()).unwrap().logged.from,
        None
    );
}

#[test]
fn the_ticket_index_follows_the_log_and_is_built_for_a_store_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = {
        let l = open(dir.path(), "6101");
        let mut late = ticket("6101", "late", "610102");
        late.deadline = late.deadline.yesterday().expect("day");
        late.inventory = Some("spring".into());
        let mut other = ticket("6101", "other", "610103");
        other.inventory = Some("spring".into());
        l.issue_tickets(c("6101"), vec![late, other, ticket("6101", "x", "610102")])
            .expect("issue");
        let today = crate::period::today_in_china();
        let summaries = l.ticket_summaries(None, None).expect("index");
        let folded: Vec<TicketState> = l
            .tickets()
            .expect("tickets")
            .into_values()
            .map(TicketState::summary)
            .collect();
        assert_eq!(summaries, folded);
        let overdue = l.ticket_summaries(Some(today), None).expect("index");
        assert_eq!(
            overdue
                .iter()
                .map(|s| s.ticket.id.as_str())
                .collect::<Vec<_>>(),
            ["late"]
        );
        assert_eq!(l.inventory_items(Some("spring")).expect("index").len(), 2);
        assert_eq!(l.inventory_items(None).expect("index").len(), 3);
        // A store of layout 3 has no index: dropped here, as it would be missing there.
        let mut ws = WriteSet::new();
        for r in l.store.scan_prefix(TreeId::TicketIndex, b"") {
            ws.remove(TreeId::TicketIndex, r.expect("entry").0);
        }
        ws.remove(TreeId::Meta, b"ticket_index".as_slice());
        l.store.commit(ws).expect("commit");
        l.store.flush().expect("flush");
        summaries
    };
    let l = open(dir.path(), "6101");
    assert_eq!(l.ticket_summaries(None, None).expect("index"), expected);
    assert_eq!(l.inventory_items(Some("spring")).expect("index").len(), 2);
}

/// A county's recent-entries cache keeps to its smaller bound (its one reader is its uplink);
/// a city's holds the same entries whole, and both serve them alike.
#[test]
fn a_countys_cache_of_recent_entries_is_small() {
    let long = |issuer: &str, i: usize, target: &str| Ticket {
        description: "屋顶漏雨，需要修缮。".repeat(50),
        ..ticket(issuer, &format!("t{i}"), target)
    };
    let held = |division: &str, target: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = open(dir.path(), division);
        for chunk in (0..1_500).collect::<Vec<_>>().chunks(500) {
            let batch = chunk.iter().map(|i| long(division, *i, target)).collect();
            l.issue_tickets(c(division), batch).expect("issue");
        }
        let bytes = l.ticket_cache.lock().expect("cache").bytes();
        assert_eq!(l.tickets().expect("tickets").len(), 1_500);
        bytes
    };
    let county = held("610102", "610102001");
    let city = held("6101", "610102");
    assert!(county <= COUNTY_CACHE_BYTES, "county cache {county} bytes");
    assert!(
        county > COUNTY_CACHE_BYTES / 2,
        "county cache {county} bytes"
    );
    assert!(city > 2 * COUNTY_CACHE_BYTES, "city cache {city} bytes");
    assert!(city <= CACHE_BYTES, "city cache {city} bytes");
}

/// Cached entries go after [`CACHE_AGE`]; what they held is then read from the store, alike.
#[test]
fn cached_entries_expire_and_are_read_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = open(dir.path(), "6101");
    let batch = (0..20)
        .map(|i| ticket("6101", &format!("t{i}"), "610102"))
        .collect();
    l.issue_tickets(c("6101"), batch).expect("issue");
    let all = |l: &Ledger| {
        let (entries, upto) = l.ticket_log(0, usize::MAX, |_| true).expect("log");
        let ids: Vec<_> = entries.iter().map(|e| e.logged.pos).collect();
        (ids, upto)
    };
    let from_memory = all(&l);
    assert_eq!(from_memory.0.len(), l.ticket_head() as usize);
    assert!(!from_memory.0.is_empty());
    let (entries, bytes) = l.ticket_cache_usage();
    assert_eq!(entries as usize, from_memory.0.len());
    assert!(bytes > 0);
    // Not yet old: kept.
    l.ticket_cache
        .lock()
        .expect("cache")
        .expire(std::time::Instant::now());
    assert_eq!(l.ticket_cache_usage().0, entries);
    // Past the age: gone, and the same entries come from the store.
    l.ticket_cache
        .lock()
        .expect("cache")
        .expire(std::time::Instant::now() + CACHE_AGE + std::time::Duration::from_secs(1));
    assert_eq!(l.ticket_cache_usage(), (0, 0));
    assert_eq!(all(&l), from_memory);
    // New entries are cached again.
    l.issue_tickets(c("6101"), vec![ticket("6101", "t99", "610102")])
        .expect("issue");
    assert!(l.ticket_cache_usage().0 > 0);
}
