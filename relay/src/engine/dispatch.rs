//! Peer rewrap: choose a peer, ask it, check the four bindings on its answer, relay to the target, check the
//! target's digest against the creator's commitment; commitment-mismatch handling.

use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::{
    AgentState, CredentialStore, CredentialStored, CredentialUnavailable, Down, PublicReason,
    RefusalReason, RewrapRefused, RewrapRequest, RewrapResponse, StoreOutcome,
};

use super::audit_event::AuditEvent;
use super::{Engine, Outbound};
use crate::alerts::{AlertKind, Subject};
use crate::coordination::Window;
use crate::lifecycle::{
    attempt_failed, row_delivered, AfterFailure, Dispatch, PeerAnswer, Source, Stage, Step,
    TargetAnswer, TargetOutcome, Unsolicited,
};
use crate::state::{CredentialRecord, DeliveryState, PendingRewrap, ReceiptKind, StateResult};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};

/// What [`Engine::choose_peer`] found.
enum PeerPick {
    /// This peer.
    Peer(AgentId),
    /// Eligible peers, each at its pacing limit.
    Full,
    /// No eligible peer.
    None,
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    n
}

impl Engine {
    fn unavailable(
        to: &AgentId,
        jit: Option<uuid::Uuid>,
        c: &CredentialRecord,
        reason: PublicReason,
    ) -> Vec<Outbound> {
        jit.map(|request_id| Outbound {
            to: to.clone(),
            msg: Down::CredentialUnavailable(CredentialUnavailable {
                request_id,
                name: c.name.clone(),
                reason,
            }),
        })
        .into_iter()
        .collect()
    }

    /// Whether `cert` (the target's registered certificate) is valid now and not revoked; remembered per agent
    /// until the certificate, the revocation list or its validity window changes.
    pub(super) fn target_certified(&mut self, target: &AgentId, cert: &[u8]) -> bool {
        let now = self.now_s();
        let serial = self.revocations.serial;
        if let Some((c, s, not_after)) = self.certified.get(target) {
            if c.as_slice() == cert && *s == serial && now <= *not_after {
                return true;
            }
        }
        if let Ok(v) = self.ca.verify_agent(cert, now, &self.revocations) {
            self.certified
                .insert(target.clone(), (cert.to_vec(), serial, v.not_after));
            true
        } else {
            self.certified.remove(target);
            false
        }
    }

    /// An eligible peer: connected, holds the current version, not the target, not blocklisted, not tried; with
    /// `paced`, also below `peer_max_in_flight` rewraps awaiting it ([`super::peer_pacing`]).
    fn choose_peer(
        &self,
        c: &CredentialRecord,
        target: &AgentId,
        tried: &[AgentId],
        paced: bool,
    ) -> StateResult<PeerPick> {
        let now = self.now_ms();
        let mut full = false;
        for row in self.store.deliveries_of_credential(&c.id)? {
            if row.state != DeliveryState::Stored
                || row.purge.is_some()
                || row.version != c.version
                || row.agent == *target
                || tried.contains(&row.agent)
            {
                continue;
            }
            // A full holder is skipped before the store is read: in a herd most holders looked at are full. (One
            // that is also blocked or offline makes the backfill wait rather than fail, which its requests' answers
            // or timeouts end.)
            if paced && self.pacing.load(&row.agent) >= self.cfg.peer_max_in_flight {
                full = true;
                continue;
            }
            if self
                .store
                .blocked_until(&c.id, &row.agent)?
                .is_some_and(|t| t > now)
            {
                continue;
            }
            if self
                .store
                .agent(&row.agent)?
                .is_some_and(|a| a.state != AgentState::Offline)
            {
                return Ok(PeerPick::Peer(row.agent));
            }
        }
        Ok(if full { PeerPick::Full } else { PeerPick::None })
    }

    /// Starts (or joins) the delivery of `credential` to `target`.
    pub(crate) fn start_delivery(
        &mut self,
        credential: &CredentialId,
        target: &AgentId,
        jit: Option<uuid::Uuid>,
    ) -> StateResult<Vec<Outbound>> {
        Ok(self
            .start(credential, target, jit, false)?
            .unwrap_or_default())
    }

    /// Starts a backfill's delivery of `credential` to `target`, paced: `None` (nothing written) when every
    /// eligible peer is at `peer_max_in_flight`.
    pub(crate) fn start_paced(
        &mut self,
        credential: &CredentialId,
        target: &AgentId,
    ) -> StateResult<Option<Vec<Outbound>>> {
        self.start(credential, target, None, true)
    }

    fn start(
        &mut self,
        credential: &CredentialId,
        target: &AgentId,
        jit: Option<uuid::Uuid>,
        paced: bool,
    ) -> StateResult<Option<Vec<Outbound>>> {
        let Some(c) = self.store.credential(credential)? else {
            return Ok(Some(Vec::new()));
        };
        if c.deleted || !c.scope.includes(target) {
            return Ok(Some(Self::unavailable(
                target,
                jit,
                &c,
                PublicReason::NotGranted,
            )));
        }
        // Join an in-flight delivery instead of starting a second one.
        let joined = if self.is_in_flight(credential, target) {
            self.store
                .pendings_of_target(target)?
                .into_iter()
                .find(|p| p.credential == *credential)
        } else {
            None
        };
        if let Some(mut p) = joined {
            if jit.is_some() && p.jit.is_none() {
                p.jit = jit;
                self.save_pending(&p)?;
            }
            return Ok(Some(Vec::new()));
        }
        let Some(target_rec) = self.store.agent(target)? else {
            return Ok(Some(Self::unavailable(
                target,
                jit,
                &c,
                PublicReason::NotFound,
            )));
        };
        // Never deliver to an agent whose certificate is revoked or expired since it registered.
        if !self.target_certified(target, &target_rec.cert) {
            return Ok(Some(Self::unavailable(
                target,
                jit,
                &c,
                PublicReason::NotGranted,
            )));
        }
        // An envelope the operator sealed to this agent's current key needs no peer.
        let sealed = self.operator_sealed(&c, target, &target_rec.wrap_fingerprint)?;
        let first = if sealed.is_some() || self.cfg.max_peers == 0 {
            PeerPick::None
        } else {
            self.choose_peer(&c, target, &[], paced)?
        };
        if matches!(first, PeerPick::Full) {
            return Ok(None);
        }
        let pending_seq = self.audit(AuditEvent::RewrapPending {
            credential: c.id,
            version: c.version,
            target,
        });
        let d = Dispatch {
            request_id: uuid::Uuid::new_v4(),
            credential: c.id,
            version: c.version,
            target: target.clone(),
            jit,
            audit_seq: pending_seq?,
        };
        if let Some(sealed) = sealed {
            let p = PendingRewrap::operator_envelope(d, self.timing());
            self.save_pending(&p)?;
            let mut out = vec![Outbound {
                to: target.clone(),
                msg: sealed.delivery(p.request_id, &c, jit),
            }];
            if let Some(batch) = sealed.batch() {
                out.extend(self.start_batch_siblings(batch, credential, target)?);
            }
            return Ok(Some(out));
        }
        let PeerPick::Peer(peer) = first else {
            return self
                .fail_dispatch(&d, &c, "exhausted", PublicReason::NoPeer)
                .map(Some);
        };
        let p = PendingRewrap::ask_first(d, peer, nonce(), self.timing());
        self.request_rewrap(&p, &c, &target_rec.cert).map(Some)
    }

    /// Sends the rewrap to the next eligible peer, or ends the dispatch as exhausted.
    pub(crate) fn ask_next_peer(
        &mut self,
        mut p: PendingRewrap,
        c: &CredentialRecord,
        target_cert: &[u8],
    ) -> StateResult<Vec<Outbound>> {
        let peer = if p.may_ask_another(self.cfg.max_peers) {
            match self.choose_peer(c, &p.target, &p.tried, false)? {
                PeerPick::Peer(peer) => Some(peer),
                PeerPick::Full | PeerPick::None => None,
            }
        } else {
            None
        };
        match p.ask(peer, nonce(), self.timing()) {
            Ok(()) => self.request_rewrap(&p, c, target_cert),
            Err(reason) => self.fail_dispatch(&p.dispatch(), c, "exhausted", reason),
        }
    }

    /// Records `p`, which awaits a peer, and asks that peer.
    fn request_rewrap(
        &mut self,
        p: &PendingRewrap,
        c: &CredentialRecord,
        target_cert: &[u8],
    ) -> StateResult<Vec<Outbound>> {
        let Stage::AwaitingPeer { peer, nonce } = &p.stage else {
            return Ok(Vec::new());
        };
        self.save_pending(p)?;
        if p.jit.is_some() {
            // JIT repair stays a single rewrap: a batch would make the waiting workload wait for the others.
            self.unbatched.insert(p.request_id);
        }
        let now = self.now_ms();
        self.rewrap_started.entry(p.request_id).or_insert(now);
        self.metrics.rewrap_requests += 1;
        Ok(vec![Outbound {
            to: peer.clone(),
            msg: Down::RewrapRequest(RewrapRequest {
                request_id: p.request_id,
                nonce: *nonce,
                credential_id: c.id,
                version: c.version,
                statement: c.statement.clone(),
                target: p.target.clone(),
                target_cert: target_cert.to_vec(),
            }),
        }])
    }

    /// Ends a dispatch without delivery: final audit entry, backoff on the row, typed answer to a waiting JIT.
    pub(crate) fn fail_dispatch(
        &mut self,
        p: &Dispatch,
        c: &CredentialRecord,
        result: &str,
        reason: PublicReason,
    ) -> StateResult<Vec<Outbound>> {
        self.drop_pending(&p.request_id, &p.credential, &p.target)?;
        self.audit(AuditEvent::RewrapFailed {
            pending: p.audit_seq,
            result,
            credential: c.id,
            target: &p.target,
        })?;
        self.row_failed(&c.id, &p.target, result)?;
        Ok(Self::unavailable(&p.target, p.jit, c, reason))
    }

    /// A failed attempt on a delivery row: the backoff table, or retirement with the stalled alert.
    pub(crate) fn row_failed(
        &mut self,
        credential: &CredentialId,
        agent: &AgentId,
        error: &str,
    ) -> StateResult<()> {
        let Some(mut row) = self.store.delivery(credential, agent)? else {
            return Ok(());
        };
        match attempt_failed(&mut row, error, &self.cfg.backoff, self.now_ms()) {
            AfterFailure::NotPending => return Ok(()),
            AfterFailure::RetryAt(_) => {}
            AfterFailure::Stalled => {
                self.metrics.stalled += 1;
                self.alert(
                    AlertKind::CredentialSyncStalled,
                    Subject::Delivery(*credential, agent),
                    format!(
                        "delivery retired after {} attempts (last error: {error})",
                        row.attempts
                    ),
                )?;
            }
        }
        self.store.put_delivery(&row)
    }

    pub(super) fn unsolicited(
        &mut self,
        from: &AgentId,
        request_id: &uuid::Uuid,
        reason: &str,
    ) -> StateResult<()> {
        self.metrics.unsolicited += 1;
        tracing::warn!(agent = from.as_str(), %request_id, reason, "unsolicited or mismatched answer ignored");
        self.audit(AuditEvent::UnsolicitedResponse {
            agent: from,
            request: *request_id,
            reason,
        })?;
        Ok(())
    }

    /// A target refused, for integrity, a delivery this relay never dispatched: someone else publishes on agents'
    /// topics with the relay's rights (a stolen relay identity, a rogue replica, a compromised broker). The target
    /// stored nothing; the operator must know.
    fn forged_delivery(&mut self, from: &AgentId, s: &CredentialStored) -> StateResult<()> {
        self.metrics.mismatches += 1;
        tracing::error!(target = from.as_str(), delivery = %s.delivery_id, credential = %s.credential_id,
            "an agent refused a forged delivery this relay never sent");
        self.alert(
            AlertKind::CredentialCommitmentMismatch,
            Subject::ForgedDelivery(s.credential_id, from),
            format!(
                "{} refused a delivery of credential {} that this relay never dispatched: another party publishes \
                 as the relay",
                from.as_str(),
                s.credential_id
            ),
        )?;
        self.audit(AuditEvent::CommitmentMismatch {
            pending: None,
            credential: s.credential_id,
            version: s.version,
            target: from,
            source: "not_dispatched_by_this_relay",
            delivery: Some(s.delivery_id),
        })?;
        Ok(())
    }

    pub(super) fn on_rewrap_response(
        &mut self,
        from: &AgentId,
        r: RewrapResponse,
    ) -> StateResult<Vec<Outbound>> {
        let Some(p) = self.store.pending(&r.request_id)? else {
            self.unsolicited(from, &r.request_id, "UNKNOWN_REQUEST")?;
            return Ok(Vec::new());
        };
        let target_key_current = self
            .store
            .agent(&p.target)?
            .is_some_and(|t| t.wrap_fingerprint == r.target_key.0);
        let answer = PeerAnswer {
            from,
            claimed_peer: &r.peer,
            nonce: &r.nonce,
            credential: r.credential_id,
            version: r.version,
            target_key_current,
        };
        let next = match p.on_peer_answer(&answer, self.timing()) {
            Ok(next) => next,
            Err(Unsolicited(reason)) => {
                self.unsolicited(from, &r.request_id, &reason)?;
                return Ok(Vec::new());
            }
        };
        let Some(c) = self.store.credential(&next.credential)? else {
            return Ok(Vec::new());
        };
        self.save_pending(&next)?;
        Ok(vec![Outbound {
            to: next.target.clone(),
            msg: Down::CredentialStore(CredentialStore {
                delivery_id: next.request_id,
                statement: c.statement,
                envelope: r.envelope,
                request_id: next.jit,
                target_key: Some(r.target_key),
            }),
        }])
    }

    pub(super) fn on_rewrap_refused(
        &mut self,
        from: &AgentId,
        r: &RewrapRefused,
    ) -> StateResult<Vec<Outbound>> {
        let Some(p) = self.store.pending(&r.request_id)? else {
            self.unsolicited(from, &r.request_id, "UNKNOWN_REQUEST")?;
            return Ok(Vec::new());
        };
        match p.on_peer_refused(from, &r.nonce) {
            Ok(step) => {
                tracing::info!(peer = from.as_str(), reason = ?r.reason, "peer refused a rewrap");
                self.settle(&p, step, None)
            }
            Err(Unsolicited(reason)) => {
                self.unsolicited(from, &r.request_id, &reason)?;
                Ok(Vec::new())
            }
        }
    }

    pub(super) fn on_stored(
        &mut self,
        from: &AgentId,
        s: &CredentialStored,
    ) -> StateResult<Vec<Outbound>> {
        let Some(p) = self.store.pending(&s.delivery_id)? else {
            if forged(&s.outcome) {
                self.forged_delivery(from, s)?;
            } else {
                // Redeliveries after a reconnect are acknowledged again; only count them.
                self.unsolicited(from, &s.delivery_id, "UNKNOWN_DELIVERY")?;
            }
            return Ok(Vec::new());
        };
        if let Err(Unsolicited(reason)) = p.awaits_target_answer(from, s.credential_id, s.version) {
            self.unsolicited(from, &s.delivery_id, &reason)?;
            return Ok(Vec::new());
        }
        let Some(c) = self.store.credential(&p.credential)? else {
            return Ok(Vec::new());
        };
        let (outcome, body) = self.judge_store(from, s, &c)?;
        let answer = TargetAnswer {
            from,
            credential: s.credential_id,
            version: s.version,
            outcome,
        };
        match p.on_target_answer(answer) {
            Ok(step) => self.settle(&p, step, s.receipt.as_ref().zip(body.as_ref())),
            Err(Unsolicited(reason)) => {
                self.unsolicited(from, &s.delivery_id, &reason)?;
                Ok(Vec::new())
            }
        }
    }

    /// What the target reported, judged: its digest against the creator's commitment (constant time), and its
    /// receipt against its certificate and this very delivery.
    fn judge_store(
        &mut self,
        from: &AgentId,
        s: &CredentialStored,
        c: &CredentialRecord,
    ) -> StateResult<(TargetOutcome, Option<ReceiptBody>)> {
        Ok(match &s.outcome {
            StoreOutcome::Stored { digest } if digest.ct_eq(&c.commitment) => {
                let checked = self
                    .claimed_receipt(from, s.receipt.as_ref())?
                    .and_then(|body| match &body.fact {
                        ReceiptFact::Stored {
                            delivery_id,
                            credential_id,
                            version,
                            digest: d,
                        } if *delivery_id == s.delivery_id
                            && *credential_id == c.id
                            && *version == c.version
                            && d == digest =>
                        {
                            Ok(body)
                        }
                        _ => Err("the receipt is for another delivery".to_owned()),
                    });
                match checked {
                    Ok(body) => (TargetOutcome::Verified, Some(body)),
                    Err(why) => (TargetOutcome::BadReceipt(why), None),
                }
            }
            StoreOutcome::Stored { .. } | StoreOutcome::Mismatch => (TargetOutcome::Mismatch, None),
            StoreOutcome::Refused { reason } => {
                tracing::info!(target = from.as_str(), ?reason, "target refused a delivery");
                (TargetOutcome::Refused(*reason), None)
            }
            _ => (TargetOutcome::Unknown, None),
        })
    }

    /// Carries out a lifecycle step of `p`: the writes, messages, audit entries and alerts it stands for, staged in
    /// this event's commit.
    pub(super) fn settle(
        &mut self,
        p: &PendingRewrap,
        step: Step,
        receipt: Option<(&Receipt, &ReceiptBody)>,
    ) -> StateResult<Vec<Outbound>> {
        let Some(c) = self.store.credential(&p.credential)? else {
            self.drop_pending(&p.request_id, &p.credential, &p.target)?;
            return Ok(Vec::new());
        };
        let mut out = match step {
            // A delivery pumps the target's backfill itself.
            Step::Delivered(source) => return self.delivered(p, &c, &source, receipt),
            Step::NextPeer(next) => {
                let cert = self.target_cert(&next.target)?;
                self.ask_next_peer(next, &c, &cert)?
            }
            Step::Mismatch { source, next } => self.mismatch(p, next, &c, &source)?,
            Step::Fail { result, reason } => {
                self.fail_dispatch(&p.dispatch(), &c, &result, reason)?
            }
        };
        // A dispatch that ended without delivery frees a slot of a backfilling target: the backfill goes on, or
        // ends (the target listed online) when nothing else is due.
        if !self.is_in_flight(&p.credential, &p.target) && self.backfilling(&p.target)? {
            out.extend(self.pump(&p.target)?);
        }
        Ok(out)
    }

    /// Whether `agent` is backfilling (a backlog in memory, or listed so).
    fn backfilling(&self, agent: &AgentId) -> StateResult<bool> {
        Ok(self.backlog.contains_key(agent)
            || self
                .store
                .agent(agent)?
                .is_some_and(|a| a.state == AgentState::Backfilling))
    }

    /// The target's registered certificate (empty when it is gone: the peer then refuses the rewrap).
    fn target_cert(&self, target: &AgentId) -> StateResult<Vec<u8>> {
        Ok(self
            .store
            .agent(target)?
            .map(|a| a.cert)
            .unwrap_or_default())
    }

    fn delivered(
        &mut self,
        p: &PendingRewrap,
        c: &CredentialRecord,
        source: &Source,
        receipt: Option<(&Receipt, &ReceiptBody)>,
    ) -> StateResult<Vec<Outbound>> {
        self.rewrap_delivered(&p.request_id);
        self.drop_pending(&p.request_id, &p.credential, &p.target)?;
        if let Some((r, _)) = receipt {
            self.store
                .put_receipt(&c.id, &p.target, ReceiptKind::Stored, r)?;
        }
        if let Some(mut row) = self.store.delivery(&c.id, &p.target)? {
            row_delivered(&mut row, c.version);
            self.store.put_delivery(&row)?;
            self.pacing.holder_added();
        }
        self.metrics.deliveries_ok += 1;
        self.audit(AuditEvent::RewrapDelivered {
            pending: p.audit_seq,
            credential: c.id,
            version: c.version,
            target: &p.target,
            source,
            delivery: p.request_id,
            digest: &c.commitment.0,
            receipt,
        })?;
        // Only a backfill has a backlog to go on with; an online agent's delivery (an operator's put, JIT repair)
        // ends here, without a look at the rest of its rows.
        if self.backfilling(&p.target)? {
            self.pump(&p.target)
        } else {
            Ok(Vec::new())
        }
    }

    /// Design §4: no delivery mark; attribute the source; its copy untrusted; blocklist 24 h; alerts; audit; a
    /// typed failure to the waiting workload; then the next peer.
    fn mismatch(
        &mut self,
        p: &PendingRewrap,
        next: PendingRewrap,
        c: &CredentialRecord,
        source: &Source,
    ) -> StateResult<Vec<Outbound>> {
        self.metrics.mismatches += 1;
        if let Source::Peer(peer) = source {
            if let Some(mut row) = self.store.delivery(&c.id, peer)? {
                row.state = DeliveryState::Untrusted;
                row.last_error = Some("COMMITMENT_MISMATCH_SOURCE".to_owned());
                self.store.put_delivery(&row)?;
            }
            self.store
                .block(&c.id, peer, self.now_ms() + self.cfg.blocklist_ms)?;
            self.alert(
                AlertKind::PeerAgentIntegrityFailure,
                Subject::Peer(peer, c.id),
                format!(
                    "peer {} supplied a plaintext that does not match the commitment of {}",
                    peer.as_str(),
                    c.name.as_str()
                ),
            )?;
            let mismatches = self.coord.record(
                Window::MismatchFlood,
                peer,
                self.now_ms(),
                self.cfg.flood_window_ms,
            );
            if mismatches > self.cfg.mismatch_flood_threshold {
                self.alert(
                    AlertKind::AgentCommitmentFlood,
                    Subject::Agent(peer),
                    format!(
                        "more than {} commitment mismatches in the window from {}",
                        self.cfg.mismatch_flood_threshold,
                        peer.as_str()
                    ),
                )?;
            }
        }
        let source_name = source.name();
        self.alert(
            AlertKind::CredentialCommitmentMismatch,
            Subject::Mismatch(c.id, &p.target),
            format!(
                "delivery of {} to {} failed its commitment check (source {source_name})",
                c.name.as_str(),
                p.target.as_str()
            ),
        )?;
        self.audit(AuditEvent::CommitmentMismatch {
            pending: Some(p.audit_seq),
            credential: c.id,
            version: c.version,
            target: &p.target,
            source: source_name,
            delivery: None,
        })?;
        let mut out = Self::unavailable(&p.target, p.jit, c, PublicReason::CommitmentMismatch);
        let target_cert = self.target_cert(&next.target)?;
        out.extend(self.ask_next_peer(next, c, &target_cert)?);
        Ok(out)
    }
}

/// Outcomes only a forged delivery can cause: the plaintext or the statement does not verify.
fn forged(outcome: &StoreOutcome) -> bool {
    matches!(
        outcome,
        StoreOutcome::Mismatch
            | StoreOutcome::Refused {
                reason: RefusalReason::CommitmentMismatch | RefusalReason::BadStatement
            }
    )
}
