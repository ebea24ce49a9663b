//! The credential tombstone: what an operator signs when deleting a credential. An agent that verifies one forgets
//! the credential (every version up to the one named) and never accepts those versions again; nothing unsigned, and
//! nothing the relay says, has that effect.

use serde::{Deserialize, Serialize};

use super::{RevocationList, Signed, StatementError};
use crate::cert::{OperatorCertificate, PinnedCa};
use crate::ids::{CredentialId, CredentialName, OperatorId};

/// Kind tag of version 1 credential tombstones.
pub const TOMBSTONE_KIND: &str = "tessera/credential-tombstone/v1";

/// The body of a credential tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialTombstone {
    /// Always [`TOMBSTONE_KIND`].
    pub kind: String,
    /// The credential deleted.
    pub credential_id: CredentialId,
    /// Its name (released on agents that bound it to this id).
    pub name: CredentialName,
    /// The last version deleted: every version up to it is.
    pub version: u64,
    /// The operator who signed.
    pub creator: OperatorId,
    /// Signing time, unix seconds.
    pub created_at: i64,
}

impl CredentialTombstone {
    /// Builds a tombstone body with the kind tag set.
    pub fn new(
        credential_id: CredentialId,
        name: CredentialName,
        version: u64,
        creator: OperatorId,
        created_at: i64,
    ) -> Self {
        Self {
            kind: TOMBSTONE_KIND.to_owned(),
            credential_id,
            name,
            version,
            creator,
            created_at,
        }
    }
}

/// A tombstone whose signature and signer were verified.
#[derive(Clone, Debug)]
pub struct VerifiedTombstone {
    /// The tombstone.
    pub tombstone: CredentialTombstone,
    /// The operator who signed it.
    pub signer: OperatorCertificate,
}

impl Signed<CredentialTombstone> {
    /// Verifies exactly as a credential statement: the signer's operator certificate against the pinned CA (valid
    /// when the tombstone was signed, not revoked now), the signature over the exact payload, the kind, the version
    /// (at least 1), and that the creator named inside is the signer.
    pub fn verify(
        &self,
        ca: &PinnedCa,
        revoked: &RevocationList,
    ) -> Result<VerifiedTombstone, StatementError> {
        let claimed = self.parse_unverified(TOMBSTONE_KIND)?;
        let signer = ca.verify_operator(&self.signer_cert, claimed.created_at, revoked)?;
        signer
            .identity
            .verify(&self.payload, &self.signature)
            .map_err(|_| StatementError::BadSignature)?;
        let tombstone = claimed;
        if tombstone.creator != signer.operator_id {
            return Err(StatementError::CreatorMismatch);
        }
        if tombstone.version == 0 {
            return Err(StatementError::Malformed("version must be at least 1"));
        }
        Ok(VerifiedTombstone { tombstone, signer })
    }
}

#[cfg(test)]
mod tests;
