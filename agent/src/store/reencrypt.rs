//! The store's half of a store-key rotation: confirming the next key under the current one, loading it,
//! re-encrypting records in bounded batches while the store keeps serving, and dropping the retiring generation once
//! no record needs it. The
//! sealed keys, their manifest and the order of the steps are [`crate::store_key`]'s.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_proto::secret::SecretBytes;

use super::backend::BatchOp;
use super::record::{generation_of, RecordCipher};
use super::{fault, Store, StoreError};

/// The confirmation of a rotation's next key, written under the key it replaces before anything else: only the
/// holder of the current store key can make it, so a manifest naming a next key the store never confirmed (an
/// altered `store-keys.json`) is found out at open. Not re-encrypted; removed when the rotation finishes.
const NEXT_KEY: &[u8] = b"meta/next_store_key";
const NEXT_KEY_DOMAIN: &[u8] = b"tessera/next-store-key/v1\0";

/// `generation ‖ HMAC-SHA256(key, DOMAIN ‖ generation)`.
fn next_key_value(generation: u32, key: &SecretBytes) -> Result<Vec<u8>, StoreError> {
    let mut mac = key
        .expose(<Hmac<Sha256> as Mac>::new_from_slice)
        .map_err(|_| StoreError::Internal("store key must be 32 bytes"))?;
    mac.update(NEXT_KEY_DOMAIN);
    mac.update(&generation.to_be_bytes());
    let mut value = generation.to_be_bytes().to_vec();
    value.extend_from_slice(&mac.finalize().into_bytes());
    Ok(value)
}

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

    /// Writes, under the current store key and flushed, the confirmation that `key` is to be generation
    /// `generation`: the first step of a rotation, before the manifest names the new key.
    pub fn confirm_next_generation(
        &self,
        generation: u32,
        key: &SecretBytes,
    ) -> Result<(), StoreError> {
        let value = next_key_value(generation, key)?;
        let _serial = self.serialized()?;
        let keys = self.keyring()?;
        if keys.retiring_generation().is_some() {
            return Err(StoreError::Internal(
                "a store-key rotation is already under way",
            ));
        }
        let rec = keys
            .seal(NEXT_KEY, 0, &value)
            .ok_or(StoreError::Internal("seal the next-key confirmation"))?;
        drop(keys);
        self.inner
            .backend
            .apply(vec![(NEXT_KEY.to_vec(), Some(rec))])?;
        self.inner.backend.flush()?;
        Ok(())
    }

    /// Whether the loaded rotation's active key is the one the store confirmed under the retiring key
    /// ([`Store::confirm_next_generation`]). `false` without a rotation loaded, without a confirmation, or with one
    /// for another key or generation.
    pub fn next_generation_confirmed(&self, key: &SecretBytes) -> Result<bool, StoreError> {
        let keys = self.keyring()?;
        let Some(retiring) = keys.retiring() else {
            return Ok(false);
        };
        let Some(rec) = self.inner.backend.get(NEXT_KEY)? else {
            return Ok(false);
        };
        if generation_of(&rec) != Some(retiring.generation()) {
            return Ok(false);
        }
        let Ok((_, stored)) = retiring.open(NEXT_KEY, &rec) else {
            return Ok(false);
        };
        let expected = next_key_value(keys.active_generation(), key)?;
        Ok(subtle::ConstantTimeEq::ct_eq(stored.as_slice(), expected.as_slice()).into())
    }

    /// Deletes the confirmation of a finished rotation's key. Only once the manifest no longer says `reencrypting`:
    /// until then a restart looks for it, and without it would take the rotation for one never confirmed.
    pub fn forget_next_generation(&self) -> Result<(), StoreError> {
        self.commit_durable(vec![(NEXT_KEY.to_vec(), None)])
    }

    /// Drops a loaded rotation the store never confirmed, going back to the retiring key alone (nothing was
    /// written under the other: the confirmation comes first).
    pub fn abandon_key_generation(&self) -> Result<(), StoreError> {
        let _serial = self.serialized()?;
        self.keyring_mut()?
            .abandon()
            .ok_or(StoreError::Internal("no store-key rotation to abandon"))
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
        let _serial = self.serialized()?;
        *self
            .inner
            .reencrypt_cursor
            .lock()
            .map_err(|_| StoreError::Internal("re-encryption cursor poisoned"))? = None;
        self.keyring_mut()?
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
        let _serial = self.serialized()?;
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
                if key != NEXT_KEY && keys.is_stale(rec) {
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
            .filter(|(key, rec)| key != NEXT_KEY && keys.is_stale(rec))
            .count())
    }

    /// Drops the retiring generation once no record is under it (checked under the commit lock, after a flush).
    /// Fails, keeping it loaded, if a record still needs it. Reads go on during the check: the commit lock alone keeps
    /// a stale record from appearing until the key is dropped.
    pub fn finish_key_generation(&self) -> Result<(), StoreError> {
        let _serial = self.serialized()?;
        {
            let keys = self.keyring()?;
            for (key, rec) in self.inner.backend.scan_prefix(b"")? {
                if key != NEXT_KEY && keys.is_stale(&rec) {
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
        self.keyring_mut()?.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
