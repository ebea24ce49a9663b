//! What the admin API shows, filled from the relay's state: agents, and credentials with the article's sync chips.
//! The bodies themselves are [`tessera_proto::admin`].

use std::collections::HashSet;

use tessera_proto::admin::{
    AgentView, CredentialView, DeliveryView, PurgeChips, RenewalView, SyncChips,
};
use tessera_proto::ids::AgentId;

use crate::alerts::{Alert, AlertKind};
use crate::state::{
    AgentRecord, CredentialRecord, DeliveryRow, DeliveryState, PurgeState, RenewalRecord,
};

/// An agent's view; a presence (`online`, `backfilling`) is `stale` while the relay's broker link is down.
pub(super) fn agent_view(a: &AgentRecord, broker_connected: bool) -> AgentView {
    AgentView {
        stale: !broker_connected && a.state != tessera_proto::wire::AgentState::Offline,
        id: a.id.clone(),
        state: a.state,
        last_seen_ms: a.last_seen_ms,
        mode: a.mode,
        cert: tessera_proto::b64_encode(&a.cert),
        version: a.agent_version.clone(),
        batch_rewrap: a.batch_rewrap,
    }
}

/// A credential's view from its record, its delivery rows, the alerts about it and the agents offline.
pub(super) fn credential_view(
    c: &CredentialRecord,
    rows: &[DeliveryRow],
    alerts: &[Alert],
    offline: &HashSet<AgentId>,
) -> CredentialView {
    let purge = c.tombstone.as_ref().map(|_| {
        let rows: Vec<&DeliveryRow> = rows.iter().filter(|r| r.purge.is_some()).collect();
        PurgeChips {
            purged: rows
                .iter()
                .filter(|r| r.purge == Some(PurgeState::Purged))
                .count(),
            of: rows.len(),
            offline: rows
                .iter()
                .filter(|r| r.purge == Some(PurgeState::Purging) && offline.contains(&r.agent))
                .count(),
        }
    });
    // Rows of agents the credential was purged from (a scope revoke) are not counted as holding it.
    let current: Vec<&DeliveryRow> = rows
        .iter()
        .filter(|r| r.version == c.version && r.purge.is_none())
        .collect();
    let count = |s: DeliveryState| current.iter().filter(|r| r.state == s).count();
    CredentialView {
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
        purge,
        statement: c.statement.clone(),
    }
}

/// One delivery row, for `cred show` (the last error is the relay's reason code: operators see it, agents never do).
pub(super) fn delivery_view(
    r: &DeliveryRow,
    agent_state: Option<tessera_proto::wire::AgentState>,
    receipt: Option<tessera_proto::receipt::Receipt>,
    purge_receipt: Option<tessera_proto::receipt::Receipt>,
) -> DeliveryView {
    let state = match r.state {
        DeliveryState::Pending => "pending",
        DeliveryState::Stored => "stored",
        DeliveryState::Stalled => "stalled",
        DeliveryState::Untrusted => "untrusted",
    };
    DeliveryView {
        agent: r.agent.clone(),
        agent_state,
        version: r.version,
        state: state.to_owned(),
        attempts: r.attempts,
        next_attempt_ms: r.next_attempt_ms,
        last_error: r.last_error.clone(),
        purge: r.purge.map(|p| {
            match p {
                PurgeState::Purging => "purging",
                PurgeState::Purged => "purged",
            }
            .to_owned()
        }),
        receipt,
        purge_receipt,
    }
}

/// An agent's key rotation.
pub(super) fn renewal_view(r: &RenewalRecord) -> RenewalView {
    RenewalView {
        agent: r.agent.clone(),
        state: r.state,
        request: r.request.clone(),
        cert: r.cert.as_ref().map(tessera_proto::b64_encode),
        receipt: r.receipt.clone(),
        failure: r.failure,
        requested_ms: r.requested_ms,
        updated_ms: r.updated_ms,
    }
}
