//! `tessera-agent config set KEY VALUE`: one value of the agent's TOML file changed in place, comments and layout
//! kept (`toml_edit`), the result checked by the agent's own loader ([`AgentConfig::from_toml`] and
//! [`AgentConfig::validate`]) before it atomically replaces the file. A key the agent does not know is refused,
//! named with the file, and nothing is written.
//!
//! KEY is dotted: `broker.host`, `socket.jit_timeout_ms`, `policy.db.uids`. VALUE is read as a TOML value when it
//! is one the key accepts (`8883`, `true`, `[1000, 1001]`, `"quoted"`), and as a string otherwise (`mqtt.example`).
//! A key that names a table (`broker`) is refused: its keys are set one at a time (`broker.host`), so that nothing
//! else in it silently returns to its default.
//!
//! The new file keeps the old one's mode, owner and group (the temporary file is created with the mode and
//! `fchown`ed before the rename: a root-run edit of a `root:tessera 0640` file stays readable by the agent). When
//! the path is a symlink, the file it points at is edited and the symlink stays. docs/operations.md "config set".

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::config::{AgentConfig, ConfigError};

/// Why a `config set` was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigEditError {
    /// The file could not be read or replaced.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML (before the change).
    #[error("{path} is not valid TOML: {message}")]
    NotToml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The key is empty or has an empty segment.
    #[error("{key:?} is not a key: use dotted names such as broker.host")]
    BadKey {
        /// The key given.
        key: String,
    },
    /// The agent has no such setting.
    #[error("unknown key {key} in {path}: {message}")]
    UnknownKey {
        /// The key given.
        key: String,
        /// The file.
        path: PathBuf,
        /// The loader's message (what it expected instead).
        message: String,
    },
    /// A segment of the key is a value, not a table (`broker.host.x`).
    #[error("{key} in {path}: {prefix} is a value, not a table")]
    NotATable {
        /// The key given.
        key: String,
        /// The file.
        path: PathBuf,
        /// The part of the key that is a value.
        prefix: String,
    },
    /// The key names a table: its keys are set one at a time.
    #[error("{key} in {path} is a table: set its keys one at a time, such as {example}")]
    IsATable {
        /// The key given.
        key: String,
        /// The file.
        path: PathBuf,
        /// A key to set instead (`broker.host`).
        example: String,
    },
    /// The new value is refused by the agent's configuration loader.
    #[error("{key} = {value} in {path}: {source}")]
    Invalid {
        /// The key given.
        key: String,
        /// The value given.
        value: String,
        /// The file.
        path: PathBuf,
        /// The loader's refusal.
        source: Box<ConfigError>,
    },
}

/// Sets `key` to `value` in the file at `path` (created when missing), if the agent's loader accepts the result.
pub fn set(path: &Path, key: &str, value: &str) -> Result<(), ConfigEditError> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.trim().is_empty()) {
        return Err(ConfigEditError::BadKey {
            key: key.to_owned(),
        });
    }
    let io = |source| ConfigEditError::Io {
        path: path.to_owned(),
        source,
    };
    let target = resolve(path).map_err(io)?;
    let text = match std::fs::read_to_string(&target) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let doc = DocumentMut::from_str(&text).map_err(|e| ConfigEditError::NotToml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // A TOML value first; a string when VALUE is not TOML or the key does not take what it parses as.
    let typed = Value::from_str(value).ok();
    let mut last = None;
    for candidate in typed.into_iter().chain([Value::from(value)]) {
        let mut next = doc.clone();
        put(&mut next, &segments, candidate).map_err(|e| match e {
            PutError::NotATable(prefix) => ConfigEditError::NotATable {
                key: key.to_owned(),
                path: path.to_owned(),
                prefix,
            },
            PutError::IsATable(first) => ConfigEditError::IsATable {
                key: key.to_owned(),
                path: path.to_owned(),
                example: format!("{key}.{}", first.as_deref().unwrap_or("KEY")),
            },
        })?;
        let out = next.to_string();
        match check(&out, path) {
            Ok(()) => return replace(&target, &out).map_err(io),
            Err(e) => {
                if let Some(message) = unknown_field(&e) {
                    return Err(ConfigEditError::UnknownKey {
                        key: key.to_owned(),
                        path: path.to_owned(),
                        message,
                    });
                }
                // The first (typed) refusal is the one worth reporting.
                last.get_or_insert(e);
            }
        }
    }
    Err(ConfigEditError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        path: path.to_owned(),
        source: Box::new(last.unwrap_or_else(|| ConfigError::Invalid("refused".to_owned()))),
    })
}

/// The agent's loader on the new text: parse (unknown keys are errors) and validate, no environment.
fn check(text: &str, path: &Path) -> Result<(), ConfigError> {
    AgentConfig::from_toml(text, path)?.validate()
}

/// The loader's message when it refused an unknown field.
fn unknown_field(e: &ConfigError) -> Option<String> {
    match e {
        ConfigError::Parse { message, .. } if message.contains("unknown field") => Some(
            message
                .lines()
                .find(|l| l.contains("unknown field"))
                .unwrap_or(message)
                .trim()
                .to_owned(),
        ),
        _ => None,
    }
}

/// Why [`put`] could not put the value.
#[derive(Debug)]
enum PutError {
    /// This prefix of the key is a value, not a table.
    NotATable(String),
    /// The key itself is a table (with this first key, if any).
    IsATable(Option<String>),
}

/// The file a path names: the symlink's target when it is one (the target is edited, the link stays), else the
/// path itself (which may not exist yet).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("a symlink to a file that cannot be opened ({e})"),
            )
        }),
        _ => Ok(path.to_owned()),
    }
}

/// Puts `value` at `segments`, creating tables on the way (inline inside an inline table, otherwise a `[table]`
/// that shows only once it holds a value). A key that is a table is not replaced.
fn put(doc: &mut DocumentMut, segments: &[&str], value: Value) -> Result<(), PutError> {
    let Some((leaf, tables)) = segments.split_last() else {
        return Err(PutError::NotATable(String::new()));
    };
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    let mut inline = false;
    for (i, seg) in tables.iter().enumerate() {
        if table.get(seg).is_none() {
            let fresh = if inline {
                Item::Value(Value::InlineTable(InlineTable::new()))
            } else {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            };
            table.insert(seg, fresh);
        }
        let prefix = || segments.get(..=i).unwrap_or_default().join(".");
        let item = table
            .get_mut(seg)
            .ok_or_else(|| PutError::NotATable(prefix()))?;
        inline = inline || item.is_inline_table();
        table = item
            .as_table_like_mut()
            .ok_or_else(|| PutError::NotATable(prefix()))?;
    }
    if let Some(t) = table.get(leaf).and_then(Item::as_table_like) {
        return Err(PutError::IsATable(
            t.iter().next().map(|(k, _)| k.to_owned()),
        ));
    }
    if table.get(leaf).is_some_and(Item::is_array_of_tables) {
        return Err(PutError::IsATable(None));
    }
    match table.get_mut(leaf) {
        // Keeps the comment and spacing around the old value.
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        _ => {
            table.insert(leaf, Item::Value(value));
        }
    }
    Ok(())
}

/// Writes `text` beside `path` ([`crate::sibling_temp`]), flushes it, and renames it over `path`: the old file's
/// mode, owner and group kept (0600 and the caller's when new).
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let old = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mode = old.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
    let (tmp, mut f) = crate::sibling_temp::create(path, mode)?;
    let written = (|| {
        if let Some(old) = &old {
            let created = f.metadata()?;
            if (created.uid(), created.gid()) != (old.uid(), old.gid()) {
                rustix::fs::fchown(
                    &f,
                    Some(rustix::fs::Uid::from_raw(old.uid())),
                    Some(rustix::fs::Gid::from_raw(old.gid())),
                )?;
                // A change of owner clears set-id bits: the mode again.
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            }
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests;
