//! The admin API's JSON bodies: what the relay answers an operator and what an operator sends it.
//!
//! These are data only. The relay fills them from its state; the operator's tools parse them and **trust none of
//! it**: every id, name, scope, version and certificate in an answer is checked against what operators signed
//! before anything is signed or sealed on its basis (see docs/threat-model.md, "The operator workstation").

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, KeyFingerprint};
use crate::ids::{AgentId, CredentialId, CredentialName};
use crate::statement::{CredentialStatement, CredentialTombstone, Scope, Signed};
use crate::wire::{AgentState, RegistrationMode};

/// An agent, as `GET /v1/agents` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentView {
    /// Id.
    pub id: AgentId,
    /// State.
    pub state: AgentState,
    /// Last seen, Unix ms.
    pub last_seen_ms: u64,
    /// Last registration mode.
    pub mode: Option<RegistrationMode>,
    /// Certificate (b64 DER): operators verify it against their CA before sealing to it.
    pub cert: String,
}

/// The sync chips of a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncChips {
    /// Agents holding the current version.
    pub synced: usize,
    /// Agents in scope (with a delivery row).
    pub of: usize,
    /// Deliveries still pending.
    pub pending: usize,
    /// Deliveries retired.
    pub stalled: usize,
    /// A commitment mismatch was seen for this credential.
    pub integrity_failure: bool,
}

/// How far the purge of a deleted credential has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeChips {
    /// Agents that acknowledged the purge (`credential_purged`).
    pub purged: usize,
    /// Agents the tombstone was sent to (those that held or may have held the credential).
    pub of: usize,
    /// Agents still to purge that are offline (they purge when they come back).
    pub offline: usize,
}

/// A credential with its sync state, as `GET /v1/credentials` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialView {
    /// Id.
    pub id: CredentialId,
    /// Name.
    pub name: CredentialName,
    /// Version.
    pub version: u64,
    /// Scope.
    pub scope: Scope,
    /// Soft-deleted.
    pub deleted: bool,
    /// Chips.
    pub sync: SyncChips,
    /// For a credential deleted by a tombstone: the purge's progress (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeChips>,
    /// The creator's signed statement of the current version.
    pub statement: Signed<CredentialStatement>,
}

/// `POST /v1/credentials`: a statement and the envelopes the operator sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    /// The signed statement.
    pub statement: Signed<CredentialStatement>,
    /// Envelopes per agent.
    pub envelopes: Vec<EnvelopeFor>,
}

/// `POST /v1/credentials/{id}/tombstone`: the operator-signed tombstone deleting the credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TombstoneBody {
    /// The signed tombstone.
    pub tombstone: Signed<CredentialTombstone>,
}

/// One envelope for one agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeFor {
    /// The agent.
    pub agent: AgentId,
    /// Fingerprint of the certified wrap key it is sealed to.
    pub key: KeyFingerprint,
    /// The envelope.
    pub envelope: Envelope,
}
