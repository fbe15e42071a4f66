//! The ticket inventory parser (`tickets::parse_inventory`, a `tickets.csv`) on arbitrary
//! bytes, for a province and a city issuer.
//!
//! Checked: an accepted inventory has tickets of that issuer, with unique ids, each valid on
//! its own, trimmed, without parent, inventory or spot check, and each issue event encodes
//! and decodes to itself; a refused one lists row errors on increasing lines after the
//! header (or says why the file as a whole is refused).
#![no_main]

use bottomline::division::Code;
use bottomline::tickets::{parse_inventory, Event, EventId, EventKind, InventoryError, TicketKey};
use bottomline_fuzz::{check_event, line_ends};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for issuer in ["61", "6101"] {
        let issuer = Code::parse(issuer).expect("a code");
        match parse_inventory(issuer, data) {
            Ok(tickets) => {
                assert!(!tickets.is_empty());
                let mut ids = std::collections::BTreeSet::new();
                for (i, t) in tickets.iter().enumerate() {
                    assert_eq!(t.issuer, issuer);
                    assert!(ids.insert(t.id.clone()), "id {} twice", t.id);
                    assert_eq!(t.validate(), Ok(()));
                    assert!(t.parent.is_none() && t.inventory.is_none() && t.spot_check.is_none());
                    for v in [&t.id, &t.category, &t.description] {
                        assert!(!v.is_empty() && v.trim() == v, "{v:?}");
                    }
                    if let Some(h) = &t.household_code {
                        assert!(!h.is_empty() && h.trim() == h, "{h:?}");
                    }
                    check_event(&Event {
                        id: EventId {
                            origin: issuer,
                            seq: i as u64 + 1,
                        },
                        ticket: TicketKey::new(issuer, t.id.clone()),
                        lamport: 1,
                        at_unix_ms: 1_764_000_000_000,
                        actor: issuer,
                        kind: EventKind::Issued(t.clone()),
                    });
                }
            }
            Err(InventoryError::Rows(errors)) => {
                assert!(!errors.is_empty());
                let last = line_ends(data) + 1;
                let mut prev = 0;
                for e in &errors {
                    assert!(!e.reason.is_empty());
                    assert!(
                        e.line >= 2 && e.line <= last && e.line >= prev,
                        "error on line {} (previous {prev}, last {last}): {errors:?}",
                        e.line
                    );
                    prev = e.line;
                }
            }
            Err(InventoryError::File(reason)) => assert!(!reason.is_empty()),
            Err(InventoryError::Io(e)) => panic!("reading memory failed: {e}"),
        }
    }
});
