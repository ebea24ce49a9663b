//! The envelope: a secret sealed to one agent's RSA wrap key.
//!
//! Format (docs/protocol.md, "Envelope"; byte-compatible with the reference implementation):
//! `{encrypted_key: b64(RSA-OAEP-SHA256/MGF1-SHA256(aes_key)), iv: b64(12 bytes),
//!   ciphertext: b64(AES-256-GCM(plaintext) without tag), tag: b64(16 bytes)}`,
//! with a fresh random 32-byte AES key and 12-byte IV per envelope and no OAEP label or GCM associated data.
//!
//! RSA is done by aws-lc-rs (AWS-LC), whose private-key operations are constant time; the `rsa` crate is not
//! used (RUSTSEC-2023-0071, see docs/threat-model.md). AES-GCM is RustCrypto's `aes-gcm`.
//!
//! An envelope only proves "someone with the public key sealed these bytes". Which credential and version the
//! bytes are is proven by the creator's commitment (see [`crate::commitment`]), never by the envelope.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::AeadInPlace as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, Tag};
use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::secret::{SecretBytes, MAX_SECRET_BYTES};
use crate::{b64, random};

pub mod batch;

/// Length of the AES-256 key inside an envelope.
pub const AES_KEY_LEN: usize = 32;
/// Length of the AES-GCM IV.
pub const IV_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Smallest accepted wrap key, in bits.
pub const MIN_WRAP_KEY_BITS: usize = 2048;
/// Largest accepted wrap key, in bits (bounds the cost an attacker can impose with a huge key).
pub const MAX_WRAP_KEY_BITS: usize = 4096;

/// Why a wrap key was refused or could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a DER RSA key of an accepted size.
    #[error("wrap key rejected: {0}")]
    Rejected(&'static str),
    /// The key could not be generated or exported (the crypto library failed).
    #[error("wrap key could not be generated or exported")]
    Internal,
}

/// Why an envelope could not be sealed or opened. Each failure class has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A field is not valid base64.
    #[error("envelope field `{field}` is not valid base64")]
    Encoding {
        /// The field.
        field: &'static str,
    },
    /// A fixed-length field has the wrong length (truncated or extended).
    #[error("envelope field `{field}` is {actual} bytes, expected {expected}")]
    FieldLength {
        /// The field.
        field: &'static str,
        /// The length the format requires.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// A field is larger than the protocol allows.
    #[error("envelope field `{field}` is larger than {max} bytes")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// RSA-OAEP did not open `encrypted_key`: the envelope was sealed to another key, or the field was altered.
    /// (The two are indistinguishable by design.)
    #[error("the envelope key does not open with this wrap key (wrong recipient or altered encrypted_key)")]
    KeyUnwrap,
    /// RSA-OAEP opened to something that is not a 32-byte AES key: the sender does not follow the format.
    #[error("the unwrapped envelope key is {len} bytes, expected {AES_KEY_LEN}")]
    UnwrappedKeyLength {
        /// Length found.
        len: usize,
    },
    /// AES-GCM authentication failed: the iv, ciphertext or tag was altered.
    #[error("envelope authentication failed (iv, ciphertext or tag altered)")]
    Authentication,
    /// The plaintext to seal is larger than the limit ([`MAX_SECRET_BYTES`], or a batch's).
    #[error("plaintext is larger than the envelope's limit")]
    PlaintextTooLarge,
    /// The crypto library failed while sealing.
    #[error("envelope sealing failed in the crypto library")]
    Internal,
}

/// SHA-256 of a wrap key's SubjectPublicKeyInfo DER: how messages name the key a secret is sealed to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyFingerprint(#[serde(with = "crate::b64::array")] pub [u8; 32]);

impl KeyFingerprint {
    /// Fingerprint of arbitrary DER bytes.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An agent's RSA wrap public key.
#[derive(Clone)]
pub struct WrapPublicKey {
    spki_der: Vec<u8>,
    key: Arc<OaepPublicEncryptingKey>,
}

impl WrapPublicKey {
    /// Parses a DER SubjectPublicKeyInfo holding an RSA key of 2048 to 4096 bits.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let public = PublicEncryptingKey::from_der(der)
            .map_err(|_| KeyError::Rejected("not a DER RSA SubjectPublicKeyInfo"))?;
        let bits = public.key_size_bits();
        if !(MIN_WRAP_KEY_BITS..=MAX_WRAP_KEY_BITS).contains(&bits) {
            return Err(KeyError::Rejected("RSA key size outside 2048..=4096 bits"));
        }
        let key = OaepPublicEncryptingKey::new(public)
            .map_err(|_| KeyError::Rejected("RSA key unusable for OAEP"))?;
        Ok(Self {
            spki_der: der.to_vec(),
            key: Arc::new(key),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint::of_der(&self.spki_der)
    }

    /// Size of the RSA modulus in bytes (the length of `encrypted_key`).
    pub fn size_bytes(&self) -> usize {
        self.key.key_size_bytes()
    }
}

impl fmt::Debug for WrapPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrapPublicKey({})", self.fingerprint())
    }
}

/// An agent's RSA wrap private key. Never leaves the agent; exported only as zeroizing PKCS#8.
pub struct WrapPrivateKey {
    key: OaepPrivateDecryptingKey,
    pkcs8: SecretBytes,
    public: WrapPublicKey,
}

impl WrapPrivateKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, KeyError> {
        let key =
            PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|_| KeyError::Internal)?;
        let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| KeyError::Internal)?;
        let pkcs8 = SecretBytes::copy_from(der.as_ref());
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Loads a PKCS#8 DER RSA private key.
    pub fn from_pkcs8_der(pkcs8: &SecretBytes) -> Result<Self, KeyError> {
        let private = pkcs8
            .expose(PrivateDecryptingKey::from_pkcs8)
            .map_err(|_| KeyError::Rejected("not a PKCS#8 RSA private key"))?;
        let public_der: PublicKeyX509Der<'static> = private
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Internal)?;
        let public = WrapPublicKey::from_spki_der(public_der.as_ref())?;
        let key = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| KeyError::Rejected("RSA key unusable for OAEP"))?;
        Ok(Self {
            key,
            pkcs8: pkcs8.clone(),
            public,
        })
    }

    /// The PKCS#8 DER encoding, for sealing into the agent's store.
    pub fn to_pkcs8_der(&self) -> &SecretBytes {
        &self.pkcs8
    }

    /// The matching public key.
    pub fn public_key(&self) -> &WrapPublicKey {
        &self.public
    }
}

impl fmt::Debug for WrapPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WrapPrivateKey([REDACTED], public={})",
            self.public.fingerprint()
        )
    }
}

/// A sealed secret, exactly as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// base64(RSA-OAEP-SHA256(aes_key)).
    pub encrypted_key: String,
    /// base64(12-byte IV).
    pub iv: String,
    /// base64(AES-256-GCM ciphertext, tag removed).
    pub ciphertext: String,
    /// base64(16-byte GCM tag).
    pub tag: String,
}

/// Seals `plaintext` (at most [`MAX_SECRET_BYTES`]) to `recipient` with a fresh AES key and IV.
pub fn seal(recipient: &WrapPublicKey, plaintext: &SecretBytes) -> Result<Envelope, EnvelopeError> {
    seal_sized(recipient, plaintext, MAX_SECRET_BYTES)
}

/// [`seal`] with another plaintext limit: a batch ([`batch`]) carries up to [`batch::MAX_BATCH_PLAINTEXT`].
pub(crate) fn seal_sized(
    recipient: &WrapPublicKey,
    plaintext: &SecretBytes,
    max: usize,
) -> Result<Envelope, EnvelopeError> {
    if plaintext.len() > max {
        return Err(EnvelopeError::PlaintextTooLarge);
    }
    let aes_key = Zeroizing::new(random::array::<AES_KEY_LEN>());
    let iv = random::array::<IV_LEN>();

    let mut encrypted_key = vec![0u8; recipient.key.ciphertext_size()];
    let written = recipient
        .key
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            aes_key.as_slice(),
            &mut encrypted_key,
            None,
        )
        .map_err(|_| EnvelopeError::Internal)?
        .len();
    encrypted_key.truncate(written);

    let cipher =
        Aes256Gcm::new_from_slice(aes_key.as_slice()).map_err(|_| EnvelopeError::Internal)?;
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len()));
    plaintext.expose(|p| buffer.extend_from_slice(p));
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&iv), b"", &mut buffer)
        .map_err(|_| EnvelopeError::Internal)?;

    Ok(Envelope {
        encrypted_key: b64::encode(&encrypted_key),
        iv: b64::encode(iv),
        ciphertext: b64::encode(buffer.as_slice()),
        tag: b64::encode(tag),
    })
}

/// Opens `envelope` with `key`. Validates every field's encoding and size before any crypto runs.
pub fn open(key: &WrapPrivateKey, envelope: &Envelope) -> Result<SecretBytes, EnvelopeError> {
    open_sized(key, envelope, MAX_SECRET_BYTES)
}

/// [`open`] with another ciphertext limit (a batch's is [`batch::MAX_BATCH_PLAINTEXT`]).
pub fn open_sized(
    key: &WrapPrivateKey,
    envelope: &Envelope,
    max: usize,
) -> Result<SecretBytes, EnvelopeError> {
    let rsa_len = key.public.size_bytes();
    // Fixed-length fields get twice their size of slack so that a slightly extended field reports its length.
    let encrypted_key = decode_field("encrypted_key", &envelope.encrypted_key, 2 * rsa_len)?;
    let iv = decode_field("iv", &envelope.iv, 2 * IV_LEN)?;
    let tag = decode_field("tag", &envelope.tag, 2 * TAG_LEN)?;
    exact_len("encrypted_key", &encrypted_key, rsa_len)?;
    exact_len("iv", &iv, IV_LEN)?;
    exact_len("tag", &tag, TAG_LEN)?;
    let mut ciphertext = Zeroizing::new(decode_field("ciphertext", &envelope.ciphertext, max)?);

    let mut unwrapped = Zeroizing::new(vec![0u8; key.key.min_output_size()]);
    let aes_len = key
        .key
        .decrypt(
            &OAEP_SHA256_MGF1SHA256,
            &encrypted_key,
            &mut unwrapped,
            None,
        )
        .map_err(|_| EnvelopeError::KeyUnwrap)?
        .len();
    if aes_len != AES_KEY_LEN {
        return Err(EnvelopeError::UnwrappedKeyLength { len: aes_len });
    }
    let aes_key = unwrapped
        .get(..AES_KEY_LEN)
        .ok_or(EnvelopeError::Internal)?;
    let cipher = Aes256Gcm::new_from_slice(aes_key).map_err(|_| EnvelopeError::Internal)?;
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&iv),
            b"",
            &mut ciphertext,
            Tag::from_slice(&tag),
        )
        .map_err(|_| EnvelopeError::Authentication)?;
    Ok(SecretBytes::new(std::mem::take(&mut *ciphertext)))
}

/// Decodes one base64 field, refusing before decoding anything that would exceed `max` bytes.
fn decode_field(field: &'static str, text: &str, max: usize) -> Result<Vec<u8>, EnvelopeError> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(EnvelopeError::TooLarge { field, max });
    }
    b64::decode(text).ok_or(EnvelopeError::Encoding { field })
}

fn exact_len(field: &'static str, bytes: &[u8], expected: usize) -> Result<(), EnvelopeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(EnvelopeError::FieldLength {
            field,
            expected,
            actual: bytes.len(),
        })
    }
}

#[cfg(test)]
mod tests;
