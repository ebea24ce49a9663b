//! What the admin API shows: agents, and credentials with the article's sync chips.

use serde::Serialize;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::statement::Scope;
use tessera_proto::wire::{AgentState, RegistrationMode};

use crate::alerts::{Alert, AlertKind};
use crate::state::{AgentRecord, CredentialRecord, DeliveryRow, DeliveryState};

/// An agent.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

impl From<&AgentRecord> for AgentView {
    fn from(a: &AgentRecord) -> Self {
        Self {
            id: a.id.clone(),
            state: a.state,
            last_seen_ms: a.last_seen_ms,
            mode: a.mode,
            cert: tessera_proto::b64_encode(&a.cert),
        }
    }
}

/// The sync chips.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// A credential with its sync state.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// The creator's signed statement of the current version (operators verify it before re-scoping).
    pub statement: tessera_proto::statement::Signed<tessera_proto::statement::CredentialStatement>,
}

impl CredentialView {
    /// From the record, its delivery rows and the alerts about it.
    pub fn new(c: &CredentialRecord, rows: &[DeliveryRow], alerts: &[Alert]) -> Self {
        let current: Vec<&DeliveryRow> = rows.iter().filter(|r| r.version == c.version).collect();
        let count = |s: DeliveryState| current.iter().filter(|r| r.state == s).count();
        Self {
            id: c.id,
            name: c.name.clone(),
            version: c.version,
            scope: c.scope.clone(),
            deleted: c.deleted,
            sync: SyncChips {
                synced: count(DeliveryState::Stored),
                of: current.len(),
                pending: count(DeliveryState::Pending),
                stalled: count(DeliveryState::Stalled),
                integrity_failure: alerts
                    .iter()
                    .any(|a| a.kind == AlertKind::CredentialCommitmentMismatch),
            },
            statement: c.statement.clone(),
        }
    }
}
