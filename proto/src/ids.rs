//! Validated identifiers.
//!
//! Names (agents, operators, credentials, job templates) match `^[A-Za-z0-9_-]{1,128}$`, so no identifier can
//! inject an MQTT wildcard (`+`, `#`), a topic separator (`/`), a `$` prefix, a NUL or anything a shell or a log
//! line could misread. Credential ids are UUIDs. Every type validates on construction and on deserialisation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Why an identifier was refused. The rejected text is not echoed: it may be hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty, longer than 128 bytes, or a character outside `[A-Za-z0-9_-]`.
    #[error("invalid {kind}: must match ^[A-Za-z0-9_-]{{1,128}}$")]
    BadName {
        /// Which kind of identifier.
        kind: &'static str,
    },
    /// Not a UUID in hyphenated form.
    #[error("invalid credential id: must be a hyphenated UUID")]
    BadUuid,
}

/// Whether `s` is a valid name.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if is_valid_name(&s) {
                    Ok(Self(s))
                } else {
                    Err(IdError::BadName { kind: $kind })
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

name_type!(
    /// An agent's id: its certificate's common name, its MQTT username and its topic segment.
    AgentId,
    "agent id"
);
name_type!(
    /// An operator's id: the common name of an operator certificate.
    OperatorId,
    "operator id"
);
name_type!(
    /// A credential's human name, what workloads ask for (`tessera-agent get NAME`).
    CredentialName,
    "credential name"
);
name_type!(
    /// A job template's name, defined in the agent's local configuration.
    TemplateName,
    "job template name"
);

/// A credential's id: a UUID, stable across versions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(uuid::Uuid);

impl CredentialId {
    /// A fresh random (v4) id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The underlying UUID.
    pub fn uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// The id of `uuid` (any UUID is a credential id; the binary form a batch plaintext carries).
    pub fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self(uuid)
    }
}

impl FromStr for CredentialId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // Only the 36-character hyphenated form: one spelling per id, so ids compare as strings too.
        if s.len() != 36 {
            return Err(IdError::BadUuid);
        }
        uuid::Uuid::parse_str(s)
            .map(Self)
            .ok()
            .filter(|id| id.to_string() == s)
            .ok_or(IdError::BadUuid)
    }
}

impl TryFrom<String> for CredentialId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.to_string()
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests;
