//! Deliveries from what an operator sealed (docs/protocol.md, "Operator batches"): a single envelope, or an item of
//! a batch envelope, used only while it is sealed to the target's current key (and, for a batch, while the target
//! takes batches); otherwise the delivery goes by peer rewrap.
//!
//! Starting one item of a batch envelope also starts the target's other due items of that envelope in the same
//! event, so that they travel in one message (`merge_operator_batches`) and the target opens the envelope once,
//! whatever order its backlog is in.

use tessera_proto::envelope::{Envelope, KeyFingerprint};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::{BatchDelivery, CredentialStore, CredentialStoreBatch, Down};

use super::{Engine, Outbound};
use crate::state::{CredentialRecord, DeliveryState, OperatorSealed, StateResult};

/// An envelope the operator sealed for a target, ready to deliver: alone, or an item of a batch envelope.
pub(crate) struct FromOperator {
    /// The batch envelope's id and the credentials it carries.
    batch: Option<(uuid::Uuid, Vec<CredentialId>)>,
    envelope: Envelope,
    key: [u8; 32],
}

impl FromOperator {
    /// The delivery of `c` from it: a `credential_store`, or a `credential_store_batch` of this one item (the
    /// event's other items of the batch join it: `merge_operator_batches`).
    pub(crate) fn delivery(
        &self,
        delivery_id: uuid::Uuid,
        c: &CredentialRecord,
        jit: Option<uuid::Uuid>,
    ) -> Down {
        match &self.batch {
            None => Down::CredentialStore(CredentialStore {
                delivery_id,
                statement: c.statement.clone(),
                envelope: self.envelope.clone(),
                request_id: jit,
                target_key: Some(KeyFingerprint(self.key)),
            }),
            Some((batch_id, _)) => Down::CredentialStoreBatch(CredentialStoreBatch {
                batch_id: *batch_id,
                envelope: self.envelope.clone(),
                target_key: Some(KeyFingerprint(self.key)),
                items: vec![BatchDelivery {
                    delivery_id,
                    statement: c.statement.clone(),
                    request_id: jit,
                }],
            }),
        }
    }

    /// The batch envelope's id and items, for a batch item.
    pub(crate) fn batch(&self) -> Option<&(uuid::Uuid, Vec<CredentialId>)> {
        self.batch.as_ref()
    }
}

impl Engine {
    /// What the operator sealed for `target` of `c`'s version, to the target's current key `wrap`: a single
    /// envelope, or an item of a batch envelope while the target takes batches.
    pub(crate) fn operator_sealed(
        &mut self,
        c: &CredentialRecord,
        target: &AgentId,
        wrap: &[u8; 32],
    ) -> StateResult<Option<FromOperator>> {
        Ok(
            match self
                .store
                .envelope(&c.id, c.version, target)?
                .filter(|(_, key)| key == wrap)
            {
                Some((OperatorSealed::Envelope(envelope), key)) => Some(FromOperator {
                    batch: None,
                    envelope,
                    key,
                }),
                Some((OperatorSealed::InBatch(batch), key)) if self.batches(target)? => self
                    .store
                    .batch_envelope(&batch, target)?
                    .filter(|r| r.key == key)
                    .map(|r| FromOperator {
                        batch: Some((batch, r.items)),
                        envelope: r.envelope,
                        key,
                    }),
                _ => None,
            },
        )
    }

    /// Starts `target`'s other due deliveries of the batch envelope `batch` (other than `started`), whose current
    /// versions it carries: not paced (they need no peer), not recursive.
    pub(crate) fn start_batch_siblings(
        &mut self,
        (batch, items): &(uuid::Uuid, Vec<CredentialId>),
        started: &CredentialId,
        target: &AgentId,
    ) -> StateResult<Vec<Outbound>> {
        if self.starting_siblings {
            return Ok(Vec::new());
        }
        self.starting_siblings = true;
        let started_all = self.start_each_sibling(batch, items, started, target);
        self.starting_siblings = false;
        started_all
    }

    fn start_each_sibling(
        &mut self,
        batch: &uuid::Uuid,
        items: &[CredentialId],
        started: &CredentialId,
        target: &AgentId,
    ) -> StateResult<Vec<Outbound>> {
        let now = self.now_ms();
        let mut out = Vec::new();
        for id in items.iter().filter(|id| *id != started) {
            if self.is_in_flight(id, target) {
                continue;
            }
            let due = self
                .store
                .delivery(id, target)?
                .is_some_and(|r| r.state == DeliveryState::Pending && r.next_attempt_ms <= now);
            let Some(c) = self.store.credential(id)? else {
                continue;
            };
            let same_batch = matches!(
                self.store.envelope(id, c.version, target)?,
                Some((OperatorSealed::InBatch(b), _)) if b == *batch
            );
            if due && same_batch {
                out.extend(self.start_delivery(id, target, None)?);
            }
        }
        Ok(out)
    }
}
