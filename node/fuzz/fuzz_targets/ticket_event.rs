//! Ticket event decoding (`tickets::codec`): arbitrary bytes as a `TicketEventBody`
//! (`decode_body`) and as the stored `TicketEvent` (`decode_stored`, i.e. `from_pb`).
//!
//! Checked: errors name what is wrong (a field, or that the bytes are not an event); a
//! decoded event's canonical encoding decodes to it and is stable; a decoded stored event
//! keeps its body, which decodes to its event, and its stored and wire forms decode to it
//! again; its seal's Merkle path is walked; the ticket rules and a fold of it run.
#![no_main]

use bottomline::tickets::codec;
use bottomline_fuzz::{check_event, check_fold, check_sealed};
use libfuzzer_sys::fuzz_target;

fn check_error(e: &str) {
    assert!(
        e.starts_with("not a ticket event") || e.starts_with("field "),
        "an error names the field: {e}"
    );
}

fuzz_target!(|data: &[u8]| {
    match codec::decode_body(data) {
        Ok(e) => {
            check_event(&e);
            check_fold(std::slice::from_ref(&e));
        }
        Err(e) => check_error(&e),
    }
    match codec::decode_stored(data) {
        Ok(s) => check_sealed(&s),
        Err(e) => check_error(&e),
    }
});
