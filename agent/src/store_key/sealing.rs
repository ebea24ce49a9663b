//! Sealing a new store key generation and unsealing existing ones with the board's sealers.

use std::path::{Path, PathBuf};

use tessera_board::{FileSealer, SealError, SealedKey, Sealer, STORE_KEY_BYTES};
use tessera_proto::secret::SecretBytes;

use super::manifest::{SealedGeneration, SealerRef};
use super::StoreKeyError;
use crate::config::{AgentConfig, SealerBackend};

/// A key file path as the manifest records it: relative to the state directory when it is inside it (so the state
/// directory can be moved or restored elsewhere as a whole), absolute otherwise.
fn recorded(cfg: &AgentConfig, path: &Path) -> PathBuf {
    path.strip_prefix(&cfg.state_dir)
        .map_or_else(|_| path.to_owned(), Path::to_owned)
}

/// A key file path from the manifest, resolved against the state directory.
pub fn resolved(cfg: &AgentConfig, path: &Path) -> PathBuf {
    if path.is_relative() {
        cfg.state_dir.join(path)
    } else {
        path.to_owned()
    }
}

/// The sealer of an existing generation.
pub fn sealer_for(cfg: &AgentConfig, sealer: &SealerRef) -> Result<Box<dyn Sealer>, SealError> {
    match sealer {
        SealerRef::File { key_file } => Ok(Box::new(FileSealer::open(&resolved(cfg, key_file))?)),
        SealerRef::Tpm => tessera_board::tpm_sealer(&cfg.sealer.tpm),
    }
}

/// Unseals one generation's store key.
pub fn unseal(
    cfg: &AgentConfig,
    generation: &SealedGeneration,
) -> Result<SecretBytes, StoreKeyError> {
    let key = sealer_for(cfg, &generation.sealer)?.unseal(&SealedKey(generation.sealed.clone()))?;
    Ok(key)
}

/// The key file of generation `generation` when the file sealer seals it during a rotation: beside the configured
/// one, `<key_file>.<generation>` (enrolment uses the configured file itself).
pub fn rotated_key_file(cfg: &AgentConfig, generation: u32) -> PathBuf {
    let mut name = cfg.key_file().into_os_string();
    name.push(format!(".{generation}"));
    PathBuf::from(name)
}

/// Whether [`new_generation`] keeps a key file already at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFile {
    /// Use it (enrolment: a provisioning step may have put the key file in place).
    KeepExisting,
    /// Replace it (rotation: a file at the next generation's path was left by a crash before the manifest ever
    /// recorded it, and is never reused).
    Fresh,
}

/// A fresh random store key for generation `generation`, sealed by `backend` (with the file sealer: by the key file
/// at `key_file`, created if missing).
pub fn new_generation(
    cfg: &AgentConfig,
    generation: u32,
    backend: SealerBackend,
    (key_file, existing): (&Path, KeyFile),
    now: i64,
) -> Result<(SealedGeneration, SecretBytes), StoreKeyError> {
    let (sealer_ref, sealer): (SealerRef, Box<dyn Sealer>) = match backend {
        SealerBackend::File => {
            let removed = match existing {
                KeyFile::KeepExisting => Ok(()),
                KeyFile::Fresh => std::fs::remove_file(key_file),
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreKeyError::Io {
                        path: key_file.to_owned(),
                        source,
                    })
                }
            }
            (
                SealerRef::File {
                    key_file: recorded(cfg, key_file),
                },
                Box::new(FileSealer::open_or_create(key_file)?),
            )
        }
        SealerBackend::Tpm => (SealerRef::Tpm, tessera_board::tpm_sealer(&cfg.sealer.tpm)?),
    };
    let mut key = vec![0u8; STORE_KEY_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
    let key = SecretBytes::new(key);
    let blob = sealer.seal(&key)?;
    Ok((
        SealedGeneration {
            generation,
            created_at: now,
            sealer: sealer_ref,
            sealed: blob.0,
        },
        key,
    ))
}

/// Destroys what sealed a retired generation: its key file (already gone is fine), unlinked without being opened
/// (a damaged file must not keep the agent from starting). Only a path this agent could have made for that
/// generation is deleted: the configured key file (enrolment, and generation 0) or `<key_file>.<generation>`; any
/// other path the manifest names is left alone and reported. A TPM generation has nothing in the TPM to evict (the
/// board never persists its sealed objects): dropping the blob from the manifest is its destruction, so the TPM is
/// not even opened (a rotation away from a failing TPM still finishes).
pub fn destroy(cfg: &AgentConfig, generation: &SealedGeneration) -> Result<(), StoreKeyError> {
    let SealerRef::File { key_file } = &generation.sealer else {
        return Ok(());
    };
    let path = resolved(cfg, key_file);
    if path != cfg.key_file() && path != rotated_key_file(cfg, generation.generation) {
        return Err(StoreKeyError::Manifest {
            path: cfg.store_keys_file(),
            reason: format!(
                "generation {} names key file {}, which is not one this agent makes ({} or {}); not deleted",
                generation.generation,
                path.display(),
                cfg.key_file().display(),
                rotated_key_file(cfg, generation.generation).display()
            ),
        });
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(StoreKeyError::Io { path, source }),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreKeyError::Io {
                path: dir.to_owned(),
                source,
            })?;
    }
    Ok(())
}
