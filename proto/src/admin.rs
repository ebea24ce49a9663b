//! The admin API's JSON bodies: what the relay answers an operator and what an operator sends it.
//!
//! These are data only. The relay fills them from its state; the operator's tools parse them and **trust none of
//! it**: every id, name, scope, version and certificate in an answer is checked against what operators signed
//! before anything is signed or sealed on its basis (see docs/threat-model.md, "The operator workstation").

use serde::{Deserialize, Serialize};

use crate::cert::RenewalRequest;
use crate::envelope::{Envelope, KeyFingerprint};
use crate::ids::{AgentId, CredentialId, CredentialName};
use crate::receipt::Receipt;
use crate::statement::{CredentialStatement, CredentialTombstone, Scope, Signed};
use crate::wire::{AgentState, RegistrationMode, RotationFailure};

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
    /// The presence in `state` (`online`, `backfilling`) is stale: the relay's broker link is down, so it cannot see
    /// agents come and go (absent from relays before this field: `false`).
    #[serde(default)]
    pub stale: bool,
    /// The software version the agent stated in its last registration, relayed as is: not verified by anyone, for
    /// operations only (`null` when not reported, and from relays before this field).
    #[serde(default)]
    pub version: Option<String>,
    /// Whether the agent announced `batch_rewrap` in its last registration, relayed as is: the operator's tool seals
    /// one batch envelope per agent for an import when it is `true` (docs/protocol.md, "Operator batches"); a relay
    /// that lies here only costs deliveries (absent from relays before this field: `false`).
    #[serde(default)]
    pub batch_rewrap: bool,
}

/// The relay's MQTT connection, as `GET /v1/status` shows it under `broker`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerLink {
    /// Whether the connection is up.
    pub connected: bool,
    /// When it last went up or down, Unix ms (`null` before the first connection).
    #[serde(default)]
    pub since_ms: Option<u64>,
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

/// `POST /v1/credentials/batch`: the statements an operator signed in one go (an import) and what it sealed: batch
/// envelopes for agents that take batches, single envelopes for the others. The relay takes all of it or none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBatchBody {
    /// The signed statements, at most [`MAX_PUT_BATCH_STATEMENTS`], one per credential.
    pub statements: Vec<Signed<CredentialStatement>>,
    /// Single envelopes: one credential's payload for one agent.
    #[serde(default)]
    pub envelopes: Vec<ItemEnvelopeFor>,
    /// Batch envelopes: several of these credentials' payloads for one agent, in one envelope.
    #[serde(default)]
    pub batches: Vec<BatchEnvelopeFor>,
}

/// The most statements one [`PutBatchBody`] carries.
pub const MAX_PUT_BATCH_STATEMENTS: usize = 64;

/// A single envelope of a [`PutBatchBody`], for the statement of `credential_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemEnvelopeFor {
    /// The credential (one of the body's statements).
    pub credential_id: CredentialId,
    /// The agent.
    pub agent: AgentId,
    /// Fingerprint of the certified wrap key it is sealed to.
    pub key: KeyFingerprint,
    /// The envelope.
    pub envelope: Envelope,
}

/// A batch envelope of a [`PutBatchBody`] (docs/protocol.md, "Operator batches"): its plaintext carries the payload
/// of each listed credential version (the batch plaintext format of batched rewrap).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchEnvelopeFor {
    /// Names the batch at the relay (with the agent): random, chosen by the operator's tool.
    pub batch_id: uuid::Uuid,
    /// The credentials it carries, each at its statement's version: 2 to 64, distinct, all in the body.
    pub items: Vec<CredentialId>,
    /// The agent.
    pub agent: AgentId,
    /// Fingerprint of the certified wrap key it is sealed to.
    pub key: KeyFingerprint,
    /// The envelope.
    pub envelope: Envelope,
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

/// Where an agent's key rotation stands at the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RenewalState {
    /// The renewal request is queued for the operator's CA (`tessera ca renew`).
    Requested,
    /// An operator pushed the CA's certificate; the agent validates it.
    Certified,
    /// The agent switched to it (with a receipt signed by the new key); the old certificate awaits revocation.
    Completed,
    /// The new certificate failed validation; the agent kept the old one and will ask again.
    Failed,
}

/// An agent's key rotation, as `GET /v1/renewals` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewalView {
    /// The agent.
    pub agent: AgentId,
    /// Where it stands.
    pub state: RenewalState,
    /// The renewal request (signed by the agent's current and new identity keys): the CA verifies it against its
    /// own registry, never against anything else here.
    pub request: RenewalRequest,
    /// The certificate pushed (b64 DER), once certified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The agent's receipt of the switch, signed by the new key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// Why the last validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RotationFailure>,
    /// When the request was queued, Unix ms.
    pub requested_ms: u64,
    /// The last change, Unix ms.
    pub updated_ms: u64,
}

/// `POST /v1/renewals/{agent}/certificate`: the certificate the CA issued for the agent's queued request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalCertBody {
    /// The certificate, b64 DER.
    pub cert: String,
}

/// One agent's delivery of a credential, as `GET /v1/credentials/{id}/deliveries` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The agent.
    pub agent: AgentId,
    /// Whether the agent is online, backfilling or offline.
    pub agent_state: Option<AgentState>,
    /// The version the row is about.
    pub version: u64,
    /// `pending`, `stored`, `stalled` or `untrusted`.
    pub state: String,
    /// Failed attempts.
    pub attempts: u32,
    /// The next attempt, Unix ms.
    pub next_attempt_ms: u64,
    /// The relay's reason code for the last failed attempt (`exhausted`, `timeout`, `target_refused:…`).
    pub last_error: Option<String>,
    /// `purging` or `purged`, for a deleted or revoked credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<String>,
    /// The agent's receipt of the stored version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The agent's receipt of the purge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_receipt: Option<Receipt>,
}
