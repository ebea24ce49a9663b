//! A secondary index kept in memory and rebuilt from the primary records when the store opens: which keys belong
//! to an agent (its delivery rows, the rewraps in flight to it).
//!
//! Why not a second copy of each record on disk: keeping two keys consistent in sled takes a write batch, and sled
//! seals and writes its current log buffer on every batch (`pin_log`), a write system call and a wake-up of its I/O
//! threads per record change. A single-key insert is atomic on its own and stays in the log buffer until the
//! periodic flush. A lock poisoned by a panic elsewhere reads as empty and is written through.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// Owner → the set of its keys.
pub(super) struct Index<O, K>(Mutex<HashMap<O, BTreeSet<K>>>);

impl<O: Eq + Hash + Clone, K: Ord + Clone> Index<O, K> {
    /// Built from (owner, key) pairs.
    pub(super) fn from_pairs(pairs: impl IntoIterator<Item = (O, K)>) -> Self {
        let mut m: HashMap<O, BTreeSet<K>> = HashMap::new();
        for (o, k) in pairs {
            m.entry(o).or_default().insert(k);
        }
        Self(Mutex::new(m))
    }

    /// Records that `key` belongs to `owner`.
    pub(super) fn add(&self, owner: &O, key: K) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.entry(owner.clone()).or_default().insert(key);
    }

    /// Forgets `key` of `owner`.
    pub(super) fn remove(&self, owner: &O, key: &K) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = m.get_mut(owner) {
            set.remove(key);
            if set.is_empty() {
                m.remove(owner);
            }
        }
    }

    /// The keys of `owner`, in order.
    pub(super) fn keys_of(&self, owner: &O) -> Vec<K> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(owner)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl<O, K> std::fmt::Debug for Index<O, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Index")
    }
}

#[cfg(test)]
mod tests;
