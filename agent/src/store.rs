//! The agent's encrypted store.
//!
//! Every record is AES-256-GCM under one generation of the store key with its key, version and generation as
//! associated data ([`record`]); during a store-key rotation the retiring generation stays loaded decrypt-only
//! ([`keyring`]) until [`Store::reencrypt_batch`] has moved every record to the active one. Every write goes through
//! one commit path that serializes writers and re-seals an operation sealed under a generation that was retired
//! meanwhile. The key-value backend is sled behind a small trait ([`backend`]). What is kept:
//! - `self/*`: the agent's id, identity and wrap keys, certificate, pinned org CA, revocation list, the wrap key
//!   fingerprint it last registered with, and a key rotation's state, green keys, renewal request and certificate,
//!   and the old wrap key kept decrypt-only after one (written together per step: [`Store::apply_self`]);
//! - `cred/<id>` (record version = credential version), `hwm/<id>` (newest version accepted: the rollback guard) and
//!   `name/<name>` (the name's binding to the first credential id accepted under it), written together in one
//!   atomic batch. A binding is never moved: a credential of another id under a bound name is refused
//!   ([`StoreError::NameBound`]) with nothing written;
//! - `deleted/<id>` (record version = the last version an operator-signed tombstone deleted): written by
//!   [`Store::purge`] in one atomic batch that removes `cred/<id>`, `hwm/<id>`, `flag/<id>` and releases the
//!   `name/<name>` binding if it is this id's; no version up to it is ever accepted again
//!   ([`StoreError::Deleted`]). This is the only rule that moves a name binding. A scope revoke purges the same way
//!   but writes `revoked/<id>` instead (record version = the scope revision that left the agent out, value = the
//!   credential version): a statement up to that version and revision is not accepted again, a later one is;
//! - `flag/<id>`: a held credential whose statement's signer was revoked since it was accepted (written in one batch
//!   with the revocation list that caused it; removed when a newer version is accepted);
//! - `audit/<seq>`: a bounded log of local reads;
//! - `job/<uuid>`: the job ids run or refused, until their expiry ([`jobs_seen`]).
//!
//! [`Store::accept`] flushes before it returns: a caller may acknowledge a credential as stored only after it.
//! Opening with the wrong key fails on the `meta/check` record with [`StoreError::WrongKey`]; any other record
//! that does not open is [`StoreError::Corrupt`] naming it.

mod audit;
mod backend;
mod credential;
pub mod jobs_seen;
mod keyring;
mod record;
mod reencrypt;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, Signed};
use tessera_proto::wire::Held;
use zeroize::Zeroizing;

pub use audit::{AuditEntry, AuditOutcome};
pub use backend::BackendError;
pub use credential::{CredentialFlag, CredentialMeta, CredentialStatus, StoredCredential};
pub use jobs_seen::{Admission, SeenJobs};
pub use keyring::StoreKeys;
pub use reencrypt::Reencrypted;

use backend::{BatchOp, RecordBackend, SledBackend};
use keyring::Keyring;
use record::RecordFault;

/// A record's version and plaintext.
type Opened = (u64, Zeroizing<Vec<u8>>);

const CHECK_KEY: &[u8] = b"meta/check";
const CHECK_VALUE: &[u8] = b"tessera-agent-store/v1";
const CRED: &str = "cred/";
const HWM: &str = "hwm/";
const NAME: &str = "name/";
const FLAG: &str = "flag/";
const DELETED: &str = "deleted/";
const REVOKED: &str = "revoked/";
const AUDIT: &[u8] = b"audit/";

/// The agent's own records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelfRecord {
    /// The agent id (UTF-8).
    AgentId,
    /// Identity key, PKCS#8 DER.
    IdentityKey,
    /// Wrap key, PKCS#8 DER.
    WrapKey,
    /// The pinned org CA certificate, DER.
    OrgCa,
    /// The agent's certificate, DER.
    Certificate,
    /// The newest verified revocation list (signed JSON).
    Revocations,
    /// Fingerprint of the wrap key in the last successful registration.
    RegisteredWrapKey,
    /// The key rotation's state ([`crate::rotation::Rotation`], JSON).
    Rotation,
    /// During a rotation: the new (green) identity key, PKCS#8 DER.
    GreenIdentityKey,
    /// During a rotation: the new (green) wrap key, PKCS#8 DER.
    GreenWrapKey,
    /// During a rotation: the renewal request sent (JSON).
    RenewalRequest,
    /// During a rotation: the certificate the CA issued for the green keys, DER.
    GreenCertificate,
    /// After a rotation, until the old certificate is revoked or expires: the old (blue) wrap key, kept to open
    /// envelopes sealed to it (decrypt only), PKCS#8 DER.
    PreviousWrapKey,
}

impl SelfRecord {
    fn key(self) -> &'static [u8] {
        match self {
            Self::AgentId => b"self/agent_id",
            Self::IdentityKey => b"self/identity_key",
            Self::WrapKey => b"self/wrap_key",
            Self::OrgCa => b"self/org_ca",
            Self::Certificate => b"self/certificate",
            Self::Revocations => b"self/revocations",
            Self::RegisteredWrapKey => b"self/registered_wrap_key",
            Self::Rotation => b"self/rotation",
            Self::GreenIdentityKey => b"self/green_identity_key",
            Self::GreenWrapKey => b"self/green_wrap_key",
            Self::RenewalRequest => b"self/renewal_request",
            Self::GreenCertificate => b"self/green_certificate",
            Self::PreviousWrapKey => b"self/previous_wrap_key",
        }
    }
}

/// A credential version to accept, already verified by the target role.
#[derive(Debug)]
pub struct NewCredential {
    /// The verified statement.
    pub statement: CredentialStatement,
    /// Its signed form.
    pub signed: Signed<CredentialStatement>,
    /// The plaintext whose commitment matched.
    pub payload: SecretPayload,
}

/// Store errors. Record names (`cred/<uuid>`, `self/...`) are not secret and are always given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed or is locked.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The store key does not open this store.
    #[error("the store key does not open this store (wrong key file, or the sealed key belongs to another store)")]
    WrongKey,
    /// A record did not open or decode.
    #[error("store record {record} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        record: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A credential record is older than the newest version accepted for it.
    #[error("store record {record} was rolled back: it holds version {found}, the store accepted {expected}")]
    RolledBack {
        /// The record's key.
        record: String,
        /// Version found.
        found: u64,
        /// Version expected.
        expected: u64,
    },
    /// A version older than the newest accepted was offered.
    #[error("credential {credential} version {offered} is older than the accepted version {held}")]
    Stale {
        /// The credential.
        credential: CredentialId,
        /// Version offered.
        offered: u64,
        /// Newest accepted.
        held: u64,
    },
    /// The name is bound on this agent to another credential id.
    #[error("credential name {name} is bound to credential {bound}; credential {offered} is refused under it")]
    NameBound {
        /// The name.
        name: String,
        /// The id it is bound to.
        bound: CredentialId,
        /// The id offered.
        offered: CredentialId,
    },
    /// An operator-signed tombstone deleted this credential version on this agent.
    #[error("credential {credential} version {offered} was deleted on this agent (through version {through})")]
    Deleted {
        /// The credential.
        credential: CredentialId,
        /// Version offered.
        offered: u64,
        /// The last version deleted.
        through: u64,
    },
    /// The credential is quarantined (its statement's signer was revoked) and is not served.
    #[error(
        "credential {name} is quarantined: the operator certificate that signed it was revoked"
    )]
    Quarantined {
        /// The name.
        name: String,
    },
    /// The store key is not 32 bytes, or a record could not be encoded.
    #[error("store: {0}")]
    Internal(&'static str),
}

impl StoreError {
    /// Whether the store refused what it was given (a stale version, a name bound to another id, a deleted
    /// version), as opposed to failing (the backend, the key, a corrupt record).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Stale { .. } | Self::NameBound { .. } | Self::Deleted { .. }
        )
    }
}

/// The encrypted store. Cheap to clone; all clones share one database.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Box<dyn RecordBackend>,
    keys: RwLock<Keyring>,
    /// Held while a batch is applied: writers are serialized with the re-encryption of a rotation, so a record is
    /// never overwritten with an older copy, and never written under a retired generation.
    commit: Mutex<()>,
    /// How far the re-encryption pass of a rotation has gone (the last key it looked at).
    reencrypt_cursor: Mutex<Option<Vec<u8>>>,
    audit: Mutex<AuditCursor>,
    audit_max: u64,
    quarantine: AtomicBool,
}

#[derive(Debug)]
struct AuditCursor {
    next: u64,
    oldest: u64,
}

fn record_name(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn fault(key: &[u8], f: RecordFault) -> StoreError {
    StoreError::Corrupt {
        record: record_name(key),
        reason: match f {
            RecordFault::Malformed => "malformed record",
            RecordFault::Authentication => {
                "does not authenticate (altered, or moved from another record)"
            }
            RecordFault::UnknownGeneration(_) => {
                "encrypted under a store key generation that is not loaded"
            }
        },
    }
}

/// A credential id stored as text (in a record key after its prefix, or as a name index value).
fn parse_id(record: &[u8], text: Option<&[u8]>) -> Result<CredentialId, StoreError> {
    text.and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|s| s.parse::<CredentialId>().ok())
        .ok_or_else(|| StoreError::Corrupt {
            record: record_name(record),
            reason: "not a credential id",
        })
}

fn cred_key(id: &CredentialId) -> Vec<u8> {
    format!("{CRED}{id}").into_bytes()
}
fn hwm_key(id: &CredentialId) -> Vec<u8> {
    format!("{HWM}{id}").into_bytes()
}
fn name_key(name: &CredentialName) -> Vec<u8> {
    format!("{NAME}{}", name.as_str()).into_bytes()
}
fn flag_key(id: &CredentialId) -> Vec<u8> {
    format!("{FLAG}{id}").into_bytes()
}
fn deleted_key(id: &CredentialId) -> Vec<u8> {
    format!("{DELETED}{id}").into_bytes()
}
fn revoked_key(id: &CredentialId) -> Vec<u8> {
    format!("{REVOKED}{id}").into_bytes()
}

/// Why a credential is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeKind {
    /// An operator-signed tombstone: every version up to the one purged is refused from then on.
    Deleted,
    /// A newer signed scope leaves this agent out (at this scope revision): a statement up to this version and
    /// revision is refused from then on; a later version or revision (a grant) is accepted.
    Revoked {
        /// The scope revision that left the agent out.
        scope_revision: u64,
    },
}

/// What [`Store::purge`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// The version that was held, if any.
    pub held: Option<u64>,
    /// Whether the name binding pointed at this id and was released.
    pub released_name: bool,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with one store key (generation 1), keeping at most
    /// `audit_max` audit entries.
    pub fn open(path: &Path, store_key: &SecretBytes, audit_max: u64) -> Result<Self, StoreError> {
        Self::open_keys(path, &StoreKeys::single(1, store_key.clone()), audit_max)
    }

    /// Opens (creating if needed) the store at `path` with the store key generations in `keys`.
    pub fn open_keys(path: &Path, keys: &StoreKeys, audit_max: u64) -> Result<Self, StoreError> {
        let keyring = Keyring::new(keys).ok_or(StoreError::Internal(
            "store keys must be 32 bytes and of two generations",
        ))?;
        let backend: Box<dyn RecordBackend> = Box::new(SledBackend::open(path)?);
        if let Some(rec) = backend.get(CHECK_KEY)? {
            match keyring.open(CHECK_KEY, &rec) {
                Ok((_, v)) if v.as_slice() == CHECK_VALUE => {}
                Ok(_) | Err(RecordFault::Authentication | RecordFault::UnknownGeneration(_)) => {
                    return Err(StoreError::WrongKey)
                }
                Err(f) => return Err(fault(CHECK_KEY, f)),
            }
        } else {
            let rec = keyring
                .seal(CHECK_KEY, 0, CHECK_VALUE)
                .ok_or(StoreError::Internal("seal check record"))?;
            backend.apply(vec![(CHECK_KEY.to_vec(), Some(rec))])?;
            backend.flush()?;
        }
        let seq_of = |k: Vec<u8>| -> u64 {
            let mut b = [0u8; 8];
            if let Some(tail) = k.get(AUDIT.len()..AUDIT.len() + 8) {
                b.copy_from_slice(tail);
            }
            u64::from_be_bytes(b)
        };
        let first = backend
            .scan_prefix(AUDIT)?
            .into_iter()
            .next()
            .map(|(k, _)| seq_of(k));
        let last = backend.last_key(AUDIT)?.map(seq_of);
        let cursor = AuditCursor {
            next: last.map_or(0, |l| l + 1),
            oldest: first.unwrap_or(0),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                keys: RwLock::new(keyring),
                commit: Mutex::new(()),
                reencrypt_cursor: Mutex::new(None),
                audit: Mutex::new(cursor),
                audit_max: audit_max.max(1),
                quarantine: AtomicBool::new(false),
            }),
        })
    }

    /// Whether flagged credentials (signer revoked) are quarantined: refused by [`Store::credential_by_name`] and
    /// reported `quarantined`. Off by default (`[store] quarantine_revoked_signers`).
    pub fn set_quarantine_revoked_signers(&self, on: bool) {
        self.inner.quarantine.store(on, Ordering::Relaxed);
    }

    /// See [`Store::set_quarantine_revoked_signers`].
    pub fn quarantines_revoked_signers(&self) -> bool {
        self.inner.quarantine.load(Ordering::Relaxed)
    }

    /// The commit lock: held by every write (see [`Store::commit`]) and by each step of a store-key rotation.
    fn serialized(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.inner
            .commit
            .lock()
            .map_err(|_| StoreError::Internal("store commit lock poisoned"))
    }

    /// The loaded keys, to change them (under [`Store::serialized`]).
    fn keyring_mut(&self) -> Result<std::sync::RwLockWriteGuard<'_, Keyring>, StoreError> {
        self.inner
            .keys
            .write()
            .map_err(|_| StoreError::Internal("store keys poisoned"))
    }

    fn keyring(&self) -> Result<std::sync::RwLockReadGuard<'_, Keyring>, StoreError> {
        self.inner
            .keys
            .read()
            .map_err(|_| StoreError::Internal("store keys poisoned"))
    }

    fn seal(&self, key: &[u8], version: u64, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.keyring()?
            .seal(key, version, plain)
            .ok_or(StoreError::Internal("record too large to seal"))
    }

    /// Opens a record read from the backend under `key`.
    fn open_raw(&self, key: &[u8], record: &[u8]) -> Result<Opened, StoreError> {
        self.keyring()?.open(key, record).map_err(|f| fault(key, f))
    }

    fn open_record(&self, key: &[u8]) -> Result<Option<Opened>, StoreError> {
        match self.inner.backend.get(key)? {
            None => Ok(None),
            Some(rec) => self.open_raw(key, &rec).map(Some),
        }
    }

    /// Applies `ops` atomically (the one write path): under the commit lock, an operation sealed under a generation
    /// that stopped being the active one since (a rotation began meanwhile) is re-sealed under the active one first.
    fn commit(&self, mut ops: Vec<BatchOp>) -> Result<(), StoreError> {
        let _serial = self.serialized()?;
        let keys = self.keyring()?;
        for (key, value) in &mut ops {
            if let Some(rec) = value.as_mut().filter(|r| keys.is_stale(r)) {
                *rec = keys.reseal(key, rec).map_err(|f| fault(key, f))?;
            }
        }
        drop(keys);
        self.inner.backend.apply(ops)?;
        Ok(())
    }

    /// [`Store::commit`] then flush.
    fn commit_durable(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.commit(ops)?;
        self.inner.backend.flush()?;
        Ok(())
    }

    /// Reads one of the agent's own records.
    pub fn get_self(&self, item: SelfRecord) -> Result<Option<SecretBytes>, StoreError> {
        Ok(self
            .open_record(item.key())?
            .map(|(_, v)| SecretBytes::copy_from(&v)))
    }

    /// Writes several of the agent's own records atomically and flushes.
    pub fn put_self(&self, items: &[(SelfRecord, &[u8])]) -> Result<(), StoreError> {
        let ops = items
            .iter()
            .map(|(item, bytes)| Ok((item.key().to_vec(), Some(self.seal(item.key(), 0, bytes)?))))
            .collect::<Result<Vec<BatchOp>, StoreError>>()?;
        self.commit_durable(ops)?;
        Ok(())
    }

    /// Writes (`Some`) and removes (`None`) several of the agent's own records in one atomic batch, and flushes:
    /// each step of a key rotation is one such batch, so a crash leaves the rotation at one step or the next.
    pub fn apply_self(&self, items: &[(SelfRecord, Option<&[u8]>)]) -> Result<(), StoreError> {
        let ops = items
            .iter()
            .map(|(item, bytes)| {
                Ok((
                    item.key().to_vec(),
                    match bytes {
                        Some(b) => Some(self.seal(item.key(), 0, b)?),
                        None => None,
                    },
                ))
            })
            .collect::<Result<Vec<BatchOp>, StoreError>>()?;
        self.commit_durable(ops)?;
        Ok(())
    }

    /// The newest version accepted for `id`.
    pub fn newest_version(&self, id: &CredentialId) -> Result<Option<u64>, StoreError> {
        Ok(self.open_record(&hwm_key(id))?.map(|(v, _)| v))
    }

    /// The credential `id`, checked against the rollback guard.
    pub fn credential(&self, id: &CredentialId) -> Result<Option<StoredCredential>, StoreError> {
        let key = cred_key(id);
        let Some((version, plain)) = self.open_record(&key)? else {
            return Ok(None);
        };
        let expected = self.newest_version(id)?.unwrap_or(0);
        if version != expected {
            return Err(StoreError::RolledBack {
                record: record_name(&key),
                found: version,
                expected,
            });
        }
        let cred = credential::decode(&plain).map_err(|reason| StoreError::Corrupt {
            record: record_name(&key),
            reason,
        })?;
        if cred.statement.credential_id != *id || cred.statement.version != version {
            return Err(StoreError::Corrupt {
                record: record_name(&key),
                reason: "statement does not match the record",
            });
        }
        let mut cred = cred;
        if self.flag(id)?.is_some() {
            cred.status = if self.quarantines_revoked_signers() {
                CredentialStatus::Quarantined
            } else {
                CredentialStatus::SignerRevoked
            };
        }
        Ok(Some(cred))
    }

    /// The last version of `id` an operator-signed tombstone deleted on this agent, if any.
    pub fn deleted_through(&self, id: &CredentialId) -> Result<Option<u64>, StoreError> {
        Ok(self.open_record(&deleted_key(id))?.map(|(v, _)| v))
    }

    /// The (credential version, scope revision) a signed scope revoke left this agent out at, if any.
    pub fn revoked_at(&self, id: &CredentialId) -> Result<Option<(u64, u64)>, StoreError> {
        let key = revoked_key(id);
        let Some((revision, plain)) = self.open_record(&key)? else {
            return Ok(None);
        };
        let bytes = <[u8; 8]>::try_from(plain.as_slice()).map_err(|_| StoreError::Corrupt {
            record: record_name(&key),
            reason: "not a version",
        })?;
        Ok(Some((u64::from_be_bytes(bytes), revision)))
    }

    /// Forgets credential `id` (named `name` in the verified tombstone or statement) through `version`, in one
    /// atomic batch, flushed before it returns: the record, its rollback guard and flag are removed, the `name`
    /// binding is released if it is this id's, and a `deleted/<id>` or `revoked/<id>` marker written (see
    /// [`PurgeKind`]). A held version newer than `version` is kept: the operator did not sign it away
    /// ([`StoreError::Stale`], nothing written).
    pub fn purge(
        &self,
        id: &CredentialId,
        name: &CredentialName,
        version: u64,
        kind: PurgeKind,
    ) -> Result<Purged, StoreError> {
        let held = self.newest_version(id)?;
        if let Some(h) = held.filter(|h| *h > version) {
            return Err(StoreError::Stale {
                credential: *id,
                offered: version,
                held: h,
            });
        }
        let mut ops: Vec<BatchOp> = vec![
            (cred_key(id), None),
            (hwm_key(id), None),
            (flag_key(id), None),
        ];
        let released_name = self.name_binding(name)? == Some(*id);
        if released_name {
            ops.push((name_key(name), None));
        }
        match kind {
            PurgeKind::Deleted => {
                let through = self.deleted_through(id)?.unwrap_or(0).max(version);
                let dk = deleted_key(id);
                ops.push((dk.clone(), Some(self.seal(&dk, through, &[])?)));
            }
            PurgeKind::Revoked { scope_revision } => {
                let rk = revoked_key(id);
                ops.push((
                    rk.clone(),
                    Some(self.seal(&rk, scope_revision, &version.to_be_bytes())?),
                ));
            }
        }
        self.commit_durable(ops)?;
        Ok(Purged {
            held,
            released_name,
        })
    }

    /// The credential id `name` is bound to on this agent, if any.
    pub fn name_binding(&self, name: &CredentialName) -> Result<Option<CredentialId>, StoreError> {
        let key = name_key(name);
        let Some((_, plain)) = self.open_record(&key)? else {
            return Ok(None);
        };
        parse_id(&key, Some(&plain)).map(Some)
    }

    /// The credential bound to `name`, for a workload: a quarantined one is [`StoreError::Quarantined`].
    pub fn credential_by_name(
        &self,
        name: &CredentialName,
    ) -> Result<Option<StoredCredential>, StoreError> {
        match self.lookup_by_name(name)? {
            Some(c) if c.status == CredentialStatus::Quarantined => Err(StoreError::Quarantined {
                name: name.as_str().to_owned(),
            }),
            other => Ok(other),
        }
    }

    /// The credential bound to `name`, whatever its status (metadata; never to serve a secret).
    pub fn lookup_by_name(
        &self,
        name: &CredentialName,
    ) -> Result<Option<StoredCredential>, StoreError> {
        match self.name_binding(name)? {
            Some(id) => self.credential(&id),
            None => Ok(None),
        }
    }

    /// The flag on a held credential, if any.
    pub fn flag(&self, id: &CredentialId) -> Result<Option<CredentialFlag>, StoreError> {
        let key = flag_key(id);
        let Some((_, plain)) = self.open_record(&key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                record: record_name(&key),
                reason: "not a credential flag",
            })
    }

    /// Adopts a newer revocation list (its signed JSON) and, in the same atomic batch, sets the flags of the held
    /// credentials: exactly those in `flagged` are flagged afterwards. Flushes.
    pub fn apply_revocations(
        &self,
        list_json: &[u8],
        list_serial: u64,
        flagged: &[CredentialId],
        now: i64,
    ) -> Result<(), StoreError> {
        let item = SelfRecord::Revocations;
        let mut ops: Vec<BatchOp> = vec![(
            item.key().to_vec(),
            Some(self.seal(item.key(), 0, list_json)?),
        )];
        for (key, _) in self.inner.backend.scan_prefix(FLAG.as_bytes())? {
            let id = parse_id(&key, key.get(FLAG.len()..))?;
            if !flagged.contains(&id) {
                ops.push((key, None));
            }
        }
        for id in flagged {
            if self.flag(id)?.is_some() {
                continue;
            }
            let flag = CredentialFlag {
                reason: tessera_proto::wire::FlagReason::SignerRevoked,
                list_serial,
                at: now,
            };
            let json =
                serde_json::to_vec(&flag).map_err(|_| StoreError::Internal("encode flag"))?;
            let key = flag_key(id);
            ops.push((key.clone(), Some(self.seal(&key, 0, &json)?)));
        }
        self.commit_durable(ops)?;
        Ok(())
    }

    /// Metadata of every credential held.
    pub fn list(&self) -> Result<Vec<CredentialMeta>, StoreError> {
        let mut out = Vec::new();
        for (key, _) in self.inner.backend.scan_prefix(CRED.as_bytes())? {
            let id = parse_id(&key, key.get(CRED.len()..))?;
            if let Some(c) = self.credential(&id)? {
                out.push(c.meta());
            }
        }
        Ok(out)
    }

    /// What the agent holds, for a warm reconnect (from the rollback guard records; no plaintext is opened).
    pub fn held(&self) -> Result<Vec<Held>, StoreError> {
        let mut out = Vec::new();
        for (key, rec) in self.inner.backend.scan_prefix(HWM.as_bytes())? {
            let (version, _) = self.open_raw(&key, &rec)?;
            let id = parse_id(&key, key.get(HWM.len()..))?;
            out.push(Held {
                credential_id: id,
                version,
            });
        }
        Ok(out)
    }

    /// Stores `batch` as [`Store::accept`] does (one atomic batch, one flush) when every item is accepted; when the
    /// batch is refused for an item ([`StoreError::is_refusal`]), stores each item on its own, so that one refused
    /// item refuses only itself: one result per item, in order. Any other failure (the backend, the key) is the
    /// batch's error, with nothing written.
    pub fn accept_each(
        &self,
        batch: &[NewCredential],
        now: i64,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        match self.accept(batch, now) {
            Ok(()) => Ok(batch.iter().map(|_| Ok(())).collect()),
            Err(e) if !e.is_refusal() => Err(e),
            Err(e) if batch.len() == 1 => Ok(vec![Err(e)]),
            Err(_) => Ok(batch
                .iter()
                .map(|c| self.accept(std::slice::from_ref(c), now))
                .collect()),
        }
    }

    /// Stores verified credential versions in one atomic batch and flushes; only then may they be acknowledged.
    ///
    /// Refuses (with nothing written) a version older than the newest accepted, and a credential whose name is
    /// bound to another id (in the store or earlier in the batch), and a version a tombstone deleted. An equal version replaces the record (the
    /// caller has checked its commitment equals the held one). The name binding, the rollback guard and the record
    /// are one atomic batch; a newer version clears the credential's flag in it.
    pub fn accept(&self, batch: &[NewCredential], now: i64) -> Result<(), StoreError> {
        let mut ops: Vec<BatchOp> = Vec::with_capacity(batch.len() * 4);
        let mut names: Vec<(&CredentialName, CredentialId)> = Vec::with_capacity(batch.len());
        let mut ids: Vec<(CredentialId, u64)> = Vec::with_capacity(batch.len());
        for c in batch {
            let id = c.statement.credential_id;
            let version = c.statement.version;
            let name = &c.statement.name;
            let bound = match names.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => Some(*b),
                None => self.name_binding(name)?,
            };
            if let Some(bound) = bound.filter(|b| *b != id) {
                return Err(StoreError::NameBound {
                    name: name.as_str().to_owned(),
                    bound,
                    offered: id,
                });
            }
            names.push((name, id));
            // The same credential twice in one batch: only a newer version after an older one (the later record
            // replaces the earlier in the batch's order); never a rollback within the batch.
            if let Some((_, earlier)) = ids.iter().rev().find(|(i, _)| *i == id) {
                if version <= *earlier {
                    return Err(StoreError::Stale {
                        credential: id,
                        offered: version,
                        held: *earlier,
                    });
                }
            }
            ids.push((id, version));
            if let Some(through) = self.deleted_through(&id)?.filter(|d| version <= *d) {
                return Err(StoreError::Deleted {
                    credential: id,
                    offered: version,
                    through,
                });
            }
            let held = self.newest_version(&id)?;
            if let Some(held) = held {
                if version < held {
                    return Err(StoreError::Stale {
                        credential: id,
                        offered: version,
                        held,
                    });
                }
            }
            if held.is_some_and(|h| version > h) {
                ops.push((flag_key(&id), None));
            }
            ops.push((revoked_key(&id), None));
            let plain = credential::encode(&c.signed, now, &c.payload)
                .ok_or(StoreError::Internal("encode credential"))?;
            let ck = cred_key(&id);
            let rec = plain.expose(|p| self.seal(&ck, version, p))?;
            let hk = hwm_key(&id);
            let nk = name_key(&c.statement.name);
            ops.push((hk.clone(), Some(self.seal(&hk, version, &[])?)));
            ops.push((
                nk.clone(),
                Some(self.seal(&nk, 0, id.to_string().as_bytes())?),
            ));
            ops.push((ck, Some(rec)));
        }
        self.commit_durable(ops)?;
        Ok(())
    }

    /// Replaces the statement of a held version with a newer scope revision of the same version (a grant or revoke
    /// the peer learned from a rewrap request). The payload is kept.
    pub fn update_statement(
        &self,
        existing: &StoredCredential,
        signed: &Signed<CredentialStatement>,
        statement: &CredentialStatement,
    ) -> Result<(), StoreError> {
        let id = statement.credential_id;
        let plain = credential::encode(signed, existing.stored_at, &existing.payload)
            .ok_or(StoreError::Internal("encode credential"))?;
        let ck = cred_key(&id);
        let rec = plain.expose(|p| self.seal(&ck, statement.version, p))?;
        self.commit_durable(vec![(ck, Some(rec))])?;
        Ok(())
    }

    /// Appends an audit entry, dropping the oldest beyond the bound. Durable within sled's flush interval.
    pub fn audit(&self, mut entry: AuditEntry) -> Result<(), StoreError> {
        let mut cursor = self
            .inner
            .audit
            .lock()
            .map_err(|_| StoreError::Internal("audit cursor poisoned"))?;
        entry.seq = cursor.next;
        let mut key = AUDIT.to_vec();
        key.extend_from_slice(&entry.seq.to_be_bytes());
        let json =
            serde_json::to_vec(&entry).map_err(|_| StoreError::Internal("encode audit entry"))?;
        let mut ops = vec![(key.clone(), Some(self.seal(&key, 0, &json)?))];
        while cursor.next + 1 - cursor.oldest > self.inner.audit_max {
            let mut old = AUDIT.to_vec();
            old.extend_from_slice(&cursor.oldest.to_be_bytes());
            ops.push((old, None));
            cursor.oldest += 1;
        }
        self.commit(ops)?;
        cursor.next += 1;
        Ok(())
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner
            .backend
            .scan_prefix(AUDIT)?
            .into_iter()
            .map(|(k, rec)| {
                let (_, plain) = self.open_raw(&k, &rec)?;
                serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt {
                    record: "audit entry".to_owned(),
                    reason: "not valid JSON",
                })
            })
            .collect()
    }

    /// [`Store::audit`], then flushed: for refusals of what the relay sent, which must survive a crash that follows.
    pub fn audit_durable(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.audit(entry)?;
        self.flush()
    }

    /// Flushes everything (audit included).
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(self.inner.backend.flush()?)
    }

    #[cfg(test)]
    fn raw(&self) -> &dyn RecordBackend {
        self.inner.backend.as_ref()
    }
}

#[cfg(test)]
mod tests;
