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
    /// Destroys what this instance needs to unseal, once the store key it sealed is retired (store-key rotation):
    /// the file backend removes its key file (so a copy of an old sealed blob no longer opens); the TPM backend,
    /// whose sealed objects are loaded from the blob and never persisted, has nothing in the TPM to evict (the
    /// caller deletes the blob). Idempotent: destroying twice, or after a crash half-way, succeeds.
    fn destroy(&self) -> Result<(), SealError>;
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
        "sealed store key does not open with this {0} backend (another key file or TPM, a cleared TPM, another \
         primary key, or an altered blob)"
    )]
    Unseal(&'static str),
    /// The TPM cannot be reached: the TCTI does not open (no device, no permission, no simulator listening).
    #[error(
        "cannot reach the TPM at {tcti:?} ({detail}); check /dev/tpmrm0 exists and the agent user is in group tss, \
         or set [sealer.tpm] tcti"
    )]
    NoTpm {
        /// The TCTI that was tried.
        tcti: String,
        /// What the TSS reported.
        detail: String,
    },
    /// The TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT).
    #[error(
        "the TPM is in dictionary-attack lockout; wait for the lockout to expire, or have the TPM owner run \
         `tpm2_dictionarylockout --clear-lockout`"
    )]
    TpmLockout,
    /// The sealed key's PCR policy does not hold: the named PCRs differ from their values when the key was sealed.
    #[error(
        "the TPM's {bank} PCRs {pcrs:?} differ from their values when the store key was sealed (firmware, boot \
         chain or configuration changed); see docs/operations.md \"Re-sealing after a firmware update\""
    )]
    PcrMismatch {
        /// The PCR bank (`sha1`, `sha256`, `sha384`).
        bank: String,
        /// The PCRs whose values changed.
        pcrs: Vec<u8>,
    },
    /// The TPM refused the owner hierarchy's authorization (TPM_RC_AUTH_FAIL / TPM_RC_BAD_AUTH).
    #[error(
        "the TPM refused the owner hierarchy authorization; check [sealer.tpm] owner_auth_file (it must hold the \
         owner auth value set with tpm2_changeauth -c owner)"
    )]
    TpmAuth,
    /// The configured persistent primary key does not exist in the TPM.
    #[error(
        "no persistent TPM object at handle {handle:#010x}; create it with `tpm2_createprimary -C o -G \
         ecc256:null:aes128cfb -c primary.ctx && tpm2_evictcontrol -C o -c primary.ctx {handle:#010x}`, or remove \
         [sealer.tpm] primary_handle to use a transient primary"
    )]
    TpmObjectMissing {
        /// The persistent handle.
        handle: u32,
    },
    /// The `[sealer.tpm]` configuration is invalid.
    #[error("invalid [sealer.tpm] configuration: {0}")]
    TpmConfig(String),
    /// Any other TPM failure.
    #[error("TPM error: {detail}; check the TPM with `tpm2_getcap properties-variable` and retry")]
    Tpm {
        /// What the TSS reported (never key material).
        detail: String,
    },
    /// The TPM backend was configured but this build does not include it.
    #[error("this build has no TPM support; build tessera-agent with --features tpm")]
    TpmNotBuilt,
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
