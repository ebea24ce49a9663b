//! The embedded backend: sled trees of JSON records.

use std::path::Path;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};

use super::decoded::Decoded;
use super::index::Index;
use super::records::StoredSealed;
use super::{
    AgentRecord, Batch, BatchEnvelopeRecord, CredentialRecord, DeliveryRow, JobRecord,
    OperatorSealed, PendingRewrap, ReceiptKind, RelayStore, RenewalRecord, StateError, StateResult,
    Write,
};
use crate::alerts::Alert;
use tessera_proto::audit::AuditEntry;

/// sled-backed relay state.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    agents: sled::Tree,
    credentials: sled::Tree,
    names: sled::Tree,
    /// Delivery rows under `c|<credential>|<agent>`: a credential's rows are one prefix scan (the peer choice).
    deliveries: sled::Tree,
    /// Each agent's delivery rows (their credential ids), rebuilt at open.
    rows_of_agent: Index<AgentId, CredentialId>,
    envelopes: sled::Tree,
    /// Operator batch envelopes under `<batch>|<agent>`.
    batch_envelopes: sled::Tree,
    /// In-flight rewraps under `r|<request id>`.
    pending: sled::Tree,
    /// The rewraps in flight to each target, rebuilt at open.
    pending_of_target: Index<AgentId, uuid::Uuid>,
    blocklist: sled::Tree,
    alerts: sled::Tree,
    audit: sled::Tree,
    jobs: sled::Tree,
    renewals: sled::Tree,
    /// Agents' receipts under `s|<credential>|<agent>` (stored) and `p|…` (purged).
    receipts: sled::Tree,
    meta: sled::Tree,
    /// The newest audit entry, the link for the next one; held while an entry is appended. Loaded at open: this
    /// process is the store's only writer, so the tree's last entry does not change under it.
    audit_tail: Mutex<Option<AuditEntry>>,
    /// Set when a batch failed part-way: writes are refused until the store is opened again.
    failed: std::sync::atomic::AtomicBool,
    agent_cache: Decoded<AgentId, AgentRecord>,
    credential_cache: Decoded<CredentialId, CredentialRecord>,
}

fn backend(e: &sled::Error) -> StateError {
    StateError::Backend(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> StateResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StateError::Backend(e.to_string()))
}

fn dec<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> StateResult<T> {
    serde_json::from_slice(v)
        .map_err(|_| StateError::Corrupt(String::from_utf8_lossy(key).into_owned()))
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> StateResult<Option<T>> {
    tree.get(key)
        .map_err(|e| backend(&e))?
        .map(|v| dec(key, &v))
        .transpose()
}

fn all<T: DeserializeOwned>(tree: &sled::Tree, prefix: &[u8]) -> StateResult<Vec<T>> {
    tree.scan_prefix(prefix)
        .map(|r| {
            let (k, v) = r.map_err(|e| backend(&e))?;
            dec(&k, &v)
        })
        .collect()
}

fn pair(a: &str, b: &str) -> Vec<u8> {
    format!("{a}|{b}").into_bytes()
}

fn by_credential(credential: &CredentialId, agent: &AgentId) -> Vec<u8> {
    format!("c|{credential}|{}", agent.as_str()).into_bytes()
}

fn receipt_key(credential: &CredentialId, agent: &AgentId, kind: ReceiptKind) -> Vec<u8> {
    let tag = match kind {
        ReceiptKind::Stored => 's',
        ReceiptKind::Purged => 'p',
    };
    format!("{tag}|{credential}|{}", agent.as_str()).into_bytes()
}

fn by_request(request_id: &uuid::Uuid) -> Vec<u8> {
    let mut k = b"r|".to_vec();
    k.extend_from_slice(request_id.as_bytes());
    k
}

/// Prefixes of the on-disk secondary copies an earlier version wrote (`a|<agent>|…` delivery rows, `t|<target>|…`
/// in-flight records); removed at open, the indexes are in memory now.
const RETIRED_PREFIXES: [(&str, &[u8]); 2] = [("delivery_rows", b"a|"), ("in_flight", b"t|")];

fn remove_prefix(tree: &sled::Tree, prefix: &[u8]) -> StateResult<()> {
    for k in tree.scan_prefix(prefix).keys() {
        tree.remove(k.map_err(|e| backend(&e))?)
            .map_err(|e| backend(&e))?;
    }
    Ok(())
}

impl SledStore {
    /// Opens (creating) the state at `path`. A lock held by a relay that is just exiting (or, in one process, by a
    /// handle whose background flusher has not stopped yet) is waited for up to two seconds.
    pub fn open(path: &Path) -> StateResult<Self> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::Config::new()
                .path(path)
                .cache_capacity(64 * 1024 * 1024)
                // Applied batches reach the file within 50 ms (sled's default is 500 ms): what a SIGKILL can take
                // with it. A batch is not flushed before the event's messages go out (docs/operations.md, "State
                // backends").
                .flush_every_ms(Some(50))
                .open()
            {
                Err(sled::Error::Io(io))
                    if (io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock"))
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(|e| backend(&e))?,
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|e| backend(&e));
        for (name, prefix) in RETIRED_PREFIXES {
            remove_prefix(&tree(name)?, prefix)?;
        }
        let trees = TREE_NAMES
            .iter()
            .map(|n| tree(n))
            .collect::<StateResult<Vec<_>>>()?;
        let meta_tree = tree("meta")?;
        Self::finish_interrupted(&meta_tree, &trees.iter().collect::<Vec<_>>())?;
        let deliveries = tree("delivery_rows")?;
        let rows_of_agent = Index::from_pairs(
            all::<DeliveryRow>(&deliveries, b"c|")?
                .into_iter()
                .map(|r| (r.agent, r.credential)),
        );
        let audit = tree("audit")?;
        let audit_tail = match audit.last().map_err(|e| backend(&e))? {
            Some((k, v)) => Some(dec::<AuditEntry>(&k, &v)?),
            None => None,
        };
        let pending = tree("in_flight")?;
        let pending_of_target = Index::from_pairs(
            all::<PendingRewrap>(&pending, b"r|")?
                .into_iter()
                .map(|p| (p.target, p.request_id)),
        );
        Ok(Self {
            agents: tree("agents")?,
            credentials: tree("credentials")?,
            names: tree("names")?,
            deliveries,
            rows_of_agent,
            envelopes: tree("envelopes")?,
            batch_envelopes: tree("batch_envelopes")?,
            pending,
            pending_of_target,
            blocklist: tree("blocklist")?,
            alerts: tree("alerts")?,
            audit,
            jobs: tree("jobs")?,
            renewals: tree("renewals")?,
            receipts: tree("receipts")?,
            meta: tree("meta")?,
            db,
            audit_tail: Mutex::new(audit_tail),
            failed: std::sync::atomic::AtomicBool::new(false),
            agent_cache: Decoded::new(),
            credential_cache: Decoded::new(),
        })
    }
}

impl RelayStore for SledStore {
    fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>> {
        self.agent_cache
            .get_or(id, || get(&self.agents, id.as_str().as_bytes()))
    }
    fn agents(&self) -> StateResult<Vec<AgentRecord>> {
        all(&self.agents, b"")
    }

    fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>> {
        self.credential_cache
            .get_or(id, || get(&self.credentials, id.to_string().as_bytes()))
    }
    fn credential_by_name(&self, name: &CredentialName) -> StateResult<Option<CredentialRecord>> {
        let Some(id) = self.names.get(name.as_str()).map_err(|e| backend(&e))? else {
            return Ok(None);
        };
        match std::str::from_utf8(&id)
            .ok()
            .and_then(|s| s.parse::<CredentialId>().ok())
        {
            Some(cid) => self.credential(&cid),
            None => get(&self.credentials, &id),
        }
    }
    fn credentials(&self) -> StateResult<Vec<CredentialRecord>> {
        all(&self.credentials, b"")
    }

    fn delivery(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
    ) -> StateResult<Option<DeliveryRow>> {
        get(&self.deliveries, &by_credential(credential, agent))
    }
    fn deliveries_of_credential(&self, credential: &CredentialId) -> StateResult<Vec<DeliveryRow>> {
        all(&self.deliveries, format!("c|{credential}|").as_bytes())
    }
    fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>> {
        let mut rows = Vec::new();
        for c in self.rows_of_agent.keys_of(agent) {
            rows.extend(self.delivery(&c, agent)?);
        }
        Ok(rows)
    }
    fn deliveries(&self) -> StateResult<Vec<DeliveryRow>> {
        all(&self.deliveries, b"c|")
    }

    fn envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
    ) -> StateResult<Option<(OperatorSealed, [u8; 32])>> {
        let key = format!("{credential}|{version}|{}", agent.as_str());
        Ok(get::<StoredSealed>(&self.envelopes, key.as_bytes())?
            .and_then(StoredSealed::into_sealed))
    }

    fn batch_envelope(
        &self,
        batch: &uuid::Uuid,
        agent: &AgentId,
    ) -> StateResult<Option<BatchEnvelopeRecord>> {
        let key = format!("{batch}|{}", agent.as_str());
        get(&self.batch_envelopes, key.as_bytes())
    }

    fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>> {
        get(&self.pending, &by_request(request_id))
    }
    fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>> {
        let mut out = Vec::new();
        for id in self.pending_of_target.keys_of(target) {
            out.extend(self.pending(&id)?);
        }
        Ok(out)
    }
    fn pendings(&self) -> StateResult<Vec<PendingRewrap>> {
        all(&self.pending, b"r|")
    }

    fn blocked_until(&self, credential: &CredentialId, peer: &AgentId) -> StateResult<Option<u64>> {
        get(
            &self.blocklist,
            &pair(&credential.to_string(), peer.as_str()),
        )
    }

    fn alert(&self, key: &str) -> StateResult<Option<Alert>> {
        get(&self.alerts, key.as_bytes())
    }
    fn alerts(&self) -> StateResult<Vec<Alert>> {
        all(&self.alerts, b"")
    }

    fn audit(&self) -> StateResult<Vec<AuditEntry>> {
        all(&self.audit, b"")
    }

    fn job(&self, id: &uuid::Uuid) -> StateResult<Option<JobRecord>> {
        get(&self.jobs, id.as_bytes())
    }
    fn jobs(&self) -> StateResult<Vec<JobRecord>> {
        all(&self.jobs, b"")
    }

    fn revocations(
        &self,
    ) -> StateResult<
        Option<tessera_proto::statement::Signed<tessera_proto::statement::RevocationList>>,
    > {
        get(&self.meta, b"revocations")
    }

    fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<tessera_proto::receipt::Receipt>> {
        get(&self.receipts, &receipt_key(credential, agent, kind))
    }

    fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>> {
        get(&self.renewals, agent.as_str().as_bytes())
    }
    fn renewals(&self) -> StateResult<Vec<RenewalRecord>> {
        all(&self.renewals, b"")
    }

    fn audit_head(&self) -> StateResult<Option<AuditEntry>> {
        Ok(self
            .audit_tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    fn apply(&self, batch: &Batch) -> StateResult<()> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StateError::Backend(
                "an earlier batch could not be written in full; restart the relay to finish it"
                    .into(),
            ));
        }
        // Held for the whole apply: batches are applied one at a time, and the chain's head cannot move between
        // the check and the write. A poisoned lock: a panic mid-apply left the tail as it was before that batch
        // (it is replaced only after the batch is written), so it is still the right link.
        let mut tail = self
            .audit_tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batch.check_audit_chain(tail.as_ref())?;
        let mut ops = Vec::with_capacity(batch.len() + 1);
        // Targets of the in-flight records removed, for the in-memory index (read before they go).
        let mut removed = Vec::new();
        for w in &batch.0 {
            ops.push(Self::encode(w)?);
            match w {
                Write::Credential(c) => ops.extend(self.name_changes(c)?),
                Write::RemovePending(id) => removed.extend(self.pending(id)?),
                // Append-only: an existing sequence number is never overwritten.
                Write::Audit(e)
                    if self
                        .audit
                        .contains_key(e.seq.to_be_bytes())
                        .map_err(|e| backend(&e))? =>
                {
                    return Err(StateError::Conflict("audit sequence already taken".into()));
                }
                _ => {}
            }
        }
        // A batch of more than one record is written as a redo record first (one atomic insert), then record by
        // record, then the redo record goes; a crash in between is finished at the next open.
        let logged = ops.len() > 1;
        if logged {
            self.meta
                .insert(REDO_KEY, redo::encode(&ops))
                .map_err(|e| backend(&e))?;
        }
        let written = self.write_ops(&ops).and_then(|()| {
            if logged {
                self.meta.remove(REDO_KEY).map_err(|e| backend(&e))?;
            }
            Ok(())
        });
        if let Err(e) = written {
            // Part of the batch may be on disk: no further write until the next open finishes it from the redo
            // record (the in-memory copies no longer match the disk either). A single record is written whole or
            // not at all.
            if logged {
                self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            return Err(e);
        }
        // Written: the in-memory copies follow.
        for w in &batch.0 {
            match w {
                Write::Agent(a) => self.agent_cache.set(&a.id, a),
                Write::Credential(c) => self.credential_cache.set(&c.id, c),
                Write::Delivery(r) => self.rows_of_agent.add(&r.agent, r.credential),
                Write::Pending(p) => self.pending_of_target.add(&p.target, p.request_id),
                Write::Audit(e) => *tail = Some(e.clone()),
                _ => {}
            }
        }
        for p in removed {
            self.pending_of_target.remove(&p.target, &p.request_id);
        }
        Ok(())
    }

    fn flush(&self) -> StateResult<()> {
        self.db.flush().map(|_| ()).map_err(|e| backend(&e))
    }
}

/// The trees a batch writes, by position (their names on disk).
/// New trees go at the end: a redo record names trees by position.
const TREE_NAMES: [&str; 14] = [
    "agents",
    "credentials",
    "names",
    "delivery_rows",
    "envelopes",
    "in_flight",
    "blocklist",
    "alerts",
    "audit",
    "jobs",
    "meta",
    "receipts",
    "renewals",
    "batch_envelopes",
];

/// Positions of the trees in [`TREE_NAMES`].
const AGENTS: usize = 0;
const CREDENTIALS: usize = 1;
const NAMES: usize = 2;
const DELIVERIES: usize = 3;
const ENVELOPES: usize = 4;
const PENDING: usize = 5;
const BLOCKLIST: usize = 6;
const ALERTS: usize = 7;
const AUDIT: usize = 8;
const JOBS: usize = 9;
const META: usize = 10;
const RECEIPTS: usize = 11;
const RENEWALS: usize = 12;
const BATCH_ENVELOPES: usize = 13;

/// Where a batch being written is kept until all of it is (in the `meta` tree).
const REDO_KEY: &[u8] = b"redo-batch";

use redo::Encoded;

impl SledStore {
    fn tree_at(&self, i: usize) -> StateResult<&sled::Tree> {
        [
            &self.agents,
            &self.credentials,
            &self.names,
            &self.deliveries,
            &self.envelopes,
            &self.pending,
            &self.blocklist,
            &self.alerts,
            &self.audit,
            &self.jobs,
            &self.meta,
            &self.receipts,
            &self.renewals,
            &self.batch_envelopes,
        ]
        .get(i)
        .copied()
        .ok_or_else(|| StateError::Corrupt(format!("redo record names tree {i}")))
    }

    fn write_ops(&self, ops: &[Encoded]) -> StateResult<()> {
        for op in ops {
            let tree = self.tree_at(op.tree)?;
            match &op.value {
                Some(v) => tree.insert(op.key.as_slice(), v.as_slice()),
                None => tree.remove(op.key.as_slice()),
            }
            .map_err(|e| backend(&e))?;
        }
        Ok(())
    }

    /// The name index changes a credential write makes: a live credential takes its name (and gives up the one it
    /// held before, when renamed); a deleted one gives its name up only if it holds it. Deleted credentials come
    /// first in a batch, so a live one taking the same name comes after.
    fn name_changes(&self, c: &CredentialRecord) -> StateResult<Vec<Encoded>> {
        let id = c.id.to_string().into_bytes();
        let holds = |name: &str| -> StateResult<bool> {
            Ok(self.names.get(name).map_err(|e| backend(&e))?.as_deref() == Some(id.as_slice()))
        };
        let mut out = Vec::new();
        if let Some(before) = get::<CredentialRecord>(&self.credentials, &id)? {
            if before.name != c.name && holds(before.name.as_str())? {
                out.push(Encoded {
                    tree: NAMES,
                    key: before.name.as_str().as_bytes().to_vec(),
                    value: None,
                });
            }
        }
        let key = c.name.as_str().as_bytes().to_vec();
        if !c.deleted {
            out.push(Encoded {
                tree: NAMES,
                key,
                value: Some(id),
            });
        } else if holds(c.name.as_str())? {
            out.push(Encoded {
                tree: NAMES,
                key,
                value: None,
            });
        }
        Ok(out)
    }

    /// Finishes a batch a crash interrupted (its records are whole values: writing them again is harmless).
    fn finish_interrupted(meta: &sled::Tree, trees: &[&sled::Tree]) -> StateResult<()> {
        let Some(bytes) = meta.get(REDO_KEY).map_err(|e| backend(&e))? else {
            return Ok(());
        };
        let ops = redo::decode(&bytes)?;
        for op in &ops {
            let tree = trees.get(op.tree).ok_or_else(|| {
                StateError::Corrupt(format!("redo record names tree {}", op.tree))
            })?;
            match &op.value {
                Some(v) => tree.insert(op.key.as_slice(), v.as_slice()),
                None => tree.remove(op.key.as_slice()),
            }
            .map_err(|e| backend(&e))?;
        }
        meta.remove(REDO_KEY).map_err(|e| backend(&e))?;
        tracing::warn!(
            records = ops.len(),
            "relay state: finished a batch interrupted by a crash"
        );
        Ok(())
    }

    fn encode(w: &Write) -> StateResult<Encoded> {
        let (tree, key, value) = match w {
            Write::Agent(a) => (AGENTS, a.id.as_str().as_bytes().to_vec(), Some(enc(a)?)),
            Write::Credential(c) => (CREDENTIALS, c.id.to_string().into_bytes(), Some(enc(c)?)),
            Write::Delivery(r) => (
                DELIVERIES,
                by_credential(&r.credential, &r.agent),
                Some(enc(r)?),
            ),
            Write::Envelope {
                credential,
                version,
                agent,
                sealed,
                key,
            } => (
                ENVELOPES,
                format!("{credential}|{version}|{}", agent.as_str()).into_bytes(),
                Some(enc(&StoredSealed::new(sealed, *key))?),
            ),
            Write::BatchEnvelope {
                batch,
                agent,
                record,
            } => (
                BATCH_ENVELOPES,
                format!("{batch}|{}", agent.as_str()).into_bytes(),
                Some(enc(record)?),
            ),
            Write::Pending(p) => (PENDING, by_request(&p.request_id), Some(enc(p)?)),
            Write::RemovePending(id) => (PENDING, by_request(id), None),
            Write::Block {
                credential,
                peer,
                until_ms,
            } => (
                BLOCKLIST,
                pair(&credential.to_string(), peer.as_str()),
                Some(enc(until_ms)?),
            ),
            Write::Alert { key, alert } => (ALERTS, key.as_bytes().to_vec(), Some(enc(alert)?)),
            Write::Audit(e) => (AUDIT, e.seq.to_be_bytes().to_vec(), Some(enc(e)?)),
            Write::Job(j) => (JOBS, j.id.as_bytes().to_vec(), Some(enc(j)?)),
            Write::Revocations(l) => (META, b"revocations".to_vec(), Some(enc(l)?)),
            Write::Receipt {
                credential,
                agent,
                kind,
                receipt,
            } => (
                RECEIPTS,
                receipt_key(credential, agent, *kind),
                Some(enc(receipt)?),
            ),
            Write::Renewal(r) => (
                RENEWALS,
                r.agent.as_str().as_bytes().to_vec(),
                Some(enc(r)?),
            ),
        };
        Ok(Encoded { tree, key, value })
    }
}

#[cfg(test)]
mod tests;

mod redo;
