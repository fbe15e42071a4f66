//! The link's `Envelope` (`proto/bottomline/v1/sync.proto`) from arbitrary bytes, decoded
//! with prost, then each payload through the node's public conversions: the cells of a
//! `CellBatch` (`rpc::cell_from_pb`), the events of a `TicketBatch` (`codec::from_pb`, then
//! folded), the store identity of a `Hello` (`rpc::identity_from_pb`, and the lineage rule
//! against it), the division codes of the others.
//!
//! Checked: the envelope round-trips through prost; a decoded cell encodes back to exactly
//! the message it came from, and its division and period are ones a file or a query could
//! name; a decoded identity's wire and stored forms decode to it again;
//! decoded ticket events pass `check_sealed` and fold as a function of their set.
#![no_main]

use bottomline::division::Code;
use bottomline::ledger::CellValue;
use bottomline::lineage::{self, Acked, ChildStore, StoreIdentity};
use bottomline::rpc::{cell_from_pb, cell_to_pb, identity_from_pb, identity_to_pb};
use bottomline_fuzz::{check_code, check_period, check_ticket_events};
use bottomline_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use pb::envelope::Payload;
use prost::Message;

fn code(s: &str) {
    if let Ok(c) = Code::parse(s) {
        assert_eq!(c.to_string(), s, "a code prints as parsed");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(env) = pb::Envelope::decode(data) else {
        return;
    };
    assert_eq!(
        pb::Envelope::decode(env.encode_to_vec().as_slice()).as_ref(),
        Ok(&env)
    );
    code(&env.origin);
    match env.payload {
        Some(Payload::Cells(batch)) => {
            for c in &batch.cells {
                let Ok(r) = cell_from_pb(c) else { continue };
                let v = CellValue {
                    value: r.value,
                    seq: 0,
                    version: r.version,
                };
                assert_eq!(&cell_to_pb(&r.key, &v), c, "cell round trip");
                assert_eq!(
                    bottomline::stats::CellKey::decode(&r.key.encode()),
                    Some(r.key)
                );
                check_code(r.key.division);
                check_period(r.key.period);
            }
        }
        Some(Payload::Tickets(batch)) => {
            check_ticket_events(batch.events);
        }
        Some(Payload::Hello(h)) => {
            code(&h.division);
            if let Some(id) = identity_from_pb(h.identity.as_ref()) {
                assert_eq!(
                    identity_from_pb(Some(&identity_to_pb(&id))),
                    Some(id.clone())
                );
                assert_eq!(StoreIdentity::decode(&id.encode()), Ok(id.clone()));
                // The rule a parent applies at a Hello, against what it might hold.
                let known = ChildStore {
                    store_id: id.store_id,
                    incarnation: id.lineage.first().map_or(0, |i| i.id),
                    generation: 1,
                    superseded: id.lineage.iter().skip(1).map(|i| i.id).take(3).collect(),
                };
                let acked = Acked {
                    cells: h.head,
                    tickets: h.backlog,
                };
                let _ = lineage::continuity(Some(&known), &id, acked);
                let _ = lineage::continuity(Some(&ChildStore::default()), &id, acked);
                if let Some(next) = known.next(&id, 2) {
                    assert_eq!(ChildStore::decode(&next.encode()), Some(next));
                }
            }
        }
        Some(Payload::Welcome(w)) => code(&w.division),
        Some(Payload::Ack(a)) => code(&a.origin),
        Some(Payload::TicketAck(_)) | None => {}
    }
});
