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
//! names. A statement with a newer scope revision (a grant or revoke) replaces the stored one; an older one is
//! ignored, so a relay cannot widen the scope by replaying a statement from before a revoke.

use tessera_proto::cert::CertError;
use tessera_proto::envelope::seal;
use tessera_proto::wire::{RefusalReason, RewrapRefused, RewrapRequest, RewrapResponse, Up};

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
    let target = keys
        .ca
        .verify_agent(&req.target_cert, now, &keys.revocations)
        .map_err(|e| match e {
            CertError::Expired { .. } => RefusalReason::TargetExpired,
            CertError::Revoked(_) => RefusalReason::TargetRevoked,
            _ => RefusalReason::UntrustedTarget,
        })?;
    if target.agent_id != req.target {
        return Err(RefusalReason::TargetMismatch);
    }
    let offered = req
        .statement
        .verify(&keys.ca, &keys.revocations)
        .map_err(|_| RefusalReason::BadStatement)?
        .statement;
    if offered.credential_id != req.credential_id || offered.version != req.version {
        return Err(RefusalReason::BadStatement);
    }
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed during rewrap");
        RefusalReason::Internal
    };
    if let Some(bound) = store
        .name_binding(&offered.name)
        .map_err(internal)?
        .filter(|b| *b != req.credential_id)
    {
        crate::roles::target::record_name_bound(
            store,
            "rewrap",
            &offered.name,
            bound,
            req.credential_id,
        );
        return Err(RefusalReason::NameBoundToOtherId);
    }
    let held = store
        .credential(&req.credential_id)
        .map_err(internal)?
        .ok_or(RefusalReason::UnknownCredential)?;
    if held.status == CredentialStatus::Quarantined {
        return Err(RefusalReason::Quarantined);
    }
    if held.statement.version != req.version {
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
        if let Err(e) = store.update_statement(&held, &req.statement, &offered) {
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
    let envelope = seal(&target.wrap, held.payload.bytes()).map_err(|_| RefusalReason::Internal)?;
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

#[cfg(test)]
mod tests;
