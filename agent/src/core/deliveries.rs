//! The target's side of a group of the delivery plan ([`super::delivery_plan`]): each delivery checked (single or
//! batched: a batch's envelope is opened once and each of its items checked as a single delivery is), the accepted
//! credentials stored together with one flush, then every message answered (one acknowledgement per single
//! delivery, one per batch with an outcome per item) and acknowledged to the broker, in order.

use rumqttc::Publish;
use tessera_proto::envelope::batch::BatchItem;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{CredentialStatement, Signed, CREDENTIAL_KIND};
use tessera_proto::wire::{
    CredentialStore, CredentialStoreBatch, CredentialStored, CredentialStoredBatch, Down,
    RefusalReason, StoreOutcome, Up,
};

use super::{unix_now, waiter_failure, Core, RegEvent};
use crate::roles::target;
use crate::store::{NewCredential, StoreError};

/// A message of the group, to answer after the group is stored.
struct Answer {
    publish: Publish,
    /// `Some` for a batched delivery: its items are answered in one message.
    batch_id: Option<uuid::Uuid>,
    items: Vec<ItemAnswer>,
}

/// One delivery (a single one, or an item of a batch).
struct ItemAnswer {
    delivery_id: uuid::Uuid,
    reply: Option<CredentialStored>,
    stored_name: Option<CredentialName>,
}

/// A delivery to check: its id, statement, JIT request, and where its plaintext comes from.
struct Item<'a> {
    delivery_id: uuid::Uuid,
    statement: &'a Signed<CredentialStatement>,
    request_id: Option<uuid::Uuid>,
}

impl Core {
    /// One group of the plan: each delivery checked (refusals and copies already held answered as they are), the
    /// accepted ones stored together, then every message answered and acknowledged in order.
    pub(super) fn store_group(&mut self, group: Vec<(Publish, Option<Down>)>) {
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        let mut accepted: Vec<((usize, usize), NewCredential)> = Vec::new();
        for (p, message) in group {
            let slot = answers.len();
            let (batch_id, items) = match message {
                Some(Down::CredentialStore(msg)) => (None, self.check_single(&msg)),
                Some(Down::CredentialStoreBatch(b)) => (Some(b.batch_id), self.check_batch(&b)),
                _ => (None, Vec::new()),
            };
            let mut answered = Vec::with_capacity(items.len());
            for (i, (answer, new)) in items.into_iter().enumerate() {
                if let Some(new) = new {
                    accepted.push(((slot, i), new));
                }
                answered.push(answer);
            }
            answers.push(Answer {
                publish: p,
                batch_id,
                items: answered,
            });
        }
        self.commit(&mut answers, accepted);
        self.flush_answers(answers);
    }

    fn check_single(&mut self, msg: &CredentialStore) -> Vec<(ItemAnswer, Option<NewCredential>)> {
        let item = Item {
            delivery_id: msg.delivery_id,
            statement: &msg.statement,
            request_id: msg.request_id,
        };
        let result = target::check(&self.keys, &self.store, msg);
        vec![self.judged(&item, result)]
    }

    /// A batched delivery: the envelope opened once (when the first item passes the checks before it), each item
    /// checked against its own statement; an item the envelope does not carry, or a credential listed twice, is
    /// refused alone.
    fn check_batch(
        &mut self,
        b: &CredentialStoreBatch,
    ) -> Vec<(ItemAnswer, Option<NewCredential>)> {
        let mut opened: Option<Vec<BatchItem>> = None;
        let mut open_failed = false;
        let mut seen: Vec<CredentialId> = Vec::with_capacity(b.items.len());
        let mut out = Vec::with_capacity(b.items.len());
        for d in &b.items {
            let item = Item {
                delivery_id: d.delivery_id,
                statement: &d.statement,
                request_id: d.request_id,
            };
            let result = target::check_with(
                &self.keys,
                &self.store,
                &d.statement,
                |id, version| {
                    if seen.contains(&id) {
                        return Err(RefusalReason::BadPayload);
                    }
                    seen.push(id);
                    if opened.is_none() && !open_failed {
                        match tokio::task::block_in_place(|| {
                            self.keys.open_batch(&b.envelope, b.target_key.as_ref())
                        }) {
                            Ok(items) => opened = Some(items),
                            Err(e) => {
                                tracing::warn!(batch = %b.batch_id, error = %e, "a batched delivery does not open");
                                open_failed = true;
                            }
                        }
                    }
                    opened
                        .as_ref()
                        .and_then(|items| {
                            items
                                .iter()
                                .find(|i| i.credential_id == id && i.version == version)
                        })
                        .map(|i| SecretBytes::clone(&i.payload))
                        .ok_or(RefusalReason::BadEnvelope)
                },
            );
            out.push(self.judged(&item, result));
        }
        out
    }

    /// The answer now (a refusal, a copy already held) or the credential to store, for one checked delivery.
    fn judged(
        &mut self,
        item: &Item<'_>,
        result: Result<target::Accepted, target::Refused>,
    ) -> (ItemAnswer, Option<NewCredential>) {
        let mut answer = ItemAnswer {
            delivery_id: item.delivery_id,
            reply: None,
            stored_name: None,
        };
        match result {
            Ok(target::Accepted::New(c)) => return (answer, Some(*c)),
            Ok(target::Accepted::AlreadyHeld {
                credential_id,
                version,
                digest,
            }) => {
                answer.reply =
                    Some(self.stored_reply(item.delivery_id, credential_id, version, digest));
                // A copy already held wakes the workloads waiting on its name as a new one does.
                answer.stored_name = item
                    .statement
                    .parse_unverified(CREDENTIAL_KIND)
                    .ok()
                    .map(|s| s.name);
            }
            Err(refused) => {
                tracing::warn!(delivery = %item.delivery_id, outcome = ?refused.outcome, "delivery refused; nothing stored");
                // Without a readable statement there is no credential id to report against.
                answer.reply = refused.credential_id.map(|id| CredentialStored {
                    delivery_id: item.delivery_id,
                    credential_id: id,
                    version: refused.version.max(1),
                    outcome: refused.outcome,
                    receipt: None,
                });
                self.fail_refused_waiter(item.request_id, answer.reply.as_ref());
            }
        }
        (answer, None)
    }

    /// A delivery answering a workload's JIT request failed an integrity check: the workload gets a typed error now,
    /// not a timeout (docs/protocol.md, "Agent delivery handling"), whoever sent it. A delivery that merely does not
    /// open (`BAD_ENVELOPE`) keeps the workload waiting: an honest relay tries the next peer.
    fn fail_refused_waiter(
        &mut self,
        request_id: Option<uuid::Uuid>,
        reply: Option<&CredentialStored>,
    ) {
        let (Some(request_id), Some(s)) = (request_id, reply) else {
            return;
        };
        if let Some(reason) = waiter_failure(&s.outcome) {
            tracing::warn!(%request_id, ?reason, "a JIT delivery failed its integrity check; the workload is told");
            self.waiters.unavailable(&request_id, reason);
        }
    }

    /// The acknowledgement of a stored (flushed) credential version, with the agent's signed receipt of it
    /// (docs/protocol.md, "Receipts").
    fn stored_reply(
        &self,
        delivery_id: uuid::Uuid,
        credential_id: CredentialId,
        version: u64,
        digest: tessera_proto::commitment::Commitment,
    ) -> CredentialStored {
        let receipt = self
            .keys
            .receipt(
                tessera_proto::receipt::ReceiptFact::Stored {
                    delivery_id,
                    credential_id,
                    version,
                    digest,
                },
                unix_now(),
            )
            .map_err(|e| tracing::error!(error = %e, "could not sign a delivery receipt"))
            .ok();
        CredentialStored {
            delivery_id,
            credential_id,
            version,
            outcome: StoreOutcome::Stored { digest },
            receipt,
        }
    }

    /// Stores the accepted credentials in one batch and flushes; fills in their replies.
    fn commit(&mut self, answers: &mut [Answer], pending: Vec<((usize, usize), NewCredential)>) {
        if pending.is_empty() {
            return;
        }
        let (slots, creds): (Vec<(usize, usize)>, Vec<NewCredential>) = pending.into_iter().unzip();
        // One flush for the group; when the store refuses the batch for one item, each item alone, so that one
        // refused item refuses only itself. A store failure (not a refusal) refuses the group, logged once.
        let results =
            match tokio::task::block_in_place(|| self.store.accept_each(&creds, unix_now())) {
                Ok(results) => results,
                Err(e) => {
                    tracing::error!(error = %e, count = creds.len(), "could not store deliveries");
                    creds
                        .iter()
                        .map(|_| Err(StoreError::Internal("store failure")))
                        .collect()
                }
            };
        for (((m, i), c), result) in slots.into_iter().zip(&creds).zip(results) {
            let (id, version) = (c.statement.credential_id, c.statement.version);
            let Some(delivery_id) = answers
                .get(m)
                .and_then(|a| a.items.get(i))
                .map(|a| a.delivery_id)
            else {
                continue;
            };
            let (reply, stored_name) = match result {
                Ok(()) => (
                    self.stored_reply(delivery_id, id, version, c.statement.commitment),
                    Some(c.statement.name.clone()),
                ),
                Err(e) => {
                    if e.is_refusal() {
                        tracing::warn!(error = %e, delivery = %delivery_id, "delivery refused by the store");
                    }
                    let reason = match e {
                        StoreError::Stale { .. } => RefusalReason::StaleVersion,
                        StoreError::NameBound { .. } => RefusalReason::NameBoundToOtherId,
                        StoreError::Deleted { .. } => RefusalReason::CredentialDeleted,
                        _ => RefusalReason::Internal,
                    };
                    let refused = CredentialStored {
                        delivery_id,
                        credential_id: id,
                        version,
                        outcome: StoreOutcome::Refused { reason },
                        receipt: None,
                    };
                    (refused, None)
                }
            };
            if let Some(a) = answers.get_mut(m).and_then(|a| a.items.get_mut(i)) {
                a.reply = Some(reply);
                a.stored_name = stored_name;
            }
        }
    }

    /// Publishes the replies, wakes waiters, advances the backfill count, and acknowledges to the broker.
    fn flush_answers(&mut self, answers: Vec<Answer>) {
        for a in answers {
            let mut replies = Vec::with_capacity(a.items.len());
            for item in a.items {
                if let Some(reply) = item.reply {
                    replies.push(reply);
                    self.step_registration(RegEvent::Delivered);
                }
                if let Some(name) = &item.stored_name {
                    self.waiters.delivered(name);
                }
            }
            match a.batch_id {
                Some(batch_id) if !replies.is_empty() => {
                    self.publish_up(&Up::CredentialStoredBatch(CredentialStoredBatch {
                        batch_id,
                        items: replies,
                    }));
                }
                Some(_) => {}
                None => {
                    for reply in replies {
                        self.publish_up(&Up::CredentialStored(reply));
                    }
                }
            }
            self.ack(a.publish);
        }
    }
}
