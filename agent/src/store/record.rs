//! One record on disk: `format(1) ‖ version(u64 be) ‖ nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)` with associated data
//! `DOMAIN ‖ u32 be key length ‖ key ‖ u64 be version`, so a record copied under another key, or an older copy put
//! back under its own key with another version, fails to open or is caught by the caller's version check.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use tessera_proto::secret::SecretBytes;
use zeroize::Zeroizing;

const FORMAT: u8 = 1;
const DOMAIN: &[u8] = b"tessera/store-record/v1\0";
const HEADER: usize = 1 + 8 + 12;

/// Why a record did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordFault {
    /// Too short, or an unknown format byte.
    Malformed,
    /// The tag did not verify: wrong store key, altered bytes or a record moved from another key.
    Authentication,
}

/// Encrypts and decrypts records under the store key.
pub(crate) struct RecordCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordCipher([REDACTED])")
    }
}

fn aad(key: &[u8], version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN.len() + 4 + key.len() + 8);
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(key);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl RecordCipher {
    /// `None` unless the key is 32 bytes.
    pub(crate) fn new(store_key: &SecretBytes) -> Option<Self> {
        store_key.expose(|k| {
            (k.len() == 32).then(|| Self {
                cipher: Aes256Gcm::new(k.into()),
            })
        })
    }

    /// Fails only if AES-GCM refuses the length (over 64 GiB), which bounded records never reach.
    pub(crate) fn seal(&self, key: &[u8], version: u64, plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let aad = aad(key, version);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(FORMAT);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Some(out)
    }

    /// Opens a record stored under `key`, returning its version and plaintext.
    pub(crate) fn open(
        &self,
        key: &[u8],
        record: &[u8],
    ) -> Result<(u64, Zeroizing<Vec<u8>>), RecordFault> {
        let (format, rest) = record.split_first().ok_or(RecordFault::Malformed)?;
        if *format != FORMAT || rest.len() < 8 + 12 + 16 {
            return Err(RecordFault::Malformed);
        }
        let (version, rest) = rest.split_at(8);
        let (nonce, ct) = rest.split_at(12);
        let mut v = [0u8; 8];
        v.copy_from_slice(version);
        let version = u64::from_be_bytes(v);
        let aad = aad(key, version);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(|pt| (version, Zeroizing::new(pt)))
            .map_err(|_| RecordFault::Authentication)
    }
}
