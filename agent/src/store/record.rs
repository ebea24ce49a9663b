//! One record on disk, AES-256-GCM under one generation of the store key.
//!
//! - Format 2 (every store key generation from 1 on):
//!   `2 ‖ generation(u32 be) ‖ version(u64 be) ‖ nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)`, associated data
//!   `DOMAIN_V2 ‖ generation(u32 be) ‖ u32 be key length ‖ key ‖ version(u64 be)`.
//! - Format 1 (generation 0: stores made before store-key rotation existed; read, and written while generation 0 is
//!   still the active key): `1 ‖ version(u64 be) ‖ nonce(12) ‖ ct`, associated data
//!   `DOMAIN_V1 ‖ u32 be key length ‖ key ‖ version(u64 be)`.
//!
//! A record copied under another key, an older copy put back under its own key with another version, or a record
//! whose generation byte was changed fails to open (or is caught by the caller's version check).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use tessera_proto::secret::SecretBytes;
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const DOMAIN_V1: &[u8] = b"tessera/store-record/v1\0";
const DOMAIN_V2: &[u8] = b"tessera/store-record/v2\0";
const NONCE: usize = 12;
const TAG: usize = 16;

/// Why a record did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordFault {
    /// Too short, or an unknown format byte.
    Malformed,
    /// The tag did not verify: wrong store key, altered bytes or a record moved from another key.
    Authentication,
    /// Encrypted under a store key generation that is not loaded (retired, or from another store).
    UnknownGeneration(u32),
}

/// A record's parsed header.
struct Header<'a> {
    generation: u32,
    version: u64,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(record: &[u8]) -> Result<Header<'_>, RecordFault> {
    let (format, rest) = record.split_first().ok_or(RecordFault::Malformed)?;
    let (generation, rest) = match *format {
        FORMAT_V1 => (0, rest),
        FORMAT_V2 => {
            let (g, rest) = rest
                .split_first_chunk::<4>()
                .ok_or(RecordFault::Malformed)?;
            let generation = u32::from_be_bytes(*g);
            // Generation 0 is format 1 only: one generation, one encoding.
            if generation == 0 {
                return Err(RecordFault::Malformed);
            }
            (generation, rest)
        }
        _ => return Err(RecordFault::Malformed),
    };
    let (v, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(RecordFault::Malformed)?;
    if rest.len() < NONCE + TAG {
        return Err(RecordFault::Malformed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE);
    Ok(Header {
        generation,
        version: u64::from_be_bytes(*v),
        nonce,
        ciphertext,
    })
}

/// The store key generation a record was encrypted under (`None` if it is not a record).
pub(crate) fn generation_of(record: &[u8]) -> Option<u32> {
    parse(record).ok().map(|h| h.generation)
}

/// Encrypts and decrypts records under one generation of the store key.
pub(crate) struct RecordCipher {
    generation: u32,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordCipher(generation {}, [REDACTED])",
            self.generation
        )
    }
}

fn aad(generation: u32, key: &[u8], version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN_V2.len() + 4 + 4 + key.len() + 8);
    if generation == 0 {
        aad.extend_from_slice(DOMAIN_V1);
    } else {
        aad.extend_from_slice(DOMAIN_V2);
        aad.extend_from_slice(&generation.to_be_bytes());
    }
    aad.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(key);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl RecordCipher {
    /// `None` unless the key is 32 bytes.
    pub(crate) fn new(generation: u32, store_key: &SecretBytes) -> Option<Self> {
        store_key.expose(|k| {
            (k.len() == 32).then(|| Self {
                generation,
                cipher: Aes256Gcm::new(k.into()),
            })
        })
    }

    /// The store key generation.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// Fails only if AES-GCM refuses the length (over 64 GiB), which bounded records never reach.
    pub(crate) fn seal(&self, key: &[u8], version: u64, plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE];
        OsRng.fill_bytes(&mut nonce);
        let aad = aad(self.generation, key, version);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(1 + 4 + 8 + NONCE + ct.len());
        if self.generation == 0 {
            out.push(FORMAT_V1);
        } else {
            out.push(FORMAT_V2);
            out.extend_from_slice(&self.generation.to_be_bytes());
        }
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Some(out)
    }

    /// Opens a record stored under `key`, returning its version and plaintext. A record of another generation is
    /// [`RecordFault::UnknownGeneration`].
    pub(crate) fn open(
        &self,
        key: &[u8],
        record: &[u8],
    ) -> Result<(u64, Zeroizing<Vec<u8>>), RecordFault> {
        let h = parse(record)?;
        if h.generation != self.generation {
            return Err(RecordFault::UnknownGeneration(h.generation));
        }
        let aad = aad(h.generation, key, h.version);
        self.cipher
            .decrypt(
                Nonce::from_slice(h.nonce),
                Payload {
                    msg: h.ciphertext,
                    aad: &aad,
                },
            )
            .map(|pt| (h.version, Zeroizing::new(pt)))
            .map_err(|_| RecordFault::Authentication)
    }
}

#[cfg(test)]
mod tests;
