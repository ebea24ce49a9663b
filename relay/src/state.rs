//! The relay's state, behind [`RelayStore`] so that a PostgreSQL backend slots in without touching the engine.
//! The embedded backend is sled ([`SledStore`]). Everything here survives a restart: the engine resumes pending
//! work from it.

mod index;
mod records;
mod sled_store;

pub use records::{
    AgentRecord, CredentialRecord, DeliveryRow, DeliveryState, JobRecord, PendingRewrap,
    PurgeState, ReceiptKind, RenewalRecord, RenewalState, RewrapStage,
};
pub use sled_store::SledStore;

use tessera_proto::envelope::Envelope;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};

use crate::alerts::Alert;
use tessera_proto::audit::AuditEntry;

/// State errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The backend failed.
    #[error("relay state backend: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("relay state record {0} is corrupt")]
    Corrupt(String),
}

/// Result alias.
pub type StateResult<T> = Result<T, StateError>;

/// What the engine needs from a state backend.
pub trait RelayStore: Send + Sync + std::fmt::Debug {
    /// An agent.
    fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>>;
    /// Creates or replaces an agent.
    fn put_agent(&self, agent: &AgentRecord) -> StateResult<()>;
    /// Every agent.
    fn agents(&self) -> StateResult<Vec<AgentRecord>>;

    /// A credential.
    fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>>;
    /// The live credential with this name.
    fn credential_by_name(&self, name: &CredentialName) -> StateResult<Option<CredentialRecord>>;
    /// Creates or replaces a credential.
    fn put_credential(&self, c: &CredentialRecord) -> StateResult<()>;
    /// Every credential.
    fn credentials(&self) -> StateResult<Vec<CredentialRecord>>;

    /// A delivery row.
    fn delivery(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
    ) -> StateResult<Option<DeliveryRow>>;
    /// Creates or replaces a delivery row.
    fn put_delivery(&self, row: &DeliveryRow) -> StateResult<()>;
    /// Every delivery row of a credential.
    fn deliveries_of_credential(&self, credential: &CredentialId) -> StateResult<Vec<DeliveryRow>>;
    /// Every delivery row of an agent.
    fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>>;
    /// Every delivery row.
    fn deliveries(&self) -> StateResult<Vec<DeliveryRow>>;

    /// An envelope the operator sealed for an agent (kept for agents offline at `cred put`).
    fn envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
    ) -> StateResult<Option<(Envelope, [u8; 32])>>;
    /// Stores an envelope with the fingerprint of the wrap key it is sealed to.
    fn put_envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
        envelope: &Envelope,
        key: [u8; 32],
    ) -> StateResult<()>;

    /// An in-flight rewrap.
    fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>>;
    /// Creates or replaces an in-flight rewrap.
    fn put_pending(&self, p: &PendingRewrap) -> StateResult<()>;
    /// Removes an in-flight rewrap.
    fn remove_pending(&self, request_id: &uuid::Uuid) -> StateResult<()>;
    /// Every in-flight rewrap.
    fn pendings(&self) -> StateResult<Vec<PendingRewrap>>;
    /// The in-flight rewraps for one target.
    fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>>;

    /// Until when (Unix ms) `peer` is blocklisted as a source of `credential`.
    fn blocked_until(&self, credential: &CredentialId, peer: &AgentId) -> StateResult<Option<u64>>;
    /// Blocklists `peer` for `credential` until `until_ms`.
    fn block(&self, credential: &CredentialId, peer: &AgentId, until_ms: u64) -> StateResult<()>;

    /// An alert by key.
    fn alert(&self, key: &str) -> StateResult<Option<Alert>>;
    /// Stores an alert.
    fn put_alert(&self, key: &str, alert: &Alert) -> StateResult<()>;
    /// Every alert.
    fn alerts(&self) -> StateResult<Vec<Alert>>;

    /// Appends to the audit chain (computing the link to the previous entry) and returns the entry.
    fn append_audit(
        &self,
        at_ms: u64,
        kind: &str,
        link: Option<u64>,
        data: std::collections::BTreeMap<String, String>,
    ) -> StateResult<AuditEntry>;
    /// The whole audit chain, in order.
    fn audit(&self) -> StateResult<Vec<AuditEntry>>;

    /// Creates or replaces a job.
    fn put_job(&self, job: &JobRecord) -> StateResult<()>;
    /// A job.
    fn job(&self, id: &uuid::Uuid) -> StateResult<Option<JobRecord>>;
    /// Every job.
    fn jobs(&self) -> StateResult<Vec<JobRecord>>;

    /// The newest revocation list accepted (signed, as the CA issued it).
    fn revocations(
        &self,
    ) -> StateResult<
        Option<tessera_proto::statement::Signed<tessera_proto::statement::RevocationList>>,
    >;
    /// Replaces it.
    fn put_revocations(
        &self,
        list: &tessera_proto::statement::Signed<tessera_proto::statement::RevocationList>,
    ) -> StateResult<()>;

    /// The agent's receipt of `kind` about a credential, if kept.
    fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<tessera_proto::receipt::Receipt>>;
    /// Keeps (replaces) the agent's receipt of `kind` about a credential.
    fn put_receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
        receipt: &tessera_proto::receipt::Receipt,
    ) -> StateResult<()>;

    /// An agent's key rotation.
    fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>>;
    /// Creates or replaces an agent's key rotation.
    fn put_renewal(&self, r: &RenewalRecord) -> StateResult<()>;
    /// Every agent's key rotation.
    fn renewals(&self) -> StateResult<Vec<RenewalRecord>>;

    /// Makes everything written durable.
    fn flush(&self) -> StateResult<()>;
}
