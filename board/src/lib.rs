//! # tessera-board
//!
//! What differs per appliance:
//! - [`Sealer`]: seals and unseals the agent's 32-byte store key. The [`FileSealer`] backend keeps a key-encryption
//!   key in a file that must be a regular file owned by the agent's user with mode 0600 (it is written atomically
//!   and refuses to start on anything looser). A TPM 2.0 backend arrives behind the `tpm` cargo feature on the same
//!   trait and the same contract tests (`tests/sealer_contract.rs`).
//! - [`DeviceFacts`]: the serial number and model, from DMI (`/sys/class/dmi/id`) or the device tree
//!   (`/proc/device-tree`) where present, from configuration otherwise.
//!
//! What it does not do: it never stores credentials, never decides policy, and never writes the store key itself
//! to disk in the clear. Anyone who can read the key file and the sealed blob can recover the store key: the file
//! backend protects against a stolen flash image only together with filesystem permissions; the TPM backend is the
//! one that binds the key to the board.
//!
//! This is the only crate that may contain `unsafe` (for board FFI), and then only item by item with
//! `#[allow(unsafe_code)]` and a safety comment; the workspace denies it everywhere else.

mod atomic_file;
mod device;
mod file;
mod sealer;

pub use atomic_file::write_private_file;
pub use device::{DeviceFacts, DeviceOverrides};
pub use file::FileSealer;
pub use sealer::{SealError, SealedKey, Sealer, STORE_KEY_BYTES};
