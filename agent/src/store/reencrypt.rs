//! The store's half of a store-key rotation: loading the next generation, re-encrypting records in bounded
//! batches while the store keeps serving, and dropping the retiring generation once no record needs it. The
//! sealed keys, their manifest and the order of the steps are [`crate::store_key`]'s.

use tessera_proto::secret::SecretBytes;

use super::backend::BatchOp;
use super::record::RecordCipher;
use super::{fault, Store, StoreError};

/// What one [`Store::reencrypt_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reencrypted {
    /// Records moved to the active generation by this batch.
    pub rewritten: usize,
    /// Whether the pass reached the last record: nothing is left under the retiring generation (every write since
    /// the rotation began is under the active one).
    pub done: bool,
}

impl Store {
    /// The active store key generation and, during a rotation, the retiring one.
    pub fn key_generations(&self) -> Result<(u32, Option<u32>), StoreError> {
        let keys = self.keyring()?;
        Ok((keys.active_generation(), keys.retiring_generation()))
    }

    /// Makes `key` (generation `generation`) the active store key and keeps the current one decrypt-only. Every
    /// write from here on is under the new generation. Refused while another rotation is under way, and for a
    /// generation that does not follow the active one.
    pub fn begin_key_generation(
        &self,
        generation: u32,
        key: &SecretBytes,
    ) -> Result<(), StoreError> {
        let next = RecordCipher::new(generation, key)
            .ok_or(StoreError::Internal("store key must be 32 bytes"))?;
        let _serial = self
            .inner
            .commit
            .lock()
            .map_err(|_| StoreError::Internal("store commit lock poisoned"))?;
        *self
            .inner
            .reencrypt_cursor
            .lock()
            .map_err(|_| StoreError::Internal("re-encryption cursor poisoned"))? = None;
        self.inner
            .keys
            .write()
            .map_err(|_| StoreError::Internal("store keys poisoned"))?
            .begin(next)
            .ok_or(StoreError::Internal(
                "a store-key rotation is already under way, or the generation does not follow the active one",
            ))
    }

    /// Re-encrypts the next (at most `max`) records still under the retiring generation, in one atomic batch,
    /// flushed. One pass over the keys in order, resumed where the last batch stopped (from the start after the
    /// store is opened again), so a rotation reads each record about once. Holds the commit lock for the batch
    /// (reads go on; writes wait for one batch at most).
    pub fn reencrypt_batch(&self, max: usize) -> Result<Reencrypted, StoreError> {
        let _serial = self
            .inner
            .commit
            .lock()
            .map_err(|_| StoreError::Internal("store commit lock poisoned"))?;
        let mut cursor = self
            .inner
            .reencrypt_cursor
            .lock()
            .map_err(|_| StoreError::Internal("re-encryption cursor poisoned"))?;
        let keys = self.keyring()?;
        let mut ops: Vec<BatchOp> = Vec::new();
        let mut failed = None;
        let mut last: Option<Vec<u8>> = None;
        let mut done = true;
        self.inner
            .backend
            .visit_after(cursor.as_deref(), &mut |key, rec| {
                if ops.len() >= max.max(1) {
                    done = false;
                    return false;
                }
                if keys.is_stale(rec) {
                    match keys.reseal(key, rec) {
                        Ok(fresh) => ops.push((key.to_vec(), Some(fresh))),
                        Err(f) => {
                            failed = Some(fault(key, f));
                            return false;
                        }
                    }
                }
                last = Some(key.to_vec());
                true
            })?;
        drop(keys);
        if let Some(e) = failed {
            return Err(e);
        }
        let rewritten = ops.len();
        if rewritten > 0 {
            self.inner.backend.apply(ops)?;
            self.inner.backend.flush()?;
        }
        if last.is_some() {
            *cursor = last;
        }
        Ok(Reencrypted { rewritten, done })
    }

    /// How many records are still under another generation than the active one (a full scan: for status and
    /// tests, not for the rotation's loop).
    pub fn stale_records(&self) -> Result<usize, StoreError> {
        let keys = self.keyring()?;
        Ok(self
            .inner
            .backend
            .scan_prefix(b"")?
            .iter()
            .filter(|(_, rec)| keys.is_stale(rec))
            .count())
    }

    /// Drops the retiring generation once no record is under it (checked under the commit lock, after a flush).
    /// Fails, keeping it loaded, if a record still needs it. Reads go on during the check: the commit lock alone keeps
    /// a stale record from appearing until the key is dropped.
    pub fn finish_key_generation(&self) -> Result<(), StoreError> {
        let _serial = self
            .inner
            .commit
            .lock()
            .map_err(|_| StoreError::Internal("store commit lock poisoned"))?;
        {
            let keys = self.keyring()?;
            for (key, rec) in self.inner.backend.scan_prefix(b"")? {
                if keys.is_stale(&rec) {
                    // Start the pass over: nothing should have been missed, but nothing may be left behind.
                    if let Ok(mut cursor) = self.inner.reencrypt_cursor.lock() {
                        *cursor = None;
                    }
                    return Err(StoreError::Corrupt {
                        record: super::record_name(&key),
                        reason: "still under the retiring store key generation",
                    });
                }
            }
        }
        self.inner.backend.flush()?;
        self.inner
            .keys
            .write()
            .map_err(|_| StoreError::Internal("store keys poisoned"))?
            .finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
