//! Messages an agent sends to the relay (its `up` topic).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    check, Nonce, RefusalReason, WireError, WireMessage, MAX_CERT_BYTES, MAX_FLAGGED, MAX_HELD,
    MAX_JOB_OUTPUT,
};
use crate::cert::{CertSerial, RenewalRequest};
use crate::commitment::Commitment;
use crate::envelope::{Envelope, KeyFingerprint};
use crate::ids::{AgentId, CredentialId, CredentialName};
use crate::receipt::Receipt;

/// Everything an agent may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "body",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum Up {
    /// Hello, with the registration mode.
    Register(Register),
    /// A peer's answer to a rewrap request: an envelope for the target.
    RewrapResponse(RewrapResponse),
    /// A peer's refusal of a rewrap request.
    RewrapRefused(RewrapRefused),
    /// A target's acknowledgement (or refusal) of a delivery.
    CredentialStored(CredentialStored),
    /// A workload asked for a credential this agent lacks (JIT repair).
    CredentialMissing(CredentialMissing),
    /// The outcome of a job.
    JobResult(JobResult),
    /// Credentials this agent holds whose statements it now distrusts (their signer was revoked).
    CredentialsFlagged(CredentialsFlagged),
    /// This agent verified a tombstone or scope revoke and forgot the credential.
    CredentialPurged(CredentialPurged),
    /// A key rotation began: new keys to certify (queued at the relay for the operator's CA).
    RenewalRequested(RenewalRequested),
    /// The agent switched to its renewed certificate, with a receipt signed by the new key.
    RotationCompleted(RotationCompleted),
    /// The renewed certificate failed validation; the agent kept the current one.
    RotationFailed(RotationFailed),
    /// A peer's answer to a batched rewrap request (docs/protocol.md, "Batched rewrap").
    RewrapBatchResponse(super::RewrapBatchResponse),
    /// A target's acknowledgement of a batched delivery, one outcome per item.
    CredentialStoredBatch(super::CredentialStoredBatch),
}

/// How an agent registers (docs/protocol.md, "Agent registration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistrationMode {
    /// First handshake ever: fan out every credential in scope.
    FirstRegistration,
    /// The wrap key changed: everything held is unreadable, fan out again.
    KeyRegenerated,
    /// Reconnect listing what is held: backfill the gap.
    WarmReconnect,
}

/// A credential version an agent holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// The credential.
    pub credential_id: CredentialId,
    /// The newest version held.
    pub version: u64,
}

/// Registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The mode.
    pub mode: RegistrationMode,
    /// The agent's certificate, DER.
    #[serde(with = "crate::b64::vec")]
    pub cert: Vec<u8>,
    /// For `warm_reconnect`: what the agent holds (at most [`MAX_HELD`]); empty otherwise.
    #[serde(default)]
    pub held: Vec<Held>,
    /// The agent's software version as the agent states it (`0.1.0+1a2b3c4`: the crate version and the git
    /// commit), informational and unverified; at most 64 bytes. Empty or absent when not reported (an agent that
    /// omits it still registers).
    #[serde(default)]
    pub agent_version: String,
    /// What the agent supports beyond the base protocol (at most 16 names of at most 32 bytes of `a-z_`):
    /// [`super::CAPABILITY_BATCH_REWRAP`]. Unknown names are ignored; absent is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// A peer's rewrap answer, carrying the four bindings the relay checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapResponse {
    /// Echo of the request id.
    pub request_id: uuid::Uuid,
    /// Binding 1: echo of the request nonce.
    #[serde(with = "crate::b64::array")]
    pub nonce: Nonce,
    /// Binding 2: the responding peer.
    pub peer: AgentId,
    /// Binding 3: the credential id...
    pub credential_id: CredentialId,
    /// ...and version.
    pub version: u64,
    /// Binding 4: fingerprint of the wrap key the envelope is sealed to.
    pub target_key: KeyFingerprint,
    /// The envelope for the target.
    pub envelope: Envelope,
}

/// A peer's refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapRefused {
    /// Echo of the request id.
    pub request_id: uuid::Uuid,
    /// Echo of the request nonce.
    #[serde(with = "crate::b64::array")]
    pub nonce: Nonce,
    /// Why.
    pub reason: RefusalReason,
}

/// What a target did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "result",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "StoreOutcomeWire"
)]
#[non_exhaustive]
pub enum StoreOutcome {
    /// Stored and flushed; `digest` is the commitment the target recomputed from the plaintext.
    Stored {
        /// The recomputed commitment.
        digest: Commitment,
    },
    /// The plaintext did not match the creator's commitment; nothing was stored.
    Mismatch,
    /// Refused before the commitment check; nothing was stored.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

/// What [`StoreOutcome`] is parsed from: `Mismatch` as a struct variant with no fields, because serde does not
/// apply `deny_unknown_fields` to a unit variant of an internally tagged enum.
#[derive(Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
enum StoreOutcomeWire {
    Stored { digest: Commitment },
    Mismatch {},
    Refused { reason: RefusalReason },
}

impl From<StoreOutcomeWire> for StoreOutcome {
    fn from(wire: StoreOutcomeWire) -> Self {
        match wire {
            StoreOutcomeWire::Stored { digest } => Self::Stored { digest },
            StoreOutcomeWire::Mismatch {} => Self::Mismatch,
            StoreOutcomeWire::Refused { reason } => Self::Refused { reason },
        }
    }
}

/// A target's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStored {
    /// Echo of the delivery id.
    pub delivery_id: uuid::Uuid,
    /// The credential.
    pub credential_id: CredentialId,
    /// The version delivered.
    pub version: u64,
    /// The outcome.
    pub outcome: StoreOutcome,
    /// For `stored`: the agent's signed receipt of it ([`crate::receipt::ReceiptFact::Stored`]); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// JIT repair request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialMissing {
    /// Correlates the relay's answer.
    pub request_id: uuid::Uuid,
    /// The credential the workload asked for.
    pub name: CredentialName,
}

/// A job's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// Echo of the job id.
    pub job_id: uuid::Uuid,
    /// Exit code, if the process exited normally.
    pub exit_code: Option<i32>,
    /// Bounded stdout (lossy UTF-8, at most [`MAX_JOB_OUTPUT`] bytes).
    pub stdout: String,
    /// Bounded stderr.
    pub stderr: String,
    /// Why the job did not run or did not finish: `"CODE: detail"` with a [`super::JobErrorCode`] (see
    /// [`JobResult::error_code`]); none if it ran to its exit.
    pub error: Option<String>,
    /// Extra facts (duration, truncated flags).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// Why an agent flagged credentials it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlagReason {
    /// The operator certificate that signed the held statement is on the newest CA-signed revocation list.
    SignerRevoked,
}

/// Credentials an agent flagged after re-checking what it holds (sent after it adopts a newer revocation list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFlagged {
    /// Why.
    pub reason: FlagReason,
    /// The serial of the revocation list the agent checked against.
    pub list_serial: u64,
    /// The credentials (1 to [`MAX_FLAGGED`], unique).
    pub credential_ids: Vec<CredentialId>,
}

/// The acknowledgement of a purge: the credential is no longer held (every version up to `version`), and those
/// versions will never be accepted again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialPurged {
    /// The credential.
    pub credential_id: CredentialId,
    /// The tombstone's version.
    pub version: u64,
    /// The agent's signed receipt of the purge ([`crate::receipt::ReceiptFact::Purged`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// A renewal request for the operator's CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequested {
    /// Signed by the current and the new identity keys.
    pub request: RenewalRequest,
}

/// A completed rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationCompleted {
    /// [`crate::receipt::ReceiptFact::Rotated`], signed by the new identity key.
    pub receipt: Receipt,
}

/// Why a renewed certificate was not switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RotationFailure {
    /// No connection with the new certificate: the broker refused it, or did not answer, within the validation time.
    BrokerRefused,
    /// Connected with the new certificate, but the relay did not acknowledge its registration in time.
    NoRegisterAck,
    /// The new certificate no longer verifies against the pinned CA (revoked or expired before the switch).
    CertificateInvalid,
}

/// A failed validation of a renewed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFailed {
    /// The serial of the renewed certificate that failed (discarded with its keys).
    pub serial: CertSerial,
    /// Why.
    pub reason: RotationFailure,
    /// When the agent will ask again, Unix seconds.
    pub retry_at: i64,
}

impl WireMessage for Up {
    fn validate(&self) -> Result<(), WireError> {
        match self {
            Self::Register(r) => {
                check(r.cert.len() <= MAX_CERT_BYTES, "certificate too large")?;
                check(r.held.len() <= MAX_HELD, "too many held credentials")?;
                check(
                    r.mode == RegistrationMode::WarmReconnect || r.held.is_empty(),
                    "only warm_reconnect lists held credentials",
                )?;
                check(r.agent_version.len() <= 64, "agent_version too long")?;
                check(r.capabilities.len() <= 16, "too many capabilities")?;
                check(
                    r.capabilities.iter().all(|c| {
                        !c.is_empty()
                            && c.len() <= 32
                            && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }),
                    "invalid capability name",
                )
            }
            Self::RewrapBatchResponse(r) => r.validate(),
            Self::CredentialStoredBatch(s) => s.validate(),
            Self::RewrapResponse(r) => check(r.version >= 1, "version must be at least 1"),
            Self::CredentialStored(s) => {
                check(s.version >= 1, "version must be at least 1")?;
                check(receipt_fits(s.receipt.as_ref()), "receipt too large")
            }
            Self::CredentialPurged(p) => {
                check(p.version >= 1, "version must be at least 1")?;
                check(receipt_fits(p.receipt.as_ref()), "receipt too large")
            }
            Self::JobResult(j) => {
                check(j.stdout.len() <= MAX_JOB_OUTPUT, "stdout too large")?;
                check(j.stderr.len() <= MAX_JOB_OUTPUT, "stderr too large")?;
                check(
                    j.error.as_ref().is_none_or(|e| e.len() <= 1024),
                    "error too long",
                )?;
                check(j.meta.len() <= 16, "too many meta entries")?;
                check(
                    j.meta.iter().all(|(k, v)| k.len() <= 64 && v.len() <= 256),
                    "meta entry too long",
                )
            }
            Self::CredentialsFlagged(f) => {
                check(!f.credential_ids.is_empty(), "no flagged credentials")?;
                check(
                    f.credential_ids.len() <= MAX_FLAGGED,
                    "too many flagged credentials",
                )?;
                let mut ids = f.credential_ids.clone();
                ids.sort_unstable();
                ids.dedup();
                check(
                    ids.len() == f.credential_ids.len(),
                    "duplicate flagged credential",
                )
            }
            Self::RenewalRequested(r) => {
                check(
                    r.request.body.identity_spki.len() <= MAX_CERT_BYTES
                        && r.request.body.wrap_spki.len() <= MAX_CERT_BYTES,
                    "renewal key too large",
                )?;
                check(
                    r.request.current_signature.len() <= 128
                        && r.request.new_signature.len() <= 128,
                    "renewal signature too large",
                )
            }
            Self::RotationCompleted(r) => {
                check(receipt_fits(Some(&r.receipt)), "receipt too large")
            }
            Self::RewrapRefused(_) | Self::CredentialMissing(_) | Self::RotationFailed(_) => Ok(()),
        }
    }
}

pub(super) fn receipt_fits(r: Option<&Receipt>) -> bool {
    r.is_none_or(|r| {
        r.payload.len() <= crate::receipt::MAX_RECEIPT_PAYLOAD && r.signature.len() <= 128
    })
}
