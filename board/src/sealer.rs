//! The sealing contract every backend meets.

use std::path::PathBuf;

use tessera_proto::secret::SecretBytes;

/// Length of the store key (AES-256).
pub const STORE_KEY_BYTES: usize = 32;

/// A sealed store key: opaque bytes only the backend that made them can open.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey(pub Vec<u8>);

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedKey({} bytes)", self.0.len())
    }
}

/// Seals and unseals the store key.
///
/// Contract (checked for every backend by `tests/sealer_contract.rs`): `unseal(seal(k)) == k`; a blob altered in
/// any byte fails with [`SealError::Unseal`]; a blob sealed by another instance (another key file, another TPM)
/// fails with [`SealError::Unseal`]; only keys of [`STORE_KEY_BYTES`] are accepted.
pub trait Sealer: Send + Sync + std::fmt::Debug {
    /// Short backend name for logs (`file`, `tpm`).
    fn backend(&self) -> &'static str;
    /// Seals `key`.
    fn seal(&self, key: &SecretBytes) -> Result<SealedKey, SealError>;
    /// Unseals a blob made by [`Sealer::seal`].
    fn unseal(&self, sealed: &SealedKey) -> Result<SecretBytes, SealError>;
}

/// Why sealing or unsealing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The key file is missing.
    #[error("key file {0} does not exist")]
    Missing(PathBuf),
    /// The key file is readable or writable by others, or not owned by this user, or not a regular file.
    #[error("key file {path} is unsafe: {problem}; it must be a regular file owned by uid {uid} with mode 0600")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// The uid that must own it.
        uid: u32,
    },
    /// The key file does not hold a key of the right length.
    #[error("key file {0} is corrupt (wrong length)")]
    CorruptKeyFile(PathBuf),
    /// The key to seal has the wrong length.
    #[error("the store key must be {STORE_KEY_BYTES} bytes")]
    KeyLength,
    /// The blob is not one this backend sealed, or was altered.
    #[error(
        "sealed store key does not open with this {0} backend (wrong key file or tampered blob)"
    )]
    Unseal(&'static str),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
