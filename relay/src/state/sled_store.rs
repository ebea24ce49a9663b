//! The embedded backend: sled trees of JSON records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional as _;
use tessera_proto::envelope::Envelope;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};

use super::{
    AgentRecord, CredentialRecord, DeliveryRow, JobRecord, PendingRewrap, RelayStore, StateError,
    StateResult,
};
use crate::alerts::Alert;
use crate::audit::{next_entry, AuditEntry};

/// sled-backed relay state.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    agents: sled::Tree,
    credentials: sled::Tree,
    names: sled::Tree,
    deliveries: sled::Tree,
    /// The same rows keyed agent first, for per-agent scans.
    agent_deliveries: sled::Tree,
    envelopes: sled::Tree,
    pending: sled::Tree,
    pending_by_target: sled::Tree,
    blocklist: sled::Tree,
    alerts: sled::Tree,
    audit: sled::Tree,
    jobs: sled::Tree,
    meta: sled::Tree,
    audit_lock: Mutex<()>,
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

#[derive(Serialize, Deserialize)]
struct StoredEnvelope {
    envelope: Envelope,
    key: [u8; 32],
}

impl SledStore {
    /// Opens (creating) the state at `path`.
    pub fn open(path: &Path) -> StateResult<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|e| backend(&e))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| backend(&e));
        Ok(Self {
            agents: tree("agents")?,
            credentials: tree("credentials")?,
            names: tree("names")?,
            deliveries: tree("deliveries")?,
            agent_deliveries: tree("agent_deliveries")?,
            envelopes: tree("envelopes")?,
            pending: tree("pending")?,
            pending_by_target: tree("pending_by_target")?,
            blocklist: tree("blocklist")?,
            alerts: tree("alerts")?,
            audit: tree("audit")?,
            jobs: tree("jobs")?,
            meta: tree("meta")?,
            db,
            audit_lock: Mutex::new(()),
        })
    }
}

impl RelayStore for SledStore {
    fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>> {
        get(&self.agents, id.as_str().as_bytes())
    }
    fn put_agent(&self, agent: &AgentRecord) -> StateResult<()> {
        put(&self.agents, agent.id.as_str().as_bytes(), agent)
    }
    fn agents(&self) -> StateResult<Vec<AgentRecord>> {
        all(&self.agents, b"")
    }

    fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>> {
        get(&self.credentials, id.to_string().as_bytes())
    }
    fn credential_by_name(&self, name: &CredentialName) -> StateResult<Option<CredentialRecord>> {
        let Some(id) = self.names.get(name.as_str()).map_err(|e| backend(&e))? else {
            return Ok(None);
        };
        get(&self.credentials, &id)
    }
    fn put_credential(&self, c: &CredentialRecord) -> StateResult<()> {
        put(&self.credentials, c.id.to_string().as_bytes(), c)?;
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
        get(
            &self.deliveries,
            &pair(&credential.to_string(), agent.as_str()),
        )
    }
    fn put_delivery(&self, row: &DeliveryRow) -> StateResult<()> {
        let bytes = enc(row)?;
        let by_cred = pair(&row.credential.to_string(), row.agent.as_str());
        let by_agent = pair(row.agent.as_str(), &row.credential.to_string());
        (&self.deliveries, &self.agent_deliveries)
            .transaction(|(d, a)| {
                d.insert(by_cred.as_slice(), bytes.as_slice())?;
                a.insert(by_agent.as_slice(), bytes.as_slice())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                StateError::Backend(format!("{e:?}"))
            })
    }
    fn deliveries_of_credential(&self, credential: &CredentialId) -> StateResult<Vec<DeliveryRow>> {
        all(&self.deliveries, format!("{credential}|").as_bytes())
    }
    fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>> {
        all(
            &self.agent_deliveries,
            format!("{}|", agent.as_str()).as_bytes(),
        )
    }
    fn deliveries(&self) -> StateResult<Vec<DeliveryRow>> {
        all(&self.deliveries, b"")
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
        get(&self.pending, request_id.as_bytes())
    }
    fn put_pending(&self, p: &PendingRewrap) -> StateResult<()> {
        let bytes = enc(p)?;
        let by_target = pair(p.target.as_str(), &p.request_id.to_string());
        (&self.pending, &self.pending_by_target)
            .transaction(|(all, idx)| {
                all.insert(p.request_id.as_bytes(), bytes.as_slice())?;
                idx.insert(by_target.as_slice(), bytes.as_slice())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                StateError::Backend(format!("{e:?}"))
            })
    }
    fn remove_pending(&self, request_id: &uuid::Uuid) -> StateResult<()> {
        let Some(p) = self.pending(request_id)? else {
            return Ok(());
        };
        let by_target = pair(p.target.as_str(), &p.request_id.to_string());
        (&self.pending, &self.pending_by_target)
            .transaction(|(all, idx)| {
                all.remove(request_id.as_bytes())?;
                idx.remove(by_target.as_slice())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                StateError::Backend(format!("{e:?}"))
            })
    }
    fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>> {
        all(
            &self.pending_by_target,
            format!("{}|", target.as_str()).as_bytes(),
        )
    }
    fn pending_count(&self) -> StateResult<usize> {
        Ok(self.pending.len())
    }
    fn pendings(&self) -> StateResult<Vec<PendingRewrap>> {
        all(&self.pending, b"")
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
        let _guard = self
            .audit_lock
            .lock()
            .map_err(|_| StateError::Backend("audit lock poisoned".into()))?;
        let last: Option<AuditEntry> = match self.audit.last().map_err(|e| backend(&e))? {
            Some((k, v)) => Some(dec(&k, &v)?),
            None => None,
        };
        let entry = next_entry(last.as_ref(), at_ms, kind, link, data);
        // Append-only: compare-and-swap from empty, so an existing sequence number is never overwritten.
        self.audit
            .compare_and_swap(
                entry.seq.to_be_bytes(),
                None as Option<&[u8]>,
                Some(enc(&entry)?),
            )
            .map_err(|e| backend(&e))?
            .map_err(|_| StateError::Backend("audit sequence already taken".into()))?;
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

    fn flush(&self) -> StateResult<()> {
        self.db.flush().map(|_| ()).map_err(|e| backend(&e))
    }
}
