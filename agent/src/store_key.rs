//! The store key's generations: sealing a new one, unsealing the ones a store needs, and rotating it.
//!
//! The sealed generations and the rotation's state live in a small manifest beside the store ([`manifest`]); the
//! board's sealers (key file, TPM 2.0) seal and unseal each generation ([`sealing`]). A rotation is three persisted
//! states, each entered by one atomic manifest write ([`rotate`]):
//!
//! `steady {active}` → `reencrypting {active: new, retiring: old}` → `destroying {active, retired: old}` → `steady`.
//!
//! The new key is sealed and the manifest saved before any record is written under it; the retiring key stays
//! loaded (decrypt only) until every record has been re-encrypted in bounded, atomic, flushed batches
//! ([`crate::store::Store::reencrypt_batch`]); what sealed it is destroyed only after the manifest no longer needs
//! it. A crash anywhere resumes on the next open from the state saved, with no record lost or unreadable.
//!
//! What this module does not do: it never writes a store key in the clear, and it does not decide when to rotate
//! (the agent's schedule, `[store] rotate_key_days`, and `tessera-agent rotate-store-key` do).

pub mod manifest;
pub mod rotate;
pub mod sealing;
pub mod worker;

use std::path::PathBuf;

use tessera_board::SealError;

use crate::store::StoreError;

pub use manifest::{KeyState, SealedGeneration, SealerRef};

/// Why a store key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreKeyError {
    /// The sealer refused (missing key file, no TPM, PCR mismatch, ...): its message says what to do.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest is not one this agent can use.
    #[error("store key manifest {path}: {reason}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A rotation is already under way.
    #[error("a store-key rotation to generation {generation} is already under way ({state}); it resumes by itself")]
    InProgress {
        /// The generation being rotated to.
        generation: u32,
        /// `reencrypting` or `destroying`.
        state: &'static str,
    },
    /// The agent is not enrolled (no sealed store key).
    #[error("no sealed store key in {0}: this agent is not enrolled (run `tessera-agent enroll`)")]
    NotEnrolled(PathBuf),
    /// Every generation number is used.
    #[error("the store key generation counter is exhausted")]
    Exhausted,
}
