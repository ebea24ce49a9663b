//! The store key manifest (`<state_dir>/store-keys.json`, mode 0600, replaced atomically): the sealed store key
//! generations and where a store-key rotation stands. It holds no secret: each generation's key is sealed by its
//! backend. A store enrolled before the manifest existed has only `store.sealed` (generation 0 under the configured
//! key file); [`load`] reads it as [`KeyState::Steady`] and the next [`save`] replaces it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_board::write_private_file;

use super::StoreKeyError;
use crate::config::SealerBackend;

/// The manifest's format number.
const FORMAT: u32 = 1;

/// Largest manifest read (two sealed blobs of a few hundred bytes each).
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// What seals one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum SealerRef {
    /// A key-encryption key in this file.
    File {
        /// The key file.
        key_file: PathBuf,
    },
    /// The TPM of `[sealer.tpm]` (the blob names its primary key and PCR policy).
    Tpm,
}

impl SealerRef {
    /// `file` or `tpm`.
    pub fn backend(&self) -> &'static str {
        self.kind().name()
    }

    /// Which backend.
    pub fn kind(&self) -> SealerBackend {
        match self {
            Self::File { .. } => SealerBackend::File,
            Self::Tpm => SealerBackend::Tpm,
        }
    }
}

/// One sealed generation of the store key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedGeneration {
    /// The generation (records say which one encrypted them).
    pub generation: u32,
    /// When it was made, Unix seconds.
    pub created_at: i64,
    /// What seals it.
    pub sealer: SealerRef,
    /// The sealed key, base64.
    #[serde(with = "tessera_proto::b64::vec")]
    pub sealed: Vec<u8>,
}

/// Where the store key stands (docs/operations.md, "Rotating the store key", draws it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyState {
    /// One generation; no rotation under way.
    Steady {
        /// The store key.
        active: SealedGeneration,
    },
    /// A rotation: every write is under `active`; records under `retiring` are being re-encrypted.
    Reencrypting {
        /// The new generation.
        active: SealedGeneration,
        /// The old generation, decrypt only.
        retiring: SealedGeneration,
    },
    /// Every record is under `active`; what sealed `retired` is being destroyed.
    Destroying {
        /// The store key.
        active: SealedGeneration,
        /// The old generation, no longer used.
        retired: SealedGeneration,
    },
}

impl KeyState {
    /// The generation every write uses.
    pub fn active(&self) -> &SealedGeneration {
        match self {
            Self::Steady { active }
            | Self::Reencrypting { active, .. }
            | Self::Destroying { active, .. } => active,
        }
    }

    /// `steady`, `reencrypting` or `destroying`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Steady { .. } => "steady",
            Self::Reencrypting { .. } => "reencrypting",
            Self::Destroying { .. } => "destroying",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    keys: KeyState,
}

fn invalid(path: &Path, reason: impl Into<String>) -> StoreKeyError {
    StoreKeyError::Manifest {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StoreKeyError> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreKeyError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StoreKeyError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(invalid(path, "larger than 64 KiB"));
    }
    Ok(Some(bytes))
}

/// Checks the generations a state names are consistent: the retiring or retired one is older than the active one.
fn check(path: &Path, state: &KeyState) -> Result<(), StoreKeyError> {
    let older = match state {
        KeyState::Steady { .. } => None,
        KeyState::Reencrypting { retiring: o, .. } | KeyState::Destroying { retired: o, .. } => {
            Some(o)
        }
    };
    if older.is_some_and(|o| o.generation >= state.active().generation) {
        return Err(invalid(
            path,
            "the retiring generation is not older than the active one",
        ));
    }
    Ok(())
}

/// The store key state: from the manifest `manifest`, or, for a store enrolled before it existed, from `legacy`
/// (the raw sealed blob, generation 0, sealed by the key file `legacy_key_file`). `None`: not enrolled.
pub fn load(
    manifest: &Path,
    legacy: &Path,
    legacy_key_file: &Path,
) -> Result<Option<KeyState>, StoreKeyError> {
    if let Some(bytes) = read_bounded(manifest)? {
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| invalid(manifest, e.to_string()))?;
        if m.format != FORMAT {
            return Err(invalid(
                manifest,
                format!(
                    "format {} is not supported (this agent reads {FORMAT})",
                    m.format
                ),
            ));
        }
        check(manifest, &m.keys)?;
        return Ok(Some(m.keys));
    }
    let Some(blob) = read_bounded(legacy)? else {
        return Ok(None);
    };
    let created_at = std::fs::metadata(legacy)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(Some(KeyState::Steady {
        active: SealedGeneration {
            generation: 0,
            created_at,
            sealer: SealerRef::File {
                key_file: legacy_key_file.to_owned(),
            },
            sealed: blob,
        },
    }))
}

/// Replaces the manifest atomically (temp file, fsync, rename, fsync of the directory).
pub fn save(manifest: &Path, state: &KeyState) -> Result<(), StoreKeyError> {
    check(manifest, state)?;
    let json = serde_json::to_vec_pretty(&Manifest {
        format: FORMAT,
        keys: state.clone(),
    })
    .map_err(|e| invalid(manifest, e.to_string()))?;
    write_private_file(manifest, &json).map_err(|source| StoreKeyError::Io {
        path: manifest.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
