//! A `credential_purge`: forget a credential an operator deleted, only on the operator-signed tombstone it carries.
//!
//! The tombstone is verified exactly as a credential statement (signer an operator certified by the pinned CA,
//! valid when it signed, unrevoked now, creator = signer). A purge that does not verify is refused, logged and
//! recorded in the local audit (`op` `purge`, outcome `REFUSED`); nothing is forgotten and nothing is answered.
//! One that verifies removes the record, its rollback guard and flag, releases the name binding if it is this
//! id's, and writes the `deleted/<id>` marker, in one flushed batch ([`Store::purge`]); then it is audited
//! (`PURGED`) and acknowledged with `credential_purged`, carrying the agent's signed receipt. The plaintext is never read: its record is deleted
//! still sealed. A purge of a credential not held is acknowledged the same way (the marker is still written).
//!
//! A `credential_revoke` carries a newer credential statement whose scope leaves this agent out. It is verified
//! like a delivery's statement; if it is newer than the one held (a higher version, or the same version with a
//! higher scope revision) and its scope does not include this agent, the credential is purged the same way but
//! with a `revoked/<id>` marker instead of `deleted/<id>`: a delivery of a statement up to that version and scope
//! revision (a relay replaying the wider scope) is refused `NOT_IN_SCOPE`, while a later grant is accepted.
//! Anything else is refused and audited.

use tessera_proto::ids::CredentialId;
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::statement::{CREDENTIAL_KIND, TOMBSTONE_KIND};
use tessera_proto::wire::{CredentialPurge, CredentialPurged, CredentialRevoke, Up};

use crate::identity::AgentKeys;
use crate::store::{AuditEntry, AuditOutcome, PurgeKind, Store, StoreError};

fn audit(store: &Store, entry: AuditEntry) {
    if let Err(e) = store.audit(entry) {
        tracing::error!(error = %e, "could not write the local audit");
    }
}

/// The acknowledgement of a purge, with the agent's signed receipt of it (docs/protocol.md, "Receipts").
fn purged_ack(
    keys: &AgentKeys,
    credential_id: CredentialId,
    version: u64,
    scope_revision: Option<u64>,
) -> Up {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let receipt = keys
        .receipt(
            ReceiptFact::Purged {
                credential_id,
                version,
                scope_revision,
            },
            now,
        )
        .map_err(|e| tracing::error!(error = %e, "could not sign a purge receipt"))
        .ok();
    Up::CredentialPurged(CredentialPurged {
        credential_id,
        version,
        receipt,
    })
}

/// Verifies and applies `msg`; the acknowledgement to send, if any.
pub fn apply(keys: &AgentKeys, store: &Store, msg: &CredentialPurge) -> Option<Up> {
    let verified = match msg.tombstone.verify(&keys.ca, &keys.revocations) {
        Ok(v) => v,
        Err(e) => {
            let claimed = msg.tombstone.parse_unverified(TOMBSTONE_KIND).ok();
            tracing::warn!(error = %e, credential = ?claimed.as_ref().map(|c| c.credential_id), "refused a purge: its tombstone does not verify; nothing forgotten");
            let detail = format!(
                "BAD_STATEMENT: tombstone{} does not verify: {e}",
                claimed
                    .as_ref()
                    .map(|c| format!(" for credential {}", c.credential_id))
                    .unwrap_or_default()
            );
            audit(
                store,
                AuditEntry::wire_refusal(
                    "purge",
                    claimed.as_ref().map(|c| c.name.as_str()),
                    detail,
                ),
            );
            return None;
        }
    };
    let t = &verified.tombstone;
    match store.purge(&t.credential_id, &t.name, t.version, PurgeKind::Deleted) {
        Ok(purged) => {
            tracing::info!(
                credential = %t.credential_id,
                name = t.name.as_str(),
                version = t.version,
                held = ?purged.held,
                released_name = purged.released_name,
                signer = t.creator.as_str(),
                "credential purged on an operator-signed tombstone"
            );
            let mut entry = AuditEntry::wire_refusal(
                "purge",
                Some(t.name.as_str()),
                format!(
                    "credential {} through version {} (held {}), signed by {}",
                    t.credential_id,
                    t.version,
                    purged
                        .held
                        .map_or_else(|| "none".to_owned(), |v| v.to_string()),
                    t.creator.as_str()
                ),
            );
            entry.outcome = AuditOutcome::Purged;
            audit(store, entry);
            Some(purged_ack(keys, t.credential_id, t.version, None))
        }
        Err(StoreError::Stale { held, .. }) => {
            tracing::warn!(credential = %t.credential_id, version = t.version, held, "a tombstone older than the version held: kept");
            audit(
                store,
                AuditEntry::wire_refusal(
                    "purge",
                    Some(t.name.as_str()),
                    format!(
                        "STALE_VERSION: tombstone through version {} for credential {}, version {held} held",
                        t.version, t.credential_id
                    ),
                ),
            );
            None
        }
        Err(e) => {
            tracing::error!(error = %e, credential = %t.credential_id, "could not purge a credential");
            None
        }
    }
}

/// Verifies and applies a scope revoke; the acknowledgement to send, if any.
pub fn revoke(keys: &AgentKeys, store: &Store, msg: &CredentialRevoke) -> Option<Up> {
    let refuse = |name: Option<&str>, detail: String| {
        tracing::warn!(detail, "refused a scope revoke; nothing forgotten");
        audit(store, AuditEntry::wire_refusal("revoke", name, detail));
        None
    };
    let st = match msg.statement.verify(&keys.ca, &keys.revocations) {
        Ok(v) => v.statement,
        Err(e) => {
            let claimed = msg.statement.parse_unverified(CREDENTIAL_KIND).ok();
            return refuse(
                claimed.as_ref().map(|c| c.name.as_str()),
                format!("BAD_STATEMENT: statement does not verify: {e}"),
            );
        }
    };
    let name = Some(st.name.as_str());
    if st.scope.includes(&keys.id) {
        return refuse(
            name,
            format!(
                "NOT_REVOKED: credential {} revision {} still includes this agent",
                st.credential_id, st.scope_revision
            ),
        );
    }
    let held = match store.credential(&st.credential_id) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "could not read a credential for a scope revoke");
            return None;
        }
    };
    let version = match &held {
        Some(h) => {
            let newer = st.version > h.statement.version
                || (st.version == h.statement.version
                    && st.scope_revision > h.statement.scope_revision);
            if !newer {
                return refuse(
                    name,
                    format!(
                        "STALE_VERSION: credential {} version {} revision {} is not newer than the one held",
                        st.credential_id, st.version, st.scope_revision
                    ),
                );
            }
            h.statement.version
        }
        None => st.version,
    };
    let kind = PurgeKind::Revoked {
        scope_revision: st.scope_revision,
    };
    match store.purge(&st.credential_id, &st.name, version.max(st.version), kind) {
        Ok(purged) => {
            tracing::info!(credential = %st.credential_id, name = st.name.as_str(), revision = st.scope_revision, held = ?purged.held, "credential purged: its signed scope no longer includes this agent");
            let mut entry = AuditEntry::wire_refusal(
                "revoke",
                name,
                format!(
                    "credential {} version {}: scope revision {} signed by {} excludes this agent",
                    st.credential_id,
                    version,
                    st.scope_revision,
                    st.creator.as_str()
                ),
            );
            entry.outcome = AuditOutcome::Purged;
            audit(store, entry);
            Some(purged_ack(
                keys,
                st.credential_id,
                st.version,
                Some(st.scope_revision),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, credential = %st.credential_id, "could not purge a revoked credential");
            None
        }
    }
}
