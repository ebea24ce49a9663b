//! The operator's catalogue: what operators of the org have actually signed, kept in the operator directory
//! (`catalogue.json`). Name → credential id, version, scope revision, scope, and the signed statement itself.
//!
//! It is updated only from statements that verify against the operator's copy of the org CA: the ones this
//! workstation signs, and ones another operator signed that the relay serves (adopted when they extend what is
//! known: same id, higher version or scope revision). Every command checks the relay's answers against it before it
//! signs or seals anything; a name that is bound to another id, a version lower than one signed, or two different
//! statements for the same (version, scope revision) is an error naming what the relay claimed and what was signed.
//!
//! A name the catalogue does not know is learnt only on an operator's explicit word (`tessera cred adopt`), trusting
//! the first verified statement seen for it (see docs/threat-model.md, "The operator workstation").

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::statement::{CredentialStatement, Scope, Signed, VerifiedCredential};

use crate::files::{read_json, write_json, FileError};

/// The file name, in the operator directory.
pub const FILE: &str = "catalogue.json";

/// What the catalogue knows of one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The id bound to the name.
    pub id: CredentialId,
    /// The name.
    pub name: CredentialName,
    /// The newest version signed.
    pub version: u64,
    /// Its newest scope revision.
    pub scope_revision: u64,
    /// Its scope at that revision.
    pub scope: Scope,
    /// Who signed that statement.
    pub signer: OperatorId,
    /// SHA-256 (hex) of the signed statement's payload.
    pub digest: String,
    /// The statement itself (salt and commitment are re-signed from here on a re-scope, never from the relay).
    pub statement: Signed<CredentialStatement>,
    /// For each agent an explicit scope named: the newest (version, scope revision) of a statement whose scope
    /// included it. A purge receipt for a revoke must be newer, so a receipt of an earlier revoke (before a grant)
    /// cannot stand for a later one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub included: BTreeMap<AgentId, (u64, u64)>,
    /// The newest (version, scope revision) whose scope was `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_until: Option<(u64, u64)>,
}

impl Entry {
    /// The newest (version, scope revision) known to have included `agent`.
    pub fn last_included(&self, agent: &AgentId) -> Option<(u64, u64)> {
        self.included.get(agent).copied().max(self.all_until)
    }
}

/// A deleted credential: its id is never accepted again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    /// The name it had.
    pub name: CredentialName,
    /// Its last version.
    pub version: u64,
    /// Its last live scope: the agents its purge is counted over (`None` in catalogues written before it was
    /// kept: counted as scope `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// The catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Live credentials by name.
    pub credentials: BTreeMap<CredentialName, Entry>,
    /// Deleted ids.
    #[serde(default)]
    pub deleted: BTreeMap<CredentialId, Deleted>,
    /// Statements this workstation signed and sent whose acceptance the relay has not confirmed (the request
    /// failed, or its answer was lost). Confirmed when the relay serves the same statement; until then the name's
    /// next statement is built on it, so no (version, revision) is ever signed twice.
    #[serde(default)]
    pub pending: BTreeMap<CredentialName, Entry>,
}

/// What [`Catalogue::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A name it did not know.
    New,
    /// A newer version or scope revision of a known credential.
    Newer {
        /// The (version, revision) it had.
        from: (u64, u64),
    },
    /// Exactly the statement it holds.
    Same,
}

/// A statement or a claim that contradicts what was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The file.
    #[error("{0}")]
    File(String),
    /// The name is bound to another id.
    #[error(
        "the relay claims {name} is credential {claimed}, but the catalogue has {name} as credential {signed} \
         (signed by {signer})"
    )]
    NameBound {
        /// The name.
        name: String,
        /// The id claimed.
        claimed: CredentialId,
        /// The id signed.
        signed: CredentialId,
        /// Who signed it.
        signer: String,
    },
    /// The id is known under another name.
    #[error("the relay names credential {id} {claimed}, but it was signed as {signed}")]
    IdRenamed {
        /// The id.
        id: CredentialId,
        /// The name claimed.
        claimed: String,
        /// The name signed.
        signed: String,
    },
    /// An older version or revision than one signed.
    #[error(
        "the relay reports {name} at version {claimed_version} revision {claimed_revision}, older than version \
         {version} revision {revision} that was signed"
    )]
    Older {
        /// The name.
        name: String,
        /// Claimed version.
        claimed_version: u64,
        /// Claimed scope revision.
        claimed_revision: u64,
        /// Signed version.
        version: u64,
        /// Signed scope revision.
        revision: u64,
    },
    /// Another statement with the same version and revision.
    #[error(
        "the relay serves a statement for {name} version {version} revision {revision} that differs from the one \
         signed (digest {claimed} instead of {signed})"
    )]
    Conflicting {
        /// The name.
        name: String,
        /// Version.
        version: u64,
        /// Revision.
        revision: u64,
        /// The relay's digest.
        claimed: String,
        /// The catalogue's.
        signed: String,
    },
    /// A statement at or below one already signed and pending for the name, and different from it.
    #[error(
        "{name} version {version} revision {revision} is already signed and pending; a different statement at or \
         below it is refused"
    )]
    PendingConflict {
        /// The name.
        name: String,
        /// The pending version.
        version: u64,
        /// The pending revision.
        revision: u64,
    },
    /// A deleted id.
    #[error("credential {id} ({name}) was deleted; it is never accepted again")]
    Deleted {
        /// The id.
        id: CredentialId,
        /// Its name.
        name: String,
    },
}

fn entry(
    verified: &VerifiedCredential,
    signed: &Signed<CredentialStatement>,
    previous: Option<&Entry>,
) -> Entry {
    let st = &verified.statement;
    let at = (st.version, st.scope_revision);
    let mut included = previous
        .filter(|p| p.id == st.credential_id)
        .map(|p| p.included.clone())
        .unwrap_or_default();
    let mut all_until = previous
        .filter(|p| p.id == st.credential_id)
        .and_then(|p| p.all_until);
    match &st.scope {
        Scope::All => all_until = all_until.max(Some(at)),
        Scope::Explicit { agents } => {
            for a in agents {
                let e = included.entry(a.clone()).or_insert(at);
                *e = (*e).max(at);
            }
        }
    }
    Entry {
        id: st.credential_id,
        name: st.name.clone(),
        version: st.version,
        scope_revision: st.scope_revision,
        scope: st.scope.clone(),
        signer: st.creator.clone(),
        digest: digest(signed),
        statement: signed.clone(),
        included,
        all_until,
    }
}

/// SHA-256 (hex) of a statement's signed payload.
pub fn digest(signed: &Signed<CredentialStatement>) -> String {
    let d = Sha256::digest(&signed.payload);
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Catalogue {
    /// The catalogue of the operator directory `dir` (empty when it has none yet).
    pub fn load(dir: &Path) -> Result<Self, CatalogueError> {
        read_json(&dir.join(FILE))
            .map(Option::unwrap_or_default)
            .map_err(|e: FileError| CatalogueError::File(e.to_string()))
    }

    /// Writes it into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CatalogueError> {
        write_json(&dir.join(FILE), self).map_err(|e| CatalogueError::File(e.to_string()))
    }

    /// The live credential named `name`, as confirmed by the relay.
    pub fn get(&self, name: &CredentialName) -> Option<&Entry> {
        self.credentials.get(name)
    }

    /// What the next statement for `name` builds on: the newest of the confirmed entry and a pending one.
    pub fn latest(&self, name: &CredentialName) -> Option<&Entry> {
        match (self.credentials.get(name), self.pending.get(name)) {
            (Some(c), Some(p)) if (p.version, p.scope_revision) > (c.version, c.scope_revision) => {
                Some(p)
            }
            (Some(c), _) => Some(c),
            (None, p) => p,
        }
    }

    /// Records a statement about to be sent (see [`Catalogue::pending`]); refused like [`Catalogue::accept`].
    pub fn record_pending(
        &mut self,
        verified: &VerifiedCredential,
        signed: &Signed<CredentialStatement>,
    ) -> Result<(), CatalogueError> {
        self.check(verified, signed)?;
        let st = &verified.statement;
        // Never two different statements pending for one (version, revision), whatever a caller does.
        if let Some(p) = self.pending.get(&st.name) {
            let d = digest(signed);
            if (p.version, p.scope_revision) >= (st.version, st.scope_revision) && p.digest != d {
                return Err(CatalogueError::PendingConflict {
                    name: st.name.as_str().to_owned(),
                    version: p.version,
                    revision: p.scope_revision,
                });
            }
        }
        let previous = self.latest(&verified.statement.name).cloned();
        self.pending.insert(
            verified.statement.name.clone(),
            entry(verified, signed, previous.as_ref()),
        );
        Ok(())
    }

    /// The name of the live credential with id `id`, only when that name's newest entry ([`Catalogue::latest`]) is
    /// that credential: what acts by name (grant, revoke) then acts on this id and no other.
    pub fn live_name_of(&self, id: &CredentialId) -> Option<&CredentialName> {
        let e = self.by_id(id)?;
        self.latest(&e.name)
            .filter(|l| l.id == *id)
            .map(|l| &l.name)
    }

    /// The live credential with id `id`.
    pub fn by_id(&self, id: &CredentialId) -> Option<&Entry> {
        self.credentials
            .values()
            .chain(self.pending.values())
            .find(|e| e.id == *id)
    }

    /// Checks a verified statement against the catalogue without changing it: the change accepting it would be.
    pub fn check(
        &self,
        verified: &VerifiedCredential,
        signed: &Signed<CredentialStatement>,
    ) -> Result<Change, CatalogueError> {
        let st = &verified.statement;
        if let Some(d) = self.deleted.get(&st.credential_id) {
            return Err(CatalogueError::Deleted {
                id: st.credential_id,
                name: d.name.as_str().to_owned(),
            });
        }
        if let Some(other) = self.by_id(&st.credential_id).filter(|e| e.name != st.name) {
            return Err(CatalogueError::IdRenamed {
                id: st.credential_id,
                claimed: st.name.as_str().to_owned(),
                signed: other.name.as_str().to_owned(),
            });
        }
        if let Some(p) = self.pending.get(&st.name) {
            if p.id != st.credential_id {
                return Err(CatalogueError::NameBound {
                    name: st.name.as_str().to_owned(),
                    claimed: st.credential_id,
                    signed: p.id,
                    signer: p.signer.as_str().to_owned(),
                });
            }
            if p.digest == digest(signed) {
                return Ok(Change::Newer {
                    from: self
                        .credentials
                        .get(&st.name)
                        .map_or((0, 0), |e| (e.version, e.scope_revision)),
                });
            }
        }
        let Some(e) = self.credentials.get(&st.name) else {
            return Ok(Change::New);
        };
        if e.id != st.credential_id {
            return Err(CatalogueError::NameBound {
                name: st.name.as_str().to_owned(),
                claimed: st.credential_id,
                signed: e.id,
                signer: e.signer.as_str().to_owned(),
            });
        }
        let ours = (e.version, e.scope_revision);
        let theirs = (st.version, st.scope_revision);
        match theirs.cmp(&ours) {
            std::cmp::Ordering::Greater => Ok(Change::Newer { from: ours }),
            std::cmp::Ordering::Less => Err(CatalogueError::Older {
                name: st.name.as_str().to_owned(),
                claimed_version: st.version,
                claimed_revision: st.scope_revision,
                version: e.version,
                revision: e.scope_revision,
            }),
            std::cmp::Ordering::Equal => {
                let d = digest(signed);
                if d == e.digest {
                    Ok(Change::Same)
                } else {
                    Err(CatalogueError::Conflicting {
                        name: st.name.as_str().to_owned(),
                        version: st.version,
                        revision: st.scope_revision,
                        claimed: d,
                        signed: e.digest.clone(),
                    })
                }
            }
        }
    }

    /// Accepts a verified statement (see [`Catalogue::check`] for what is refused).
    pub fn accept(
        &mut self,
        verified: &VerifiedCredential,
        signed: &Signed<CredentialStatement>,
    ) -> Result<Change, CatalogueError> {
        let change = self.check(verified, signed)?;
        let st = &verified.statement;
        if change != Change::Same {
            let previous = self.latest(&st.name).cloned();
            self.credentials
                .insert(st.name.clone(), entry(verified, signed, previous.as_ref()));
        }
        // A pending statement at or below what is now confirmed is settled (confirmed, or superseded).
        let confirmed = (st.version, st.scope_revision);
        if self
            .pending
            .get(&st.name)
            .is_some_and(|p| (p.version, p.scope_revision) <= confirmed)
        {
            self.pending.remove(&st.name);
        }
        Ok(change)
    }

    /// Marks the credential named `name` deleted; its id is never accepted again.
    pub fn delete(&mut self, name: &CredentialName) -> Option<Entry> {
        let pending = self.pending.remove(name);
        let e = self.credentials.remove(name).or(pending)?;
        self.deleted.insert(
            e.id,
            Deleted {
                name: e.name.clone(),
                version: e.version,
                scope: Some(e.scope.clone()),
            },
        );
        Some(e)
    }
}

#[cfg(test)]
mod tests;
