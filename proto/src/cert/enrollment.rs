//! The enrolment request an agent writes and an operator signs (`tessera-relay ca issue-agent`).
//!
//! The request carries the agent's two public keys and a proof of possession of the identity key: an ECDSA
//! signature over the RFC 8785 bytes of the body. (The wrap key cannot sign; possession of it is proven the first
//! time the agent opens an envelope sealed to it.)

use serde::{Deserialize, Serialize};

use super::{CertError, IdentityKey, IdentityPublicKey};
use crate::canonical;
use crate::envelope::WrapPublicKey;
use crate::ids::AgentId;

/// What an agent asks to have certified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequestBody {
    /// Format tag: `tessera-enrollment-request/v1`.
    pub format: String,
    /// The agent id requested (the certificate's CN).
    pub agent_id: AgentId,
    /// P-256 identity key, SubjectPublicKeyInfo DER.
    #[serde(with = "crate::b64::vec")]
    pub identity_spki: Vec<u8>,
    /// RSA wrap key, SubjectPublicKeyInfo DER.
    #[serde(with = "crate::b64::vec")]
    pub wrap_spki: Vec<u8>,
    /// Device facts for the operator's records (serial, model); informational only.
    #[serde(default)]
    pub device: std::collections::BTreeMap<String, String>,
    /// When the request was made, unix seconds.
    pub created_at: i64,
}

/// Format tag of version 1 requests.
pub const ENROLLMENT_FORMAT: &str = "tessera-enrollment-request/v1";

/// A signed enrolment request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// The request.
    pub body: EnrollmentRequestBody,
    /// DER ECDSA signature by the identity key over the canonical bytes of `body`.
    #[serde(with = "crate::b64::vec")]
    pub signature: Vec<u8>,
}

impl EnrollmentRequest {
    /// Builds and signs a request.
    pub fn new(
        agent_id: AgentId,
        identity: &IdentityKey,
        wrap: &WrapPublicKey,
        device: std::collections::BTreeMap<String, String>,
        created_at: i64,
    ) -> Result<Self, CertError> {
        let body = EnrollmentRequestBody {
            format: ENROLLMENT_FORMAT.to_owned(),
            agent_id,
            identity_spki: identity.public_key().spki_der().to_vec(),
            wrap_spki: wrap.spki_der().to_vec(),
            device,
            created_at,
        };
        let bytes = canonical::to_vec(&body).map_err(|_| CertError::Internal("canonical JSON"))?;
        let signature = identity.sign(&bytes);
        Ok(Self { body, signature })
    }

    /// Checks the format, both keys and the proof of possession; returns the parsed keys.
    pub fn verify(&self) -> Result<(IdentityPublicKey, WrapPublicKey), CertError> {
        if self.body.format != ENROLLMENT_FORMAT {
            return Err(CertError::Malformed("unknown enrolment request format"));
        }
        let identity = IdentityPublicKey::from_spki_der(&self.body.identity_spki)?;
        let wrap = WrapPublicKey::from_spki_der(&self.body.wrap_spki)
            .map_err(|_| CertError::Malformed("wrap key is not an RSA 2048..4096 key"))?;
        let bytes =
            canonical::to_vec(&self.body).map_err(|_| CertError::Internal("canonical JSON"))?;
        identity.verify(&bytes, &self.signature)?;
        Ok((identity, wrap))
    }
}
