//! # tessera-board
//!
//! What differs per appliance:
//! - [`Sealer`]: seals and unseals the agent's 32-byte store key. Two backends meet the same contract
//!   (`tests/sealer_contract.rs`):
//!   - [`FileSealer`] keeps a key-encryption key in a file that must be a regular file owned by the agent's user
//!     with mode 0600 (it is written atomically and refuses to start on anything looser).
//!   - The TPM 2.0 backend (cargo feature `tpm`, [`tpm_sealer`] with a [`TpmConfig`]; [`TPM_BUILT`] says whether
//!     this build has it) makes the store key the sensitive data of a sealed-data object created under a storage
//!     primary key of the owner hierarchy: either created from the standard template (ECC P-256, AES-128-CFB) at
//!     every operation, or an existing persistent key (`primary_handle`). The object is `fixedTPM`/`fixedParent`:
//!     the blob opens only on the TPM that sealed it, under the same primary. With `pcrs` configured, its
//!     authPolicy is a PolicyPCR over those PCRs' values at seal time, so it unseals only while they hold the same
//!     values; a mismatch is reported as [`SealError::PcrMismatch`] naming the PCRs that changed (the blob keeps
//!     the sealed values for that; they are checked against the authPolicy before use). Sessions are salted with
//!     the primary key and encrypt parameters, so the key does not cross the bus in the clear; the owner
//!     hierarchy's auth value is used in an HMAC session and comes only from `owner_auth_file`, never from the
//!     command line or the environment. Every TPM failure maps to a typed [`SealError`] telling the operator the
//!     next step (no TPM, lockout, wrong owner auth, missing persistent primary).
//! - [`DeviceFacts`]: the serial number and model, from DMI (`/sys/class/dmi/id`) or the device tree
//!   (`/proc/device-tree`) where present, from configuration otherwise.
//!
//! What it does not do: it never stores credentials, never decides policy, and never writes the store key itself
//! to disk in the clear. Anyone who can read the key file and the sealed blob can recover the store key: the file
//! backend protects against a stolen flash image only together with filesystem permissions; the TPM backend is the
//! one that binds the key to the board. Its limits: the TPM backend keeps nothing in the TPM, so a copy of an old
//! blob still unseals on the same TPM (same primary, same PCR state) — destroying a sealed key means deleting
//! the blob, and [`Sealer::destroy`] has nothing to evict; anyone with access to the TPM device on the running
//! board in the sealed PCR state can unseal a blob they hold (the PCR policy protects against a changed boot chain,
//! not against a local attacker on the booted system); after a firmware or bootloader update that changes a bound
//! PCR, the key must be re-sealed (docs/operations.md, "Re-sealing after a firmware update").
//!
//! This is the only crate that may contain `unsafe` (for board FFI), and then only item by item with
//! `#[allow(unsafe_code)]` and a safety comment; the workspace denies it everywhere else. It has none today: the
//! TPM backend reaches tpm2-tss through tss-esapi's safe wrapper.

mod atomic_file;
mod device;
mod file;
mod sealer;
#[cfg(feature = "tpm")]
mod tpm;
mod tpm_config;

pub use atomic_file::write_private_file;
pub use device::{DeviceFacts, DeviceOverrides};
pub use file::FileSealer;
pub use sealer::{SealError, SealedKey, Sealer, STORE_KEY_BYTES};
#[cfg(feature = "tpm")]
pub use tpm::TpmSealer;
pub use tpm_config::{PcrBank, TpmConfig, PCR_COUNT};

/// Whether this build includes the TPM backend (the `tpm` cargo feature).
pub const TPM_BUILT: bool = cfg!(feature = "tpm");

/// The TPM sealer for `cfg`: validates the configuration and opens the TPM once, so a missing TPM, a bad TCTI or
/// a missing persistent primary is reported at start. In a build without the `tpm` feature it returns
/// [`SealError::TpmNotBuilt`].
pub fn tpm_sealer(cfg: &TpmConfig) -> Result<Box<dyn Sealer>, SealError> {
    #[cfg(feature = "tpm")]
    {
        Ok(Box::new(TpmSealer::new(cfg)?))
    }
    #[cfg(not(feature = "tpm"))]
    {
        let _ = cfg;
        Err(SealError::TpmNotBuilt)
    }
}
