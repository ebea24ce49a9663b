//! The target role: check a delivery before anything is stored.
//!
//! In order: the creator's statement verifies against the pinned CA (`BAD_STATEMENT`); this agent is in its scope
//! (`NOT_IN_SCOPE`, also when a newer signed scope this agent received in a `credential_revoke` left it out at this
//! version and a scope revision at least this statement's); an operator-signed tombstone has not deleted this version here (`CREDENTIAL_DELETED`, recorded
//! in the local audit: a replay of a deleted credential's delivery); the statement's name is not bound on this agent to another credential id
//! (`NAME_BOUND_TO_OTHER_ID`, also recorded in the local audit: a deleted credential's statement replayed under a
//! name that now belongs to a new one); the version is not older than the newest accepted (`STALE_VERSION`); the envelope opens with
//! our wrap key (`BAD_ENVELOPE`); the plaintext is one canonical JSON document (`BAD_PAYLOAD`); the commitment
//! recomputed over (id, version, plaintext) equals the signed one, compared in constant time (`Mismatch`). A
//! delivery of the version already held is accepted only with the same commitment and is not written again.
//!
//! An item of a batch ([`check_with`]) goes through the same checks; its plaintext is the batch's item for the
//! statement's (credential, version), and an item the batch does not carry is `BAD_ENVELOPE`.
//!
//! [`check`] returns what to store; the caller stores a batch, flushes, and only then acknowledges.

use tessera_proto::commitment::{self, Commitment};
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, Signed, CREDENTIAL_KIND};
use tessera_proto::wire::{CredentialStore, RefusalReason, StoreOutcome};

use crate::identity::AgentKeys;
use crate::store::{AuditEntry, NewCredential, Store};

/// What to do with a delivery that passed every check.
#[derive(Debug)]
pub enum Accepted {
    /// Store it (then flush, then acknowledge).
    New(Box<NewCredential>),
    /// This exact version is already held: acknowledge without writing.
    AlreadyHeld {
        /// The credential.
        credential_id: CredentialId,
        /// The version.
        version: u64,
        /// The commitment to acknowledge.
        digest: Commitment,
    },
}

/// A delivery that was refused: the outcome to report. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The credential, when the statement could be read.
    pub credential_id: Option<CredentialId>,
    /// The version, when known.
    pub version: u64,
    /// `Mismatch` or `Refused { reason }`.
    pub outcome: StoreOutcome,
}

/// Checks `msg` for storage.
pub fn check(keys: &AgentKeys, store: &Store, msg: &CredentialStore) -> Result<Accepted, Refused> {
    check_with(keys, store, &msg.statement, |_, _| {
        keys.open(&msg.envelope, msg.target_key.as_ref())
            .map_err(|_| RefusalReason::BadEnvelope)
    })
}

/// Checks one delivery of `signed`, whose plaintext `plaintext` gives for the statement's (credential, version)
/// once the checks before it passed: the envelope of a single delivery, or the item of an opened batch.
pub fn check_with(
    keys: &AgentKeys,
    store: &Store,
    signed: &Signed<CredentialStatement>,
    plaintext: impl FnOnce(CredentialId, u64) -> Result<SecretBytes, RefusalReason>,
) -> Result<Accepted, Refused> {
    let refuse = |id: Option<CredentialId>, version: u64, reason: RefusalReason| Refused {
        credential_id: id,
        version,
        outcome: StoreOutcome::Refused { reason },
    };
    let st = signed
        .verify(&keys.ca, &keys.revocations)
        .map_err(|_| {
            // Report against the id the statement claims, when it can be read at all: only for the relay's
            // bookkeeping, nothing is trusted from it.
            let claimed = signed.parse_unverified(CREDENTIAL_KIND).ok();
            refuse(
                claimed.as_ref().map(|c| c.credential_id),
                claimed.map_or(0, |c| c.version),
                RefusalReason::BadStatement,
            )
        })?
        .statement;
    let (id, version) = (st.credential_id, st.version);
    if !st.scope.includes(&keys.id) {
        return Err(refuse(Some(id), version, RefusalReason::NotInScope));
    }
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed during delivery");
        refuse(Some(id), version, RefusalReason::Internal)
    };
    if store
        .revoked_at(&id)
        .map_err(internal)?
        .is_some_and(|(v, rev)| version < v || (version == v && st.scope_revision <= rev))
    {
        tracing::warn!(credential = %id, version, revision = st.scope_revision, "refused: a newer signed scope left this agent out");
        return Err(refuse(Some(id), version, RefusalReason::NotInScope));
    }
    if let Some(through) = store
        .deleted_through(&id)
        .map_err(internal)?
        .filter(|d| version <= *d)
    {
        tracing::warn!(credential = %id, version, through, "refused: an operator-signed tombstone deleted this credential here");
        let detail = format!("CREDENTIAL_DELETED: credential {id} version {version}, deleted through version {through}");
        if let Err(e) = store.audit_durable(AuditEntry::wire_refusal(
            "delivery",
            Some(st.name.as_str()),
            detail,
        )) {
            tracing::error!(error = %e, "could not write the local audit");
        }
        return Err(refuse(Some(id), version, RefusalReason::CredentialDeleted));
    }
    if let Some(bound) = store
        .name_binding(&st.name)
        .map_err(internal)?
        .filter(|b| *b != id)
    {
        record_name_bound(store, "delivery", &st.name, bound, id);
        return Err(refuse(Some(id), version, RefusalReason::NameBoundToOtherId));
    }
    let held_version = store.newest_version(&id).map_err(internal)?;
    if held_version.is_some_and(|h| version < h) {
        return Err(refuse(Some(id), version, RefusalReason::StaleVersion));
    }
    let plain = plaintext(id, version).map_err(|reason| refuse(Some(id), version, reason))?;
    let payload = SecretPayload::from_canonical(plain)
        .map_err(|_| refuse(Some(id), version, RefusalReason::BadPayload))?;
    if commitment::verify(&st.salt, &id, version, &payload, &st.commitment).is_err() {
        return Err(Refused {
            credential_id: Some(id),
            version,
            outcome: StoreOutcome::Mismatch,
        });
    }
    if held_version == Some(version) {
        let held = store.credential(&id).map_err(internal)?;
        return match held {
            Some(h) if h.statement.commitment == st.commitment => Ok(Accepted::AlreadyHeld {
                credential_id: id,
                version,
                digest: st.commitment,
            }),
            _ => Err(refuse(Some(id), version, RefusalReason::StaleVersion)),
        };
    }
    Ok(Accepted::New(Box::new(NewCredential {
        statement: st,
        signed: signed.clone(),
        payload,
    })))
}

/// Logs and audits a refusal for a name bound to another id (`op`: `delivery` or `rewrap`).
pub(crate) fn record_name_bound(
    store: &Store,
    op: &str,
    name: &CredentialName,
    bound: CredentialId,
    offered: CredentialId,
) {
    tracing::warn!(
        name = name.as_str(),
        %bound,
        %offered,
        op,
        "refused: the credential name is bound to another credential id on this agent"
    );
    let detail =
        format!("NAME_BOUND_TO_OTHER_ID: offered credential {offered}, name bound to {bound}");
    if let Err(e) = store.audit_durable(AuditEntry::wire_refusal(op, Some(name.as_str()), detail)) {
        tracing::error!(error = %e, "could not write the local audit");
    }
}

#[cfg(test)]
mod tests;
