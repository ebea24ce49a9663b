//! A newer revocation list: verify it, re-check the statements of every held credential against it, and adopt the
//! list and the resulting flags in one atomic batch.
//!
//! A held credential whose statement's signer (an operator certificate) is on the new list is flagged
//! `signer_revoked`; one that is no longer on it (the CA un-revoked the serial) loses its flag. The relay hears of
//! the flagged ones in `credentials_flagged` messages; with `[store] quarantine_revoked_signers` they are no longer
//! served to workloads nor rewrapped for peers (see `store` and `roles::peer`).

use tessera_proto::cert::CertError;
use tessera_proto::ids::CredentialId;
use tessera_proto::statement::{RevocationList, Signed, StatementError};
use tessera_proto::wire::{CredentialsFlagged, FlagReason, Up, MAX_FLAGGED};

use crate::identity::AgentKeys;
use crate::store::{Store, StoreError};

/// The held credentials whose statement signer `list` revokes.
pub fn recheck(
    keys: &AgentKeys,
    store: &Store,
    list: &RevocationList,
) -> Result<Vec<CredentialId>, StoreError> {
    let mut flagged = Vec::new();
    for held in store.held()? {
        let id = held.credential_id;
        let cred = match store.credential(&id) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, credential = %id, "could not re-check a held credential");
                continue;
            }
        };
        match cred.signed.verify(&keys.ca, list) {
            Ok(_) => {}
            Err(StatementError::Signer(CertError::Revoked(serial))) => {
                tracing::warn!(credential = %id, name = cred.statement.name.as_str(), ?serial, "the signer of a held credential was revoked");
                flagged.push(id);
            }
            // It verified when accepted; anything else is not this list's doing.
            Err(e) => {
                tracing::warn!(error = %e, credential = %id, "a held statement no longer verifies");
            }
        }
    }
    Ok(flagged)
}

/// Verifies `signed` against the pinned CA and the held list; if it is newer, re-checks what is held and stores the
/// list with the flags, then adopts it. Returns the flagged credentials (empty when the list was refused).
pub fn adopt(
    keys: &mut AgentKeys,
    store: &Store,
    signed: &Signed<RevocationList>,
    now: i64,
) -> Vec<CredentialId> {
    let list = match signed.verify(&keys.ca, &keys.revocations) {
        Ok(l) => l,
        // The list already held, sent again (the relay sends it at every registration): nothing to do.
        Err(tessera_proto::statement::StatementError::Stale { got, held }) if got == held => {
            tracing::debug!(serial = got, "revocation list already held");
            return Vec::new();
        }
        Err(e) => {
            tracing::warn!(error = %e, "revocation list refused");
            return Vec::new();
        }
    };
    let json = match serde_json::to_vec(signed) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "could not encode the revocation list");
            return Vec::new();
        }
    };
    let stored = recheck(keys, store, &list).and_then(|flagged| {
        store
            .apply_revocations(&json, list.serial, &flagged, now)
            .map(|()| flagged)
    });
    match stored {
        Ok(flagged) => {
            tracing::info!(
                serial = list.serial,
                revoked = list.revoked.len(),
                flagged = flagged.len(),
                "revocation list updated"
            );
            keys.revocations = list;
            flagged
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store the revocation list");
            Vec::new()
        }
    }
}

/// The `credentials_flagged` messages reporting `flagged` (at most [`MAX_FLAGGED`] ids each).
pub fn flagged_messages(flagged: &[CredentialId], list_serial: u64) -> Vec<Up> {
    flagged
        .chunks(MAX_FLAGGED)
        .map(|ids| {
            Up::CredentialsFlagged(CredentialsFlagged {
                reason: FlagReason::SignerRevoked,
                list_serial,
                credential_ids: ids.to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
