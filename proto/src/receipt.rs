//! Receipts: what an agent signs when it tells the relay it did something the relay records — stored a credential
//! version, purged one, completed a key rotation.
//!
//! A receipt is the agent's identity key's ECDSA P-256/SHA-256 signature over the RFC 8785 bytes of a
//! [`ReceiptBody`]: the agent, the serial of the certificate whose key signs, the time, and the [`ReceiptFact`]
//! (delivery id, credential id, version and digest for a stored credential; credential id and version for a purge;
//! the certificate serials before and after for a rotation). It travels in the acknowledgement and the relay keeps
//! it with the audit entry; `tessera audit verify` checks each one against the certificate the CA issued for that
//! serial, so a relay cannot record a delivery, a purge or a rotation that did not happen (docs/protocol.md,
//! "Receipts").
//!
//! The certificate is not carried: the verifier finds it by (agent, serial) in what it trusts (the relay in the
//! agent's registered certificates, an operator in the CA's registry of issued certificates). Verification, like
//! every statement's, checks the signature over the received bytes, then that they are canonical, then parses.

pub mod in_audit;

use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::cert::{AgentCertificate, CertError, CertSerial, IdentityKey};
use crate::commitment::Commitment;
use crate::ids::{AgentId, CredentialId};

/// Kind tag of version 1 receipts.
pub const RECEIPT_KIND: &str = "tessera/agent-receipt/v1";

/// Longest receipt payload accepted, bytes (a receipt is a few hundred).
pub const MAX_RECEIPT_PAYLOAD: usize = 2048;

/// What the agent attests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ReceiptFact {
    /// A credential version was stored (and flushed) after its commitment verified.
    Stored {
        /// The relay's delivery id the acknowledgement echoes.
        delivery_id: uuid::Uuid,
        /// The credential.
        credential_id: CredentialId,
        /// The version stored.
        version: u64,
        /// The commitment the agent recomputed from the plaintext.
        digest: Commitment,
    },
    /// A credential was forgotten on an operator-signed tombstone or scope revoke.
    Purged {
        /// The credential.
        credential_id: CredentialId,
        /// The tombstone's version, or the version of the statement that left the agent out.
        version: u64,
        /// For a scope revoke: the scope revision of the statement that left the agent out; absent for a tombstone.
        /// It tells one purge from another, so a receipt of an earlier revoke cannot stand for a later deletion or
        /// revoke.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope_revision: Option<u64>,
    },
    /// The agent switched to a renewed certificate (green) after validating it with the broker and the relay.
    Rotated {
        /// The serial of the certificate it rotated away from (blue).
        previous_serial: CertSerial,
        /// The serial of the certificate now in use (green); the receipt is signed with its key.
        serial: CertSerial,
    },
}

/// The signed body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Always [`RECEIPT_KIND`].
    pub kind: String,
    /// The agent.
    pub agent: AgentId,
    /// The serial of the agent certificate whose identity key signed.
    pub signer_serial: CertSerial,
    /// When, Unix seconds (the certificate must be valid then).
    pub at: i64,
    /// What happened.
    pub fact: ReceiptFact,
}

/// A receipt as it travels: the canonical body and the signature over exactly those bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// RFC 8785 bytes of the [`ReceiptBody`].
    #[serde(with = "crate::b64::vec")]
    pub payload: Vec<u8>,
    /// DER ECDSA P-256/SHA-256 signature by the agent's identity key over `payload`.
    #[serde(with = "crate::b64::vec")]
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .finish_non_exhaustive()
    }
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a canonical receipt body of this kind, or too large.
    #[error("receipt is malformed: {0}")]
    Malformed(&'static str),
    /// Signed by another agent or another certificate than the one checked against.
    #[error("receipt names agent {agent} certificate {serial}, not the certificate it is checked against")]
    WrongSigner {
        /// The agent the receipt names.
        agent: String,
        /// The serial it names.
        serial: String,
    },
    /// The certificate was not valid when the receipt says it was signed.
    #[error("receipt time {at} is outside its certificate's validity")]
    OutsideValidity {
        /// The receipt's time.
        at: i64,
    },
    /// The signature does not verify.
    #[error("receipt signature does not verify")]
    BadSignature,
    /// It could not be made.
    #[error("receipt could not be signed: {0}")]
    Internal(&'static str),
}

impl ReceiptBody {
    /// A body with the kind tag set.
    pub fn new(agent: AgentId, signer_serial: CertSerial, at: i64, fact: ReceiptFact) -> Self {
        Self {
            kind: RECEIPT_KIND.to_owned(),
            agent,
            signer_serial,
            at,
            fact,
        }
    }
}

impl Receipt {
    /// Signs `body` with `key` (the identity key of the certificate `body.signer_serial` names).
    pub fn sign(body: &ReceiptBody, key: &IdentityKey) -> Result<Self, ReceiptError> {
        let payload =
            canonical::to_vec(body).map_err(|_| ReceiptError::Internal("canonical JSON"))?;
        let signature = key.sign(&payload);
        Ok(Self { payload, signature })
    }

    /// The body it claims, unverified: to find the certificate to verify it with, never to trust.
    pub fn claimed(&self) -> Result<ReceiptBody, ReceiptError> {
        if self.payload.len() > MAX_RECEIPT_PAYLOAD {
            return Err(ReceiptError::Malformed("payload too large"));
        }
        let value = canonical::parse(&self.payload)
            .ok_or(ReceiptError::Malformed("payload is not canonical JSON"))?;
        let body: ReceiptBody = serde_json::from_value(value)
            .map_err(|_| ReceiptError::Malformed("payload is not a receipt body"))?;
        if body.kind != RECEIPT_KIND {
            return Err(ReceiptError::Malformed("wrong kind"));
        }
        Ok(body)
    }

    /// Verifies the receipt against `cert`, a certificate the caller already trusts for that agent (verified
    /// against the org CA): the receipt names that agent and serial, was signed within the certificate's validity,
    /// and the signature by its identity key verifies over the exact payload bytes.
    pub fn verify(&self, cert: &AgentCertificate) -> Result<ReceiptBody, ReceiptError> {
        let body = self.claimed()?;
        self.verify_claimed(&body, cert)?;
        Ok(body)
    }

    /// [`Receipt::verify`] for a body already parsed with [`Receipt::claimed`] (one parse, not two).
    pub fn verify_claimed(
        &self,
        body: &ReceiptBody,
        cert: &AgentCertificate,
    ) -> Result<(), ReceiptError> {
        if body.agent != cert.agent_id || body.signer_serial != cert.serial {
            return Err(ReceiptError::WrongSigner {
                agent: body.agent.as_str().to_owned(),
                serial: body.signer_serial.as_str().to_owned(),
            });
        }
        if body.at < cert.not_before || body.at > cert.not_after {
            return Err(ReceiptError::OutsideValidity { at: body.at });
        }
        cert.identity
            .verify(&self.payload, &self.signature)
            .map_err(|_: CertError| ReceiptError::BadSignature)
    }
}

#[cfg(test)]
mod tests;
