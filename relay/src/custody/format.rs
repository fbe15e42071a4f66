//! The stored form of custody: keys and values of `TreeId::Custody` (the layout is in the
//! [`super`] module's documentation). Every value starts with a format marker.

use bottomline::division::{Code, CODE_KEY_LEN};

use super::{Cursor, Dir, Meta};

pub(super) const MARK_V1: u8 = 1;
pub(super) const TAG_HELLO: u8 = 1;
pub(super) const TAG_CURSOR: u8 = 2;
pub(super) const TAG_UP: u8 = 3;
pub(super) const TAG_DOWN: u8 = 4;
pub(super) const KIND_CELLS: u8 = 1;
pub(super) const KIND_TICKETS: u8 = 2;
pub(super) const ENTRY_HEADER: usize = 1 + 1 + 8 + 8;

pub(super) fn tag(dir: Dir) -> u8 {
    match dir {
        Dir::Up => TAG_UP,
        Dir::Down => TAG_DOWN,
    }
}

pub(super) fn lane_key(lane: Code, tag: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(CODE_KEY_LEN + 9);
    k.extend_from_slice(&lane.key());
    k.push(tag);
    k
}

pub(super) fn entry_key(lane: Code, dir: Dir, rseq: u64) -> Vec<u8> {
    let mut k = lane_key(lane, tag(dir));
    k.extend_from_slice(&rseq.to_be_bytes());
    k
}

pub(super) fn u64_at(v: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

pub(super) fn encode_entry(meta: Meta, envelope: &[u8]) -> Vec<u8> {
    let (kind, a, b) = match meta {
        Meta::Cells { seq, floor } => (KIND_CELLS, seq, floor),
        Meta::Tickets { seq, upto } => (KIND_TICKETS, seq, upto),
    };
    let mut v = Vec::with_capacity(ENTRY_HEADER + envelope.len());
    v.extend_from_slice(&[MARK_V1, kind]);
    v.extend_from_slice(&a.to_be_bytes());
    v.extend_from_slice(&b.to_be_bytes());
    v.extend_from_slice(envelope);
    v
}

pub(super) fn decode_meta(v: &[u8]) -> Option<Meta> {
    if *v.first()? != MARK_V1 {
        return None;
    }
    let (a, b) = (u64_at(v, 2)?, u64_at(v, 10)?);
    match *v.get(1)? {
        KIND_CELLS => Some(Meta::Cells { seq: a, floor: b }),
        KIND_TICKETS => Some(Meta::Tickets { seq: a, upto: b }),
        _ => None,
    }
}

pub(super) fn encode_cursor(c: &Cursor) -> Vec<u8> {
    let mut v = vec![MARK_V1];
    for n in [c.acked, c.resume_pos, c.ticket_acked, c.down_acked] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

pub(super) fn decode_cursor(v: &[u8]) -> Option<Cursor> {
    (v.first() == Some(&MARK_V1)).then_some(())?;
    Some(Cursor {
        acked: u64_at(v, 1)?,
        resume_pos: u64_at(v, 9)?,
        ticket_acked: u64_at(v, 17)?,
        down_acked: u64_at(v, 25)?,
    })
}
