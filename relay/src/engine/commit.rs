//! The engine's public entry points, each one logical change: the handler stages its writes, then they are
//! committed as one batch (one sled transaction, one PostgreSQL transaction). When the commit fails nothing of the
//! event is written, nothing it would have sent goes out, the failure is logged once here, and the engine's
//! in-memory mirrors are rebuilt from the store, so the event is as if it never arrived (a retried message, the
//! reconciler or the operator's retry brings it back).
//!
//! Each event runs in the relay's write turn ([`crate::state::RelayStore::begin_turn`]): relays sharing a
//! PostgreSQL database run their events one at a time, and a relay whose turn shows another wrote since reads
//! again what it mirrors in memory before the event runs (docs/operations.md, "Running several relays").

use tessera_proto::envelope::{Envelope, KeyFingerprint};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::statement::{CredentialStatement, CredentialTombstone, RevocationList, Signed};

use std::sync::Arc;

use super::operator::OperatorError;
use super::{log_state, Engine, Outbound};
use crate::state::{RelayStore, StateError};

/// This relay's write turn for one event, ended when dropped.
struct Turn(Option<Arc<dyn RelayStore>>);

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            store.end_turn();
        }
    }
}

impl Engine {
    /// Runs one event's handler and commits what it staged. A state failure, in the handler or in the commit,
    /// is logged here, once, and the event leaves nothing behind.
    fn committed<T>(
        &mut self,
        handler: impl FnOnce(&mut Self) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let _turn = self.turn();
        let result = self
            .synced()
            .and_then(|()| handler(self))
            .and_then(|out| self.store.commit().map(|_| out));
        match result {
            Ok(out) => Ok(out),
            Err(e) => {
                log_state(&e);
                self.resync();
                Err(e)
            }
        }
    }

    /// Runs an operator's change: committed when it succeeds; when it is refused or fails half-way, nothing it
    /// staged is written (the operator is told, and may send it again).
    fn operation<T>(
        &mut self,
        handler: impl FnOnce(&mut Self) -> Result<T, OperatorError>,
    ) -> Result<T, OperatorError> {
        let _turn = self.turn();
        if let Err(e) = self.synced() {
            log_state(&e);
            return Err(e.into());
        }
        match handler(self) {
            Ok(out) => match self.store.commit() {
                Ok(_) => Ok(out),
                Err(e) => {
                    log_state(&e);
                    self.resync();
                    Err(e.into())
                }
            },
            Err(e) => {
                self.resync();
                Err(e)
            }
        }
    }

    /// Begins the event's write turn, and catches up when another relay wrote since this one's last turn. When the
    /// turn cannot be had (the database is down), the event runs without: its reads fail as the store does, and a
    /// batch it still writes takes a turn of its own, refused if another relay wrote meanwhile.
    fn turn(&mut self) -> Turn {
        let store = self.store.backend().clone();
        match store.begin_turn() {
            Ok(others_wrote) => {
                if others_wrote {
                    self.catch_up();
                }
                Turn(Some(store))
            }
            Err(e) => {
                log_state(&e);
                Turn(None)
            }
        }
    }

    /// Another relay wrote: what memory mirrors of the store is read again (the in-flight set; the revocation list
    /// when a newer one was accepted). When that read fails, every event waits until it succeeds ([`Self::synced`]):
    /// none runs on a revocation list or an in-flight set the store could not give back. The backlog and caches
    /// stay: each backlog entry is checked against the store before it starts, and the caches are keyed by what
    /// they were checked against.
    fn catch_up(&mut self) {
        if let Err(e) = self.adopt_stored_revocations(false) {
            log_state(&e);
            self.needs_resync = true;
            return;
        }
        self.rebuild_in_flight();
        self.batch_capable.clear();
        self.pacing.forget_counts();
    }

    /// Adopts the stored revocation list, verified again against the pinned CA (it was when accepted; one that no
    /// longer verifies is logged and not adopted): when it is newer than the one in force, or, `exactly`, whatever
    /// it is (after a failed commit, memory goes back to what the store holds).
    fn adopt_stored_revocations(&mut self, exactly: bool) -> Result<(), StateError> {
        let Some(signed) = self.store.backend().revocations()? else {
            if exactly {
                self.revocations = tessera_proto::statement::RevocationList::empty();
            }
            return Ok(());
        };
        let stored_serial = signed
            .parse_unverified(tessera_proto::statement::REVOCATION_KIND)
            .map(|l| l.serial)
            .ok();
        if !exactly && stored_serial.is_some_and(|serial| serial <= self.revocations.serial) {
            return Ok(());
        }
        match signed.verify(&self.ca, &tessera_proto::statement::RevocationList::empty()) {
            Ok(list) => self.revocations = list,
            Err(e) => {
                tracing::error!(error = %e, "the stored revocation list does not verify; not adopted");
            }
        }
        Ok(())
    }

    /// Rebuilds the in-flight set from the committed records; when that read fails, every event waits for it
    /// ([`Self::synced`]).
    fn rebuild_in_flight(&mut self) {
        self.in_flight.clear();
        match self.store.backend().in_flight_keys() {
            Ok(keys) => {
                self.needs_resync = false;
                let live: std::collections::HashSet<uuid::Uuid> =
                    keys.iter().map(|(id, _, _)| *id).collect();
                self.rewrap_started.retain(|id, _| live.contains(id));
                for (_, credential, target) in keys {
                    self.in_flight.entry(target).or_default().insert(credential);
                }
            }
            Err(e) => {
                log_state(&e);
                self.needs_resync = true;
                self.rewrap_started.clear();
            }
        }
    }

    /// Makes sure memory was rebuilt after the last failure: an event never runs on an in-flight set that the
    /// store could not give back (it would dispatch twice, past the limits).
    fn synced(&mut self) -> Result<(), StateError> {
        if self.needs_resync {
            self.resync();
        }
        if self.needs_resync {
            return Err(StateError::Backend(
                "the relay's in-flight records could not be read back after a failure".into(),
            ));
        }
        Ok(())
    }

    /// Forgets what memory holds beyond the store after a failed commit: the in-flight set is rebuilt from the
    /// committed records (when that read fails too, every event waits for it: [`Self::synced`]); the backlog,
    /// caches and timers are rebuilt as they are needed.
    pub(super) fn resync(&mut self) {
        self.store.discard();
        self.coord.rearm_alert();
        if let Err(e) = self.adopt_stored_revocations(true) {
            log_state(&e);
            self.needs_resync = true;
        } else {
            self.rebuild_in_flight();
        }
        self.backlog.clear();
        self.seen.clear();
        self.certified.clear();
        self.receipt_certs.clear();
        self.batch_capable.clear();
        self.unbatched.clear();
        self.pacing.forget_counts();
        self.pause_backfilling();
    }

    /// A message on `topic`. Anything malformed, oversized, of an unknown type or on a topic that is not an
    /// agent's own is dropped with an audit entry and a metric; nothing is answered to it.
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Vec<Outbound> {
        let out = self
            .committed(|e| e.on_message_staged(topic, payload))
            .unwrap_or_default();
        self.group_rewraps(out)
    }

    /// The periodic work: timeouts, the reconciler, lifecycle checks.
    pub fn tick(&mut self) -> Vec<Outbound> {
        let lifecycle_checked = self.last_lifecycle_check_ms;
        let out = self.committed(Self::tick_staged).unwrap_or_else(|_| {
            // The hourly checks run again at the next reconciler pass, not an hour later.
            self.last_lifecycle_check_ms = lifecycle_checked;
            Vec::new()
        });
        self.group_rewraps(out)
    }

    /// Accepts a credential statement and the envelopes the operator sealed.
    pub fn put_credential(
        &mut self,
        signed: &Signed<CredentialStatement>,
        envelopes: &[(AgentId, KeyFingerprint, Envelope)],
    ) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.put_credential_staged(signed, envelopes))
    }

    /// Accepts an operator batch: its statements, single and batch envelopes, all or nothing.
    pub fn put_credentials_batch(
        &mut self,
        body: &tessera_proto::admin::PutBatchBody,
    ) -> Result<Vec<Outbound>, OperatorError> {
        let out = self.operation(|e| e.put_batch_staged(body))?;
        self.metrics.operator_batches += u64::try_from(body.batches.len()).unwrap_or(u64::MAX);
        Ok(self.group_rewraps(out))
    }

    /// Adopts a newer revocation list signed by the CA.
    pub fn apply_revocations(
        &mut self,
        signed: &Signed<RevocationList>,
    ) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.apply_revocations_staged(signed))
    }

    /// Removes a credential from the relay's books (no tombstone: agents keep what they hold).
    pub fn remove_credential(&mut self, id: &CredentialId) -> Result<(), OperatorError> {
        self.operation(|e| e.remove_credential_staged(id))
    }

    /// An operator's retry of a credential's pending and stalled deliveries.
    pub fn retry(&mut self, id: &CredentialId) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.retry_staged(id))
            .map(|out| self.group_rewraps(out))
    }

    /// Acknowledges an alert.
    pub fn ack_alert(&mut self, id: &str, by: &str) -> Result<(), OperatorError> {
        self.operation(|e| e.ack_alert_staged(id, by))
    }

    /// Dispatches a job to an agent.
    pub fn dispatch_job(
        &mut self,
        template: TemplateName,
        params: std::collections::BTreeMap<String, String>,
        credentials: Vec<CredentialName>,
        agent: Option<&AgentId>,
    ) -> Result<(uuid::Uuid, AgentId, Vec<Outbound>), OperatorError> {
        self.operation(|e| e.dispatch_job_staged(template, params, credentials, agent))
    }

    /// Deletes a credential on an operator-signed tombstone.
    pub fn tombstone_credential(
        &mut self,
        id: &CredentialId,
        signed: &Signed<CredentialTombstone>,
    ) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.tombstone_credential_staged(id, signed))
    }

    /// Forwards an agent's renewed certificate.
    pub fn renewal_certificate(
        &mut self,
        agent: &AgentId,
        der: &[u8],
    ) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.renewal_certificate_staged(agent, der))
    }

    /// Asks an agent to rotate its keys.
    pub fn rotate_agent(&mut self, agent: &AgentId) -> Result<Vec<Outbound>, OperatorError> {
        self.operation(|e| e.rotate_agent_staged(agent))
    }
}
