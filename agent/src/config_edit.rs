//! `tessera-agent config set KEY VALUE`: one value of the agent's TOML file changed in place, comments and layout
//! kept (`toml_edit`), the result checked by the agent's own loader ([`AgentConfig::from_toml`] and
//! [`AgentConfig::validate`]) before it atomically replaces the file. A key the agent does not know is refused,
//! named with the file, and nothing is written.
//!
//! KEY is dotted: `broker.host`, `socket.jit_timeout_ms`, `policy.db.uids`. VALUE is read as a TOML value when it
//! is one the key accepts (`8883`, `true`, `[1000, 1001]`, `"quoted"`), and as a string otherwise (`mqtt.example`).

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
    let text = match std::fs::read_to_string(path) {
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
        put(&mut next, &segments, candidate).map_err(|prefix| ConfigEditError::NotATable {
            key: key.to_owned(),
            path: path.to_owned(),
            prefix,
        })?;
        let out = next.to_string();
        match check(&out, path) {
            Ok(()) => return replace(path, &out).map_err(io),
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

/// Puts `value` at `segments`, creating tables on the way (inline inside an inline table, otherwise a `[table]`
/// that shows only once it holds a value); `Err` names the prefix that is a value.
fn put(doc: &mut DocumentMut, segments: &[&str], value: Value) -> Result<(), String> {
    let Some((leaf, tables)) = segments.split_last() else {
        return Err(String::new());
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
        let item = table.get_mut(seg).ok_or_else(prefix)?;
        inline = inline || item.is_inline_table();
        table = item.as_table_like_mut().ok_or_else(prefix)?;
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

/// Writes `text` beside `path`, flushes it, and renames it over `path` (the old file's mode kept; 0600 when new).
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mode = std::fs::metadata(path).map_or(0o600, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
    });
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests;
