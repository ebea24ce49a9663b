//! Wire messages: versioned JSON frames with a size cap and strict validation.
//!
//! A frame is `{"v": 1, "msg": {"type": "...", "body": {...}}}`. Agents publish [`Up`] messages on their `up`
//! topic and receive [`Down`] messages on their `down` topic; presence is a [`Status`] on the retained `status`
//! topic. Decoding checks the size cap before parsing, rejects unknown fields, unknown types and other versions,
//! and then runs each message's `validate` (list lengths, string sizes, ids). Errors never quote the input.

mod batch;
mod down;
mod job_error;
mod reason;
mod status;
mod up;

pub use batch::{
    BatchDelivery, CredentialStoreBatch, CredentialStoredBatch, RewrapBatchRequest,
    RewrapBatchResponse, RewrapItem, SealedItem, CAPABILITY_BATCH_REWRAP,
};
pub use down::{
    CredentialPurge, CredentialRevoke, CredentialStore, CredentialUnavailable, Down, JobDispatch,
    RegisterAck, RenewalCertificate, RevocationUpdate, RewrapRequest, RotateKeys,
};
pub use job_error::JobErrorCode;
pub use reason::{BoundaryError, PublicReason, RefusalReason};
pub use status::{AgentState, Status};
pub use up::{
    CredentialMissing, CredentialPurged, CredentialStored, CredentialsFlagged, FlagReason, Held,
    JobResult, Register, RegistrationMode, RenewalRequested, RewrapRefused, RewrapResponse,
    RotationCompleted, RotationFailed, RotationFailure, StoreOutcome, Up,
};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame accepted (1 MiB: a warm reconnect listing 10,000 held credentials is ~600 KiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most held credentials a `warm_reconnect` registration may list.
pub const MAX_HELD: usize = 10_000;
/// Most credentials one `credentials_flagged` message may list (an agent sends more in several messages).
pub const MAX_FLAGGED: usize = 10_000;
/// Most bytes of stdout and of stderr a job result carries.
pub const MAX_JOB_OUTPUT: usize = 64 * 1024;
/// Most parameters a job may carry.
pub const MAX_JOB_PARAMS: usize = 32;
/// Most credentials a job may reference.
pub const MAX_JOB_CREDENTIALS: usize = 16;
/// Longest job parameter value.
pub const MAX_PARAM_VALUE: usize = 4096;
/// Furthest ahead of the agent's clock a job dispatch's `expires_at` may be, seconds (bounds the agent's record of
/// the job ids it has seen).
pub const MAX_JOB_TTL_SECS: i64 = 86_400;
/// Longest certificate accepted on the wire.
pub const MAX_CERT_BYTES: usize = 8 * 1024;

/// A 32-byte request nonce, fresh per rewrap request.
pub type Nonce = [u8; 32];

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds the {max}-byte cap")]
    TooLarge {
        /// Size received.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not JSON of the expected shape (an unknown type or field, a wrong type, bad base64, an invalid id...).
    #[error("malformed message at line {line}, column {column}")]
    Malformed {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A protocol version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// Well-formed but violates a limit or rule.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Could not be encoded (a bug, never input-dependent).
    #[error("message could not be encoded")]
    Encode,
}

impl WireError {
    /// The public class of this error at a trust boundary.
    pub fn public(&self) -> BoundaryError {
        match self {
            Self::Encode => BoundaryError::Internal,
            _ => BoundaryError::Invalid,
        }
    }
}

/// A message type that can travel in a frame.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// Checks limits and rules serde cannot express.
    fn validate(&self) -> Result<(), WireError>;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame<T> {
    v: u32,
    msg: T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes a message into a frame.
pub fn encode<T: WireMessage>(msg: &T) -> Result<Vec<u8>, WireError> {
    msg.validate()?;
    let bytes = serde_json::to_vec(&Frame {
        v: PROTOCOL_VERSION,
        msg,
    })
    .map_err(|_| WireError::Encode)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes and validates a frame.
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let frame: Frame<T> = serde_json::from_slice(bytes).map_err(|e| {
        // A frame of another version may have another shape: report the version, not the shape.
        match serde_json::from_slice::<VersionOnly>(bytes) {
            Ok(VersionOnly { v }) if v != PROTOCOL_VERSION => WireError::UnsupportedVersion(v),
            _ => WireError::Malformed {
                line: e.line(),
                column: e.column(),
            },
        }
    })?;
    if frame.v != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(frame.v));
    }
    frame.msg.validate()?;
    Ok(frame.msg)
}

pub(crate) fn check(ok: bool, why: &'static str) -> Result<(), WireError> {
    if ok {
        Ok(())
    } else {
        Err(WireError::Invalid(why))
    }
}

#[cfg(test)]
mod tests;
