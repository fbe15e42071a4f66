//! A store's identity and lineage, and the rule by which a parent knows whether what it holds
//! of a child is still that child's history (pure: no I/O; the ledger stores and the link
//! sends what is defined here).
//!
//! - The **store id** is random, made when the store is created: a wiped store (or another
//!   one) has another id.
//! - The **lineage** lists the store's **incarnations**, oldest first: every process that
//!   opens the store starts one, with a random id, at the heads of the change log and the
//!   ticket log as it found them. A copy restored from a backup keeps the incarnations up to
//!   the copy and starts its own at the copy's heads.
//!
//! A parent records, per child, the store id and the incarnation the child ran when the
//! parent last took something from it, beside the positions it acked (the sweep's floor and
//! position, the ticket cursor). Those positions are still the child's history exactly when
//! the store id is the same, that incarnation is in the child's lineage, and the incarnation
//! after it there (if any) started at or after them: the store that went on was a copy taken
//! no earlier than what the parent holds. Otherwise the child lost some of what the parent
//! holds ([`Continuity::Diverged`]), and the parent replaces its replicas of that child.

use std::fmt;

/// Incarnations a store remembers (the oldest are dropped). A parent whose recorded
/// incarnation was dropped replaces its replicas of the child: always correct, only slower.
pub const MAX_LINEAGE: usize = 64;

/// One incarnation of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnation {
    /// Random, made when the store was opened.
    pub id: u64,
    /// The change log's head when it started.
    pub cell_start: u64,
    /// The ticket log's head when it started.
    pub ticket_start: u64,
}

/// A store's identity: its id and its lineage (oldest first; the last is the running one).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoreIdentity {
    /// Random, made when the store was created.
    pub store_id: [u8; 16],
    /// Its incarnations, oldest first.
    pub lineage: Vec<Incarnation>,
}

const FORMAT: u8 = 1;
const ENTRY: usize = 24;

impl StoreIdentity {
    /// A new store's identity (no incarnation yet).
    pub fn new(store_id: [u8; 16]) -> StoreIdentity {
        StoreIdentity {
            store_id,
            lineage: Vec::new(),
        }
    }

    /// The running incarnation.
    pub fn current(&self) -> Option<Incarnation> {
        self.lineage.last().copied()
    }

    /// Start a new incarnation (keeping the last [`MAX_LINEAGE`]).
    pub fn start(&mut self, inc: Incarnation) {
        self.lineage.push(inc);
        if self.lineage.len() > MAX_LINEAGE {
            let drop = self.lineage.len() - MAX_LINEAGE;
            self.lineage.drain(..drop);
        }
    }

    /// The stored form: a format byte, the id, then 24 bytes per incarnation.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(17 + ENTRY * self.lineage.len());
        v.push(FORMAT);
        v.extend_from_slice(&self.store_id);
        for i in &self.lineage {
            v.extend_from_slice(&i.id.to_be_bytes());
            v.extend_from_slice(&i.cell_start.to_be_bytes());
            v.extend_from_slice(&i.ticket_start.to_be_bytes());
        }
        v
    }

    /// Decode the stored form.
    pub fn decode(v: &[u8]) -> Result<StoreIdentity, String> {
        if v.first() != Some(&FORMAT) || v.len() < 17 || !(v.len() - 17).is_multiple_of(ENTRY) {
            return Err(format!("a store identity of {} bytes", v.len()));
        }
        let n = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        Ok(StoreIdentity {
            store_id: v[1..17].try_into().unwrap_or_default(),
            lineage: v[17..]
                .chunks_exact(ENTRY)
                .map(|c| Incarnation {
                    id: n(&c[..8]),
                    cell_start: n(&c[8..16]),
                    ticket_start: n(&c[16..24]),
                })
                .collect(),
        })
    }

    /// The store id in hex (for logs).
    pub fn id_hex(&self) -> String {
        self.store_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a parent recorded of a child's store.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChildStore {
    /// The child's store id.
    pub store_id: [u8; 16],
    /// The child's incarnation when the parent last took something from it.
    pub incarnation: u64,
    /// The generation of the child's cells here: a replica's version here is
    /// `generation << 40 | the child's version`, and a reset starts the next generation.
    pub generation: u64,
    /// Incarnations of the same store this node took data from before `incarnation` (at most
    /// [`MAX_LINEAGE`], oldest first): a Hello naming one of them as the child's running
    /// incarnation is a stale one — replayed, or kept by a relay the child has since left —
    /// since every process that opens a store (a restored copy too) starts a new one.
    pub superseded: Vec<u64>,
}

/// Child versions stay below `1 << VERSION_BITS` (a change log of a trillion changes).
pub const VERSION_BITS: u32 = 40;

impl ChildStore {
    /// The stored form (32 bytes, then 8 per superseded incarnation).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.store_id.to_vec();
        v.extend_from_slice(&self.incarnation.to_be_bytes());
        v.extend_from_slice(&self.generation.to_be_bytes());
        for i in &self.superseded {
            v.extend_from_slice(&i.to_be_bytes());
        }
        v
    }

    /// Decode the stored form (a record written before `superseded` existed has none).
    pub fn decode(v: &[u8]) -> Option<ChildStore> {
        if v.len() < 32 || !(v.len() - 32).is_multiple_of(8) {
            return None;
        }
        Some(ChildStore {
            store_id: v[..16].try_into().ok()?,
            incarnation: u64::from_be_bytes(v[16..24].try_into().ok()?),
            generation: u64::from_be_bytes(v[24..32].try_into().ok()?),
            superseded: v[32..]
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        })
    }

    /// The record after the child linked running `id`'s current incarnation: the incarnation
    /// recorded until now joins `superseded` when it changes (the same store), or the list
    /// starts over (another store).
    pub fn next(&self, id: &StoreIdentity, generation: u64) -> Option<ChildStore> {
        let current = id.current()?;
        let mut superseded = if self.store_id == id.store_id {
            self.superseded.clone()
        } else {
            Vec::new()
        };
        if self.store_id == id.store_id
            && self.incarnation != current.id
            && self.incarnation != 0
            && !superseded.contains(&self.incarnation)
        {
            superseded.push(self.incarnation);
            if superseded.len() > MAX_LINEAGE {
                let drop = superseded.len() - MAX_LINEAGE;
                superseded.drain(..drop);
            }
        }
        Some(ChildStore {
            store_id: id.store_id,
            incarnation: current.id,
            generation,
            superseded,
        })
    }

    /// A child's version as stored here.
    pub fn version(&self, child_version: u64) -> Option<u64> {
        (child_version < 1 << VERSION_BITS)
            .then_some(self.generation << VERSION_BITS | child_version)
    }
}

/// Whether what a parent holds of a child is still the child's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// Nothing recorded of this child yet (a new child, or a parent of an earlier version):
    /// what the parent holds is taken as the child's.
    Unknown,
    /// The child's store continues the history the parent holds.
    Continues,
    /// The child lost some of what the parent holds (why, in words).
    Diverged(String),
    /// The Hello is not the child's running process: it names an incarnation this parent saw
    /// superseded (why, in words). The link is refused and nothing held changes.
    Stale(String),
}

/// Positions a parent acked of a child: the change log up to `cells` (the highest of the
/// sweep's floor and position) and the ticket log up to `tickets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Change-log position.
    pub cells: u64,
    /// Ticket-log position.
    pub tickets: u64,
}

/// The rule (see the module comment). When the incarnation the parent took data from is
/// still the child's running one, the child's store is that same process's: nothing of it
/// was lost (a copy opened by another process starts an incarnation of its own, and so does
/// a restart after a crash, at what the crash left, which holds everything the child ever
/// sent, since it sends only what is flushed). The child's heads are not compared: a Hello
/// forwarded by a relay may be older than the batches that followed it.
pub fn continuity(known: Option<&ChildStore>, child: &StoreIdentity, acked: Acked) -> Continuity {
    let Some(known) = known else {
        return Continuity::Unknown;
    };
    if let Some(current) = child.current() {
        if known.store_id == child.store_id && known.superseded.contains(&current.id) {
            return Continuity::Stale(format!(
                "its Hello names incarnation {:016x} as running, which this node already saw \
                 replaced by {:016x}: a replayed Hello, or one a relay kept after the child \
                 left it; refused, and nothing held of the child changes",
                current.id, known.incarnation
            ));
        }
    }
    if known.store_id != child.store_id {
        return Continuity::Diverged(format!(
            "its store is another one (id {}): it was wiped or replaced",
            child.id_hex()
        ));
    }
    let Some(i) = child.lineage.iter().position(|i| i.id == known.incarnation) else {
        return Continuity::Diverged(format!(
            "its store no longer holds the incarnation {:016x} this node took data from: \
             it was restored from an older backup",
            known.incarnation
        ));
    };
    // Where the history of that incarnation ends in the child's store as it is now.
    let Some(next) = child.lineage.get(i + 1) else {
        return Continuity::Continues;
    };
    let end = Acked {
        cells: next.cell_start,
        tickets: next.ticket_start,
    };
    if acked.cells > end.cells {
        return Continuity::Diverged(format!(
            "this node holds its change log up to {}, its store's history goes to {} only: \
             it was restored from an older backup",
            acked.cells, end.cells
        ));
    }
    if acked.tickets > end.tickets {
        return Continuity::Diverged(format!(
            "this node holds its ticket log up to {}, its store's history goes to {} only: \
             it was restored from an older backup",
            acked.tickets, end.tickets
        ));
    }
    Continuity::Continues
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x} from change {} and ticket event {}",
            self.id, self.cell_start, self.ticket_start
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(id: u64, cell_start: u64, ticket_start: u64) -> Incarnation {
        Incarnation {
            id,
            cell_start,
            ticket_start,
        }
    }

    fn at(cells: u64, tickets: u64) -> Acked {
        Acked { cells, tickets }
    }

    fn store(lineage: &[Incarnation]) -> StoreIdentity {
        StoreIdentity {
            store_id: [7; 16],
            lineage: lineage.to_vec(),
        }
    }

    fn known(incarnation: u64) -> ChildStore {
        ChildStore {
            store_id: [7; 16],
            incarnation,
            generation: 1,
            superseded: Vec::new(),
        }
    }

    #[test]
    fn a_superseded_incarnation_is_stale_and_a_restored_copy_is_not() {
        // The parent took data from incarnations 2, then 3 (a restart).
        let at_2 = known(2);
        let at_3 = at_2.next(&store(&[inc(1, 0, 0), inc(2, 100, 5), inc(3, 200, 9)]), 1);
        let at_3 = at_3.expect("a running incarnation");
        assert_eq!((at_3.incarnation, at_3.superseded.clone()), (3, vec![2]));
        let acked = Acked {
            cells: 250,
            tickets: 9,
        };
        // A Hello of incarnation 2 again (a relay replaying what it kept): stale.
        let old = store(&[inc(1, 0, 0), inc(2, 100, 5)]);
        assert!(matches!(
            continuity(Some(&at_3), &old, acked),
            Continuity::Stale(_)
        ));
        // A copy restored from before incarnation 3 starts incarnation 4: diverged, not stale.
        let restored = store(&[inc(1, 0, 0), inc(2, 100, 5), inc(4, 180, 7)]);
        assert!(matches!(
            continuity(Some(&at_3), &restored, acked),
            Continuity::Diverged(_)
        ));
        // Another store starts the list over.
        let other = StoreIdentity {
            store_id: [8; 16],
            lineage: vec![inc(9, 0, 0)],
        };
        let next = at_3.next(&other, 2).expect("running");
        assert!(next.superseded.is_empty());
        // Stored and read back, with and without the list (a record of an earlier version).
        assert_eq!(ChildStore::decode(&at_3.encode()), Some(at_3.clone()));
        assert_eq!(ChildStore::decode(&at_3.encode()[..32]), Some(known(3)));
        assert_eq!(ChildStore::decode(&at_3.encode()[..36]), None);
    }

    #[test]
    fn a_restart_continues() {
        // Acked 150 in incarnation 2; the store restarted as 3 at 200.
        let s = store(&[inc(1, 0, 0), inc(2, 100, 5), inc(3, 200, 9)]);
        assert_eq!(
            continuity(Some(&known(2)), &s, at(150, 7)),
            Continuity::Continues
        );
        // Still running incarnation 2 (whatever heads a Hello showed).
        let s = store(&[inc(1, 0, 0), inc(2, 100, 5)]);
        assert_eq!(
            continuity(Some(&known(2)), &s, at(150, 7)),
            Continuity::Continues
        );
    }

    #[test]
    fn a_copy_taken_before_what_was_acked_diverges() {
        // Acked 150 in incarnation 2; a copy taken at 120 during 2 was restored (and has
        // since written past 150 in its own incarnation 9).
        let s = store(&[inc(1, 0, 0), inc(2, 100, 5), inc(9, 120, 5)]);
        let c = continuity(Some(&known(2)), &s, at(150, 5));
        assert!(
            matches!(c, Continuity::Diverged(ref why) if why.contains("older backup")),
            "{c:?}"
        );
        // The ticket log alone can show it too.
        let c = continuity(Some(&known(2)), &s, at(110, 8));
        assert!(
            matches!(c, Continuity::Diverged(ref why) if why.contains("ticket log")),
            "{c:?}"
        );
        // A copy taken during an incarnation the parent never saw the end of, then the
        // original restarted: the parent's incarnation is not in the copy's lineage.
        let s = store(&[inc(1, 0, 0), inc(9, 50, 0)]);
        let c = continuity(Some(&known(2)), &s, at(150, 5));
        assert!(
            matches!(c, Continuity::Diverged(ref why) if why.contains("incarnation")),
            "{c:?}"
        );
    }

    #[test]
    fn a_copy_taken_after_what_was_acked_continues() {
        let s = store(&[inc(1, 0, 0), inc(2, 100, 5), inc(9, 180, 6)]);
        assert_eq!(
            continuity(Some(&known(2)), &s, at(150, 6)),
            Continuity::Continues
        );
    }

    #[test]
    fn a_wiped_store_diverges_and_an_unknown_child_is_taken_as_it_is() {
        let mut s = store(&[inc(1, 0, 0)]);
        s.store_id = [8; 16];
        let c = continuity(Some(&known(1)), &s, at(0, 0));
        assert!(
            matches!(c, Continuity::Diverged(ref why) if why.contains("wiped")),
            "{c:?}"
        );
        assert_eq!(continuity(None, &s, at(10, 0)), Continuity::Unknown);
    }

    #[test]
    fn identities_round_trip_and_the_lineage_is_capped() {
        let mut s = StoreIdentity::new([3; 16]);
        for i in 0..(MAX_LINEAGE as u64 + 5) {
            s.start(inc(i, i * 10, i));
        }
        assert_eq!(s.lineage.len(), MAX_LINEAGE);
        assert_eq!(s.lineage[0].id, 5);
        assert_eq!(StoreIdentity::decode(&s.encode()), Ok(s.clone()));
        assert!(StoreIdentity::decode(&s.encode()[..20]).is_err());
        let k = ChildStore {
            store_id: [1; 16],
            incarnation: 42,
            generation: 3,
            superseded: vec![40, 41],
        };
        assert_eq!(ChildStore::decode(&k.encode()), Some(k.clone()));
        assert_eq!(k.version(5), Some(3 << 40 | 5));
        assert_eq!(k.version(1 << 40), None);
    }
}
