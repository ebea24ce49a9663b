//! The relay's state, behind [`RelayStore`]: the embedded backend is sled ([`SledStore`]), the shared one
//! PostgreSQL ([`PgStore`]). Everything here survives a restart: the engine resumes pending work from it.
//!
//! A backend is read record by record and written only in whole [`Batch`]es, each applied atomically: the engine
//! stages one event's writes in a [`Staged`] view and commits them once (docs/operations.md, "State backends").

mod batch;
#[cfg(test)]
mod conformance;
mod decoded;
mod index;
mod pg_store;
mod records;
mod sled_store;
mod staged;

pub use batch::{Batch, Write};
pub use pg_store::{PgConfig, PgStore};
pub use records::{
    AgentRecord, BatchEnvelopeRecord, CredentialRecord, DeliveryRow, DeliveryState, JobRecord,
    OperatorSealed, PendingRewrap, PurgeState, ReceiptKind, RenewalRecord, RenewalState,
};
pub use sled_store::SledStore;
pub use staged::Staged;

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
    /// A batch was built on state another writer changed since (the audit chain's head moved); nothing of it
    /// was written.
    #[error("relay state conflict: {0}")]
    Conflict(String),
}

/// Result alias.
pub type StateResult<T> = Result<T, StateError>;

/// What the engine needs from a state backend.
pub trait RelayStore: Send + Sync + std::fmt::Debug {
    /// An agent.
    fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>>;
    /// Every agent.
    fn agents(&self) -> StateResult<Vec<AgentRecord>>;

    /// A credential.
    fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>>;
    /// The live credential with this name.
    fn credential_by_name(&self, name: &CredentialName) -> StateResult<Option<CredentialRecord>>;
    /// Every credential.
    fn credentials(&self) -> StateResult<Vec<CredentialRecord>>;

    /// A delivery row.
    fn delivery(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
    ) -> StateResult<Option<DeliveryRow>>;
    /// Every delivery row of a credential.
    fn deliveries_of_credential(&self, credential: &CredentialId) -> StateResult<Vec<DeliveryRow>>;
    /// Every delivery row of an agent.
    fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>>;
    /// Every delivery row.
    fn deliveries(&self) -> StateResult<Vec<DeliveryRow>>;

    /// What the operator sealed for an agent (kept for agents offline at `cred put`), with the SHA-256 of the wrap
    /// key it is sealed to.
    fn envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
    ) -> StateResult<Option<(OperatorSealed, [u8; 32])>>;
    /// A batch envelope the operator sealed for an agent.
    fn batch_envelope(
        &self,
        batch: &uuid::Uuid,
        agent: &AgentId,
    ) -> StateResult<Option<BatchEnvelopeRecord>>;

    /// An in-flight rewrap.
    fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>>;
    /// Every in-flight rewrap.
    fn pendings(&self) -> StateResult<Vec<PendingRewrap>>;
    /// What is in flight, as (request, credential, target), without the rest of each record (what the engine
    /// mirrors in memory, read again at every turn after another relay wrote).
    fn in_flight_keys(&self) -> StateResult<Vec<(uuid::Uuid, CredentialId, AgentId)>> {
        Ok(self
            .pendings()?
            .into_iter()
            .map(|p| (p.request_id, p.credential, p.target))
            .collect())
    }
    /// The in-flight rewraps for one target.
    fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>>;

    /// Until when (Unix ms) `peer` is blocklisted as a source of `credential`.
    fn blocked_until(&self, credential: &CredentialId, peer: &AgentId) -> StateResult<Option<u64>>;

    /// An alert by key.
    fn alert(&self, key: &str) -> StateResult<Option<Alert>>;
    /// Every alert.
    fn alerts(&self) -> StateResult<Vec<Alert>>;

    /// The whole audit chain, in order.
    fn audit(&self) -> StateResult<Vec<AuditEntry>>;

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

    /// The agent's receipt of `kind` about a credential, if kept.
    fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<tessera_proto::receipt::Receipt>>;

    /// An agent's key rotation.
    fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>>;
    /// Every agent's key rotation.
    fn renewals(&self) -> StateResult<Vec<RenewalRecord>>;

    /// The audit chain's newest entry.
    fn audit_head(&self) -> StateResult<Option<AuditEntry>>;

    /// Begins this relay's write turn for one event: until [`Self::end_turn`], no other relay sharing the backend
    /// writes. Returns whether another relay wrote since this one's last turn or batch, in which case what the
    /// engine keeps in memory must be read again. A backend only one relay writes (sled) has nothing to do.
    fn begin_turn(&self) -> StateResult<bool> {
        Ok(false)
    }

    /// Ends the turn [`Self::begin_turn`] began (nothing when none is held).
    fn end_turn(&self) {}

    /// The relays connected to this backend now, by replica name, when several can share it (`None`: this one
    /// alone).
    fn replicas(&self) -> StateResult<Option<Vec<String>>> {
        Ok(None)
    }

    /// Records `replica`'s coordination status (a JSON object) where the other relays sharing the backend read it
    /// (nothing for a backend only one relay uses). Not audited, and outside the write turn.
    fn record_replica_status(
        &self,
        _replica: &str,
        _status: &serde_json::Value,
    ) -> StateResult<()> {
        Ok(())
    }

    /// The coordination statuses recorded by the relays connected to this backend now, by replica name (`None`:
    /// this one alone).
    fn replica_statuses(&self) -> StateResult<Option<Vec<serde_json::Value>>> {
        Ok(None)
    }

    /// Applies a batch atomically: every write or none. Refuses ([`StateError::Conflict`]) a batch whose audit
    /// entries do not follow the chain's head.
    fn apply(&self, batch: &Batch) -> StateResult<()>;

    /// Makes everything applied durable.
    fn flush(&self) -> StateResult<()>;
}
