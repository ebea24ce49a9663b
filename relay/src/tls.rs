//! TLS material for the relay: reading PEM/DER, the MQTT client configuration (service certificate), and the admin
//! API's server configuration, which requires a client certificate chaining to the org CA (the operator check
//! itself — role, revocation — is done per request with `PinnedCa::verify_operator`).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Every certificate in a PEM file, or the DER file itself.
pub fn all_certs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    tessera_proto::pem_files::all_certs(bytes).map_err(|e| e.to_string())
}

/// The first certificate.
pub fn first_cert(bytes: &[u8]) -> Result<Vec<u8>, String> {
    tessera_proto::pem_files::first_cert(bytes).map_err(|e| e.to_string())
}

/// A PKCS#8 private key from PEM or DER.
pub fn key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let der = tessera_proto::pem_files::pkcs8_key(bytes).map_err(|e| e.to_string())?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        der.expose(<[u8]>::to_vec),
    )))
}

fn roots(certs: &[Vec<u8>]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in certs {
        store
            .add(CertificateDer::from(c.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration: `roots` for the server, `cert`/`key` (PEM) as the client identity.
pub fn client_config(
    server_roots: &[Vec<u8>],
    cert: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, String> {
    let chain = all_certs(cert)?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(server_roots)?)
        .with_client_auth_cert(chain, key(key_pem)?)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// A server configuration that requires client certificates chaining to `client_roots`.
pub fn server_config(
    client_roots: &[Vec<u8>],
    cert: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, String> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_roots)?), provider())
            .build()
            .map_err(|e| e.to_string())?;
    let chain = all_certs(cert)?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(key_pem)?)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}
