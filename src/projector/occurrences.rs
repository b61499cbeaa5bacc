//! Where each dedup key's walk over its occurrences may start (see
//! `app::engine`): the last occurrence known of the key and the highest
//! report sequence recorded on the occurrences before it. A report above
//! that sequence cannot be recorded on them, so its walk starts at the
//! hint instead of at occurrence 1, and a key that flaps costs the same per
//! report on its thousandth occurrence as on its second.
//!
//! A hint names an occurrence the projection holds; when that occurrence is
//! evicted the hint goes with it (memory stays bounded by what is held), and
//! the key's next walk starts at 1 again, reading the log.

use std::collections::HashMap;

use uuid::Uuid;

/// The last occurrence known of a dedup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// Its number (1: the first).
    pub n: u32,
    /// Its id (`domain::occurrence_id(template, key, n)`).
    pub id: Uuid,
    /// The highest `BATON_REPORTS` sequence recorded on occurrences
    /// 1 … n-1 (0: none).
    pub before: u64,
}

/// Hints by the key's first occurrence id, and that id by the hinted
/// occurrence's, so an eviction finds the hint to drop.
#[derive(Debug, Default)]
pub struct Hints {
    by_key: HashMap<Uuid, Hint, foldhash::fast::RandomState>,
    key_of: HashMap<Uuid, Uuid, foldhash::fast::RandomState>,
}

impl Hints {
    /// The hint for the key whose first occurrence is `first`.
    pub fn get(&self, first: Uuid) -> Option<Hint> {
        self.by_key.get(&first).copied()
    }

    /// Notes `hint` for the key whose first occurrence is `first`, unless
    /// a later occurrence is noted already.
    pub fn note(&mut self, first: Uuid, hint: Hint) {
        if let Some(old) = self.by_key.get(&first) {
            if old.n > hint.n {
                return;
            }
            self.key_of.remove(&old.id);
        }
        self.by_key.insert(first, hint);
        self.key_of.insert(hint.id, first);
    }

    /// Drops the hint that names occurrence `id`, if one does.
    pub fn forget(&mut self, id: Uuid) {
        if let Some(first) = self.key_of.remove(&id) {
            self.by_key.remove(&first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(n: u32, before: u64) -> Hint {
        Hint {
            n,
            id: Uuid::now_v7(),
            before,
        }
    }

    #[test]
    fn a_later_occurrence_replaces_the_hint_and_an_earlier_one_does_not() {
        let mut h = Hints::default();
        let first = Uuid::now_v7();
        let (two, three) = (hint(2, 5), hint(3, 9));
        h.note(first, two);
        h.note(first, three);
        assert_eq!(h.get(first), Some(three));
        h.note(first, two);
        assert_eq!(h.get(first), Some(three), "a stale walk does not go back");
        // The replaced occurrence's eviction leaves the current hint alone.
        h.forget(two.id);
        assert_eq!(h.get(first), Some(three));
        assert_eq!(h.by_key.len(), 1);
    }

    #[test]
    fn evicting_the_hinted_occurrence_drops_the_hint() {
        let mut h = Hints::default();
        let (k1, k2) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b) = (hint(1, 0), hint(4, 7));
        h.note(k1, a);
        h.note(k2, b);
        h.forget(b.id);
        assert_eq!(h.get(k2), None);
        assert_eq!(h.get(k1), Some(a));
        h.forget(a.id);
        assert!(h.by_key.is_empty());
        assert!(h.key_of.is_empty(), "nothing left behind");
    }
}
