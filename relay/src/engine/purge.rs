//! Deleting a credential on an operator-signed tombstone, and the purge on every agent that held or may hold it.
//!
//! The relay verifies the tombstone against the org CA before anything (it refuses one that does not verify), marks
//! the credential deleted (no more deliveries, JIT answers `NOT_FOUND`), drops its in-flight rewraps, and forwards
//! the tombstone unchanged in `credential_purge` to every agent with a delivery row for it (any version) or in its
//! scope, marking each row `purging`. An agent that comes back (any registration) while its row is `purging`, or
//! whose warm-reconnect `held` list names a tombstoned id, is sent the tombstone again. `credential_purged` from an
//! agent marks its row `purged`. The relay cannot forge a tombstone: agents verify it themselves.
//!
//! A scope revoke is the same without the tombstone: when a put narrows a credential's scope, every agent with a row
//! that the new scope leaves out is sent `credential_revoke` with the new signed statement (its row `purging`, no
//! longer a peer candidate), again at registration until it acknowledges; a grant that brings it back resets its
//! row to pending.

use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::statement::{CredentialTombstone, Signed};
use tessera_proto::wire::{CredentialPurge, CredentialPurged, CredentialRevoke, Down};

use super::audit_event::AuditEvent;
use super::operator::OperatorError;
use super::{Engine, Outbound};
use crate::alerts::{AlertKind, Subject};
use crate::state::{
    CredentialRecord, DeliveryRow, DeliveryState, PurgeState, ReceiptKind, StateResult,
};

impl Engine {
    /// Deletes credential `id` on `signed`, a tombstone an operator signed for it; returns the purges to send.
    pub(crate) fn tombstone_credential_staged(
        &mut self,
        id: &CredentialId,
        signed: &Signed<CredentialTombstone>,
    ) -> Result<Vec<Outbound>, OperatorError> {
        let t = signed
            .verify(&self.ca, &self.revocations)
            .map_err(|e| OperatorError::Statement(format!("tombstone refused: {e}")))?
            .tombstone;
        if t.credential_id != *id {
            return Err(OperatorError::Statement(format!(
                "the tombstone is for credential {}, not {id}",
                t.credential_id
            )));
        }
        let mut c = self
            .store
            .credential(id)?
            .ok_or_else(|| OperatorError::NotFound(format!("no credential {id}")))?;
        if t.name != c.name {
            return Err(OperatorError::Conflict(format!(
                "the tombstone names {}, the credential is {}",
                t.name.as_str(),
                c.name.as_str()
            )));
        }
        if t.version < c.version {
            return Err(OperatorError::Conflict(format!(
                "{} is at version {}; the tombstone deletes only up to version {}",
                c.name.as_str(),
                c.version,
                t.version
            )));
        }
        let held_version = c
            .tombstone
            .as_ref()
            .and_then(|s| {
                s.parse_unverified(tessera_proto::statement::TOMBSTONE_KIND)
                    .ok()
            })
            .map_or(0, |h| h.version);
        if t.version >= held_version {
            c.tombstone = Some(signed.clone());
        }
        c.deleted = true;
        self.store.put_credential(&c)?;
        for p in self.store.pendings()? {
            if p.credential == *id {
                self.drop_pending(&p.request_id, &p.credential, &p.target)?;
            }
        }
        for q in self.backlog.values_mut() {
            q.retain(|x| x != id);
        }
        self.audit(AuditEvent::CredentialTombstoned {
            credential: *id,
            name: &c.name,
            version: t.version,
            creator: &t.creator,
        })?;
        let mut targets: Vec<AgentId> = Vec::new();
        for mut row in self.store.deliveries_of_credential(id)? {
            if row.purge != Some(PurgeState::Purged) {
                self.mark_purging(&mut row);
                self.store.put_delivery(&row)?;
                targets.push(row.agent);
            }
        }
        for a in self.store.agents()? {
            if c.scope.includes(&a.id) && self.store.delivery(id, &a.id)?.is_none() {
                self.store.put_delivery(&self.purge_row(&c, &a.id))?;
                targets.push(a.id);
            }
        }
        self.audit(AuditEvent::PurgeSent {
            credential: *id,
            agents: targets.len(),
        })?;
        let Some(tombstone) = c.tombstone else {
            return Ok(Vec::new());
        };
        // Sent to offline agents too: their persistent broker session keeps it, and registration sends it again.
        Ok(targets
            .into_iter()
            .map(|to| purge_message(to, &tombstone))
            .collect())
    }

    /// Marks `row` purging; the time it started is kept across re-sends (the overdue alert counts from it).
    fn mark_purging(&self, row: &mut DeliveryRow) {
        if row.purge != Some(PurgeState::Purging) || row.purge_since_ms == 0 {
            row.purge_since_ms = self.now_ms();
        }
        row.purge = Some(PurgeState::Purging);
    }

    fn purge_row(&self, c: &CredentialRecord, agent: &AgentId) -> DeliveryRow {
        DeliveryRow {
            purge: Some(PurgeState::Purging),
            purge_since_ms: self.now_ms(),
            ..DeliveryRow::pending(c.id, agent.clone(), c.version, self.now_ms())
        }
    }

    /// At registration: the tombstone of `c` again if `agent` has not acknowledged its purge (its row is `purging`)
    /// or lists it as held.
    pub(crate) fn purge_on_register(
        &mut self,
        c: &CredentialRecord,
        agent: &AgentId,
        listed: bool,
    ) -> StateResult<Option<Outbound>> {
        let Some(tombstone) = &c.tombstone else {
            return Ok(None);
        };
        let row = self.store.delivery(&c.id, agent)?;
        let purging = row
            .as_ref()
            .is_some_and(|r| r.purge == Some(PurgeState::Purging));
        if !purging && !listed {
            return Ok(None);
        }
        let mut row = row.unwrap_or_else(|| self.purge_row(c, agent));
        self.mark_purging(&mut row);
        self.store.put_delivery(&row)?;
        self.audit(AuditEvent::PurgeSentAtRegistration {
            credential: c.id,
            agent,
        })?;
        Ok(Some(purge_message(agent.clone(), tombstone)))
    }

    /// After a put raised the scope revision or the version of `c`: agents its scope leaves out are sent the new
    /// statement to purge; agents it brings back (after an earlier revoke) get a fresh pending row.
    pub(crate) fn rescope_rows(&mut self, c: &CredentialRecord) -> StateResult<Vec<Outbound>> {
        let mut out = Vec::new();
        for mut row in self.store.deliveries_of_credential(&c.id)? {
            if c.scope.includes(&row.agent) {
                if row.purge.is_some() {
                    row.purge = None;
                    row.purge_since_ms = 0;
                    row.state = DeliveryState::Pending;
                    row.version = c.version;
                    row.attempts = 0;
                    row.next_attempt_ms = self.now_ms();
                    self.store.put_delivery(&row)?;
                }
                continue;
            }
            if row.purge.is_some() {
                continue;
            }
            for p in self.store.pendings_of_target(&row.agent)? {
                if p.credential == c.id {
                    self.drop_pending(&p.request_id, &p.credential, &p.target)?;
                }
            }
            self.mark_purging(&mut row);
            self.store.put_delivery(&row)?;
            self.audit(AuditEvent::RevokeSent {
                credential: c.id,
                agent: &row.agent,
                scope_revision: c.scope_revision,
            })?;
            out.push(revoke_message(row.agent, &c.statement));
        }
        Ok(out)
    }

    /// At registration, for a live credential whose scope leaves `agent` out: the statement again if the agent has
    /// not acknowledged the revoke or lists the credential as held.
    pub(crate) fn revoke_on_register(
        &mut self,
        c: &CredentialRecord,
        agent: &AgentId,
        listed: bool,
    ) -> StateResult<Option<Outbound>> {
        let row = self.store.delivery(&c.id, agent)?;
        let purging = row
            .as_ref()
            .is_some_and(|r| r.purge == Some(PurgeState::Purging));
        if !purging && !listed {
            return Ok(None);
        }
        let mut row = row.unwrap_or_else(|| self.purge_row(c, agent));
        self.mark_purging(&mut row);
        self.store.put_delivery(&row)?;
        Ok(Some(revoke_message(agent.clone(), &c.statement)))
    }

    pub(super) fn on_purged(&mut self, agent: &AgentId, p: &CredentialPurged) -> StateResult<()> {
        let checked = self
            .verify_receipt(agent, p.receipt.as_ref())?
            .and_then(|body| match &body.fact {
                ReceiptFact::Purged {
                    credential_id,
                    version,
                    ..
                } if *credential_id == p.credential_id && *version == p.version => Ok(body),
                _ => Err("the receipt is for another purge".to_owned()),
            });
        let (receipt, body) = match (p.receipt.as_ref(), checked) {
            (Some(r), Ok(body)) => (r, body),
            (_, Err(reason)) => {
                return self.drop_message(
                    agent.as_str(),
                    &format!("purge acknowledgement without a valid receipt: {reason}"),
                );
            }
            (None, Ok(_)) => return Ok(()),
        };
        let purging = match self.store.credential(&p.credential_id)? {
            Some(c) => {
                let row = self.store.delivery(&c.id, agent)?;
                let expected = c.tombstone.is_some()
                    || row
                        .as_ref()
                        .is_some_and(|r| r.purge == Some(PurgeState::Purging));
                expected.then(|| (row.unwrap_or_else(|| self.purge_row(&c, agent)), c.id))
            }
            None => None,
        };
        let Some((mut row, id)) = purging else {
            return self.drop_message(
                agent.as_str(),
                "purge acknowledgement for a credential neither tombstoned nor revoked for this agent",
            );
        };
        row.purge = Some(PurgeState::Purged);
        self.store
            .put_receipt(&id, agent, ReceiptKind::Purged, receipt)?;
        self.store.put_delivery(&row)?;
        let scope_revision = match &body.fact {
            ReceiptFact::Purged {
                scope_revision: Some(r),
                ..
            } => Some(*r),
            _ => None,
        };
        self.audit(AuditEvent::CredentialPurged {
            credential: p.credential_id,
            agent,
            version: p.version,
            scope_revision,
            receipt: (receipt, &body),
        })?;
        Ok(())
    }
}

impl Engine {
    /// `credential_purge_overdue` for every agent that has left a purge unacknowledged for `purge_alert_ms`.
    pub(super) fn check_purges(&mut self) -> StateResult<()> {
        let now = self.now_ms();
        for row in self.store.deliveries()? {
            if row.purge == Some(PurgeState::Purging)
                && row.purge_since_ms > 0
                && now.saturating_sub(row.purge_since_ms) >= self.cfg.purge_alert_ms
            {
                self.alert(
                    AlertKind::CredentialPurgeOverdue,
                    Subject::Delivery(row.credential, &row.agent),
                    format!(
                        "{} has not acknowledged the purge of credential {} for {} s (offline, or the relay's message                          was lost)",
                        row.agent.as_str(),
                        row.credential,
                        now.saturating_sub(row.purge_since_ms) / 1000
                    ),
                )?;
            }
        }
        Ok(())
    }
}

fn revoke_message(
    to: AgentId,
    statement: &Signed<tessera_proto::statement::CredentialStatement>,
) -> Outbound {
    Outbound {
        to,
        msg: Down::CredentialRevoke(CredentialRevoke {
            statement: statement.clone(),
        }),
    }
}

fn purge_message(to: AgentId, tombstone: &Signed<CredentialTombstone>) -> Outbound {
    Outbound {
        to,
        msg: Down::CredentialPurge(CredentialPurge {
            tombstone: tombstone.clone(),
        }),
    }
}
