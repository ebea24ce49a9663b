//! The rustls client configuration: the broker is verified against the configured CA (default: the pinned org
//! CA, which issues the broker's service certificate); the client identity is the agent certificate with its
//! identity key, taken from the encrypted store and never written to disk in the clear.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore};

use tessera_proto::cert::IdentityKey;

use crate::identity::AgentKeys;

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The broker CA file could not be read or holds no certificate.
    #[error("broker CA: {0}")]
    BrokerCa(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Reads the broker CA (PEM or DER) from `bytes`.
pub fn broker_roots(bytes: &[u8]) -> Result<Vec<Vec<u8>>, TlsError> {
    if bytes.starts_with(b"-----BEGIN") {
        let blocks = pem::parse_many(bytes).map_err(|e| TlsError::BrokerCa(e.to_string()))?;
        let certs: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(pem::Pem::into_contents)
            .collect();
        if certs.is_empty() {
            return Err(TlsError::BrokerCa("no CERTIFICATE block".into()));
        }
        Ok(certs)
    } else {
        Ok(vec![bytes.to_vec()])
    }
}

/// Builds the client configuration for the agent's certificate in use.
pub fn client_config(keys: &AgentKeys, roots: &[Vec<u8>]) -> Result<Arc<ClientConfig>, TlsError> {
    identity_config(&keys.identity, &keys.cert.der, roots)
}

/// Builds the client configuration for an identity key and its certificate (during a key rotation: the green
/// ones, to validate them with the broker).
pub fn identity_config(
    identity: &IdentityKey,
    cert_der: &[u8],
    roots: &[Vec<u8>],
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| TlsError::BrokerCa(e.to_string()))?;
    }
    let key = identity
        .to_pkcs8_der()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // rustls takes the key by value; this copy lives inside rustls for the life of the configuration.
    let key = key.expose(|k| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.to_vec())));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store)
        .with_client_auth_cert(vec![CertificateDer::from(cert_der.to_vec())], key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}
