//! Reasons that cross a trust boundary.

use serde::{Deserialize, Serialize};

/// The only error classes a party learns about a failure on the other side of a trust boundary. The full cause
/// is logged once, where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BoundaryError {
    /// Something failed on our side.
    Internal,
    /// The input was malformed or broke a rule.
    Invalid,
    /// The caller may not do this.
    Unauthorized,
    /// Try again later.
    Busy,
}

/// Why the relay could not deliver a credential an agent asked for: public reasons only, so that internals
/// (queue names, backpressure, peer ids) never reach a possibly compromised agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum PublicReason {
    /// The agent asked too often.
    RateLimited,
    /// The relay is overloaded (covers every internal capacity reason).
    BackendBusy,
    /// A delivery was attempted and failed its commitment check.
    CommitmentMismatch,
    /// The credential exists but this agent is outside its scope.
    NotGranted,
    /// No credential by that name.
    NotFound,
    /// No eligible peer holds the credential.
    NoPeer,
    /// The repair did not finish in time.
    Timeout,
}

/// Why an agent refused a rewrap request or a delivery. Typed so the relay can attribute and alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RefusalReason {
    /// The target certificate does not chain to the pinned CA (key substitution attempt).
    UntrustedTarget,
    /// The target certificate is outside its validity window.
    TargetExpired,
    /// The target certificate is revoked.
    TargetRevoked,
    /// The target certificate names another agent than the request.
    TargetMismatch,
    /// The target is outside the credential's signed scope.
    NotInScope,
    /// The credential statement's signature or signer does not verify.
    BadStatement,
    /// This agent does not hold the requested credential version.
    UnknownCredential,
    /// A version older than one already accepted (rollback).
    StaleVersion,
    /// The envelope does not open or is malformed.
    BadEnvelope,
    /// The plaintext does not match the creator's commitment.
    CommitmentMismatch,
    /// The envelope's plaintext is not a canonical JSON secret payload.
    BadPayload,
    /// The agent is overloaded.
    Busy,
    /// The agent failed internally.
    Internal,
    /// The statement's name is bound on this agent to another credential id (a deleted credential's statement
    /// replayed under a name that now belongs to a new credential, or the reverse); nothing was stored.
    NameBoundToOtherId,
    /// The agent holds this credential in quarantine (its statement's signer was revoked) and does not rewrap it.
    Quarantined,
    /// An operator-signed tombstone deleted this credential version on this agent; it is never accepted again.
    CredentialDeleted,
}
