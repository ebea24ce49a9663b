//! Operator batches (docs/protocol.md, "Operator batches"): an import's statements put in one operation, with batch
//! envelopes the operator sealed per agent (several credentials' payloads in one envelope, the plaintext format of
//! batched rewrap) besides single envelopes.
//!
//! A batch envelope is kept once, under (batch id, agent); each credential it carries keeps a reference to it where
//! a single envelope would be. A delivery from it is a [`CredentialStoreBatch`] of that credential; after an event,
//! [`merge_operator_batches`] joins the deliveries of one batch envelope to one agent into one message, so the agent
//! opens the envelope once for all of them. Each item keeps its own in-flight record, timeout and acknowledgement.
//! The relay cannot read a batch envelope: what it carries is checked by the target against each item's statement.

use std::collections::{BTreeSet, HashMap};

use tessera_proto::admin::{PutBatchBody, MAX_PUT_BATCH_STATEMENTS};
use tessera_proto::envelope::batch::MAX_BATCH_ITEMS;
use tessera_proto::envelope::KeyFingerprint;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::Down;

use super::batch::MAX_BATCH_STATEMENT_BYTES;
use super::operator::OperatorError;
use super::{Engine, Outbound};
use crate::state::{BatchEnvelopeRecord, OperatorSealed};

impl Engine {
    /// Puts every statement of `body` with what was sealed for it, all or nothing (one operation).
    pub(crate) fn put_batch_staged(
        &mut self,
        body: &PutBatchBody,
    ) -> Result<Vec<Outbound>, OperatorError> {
        let sealed = sealed_per_statement(body)?;
        for b in &body.batches {
            // A batch id names one envelope for good: items already pointing at a kept one would not be in a new one.
            if self.store.batch_envelope(&b.batch_id, &b.agent)?.is_some() {
                return Err(OperatorError::Conflict(format!(
                    "batch {} for {} is already kept",
                    b.batch_id, b.agent
                )));
            }
            let record = BatchEnvelopeRecord {
                envelope: b.envelope.clone(),
                key: b.key.0,
                items: b.items.clone(),
            };
            self.store
                .put_batch_envelope(&b.batch_id, &b.agent, &record)?;
        }
        let mut out = Vec::new();
        for (signed, sealed) in body.statements.iter().zip(sealed) {
            out.extend(self.put_statement_staged(signed, &sealed)?);
        }
        Ok(out)
    }
}

/// What was sealed for one statement: per agent, the key and the envelope or batch reference.
type SealedFor = Vec<(AgentId, KeyFingerprint, OperatorSealed)>;

/// What was sealed for each statement of `body`, in the statements' order; refuses a body that does not hold
/// together (statements' and envelopes' counts, a credential twice, an envelope for a credential the body does not
/// carry, two envelopes for one agent and key of one credential; two keys of one agent are a rotation's grace
/// period, and the relay keeps the one for the agent's current key).
fn sealed_per_statement(body: &PutBatchBody) -> Result<Vec<SealedFor>, OperatorError> {
    let invalid = OperatorError::Invalid;
    if body.statements.is_empty() || body.statements.len() > MAX_PUT_BATCH_STATEMENTS {
        return Err(invalid(format!(
            "a batch put carries 1 to {MAX_PUT_BATCH_STATEMENTS} statements, not {}",
            body.statements.len()
        )));
    }
    let mut index: HashMap<CredentialId, usize> = HashMap::new();
    for (i, s) in body.statements.iter().enumerate() {
        // The id as the statement claims it; the statement is verified when it is put.
        let id = s
            .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
            .map_err(|e| OperatorError::Statement(e.to_string()))?
            .credential_id;
        if index.insert(id, i).is_some() {
            return Err(invalid(format!("credential {id} is given twice")));
        }
    }
    let mut sealed: Vec<SealedFor> = vec![Vec::new(); body.statements.len()];
    let mut seen: BTreeSet<(CredentialId, AgentId, [u8; 32])> = BTreeSet::new();
    let mut batches: BTreeSet<(uuid::Uuid, AgentId)> = BTreeSet::new();
    let mut add = |id: &CredentialId,
                   agent: &AgentId,
                   key: KeyFingerprint,
                   s: OperatorSealed|
     -> Result<(), OperatorError> {
        let Some(slot) = index.get(id).and_then(|i| sealed.get_mut(*i)) else {
            return Err(invalid(format!(
                "an envelope for {agent} names credential {id}, which the batch does not carry"
            )));
        };
        if !seen.insert((*id, agent.clone(), key.0)) {
            return Err(invalid(format!(
                "two envelopes of credential {id} for {agent} and one key"
            )));
        }
        slot.push((agent.clone(), key, s));
        Ok(())
    };
    for e in &body.envelopes {
        add(
            &e.credential_id,
            &e.agent,
            e.key,
            OperatorSealed::Envelope(e.envelope.clone()),
        )?;
    }
    for b in &body.batches {
        if b.items.len() < 2 || b.items.len() > MAX_BATCH_ITEMS {
            return Err(invalid(format!(
                "batch {} carries 2 to {MAX_BATCH_ITEMS} credentials, not {}",
                b.batch_id,
                b.items.len()
            )));
        }
        if !batches.insert((b.batch_id, b.agent.clone())) {
            return Err(invalid(format!(
                "batch {} for {} is given twice",
                b.batch_id, b.agent
            )));
        }
        for id in &b.items {
            add(id, &b.agent, b.key, OperatorSealed::InBatch(b.batch_id))?;
        }
    }
    Ok(sealed)
}

/// Bytes of the statements of `items`, as batched rewrap counts them against [`MAX_BATCH_STATEMENT_BYTES`].
fn statement_bytes(items: &[tessera_proto::wire::BatchDelivery]) -> usize {
    items
        .iter()
        .map(|i| {
            i.statement.payload.len() + i.statement.signer_cert.len() + i.statement.signature.len()
        })
        .sum()
}

/// Joins an event's deliveries from one operator batch envelope to one agent into one message, at the place of the
/// first, while it stays within 64 items and the statement bytes that keep a delivery inside one frame (a message
/// that would pass them starts another); everything else stays as it was. (Batched rewrap's deliveries have batch
/// ids of their own, never shared.)
pub(crate) fn merge_operator_batches(out: Vec<Outbound>) -> Vec<Outbound> {
    if out
        .iter()
        .filter(|o| matches!(o.msg, Down::CredentialStoreBatch(_)))
        .nth(1)
        .is_none()
    {
        return out;
    }
    let mut merged: Vec<Outbound> = Vec::with_capacity(out.len());
    let mut at: HashMap<(AgentId, uuid::Uuid), usize> = HashMap::new();
    for o in out {
        let Down::CredentialStoreBatch(b) = o.msg else {
            merged.push(o);
            continue;
        };
        let key = (o.to.clone(), b.batch_id);
        let existing = at.get(&key).and_then(|i| merged.get_mut(*i));
        match existing {
            Some(Outbound {
                msg: Down::CredentialStoreBatch(first),
                ..
            }) if first.items.len() + b.items.len() <= MAX_BATCH_ITEMS
                && statement_bytes(&first.items) + statement_bytes(&b.items)
                    <= MAX_BATCH_STATEMENT_BYTES =>
            {
                first.items.extend(b.items);
            }
            _ => {
                at.insert(key, merged.len());
                merged.push(Outbound {
                    to: o.to,
                    msg: Down::CredentialStoreBatch(b),
                });
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests;
