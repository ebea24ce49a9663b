//! Operator actions (through the admin API): put, rotate, re-scope (grant/revoke), remove and retry credentials;
//! dispatch jobs and record their results.
//!
//! The relay never sees plaintext here either: a put carries the creator's signed statement and one envelope per
//! certified agent in scope, sealed on the operator's workstation.

use tessera_proto::envelope::{Envelope, KeyFingerprint};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::statement::{CredentialStatement, Signed};
use tessera_proto::wire::{
    AgentState, Down, JobDispatch, JobErrorCode, JobResult, MAX_JOB_TTL_SECS,
};

use super::audit_event::AuditEvent;
use super::{Engine, Outbound};
use crate::alerts::Alert;
use crate::state::{
    CredentialRecord, DeliveryRow, DeliveryState, JobRecord, OperatorSealed, StateResult,
};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The statement does not verify against the org CA.
    #[error("statement refused: {0}")]
    Statement(String),
    /// The version or scope revision does not move forward.
    #[error("{0}")]
    Conflict(String),
    /// A request that does not hold together (a batch naming a credential it does not carry, a duplicate).
    #[error("{0}")]
    Invalid(String),
    /// Unknown credential, agent or template.
    #[error("{0}")]
    NotFound(String),
    /// A retry within the cooldown, or no eligible agent for a job.
    #[error("{0}")]
    Busy(String),
    /// The relay's state failed.
    #[error("relay state: {0}")]
    State(#[from] crate::state::StateError),
}

impl Engine {
    pub(crate) fn ensure_row(
        &self,
        c: &CredentialRecord,
        agent: &AgentId,
    ) -> StateResult<DeliveryRow> {
        if let Some(row) = self.store.delivery(&c.id, agent)? {
            if row.version == c.version {
                return Ok(row);
            }
        }
        let row = DeliveryRow::pending(c.id, agent.clone(), c.version, self.now_ms());
        self.store.put_delivery(&row)?;
        Ok(row)
    }

    /// Puts a new credential or a new version (rotation) or a new scope revision of the current version (grant,
    /// revoke), with envelopes the operator sealed for agents in scope (each with the fingerprint of the
    /// certified wrap key it is sealed to).
    pub(crate) fn put_credential_staged(
        &mut self,
        signed: &Signed<CredentialStatement>,
        envelopes: &[(AgentId, KeyFingerprint, Envelope)],
    ) -> Result<Vec<Outbound>, OperatorError> {
        let sealed: Vec<(AgentId, KeyFingerprint, OperatorSealed)> = envelopes
            .iter()
            .map(|(a, k, e)| (a.clone(), *k, OperatorSealed::Envelope(e.clone())))
            .collect();
        self.put_statement_staged(signed, &sealed)
    }

    /// [`Self::put_credential_staged`] with what the operator sealed as single envelopes or items of batch
    /// envelopes (kept before, by [`Self::put_batch_staged`]).
    pub(crate) fn put_statement_staged(
        &mut self,
        signed: &Signed<CredentialStatement>,
        envelopes: &[(AgentId, KeyFingerprint, OperatorSealed)],
    ) -> Result<Vec<Outbound>, OperatorError> {
        let st = signed
            .verify(&self.ca, &self.revocations)
            .map_err(|e| OperatorError::Statement(e.to_string()))?
            .statement;
        let existing = self.store.credential(&st.credential_id)?;
        if let Some(e) = &existing {
            let forward = st.version > e.version
                || (st.version == e.version
                    && st.scope_revision > e.scope_revision
                    && st.commitment == e.commitment);
            if !forward {
                return Err(OperatorError::Conflict(format!(
                    "{} is at version {} revision {}; a put must raise one of them",
                    e.name.as_str(),
                    e.version,
                    e.scope_revision
                )));
            }
        } else if let Some(other) = self.store.credential_by_name(&st.name)? {
            return Err(OperatorError::Conflict(format!(
                "the name {} is taken by credential {}",
                st.name.as_str(),
                other.id
            )));
        }
        let c = CredentialRecord {
            id: st.credential_id,
            name: st.name.clone(),
            version: st.version,
            scope_revision: st.scope_revision,
            scope: st.scope.clone(),
            commitment: st.commitment,
            statement: signed.clone(),
            deleted: false,
            tombstone: None,
            updated_ms: self.now_ms(),
        };
        self.store.put_credential(&c)?;
        // Kept with the fingerprint of the key it is sealed to: used only while the agent still has that key. Two
        // for one agent (a rotation's grace period: the old and the new certificate) keep the one for its current
        // key: written last.
        let mut ordered: Vec<(&(AgentId, KeyFingerprint, OperatorSealed), bool)> = Vec::new();
        for e in envelopes {
            let current = self
                .store
                .agent(&e.0)?
                .is_some_and(|a| a.wrap_fingerprint == e.1 .0);
            ordered.push((e, current));
        }
        ordered.sort_by_key(|(_, current)| *current);
        for ((agent, key, sealed), _) in ordered {
            self.store
                .put_envelope(&c.id, c.version, agent, sealed, key.0)?;
        }
        self.audit(AuditEvent::CredentialPut {
            credential: c.id,
            name: &c.name,
            version: c.version,
            scope_revision: c.scope_revision,
            creator: &st.creator,
        })?;
        let mut out = Vec::new();
        if existing.is_some() {
            out.extend(self.rescope_rows(&c)?);
        }
        for a in self.store.agents()? {
            if !c.scope.includes(&a.id) {
                continue;
            }
            let row = self.ensure_row(&c, &a.id)?;
            if row.state == DeliveryState::Pending && a.state != AgentState::Offline {
                out.extend(self.start_delivery(&c.id, &a.id, None)?);
            }
        }
        Ok(out)
    }

    /// Adopts a revocation list signed by the org CA and newer than the one held, and sends it to every agent.
    pub(crate) fn apply_revocations_staged(
        &mut self,
        signed: &Signed<tessera_proto::statement::RevocationList>,
    ) -> Result<Vec<Outbound>, OperatorError> {
        let list = signed
            .verify(&self.ca, &self.revocations)
            .map_err(|e| OperatorError::Conflict(format!("revocation list refused: {e}")))?;
        self.store.put_revocations(signed)?;
        self.audit(AuditEvent::RevocationList {
            serial: list.serial,
            revoked: list.revoked.len(),
        })?;
        self.revocations = list;
        Ok(self
            .store
            .agents()?
            .into_iter()
            .map(|a| Outbound {
                to: a.id,
                msg: Down::RevocationUpdate(tessera_proto::wire::RevocationUpdate {
                    list: signed.clone(),
                }),
            })
            .collect())
    }

    /// Soft-deletes a credential: it stops syncing and is no longer served by name.
    pub(crate) fn remove_credential_staged(
        &mut self,
        id: &CredentialId,
    ) -> Result<(), OperatorError> {
        let mut c = self
            .store
            .credential(id)?
            .ok_or_else(|| OperatorError::NotFound(format!("no credential {id}")))?;
        c.deleted = true;
        self.store.put_credential(&c)?;
        self.audit(AuditEvent::CredentialRemoved { credential: *id })?;
        Ok(())
    }

    /// An operator's retry of every pending or stalled delivery of a credential (30 s cooldown per row).
    pub(crate) fn retry_staged(
        &mut self,
        id: &CredentialId,
    ) -> Result<Vec<Outbound>, OperatorError> {
        let now = self.now_ms();
        let mut out = Vec::new();
        let mut cooled = false;
        for mut row in self.store.deliveries_of_credential(id)? {
            if !matches!(row.state, DeliveryState::Pending | DeliveryState::Stalled) {
                continue;
            }
            if now.saturating_sub(row.retry_requested_ms) < self.cfg.retry_cooldown_ms {
                cooled = true;
                continue;
            }
            row.retry_requested_ms = now;
            row.state = DeliveryState::Pending;
            row.attempts = 0;
            row.next_attempt_ms = now;
            self.store.put_delivery(&row)?;
            out.extend(self.start_delivery(id, &row.agent, None)?);
        }
        if out.is_empty() && cooled {
            return Err(OperatorError::Busy(
                "a retry was requested less than 30 s ago".into(),
            ));
        }
        Ok(out)
    }

    /// Marks the alert with id `id` acknowledged by operator `by` (audited); a recurrence clears the mark.
    pub(crate) fn ack_alert_staged(&mut self, id: &str, by: &str) -> Result<(), OperatorError> {
        let mut alert = self
            .store
            .alerts()?
            .into_iter()
            .find(|a| a.id() == id)
            .ok_or_else(|| OperatorError::NotFound(format!("no alert {id}")))?;
        alert.acknowledged_ms = Some(self.now_ms());
        self.store
            .put_alert(&Alert::key(alert.kind, &alert.subject), &alert)?;
        self.audit(AuditEvent::AlertAcknowledged {
            alert: id,
            kind: alert.kind.as_str(),
            operator: by,
        })?;
        Ok(())
    }

    /// Dispatches a job to `agent` or to an eligible one (online, not backfilling), preferring one that holds the
    /// credentials.
    pub(crate) fn dispatch_job_staged(
        &mut self,
        template: TemplateName,
        params: std::collections::BTreeMap<String, String>,
        credentials: Vec<CredentialName>,
        agent: Option<&AgentId>,
    ) -> Result<(uuid::Uuid, AgentId, Vec<Outbound>), OperatorError> {
        let agents = self.store.agents()?;
        let eligible: Vec<&crate::state::AgentRecord> = agents
            .iter()
            .filter(|a| a.state == AgentState::Online)
            .filter(|a| agent.is_none_or(|want| *want == a.id))
            .collect();
        let mut wanted = Vec::new();
        for n in &credentials {
            if let Some(c) = self.store.credential_by_name(n)? {
                wanted.push(c.id);
            }
        }
        // The eligible agent holding the most of them (the last of equals, in the store's order).
        let mut chosen: Option<(usize, &AgentId)> = None;
        for a in eligible {
            let mut holds = 0;
            for id in &wanted {
                if self
                    .store
                    .delivery(id, &a.id)?
                    .is_some_and(|r| r.state == DeliveryState::Stored)
                {
                    holds += 1;
                }
            }
            if chosen.is_none_or(|(best, _)| holds >= best) {
                chosen = Some((holds, &a.id));
            }
        }
        let chosen = chosen.map(|(_, a)| a.clone()).ok_or_else(|| {
            OperatorError::Busy("no eligible agent (online and not backfilling)".into())
        })?;
        let id = uuid::Uuid::new_v4();
        let ttl = i64::try_from(self.cfg.job_ttl_secs)
            .unwrap_or(MAX_JOB_TTL_SECS)
            .min(MAX_JOB_TTL_SECS);
        let expires_at = self.now_s().saturating_add(ttl);
        self.store.put_job(&JobRecord {
            id,
            template: template.clone(),
            agent: chosen.clone(),
            dispatched_ms: self.now_ms(),
            expires_at,
            result: None,
        })?;
        self.audit(AuditEvent::JobDispatched {
            job: id,
            template: &template,
            agent: &chosen,
            expires_at,
        })?;
        let msg = Down::JobDispatch(JobDispatch {
            job_id: id,
            template,
            params,
            credentials,
            expires_at,
        });
        Ok((id, chosen.clone(), vec![Outbound { to: chosen, msg }]))
    }

    pub(super) fn on_job_result(&mut self, from: &AgentId, r: JobResult) -> StateResult<()> {
        if r.error_code() == Some(JobErrorCode::JobDuplicate) {
            // The agent refused a second copy of a job it has run or is running: the job's own result is (or
            // will be) the other one, so this one never takes its place.
            self.audit(AuditEvent::JobDuplicate {
                job: r.job_id,
                agent: from,
            })?;
            return Ok(());
        }
        match self.store.job(&r.job_id)? {
            Some(mut job) if job.agent == *from && job.result.is_none() => {
                self.audit(AuditEvent::JobResult {
                    job: r.job_id,
                    agent: from,
                    exit_code: r.exit_code,
                })?;
                job.result = Some(r);
                self.store.put_job(&job)
            }
            _ => self.drop_message(from.as_str(), "job result for an unknown job"),
        }
    }
}
