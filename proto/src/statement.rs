//! Signed statements: a body's RFC 8785 canonical bytes, signed as they travel.
//!
//! A [`Signed`] carries `payload` (base64 of the canonical bytes), `signature` (DER ECDSA P-256/SHA-256 over
//! exactly those bytes) and `signer_cert` (DER). A verifier checks the signature over the received bytes, then
//! requires them to be canonical (so there is one encoding per statement), then parses them. It never
//! re-serialises to verify. Every body starts with a `kind` tag so that a signature over one kind of statement can
//! never be presented as another.
//!
//! - [`CredentialStatement`]: signed by an operator; binds id, version, name, scope, salt and commitment.
//! - [`RevocationList`]: signed by the org CA; monotonic serial.
//! - [`CredentialTombstone`]: signed by an operator; deletes a credential (every version up to one) on agents.

mod credential;
mod revocation;
mod tombstone;

pub use credential::{
    CredentialStatement, Scope, VerifiedCredential, CREDENTIAL_KIND, MAX_SCOPE_AGENTS,
};
pub use revocation::{RevocationList, REVOCATION_KIND};
pub use tombstone::{CredentialTombstone, VerifiedTombstone, TOMBSTONE_KIND};

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::cert::{CertError, IdentityKey, IdentityPublicKey};

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The signer's certificate failed verification.
    #[error("statement signer: {0}")]
    Signer(#[from] CertError),
    /// The signature does not verify over the payload.
    #[error("statement signature does not verify")]
    BadSignature,
    /// The payload is not canonical JSON, or not a statement of this kind.
    #[error("statement payload is malformed: {0}")]
    Malformed(&'static str),
    /// The signer is not the party the statement says created it.
    #[error("statement creator does not match its signer")]
    CreatorMismatch,
    /// A revocation list older than the one already held.
    #[error("revocation list serial {got} is older than the held serial {held}")]
    Stale {
        /// Serial received.
        got: u64,
        /// Serial already held.
        held: u64,
    },
    /// The statement could not be produced.
    #[error("statement could not be signed: {0}")]
    Internal(&'static str),
}

/// A statement of type `T` with its signature, as it travels.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<T> {
    /// Canonical JSON bytes of the body.
    #[serde(with = "crate::b64::vec")]
    pub payload: Vec<u8>,
    /// DER ECDSA P-256/SHA-256 signature over `payload`.
    #[serde(with = "crate::b64::vec")]
    pub signature: Vec<u8>,
    /// The signer's certificate, DER.
    #[serde(with = "crate::b64::vec")]
    pub signer_cert: Vec<u8>,
    #[serde(skip)]
    body: PhantomData<fn() -> T>,
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            signature: self.signature.clone(),
            signer_cert: self.signer_cert.clone(),
            body: PhantomData,
        }
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
            && self.signature == other.signature
            && self.signer_cert == other.signer_cert
    }
}

impl<T> Eq for Signed<T> {}

impl<T> std::fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> Signed<T> {
    /// Signs `body` with `key`, attaching `signer_cert`.
    pub fn sign(body: &T, key: &IdentityKey, signer_cert: &[u8]) -> Result<Self, StatementError> {
        let payload =
            canonical::to_vec(body).map_err(|_| StatementError::Internal("canonical JSON"))?;
        let signature = key.sign(&payload);
        Ok(Self {
            payload,
            signature,
            signer_cert: signer_cert.to_vec(),
            body: PhantomData,
        })
    }

    /// Checks the signature with `signer` over the exact payload bytes, then parses the canonical payload.
    fn open_with(&self, signer: &IdentityPublicKey, kind: &str) -> Result<T, StatementError> {
        signer
            .verify(&self.payload, &self.signature)
            .map_err(|_| StatementError::BadSignature)?;
        self.parse_unverified(kind)
    }

    /// Parses the payload without checking the signature: for display and routing only, never for trust.
    pub fn parse_unverified(&self, kind: &str) -> Result<T, StatementError> {
        let value = canonical::parse(&self.payload)
            .ok_or(StatementError::Malformed("payload is not canonical JSON"))?;
        if value.get("kind").and_then(serde_json::Value::as_str) != Some(kind) {
            return Err(StatementError::Malformed("wrong statement kind"));
        }
        serde_json::from_value(value)
            .map_err(|_| StatementError::Malformed("payload does not match its kind"))
    }
}

#[cfg(test)]
mod tests;
