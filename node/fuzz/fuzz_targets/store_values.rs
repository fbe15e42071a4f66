//! The store's value and key decoding, on arbitrary bytes: statistics blocks and their keys
//! (`cells::Block::decode`, `cells::decode_block_key`, `stats::CellKey::decode`), change-log
//! groups (`cells::decode_log`, `cells::seq_of`), a store's identity and what a parent keeps
//! of a child (`lineage::StoreIdentity::decode`, `lineage::ChildStore::decode`), division
//! codes and periods in keys (`Code::from_key`, `Period::from_key`), and the JSON values
//! after a format byte (records as `ledger::encode_record` writes them, ticket summaries,
//! ticket log entries of the first format).
//!
//! Checked: whatever decodes encodes back to exactly the same bytes; a decoded code or
//! period is one that parsing its printed form gives back (a store key never decodes into a
//! value no file or message could hold); a block's entries and a log group's members are in
//! the order lookups rely on; JSON values round-trip.
#![no_main]

use bottomline::cells::{self, Block, BLOCK_KEY_LEN};
use bottomline::division::{Code, CODE_KEY_LEN};
use bottomline::domain::Record;
use bottomline::ledger::Logged;
use bottomline::lineage::{ChildStore, Incarnation, StoreIdentity};
use bottomline::period::{Period, PERIOD_KEY_LEN};
use bottomline::stats::{CellKey, Stored};
use bottomline::tickets::TicketState;
use bottomline_fuzz::{check_code, check_event, check_period, check_record};
use libfuzzer_sys::fuzz_target;

fn json<T>(v: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(x) = serde_json::from_slice::<T>(v) {
        let again = serde_json::to_vec(&x).expect("JSON to memory");
        assert_eq!(serde_json::from_slice::<T>(&again).ok().as_ref(), Some(&x));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Block::decode(data) {
        assert_eq!(b.encode(), data, "block round trip");
        for w in b.entries.windows(2) {
            assert!(
                (w[0].indicator, w[0].dim) < (w[1].indicator, w[1].dim),
                "block entries out of order: {:?}",
                b.entries
            );
        }
        // Adding to a decoded block: never a panic, a wrap refused.
        let mut b2 = b.clone();
        for e in &b.entries {
            let _ = b2.add(e.indicator, e.dim, e.value, e.seq.wrapping_add(1));
        }
        let _ = b2.add(Stored::Measures, 0, i64::MAX, 1);
    }
    if let Some((key, v)) = data.split_first_chunk::<8>() {
        let key = u64::from_be_bytes(*key);
        if let Ok(members) = cells::decode_log(key, v) {
            let mut again = Vec::new();
            if v.len() == BLOCK_KEY_LEN {
                assert_eq!(members.len(), 1);
                again.extend_from_slice(&members[0].1);
            } else {
                again.push(1);
                for (seq, k) in &members {
                    again.extend_from_slice(&seq.to_be_bytes());
                    again.extend_from_slice(k);
                }
            }
            assert_eq!(again, v, "change-log group round trip");
            for w in members.windows(2) {
                assert!(w[0].0 < w[1].0, "log members out of order: {members:?}");
            }
            for (seq, _) in &members {
                assert!(*seq <= key, "member {seq} in the group keyed {key}");
            }
        }
    }
    if let Ok(seq) = cells::seq_of(data) {
        assert_eq!(seq.to_be_bytes(), data);
    }
    if let Some((c, p)) = cells::decode_block_key(data) {
        assert_eq!(cells::block_key(c, p), data, "block key round trip");
        check_code(c);
        check_period(p);
    }
    if let Some(k) = CellKey::decode(data) {
        assert_eq!(k.encode(), data, "cell key round trip");
        check_code(k.division);
        check_period(k.period);
    }
    if let Some(c) = Code::from_key(data) {
        assert_eq!(c.key(), data[..CODE_KEY_LEN], "code key round trip");
        check_code(c);
    }
    if let Some(p) = Period::from_key(data) {
        assert_eq!(p.key(), data[..PERIOD_KEY_LEN], "period key round trip");
        check_period(p);
    }
    if let Ok(id) = StoreIdentity::decode(data) {
        assert_eq!(id.encode(), data, "store identity round trip");
        let mut id2 = id.clone();
        id2.start(Incarnation {
            id: 1,
            cell_start: 2,
            ticket_start: 3,
        });
        assert!(id2.lineage.len() <= bottomline::lineage::MAX_LINEAGE.max(id.lineage.len()));
    }
    if let Some(cs) = ChildStore::decode(data) {
        assert_eq!(cs.encode(), data, "child store round trip");
        let _ = cs.version(data.len() as u64);
    }
    // JSON values after a format byte.
    if let Some((_, v)) = data.split_first() {
        if let Ok(r) = serde_json::from_slice::<Record>(v) {
            check_record(&r, None);
        }
        json::<TicketState>(v);
        if let Ok(l) = serde_json::from_slice::<Logged>(v) {
            check_event(&l.event);
            json::<Logged>(v);
        }
    }
});
