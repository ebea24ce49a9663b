//! A batch: several credentials sealed to one target in one envelope (docs/protocol.md, "Batched rewrap").
//!
//! The envelope is the ordinary one ([`super`]: one RSA-OAEP-wrapped AES key, IV, ciphertext, tag); only its
//! plaintext differs. It is binary, so that each payload is copied exactly once, into zeroizing memory:
//!
//! ```text
//! "TSB1" | count: u16 BE (1..=MAX_BATCH_ITEMS) | count × ( credential id: 16 bytes (UUID)
//!                                                         | version: u64 BE (>= 1)
//!                                                         | length: u32 BE (<= MAX_SECRET_BYTES)
//!                                                         | payload: length bytes (canonical JSON) )
//! ```
//!
//! Nothing may follow the last item and no credential id may appear twice. The envelope proves only who it is
//! sealed to; each item is bound to its credential and version by the creator's commitment, checked by the target
//! item by item exactly as for a single delivery.

use crate::envelope::{
    open_sized, seal_sized, Envelope, EnvelopeError, WrapPrivateKey, WrapPublicKey,
};
use crate::ids::CredentialId;
use crate::secret::{SecretBytes, MAX_SECRET_BYTES};

/// Most credentials in one batch (request, envelope, delivery or acknowledgement).
pub const MAX_BATCH_ITEMS: usize = 64;
/// Largest batch plaintext: with its statements, a delivery stays inside one frame (docs/protocol.md, "Frames").
pub const MAX_BATCH_PLAINTEXT: usize = 512 * 1024;
/// The plaintext's first four bytes.
pub const MAGIC: &[u8; 4] = b"TSB1";

const ITEM_HEADER: usize = 16 + 8 + 4;

/// Why a batch could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The envelope itself failed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// No item, or more than [`MAX_BATCH_ITEMS`].
    #[error("a batch holds 1 to {MAX_BATCH_ITEMS} items")]
    Count,
    /// The items do not fit in [`MAX_BATCH_PLAINTEXT`].
    #[error("the batch is larger than {MAX_BATCH_PLAINTEXT} bytes")]
    TooLarge,
    /// The plaintext does not follow the format (magic, lengths, trailing bytes, version 0, a payload too large).
    #[error("the batch plaintext is malformed: {0}")]
    Malformed(&'static str),
    /// A credential id appears twice.
    #[error("the batch holds a credential twice")]
    Duplicate,
}

/// One credential of an opened batch.
#[derive(Debug)]
pub struct BatchItem {
    /// The credential, as the sealer wrote it (proven only by the commitment the target checks).
    pub credential_id: CredentialId,
    /// The version, likewise.
    pub version: u64,
    /// The payload bytes (canonical JSON when the sealer is honest).
    pub payload: SecretBytes,
}

/// How many plaintext bytes an item of `payload_len` bytes takes.
pub fn item_size(payload_len: usize) -> usize {
    ITEM_HEADER + payload_len
}

/// The plaintext size of a batch whose items take `items` bytes ([`item_size`] summed).
pub fn plaintext_size(items: usize) -> usize {
    MAGIC.len() + 2 + items
}

/// Encodes `items` into a batch plaintext.
pub fn encode(items: &[(CredentialId, u64, &SecretBytes)]) -> Result<SecretBytes, BatchError> {
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(BatchError::Count);
    }
    let mut ids: Vec<CredentialId> = items.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != items.len() {
        return Err(BatchError::Duplicate);
    }
    let size = plaintext_size(items.iter().map(|(_, _, p)| item_size(p.len())).sum());
    if size > MAX_BATCH_PLAINTEXT {
        return Err(BatchError::TooLarge);
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(size));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u16::try_from(items.len())
            .map_err(|_| BatchError::Count)?
            .to_be_bytes(),
    );
    for (id, version, payload) in items {
        if *version == 0 {
            return Err(BatchError::Malformed("version 0"));
        }
        if payload.len() > MAX_SECRET_BYTES {
            return Err(BatchError::Malformed("payload too large"));
        }
        out.extend_from_slice(id.uuid().as_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        let len = u32::try_from(payload.len()).map_err(|_| BatchError::TooLarge)?;
        out.extend_from_slice(&len.to_be_bytes());
        payload.expose(|p| out.extend_from_slice(p));
    }
    Ok(SecretBytes::new(std::mem::take(&mut *out)))
}

/// Reads a batch plaintext.
pub fn decode(plain: &SecretBytes) -> Result<Vec<BatchItem>, BatchError> {
    plain.expose(decode_bytes)
}

fn decode_bytes(bytes: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    let mut rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(BatchError::Malformed("no batch magic"))?;
    let count = usize::from(u16::from_be_bytes(take(&mut rest)?));
    if count == 0 || count > MAX_BATCH_ITEMS {
        return Err(BatchError::Count);
    }
    let mut items: Vec<BatchItem> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = CredentialId::from_uuid(uuid::Uuid::from_bytes(take(&mut rest)?));
        let version = u64::from_be_bytes(take(&mut rest)?);
        let len = usize::try_from(u32::from_be_bytes(take(&mut rest)?))
            .map_err(|_| BatchError::Malformed("length"))?;
        if version == 0 {
            return Err(BatchError::Malformed("version 0"));
        }
        if len > MAX_SECRET_BYTES {
            return Err(BatchError::Malformed("payload too large"));
        }
        let (payload, tail) = rest
            .split_at_checked(len)
            .ok_or(BatchError::Malformed("truncated payload"))?;
        rest = tail;
        if items.iter().any(|i| i.credential_id == id) {
            return Err(BatchError::Duplicate);
        }
        items.push(BatchItem {
            credential_id: id,
            version,
            payload: SecretBytes::copy_from(payload),
        });
    }
    if !rest.is_empty() {
        return Err(BatchError::Malformed("bytes after the last item"));
    }
    Ok(items)
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], BatchError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or(BatchError::Malformed("truncated item"))?;
    *rest = tail;
    Ok(*head)
}

/// Seals `items` to `recipient` in one envelope.
pub fn seal(
    recipient: &WrapPublicKey,
    items: &[(CredentialId, u64, &SecretBytes)],
) -> Result<Envelope, BatchError> {
    let plain = encode(items)?;
    Ok(seal_sized(recipient, &plain, MAX_BATCH_PLAINTEXT)?)
}

/// Opens a batch envelope with `key` and reads its items.
pub fn open(key: &WrapPrivateKey, envelope: &Envelope) -> Result<Vec<BatchItem>, BatchError> {
    decode(&open_sized(key, envelope, MAX_BATCH_PLAINTEXT)?)
}

#[cfg(test)]
mod tests;
