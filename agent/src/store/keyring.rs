//! The store key generations loaded: the active one, which every write uses, and during a store-key rotation the
//! retiring one, kept decrypt-only until every record has been re-encrypted (docs/operations.md, "Rotating the
//! store key").

use tessera_proto::secret::SecretBytes;
use zeroize::Zeroizing;

use super::record::{generation_of, RecordCipher, RecordFault};

/// The store keys to open a store with: the active generation and, during a rotation, the retiring one.
#[derive(Debug)]
pub struct StoreKeys {
    /// The generation every write uses.
    pub active: (u32, SecretBytes),
    /// The generation being retired (decrypt only), if a rotation is under way.
    pub retiring: Option<(u32, SecretBytes)>,
}

impl StoreKeys {
    /// One generation.
    pub fn single(generation: u32, key: SecretBytes) -> Self {
        Self {
            active: (generation, key),
            retiring: None,
        }
    }
}

/// The loaded ciphers.
#[derive(Debug)]
pub(crate) struct Keyring {
    active: RecordCipher,
    retiring: Option<RecordCipher>,
}

impl Keyring {
    /// `None` if a key is not 32 bytes or both generations are the same.
    pub(crate) fn new(keys: &StoreKeys) -> Option<Self> {
        let active = RecordCipher::new(keys.active.0, &keys.active.1)?;
        let retiring = match &keys.retiring {
            Some((g, _)) if *g == keys.active.0 => return None,
            Some((g, k)) => Some(RecordCipher::new(*g, k)?),
            None => None,
        };
        Some(Self { active, retiring })
    }

    pub(crate) fn active_generation(&self) -> u32 {
        self.active.generation()
    }

    pub(crate) fn retiring_generation(&self) -> Option<u32> {
        self.retiring.as_ref().map(RecordCipher::generation)
    }

    /// Seals under the active generation.
    pub(crate) fn seal(&self, key: &[u8], version: u64, plaintext: &[u8]) -> Option<Vec<u8>> {
        self.active.seal(key, version, plaintext)
    }

    /// Opens a record under whichever loaded generation it names.
    pub(crate) fn open(
        &self,
        key: &[u8],
        record: &[u8],
    ) -> Result<(u64, Zeroizing<Vec<u8>>), RecordFault> {
        match self.active.open(key, record) {
            Err(RecordFault::UnknownGeneration(g)) => match &self.retiring {
                Some(r) if r.generation() == g => r.open(key, record),
                _ => Err(RecordFault::UnknownGeneration(g)),
            },
            other => other,
        }
    }

    /// Whether `record` is not under the active generation (and must be re-encrypted before the retiring key goes).
    pub(crate) fn is_stale(&self, record: &[u8]) -> bool {
        generation_of(record) != Some(self.active.generation())
    }

    /// The same record (key, version, plaintext) under the active generation.
    pub(crate) fn reseal(&self, key: &[u8], record: &[u8]) -> Result<Vec<u8>, RecordFault> {
        let (version, plain) = self.open(key, record)?;
        self.seal(key, version, &plain)
            .ok_or(RecordFault::Malformed)
    }

    /// Starts retiring the active generation: `next` becomes active. `None` if a rotation is already under way or
    /// `next` does not follow the active generation.
    pub(crate) fn begin(&mut self, next: RecordCipher) -> Option<()> {
        if self.retiring.is_some() || next.generation() <= self.active.generation() {
            return None;
        }
        let old = std::mem::replace(&mut self.active, next);
        self.retiring = Some(old);
        Some(())
    }

    /// Drops the retiring generation (every record is under the active one).
    pub(crate) fn finish(&mut self) {
        self.retiring = None;
    }

    /// Goes back to the retiring generation alone (a rotation the store never confirmed: see
    /// [`super::Store::abandon_key_generation`]). `None` if no rotation is loaded.
    pub(crate) fn abandon(&mut self) -> Option<()> {
        let retiring = self.retiring.take()?;
        self.active = retiring;
        Some(())
    }

    /// The cipher of the retiring generation, if a rotation is loaded.
    pub(crate) fn retiring(&self) -> Option<&RecordCipher> {
        self.retiring.as_ref()
    }
}

#[cfg(test)]
mod tests;
