//! A bounded memory of recent keys (the verifier's certificates and seal roots).

use std::collections::HashMap;
use std::hash::Hash;

/// Remembers the last `cap` to `2 × cap` entries inserted, in two generations: when the newer
/// fills, the older is dropped with its table and the newer takes its place; a hit in the older
/// moves the entry to the newer. So its memory is at most two tables of `cap` entries, and a
/// set cleared in place (which keeps its largest table) never stays behind: a province's set
/// of every seal root it had checked grew to 64 Ki entries (4–8 MiB) over a soak.
#[derive(Debug)]
pub struct Recent<K, V> {
    cap: usize,
    new: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    /// An empty memory of `cap` entries per generation (at least 1).
    pub fn new(cap: usize) -> Self {
        Recent {
            cap: cap.max(1),
            new: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// The value of `k` if remembered.
    pub fn get(&mut self, k: &K) -> Option<V> {
        if let Some(v) = self.new.get(k) {
            return Some(v.clone());
        }
        let (k, v) = self.old.remove_entry(k)?;
        self.insert(k, v.clone());
        Some(v)
    }

    /// Remember `k` with `v`.
    pub fn insert(&mut self, k: K, v: V) {
        if self.new.len() >= self.cap && !self.new.contains_key(&k) {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_between_cap_and_twice_cap_of_the_latest() {
        let mut r = Recent::new(4);
        for i in 0..100u32 {
            r.insert(i, i * 10);
            assert!(
                (r.new.len() + r.old.len()) <= 8,
                "{} entries after {i}",
                (r.new.len() + r.old.len())
            );
        }
        // The newest four are always there; the oldest are gone.
        for i in 96..100 {
            assert_eq!(r.get(&i), Some(i * 10));
        }
        assert_eq!(r.get(&0), None);
        assert_eq!(r.get(&50), None);
        assert!((r.new.len() + r.old.len()) >= 4);
    }

    #[test]
    fn a_hit_in_the_older_generation_survives_the_next_turn() {
        let mut r = Recent::new(2);
        r.insert(1, ());
        r.insert(2, ());
        r.insert(3, ()); // 1 and 2 now older
        assert_eq!(r.get(&1), Some(())); // moved to the newer: {3, 1}
        r.insert(4, ()); // newer full: older = {3, 1}, newer = {4}
        r.insert(5, ());
        assert_eq!(r.get(&1), Some(()));
        assert_eq!(r.get(&2), None);
    }

    #[test]
    fn its_tables_are_dropped_not_kept() {
        let mut r = Recent::new(16);
        for i in 0..10_000u32 {
            r.insert(i, ());
        }
        // Two generations of at most 16 entries: no table sized for the 10 000 seen.
        assert!(r.new.capacity() < 64 && r.old.capacity() < 64);
    }
}
