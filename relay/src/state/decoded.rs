//! Decoded records kept in memory, so the rewrap path does not parse the same JSON (certificates, signed
//! statements) at every step. Coherent because every batch this relay applies updates it and nobody else writes
//! meanwhile: sled holds the directory's lock; on PostgreSQL only the event holding the write turn reads through
//! it, and a turn that finds another relay wrote empties it. A poisoned lock only skips the cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use super::StateResult;

/// The cache of one record type, emptied when it would grow past its bound.
pub(super) struct Decoded<K, V>(Mutex<HashMap<K, V>>, usize);

impl<K: Eq + Hash + Clone, V: Clone> Decoded<K, V> {
    /// Unbounded (a record type bounded by the fleet's size: agents, credentials).
    pub(super) fn new() -> Self {
        Self::bounded(usize::MAX)
    }

    /// At most `cap` records.
    pub(super) fn bounded(cap: usize) -> Self {
        Self(Mutex::new(HashMap::new()), cap)
    }

    fn insert(&self, m: &mut HashMap<K, V>, key: &K, v: &V) {
        if m.len() >= self.1 && !m.contains_key(key) {
            m.clear();
        }
        m.insert(key.clone(), v.clone());
    }

    /// Forgets everything (after a write whose outcome is unknown).
    pub(super) fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    /// Forgets a removed record.
    pub(super) fn remove(&self, key: &K) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }

    pub(super) fn get_or(
        &self,
        key: &K,
        load: impl FnOnce() -> StateResult<Option<V>>,
    ) -> StateResult<Option<V>> {
        if let Some(v) = self.0.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(v));
        }
        let v = load()?;
        if let (Some(v), Ok(mut m)) = (&v, self.0.lock()) {
            self.insert(&mut m, key, v);
        }
        Ok(v)
    }

    pub(super) fn set(&self, key: &K, v: &V) {
        if let Ok(mut m) = self.0.lock() {
            self.insert(&mut m, key, v);
        }
    }
}

impl<K, V> std::fmt::Debug for Decoded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded")
    }
}
