//! Custody: reopen keeps everything, only acked entries leave, order is kept, nothing is
//! visible to the forwarders before a flush covered it.

use std::sync::Arc;

use super::*;

fn code(s: &str) -> Code {
    Code::parse(s).unwrap()
}

fn open(dir: &Path) -> Arc<Custody> {
    Custody::open(dir, &StoreOptions::default()).unwrap()
}

/// Append and flush; returns the entry's RSEQ.
fn put(c: &Custody, lane: &Arc<Lane>, dir: Dir, meta: Meta, body: &[u8]) -> u64 {
    let (rseq, ticket) = c.append(lane, dir, meta, body).unwrap();
    c.flush_through(ticket).unwrap();
    rseq
}

fn cells(seq: u64, floor: u64) -> Meta {
    Meta::Cells { seq, floor }
}

fn tickets(seq: u64, upto: u64) -> Meta {
    Meta::Tickets { seq, upto }
}

/// Every durable entry of a queue, in order, with its envelope.
fn queue(c: &Custody, lane: &Lane, dir: Dir) -> Vec<(u64, Meta, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = 0;
    while let Some((rseq, meta)) = lane.next_durable(dir, after) {
        out.push((rseq, meta, c.read(lane, dir, rseq).unwrap().unwrap()));
        after = rseq;
    }
    out
}

#[test]
fn reopen_keeps_every_lane_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (code("610102"), code("610103"));
    let welcome = Cursor {
        acked: 3,
        resume_pos: 5,
        ticket_acked: 2,
        down_acked: 9,
    };
    {
        let c = open(dir.path());
        let la = c.lane(a);
        let t = c.put_hello(&la, b"hello-a".to_vec()).unwrap();
        c.flush_through(t).unwrap();
        c.welcome(&la, welcome).unwrap();
        put(&c, &la, Dir::Up, cells(10, 5), b"up-1");
        put(&c, &la, Dir::Up, tickets(4, 4), b"up-2");
        put(&c, &la, Dir::Up, cells(12, 12), b"up-3");
        put(&c, &la, Dir::Down, tickets(20, 20), b"down-1");
        let lb = c.lane(b);
        put(&c, &lb, Dir::Down, tickets(7, 7), b"down-b");
        c.flush().unwrap();
    }
    let c = open(dir.path());
    let codes: Vec<Code> = c.lanes().iter().map(|l| l.code()).collect();
    assert_eq!(codes, vec![a, b]);
    let la = c.lane(a);
    assert_eq!(la.hello().unwrap(), b"hello-a");
    assert_eq!(la.cursor(), Some(welcome));
    assert_eq!(
        queue(&c, &la, Dir::Up),
        vec![
            (1, cells(10, 5), b"up-1".to_vec()),
            (2, tickets(4, 4), b"up-2".to_vec()),
            (3, cells(12, 12), b"up-3".to_vec()),
        ]
    );
    assert_eq!(
        queue(&c, &la, Dir::Down),
        vec![(1, tickets(20, 20), b"down-1".to_vec())]
    );
    assert_eq!(la.counts(), (3, 1));
    let lb = c.lane(b);
    assert!(lb.hello().is_none() && lb.cursor().is_none());
    assert_eq!(lb.counts(), (0, 1));
    // New entries continue after the highest one.
    assert_eq!(put(&c, &la, Dir::Up, cells(13, 13), b"up-4"), 4);
}

#[test]
fn acks_delete_only_what_they_cover_and_move_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let lane = c.lane(code("610102"));
    c.welcome(&lane, Cursor::default()).unwrap();
    put(&c, &lane, Dir::Up, cells(10, 0), b"c10");
    put(&c, &lane, Dir::Up, tickets(3, 3), b"t3");
    put(&c, &lane, Dir::Up, cells(20, 0), b"c20");
    put(&c, &lane, Dir::Up, cells(25, 25), b"c25");
    put(&c, &lane, Dir::Up, tickets(8, 8), b"t8");
    // The parent acked the cells up to 20: the ticket batches stay.
    assert_eq!(c.ack_cells(&lane, 20).unwrap(), 2);
    let left: Vec<_> = queue(&c, &lane, Dir::Up).into_iter().map(|e| e.2).collect();
    assert_eq!(left, vec![b"t3".to_vec(), b"c25".to_vec(), b"t8".to_vec()]);
    let cur = lane.cursor().unwrap();
    assert_eq!((cur.acked, cur.resume_pos), (0, 20));
    // A stale ack changes nothing.
    assert_eq!(c.ack_cells(&lane, 15).unwrap(), 0);
    assert_eq!(c.ack_up_tickets(&lane, 5).unwrap(), 1);
    assert_eq!(lane.cursor().unwrap().ticket_acked, 5);
    assert_eq!(c.ack_cells(&lane, 25).unwrap(), 1);
    let cur = lane.cursor().unwrap();
    assert_eq!((cur.acked, cur.resume_pos), (25, 25));
    let left: Vec<_> = queue(&c, &lane, Dir::Up).into_iter().map(|e| e.2).collect();
    assert_eq!(left, vec![b"t8".to_vec()]);
    // Down: the child's ticket acks.
    put(&c, &lane, Dir::Down, tickets(30, 30), b"d30");
    put(&c, &lane, Dir::Down, tickets(40, 40), b"d40");
    assert_eq!(c.ack_down(&lane, 35).unwrap(), 1);
    let left: Vec<_> = queue(&c, &lane, Dir::Down)
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert_eq!(left, vec![b"d40".to_vec()]);
    // Deletions and the cursor survive a reopen.
    drop(lane);
    drop(c);
    let c = open(dir.path());
    let lane = c.lane(code("610102"));
    assert_eq!(lane.counts(), (1, 1));
    let cur = lane.cursor().unwrap();
    assert_eq!((cur.acked, cur.resume_pos, cur.ticket_acked), (25, 25, 5));
}

#[test]
fn a_welcome_drops_what_the_parent_already_holds() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let lane = c.lane(code("610102"));
    put(&c, &lane, Dir::Up, cells(10, 0), b"c10");
    put(&c, &lane, Dir::Up, tickets(3, 3), b"t3");
    put(&c, &lane, Dir::Up, cells(20, 10), b"c20");
    put(&c, &lane, Dir::Up, tickets(6, 6), b"t6");
    // The parent holds the sweep from floor 0 up to position 10 and tickets up to 3.
    let w = Cursor {
        acked: 0,
        resume_pos: 10,
        ticket_acked: 3,
        down_acked: 0,
    };
    assert_eq!(c.welcome(&lane, w).unwrap(), 2);
    let left: Vec<_> = queue(&c, &lane, Dir::Up).into_iter().map(|e| e.2).collect();
    assert_eq!(left, vec![b"c20".to_vec(), b"t6".to_vec()]);
    assert_eq!(lane.cursor(), Some(w));
}

#[test]
fn the_child_resumes_after_its_custody() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let lane = c.lane(code("610102"));
    // Never welcomed by the parent: no answer for the child.
    assert_eq!(lane.child_welcome(), None);
    let w = Cursor {
        acked: 4,
        resume_pos: 6,
        ticket_acked: 2,
        down_acked: 11,
    };
    c.welcome(&lane, w).unwrap();
    assert_eq!(lane.child_welcome(), Some(w));
    put(&c, &lane, Dir::Up, cells(9, 4), b"c9");
    put(&c, &lane, Dir::Up, tickets(5, 5), b"t5");
    put(&c, &lane, Dir::Up, cells(12, 12), b"c12");
    assert_eq!(
        lane.child_welcome(),
        Some(Cursor {
            acked: 12,
            resume_pos: 12,
            ticket_acked: 5,
            down_acked: 11,
        })
    );
    // A batch not yet flushed is not promised to the child.
    let (_, ticket) = c.append(&lane, Dir::Up, cells(15, 15), b"c15").unwrap();
    assert_eq!(lane.child_welcome().unwrap().resume_pos, 12);
    c.flush_through(ticket).unwrap();
    assert_eq!(lane.child_welcome().unwrap().resume_pos, 15);
}

#[test]
fn entries_turn_visible_only_once_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let lane = c.lane(code("610102"));
    let mut changed = lane.subscribe(Dir::Down);
    changed.borrow_and_update();
    let (r1, t1) = c.append(&lane, Dir::Down, tickets(1, 1), b"a").unwrap();
    let (_, t2) = c.append(&lane, Dir::Down, tickets(2, 2), b"b").unwrap();
    assert!(t2 > t1);
    assert_eq!(lane.next_durable(Dir::Down, 0), None);
    assert!(!changed.has_changed().unwrap());
    // One flush covers both commits (group commit).
    c.flush_through(t1).unwrap();
    assert!(changed.has_changed().unwrap());
    assert_eq!(lane.next_durable(Dir::Down, 0), Some((r1, tickets(1, 1))));
    assert_eq!(lane.next_durable(Dir::Down, r1).unwrap().1, tickets(2, 2));
    c.flush_through(t2).unwrap();
    assert_eq!(lane.outstanding(Dir::Down, r1), 1);
}

#[test]
fn concurrent_writers_share_flushes_and_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let lanes: Vec<Arc<Lane>> = (1..=4)
        .map(|i| c.lane(code(&format!("61010{i}"))))
        .collect();
    std::thread::scope(|s| {
        for lane in &lanes {
            let c = &c;
            s.spawn(move || {
                for i in 1..=50u64 {
                    let body = format!("{}-{i}", lane.code());
                    let (_, t) = c
                        .append(lane, Dir::Up, cells(i, i), body.as_bytes())
                        .unwrap();
                    c.flush_through(t).unwrap();
                    // Acked only now: it must be visible to the forwarder.
                    assert!(lane.next_durable(Dir::Up, 0).is_some());
                }
            });
        }
    });
    drop(c);
    let c = open(dir.path());
    for lane in &lanes {
        let lane = c.lane(lane.code());
        let got: Vec<_> = queue(&c, &lane, Dir::Up)
            .into_iter()
            .map(|(_, m, b)| (m, String::from_utf8(b).unwrap()))
            .collect();
        let want: Vec<_> = (1..=50u64)
            .map(|i| (cells(i, i), format!("{}-{i}", lane.code())))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn a_foreign_value_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut ws = WriteSet::new();
        let mut k = code("610102").key().to_vec();
        k.push(TAG_UP);
        k.extend_from_slice(&1u64.to_be_bytes());
        ws.put(TreeId::Custody, k, vec![9u8, 1, 2]);
        store.commit(ws).unwrap();
        store.flush().unwrap();
    }
    let err = Custody::open(dir.path(), &StoreOptions::default())
        .err()
        .expect("a bad entry must be refused");
    assert!(err.to_string().contains("bad entry"), "{err}");
}
