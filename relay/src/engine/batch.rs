//! Batched rewrap (docs/protocol.md, "Batched rewrap"): a transport for the single-credential state machine, not a
//! second one. Every credential keeps its own in-flight record (request id, nonce, peer, stage, timeout, audit
//! entries) exactly as a single rewrap; what changes is how the messages travel:
//!
//! - [`Engine::group_rewraps`]: after an event commits, its rewrap requests for one (peer, target), both of which
//!   announced `batch_rewrap`, go out as [`RewrapBatchRequest`]s of at most `batch_size` items (JIT repairs stay
//!   single, and so does a lone request).
//! - A peer's [`RewrapBatchResponse`]: each sealed item passes the four bindings of a single answer against its own
//!   record (the envelope's key, binding 4, is the batch's); the items that pass go to the target in one
//!   [`CredentialStoreBatch`] with their statements; refused items are refusals of single requests.
//! - A target's [`CredentialStoredBatch`]: each item is a single acknowledgement (digest, receipt).
//!
//! A crash loses nothing a single rewrap would not: the records are per credential, so a batch half answered, or
//! never answered, times out item by item and the reconciler asks again.

use tessera_proto::envelope::batch::MAX_BATCH_ITEMS;
use tessera_proto::ids::AgentId;
use tessera_proto::wire::{
    BatchDelivery, CredentialStoreBatch, CredentialStoredBatch, Down, RewrapBatchRequest,
    RewrapBatchResponse, RewrapItem, RewrapRequest,
};

use super::{Engine, Outbound};
use crate::lifecycle::{PeerAnswer, Unsolicited};
use crate::state::StateResult;

/// Statement bytes per batched request at most, so that the delivery (these statements and an envelope of at most
/// `MAX_BATCH_PLAINTEXT` in base64) stays inside one frame.
pub(crate) const MAX_BATCH_STATEMENT_BYTES: usize = 192 * 1024;

/// A place in an event's output: a message kept as it is, or the index of a group of rewrap requests.
enum Slot {
    Kept(Box<Outbound>),
    Group(usize),
}

/// Whether a registration announces `batch_rewrap`.
pub(crate) fn announced(r: &tessera_proto::wire::Register) -> bool {
    r.capabilities
        .iter()
        .any(|c| c == tessera_proto::wire::CAPABILITY_BATCH_REWRAP)
}

impl Engine {
    /// Whether `agent` announced `batch_rewrap` in its last registration (its record, remembered).
    pub(crate) fn batches(&mut self, agent: &AgentId) -> StateResult<bool> {
        if let Some(b) = self.batch_capable.get(agent) {
            return Ok(*b);
        }
        let b = self.store.agent(agent)?.is_some_and(|a| a.batch_rewrap);
        self.batch_capable.insert(agent.clone(), b);
        Ok(b)
    }

    /// Deliveries a backfilling `agent` may have in flight: `batch_size × batches_in_flight` when it batches.
    pub(crate) fn backfill_limit(&mut self, agent: &AgentId) -> StateResult<usize> {
        Ok(if self.cfg.batch_size >= 2 && self.batches(agent)? {
            self.cfg
                .batch_size
                .saturating_mul(self.cfg.batches_in_flight)
        } else {
            self.cfg.backfill_concurrency
        })
    }

    /// Sends an event's rewrap requests for one (peer, target) that both batch as batched requests, each at the
    /// place of its first item, and joins its deliveries from one operator batch envelope; everything else as it
    /// was. Runs after the event committed: a failure to read a capability only leaves the request single.
    pub(crate) fn group_rewraps(&mut self, out: Vec<Outbound>) -> Vec<Outbound> {
        let out = super::operator_batch::merge_operator_batches(out);
        let unbatched = std::mem::take(&mut self.unbatched);
        let size = self.cfg.batch_size.min(MAX_BATCH_ITEMS);
        if size < 2
            || out
                .iter()
                .filter(|o| matches!(o.msg, Down::RewrapRequest(_)))
                .nth(1)
                .is_none()
        {
            return out;
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(out.len());
        let mut groups: Vec<(AgentId, Vec<RewrapRequest>)> = Vec::new();
        let mut index: std::collections::HashMap<(AgentId, AgentId), usize> =
            std::collections::HashMap::new();
        for o in out {
            let Down::RewrapRequest(r) = o.msg else {
                slots.push(Slot::Kept(Box::new(o)));
                continue;
            };
            let both = !unbatched.contains(&r.request_id)
                && self.batches(&o.to).unwrap_or(false)
                && self.batches(&r.target).unwrap_or(false);
            if !both {
                slots.push(Slot::Kept(Box::new(Outbound {
                    to: o.to,
                    msg: Down::RewrapRequest(r),
                })));
                continue;
            }
            match index.entry((o.to.clone(), r.target.clone())) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    if let Some((_, items)) = groups.get_mut(*e.get()) {
                        items.push(r);
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(groups.len());
                    slots.push(Slot::Group(groups.len()));
                    groups.push((o.to, vec![r]));
                }
            }
        }
        let mut groups: Vec<Option<(AgentId, Vec<RewrapRequest>)>> =
            groups.into_iter().map(Some).collect();
        let mut result = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Kept(o) => result.push(*o),
                Slot::Group(i) => {
                    if let Some((peer, requests)) = groups.get_mut(i).and_then(Option::take) {
                        result.extend(self.batched(&peer, requests, size));
                    }
                }
            }
        }
        result
    }

    /// `requests` (one peer, one target) as batches of at most `size` items and [`MAX_BATCH_STATEMENT_BYTES`]; a
    /// batch of one goes as the single request it is.
    fn batched(
        &mut self,
        peer: &AgentId,
        requests: Vec<RewrapRequest>,
        size: usize,
    ) -> Vec<Outbound> {
        let mut chunks: Vec<Vec<RewrapRequest>> = Vec::new();
        let mut bytes = 0;
        for r in requests {
            let weight = r.statement.payload.len()
                + r.statement.signer_cert.len()
                + r.statement.signature.len();
            let full = chunks
                .last()
                .is_none_or(|c| c.len() >= size || bytes + weight > MAX_BATCH_STATEMENT_BYTES);
            if full {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += weight;
            if let Some(c) = chunks.last_mut() {
                c.push(r);
            }
        }
        chunks
            .into_iter()
            .filter_map(|mut chunk| {
                if chunk.len() == 1 {
                    return chunk.pop().map(|r| Outbound {
                        to: peer.clone(),
                        msg: Down::RewrapRequest(r),
                    });
                }
                let first = chunk.first()?;
                let (target, target_cert) = (first.target.clone(), first.target_cert.clone());
                self.metrics.rewrap_batches += 1;
                Some(Outbound {
                    to: peer.clone(),
                    msg: Down::RewrapBatchRequest(RewrapBatchRequest {
                        batch_id: uuid::Uuid::new_v4(),
                        target,
                        target_cert,
                        items: chunk
                            .into_iter()
                            .map(|r| RewrapItem {
                                request_id: r.request_id,
                                nonce: r.nonce,
                                credential_id: r.credential_id,
                                version: r.version,
                                statement: r.statement,
                            })
                            .collect(),
                    }),
                })
            })
            .collect()
    }

    /// A peer's batched answer: each sealed item checked as a single answer against its own record; the items that
    /// pass go to their target in one batched delivery; refused items are single refusals.
    pub(super) fn on_rewrap_batch_response(
        &mut self,
        from: &AgentId,
        r: &RewrapBatchResponse,
    ) -> StateResult<Vec<Outbound>> {
        let mut out = Vec::new();
        let mut target: Option<(AgentId, bool)> = None;
        let mut items = Vec::with_capacity(r.sealed.len());
        if let (Some(envelope), Some(target_key)) = (&r.envelope, r.target_key) {
            for item in &r.sealed {
                let Some(p) = self.store.pending(&item.request_id)? else {
                    self.unsolicited(from, &item.request_id, "UNKNOWN_REQUEST")?;
                    continue;
                };
                // One envelope is sealed to one target: an item for another target than the batch's first is not
                // delivered (an honest peer never answers so: the relay batches per target).
                let key_current = match &target {
                    Some((t, current)) if *t == p.target => *current,
                    Some(_) => {
                        self.unsolicited(from, &item.request_id, "BATCH_TARGET_MISMATCH")?;
                        continue;
                    }
                    None => {
                        let current = self
                            .store
                            .agent(&p.target)?
                            .is_some_and(|t| t.wrap_fingerprint == target_key.0);
                        // A target that does not take batches (it registered again without the capability) would
                        // drop the delivery: the items are not delivered, and are asked again when they time out.
                        let current = current && self.batches(&p.target)?;
                        target = Some((p.target.clone(), current));
                        current
                    }
                };
                let answer = PeerAnswer {
                    from,
                    claimed_peer: &r.peer,
                    nonce: &item.nonce,
                    credential: item.credential_id,
                    version: item.version,
                    target_key_current: key_current,
                };
                let next = match p.on_peer_answer(&answer, self.timing()) {
                    Ok(next) => next,
                    Err(Unsolicited(reason)) => {
                        self.unsolicited(from, &item.request_id, &reason)?;
                        continue;
                    }
                };
                let Some(c) = self.store.credential(&next.credential)? else {
                    continue;
                };
                self.save_pending(&next)?;
                items.push(BatchDelivery {
                    delivery_id: next.request_id,
                    statement: c.statement,
                    request_id: next.jit,
                });
            }
            if let (Some((to, _)), false) = (&target, items.is_empty()) {
                out.push(Outbound {
                    to: to.clone(),
                    msg: Down::CredentialStoreBatch(CredentialStoreBatch {
                        batch_id: uuid::Uuid::new_v4(),
                        envelope: envelope.clone(),
                        target_key: Some(target_key),
                        items,
                    }),
                });
            }
        }
        for refused in &r.refused {
            out.extend(self.on_rewrap_refused(from, refused)?);
        }
        Ok(out)
    }

    /// A target's batched acknowledgement: each item as a single one.
    pub(super) fn on_stored_batch(
        &mut self,
        from: &AgentId,
        b: &CredentialStoredBatch,
    ) -> StateResult<Vec<Outbound>> {
        let mut out = Vec::new();
        for item in &b.items {
            out.extend(self.on_stored(from, item)?);
        }
        Ok(out)
    }
}
