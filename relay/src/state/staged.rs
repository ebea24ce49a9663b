//! The engine's view of the state while it handles one event: reads see the backend with this event's writes laid
//! over it; writes are staged in memory; [`Staged::commit`] hands them to the backend as one [`Batch`], applied
//! atomically. So an event that fails half-way leaves nothing behind, and a crash never splits a logical change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tessera_proto::audit::{next_entry, AuditEntry};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{RevocationList, Signed};

use super::{
    AgentRecord, Batch, BatchEnvelopeRecord, CredentialRecord, DeliveryRow, JobRecord,
    OperatorSealed, PendingRewrap, ReceiptKind, RelayStore, RenewalRecord, StateResult, Write,
};
use crate::alerts::Alert;

/// Records staged under one key type, in key order: `None` is a removal.
type Table<K, V> = BTreeMap<K, Option<V>>;

/// What the current event has written so far.
#[derive(Debug, Default)]
struct Overlay {
    agents: Table<AgentId, AgentRecord>,
    credentials: Table<CredentialId, CredentialRecord>,
    deliveries: Table<(CredentialId, AgentId), DeliveryRow>,
    envelopes: Table<(CredentialId, u64, AgentId), (OperatorSealed, [u8; 32])>,
    batch_envelopes: Table<(uuid::Uuid, AgentId), BatchEnvelopeRecord>,
    pendings: Table<uuid::Uuid, PendingRewrap>,
    blocks: Table<(CredentialId, AgentId), u64>,
    alerts: Table<String, Alert>,
    /// The chain's newest entry before this event's.
    audit_base: AuditBase,
    audit: Vec<AuditEntry>,
    jobs: Table<uuid::Uuid, JobRecord>,
    revocations: Option<Signed<RevocationList>>,
    receipts: Table<(CredentialId, AgentId, ReceiptKind), Receipt>,
    renewals: Table<AgentId, RenewalRecord>,
}

impl Overlay {
    fn is_empty(&self) -> bool {
        self.agents.is_empty()
            && self.credentials.is_empty()
            && self.deliveries.is_empty()
            && self.envelopes.is_empty()
            && self.batch_envelopes.is_empty()
            && self.pendings.is_empty()
            && self.blocks.is_empty()
            && self.alerts.is_empty()
            && self.audit.is_empty()
            && self.jobs.is_empty()
            && self.revocations.is_none()
            && self.receipts.is_empty()
            && self.renewals.is_empty()
    }

    /// The batch: the final value of every key written, then the audit entries in order.
    fn into_batch(self) -> Batch {
        let mut w = Vec::new();
        w.extend(self.agents.into_values().flatten().map(Write::Agent));
        w.extend(
            self.credentials
                .into_values()
                .flatten()
                .map(Write::Credential),
        );
        w.extend(self.deliveries.into_values().flatten().map(Write::Delivery));
        w.extend(
            self.envelopes
                .into_iter()
                .filter_map(|((credential, version, agent), v)| {
                    v.map(|(sealed, key)| Write::Envelope {
                        credential,
                        version,
                        agent,
                        sealed,
                        key,
                    })
                }),
        );
        w.extend(
            self.batch_envelopes
                .into_iter()
                .filter_map(|((batch, agent), v)| {
                    v.map(|record| Write::BatchEnvelope {
                        batch,
                        agent,
                        record,
                    })
                }),
        );
        w.extend(self.pendings.into_iter().map(|(id, p)| match p {
            Some(p) => Write::Pending(p),
            None => Write::RemovePending(id),
        }));
        w.extend(
            self.blocks
                .into_iter()
                .filter_map(|((credential, peer), until)| {
                    until.map(|until_ms| Write::Block {
                        credential,
                        peer,
                        until_ms,
                    })
                }),
        );
        w.extend(
            self.alerts
                .into_iter()
                .filter_map(|(key, a)| a.map(|alert| Write::Alert { key, alert })),
        );
        w.extend(self.jobs.into_values().flatten().map(Write::Job));
        w.extend(self.revocations.map(Write::Revocations));
        w.extend(
            self.receipts
                .into_iter()
                .filter_map(|((credential, agent, kind), r)| {
                    r.map(|receipt| Write::Receipt {
                        credential,
                        agent,
                        kind,
                        receipt,
                    })
                }),
        );
        w.extend(self.renewals.into_values().flatten().map(Write::Renewal));
        w.extend(self.audit.into_iter().map(Write::Audit));
        Batch(w)
    }
}

/// A list read: the backend's rows with this event's replacements and removals applied, then its new rows that
/// `keep` selects.
fn listed<K: Ord + Clone, V: Clone>(
    table: &Table<K, V>,
    base: Vec<V>,
    key: impl Fn(&V) -> K,
    keep: impl Fn(&V) -> bool,
) -> Vec<V> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out: Vec<V> = base
        .into_iter()
        .filter_map(|v| {
            let k = key(&v);
            let staged = table.get(&k);
            seen.insert(k);
            match staged {
                Some(s) => s.clone().filter(&keep),
                None => Some(v),
            }
        })
        .collect();
    out.extend(
        table
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
            .filter_map(|(_, v)| v.clone())
            .filter(|v| keep(v)),
    );
    out
}

/// The audit chain's head under this event's entries.
#[derive(Debug, Default)]
enum AuditBase {
    /// Not read yet (read at the event's first append).
    #[default]
    Unread,
    /// Read: the newest entry, if any.
    Read(Option<AuditEntry>),
}

/// The engine's state handle: the backend plus this event's staged writes.
#[derive(Debug, Clone)]
pub struct Staged {
    base: Arc<dyn RelayStore>,
    overlay: Arc<Mutex<Overlay>>,
}

impl Staged {
    /// Nothing staged, over `base`.
    pub fn new(base: Arc<dyn RelayStore>) -> Self {
        Self {
            base,
            overlay: Arc::new(Mutex::new(Overlay::default())),
        }
    }

    /// The backend (reads from here see committed state only).
    pub fn backend(&self) -> &Arc<dyn RelayStore> {
        &self.base
    }

    fn with<T>(&self, f: impl FnOnce(&mut Overlay) -> T) -> T {
        // A poisoned lock: a panic mid-event; what was staged is still a consistent set of whole records.
        f(&mut self.overlay.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether anything is staged.
    pub fn is_dirty(&self) -> bool {
        self.with(|o| !o.is_empty())
    }

    /// Applies everything staged as one batch; on failure nothing of it is written and it is dropped.
    pub fn commit(&self) -> StateResult<usize> {
        let batch = self.with(|o| std::mem::take(o).into_batch());
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        self.base.apply(&batch)?;
        Ok(n)
    }

    /// Drops everything staged.
    pub fn discard(&self) {
        self.with(|o| *o = Overlay::default());
    }

    // Reads.

    /// An agent.
    pub fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>> {
        let staged = self.with(|o| o.agents.get(id).cloned());
        staged.map_or_else(|| self.base.agent(id), Ok)
    }
    /// Every agent.
    pub fn agents(&self) -> StateResult<Vec<AgentRecord>> {
        let base = self.base.agents()?;
        Ok(self.with(|o| listed(&o.agents, base, |a| a.id.clone(), |_| true)))
    }
    /// A credential.
    pub fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>> {
        let staged = self.with(|o| o.credentials.get(id).cloned());
        staged.map_or_else(|| self.base.credential(id), Ok)
    }
    /// The live credential with this name.
    pub fn credential_by_name(
        &self,
        name: &CredentialName,
    ) -> StateResult<Option<CredentialRecord>> {
        let staged = self.with(|o| {
            o.credentials
                .values()
                .flatten()
                .find(|c| !c.deleted && &c.name == name)
                .cloned()
        });
        if staged.is_some() {
            return Ok(staged);
        }
        match self.base.credential_by_name(name)? {
            // The backend's holder of the name, unless this event changed it.
            Some(c) => match self.with(|o| o.credentials.get(&c.id).cloned()) {
                Some(Some(now)) if !now.deleted && &now.name == name => Ok(Some(now)),
                Some(_) => Ok(None),
                None => Ok(Some(c)),
            },
            None => Ok(None),
        }
    }
    /// Every credential.
    pub fn credentials(&self) -> StateResult<Vec<CredentialRecord>> {
        let base = self.base.credentials()?;
        Ok(self.with(|o| listed(&o.credentials, base, |c| c.id, |_| true)))
    }
    /// A delivery row.
    pub fn delivery(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
    ) -> StateResult<Option<DeliveryRow>> {
        let key = (*credential, agent.clone());
        let staged = self.with(|o| o.deliveries.get(&key).cloned());
        staged.map_or_else(|| self.base.delivery(credential, agent), Ok)
    }
    /// Every delivery row of a credential.
    pub fn deliveries_of_credential(
        &self,
        credential: &CredentialId,
    ) -> StateResult<Vec<DeliveryRow>> {
        let base = self.base.deliveries_of_credential(credential)?;
        Ok(self.with(|o| {
            listed(&o.deliveries, base, row_key, |r| {
                &r.credential == credential
            })
        }))
    }
    /// Every delivery row of an agent.
    pub fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>> {
        let base = self.base.deliveries_of_agent(agent)?;
        Ok(self.with(|o| listed(&o.deliveries, base, row_key, |r| &r.agent == agent)))
    }
    /// Every delivery row.
    pub fn deliveries(&self) -> StateResult<Vec<DeliveryRow>> {
        let base = self.base.deliveries()?;
        Ok(self.with(|o| listed(&o.deliveries, base, row_key, |_| true)))
    }
    /// What the operator sealed for an agent.
    pub fn envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
    ) -> StateResult<Option<(OperatorSealed, [u8; 32])>> {
        let key = (*credential, version, agent.clone());
        let staged = self.with(|o| o.envelopes.get(&key).cloned());
        staged.map_or_else(|| self.base.envelope(credential, version, agent), Ok)
    }
    /// A batch envelope the operator sealed for an agent.
    pub fn batch_envelope(
        &self,
        batch: &uuid::Uuid,
        agent: &AgentId,
    ) -> StateResult<Option<BatchEnvelopeRecord>> {
        let key = (*batch, agent.clone());
        let staged = self.with(|o| o.batch_envelopes.get(&key).cloned());
        staged.map_or_else(|| self.base.batch_envelope(batch, agent), Ok)
    }
    /// An in-flight rewrap.
    pub fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>> {
        let staged = self.with(|o| o.pendings.get(request_id).cloned());
        staged.map_or_else(|| self.base.pending(request_id), Ok)
    }
    /// Every in-flight rewrap.
    pub fn pendings(&self) -> StateResult<Vec<PendingRewrap>> {
        let base = self.base.pendings()?;
        Ok(self.with(|o| listed(&o.pendings, base, |p| p.request_id, |_| true)))
    }
    /// The in-flight rewraps for one target.
    pub fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>> {
        let base = self.base.pendings_of_target(target)?;
        Ok(self.with(|o| listed(&o.pendings, base, |p| p.request_id, |p| &p.target == target)))
    }
    /// Until when `peer` is blocklisted as a source of `credential`.
    pub fn blocked_until(
        &self,
        credential: &CredentialId,
        peer: &AgentId,
    ) -> StateResult<Option<u64>> {
        let key = (*credential, peer.clone());
        let staged = self.with(|o| o.blocks.get(&key).copied());
        staged.map_or_else(|| self.base.blocked_until(credential, peer), Ok)
    }
    /// An alert by key.
    pub fn alert(&self, key: &str) -> StateResult<Option<Alert>> {
        let staged = self.with(|o| o.alerts.get(key).cloned());
        staged.map_or_else(|| self.base.alert(key), Ok)
    }
    /// Every alert.
    pub fn alerts(&self) -> StateResult<Vec<Alert>> {
        let base = self.base.alerts()?;
        Ok(self.with(|o| {
            listed(
                &o.alerts,
                base,
                |a| Alert::key(a.kind, &a.subject),
                |_| true,
            )
        }))
    }
    /// The whole audit chain with this event's entries.
    pub fn audit(&self) -> StateResult<Vec<AuditEntry>> {
        let mut all = self.base.audit()?;
        self.with(|o| all.extend(o.audit.iter().cloned()));
        Ok(all)
    }
    /// A job.
    pub fn job(&self, id: &uuid::Uuid) -> StateResult<Option<JobRecord>> {
        let staged = self.with(|o| o.jobs.get(id).cloned());
        staged.map_or_else(|| self.base.job(id), Ok)
    }
    /// Every job.
    pub fn jobs(&self) -> StateResult<Vec<JobRecord>> {
        let base = self.base.jobs()?;
        Ok(self.with(|o| listed(&o.jobs, base, |j| j.id, |_| true)))
    }
    /// The newest revocation list accepted.
    pub fn revocations(&self) -> StateResult<Option<Signed<RevocationList>>> {
        match self.with(|o| o.revocations.clone()) {
            Some(l) => Ok(Some(l)),
            None => self.base.revocations(),
        }
    }
    /// An agent's receipt about a credential.
    pub fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<Receipt>> {
        let key = (*credential, agent.clone(), kind);
        let staged = self.with(|o| o.receipts.get(&key).cloned());
        staged.map_or_else(|| self.base.receipt(credential, agent, kind), Ok)
    }
    /// An agent's key rotation.
    pub fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>> {
        let staged = self.with(|o| o.renewals.get(agent).cloned());
        staged.map_or_else(|| self.base.renewal(agent), Ok)
    }
    /// Every agent's key rotation.
    pub fn renewals(&self) -> StateResult<Vec<RenewalRecord>> {
        let base = self.base.renewals()?;
        Ok(self.with(|o| listed(&o.renewals, base, |r| r.agent.clone(), |_| true)))
    }

    // Writes (staged until the commit; they do not fail, the `Result` keeps call sites uniform with reads).

    /// Creates or replaces an agent.
    pub fn put_agent(&self, a: &AgentRecord) -> StateResult<()> {
        self.with(|o| o.agents.insert(a.id.clone(), Some(a.clone())));
        Ok(())
    }
    /// Creates or replaces a credential.
    pub fn put_credential(&self, c: &CredentialRecord) -> StateResult<()> {
        self.with(|o| o.credentials.insert(c.id, Some(c.clone())));
        Ok(())
    }
    /// Creates or replaces a delivery row.
    pub fn put_delivery(&self, r: &DeliveryRow) -> StateResult<()> {
        self.with(|o| o.deliveries.insert(row_key(r), Some(r.clone())));
        Ok(())
    }
    /// Keeps what the operator sealed for an agent.
    pub fn put_envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
        sealed: &OperatorSealed,
        key: [u8; 32],
    ) -> StateResult<()> {
        self.with(|o| {
            o.envelopes.insert(
                (*credential, version, agent.clone()),
                Some((sealed.clone(), key)),
            )
        });
        Ok(())
    }
    /// Keeps a batch envelope the operator sealed for an agent.
    pub fn put_batch_envelope(
        &self,
        batch: &uuid::Uuid,
        agent: &AgentId,
        record: &BatchEnvelopeRecord,
    ) -> StateResult<()> {
        self.with(|o| {
            o.batch_envelopes
                .insert((*batch, agent.clone()), Some(record.clone()))
        });
        Ok(())
    }
    /// Creates or replaces an in-flight rewrap.
    pub fn put_pending(&self, p: &PendingRewrap) -> StateResult<()> {
        self.with(|o| o.pendings.insert(p.request_id, Some(p.clone())));
        Ok(())
    }
    /// Removes an in-flight rewrap.
    pub fn remove_pending(&self, request_id: &uuid::Uuid) -> StateResult<()> {
        self.with(|o| o.pendings.insert(*request_id, None));
        Ok(())
    }
    /// Blocklists `peer` for `credential` until `until_ms`.
    pub fn block(
        &self,
        credential: &CredentialId,
        peer: &AgentId,
        until_ms: u64,
    ) -> StateResult<()> {
        self.with(|o| o.blocks.insert((*credential, peer.clone()), Some(until_ms)));
        Ok(())
    }
    /// Stores an alert.
    pub fn put_alert(&self, key: &str, alert: &Alert) -> StateResult<()> {
        self.with(|o| o.alerts.insert(key.to_owned(), Some(alert.clone())));
        Ok(())
    }
    /// Appends to the audit chain (linked to the backend's newest entry or this event's previous one).
    pub fn append_audit(
        &self,
        at_ms: u64,
        kind: &str,
        link: Option<u64>,
        data: BTreeMap<String, String>,
    ) -> StateResult<AuditEntry> {
        let unread = self.with(|o| matches!(o.audit_base, AuditBase::Unread));
        if unread {
            let head = self.base.audit_head()?;
            self.with(|o| o.audit_base = AuditBase::Read(head));
        }
        Ok(self.with(|o| {
            let base = match &o.audit_base {
                AuditBase::Read(head) => head.as_ref(),
                AuditBase::Unread => None,
            };
            let prev = o.audit.last().or(base);
            let e = next_entry(prev, at_ms, kind, link, data);
            o.audit.push(e.clone());
            e
        }))
    }
    /// Creates or replaces a job.
    pub fn put_job(&self, job: &JobRecord) -> StateResult<()> {
        self.with(|o| o.jobs.insert(job.id, Some(job.clone())));
        Ok(())
    }
    /// Replaces the revocation list.
    pub fn put_revocations(&self, list: &Signed<RevocationList>) -> StateResult<()> {
        self.with(|o| o.revocations = Some(list.clone()));
        Ok(())
    }
    /// Keeps (replaces) an agent's receipt about a credential.
    pub fn put_receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
        receipt: &Receipt,
    ) -> StateResult<()> {
        self.with(|o| {
            o.receipts
                .insert((*credential, agent.clone(), kind), Some(receipt.clone()))
        });
        Ok(())
    }
    /// Creates or replaces an agent's key rotation.
    pub fn put_renewal(&self, r: &RenewalRecord) -> StateResult<()> {
        self.with(|o| o.renewals.insert(r.agent.clone(), Some(r.clone())));
        Ok(())
    }
    /// Makes everything committed durable.
    pub fn flush(&self) -> StateResult<()> {
        self.base.flush()
    }
}

fn row_key(r: &DeliveryRow) -> (CredentialId, AgentId) {
    (r.credential, r.agent.clone())
}

#[cfg(test)]
mod tests;
