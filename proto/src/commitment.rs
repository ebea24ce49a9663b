//! The creator's commitment to a credential's plaintext.
//!
//! `commitment = HMAC-SHA-256(key = salt, msg = DOMAIN_TAG ‖ u16be(len(id)) ‖ id ‖ u64be(version) ‖ plaintext)`,
//! where `salt` is 32 random bytes chosen by the creator, `id` is the credential id's ASCII (hyphenated UUID),
//! and `plaintext` is the RFC 8785 canonical JSON of the secret payload. Binding the id and version means a relay
//! cannot ship another credential's (envelope, salt, commitment) under this id, nor an old version under a new
//! number. The creator signs (id, version, name, scope, salt, commitment); the target recomputes and compares in
//! constant time before it stores anything. Test vectors: `proto/testdata/commitment_vectors.json`.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

use crate::ids::CredentialId;
use crate::random;
use crate::secret::SecretPayload;

/// Domain separation tag, version 1.
pub const DOMAIN_TAG: &[u8] = b"tessera/credential-commitment/v1\0";

/// The creator's random HMAC key for one credential version.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salt(#[serde(with = "crate::b64::array")] pub [u8; 32]);

impl Salt {
    /// 32 fresh random bytes.
    pub fn random() -> Self {
        Self(random::array())
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt({})", crate::b64::encode(self.0))
    }
}

/// A 32-byte HMAC-SHA-256 commitment.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct Commitment(#[serde(with = "crate::b64::array")] pub [u8; 32]);

impl Commitment {
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl PartialEq for Commitment {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Commitment {}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({})", crate::b64::encode(self.0))
    }
}

/// The plaintext does not match the commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("commitment mismatch: the plaintext is not the one the creator committed to")]
pub struct CommitmentMismatch;

/// Computes the commitment over raw canonical bytes (used by test vectors and by [`compute`]).
pub fn compute_raw(salt: &Salt, id: &str, version: u64, canonical_plaintext: &[u8]) -> Commitment {
    // RFC 2104 pads a key shorter than the 64-byte block with zeros, so keying with the padded block is the same
    // HMAC and goes through the infallible constructor.
    let mut block = [0u8; 64];
    let (head, _) = block.split_at_mut(32);
    head.copy_from_slice(&salt.0);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    block.zeroize();
    mac.update(DOMAIN_TAG);
    // Ids are at most 36 bytes (UUID); the length prefix keeps the encoding injective regardless.
    let id_len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    mac.update(&id_len.to_be_bytes());
    mac.update(id.as_bytes());
    mac.update(&version.to_be_bytes());
    mac.update(canonical_plaintext);
    Commitment(mac.finalize().into_bytes().into())
}

/// Computes the commitment for a credential version.
pub fn compute(
    salt: &Salt,
    id: &CredentialId,
    version: u64,
    payload: &SecretPayload,
) -> Commitment {
    let id = id.to_string();
    payload.expose(|p| compute_raw(salt, &id, version, p))
}

/// Recomputes and compares in constant time.
pub fn verify(
    salt: &Salt,
    id: &CredentialId,
    version: u64,
    payload: &SecretPayload,
    expected: &Commitment,
) -> Result<(), CommitmentMismatch> {
    if compute(salt, id, version, payload).ct_eq(expected) {
        Ok(())
    } else {
        Err(CommitmentMismatch)
    }
}

#[cfg(test)]
mod tests;
