//! The revocation list an operator seals by: the newest list, by serial, that verifies against the operator's own
//! copy of the org CA, taken from two places:
//!
//! - `revocations.json` in the operator directory (the file `ca revoke` writes, copied there by the CA holder);
//! - the relay's copy (`GET /v1/revocations`), which `ca revoke --push` sent it.
//!
//! The relay cannot forge or alter a list (the CA signs it); it could withhold the newest one, which the local copy
//! defends against. A list from either place that does not verify is an error, never skipped: sealing a credential
//! to a revoked agent cannot be undone.

use std::path::Path;

use tessera_proto::cert::PinnedCa;
use tessera_proto::statement::{RevocationList, Signed};

use crate::client::{AdminClient, ClientError};

/// The file name, in the CA directory and in an operator directory.
pub const FILE: &str = "revocations.json";

/// Why no list could be settled on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationsError {
    /// A local file is unreadable or does not verify against the CA.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The relay's list does not verify against the CA.
    #[error("the relay's revocation list does not verify against the CA: {0}")]
    Relay(String),
    /// The admin API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The list in `dir`'s `revocations.json`, verified against `ca`; `None` when there is no such file.
pub fn read_dir_copy(
    dir: &Path,
    ca: &PinnedCa,
) -> Result<Option<RevocationList>, RevocationsError> {
    Ok(read_verified(dir, ca)?.map(|(list, _)| list))
}

/// The signed list in `dir`'s `revocations.json` (verified against `ca`), to copy it elsewhere.
pub fn read_signed_copy(
    dir: &Path,
    ca: &PinnedCa,
) -> Result<Option<Signed<RevocationList>>, RevocationsError> {
    Ok(read_verified(dir, ca)?.map(|(_, signed)| signed))
}

fn read_verified(
    dir: &Path,
    ca: &PinnedCa,
) -> Result<Option<(RevocationList, Signed<RevocationList>)>, RevocationsError> {
    let path = dir.join(FILE);
    let fail = |detail: String| RevocationsError::File {
        path: path.display().to_string(),
        detail,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let signed: Signed<RevocationList> =
        serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    let list = signed
        .verify(ca, &RevocationList::empty())
        .map_err(|e| fail(e.to_string()))?;
    Ok(Some((list, signed)))
}

/// Writes `signed` as `dir`'s `revocations.json`, atomically (a temporary file renamed over it).
pub fn write_dir_copy(dir: &Path, signed: &Signed<RevocationList>) -> Result<(), RevocationsError> {
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let fail = |p: &Path, e: &dyn std::fmt::Display| RevocationsError::File {
        path: p.display().to_string(),
        detail: e.to_string(),
    };
    let json = serde_json::to_vec_pretty(signed).map_err(|e| fail(&path, &e))?;
    std::fs::write(&tmp, json).map_err(|e| fail(&tmp, &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| fail(&path, &e))
}

/// The newer of the operator directory's copy and the relay's.
pub async fn current(
    client: &AdminClient,
    ca: &PinnedCa,
    operator_dir: &Path,
) -> Result<RevocationList, RevocationsError> {
    let local = read_dir_copy(operator_dir, ca)?;
    let served = crate::answers::revocations(client.get("/v1/revocations").await?)
        .map_err(|e| RevocationsError::Relay(e.to_string()))?;
    let relays = served
        .map(|signed| {
            signed
                .verify(ca, &RevocationList::empty())
                .map_err(|e| RevocationsError::Relay(e.to_string()))
        })
        .transpose()?;
    Ok(newest(local, relays))
}

/// The list with the higher serial (an empty list when there is neither).
pub fn newest(a: Option<RevocationList>, b: Option<RevocationList>) -> RevocationList {
    match (a, b) {
        (Some(a), Some(b)) => {
            if a.serial >= b.serial {
                a
            } else {
                b
            }
        }
        (Some(l), None) | (None, Some(l)) => l,
        (None, None) => RevocationList::empty(),
    }
}

#[cfg(test)]
mod tests;
