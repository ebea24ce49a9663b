//! File modes outside systemd: the agent's directories are its own and private.
//!
//! `main` sets `umask(0o077)` first thing, so everything the agent creates (store files, the sealed key, the
//! enrolment request) is 0600 and every directory 0700 whatever the caller's umask. The state directory is created
//! 0700 and, when it exists, must be owned by the agent's uid and writable by nobody else
//! ([`check_state_dir`]); the store directory's entries are tightened to 0600/0700 on open. The socket directory,
//! when the agent creates it, is 0700, or 0710 with the socket group when one is configured (members may reach the
//! socket, not list the directory).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The umask the agent runs with.
pub const UMASK: u32 = 0o077;

/// A directory the agent refuses to use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// Group- or world-writable.
    #[error("state directory {path} has mode {mode:04o}: it must not be writable by group or others (chmod 0700)")]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Owned by another uid.
    #[error("state directory {path} is owned by uid {owner}, not by the agent's uid {me}")]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The agent's effective uid.
        me: u32,
    },
    /// Not a directory.
    #[error("state directory {0} is not a directory")]
    NotADirectory(PathBuf),
    /// It could not be created or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Sets the process umask to [`UMASK`].
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// Creates `path` (and missing parents) with `mode`, unaffected by the umask.
fn create(path: &Path, mode: u32) -> Result<(), DirError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|source| DirError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Checks the state directory: a directory owned by this uid, not writable by group or others. With `create`, a
/// missing one is created 0700; without, a missing one is fine (the caller reports "not enrolled").
pub fn check_state_dir(path: &Path, create_missing: bool) -> Result<(), DirError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if create_missing {
                create(path, 0o700)
            } else {
                Ok(())
            };
        }
        Err(source) => {
            return Err(DirError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(DirError::NotADirectory(path.to_owned()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(DirError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DirError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Creates `dir` 0700 if missing and takes group and other bits off its entries (files 0600, directories 0700),
/// one level of subdirectories deep (sled's `blobs/`).
pub fn restrict_tree(dir: &Path) -> Result<(), DirError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DirError::Io { path, source }
    };
    if !dir.exists() {
        return create(dir, 0o700);
    }
    tighten(dir)?;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        tighten(&path)?;
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).map_err(io(&path))? {
                tighten(&inner.map_err(io(&path))?.path())?;
            }
        }
    }
    Ok(())
}

fn tighten(path: &Path) -> Result<(), DirError> {
    let io = |source| DirError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(io)?;
    }
    Ok(())
}

/// Creates the socket's directory when it is missing: 0700, or 0710 owned by `gid` so that the socket group can
/// reach the socket (whose own mode and group decide who may connect). An existing directory is left as it is.
pub fn create_socket_dir(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mode = if gid.is_some() { 0o710 } else { 0o700 };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(gid) = gid {
        rustix::fs::chown(dir, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests;
