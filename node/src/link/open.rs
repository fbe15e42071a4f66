//! Opening a link: the parent answers the child's `Hello` with a `Welcome` — where its
//! durable copy of the child ends (cells and ticket cursors, both ways) and the child's event
//! counters it has seen — after recognising a child whose store was wiped or restored
//! (invariant 15); the child checks it and never reuses an event id or goes back in Lamport
//! time.

use crate::division::Code;
use crate::ledger::{ChildLinked, Ledger, LedgerError};
use crate::lineage::StoreIdentity;

/// What the parent tells a child that opens a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The parent's division.
    pub division: Code,
    /// The child's delivered floor held durably here (the cell sender's floor).
    pub acked: u64,
    /// The position an interrupted sweep had reached (the cell sender reads on from it).
    pub resume_pos: u64,
    /// The child's ticket-log position stored here (the child's ticket sender starts there).
    pub ticket_acked: u64,
    /// This node's ticket-log position the child acked (the sender down starts there).
    pub down_acked: u64,
    /// The highest event counter and Lamport time of the child's events held here.
    pub origin_seq: u64,
    /// See `origin_seq`.
    pub ticket_clock: u64,
    /// Why what this node held of the child was replaced (empty: it was not).
    pub reset: String,
    /// Down to the child, its own events up to this position go back to it (its store was
    /// replaced; 0: none).
    pub returns_upto: u64,
}

/// The parent's answer to a `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The link opens.
    Welcome(Welcome),
    /// A stale Hello (a superseded incarnation of the child's store): refused, why.
    Stale(String),
}

/// The parent's side of opening the link of direct child `child`, whose Hello carries the
/// store `identity`.
pub fn open(
    ledger: &Ledger,
    child: Code,
    identity: Option<&StoreIdentity>,
) -> Result<Opened, LedgerError> {
    let reset = match ledger.child_linked(child, identity)? {
        ChildLinked::Continues => String::new(),
        ChildLinked::Replaced(why) => why,
        ChildLinked::Stale(why) => return Ok(Opened::Stale(why)),
    };
    let (acked, resume_pos) = ledger.child_resume(child)?;
    let (origin_seq, ticket_clock) = ledger.ticket_counters_for(child)?;
    Ok(Opened::Welcome(Welcome {
        division: ledger.division(),
        acked,
        resume_pos,
        ticket_acked: ledger.ticket_up_acked(child)?,
        down_acked: ledger.ticket_down_acked(child)?,
        origin_seq,
        ticket_clock,
        reset,
        returns_upto: ledger.ticket_return_upto(child)?,
    }))
}

/// The child's side of a `Welcome`: refused (`Err` with the reason) unless it comes from this
/// node's parent; otherwise the event counter and Lamport clock move past what the parent
/// holds (a store restored from an older backup must not reuse event ids). Returns whether
/// they moved.
pub fn welcomed(ledger: &Ledger, welcome: &Welcome) -> Result<Result<bool, String>, LedgerError> {
    let me = ledger.division();
    if me.parent() != Some(welcome.division) {
        return Ok(Err(format!(
            "division {} is not the parent of {me}",
            welcome.division
        )));
    }
    ledger
        .raise_ticket_counters(welcome.origin_seq, welcome.ticket_clock)
        .map(Ok)
}
