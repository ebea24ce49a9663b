//! Secret types: plaintext that must not leak.
//!
//! [`SecretBytes`] redacts its `Debug`, zeroizes on drop, never implements `Serialize`, exposes its bytes only
//! inside a closure ([`SecretBytes::expose`]) and compares in constant time. [`SecretPayload`] is a credential's
//! plaintext: a JSON document held in its RFC 8785 canonical form, the exact bytes the commitment binds.
//!
//! Limit: while a JSON document is parsed to canonicalise it, `serde_json` holds transient copies that cannot be
//! zeroized. They live only for the duration of [`SecretPayload::from_json`].

use std::fmt;

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::canonical;

/// Largest plaintext a credential may carry (64 KiB).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Bytes that are secret. See the module documentation for the guarantees.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the buffer is zeroized when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret buffer. The caller remains responsible for its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// Runs `f` with the plaintext. The only way to read it.
    pub fn expose<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.0)
    }

    /// Length in bytes (not secret: ciphertext lengths reveal it anyway).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

/// Why a secret payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is not a JSON document (the parser's message never quotes the input).
    #[error("secret payload is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
    },
    /// The payload is larger than [`MAX_SECRET_BYTES`].
    #[error("secret payload is {len} bytes, more than the {MAX_SECRET_BYTES} allowed")]
    TooLarge {
        /// Size of the payload.
        len: usize,
    },
    /// The bytes are valid JSON but not in canonical form.
    #[error("secret payload is not in RFC 8785 canonical form")]
    NotCanonical,
}

/// A credential's plaintext: a JSON document in RFC 8785 canonical form.
#[derive(Clone, Debug)]
pub struct SecretPayload(SecretBytes);

impl SecretPayload {
    /// Parses any JSON document and keeps its canonical bytes.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        if json.len() > MAX_SECRET_BYTES {
            return Err(PayloadError::TooLarge { len: json.len() });
        }
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| PayloadError::NotJson {
                line: e.line(),
                column: e.column(),
            })?;
        let canonical =
            canonical::to_vec(&value).map_err(|_| PayloadError::NotJson { line: 0, column: 0 })?;
        if canonical.len() > MAX_SECRET_BYTES {
            return Err(PayloadError::TooLarge {
                len: canonical.len(),
            });
        }
        Ok(Self(SecretBytes::new(canonical)))
    }

    /// A payload `{"secret": "<text>"}` for a plain secret string such as a password.
    pub fn from_plain_text(text: &str) -> Result<Self, PayloadError> {
        let json = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({ "secret": text }))
                .map_err(|_| PayloadError::NotJson { line: 0, column: 0 })?,
        );
        Self::from_json(&json)
    }

    /// Accepts bytes only if they already are canonical JSON: what a target does with a decrypted envelope, so
    /// that the bytes it stores are exactly the bytes the commitment covers.
    pub fn from_canonical(bytes: SecretBytes) -> Result<Self, PayloadError> {
        let reparsed = bytes.expose(Self::from_json)?;
        if reparsed.0.ct_eq(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(PayloadError::NotCanonical)
        }
    }

    /// The canonical bytes.
    pub fn bytes(&self) -> &SecretBytes {
        &self.0
    }

    /// Runs `f` with the canonical bytes.
    pub fn expose<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.0.expose(f)
    }
}

#[cfg(test)]
mod tests;
