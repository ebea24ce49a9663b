//! The admin API client's TLS configuration: the org CA as the only root for the relay's server certificate, which
//! must moreover be the org's **service certificate of the expected name** (default `relay-admin`): another service
//! the CA certified (the broker, the relay's MQTT identity) cannot pose as the admin API. The operator's
//! certificate and key are the client identity.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tessera_proto::cert::PinnedCa;
use tessera_proto::pem_files;
use tessera_proto::statement::RevocationList;

/// The service name the relay's admin certificate carries by default (`tessera ca issue-service --name`).
pub const DEFAULT_RELAY_NAME: &str = "relay-admin";

/// The standard chain and host name check, then the service name.
#[derive(Debug)]
struct PinnedService {
    webpki: Arc<WebPkiServerVerifier>,
    ca: PinnedCa,
    name: String,
}

impl ServerCertVerifier for PinnedService {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        match self
            .ca
            .verify_service(end_entity.as_ref(), at, &RevocationList::empty())
        {
            Ok(name) if name == self.name => Ok(ServerCertVerified::assertion()),
            Ok(name) => Err(rustls::Error::General(format!(
                "the server's certificate is the service {name:?}, not the relay's admin API {:?}",
                self.name
            ))),
            Err(e) => Err(rustls::Error::General(format!(
                "the server's certificate is not an org service certificate: {e}"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A client configuration trusting `ca_der` for a server whose certificate is the service `relay_name`,
/// presenting `cert_pem`/`key_pem`.
pub fn client_config(
    ca_der: &[u8],
    relay_name: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = PinnedService {
        webpki,
        ca: PinnedCa::from_der(ca_der).map_err(|e| e.to_string())?,
        name: relay_name.to_owned(),
    };
    let chain = pem_files::all_certs(cert_pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = pem_files::pkcs8_key(key_pem).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.expose(<[u8]>::to_vec)));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}
