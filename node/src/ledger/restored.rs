//! Store identity (`lineage.rs`) in the ledger: this store's own identity and incarnation,
//! and what a parent does with a child whose store was wiped or restored from an older
//! backup — it replaces everything it holds of that child with what the child now holds.
//!
//! The replacement is one atomic, flushed commit at the parent when the child's link opens:
//! every cell of the child's subtree held here becomes 0 (a tombstone, with the lowest
//! version of the child's next **generation**, so every value the child now sends outranks
//! it, and this node's own cells move by the difference); the child's sweep position and
//! both ticket cursors go back to 0 (it resends everything; what is held already is a
//! duplicate and changes nothing), and the events the child created that this node holds go
//! back down to it. Its `Welcome` tells the child the highest event counter and Lamport time
//! held here, so it never reuses an event id.

use super::*;
use crate::lineage::{self, Acked, ChildStore, Continuity, Incarnation, StoreIdentity};

const CHILD_STORE_PREFIX: &[u8] = b"child_store/";

fn child_store_key(child: Code) -> Vec<u8> {
    let mut k = CHILD_STORE_PREFIX.to_vec();
    k.extend_from_slice(&child.key());
    k
}

/// What [`Ledger::child_linked`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildLinked {
    /// The child's store continues what this node holds (or nothing was known of it).
    Continues,
    /// What this node held of the child was replaced (why, in words).
    Replaced(String),
    /// The Hello is a stale one (a superseded incarnation of the child's store): the link is
    /// refused, nothing changed (why, in words).
    Stale(String),
}

impl Ledger {
    /// Start this process's incarnation of the store (creating the store's id the first
    /// time), durably, before anything is served.
    pub(super) fn start_incarnation(&self) -> Result<StoreIdentity> {
        let mut id = match self.store.get(TreeId::Meta, META_STORE_IDENTITY)? {
            Some(v) => StoreIdentity::decode(&v).map_err(|e| LedgerError::Corrupt {
                what: "store identity",
                detail: e,
            })?,
            None => StoreIdentity::new(rand::random()),
        };
        id.start(Incarnation {
            id: rand::random(),
            cell_start: self.cell_seq()?,
            ticket_start: self.stored_ticket_head()?,
        });
        let mut ws = WriteSet::new();
        ws.put(TreeId::Meta, META_STORE_IDENTITY, id.encode());
        self.store.commit(ws)?;
        self.store.flush()?;
        Ok(id)
    }

    /// This store's identity and lineage (its last incarnation is this process's).
    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// What this node recorded of child `child`'s store.
    pub fn child_store(&self, child: Code) -> Result<Option<ChildStore>> {
        Ok(self
            .store
            .get(TreeId::Meta, &child_store_key(child))?
            .and_then(|v| ChildStore::decode(&v)))
    }

    /// The generation of `child`'s cells here (1 until its store is first replaced).
    pub(super) fn child_generation(&self, child: Code) -> Result<ChildStore> {
        Ok(self.child_store(child)?.unwrap_or(ChildStore {
            store_id: [0; 16],
            incarnation: 0,
            generation: 1,
            superseded: Vec::new(),
        }))
    }

    /// A link of `child` opened with its store identity `id` (`None` from software that
    /// sends none: nothing is checked): decide whether what this node holds
    /// of it is still its history, record its incarnation, and replace what this node holds
    /// of it when it is not (see the module comment). Durable before it returns.
    pub fn child_linked(&self, child: Code, id: Option<&StoreIdentity>) -> Result<ChildLinked> {
        let Some(id) = id else {
            return Ok(ChildLinked::Continues);
        };
        let Some(current) = id.current() else {
            return Ok(ChildLinked::Continues);
        };
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let known = self.child_store(child)?;
        let (floor, pos) = self.child_resume(child)?;
        let acked = Acked {
            cells: floor.max(pos),
            tickets: self.ticket_up_acked(child)?,
        };
        let mut record = match &known {
            Some(k) => k.next(id, k.generation),
            None => ChildStore::default().next(id, 1),
        }
        .unwrap_or(ChildStore {
            store_id: id.store_id,
            incarnation: current.id,
            generation: 1,
            superseded: Vec::new(),
        });
        let why = match lineage::continuity(known.as_ref(), id, acked) {
            Continuity::Stale(why) => {
                tracing::warn!(%child, reason = %why, "stale Hello refused");
                return Ok(ChildLinked::Stale(why));
            }
            Continuity::Unknown | Continuity::Continues => {
                if known.as_ref() != Some(&record) {
                    let mut ws = WriteSet::new();
                    ws.put(TreeId::Meta, child_store_key(child), record.encode());
                    self.store.commit(ws)?;
                    self.store.flush()?;
                }
                return Ok(ChildLinked::Continues);
            }
            Continuity::Diverged(why) => why,
        };
        record.generation += 1;
        let tombstone = record.generation << lineage::VERSION_BITS;
        let (start, end) = child.subtree_range();
        let mut zeros: Vec<Replica> = self
            .scan_cells(self.store.range(TreeId::Cells, &start, &end))?
            .into_iter()
            .map(|(key, _)| Replica {
                key,
                value: 0,
                version: tombstone,
            })
            .collect();
        let mut ws = WriteSet::new();
        let mut seq = self.cell_seq()?;
        let mut log = crate::cells::LogWriter::new(&self.store);
        self.stage_child_cells(child, &mut zeros, &mut seq, &mut ws, &mut log)?;
        log.stage(&mut ws);
        ws.put(TreeId::Meta, META_CELL_SEQ, seq.to_be_bytes().to_vec());
        self.stage_child_position(child, (0, 0), &mut ws);
        self.stage_ticket_reset(child, &mut ws);
        ws.put(TreeId::Meta, child_store_key(child), record.encode());
        self.commit_then_flush(w, ws)?;
        tracing::warn!(
            %child,
            cells_cleared = zeros.len(),
            generation = record.generation,
            held_cells_to = acked.cells,
            held_tickets_to = acked.tickets,
            reason = %why,
            "child store replaced: what this node held of it is replaced by what it holds now"
        );
        Ok(ChildLinked::Replaced(why))
    }
}
