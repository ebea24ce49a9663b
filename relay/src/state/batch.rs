//! One logical change to the relay's state: every record it writes, applied by a backend all at once or not at all
//! (one sled transaction, one PostgreSQL transaction). The engine builds it through [`super::Staged`].

use tessera_proto::audit::AuditEntry;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{RevocationList, Signed};

use super::{
    AgentRecord, BatchEnvelopeRecord, CredentialRecord, DeliveryRow, JobRecord, OperatorSealed,
    PendingRewrap, ReceiptKind, RenewalRecord,
};
use crate::alerts::Alert;

/// One record written (or, for an in-flight rewrap, removed).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Write {
    /// Creates or replaces an agent.
    Agent(AgentRecord),
    /// Creates or replaces a credential (and moves its name: only a live credential holds one).
    Credential(CredentialRecord),
    /// Creates or replaces a delivery row.
    Delivery(DeliveryRow),
    /// Keeps what the operator sealed for an agent, with the fingerprint of the key it is sealed to.
    Envelope {
        /// The credential.
        credential: CredentialId,
        /// Its version.
        version: u64,
        /// The agent it is sealed for.
        agent: AgentId,
        /// The envelope, or the batch envelope that carries it.
        sealed: OperatorSealed,
        /// SHA-256 of the wrap key it is sealed to.
        key: [u8; 32],
    },
    /// Keeps a batch envelope the operator sealed for an agent.
    BatchEnvelope {
        /// The batch.
        batch: uuid::Uuid,
        /// The agent it is sealed for.
        agent: AgentId,
        /// The envelope, its key and its items.
        record: BatchEnvelopeRecord,
    },
    /// Creates or replaces an in-flight rewrap.
    Pending(PendingRewrap),
    /// Removes an in-flight rewrap.
    RemovePending(uuid::Uuid),
    /// Blocklists a peer as a source of a credential until a time (Unix ms).
    Block {
        /// The credential.
        credential: CredentialId,
        /// The peer.
        peer: AgentId,
        /// Until when.
        until_ms: u64,
    },
    /// Creates or replaces an alert.
    Alert {
        /// Its key ([`Alert::key`]).
        key: String,
        /// The alert.
        alert: Alert,
    },
    /// Appends an audit entry: it must follow the chain's newest entry (or the batch's previous one), which the
    /// backend checks, so a batch built on a stale head is refused whole rather than forking the chain.
    Audit(AuditEntry),
    /// Creates or replaces a job.
    Job(JobRecord),
    /// Replaces the revocation list.
    Revocations(Signed<RevocationList>),
    /// Keeps (replaces) an agent's receipt about a credential.
    Receipt {
        /// The credential.
        credential: CredentialId,
        /// The agent.
        agent: AgentId,
        /// Which receipt.
        kind: ReceiptKind,
        /// The receipt.
        receipt: Receipt,
    },
    /// Creates or replaces an agent's key rotation.
    Renewal(RenewalRecord),
}

/// The writes of one logical change, in the order they are applied.
#[derive(Debug, Clone, Default)]
pub struct Batch(pub Vec<Write>);

impl Batch {
    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many records are written.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Checks that the batch's audit entries follow `head` (the chain's newest entry) and each other.
    pub fn check_audit_chain(&self, head: Option<&AuditEntry>) -> Result<(), super::StateError> {
        let mut prev = head.cloned();
        for w in &self.0 {
            if let Write::Audit(e) = w {
                let (seq, link) = prev.as_ref().map_or_else(
                    || (0, tessera_proto::audit::GENESIS.to_owned()),
                    |p| (p.seq + 1, p.hash.clone()),
                );
                if e.seq != seq || e.prev != link {
                    return Err(super::StateError::Conflict(format!(
                        "audit entry {} does not follow the chain's head (expected {seq})",
                        e.seq
                    )));
                }
                prev = Some(e.clone());
            }
        }
        Ok(())
    }
}
