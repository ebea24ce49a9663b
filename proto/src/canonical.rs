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
    parse(bytes).is_some()
}

/// `bytes` parsed, when they are valid JSON already in canonical form: the check and the parse a signed payload
/// needs, in one pass over the bytes (take the typed value with `serde_json::from_value`).
pub fn parse(bytes: &[u8]) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    (to_vec(&value).ok()? == bytes).then_some(value)
}

#[cfg(test)]
mod tests;
