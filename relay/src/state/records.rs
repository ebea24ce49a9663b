//! The relay's records. None holds a secret: ids, certificates, statements, commitments and ciphertext only.

use serde::{Deserialize, Serialize};
use tessera_proto::cert::RenewalRequest;
use tessera_proto::commitment::Commitment;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{CredentialStatement, CredentialTombstone, Scope, Signed};
use tessera_proto::wire::{AgentState, RegistrationMode, RotationFailure};

pub use crate::lifecycle::PendingRewrap;
pub use tessera_proto::admin::RenewalState;

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Id.
    pub id: AgentId,
    /// Its certificate (DER, b64 in JSON).
    #[serde(with = "b64")]
    pub cert: Vec<u8>,
    /// SHA-256 of its wrap key's SPKI.
    pub wrap_fingerprint: [u8; 32],
    /// Online, backfilling, offline.
    pub state: AgentState,
    /// Last message, Unix ms.
    pub last_seen_ms: u64,
    /// The last registration mode.
    pub mode: Option<RegistrationMode>,
    /// The certificate it registered with before `cert` (during and after a key rotation), DER: receipts signed
    /// with the old key still verify until that certificate is revoked or expires.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub previous_cert: Option<Vec<u8>>,
    /// `cert`'s validity start, Unix seconds.
    #[serde(default)]
    pub cert_not_before: i64,
    /// `cert`'s validity end, Unix seconds.
    #[serde(default)]
    pub cert_not_after: i64,
    /// The software version the agent stated in its last registration (unverified; `None` when not reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The agent announced `batch_rewrap` in its last registration (docs/protocol.md, "Batched rewrap").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch_rewrap: bool,
}

/// A credential version the relay coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Id.
    pub id: CredentialId,
    /// Name.
    pub name: CredentialName,
    /// Current version.
    pub version: u64,
    /// Scope revision of the current statement.
    pub scope_revision: u64,
    /// Scope.
    pub scope: Scope,
    /// Commitment of the current version.
    pub commitment: Commitment,
    /// The creator's signed statement of the current version.
    pub statement: Signed<CredentialStatement>,
    /// Soft-deleted: no longer synced or served.
    pub deleted: bool,
    /// The operator-signed tombstone that deleted it (verified against the org CA when received), forwarded to
    /// the agents that held or may hold it.
    #[serde(default)]
    pub tombstone: Option<Signed<CredentialTombstone>>,
    /// When the current version was put, Unix ms.
    pub updated_ms: u64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet stored by the agent.
    Pending,
    /// Acknowledged with a digest equal to the commitment.
    Stored,
    /// Retired after the last attempt.
    Stalled,
    /// This agent's copy produced a commitment mismatch when it acted as a source: never used as a peer again
    /// for this credential (`COMMITMENT_MISMATCH_SOURCE`).
    Untrusted,
}

/// Where the purge of a tombstoned credential stands on one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeState {
    /// The tombstone was sent (or will be, when the agent comes back); no acknowledgement yet.
    Purging,
    /// The agent acknowledged with `credential_purged`.
    Purged,
}

/// One (credential, agent) delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// Credential.
    pub credential: CredentialId,
    /// Agent.
    pub agent: AgentId,
    /// The version this row is about.
    pub version: u64,
    /// State.
    pub state: DeliveryState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the reconciler may try again, Unix ms.
    pub next_attempt_ms: u64,
    /// The last error (internal reason).
    pub last_error: Option<String>,
    /// When the operator last asked for a retry, Unix ms (30 s cooldown).
    pub retry_requested_ms: u64,
    /// Set once the credential is tombstoned: the purge on this agent.
    #[serde(default)]
    pub purge: Option<PurgeState>,
    /// When the purge was first sent to this agent, Unix ms (0: not purging): `credential_purge_overdue` after
    /// `engine.purge_alert_ms`.
    #[serde(default)]
    pub purge_since_ms: u64,
}

/// Which of an agent's receipts about a credential (kept apart from the delivery rows, which every dispatch reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReceiptKind {
    /// Of the stored version (`stored` rows).
    Stored,
    /// Of the purge (`purged` rows).
    Purged,
}

impl DeliveryRow {
    /// A row for a version not yet delivered, due at `now_ms`.
    pub fn pending(credential: CredentialId, agent: AgentId, version: u64, now_ms: u64) -> Self {
        Self {
            credential,
            agent,
            version,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_ms: now_ms,
            last_error: None,
            retry_requested_ms: 0,
            purge: None,
            purge_since_ms: 0,
        }
    }
}

/// An agent's key rotation as the relay sees it: the renewal request queued for the operator's CA, the certificate
/// the CA issued for it, and the agent's report (the relay certifies nothing; it stores and forwards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRecord {
    /// The agent.
    pub agent: AgentId,
    /// Where it stands.
    pub state: RenewalState,
    /// The request, signed by the agent's current and new identity keys (verified against its registered
    /// certificate when queued).
    pub request: RenewalRequest,
    /// The certificate an operator's CA issued for it (DER), once pushed.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub cert: Option<Vec<u8>>,
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

/// A dispatched job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: uuid::Uuid,
    /// Template.
    pub template: TemplateName,
    /// Agent it ran on.
    pub agent: AgentId,
    /// When dispatched, Unix ms.
    pub dispatched_ms: u64,
    /// When the agent stops accepting the dispatch, Unix seconds (0 in records from before expiries).
    #[serde(default)]
    pub expires_at: i64,
    /// The result, once reported.
    pub result: Option<tessera_proto::wire::JobResult>,
}

mod b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&tessera_proto::b64_encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        tessera_proto::b64_decode(&s).ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }
}

mod b64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes the field by reference
    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&tessera_proto::b64_encode(v)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                tessera_proto::b64_decode(&s)
                    .ok_or_else(|| serde::de::Error::custom("invalid base64"))
            })
            .transpose()
    }
}

/// What an operator sealed for one agent of one credential version (`POST /v1/credentials`, `POST
/// /v1/credentials/batch`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OperatorSealed {
    /// An envelope of this credential alone.
    Envelope(tessera_proto::envelope::Envelope),
    /// An item of the batch envelope kept as (this batch id, the same agent): [`super::RelayStore::batch_envelope`].
    InBatch(uuid::Uuid),
}

/// [`OperatorSealed`] and its key as a backend keeps them (JSON). Records from before operator batches have an
/// `envelope` and no `batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredSealed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<tessera_proto::envelope::Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<uuid::Uuid>,
    key: [u8; 32],
}

impl StoredSealed {
    pub(super) fn new(sealed: &OperatorSealed, key: [u8; 32]) -> Self {
        match sealed {
            OperatorSealed::Envelope(e) => Self {
                envelope: Some(e.clone()),
                batch: None,
                key,
            },
            OperatorSealed::InBatch(b) => Self {
                envelope: None,
                batch: Some(*b),
                key,
            },
        }
    }

    /// The record read back; `None` when it holds neither form (not written by this relay).
    pub(super) fn into_sealed(self) -> Option<(OperatorSealed, [u8; 32])> {
        match (self.envelope, self.batch) {
            (Some(e), _) => Some((OperatorSealed::Envelope(e), self.key)),
            (None, Some(b)) => Some((OperatorSealed::InBatch(b), self.key)),
            (None, None) => None,
        }
    }
}

/// A batch envelope an operator sealed for an agent (kept as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchEnvelopeRecord {
    /// The envelope.
    pub envelope: tessera_proto::envelope::Envelope,
    /// SHA-256 of the wrap key it is sealed to.
    pub key: [u8; 32],
    /// The credentials it carries (each at the version of the statement it was put with).
    pub items: Vec<CredentialId>,
}

#[cfg(test)]
mod tests;
