//! P-256 identity keys: an agent's (signs its statements, MQTT TLS client key) and the org CA's and operators'.

use std::fmt;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use rand_core::OsRng;

use super::CertError;
use crate::secret::SecretBytes;

/// A P-256 signing key. Exported only as zeroizing PKCS#8.
///
/// Signatures are made by aws-lc-rs (about five times faster than the pure-Rust signer: an agent signs a receipt for
/// every credential it stores); the `p256` key is kept for PKCS#8 export.
#[derive(Clone)]
pub struct IdentityKey {
    key: SigningKey,
    signer: std::sync::Arc<aws_lc_rs::signature::EcdsaKeyPair>,
    public: IdentityPublicKey,
}

impl IdentityKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CertError> {
        Self::from_signing_key(SigningKey::random(&mut OsRng))
    }

    /// Loads a PKCS#8 DER P-256 private key.
    pub fn from_pkcs8_der(der: &SecretBytes) -> Result<Self, CertError> {
        let key = der
            .expose(SigningKey::from_pkcs8_der)
            .map_err(|_| CertError::Malformed("not a PKCS#8 P-256 private key"))?;
        Self::from_signing_key(key)
    }

    fn from_signing_key(key: SigningKey) -> Result<Self, CertError> {
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| CertError::Internal("encoding a P-256 public key"))?;
        let public = IdentityPublicKey::from_spki_der(spki.as_bytes())?;
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|_| CertError::Internal("encoding a P-256 private key"))?;
        let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.as_bytes(),
        )
        .map_err(|_| CertError::Internal("loading a P-256 key for signing"))?;
        Ok(Self {
            key,
            signer: std::sync::Arc::new(signer),
            public,
        })
    }

    /// PKCS#8 DER, zeroized on drop.
    pub fn to_pkcs8_der(&self) -> Result<SecretBytes, CertError> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|_| CertError::Internal("encoding a P-256 private key"))?;
        Ok(SecretBytes::copy_from(doc.as_bytes()))
    }

    /// PKCS#8 PEM, zeroized on drop (for TLS stacks that read PEM files).
    pub fn to_pkcs8_pem(&self) -> Result<SecretBytes, CertError> {
        let der = self.to_pkcs8_der()?;
        Ok(der.expose(|d| {
            SecretBytes::new(pem::encode(&pem::Pem::new("PRIVATE KEY", d)).into_bytes())
        }))
    }

    /// ECDSA P-256 / SHA-256 signature, DER encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        if let Ok(sig) = self
            .signer
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
        {
            return sig.as_ref().to_vec();
        }
        // aws-lc fails only if its random source does; the deterministic (RFC 6979) signer needs none.
        let sig: Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }

    /// The public half.
    pub fn public_key(&self) -> &IdentityPublicKey {
        &self.public
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey([REDACTED], public={:?})", self.public)
    }
}

/// A P-256 public key, with its SubjectPublicKeyInfo DER.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPublicKey {
    spki_der: Vec<u8>,
    /// The uncompressed SEC1 point, what aws-lc-rs verifies against.
    point: Vec<u8>,
}

impl IdentityPublicKey {
    /// Parses a DER SubjectPublicKeyInfo holding a P-256 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CertError> {
        let key = VerifyingKey::from_public_key_der(der)
            .map_err(|_| CertError::Malformed("not a P-256 SubjectPublicKeyInfo"))?;
        Ok(Self {
            spki_der: der.to_vec(),
            point: key.to_encoded_point(false).as_bytes().to_vec(),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Verifies a DER ECDSA P-256 / SHA-256 signature over `message` (aws-lc-rs: about 5x faster than the
    /// pure-Rust verifier, and every delivery and certificate check runs it).
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<(), CertError> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(message, der_signature)
        .map_err(|_| CertError::BadSignature)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IdentityPublicKey({})",
            crate::envelope::KeyFingerprint::of_der(&self.spki_der)
        )
    }
}
