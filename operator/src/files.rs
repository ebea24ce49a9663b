//! Files of the operator and CA directories: read a JSON document, write one atomically (a temporary file in the
//! same directory, flushed, renamed over the old one, the directory flushed), mode 0600.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// A file that could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct FileError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub detail: String,
}

impl FileError {
    pub(crate) fn new(path: &Path, detail: &dyn std::fmt::Display) -> Self {
        Self {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }
}

/// The JSON document at `path`, or `None` when there is no such file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::new(path, &e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        FileError::new(
            path,
            &format!(
                "{e}: not the JSON document expected here; restore it from a backup or from another operator \
                 directory of the same CA"
            ),
        )
    })
}

/// Writes `value` as pretty JSON to `path`, atomically and durably.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| FileError::new(path, &e))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| FileError::new(path, &"not a file name"))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| FileError::new(&tmp, &e))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| FileError::new(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| FileError::new(path, &e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::new(dir, &e))
}

#[cfg(test)]
mod tests;
