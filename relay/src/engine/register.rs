//! Registration and backfill.
//!
//! `first_registration` and `key_regenerated` make every credential in the agent's scope pending for it;
//! `warm_reconnect` marks stored what the agent lists (at the current version) and pending the rest. The agent is
//! `backfilling` (ineligible for jobs) until no pending row is left, and at most `backfill_concurrency` of its
//! deliveries are in flight at once; each completion starts the next.

use std::collections::HashMap;

use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::{AgentState, Down, Register, RegisterAck, RegistrationMode, Status};

use super::audit_event::AuditEvent;
use super::{Engine, Outbound};
use crate::state::{AgentRecord, DeliveryRow, DeliveryState, StateResult};
use tessera_proto::cert::AgentCertificate;

impl Engine {
    /// Presence. An agent that says (or whose Last Will says) it is offline is not a peer candidate and gets no
    /// deliveries. An agent listed offline that says it is up again is present again: the broker re-sends retained
    /// statuses at every subscription, so an agent's Last Will can be handled after the registration that followed
    /// it (an agent restarted while the relay was down), and only the agent's next status tells the truth.
    pub(super) fn on_status(
        &mut self,
        agent: &AgentId,
        status: &Status,
    ) -> StateResult<Vec<Outbound>> {
        if status.state == AgentState::Offline {
            self.went_offline(agent)?;
            return Ok(Vec::new());
        }
        self.present_again(agent)
    }

    fn went_offline(&mut self, agent: &AgentId) -> StateResult<()> {
        if let Some(mut a) = self.store.agent(agent)? {
            if a.state != AgentState::Offline {
                a.state = AgentState::Offline;
                self.store.put_agent(&a)?;
            }
        }
        Ok(())
    }

    /// An agent listed offline says it is up: present again if it registered before and its registered
    /// certificate is still valid and unrevoked (otherwise only a new registration brings it back). It goes on
    /// with what it lacks as a backfill does, and is listed online once nothing due is left.
    fn present_again(&mut self, agent: &AgentId) -> StateResult<Vec<Outbound>> {
        let Some(mut a) = self.store.agent(agent)? else {
            return Ok(Vec::new());
        };
        if a.state != AgentState::Offline || !self.target_certified(agent, &a.cert) {
            return Ok(Vec::new());
        }
        tracing::info!(agent = agent.as_str(), "agent present again");
        a.state = AgentState::Backfilling;
        self.store.put_agent(&a)?;
        // What it lacks is read again from its rows: failures while it was away left the backlog behind.
        self.backlog.remove(agent);
        self.pump(agent)
    }

    pub(super) fn on_register(
        &mut self,
        agent: &AgentId,
        r: &Register,
    ) -> StateResult<Vec<Outbound>> {
        let cert = match self
            .ca
            .verify_agent(&r.cert, self.now_s(), &self.revocations)
        {
            Ok(c) if c.agent_id == *agent => c,
            Ok(_) => {
                self.drop_message(agent.as_str(), "register: certificate names another agent")?;
                return Ok(Vec::new());
            }
            Err(e) => {
                self.drop_message(agent.as_str(), &format!("register: {e}"))?;
                return Ok(Vec::new());
            }
        };
        self.register(agent, r, &cert)
    }

    fn register(
        &mut self,
        agent: &AgentId,
        r: &Register,
        cert: &AgentCertificate,
    ) -> StateResult<Vec<Outbound>> {
        let wrap_fingerprint = cert.wrap.fingerprint().0;
        let now = self.now_ms();
        let held: HashMap<CredentialId, u64> = r
            .held
            .iter()
            .map(|h| (h.credential_id, h.version))
            .collect();
        let mut gap = 0u32;
        let mut purges = Vec::new();
        for c in self.store.credentials()? {
            if c.tombstone.is_some() {
                purges.extend(self.purge_on_register(&c, agent, held.contains_key(&c.id))?);
                continue;
            }
            if !c.deleted && !c.scope.includes(agent) {
                purges.extend(self.revoke_on_register(&c, agent, held.contains_key(&c.id))?);
                continue;
            }
            if c.deleted {
                continue;
            }
            let mut row = self
                .store
                .delivery(&c.id, agent)?
                .unwrap_or_else(|| DeliveryRow::pending(c.id, agent.clone(), c.version, now));
            let has = r.mode == RegistrationMode::WarmReconnect
                && held.get(&c.id).is_some_and(|v| *v >= c.version);
            row.version = c.version;
            if has {
                row.state = DeliveryState::Stored;
            } else {
                row.state = DeliveryState::Pending;
                row.attempts = 0;
                row.next_attempt_ms = now;
                gap += 1;
            }
            self.store.put_delivery(&row)?;
        }
        let state = if gap > 0 {
            AgentState::Backfilling
        } else {
            AgentState::Online
        };
        let before = self.store.agent(agent)?;
        // Another certificate (a key rotation, or a re-enrolment): the one before is kept for the agent's receipts.
        let previous_cert = match &before {
            Some(b) if b.cert != r.cert => Some(b.cert.clone()),
            Some(b) => b.previous_cert.clone(),
            None => None,
        };
        let key_changed = before
            .as_ref()
            .is_some_and(|b| b.wrap_fingerprint != wrap_fingerprint);
        self.store.put_agent(&AgentRecord {
            id: agent.clone(),
            cert: r.cert.clone(),
            wrap_fingerprint,
            state,
            last_seen_ms: now,
            mode: Some(r.mode),
            previous_cert,
            cert_not_before: cert.not_before,
            cert_not_after: cert.not_after,
            // What the agent says (bounded by the wire's checks), kept for the admin API; never trusted.
            agent_version: (!r.agent_version.is_empty()).then(|| r.agent_version.clone()),
            batch_rewrap: super::batch::announced(r),
        })?;
        self.batch_capable.remove(agent);
        self.audit(AuditEvent::AgentRegistered {
            agent,
            mode: r.mode,
            backfill: gap,
            serial: &cert.serial,
        })?;
        let resealed = if key_changed {
            self.reseal_in_flight(agent)?
        } else {
            Vec::new()
        };
        let renewal = self.renewal_on_register(agent, &r.cert)?;
        let mut out = vec![Outbound {
            to: agent.clone(),
            msg: Down::RegisterAck(RegisterAck {
                mode: r.mode,
                state,
                backfill: gap,
                serial: Some(cert.serial.clone()),
            }),
        }];
        if let Some(list) = self.store.revocations()? {
            out.push(Outbound {
                to: agent.clone(),
                msg: Down::RevocationUpdate(tessera_proto::wire::RevocationUpdate { list }),
            });
        }
        out.extend(purges);
        out.extend(renewal);
        out.extend(resealed);
        out.extend(self.pump(agent)?);
        Ok(out)
    }

    /// The agent registered with another wrap key (a key rotation): rewraps still waiting for a peer were asked for
    /// the old key, and their answers would fail binding 4; they are asked again for the new certificate. Envelopes
    /// already sent to the target complete (the agent keeps its old wrap key for a grace period).
    fn reseal_in_flight(&mut self, agent: &AgentId) -> StateResult<Vec<Outbound>> {
        let mut out = Vec::new();
        for p in self.store.pendings_of_target(agent)? {
            if p.awaited_peer().is_none() {
                continue;
            }
            self.drop_pending(&p.request_id, &p.credential, &p.target)?;
            self.audit(AuditEvent::RewrapResealed {
                pending: p.audit_seq,
                credential: p.credential,
                target: agent,
            })?;
            // Asked again only if the agent still lacks it (a warm registration may have listed it as held).
            if self
                .store
                .delivery(&p.credential, agent)?
                .is_some_and(|r| r.state == DeliveryState::Pending)
            {
                out.extend(self.start_delivery(&p.credential, agent, p.jit)?);
            }
        }
        Ok(out)
    }

    /// Starts pending deliveries for `agent` up to the backfill concurrency; marks it online when none is left.
    ///
    /// The backlog of an agent is scanned from the store once (at registration, or after a restart) and then
    /// consumed from memory, so each completion costs O(1) store reads, not a scan of the agent's rows.
    pub(crate) fn pump(&mut self, agent: &AgentId) -> StateResult<Vec<Outbound>> {
        let busy: Vec<CredentialId> = self
            .in_flight
            .get(agent)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if !self.backlog.contains_key(agent) {
            let now = self.now_ms();
            let rows: std::collections::VecDeque<CredentialId> = self
                .store
                .deliveries_of_agent(agent)?
                .into_iter()
                .filter(|r| r.state == DeliveryState::Pending && r.next_attempt_ms <= now)
                .map(|r| r.credential)
                .collect();
            self.backlog.insert(agent.clone(), rows);
        }
        let mut room = self.backfill_limit(agent)?.saturating_sub(busy.len());
        let mut out = Vec::new();
        while room > 0 {
            let Some(id) = self
                .backlog
                .get_mut(agent)
                .and_then(std::collections::VecDeque::pop_front)
            else {
                break;
            };
            let due = self.store.delivery(&id, agent)?.is_some_and(|r| {
                r.state == DeliveryState::Pending && r.next_attempt_ms <= self.now_ms()
            });
            if due && !busy.contains(&id) {
                let Some(started) = self.start_paced(&id, agent)? else {
                    // Every peer holding it is at its pacing limit: wait for one to answer.
                    if let Some(b) = self.backlog.get_mut(agent) {
                        b.push_front(id);
                    }
                    self.pacing.pause(agent);
                    break;
                };
                out.extend(started);
                // A start that failed at once (no peer holds it) takes no slot: go on with the backlog.
                if self.is_in_flight(&id, agent) {
                    room -= 1;
                }
            }
        }
        let drained = self
            .backlog
            .get(agent)
            .is_none_or(std::collections::VecDeque::is_empty);
        if drained && busy.is_empty() && out.is_empty() {
            self.backlog.remove(agent);
            self.finish_backfill(agent)?;
        }
        Ok(out)
    }

    /// Marks a backfilling agent online once none of its rows is due. A row waiting out its backoff (no peer held
    /// the credential) does not keep the agent out of service: the reconciler and JIT repair take it from there.
    fn finish_backfill(&mut self, agent: &AgentId) -> StateResult<()> {
        let Some(mut a) = self.store.agent(agent)? else {
            return Ok(());
        };
        if a.state != AgentState::Backfilling {
            return Ok(());
        }
        let pending = self
            .store
            .deliveries_of_agent(agent)?
            .iter()
            .any(|r| r.state == DeliveryState::Pending && r.next_attempt_ms <= self.now_ms());
        if !pending {
            a.state = AgentState::Online;
            self.store.put_agent(&a)?;
            tracing::info!(agent = agent.as_str(), "backfill complete");
        }
        Ok(())
    }
}
