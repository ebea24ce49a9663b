//! Field enrolment: `tessera-agent enroll` and `tessera-agent install-cert`.
//!
//! `enroll` creates the key file, the sealed store key and the store, generates the identity (P-256) and wrap
//! (RSA-2048) keys inside it, pins the org CA, and writes an enrolment request for the operator to sign. Running it
//! again with the same agent id and CA rewrites the same request from the stored keys (idempotent); with another
//! id or CA it refuses ([`EnrollError::Conflict`]). `install-cert` checks the signed certificate against the pinned
//! CA and the agent's own keys before storing it; installing the same certificate again is a no-op.

use std::path::Path;

use tessera_board::{write_private_file, DeviceFacts};
use tessera_proto::cert::{EnrollmentRequest, IdentityKey, PinnedCa};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;

use crate::config::AgentConfig;
use crate::identity::{check_certificate, load_enrolled, load_revocations, IdentityError};
use crate::store::{SelfRecord, StoreError};
use crate::unseal::{open_or_create_store, open_store, OpenError};

/// What `enroll` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Keys were created.
    Enrolled,
    /// The agent was already enrolled with this id and CA; the request was written again.
    AlreadyEnrolled,
}

/// What `install-cert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The certificate was stored.
    Installed,
    /// The same certificate was already installed.
    AlreadyInstalled,
}

/// Enrolment failures, each with its own process exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// Input that cannot be used (a CA file that is not a certificate).
    #[error("{0}")]
    BadInput(String),
    /// Already enrolled differently.
    #[error("{0}")]
    Conflict(String),
    /// The certificate does not verify or does not match.
    #[error("certificate rejected: {0}")]
    CertificateRejected(String),
    /// The store or the sealer failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A stored record is unusable.
    #[error(transparent)]
    Identity(IdentityError),
    /// Key generation or request signing failed.
    #[error("{0}")]
    Crypto(String),
    /// Writing the request failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl EnrollError {
    /// The process exit code a provisioning script can rely on (documented in docs/operations.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_) => 2,
            Self::Conflict(_) => 3,
            Self::CertificateRejected(_) => 4,
            Self::Open(_) | Self::Identity(_) => 5,
            Self::Crypto(_) | Self::Io { .. } => 1,
        }
    }
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        Self::Open(OpenError::Store(e))
    }
}

/// Reads a certificate given as PEM or DER.
pub fn read_certificate(bytes: &[u8], what: &str) -> Result<Vec<u8>, EnrollError> {
    if bytes.starts_with(b"-----BEGIN") {
        let p = pem::parse(bytes)
            .map_err(|_| EnrollError::BadInput(format!("{what}: not a PEM certificate")))?;
        if p.tag() != "CERTIFICATE" {
            return Err(EnrollError::BadInput(format!(
                "{what}: PEM block is {}, not CERTIFICATE",
                p.tag()
            )));
        }
        Ok(p.into_contents())
    } else {
        Ok(bytes.to_vec())
    }
}

/// Runs enrolment.
pub fn enroll(
    cfg: &AgentConfig,
    agent_id: &AgentId,
    ca_bytes: &[u8],
    request_out: &Path,
    now: i64,
) -> Result<EnrollOutcome, EnrollError> {
    let ca_der = read_certificate(ca_bytes, "org CA")?;
    let ca =
        PinnedCa::from_der(&ca_der).map_err(|e| EnrollError::BadInput(format!("org CA: {e}")))?;
    let store = open_or_create_store(cfg, now)?;
    let (identity, wrap, outcome) = match load_enrolled(&store) {
        Ok((id, identity, wrap, pinned)) => {
            if id != *agent_id {
                return Err(EnrollError::Conflict(format!(
                    "already enrolled as {}; refusing to re-enrol as {} (remove {} to start over)",
                    id.as_str(),
                    agent_id.as_str(),
                    cfg.state_dir.display()
                )));
            }
            if pinned.der() != ca.der() {
                return Err(EnrollError::Conflict(
                    "already enrolled with a different org CA; refusing to re-pin".into(),
                ));
            }
            (identity, wrap, EnrollOutcome::AlreadyEnrolled)
        }
        Err(IdentityError::NotEnrolled) => {
            let identity =
                IdentityKey::generate().map_err(|e| EnrollError::Crypto(e.to_string()))?;
            let wrap =
                WrapPrivateKey::generate().map_err(|e| EnrollError::Crypto(e.to_string()))?;
            let identity_der = identity
                .to_pkcs8_der()
                .map_err(|e| EnrollError::Crypto(e.to_string()))?;
            identity_der.expose(|id_der| {
                wrap.to_pkcs8_der().expose(|wrap_der| {
                    store.put_self(&[
                        (SelfRecord::IdentityKey, id_der),
                        (SelfRecord::WrapKey, wrap_der),
                        (SelfRecord::OrgCa, ca.der()),
                        (SelfRecord::AgentId, agent_id.as_str().as_bytes()),
                    ])
                })
            })?;
            (identity, wrap, EnrollOutcome::Enrolled)
        }
        Err(e) => return Err(EnrollError::Identity(e)),
    };
    let device = DeviceFacts::probe(&cfg.device).to_map();
    let request =
        EnrollmentRequest::new(agent_id.clone(), &identity, wrap.public_key(), device, now)
            .map_err(|e| EnrollError::Crypto(e.to_string()))?;
    let json =
        serde_json::to_vec_pretty(&request).map_err(|e| EnrollError::Crypto(e.to_string()))?;
    write_private_file(request_out, &json).map_err(|source| EnrollError::Io {
        path: request_out.display().to_string(),
        source,
    })?;
    Ok(outcome)
}

/// Installs the certificate the operator signed.
pub fn install_certificate(
    cfg: &AgentConfig,
    cert_bytes: &[u8],
    now: i64,
) -> Result<InstallOutcome, EnrollError> {
    let der = read_certificate(cert_bytes, "certificate")?;
    let store = open_store(cfg)?;
    let (id, identity, wrap, ca) = load_enrolled(&store).map_err(EnrollError::Identity)?;
    let revocations = load_revocations(&store, &ca).map_err(EnrollError::Identity)?;
    check_certificate(&der, &id, &identity, &wrap, &ca, &revocations, now)
        .map_err(|e| EnrollError::CertificateRejected(e.to_string()))?;
    if let Some(existing) = store.get_self(SelfRecord::Certificate)? {
        if existing.expose(|e| e == der.as_slice()) {
            return Ok(InstallOutcome::AlreadyInstalled);
        }
    }
    store.put_self(&[(SelfRecord::Certificate, &der)])?;
    Ok(InstallOutcome::Installed)
}

#[cfg(test)]
mod tests;
