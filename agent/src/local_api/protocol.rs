//! The local API's messages.

use serde::{Deserialize, Serialize};
use tessera_proto::ids::CredentialName;
use tessera_proto::wire::PublicReason;

use crate::config::SealerBackend;
use crate::status::AgentStatus;
use crate::store::CredentialMeta;
use crate::store_key::worker::StoreKeyStatus;

/// Largest request line.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Parses one request line as the server reads it (at most [`MAX_REQUEST_BYTES`], ending in `\n`). The error is
/// the message of the `INVALID` answer, after which the server closes the connection.
pub fn parse_request_line(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST_BYTES || !line.ends_with(b"\n") {
        return Err("request line too long or unterminated".to_owned());
    }
    serde_json::from_slice::<Request>(line).map_err(|e| format!("bad request: {e}"))
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "RequestWire"
)]
pub enum Request {
    /// The plaintext and metadata.
    Get {
        /// Credential name.
        name: CredentialName,
    },
    /// Metadata only.
    Meta {
        /// Credential name.
        name: CredentialName,
    },
    /// Metadata of everything the caller may read.
    List,
    /// Start a store-key rotation (only the agent's own uid, or root): a new store key, sealed by `to` (default: the
    /// sealer of the current key); records are re-encrypted in the background.
    RotateStoreKey {
        /// The sealer of the new key.
        to: Option<SealerBackend>,
    },
    /// The agent's status (only the agent's own uid, or root): broker connection, registration, certificate,
    /// credentials held with their versions, store key.
    Status,
}

/// What [`Request`] is parsed from: `List` as a struct variant with no fields, because serde does not apply
/// `deny_unknown_fields` to a unit variant of an internally tagged enum (`{"op":"list","x":1}` would parse).
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum RequestWire {
    Get {
        name: CredentialName,
    },
    Meta {
        name: CredentialName,
    },
    List {},
    RotateStoreKey {
        #[serde(default)]
        to: Option<SealerBackend>,
    },
    Status {},
}

impl From<RequestWire> for Request {
    fn from(wire: RequestWire) -> Self {
        match wire {
            RequestWire::Get { name } => Self::Get { name },
            RequestWire::Meta { name } => Self::Meta { name },
            RequestWire::List {} => Self::List,
            RequestWire::RotateStoreKey { to } => Self::RotateStoreKey { to },
            RequestWire::Status {} => Self::Status,
        }
    }
}

/// Typed errors a workload sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ApiError {
    /// The policy does not allow this caller.
    NotGranted,
    /// Not held, and the relay does not know it either.
    NotFound,
    /// JIT repair did not finish within the budget.
    Timeout,
    /// The relay rate-limited this agent's repair requests.
    RateLimited,
    /// The relay is overloaded.
    BackendBusy,
    /// A peer sent a plaintext that did not match the creator's commitment.
    CommitmentMismatch,
    /// No peer holds it.
    NoPeer,
    /// Too many concurrent requests from this uid.
    Busy,
    /// A malformed request.
    Invalid,
    /// Something failed inside the agent.
    Internal,
    /// Held, but quarantined: the operator certificate that signed it was revoked
    /// (`[store] quarantine_revoked_signers`).
    Quarantined,
}

impl From<PublicReason> for ApiError {
    fn from(r: PublicReason) -> Self {
        match r {
            PublicReason::RateLimited => Self::RateLimited,
            PublicReason::BackendBusy => Self::BackendBusy,
            PublicReason::CommitmentMismatch => Self::CommitmentMismatch,
            PublicReason::NotGranted => Self::NotGranted,
            PublicReason::NotFound => Self::NotFound,
            PublicReason::NoPeer => Self::NoPeer,
            PublicReason::Timeout => Self::Timeout,
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

/// The header line of every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The error, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// A human explanation of the error (never secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `get` and `meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CredentialMeta>,
    /// For `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<CredentialMeta>>,
    /// For `get`: how many plaintext bytes follow the header line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_len: Option<usize>,
    /// For `rotate_store_key`: where the store key stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_key: Option<StoreKeyStatus>,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
}

impl Header {
    /// An error answer.
    pub fn error(error: ApiError, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error),
            message: Some(message.into()),
            meta: None,
            list: None,
            secret_len: None,
            store_key: None,
            status: None,
        }
    }

    /// A success with nothing yet.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
            message: None,
            meta: None,
            list: None,
            secret_len: None,
            store_key: None,
            status: None,
        }
    }
}

#[cfg(test)]
mod tests;
