//! Opening the store: the board's sealer unseals the store key, which opens the encrypted store.

use std::path::PathBuf;

use tessera_board::{
    write_private_file, FileSealer, SealError, SealedKey, Sealer, STORE_KEY_BYTES,
};
use tessera_proto::secret::SecretBytes;

use crate::config::AgentConfig;
use crate::private_dir::{check_state_dir, restrict_tree, DirError};
use crate::store::{Store, StoreError};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No sealed store key: the agent is not enrolled.
    #[error("no sealed store key at {0}: this agent is not enrolled (run `tessera-agent enroll`)")]
    NotEnrolled(PathBuf),
    /// The state directory is not the agent's own (group- or world-writable, another owner).
    #[error(transparent)]
    UnsafeDir(#[from] DirError),
    /// The sealer refused (missing or unsafe key file, or a blob it cannot open).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store refused (wrong key, corrupt, locked).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the sealed key failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the store of an enrolled agent.
pub fn open_store(cfg: &AgentConfig) -> Result<Store, OpenError> {
    open(cfg, false)
}

/// Opens the store, creating the key file, the sealed store key and the store if they do not exist (enrolment).
pub fn open_or_create_store(cfg: &AgentConfig) -> Result<Store, OpenError> {
    open(cfg, true)
}

fn open(cfg: &AgentConfig, create: bool) -> Result<Store, OpenError> {
    check_state_dir(&cfg.state_dir, create)?;
    let sealed_path = cfg.sealed_key_file();
    let io = |source| OpenError::Io {
        path: sealed_path.clone(),
        source,
    };
    let key_file = cfg.key_file();
    let store_key = match std::fs::read(&sealed_path) {
        Ok(blob) => FileSealer::open(&key_file)?.unseal(&SealedKey(blob))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let sealer = FileSealer::open_or_create(&key_file)?;
            let mut key = vec![0u8; STORE_KEY_BYTES];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
            let key = SecretBytes::new(key);
            let blob = sealer.seal(&key)?;
            write_private_file(&sealed_path, &blob.0).map_err(io)?;
            key
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::NotEnrolled(sealed_path));
        }
        Err(e) => return Err(io(e)),
    };
    restrict_tree(&cfg.store_dir())?;
    let store = Store::open(&cfg.store_dir(), &store_key, cfg.audit.max_entries)?;
    // sled's files, if anything created them under a looser umask.
    restrict_tree(&cfg.store_dir())?;
    store.set_quarantine_revoked_signers(cfg.store.quarantine_revoked_signers);
    Ok(store)
}
