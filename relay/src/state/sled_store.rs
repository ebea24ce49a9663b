//! The embedded backend: sled trees of JSON records.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::Path;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_proto::envelope::Envelope;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};

use super::index::Index;
use super::{
    AgentRecord, CredentialRecord, DeliveryRow, JobRecord, PendingRewrap, ReceiptKind, RelayStore,
    RenewalRecord, StateError, StateResult,
};
use crate::alerts::Alert;
use tessera_proto::audit::{next_entry, AuditEntry};

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
    agent_cache: Decoded<AgentId, AgentRecord>,
    credential_cache: Decoded<CredentialId, CredentialRecord>,
}

/// Decoded records kept in memory, so the rewrap path does not parse the same JSON (certificates, signed
/// statements) at every step. Coherent because this process is the store's only writer (sled holds the directory's
/// lock) and every write here updates it. A poisoned lock only skips the cache.
struct Decoded<K, V>(Mutex<HashMap<K, V>>);

impl<K: Eq + Hash + Clone, V: Clone> Decoded<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get_or(
        &self,
        key: &K,
        load: impl FnOnce() -> StateResult<Option<V>>,
    ) -> StateResult<Option<V>> {
        if let Some(v) = self.0.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(v));
        }
        let v = load()?;
        if let (Some(v), Ok(mut m)) = (&v, self.0.lock()) {
            m.insert(key.clone(), v.clone());
        }
        Ok(v)
    }

    fn set(&self, key: &K, v: &V) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.clone(), v.clone());
        }
    }
}

impl<K, V> std::fmt::Debug for Decoded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded")
    }
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

fn put<T: Serialize>(tree: &sled::Tree, key: &[u8], v: &T) -> StateResult<()> {
    tree.insert(key, enc(v)?).map_err(|e| backend(&e))?;
    Ok(())
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

#[derive(Serialize, Deserialize)]
struct StoredEnvelope {
    envelope: Envelope,
    key: [u8; 32],
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
    fn put_agent(&self, agent: &AgentRecord) -> StateResult<()> {
        put(&self.agents, agent.id.as_str().as_bytes(), agent)?;
        self.agent_cache.set(&agent.id, agent);
        Ok(())
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
    fn put_credential(&self, c: &CredentialRecord) -> StateResult<()> {
        put(&self.credentials, c.id.to_string().as_bytes(), c)?;
        self.credential_cache.set(&c.id, c);
        if c.deleted {
            // Only the live credential keeps the name.
            if self
                .names
                .get(c.name.as_str())
                .map_err(|e| backend(&e))?
                .as_deref()
                == Some(c.id.to_string().as_bytes())
            {
                self.names
                    .remove(c.name.as_str())
                    .map_err(|e| backend(&e))?;
            }
        } else {
            self.names
                .insert(c.name.as_str(), c.id.to_string().as_bytes())
                .map_err(|e| backend(&e))?;
        }
        Ok(())
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
    fn put_delivery(&self, row: &DeliveryRow) -> StateResult<()> {
        put(
            &self.deliveries,
            &by_credential(&row.credential, &row.agent),
            row,
        )?;
        self.rows_of_agent.add(&row.agent, row.credential);
        Ok(())
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
    ) -> StateResult<Option<(Envelope, [u8; 32])>> {
        let key = format!("{credential}|{version}|{}", agent.as_str());
        Ok(get::<StoredEnvelope>(&self.envelopes, key.as_bytes())?.map(|s| (s.envelope, s.key)))
    }
    fn put_envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
        envelope: &Envelope,
        key: [u8; 32],
    ) -> StateResult<()> {
        let k = format!("{credential}|{version}|{}", agent.as_str());
        put(
            &self.envelopes,
            k.as_bytes(),
            &StoredEnvelope {
                envelope: envelope.clone(),
                key,
            },
        )
    }

    fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>> {
        get(&self.pending, &by_request(request_id))
    }
    fn put_pending(&self, p: &PendingRewrap) -> StateResult<()> {
        put(&self.pending, &by_request(&p.request_id), p)?;
        self.pending_of_target.add(&p.target, p.request_id);
        Ok(())
    }
    fn remove_pending(&self, request_id: &uuid::Uuid) -> StateResult<()> {
        let Some(p) = self.pending(request_id)? else {
            return Ok(());
        };
        self.pending
            .remove(by_request(request_id))
            .map_err(|e| backend(&e))?;
        self.pending_of_target.remove(&p.target, request_id);
        Ok(())
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
    fn block(&self, credential: &CredentialId, peer: &AgentId, until_ms: u64) -> StateResult<()> {
        put(
            &self.blocklist,
            &pair(&credential.to_string(), peer.as_str()),
            &until_ms,
        )
    }

    fn alert(&self, key: &str) -> StateResult<Option<Alert>> {
        get(&self.alerts, key.as_bytes())
    }
    fn put_alert(&self, key: &str, alert: &Alert) -> StateResult<()> {
        put(&self.alerts, key.as_bytes(), alert)
    }
    fn alerts(&self) -> StateResult<Vec<Alert>> {
        all(&self.alerts, b"")
    }

    fn append_audit(
        &self,
        at_ms: u64,
        kind: &str,
        link: Option<u64>,
        data: BTreeMap<String, String>,
    ) -> StateResult<AuditEntry> {
        // A poisoned lock: a panic mid-append left the tail as it was before that append (it is replaced only
        // after the entry is stored), so it is still the right link.
        let mut tail = self
            .audit_tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = next_entry(tail.as_ref(), at_ms, kind, link, data);
        // Append-only: compare-and-swap from empty, so an existing sequence number is never overwritten.
        self.audit
            .compare_and_swap(
                entry.seq.to_be_bytes(),
                None as Option<&[u8]>,
                Some(enc(&entry)?),
            )
            .map_err(|e| backend(&e))?
            .map_err(|_| StateError::Backend("audit sequence already taken".into()))?;
        *tail = Some(entry.clone());
        Ok(entry)
    }
    fn audit(&self) -> StateResult<Vec<AuditEntry>> {
        all(&self.audit, b"")
    }

    fn put_job(&self, job: &JobRecord) -> StateResult<()> {
        put(&self.jobs, job.id.as_bytes(), job)
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
    fn put_revocations(
        &self,
        list: &tessera_proto::statement::Signed<tessera_proto::statement::RevocationList>,
    ) -> StateResult<()> {
        put(&self.meta, b"revocations", list)
    }

    fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<tessera_proto::receipt::Receipt>> {
        get(&self.receipts, &receipt_key(credential, agent, kind))
    }
    fn put_receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
        receipt: &tessera_proto::receipt::Receipt,
    ) -> StateResult<()> {
        put(
            &self.receipts,
            &receipt_key(credential, agent, kind),
            receipt,
        )
    }

    fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>> {
        get(&self.renewals, agent.as_str().as_bytes())
    }
    fn put_renewal(&self, r: &RenewalRecord) -> StateResult<()> {
        put(&self.renewals, r.agent.as_str().as_bytes(), r)
    }
    fn renewals(&self) -> StateResult<Vec<RenewalRecord>> {
        all(&self.renewals, b"")
    }

    fn flush(&self) -> StateResult<()> {
        self.db.flush().map(|_| ()).map_err(|e| backend(&e))
    }
}

#[cfg(test)]
mod tests;
