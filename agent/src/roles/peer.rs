//! The peer role: answer a rewrap request.
//!
//! In order, each failure a typed [`RefusalReason`]: the target certificate chains to the pinned CA, is valid now
//! and unrevoked (`UNTRUSTED_TARGET`, `TARGET_EXPIRED`, `TARGET_REVOKED`); it names the requested target
//! (`TARGET_MISMATCH`); the relay's statement verifies and is for the requested id and version (`BAD_STATEMENT`);
//! we hold that credential (`UNKNOWN_CREDENTIAL`) at that version (`STALE_VERSION`) with the same commitment
//! (`BAD_STATEMENT`); the statement's name is not bound on this agent to another credential id
//! (`NAME_BOUND_TO_OTHER_ID`, recorded in the local audit); the credential is not quarantined (`QUARANTINED`:
//! its signer was revoked and `[store] quarantine_revoked_signers` is on); the target is inside the scope of the newest scope revision we have seen (`NOT_IN_SCOPE`).
//! Only then is the plaintext read and sealed to the wrap key **from the certificate** — never a key the relay
//! names. A batched request ([`answer_batch`]) runs the same checks per item and seals the accepted items in one
//! envelope ([`tessera_proto::envelope::batch`]). A statement with a newer scope revision (a grant or revoke) replaces the stored one; an older one is
//! ignored, so a relay cannot widen the scope by replaying a statement from before a revoke.

use tessera_proto::cert::{AgentCertificate, CertError};
use tessera_proto::envelope::{batch, seal};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{CredentialStatement, Signed};
use tessera_proto::wire::{
    RefusalReason, RewrapBatchRequest, RewrapBatchResponse, RewrapItem, RewrapRefused,
    RewrapRequest, RewrapResponse, SealedItem, Up,
};

use crate::identity::AgentKeys;
use crate::store::{CredentialStatus, Store};

/// Answers `req`: a response, or a refusal with its reason.
pub fn answer(keys: &AgentKeys, store: &Store, req: &RewrapRequest, now: i64) -> Up {
    match rewrap(keys, store, req, now) {
        Ok(resp) => Up::RewrapResponse(resp),
        Err(reason) => {
            tracing::warn!(
                request = %req.request_id,
                credential = %req.credential_id,
                target = req.target.as_str(),
                ?reason,
                "rewrap refused"
            );
            Up::RewrapRefused(RewrapRefused {
                request_id: req.request_id,
                nonce: req.nonce,
                reason,
            })
        }
    }
}

fn rewrap(
    keys: &AgentKeys,
    store: &Store,
    req: &RewrapRequest,
    now: i64,
) -> Result<RewrapResponse, RefusalReason> {
    let target = verify_target(keys, &req.target_cert, &req.target, now)?;
    let payload = check_item(
        keys,
        store,
        &target,
        &req.statement,
        req.credential_id,
        req.version,
    )?;
    let envelope = seal(&target.wrap, &payload).map_err(|_| RefusalReason::Internal)?;
    Ok(RewrapResponse {
        request_id: req.request_id,
        nonce: req.nonce,
        peer: keys.id.clone(),
        credential_id: req.credential_id,
        version: req.version,
        target_key: target.wrap.fingerprint(),
        envelope,
    })
}

/// Answers a batched request: the target checked once, every item as a single request's, the accepted ones sealed
/// in one envelope, as many as fit in [`batch::MAX_BATCH_PLAINTEXT`]; an accepted item that does not fit is
/// answered on its own, as a single `rewrap_response` (the relay's record of it takes either). The batch answer
/// comes first.
pub fn answer_batch(
    keys: &AgentKeys,
    store: &Store,
    req: &RewrapBatchRequest,
    now: i64,
) -> Vec<Up> {
    let refuse_all = |reason: RefusalReason| {
        req.items
            .iter()
            .map(|i| RewrapRefused {
                request_id: i.request_id,
                nonce: i.nonce,
                reason,
            })
            .collect::<Vec<_>>()
    };
    let mut sealed = Vec::new();
    let mut refused = Vec::new();
    let mut envelope = None;
    let mut target_key = None;
    let mut singles = Vec::new();
    match verify_target(keys, &req.target_cert, &req.target, now) {
        Err(reason) => refused = refuse_all(reason),
        Ok(target) => {
            let mut payloads: Vec<(CredentialId, u64, SecretBytes)> = Vec::new();
            let mut size = 0;
            for item in &req.items {
                let checked = check_item(
                    keys,
                    store,
                    &target,
                    &item.statement,
                    item.credential_id,
                    item.version,
                );
                match checked {
                    Ok(payload)
                        if batch::plaintext_size(size + batch::item_size(payload.len()))
                            > batch::MAX_BATCH_PLAINTEXT =>
                    {
                        singles.push(answer_alone(keys, &target, item, &payload));
                    }
                    Ok(payload) => {
                        size += batch::item_size(payload.len());
                        payloads.push((item.credential_id, item.version, payload));
                        sealed.push(SealedItem {
                            request_id: item.request_id,
                            nonce: item.nonce,
                            credential_id: item.credential_id,
                            version: item.version,
                        });
                    }
                    Err(reason) => refused.push(RewrapRefused {
                        request_id: item.request_id,
                        nonce: item.nonce,
                        reason,
                    }),
                }
            }
            if !payloads.is_empty() {
                let items: Vec<_> = payloads.iter().map(|(id, v, p)| (*id, *v, p)).collect();
                match batch::seal(&target.wrap, &items) {
                    Ok(env) => {
                        envelope = Some(env);
                        target_key = Some(target.wrap.fingerprint());
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not seal a batch");
                        sealed.clear();
                        refused = refuse_all(RefusalReason::Internal);
                    }
                }
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(
            batch = %req.batch_id,
            target = req.target.as_str(),
            refused = refused.len(),
            sealed = sealed.len(),
            reasons = ?refused.iter().map(|r| r.reason).collect::<std::collections::HashSet<_>>(),
            "batched rewrap: items refused"
        );
    }
    let mut answers = Vec::with_capacity(1 + singles.len());
    if !(sealed.is_empty() && refused.is_empty()) {
        answers.push(Up::RewrapBatchResponse(RewrapBatchResponse {
            batch_id: req.batch_id,
            peer: keys.id.clone(),
            target_key,
            envelope,
            sealed,
            refused,
        }));
    }
    answers.extend(singles);
    answers
}

/// An item of a batch that did not fit in its envelope, sealed and answered as a single rewrap.
fn answer_alone(
    keys: &AgentKeys,
    target: &AgentCertificate,
    item: &RewrapItem,
    payload: &SecretBytes,
) -> Up {
    match seal(&target.wrap, payload) {
        Ok(envelope) => Up::RewrapResponse(RewrapResponse {
            request_id: item.request_id,
            nonce: item.nonce,
            peer: keys.id.clone(),
            credential_id: item.credential_id,
            version: item.version,
            target_key: target.wrap.fingerprint(),
            envelope,
        }),
        Err(_) => Up::RewrapRefused(RewrapRefused {
            request_id: item.request_id,
            nonce: item.nonce,
            reason: RefusalReason::Internal,
        }),
    }
}

/// The target certificate chains to the pinned CA, is valid now and unrevoked, and names `target`.
fn verify_target(
    keys: &AgentKeys,
    cert: &[u8],
    target: &AgentId,
    now: i64,
) -> Result<AgentCertificate, RefusalReason> {
    let verified = keys
        .ca
        .verify_agent(cert, now, &keys.revocations)
        .map_err(|e| match e {
            CertError::Expired { .. } => RefusalReason::TargetExpired,
            CertError::Revoked(_) => RefusalReason::TargetRevoked,
            _ => RefusalReason::UntrustedTarget,
        })?;
    if verified.agent_id != *target {
        return Err(RefusalReason::TargetMismatch);
    }
    Ok(verified)
}

/// Every check of one credential for a verified target (the module's list, after the target's); the payload to
/// seal when they all pass.
fn check_item(
    keys: &AgentKeys,
    store: &Store,
    target: &AgentCertificate,
    statement: &Signed<CredentialStatement>,
    credential_id: CredentialId,
    version: u64,
) -> Result<SecretBytes, RefusalReason> {
    let offered = statement
        .verify(&keys.ca, &keys.revocations)
        .map_err(|_| RefusalReason::BadStatement)?
        .statement;
    if offered.credential_id != credential_id || offered.version != version {
        return Err(RefusalReason::BadStatement);
    }
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed during rewrap");
        RefusalReason::Internal
    };
    if let Some(bound) = store
        .name_binding(&offered.name)
        .map_err(internal)?
        .filter(|b| *b != credential_id)
    {
        crate::roles::target::record_name_bound(
            store,
            "rewrap",
            &offered.name,
            bound,
            credential_id,
        );
        return Err(RefusalReason::NameBoundToOtherId);
    }
    let held = store
        .credential(&credential_id)
        .map_err(internal)?
        .ok_or(RefusalReason::UnknownCredential)?;
    if held.status == CredentialStatus::Quarantined {
        return Err(RefusalReason::Quarantined);
    }
    if held.statement.version != version {
        return Err(RefusalReason::StaleVersion);
    }
    if held.statement.commitment != offered.commitment
        || held.statement.salt != offered.salt
        || held.statement.name != offered.name
    {
        return Err(RefusalReason::BadStatement);
    }
    let scope = if offered.scope_revision > held.statement.scope_revision {
        let scope = offered.scope.clone();
        if let Err(e) = store.update_statement(&held, statement, &offered) {
            tracing::error!(error = %e, "could not store a newer scope revision");
            return Err(RefusalReason::Internal);
        }
        scope
    } else {
        held.statement.scope.clone()
    };
    if !scope.includes(&target.agent_id) {
        return Err(RefusalReason::NotInScope);
    }
    Ok(held.payload.bytes().clone())
}

#[cfg(test)]
mod tests;
