//! `credentials_flagged`: an agent adopted a newer CA-signed revocation list, re-checked the statements of what it
//! holds, and found credentials whose signer (an operator certificate) is now revoked.
//!
//! Each credential the relay knows raises `credential_signer_revoked` (high), deduplicated per credential however
//! many agents report it; every message is audited (`credential_signer_revoked`, with the agent, the list serial
//! and the credentials). Ids the relay does not know are counted in the audit and raise nothing: an agent cannot
//! make the relay alert about credentials that do not exist. Nothing is sent back: re-signing (or deleting) the
//! credential is the operator's decision.

use tessera_proto::cert::CertError;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::StatementError;
use tessera_proto::wire::{CredentialsFlagged, FlagReason};

use super::audit_event::AuditEvent;
use super::Engine;
use crate::alerts::{AlertKind, Subject};
use crate::state::StateResult;

/// Credential ids written into one audit entry at most (the count is always complete).
const AUDITED_IDS: usize = 100;

impl Engine {
    pub(super) fn on_flagged(
        &mut self,
        agent: &AgentId,
        f: &CredentialsFlagged,
    ) -> StateResult<()> {
        let reason = match f.reason {
            FlagReason::SignerRevoked => "signer_revoked",
            _ => "unknown",
        };
        let mut known = Vec::new();
        let mut unknown = 0usize;
        for id in &f.credential_ids {
            match self.store.credential(id)? {
                Some(c) => known.push(c),
                None => unknown += 1,
            }
        }
        for c in &known {
            // Whether the relay's own list revokes the signer of the current version (the agent may hold an
            // older one, or have a newer list than the relay).
            let relay_agrees = matches!(
                c.statement.verify(&self.ca, &self.revocations),
                Err(StatementError::Signer(CertError::Revoked(_)))
            );
            self.alert(
                AlertKind::CredentialSignerRevoked,
                Subject::Credential(c.id),
                format!(
                    "{} reports that the operator certificate that signed credential {} ({}) is revoked (revocation \
                     list {}); the relay's list {} the current version's signer",
                    agent.as_str(),
                    c.id,
                    c.name.as_str(),
                    f.list_serial,
                    if relay_agrees { "revokes" } else { "does not revoke" },
                ),
            )?;
        }
        let ids: Vec<String> = known
            .iter()
            .take(AUDITED_IDS)
            .map(|c| c.id.to_string())
            .collect();
        self.audit(AuditEvent::CredentialSignerRevoked {
            agent,
            reason,
            list_serial: f.list_serial,
            credentials: ids,
            known: known.len(),
            unknown,
        })?;
        Ok(())
    }
}
