//! RFC 8785 (JSON Canonicalization Scheme) bytes: what is hashed, committed to and signed.

use serde::Serialize;

/// Why a value could not be canonicalised.
#[derive(Debug, thiserror::Error)]
#[error("value cannot be serialised as canonical JSON: {0}")]
pub struct CanonicalError(#[from] serde_json::Error);

/// The RFC 8785 canonical bytes of `value`.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    Ok(serde_json_canonicalizer::to_vec(value)?)
}

/// Whether `bytes` are valid JSON already in canonical form.
pub fn is_canonical(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| to_vec(&v).ok())
        .is_some_and(|c| c == bytes)
}

#[cfg(test)]
mod tests;
