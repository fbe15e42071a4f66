//! Ticket events as the protobuf messages they travel and are stored as (`TicketEventBody`
//! and `TicketEvent` with its `Seal` in `proto/bottomline/v1/sync.proto`): the one place
//! besides `rpc.rs` that converts wire types. The body's bytes are kept exactly as their
//! creator encoded them, because the creator's signature covers those bytes: a node stores
//! and forwards them unchanged, and decodes them only to fold.

use bottomline_proto::v1 as pb;
use pb::ticket_event_body::Kind as PbKind;
use prost::Message;

use super::{Event, EventId, EventKind, Severity, Ticket, TicketKey, TicketSource};
use crate::division::Code;
use crate::security::sign::{Hash, Seal};

/// An event with the exact bytes of its body and its creator's seal (none on insecure
/// nodes, and for events stored before ticket events were signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The decoded event.
    pub event: Event,
    /// The encoded `TicketEventBody`.
    pub body: Vec<u8>,
    /// The creator's seal.
    pub seal: Option<Seal>,
}

impl Sealed {
    /// A new event of this node, encoded; sealed when its commit is signed.
    pub fn new(event: Event) -> Sealed {
        Sealed {
            body: encode_body(&event),
            event,
            seal: None,
        }
    }
}

fn code(s: &str, field: &str) -> Result<Code, String> {
    Code::parse(s).map_err(|e| format!("field {field}: {e}"))
}

fn date(s: &str, field: &str) -> Result<jiff::civil::Date, String> {
    s.parse()
        .map_err(|e| format!("field {field}: bad date {s:?}: {e}"))
}

/// The `TicketEventBody` bytes of `e`.
pub fn encode_body(e: &Event) -> Vec<u8> {
    let kind = match &e.kind {
        EventKind::Issued(t) => PbKind::Issued(pb::IssuedTicket {
            issuer: t.issuer.to_string(),
            id: t.id.clone(),
            target: t.target.to_string(),
            category: t.category.clone(),
            source: t.source.as_str().to_string(),
            severity: t.severity.as_str().to_string(),
            deadline: t.deadline.to_string(),
            description: t.description.clone(),
            household_code: t.household_code.clone(),
            parent_issuer: t.parent.as_ref().map(|p| p.issuer.to_string()),
            parent_id: t.parent.as_ref().map(|p| p.id.clone()),
            inventory: t.inventory.clone(),
            spot_check: t.spot_check.as_ref().map(|c| pb::SpotCheckDraw {
                week: c.week.clone(),
                scope: c.scope.as_str().to_string(),
                seed: c.seed.clone(),
            }),
        }),
        EventKind::Delivered { at } => PbKind::DeliveredAt(at.to_string()),
        EventKind::Accepted => PbKind::Accepted(pb::Empty {}),
        EventKind::Started => PbKind::Started(pb::Empty {}),
        EventKind::Rectified { note } => PbKind::RectifiedNote(note.clone()),
        EventKind::Verified => PbKind::Verified(pb::Empty {}),
        EventKind::Returned { reason } => PbKind::ReturnedReason(reason.clone()),
        EventKind::Supervise { on } => PbKind::Supervise(*on),
        EventKind::Split { children } => PbKind::Split(pb::SplitInto {
            issuers: children.iter().map(|k| k.issuer.to_string()).collect(),
            ids: children.iter().map(|k| k.id.clone()).collect(),
        }),
        EventKind::Checked { findings, note } => PbKind::Checked(pb::SpotCheckResult {
            findings: *findings,
            note: note.clone(),
        }),
    };
    pb::TicketEventBody {
        origin: e.id.origin.to_string(),
        seq: e.id.seq,
        ticket_issuer: e.ticket.issuer.to_string(),
        ticket_id: e.ticket.id.clone(),
        lamport: e.lamport,
        at_unix_ms: e.at_unix_ms,
        actor: e.actor.to_string(),
        kind: Some(kind),
    }
    .encode_to_vec()
}

/// Decode `TicketEventBody` bytes; the error names the field.
pub fn decode_body(body: &[u8]) -> Result<Event, String> {
    let b = pb::TicketEventBody::decode(body).map_err(|e| format!("not a ticket event: {e}"))?;
    let kind = match b.kind.ok_or("field kind: missing")? {
        PbKind::Issued(t) => {
            let parent = match (t.parent_issuer, t.parent_id) {
                (Some(i), Some(id)) => Some(TicketKey::new(code(&i, "parent_issuer")?, id)),
                (None, None) => None,
                _ => return Err("field parent_issuer/parent_id: only one of them is set".into()),
            };
            EventKind::Issued(Ticket {
                issuer: code(&t.issuer, "issuer")?,
                id: t.id,
                target: code(&t.target, "target")?,
                category: t.category,
                source: TicketSource::parse(&t.source).map_err(|e| format!("field source: {e}"))?,
                severity: Severity::parse(&t.severity)
                    .map_err(|e| format!("field severity: {e}"))?,
                deadline: date(&t.deadline, "deadline")?,
                description: t.description,
                household_code: t.household_code,
                parent,
                inventory: t.inventory,
                spot_check: match t.spot_check {
                    None => None,
                    Some(c) => Some(Box::new(crate::spotcheck::SpotCheckTask {
                        week: c.week,
                        scope: crate::spotcheck::Scope::parse(&c.scope)
                            .map_err(|e| format!("field spot_check.scope: {e}"))?,
                        seed: c.seed,
                    })),
                },
            })
        }
        PbKind::DeliveredAt(at) => EventKind::Delivered {
            at: code(&at, "delivered_at")?,
        },
        PbKind::Accepted(_) => EventKind::Accepted,
        PbKind::Started(_) => EventKind::Started,
        PbKind::RectifiedNote(note) => EventKind::Rectified { note },
        PbKind::Verified(_) => EventKind::Verified,
        PbKind::ReturnedReason(reason) => EventKind::Returned { reason },
        PbKind::Supervise(on) => EventKind::Supervise { on },
        PbKind::Split(s) => {
            if s.issuers.len() != s.ids.len() {
                return Err("field split: issuers and ids differ in number".into());
            }
            let children = s
                .issuers
                .iter()
                .zip(s.ids)
                .map(|(i, id)| Ok(TicketKey::new(code(i, "split.issuers")?, id)))
                .collect::<Result<_, String>>()?;
            EventKind::Split { children }
        }
        PbKind::Checked(c) => EventKind::Checked {
            findings: c.findings,
            note: c.note,
        },
    };
    Ok(Event {
        id: EventId {
            origin: code(&b.origin, "origin")?,
            seq: b.seq,
        },
        ticket: TicketKey::new(code(&b.ticket_issuer, "ticket_issuer")?, b.ticket_id),
        lamport: match b.lamport {
            l @ 0..=crate::tickets::MAX_LAMPORT => l,
            l => {
                return Err(format!(
                    "field lamport: {l} is beyond {} (a Lamport time grows by one per event)",
                    crate::tickets::MAX_LAMPORT
                ))
            }
        },
        at_unix_ms: b.at_unix_ms,
        actor: code(&b.actor, "actor")?,
        kind,
    })
}

fn seal_to_pb(s: &Seal) -> pb::Seal {
    pb::Seal {
        signer: s.signer.to_vec(),
        signature: s.signature.clone(),
        index: s.index,
        count: s.count,
        path: s.path.concat(),
    }
}

fn hash(b: &[u8], field: &str) -> Result<Hash, String> {
    b.try_into()
        .map_err(|_| format!("field {field}: {} bytes, not a SHA-256", b.len()))
}

fn seal_from_pb(s: pb::Seal) -> Result<Seal, String> {
    Ok(Seal {
        signer: hash(&s.signer, "seal.signer")?,
        signature: s.signature,
        index: s.index,
        count: s.count,
        path: {
            if !s.path.len().is_multiple_of(32) {
                return Err(format!(
                    "field seal.path: {} bytes, not a list of SHA-256 hashes",
                    s.path.len()
                ));
            }
            s.path
                .chunks(32)
                .map(|h| hash(h, "seal.path"))
                .collect::<Result<_, _>>()?
        },
    })
}

/// The wire (and stored) message of an event.
pub fn to_pb(body: &[u8], seal: Option<&Seal>) -> pb::TicketEvent {
    pb::TicketEvent {
        body: body.to_vec(),
        seal: seal.map(seal_to_pb),
    }
}

/// An event from the wire: its body decoded, its bytes and seal kept.
pub fn from_pb(t: pb::TicketEvent) -> Result<Sealed, String> {
    let event = decode_body(&t.body)?;
    let seal = t.seal.map(seal_from_pb).transpose()?;
    Ok(Sealed {
        event,
        body: t.body,
        seal,
    })
}

/// The stored form: an encoded `TicketEvent`.
pub fn encode_stored(body: &[u8], seal: Option<&Seal>) -> Vec<u8> {
    to_pb(body, seal).encode_to_vec()
}

/// Decode the stored form.
pub fn decode_stored(v: &[u8]) -> Result<Sealed, String> {
    from_pb(pb::TicketEvent::decode(v).map_err(|e| format!("not a ticket event: {e}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            id: EventId {
                origin: Code::parse("6101").unwrap(),
                seq: 7,
            },
            ticket: TicketKey::new(Code::parse("61").unwrap(), "T-1"),
            lamport: 9,
            at_unix_ms: 1_764_000_000_000,
            actor: Code::parse("610102").unwrap(),
            kind,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let t = Ticket {
            issuer: Code::parse("61").unwrap(),
            id: "T-1".into(),
            target: Code::parse("610102").unwrap(),
            category: "政策落实".into(),
            source: TicketSource::parse("inspection").unwrap(),
            severity: Severity::parse("high").unwrap(),
            deadline: jiff::civil::date(2026, 12, 31),
            description: "未及时认定".into(),
            household_code: Some("610102001001H0001".into()),
            parent: Some(TicketKey::new(Code::parse("6101").unwrap(), "P")),
            inventory: None,
            spot_check: None,
        };
        let kinds = [
            EventKind::Issued(t),
            EventKind::Delivered {
                at: Code::parse("610102").unwrap(),
            },
            EventKind::Accepted,
            EventKind::Started,
            EventKind::Rectified {
                note: "已整改".into(),
            },
            EventKind::Verified,
            EventKind::Returned {
                reason: String::new(),
            },
            EventKind::Supervise { on: false },
            EventKind::Split {
                children: vec![TicketKey::new(Code::parse("610102").unwrap(), "T-1.001")],
            },
        ];
        for k in kinds {
            let e = ev(k);
            let body = encode_body(&e);
            assert_eq!(decode_body(&body).unwrap(), e);
            let stored = decode_stored(&encode_stored(&body, None)).unwrap();
            assert_eq!(stored.event, e);
            assert_eq!(stored.body, body);
        }
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let mut b =
            pb::TicketEventBody::decode(&encode_body(&ev(EventKind::Accepted))[..]).unwrap();
        b.actor = "61x".into();
        let err = decode_body(&b.encode_to_vec()).unwrap_err();
        assert!(err.contains("field actor"), "{err}");
        b.actor = "61".into();
        b.kind = None;
        assert!(decode_body(&b.encode_to_vec())
            .unwrap_err()
            .contains("field kind"));
        assert!(decode_body(b"\xff\xff").is_err());
    }

    /// Found by fuzzing: an event at Lamport time u64::MAX made the next event's time
    /// overflow (a panic in debug builds, a wrap to 0 — before everything — in release).
    #[test]
    fn lamport_times_beyond_the_maximum_are_refused() {
        let mut e = ev(EventKind::Accepted);
        e.lamport = crate::tickets::MAX_LAMPORT;
        let ok = decode_body(&encode_body(&e)).unwrap();
        assert_eq!(
            crate::tickets::next_lamport([&ok]),
            crate::tickets::MAX_LAMPORT + 1
        );
        for l in [crate::tickets::MAX_LAMPORT + 1, u64::MAX] {
            e.lamport = l;
            let err = decode_body(&encode_body(&e)).unwrap_err();
            assert!(err.starts_with("field lamport: "), "{err}");
        }
    }
}
