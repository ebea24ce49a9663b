//! The key-file backend: a 32-byte key-encryption key in a file (0600, owned by the agent's user) seals the store
//! key with AES-256-GCM.
//!
//! Sealed blob: `"TSK1" ‖ nonce(12) ‖ AES-256-GCM(kek, store key, aad = DOMAIN)`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use tessera_proto::secret::SecretBytes;
use zeroize::Zeroizing;

use crate::atomic_file::write_private_file;
use crate::sealer::{SealError, SealedKey, Sealer, STORE_KEY_BYTES};

const MAGIC: &[u8; 4] = b"TSK1";
const DOMAIN: &[u8] = b"tessera/store-key/file/v1";
const NONCE_BYTES: usize = 12;

/// The key-file sealer.
pub struct FileSealer {
    path: PathBuf,
    kek: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for FileSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSealer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileSealer {
    /// Opens an existing key file, refusing it unless it is a regular file owned by this user with mode 0600.
    pub fn open(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SealError::Missing(path.to_owned()))
            }
            Err(e) => return Err(io(e)),
        };
        check_private(path, &meta)?;
        let mut kek = Zeroizing::new([0u8; 32]);
        let mut file = fs::File::open(path).map_err(io)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(33));
        file.by_ref().take(33).read_to_end(&mut buf).map_err(io)?;
        if buf.len() != 32 {
            return Err(SealError::CorruptKeyFile(path.to_owned()));
        }
        kek.copy_from_slice(&buf);
        Ok(Self {
            path: path.to_owned(),
            kek,
        })
    }

    /// Opens the key file, creating it with a fresh random key (atomically, mode 0600) if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, SealError> {
        match Self::open(path) {
            Err(SealError::Missing(_)) => {
                let mut kek = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(kek.as_mut());
                write_private_file(path, kek.as_ref()).map_err(|source| SealError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Self::open(path)
            }
            other => other,
        }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.kek.as_ref().into())
    }
}

fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), SealError> {
    let uid = rustix::process::geteuid().as_raw();
    let problem = if !meta.file_type().is_file() {
        Some("not a regular file".to_owned())
    } else if meta.uid() != uid {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.permissions().mode() & 0o077 != 0 {
        Some(format!("mode {:04o}", meta.permissions().mode() & 0o7777))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SealError::Permissions {
            path: path.to_owned(),
            problem,
            uid,
        }),
        None => Ok(()),
    }
}

impl Sealer for FileSealer {
    fn backend(&self) -> &'static str {
        "file"
    }

    fn seal(&self, key: &SecretBytes) -> Result<SealedKey, SealError> {
        if key.len() != STORE_KEY_BYTES {
            return Err(SealError::KeyLength);
        }
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let ct = key
            .expose(|msg| {
                self.cipher()
                    .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad: DOMAIN })
            })
            .map_err(|_| SealError::Unseal("file"))?;
        let mut blob = Vec::with_capacity(4 + NONCE_BYTES + ct.len());
        blob.extend_from_slice(MAGIC);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(SealedKey(blob))
    }

    fn unseal(&self, sealed: &SealedKey) -> Result<SecretBytes, SealError> {
        let blob = &sealed.0;
        let (magic, rest) = blob.split_at_checked(4).ok_or(SealError::Unseal("file"))?;
        if magic != MAGIC {
            return Err(SealError::Unseal("file"));
        }
        let (nonce, ct) = rest
            .split_at_checked(NONCE_BYTES)
            .ok_or(SealError::Unseal("file"))?;
        let key = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: DOMAIN,
                },
            )
            .map_err(|_| SealError::Unseal("file"))?;
        let key = SecretBytes::new(key);
        if key.len() == STORE_KEY_BYTES {
            Ok(key)
        } else {
            Err(SealError::KeyLength)
        }
    }

    fn destroy(&self) -> Result<(), SealError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SealError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| SealError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
