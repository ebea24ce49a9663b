//! The renewal request of a blue/green key rotation: an agent that holds a certificate (blue) asks for one for new
//! keys (green). It carries the green public keys and two signatures over the RFC 8785 bytes of the body: one by
//! the blue identity key (the certified agent asks) and one by the green identity key (proof of possession). The
//! green wrap key cannot sign; possession of it is proven when the agent opens the first envelope sealed to it.
//!
//! The relay queues requests; only the org CA, offline on an operator's workstation, verifies one against the
//! agent's current certificate from the CA's own registry and issues the green certificate
//! ([`super::OrgCa::issue_renewal`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AgentCertificate, CertError, CertSerial, IdentityKey, IdentityPublicKey};
use crate::canonical;
use crate::envelope::WrapPublicKey;
use crate::ids::AgentId;

/// Format tag of version 1 renewal requests.
pub const RENEWAL_FORMAT: &str = "tessera-renewal-request/v1";

/// What a rotating agent asks to have certified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequestBody {
    /// Format tag: [`RENEWAL_FORMAT`].
    pub format: String,
    /// The agent (the CN of both certificates).
    pub agent_id: AgentId,
    /// The serial of the certificate being renewed (blue), whose identity key signs `current_signature`.
    pub current_serial: CertSerial,
    /// The new P-256 identity key (green), SubjectPublicKeyInfo DER.
    #[serde(with = "crate::b64::vec")]
    pub identity_spki: Vec<u8>,
    /// The new RSA wrap key (green), SubjectPublicKeyInfo DER.
    #[serde(with = "crate::b64::vec")]
    pub wrap_spki: Vec<u8>,
    /// When the request was made, Unix seconds.
    pub created_at: i64,
}

/// A signed renewal request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequest {
    /// The request.
    pub body: RenewalRequestBody,
    /// DER ECDSA signature by the current (blue) identity key over the canonical bytes of `body`.
    #[serde(with = "crate::b64::vec")]
    pub current_signature: Vec<u8>,
    /// DER ECDSA signature by the new (green) identity key over the same bytes.
    #[serde(with = "crate::b64::vec")]
    pub new_signature: Vec<u8>,
}

impl RenewalRequest {
    /// Builds and signs a request to renew `current` (held with `current_key`) for the new keys.
    pub fn new(
        current: &AgentCertificate,
        current_key: &IdentityKey,
        new_identity: &IdentityKey,
        new_wrap: &WrapPublicKey,
        created_at: i64,
    ) -> Result<Self, CertError> {
        let body = RenewalRequestBody {
            format: RENEWAL_FORMAT.to_owned(),
            agent_id: current.agent_id.clone(),
            current_serial: current.serial.clone(),
            identity_spki: new_identity.public_key().spki_der().to_vec(),
            wrap_spki: new_wrap.spki_der().to_vec(),
            created_at,
        };
        let bytes = canonical::to_vec(&body).map_err(|_| CertError::Internal("canonical JSON"))?;
        Ok(Self {
            current_signature: current_key.sign(&bytes),
            new_signature: new_identity.sign(&bytes),
            body,
        })
    }

    /// SHA-256 of the canonical body: names the request in the relay's queue and the operator's output.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = canonical::to_vec(&self.body).unwrap_or_default();
        Sha256::digest(bytes).into()
    }

    /// Verifies the request against `current`, the agent's certificate the verifier already trusts (verified
    /// against the org CA, and for the CA side: the live one its own registry holds for that serial): same agent
    /// id and serial, signed by its identity key, the new identity key proven, the new wrap key an RSA 2048..4096
    /// key, and both keys different from the current ones. Returns the new keys.
    pub fn verify(
        &self,
        current: &AgentCertificate,
    ) -> Result<(IdentityPublicKey, WrapPublicKey), CertError> {
        if self.body.format != RENEWAL_FORMAT {
            return Err(CertError::Malformed("unknown renewal request format"));
        }
        if self.body.agent_id != current.agent_id || self.body.current_serial != current.serial {
            return Err(CertError::WrongSubject);
        }
        let identity = IdentityPublicKey::from_spki_der(&self.body.identity_spki)?;
        let wrap = WrapPublicKey::from_spki_der(&self.body.wrap_spki)
            .map_err(|_| CertError::Malformed("wrap key is not an RSA 2048..4096 key"))?;
        if identity.spki_der() == current.identity.spki_der()
            || wrap.spki_der() == current.wrap.spki_der()
        {
            return Err(CertError::Malformed(
                "a renewal must carry new keys, not the current ones",
            ));
        }
        let bytes =
            canonical::to_vec(&self.body).map_err(|_| CertError::Internal("canonical JSON"))?;
        current.identity.verify(&bytes, &self.current_signature)?;
        identity.verify(&bytes, &self.new_signature)?;
        Ok((identity, wrap))
    }
}
