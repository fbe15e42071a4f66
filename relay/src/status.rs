//! The relay's `Status`: one child per lane (its link, its Hello's figures, custody both
//! ways, its upstream), in the parent's name with the relay's own certificate name.

use std::time::SystemTime;

use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use prost::Message;

use crate::state::{Shared, SOFTWARE};

/// Unix milliseconds of `t` (0 before the epoch).
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The relay's status: one child per lane.
pub(crate) fn status(shared: &Shared) -> pb::StatusReply {
    let mut children = Vec::new();
    let mut any_parent = false;
    for lane in shared.custody.lanes() {
        let code = lane.code();
        let hello = lane
            .hello()
            .and_then(|b| pb::Envelope::decode(&b[..]).ok())
            .and_then(|e| match e.payload {
                Some(Payload::Hello(h)) => Some(h),
                _ => None,
            })
            .unwrap_or_default();
        let live = shared
            .live_if_any(code)
            .map(|l| l.status().clone())
            .unwrap_or_default();
        any_parent |= live.parent_connected;
        let w = lane.child_welcome().unwrap_or_default();
        let (up, down) = lane.counts();
        let last_contact = live
            .last_contact
            .map(unix_ms)
            .unwrap_or(hello.sent_unix_ms.max(0));
        children.push(pb::ChildStatus {
            division: code.to_string(),
            connected: live.child_connected,
            last_contact_unix_ms: last_contact,
            acked: w.acked,
            head: hello.head,
            backlog: hello.backlog,
            silent: false,
            name: String::new(),
            ticket_acked_up: w.ticket_acked,
            ticket_backlog_up: hello.ticket_backlog,
            ticket_acked_down: 0,
            ticket_backlog_down: 0,
            via_relay: String::new(),
            custody_up: up as u64,
            custody_down: down as u64,
            parent_connected: live.parent_connected,
            // A relay does not judge progress; the parent's status does.
            stalled: false,
            ticket_backlog_down_at_least: false,
        });
    }
    pb::StatusReply {
        division: shared.parent_division().to_string(),
        head: 0,
        children,
        uplink: Some(pb::UplinkStatus {
            parent: shared.parent.url().to_string(),
            connected: any_parent,
            last_error: shared.parent.last_error().unwrap_or_default(),
            ..Default::default()
        }),
        silent_child_secs: 0,
        software: SOFTWARE.to_string(),
        name: String::new(),
        ticket_head: 0,
        relay: shared.name.clone(),
        stalled_child_secs: 0.0,
        self_check: None,
    }
}
