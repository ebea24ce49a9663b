//! The org CA and the certificates it issues.
//!
//! - The **org CA** is a P-256 key held by operators, offline from the relay ([`OrgCa`]). Every agent pins its
//!   certificate at enrolment ([`PinnedCa`]).
//! - An **agent certificate** is X.509: subject `CN=<agent id>, OU=tessera-agent`, the agent's P-256 identity key
//!   as subject public key (so the same certificate is its MQTT TLS client identity: Mosquitto's
//!   `use_identity_as_username` reads the CN), EKU clientAuth, and the agent's RSA wrap key in the non-critical
//!   extension [`WRAP_KEY_OID`] (SubjectPublicKeyInfo DER).
//! - An **operator certificate** is `CN=<operator id>, OU=tessera-operator`; operators sign credential statements.
//! - A **service certificate** is `CN=<name>, OU=tessera-service` with DNS/IP names: the broker's and relays' TLS
//!   identity. It can neither pass as an agent's nor as an operator's (the OU is checked).
//!
//! Verification ([`PinnedCa::verify_agent`], [`PinnedCa::verify_operator`]) checks the chain to the pinned CA, the
//! signature algorithm, the validity window, revocation, the role, and the identifiers, and returns a typed view.

mod ca;
mod enrollment;
mod identity;
mod renewal;
mod verify;

pub use ca::{OrgCa, Validity};
pub use enrollment::{EnrollmentRequest, EnrollmentRequestBody, ENROLLMENT_FORMAT};
pub use identity::{IdentityKey, IdentityPublicKey};
pub use renewal::{RenewalRequest, RenewalRequestBody, RENEWAL_FORMAT};
pub use verify::{AgentCertificate, OperatorCertificate, PinnedCa};

use std::fmt;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// OID of the extension carrying an agent's RSA wrap key: Tessera's arc under the X.667 UUID arc `2.25`.
pub const WRAP_KEY_OID: &[u64] = &[2, 25, 8_567_869_376_218_639_812, 1];
/// Organisational unit of agent certificates.
pub const AGENT_OU: &str = "tessera-agent";
/// Organisational unit of operator certificates.
pub const OPERATOR_OU: &str = "tessera-operator";
/// Organisational unit of service certificates (broker, relay TLS endpoints).
pub const SERVICE_OU: &str = "tessera-service";

/// A certificate serial number, as lowercase hex of its big-endian bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertSerial(String);

impl CertSerial {
    /// From the serial's big-endian bytes (leading zero bytes dropped, as in DER).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
            Some(i) => bytes.get(i..).unwrap_or_default(),
            None => &[0],
        };
        let mut hex = String::with_capacity(trimmed.len() * 2);
        for b in trimmed {
            let _ = write!(hex, "{b:02x}");
        }
        Self(hex)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CertSerial {
    type Error = CertError;
    fn try_from(s: String) -> Result<Self, CertError> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.len() % 2 == 0
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(CertError::Malformed(
                "serial must be 1 to 20 bytes of lowercase hex",
            ))
        }
    }
}

impl From<CertSerial> for String {
    fn from(s: CertSerial) -> String {
        s.0
    }
}

impl fmt::Display for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertSerial({})", self.0)
    }
}

/// Why a certificate, key or enrolment request was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Not parseable as what it claims to be.
    #[error("malformed certificate or key: {0}")]
    Malformed(&'static str),
    /// Not issued by the pinned CA (issuer name or signature does not match).
    #[error("certificate is not signed by the pinned org CA")]
    UntrustedIssuer,
    /// Signed with an algorithm other than ECDSA P-256 with SHA-256.
    #[error("certificate uses an unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// Outside its validity window at the time of the check.
    #[error("certificate is not valid at this time (not before {not_before}, not after {not_after}, now {now})")]
    Expired {
        /// Start of validity, unix seconds.
        not_before: i64,
        /// End of validity, unix seconds.
        not_after: i64,
        /// The time of the check, unix seconds.
        now: i64,
    },
    /// On the revocation list.
    #[error("certificate {0} is revoked")]
    Revoked(CertSerial),
    /// Issued for another role (an operator certificate used as an agent's, or the reverse).
    #[error("certificate has the wrong role: expected {expected}")]
    WrongRole {
        /// The role required.
        expected: &'static str,
    },
    /// Names a different subject than the one required.
    #[error("certificate names another subject than required")]
    WrongSubject,
    /// A proof-of-possession or statement signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The crypto or certificate library failed.
    #[error("certificate operation failed: {0}")]
    Internal(&'static str),
}

#[cfg(test)]
mod tests;
