//! The ticket log's entries as stored and read: where an entry goes (its routing), the event
//! and the exact bytes of its body and seal, in format 1 (JSON, read only) and 2.

use super::*;

/// Format markers of the ticket values. A log entry of format 1 is JSON of [`Logged`] (read,
/// no longer written); format 2 is the routing (from, target, top) followed by the event as
/// an encoded `TicketEvent` (its body's bytes and its creator's seal).
pub(super) const TLOG_V1: u8 = 1;
pub(super) const TLOG_V2: u8 = 2;

/// One entry of the ticket log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    /// Position in this node's ticket log.
    #[serde(skip)]
    pub pos: u64,
    /// The peer that delivered it; `None` for events created at this node.
    pub from: Option<Code>,
    /// The ticket's target.
    pub target: Code,
    /// The top of the ticket's span (its issuer, or the split ticket's top).
    pub top: Code,
    /// The event.
    pub event: Event,
}

impl Logged {
    /// Whether node `node` sends this entry to its parent `parent`.
    pub fn for_parent(&self, node: Code, parent: Code) -> bool {
        self.routing().for_parent(node, parent)
    }

    /// Whether a node sends this entry to its child `child`.
    pub fn for_child(&self, child: Code) -> bool {
        self.routing().for_child(child)
    }

    /// Whether a node sends this entry back down to `child`, whose store was replaced by an
    /// older one, with its ticket return position at `upto` ([`Ledger::ticket_return_upto`]):
    /// an event that came from the child itself, of a ticket in its subtree, up to `upto`.
    pub fn returns_to(&self, child: Code, upto: u64) -> bool {
        self.pos <= upto && self.from == Some(child) && child.contains(self.target)
    }

    pub(super) fn routing(&self) -> Routing {
        Routing {
            from: self.from,
            target: self.target,
            top: self.top,
        }
    }
}

/// The part of a ticket-log entry that decides where it is sent (what a backlog count reads;
/// decoding a stored entry into it skips the event).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub(super) struct Routing {
    pub(super) from: Option<Code>,
    pub(super) target: Code,
    pub(super) top: Code,
}

impl Routing {
    pub(super) fn for_parent(&self, node: Code, parent: Code) -> bool {
        self.from != Some(parent) && self.top != node && self.top.contains(node)
    }

    pub(super) fn for_child(&self, child: Code) -> bool {
        self.from != Some(child) && child.contains(self.target)
    }
}

/// A ticket-log entry as the sync layer reads it: the entry, its event's body as its creator
/// encoded it, and the creator's seal (what travels).
#[derive(Debug)]
pub struct LogEntry {
    /// The entry.
    pub logged: Logged,
    /// The encoded `TicketEventBody` of `logged.event`.
    pub body: Vec<u8>,
    /// The creator's seal (`None` on insecure nodes and for entries of format 1).
    pub seal: Option<Seal>,
}

pub(super) const ROUTING_LEN: usize = 1 + 3 * crate::division::CODE_KEY_LEN;

pub(super) fn encode_routing(r: &Routing, out: &mut Vec<u8>) {
    out.push(u8::from(r.from.is_some()));
    out.extend_from_slice(&r.from.unwrap_or(r.target).key());
    out.extend_from_slice(&r.target.key());
    out.extend_from_slice(&r.top.key());
}

pub(super) fn decode_routing(v: &[u8]) -> Result<Routing> {
    const N: usize = crate::division::CODE_KEY_LEN;
    let bad = || corrupt("ticket log", "a truncated routing");
    if v.len() < ROUTING_LEN {
        return Err(bad());
    }
    let code = |i: usize| Code::from_key(&v[1 + i * N..1 + (i + 1) * N]).ok_or_else(bad);
    Ok(Routing {
        from: if v[0] == 1 { Some(code(0)?) } else { None },
        target: code(1)?,
        top: code(2)?,
    })
}

impl LogEntry {
    /// About how many bytes the entry takes in memory: its body, its seal, and its decoded
    /// event (mostly the ticket's text, about the body's size again).
    pub fn approx_bytes(&self) -> usize {
        2 * self.body.len()
            + self
                .seal
                .as_ref()
                .map_or(0, |s| s.signature.len() + 32 * s.path.len() + 64)
            + 160
    }

    /// The stored value (format 2).
    pub(super) fn encode(&self) -> Vec<u8> {
        let ev = codec::encode_stored(&self.body, self.seal.as_ref());
        let mut out = Vec::with_capacity(1 + ROUTING_LEN + ev.len());
        out.push(TLOG_V2);
        encode_routing(&self.logged.routing(), &mut out);
        out.extend_from_slice(&ev);
        out
    }

    /// A stored value at position `pos`.
    pub(super) fn decode(pos: u64, v: &[u8]) -> Result<LogEntry> {
        match v.first() {
            Some(&TLOG_V2) => {
                let r = decode_routing(&v[1..])?;
                let s = codec::decode_stored(&v[1 + ROUTING_LEN..])
                    .map_err(|e| corrupt("ticket log", e))?;
                Ok(LogEntry {
                    logged: Logged {
                        pos,
                        from: r.from,
                        target: r.target,
                        top: r.top,
                        event: s.event,
                    },
                    body: s.body,
                    seal: s.seal,
                })
            }
            _ => {
                let mut logged: Logged = decode_json("ticket log", TLOG_V1, v)?;
                logged.pos = pos;
                Ok(LogEntry {
                    body: codec::encode_body(&logged.event),
                    logged,
                    seal: None,
                })
            }
        }
    }
}

/// The routing of a stored log value, without decoding its event.
pub(super) fn stored_routing(v: &[u8]) -> Result<Routing> {
    match v.first() {
        Some(&TLOG_V2) => decode_routing(&v[1..]),
        _ => decode_json("ticket log", TLOG_V1, v),
    }
}
