//! A ticket batch off the wire (`TicketBatch` from `proto/`): decoded with prost, each event
//! through `codec::from_pb` as a receiver does, then the events folded into ticket states.
//!
//! Checked: the prost message round-trips; each decoded event passes `check_sealed`; the
//! fold of the decoded events is a function of their set (the same reversed and with
//! duplicates) and its figures and stored summaries are computed without a panic.
#![no_main]

use bottomline_fuzz::check_ticket_events;
use bottomline_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::TicketBatch::decode(data) else {
        return;
    };
    assert_eq!(
        pb::TicketBatch::decode(batch.encode_to_vec().as_slice()).as_ref(),
        Ok(&batch)
    );
    check_ticket_events(batch.events);
});
