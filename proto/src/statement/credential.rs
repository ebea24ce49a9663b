//! The credential statement: what an operator signs when creating, rotating or re-scoping a credential.

use serde::{Deserialize, Serialize};

use super::{RevocationList, Signed, StatementError};
use crate::cert::{OperatorCertificate, PinnedCa};
use crate::commitment::{Commitment, Salt};
use crate::ids::{AgentId, CredentialId, CredentialName, OperatorId};

/// Kind tag of version 1 credential statements.
pub const CREDENTIAL_KIND: &str = "tessera/credential-statement/v1";
/// Most agents an explicit scope may name.
pub const MAX_SCOPE_AGENTS: usize = 10_000;

/// Which agents may hold a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "ScopeWire"
)]
pub enum Scope {
    /// Every certified agent of the org.
    All,
    /// Only the agents named (sorted, no duplicates).
    Explicit {
        /// The agents.
        agents: Vec<AgentId>,
    },
}

/// What [`Scope`] is parsed from: `All` as a struct variant with no fields, because serde does not apply
/// `deny_unknown_fields` to a unit variant of an internally tagged enum (`{"type":"all","x":1}` would parse, and a
/// signed statement would have two encodings).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ScopeWire {
    All {},
    Explicit { agents: Vec<AgentId> },
}

impl From<ScopeWire> for Scope {
    fn from(wire: ScopeWire) -> Self {
        match wire {
            ScopeWire::All {} => Self::All,
            ScopeWire::Explicit { agents } => Self::Explicit { agents },
        }
    }
}

impl Scope {
    /// An explicit scope, sorted and deduplicated.
    pub fn explicit(agents: impl IntoIterator<Item = AgentId>) -> Self {
        let mut agents: Vec<AgentId> = agents.into_iter().collect();
        agents.sort();
        agents.dedup();
        Self::Explicit { agents }
    }

    /// Whether `agent` is inside the scope.
    pub fn includes(&self, agent: &AgentId) -> bool {
        match self {
            Self::All => true,
            Self::Explicit { agents } => agents.binary_search(agent).is_ok(),
        }
    }

    fn check(&self) -> Result<(), StatementError> {
        match self {
            Self::All => Ok(()),
            Self::Explicit { agents } => {
                if agents.len() > MAX_SCOPE_AGENTS {
                    return Err(StatementError::Malformed(
                        "explicit scope names too many agents",
                    ));
                }
                if agents.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
                    return Err(StatementError::Malformed(
                        "explicit scope is not sorted and unique",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The body of a credential statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStatement {
    /// Always [`CREDENTIAL_KIND`].
    pub kind: String,
    /// The credential's id, stable across versions.
    pub credential_id: CredentialId,
    /// The plaintext version, from 1; a rotation increments it.
    pub version: u64,
    /// Revision of the scope for this version, from 0; a grant or revoke re-signs with a higher revision.
    pub scope_revision: u64,
    /// The name workloads ask for.
    pub name: CredentialName,
    /// Who may hold it.
    pub scope: Scope,
    /// The commitment's HMAC key.
    pub salt: Salt,
    /// HMAC-SHA-256 commitment to (id, version, canonical plaintext).
    pub commitment: Commitment,
    /// The operator who signed.
    pub creator: OperatorId,
    /// Signing time, unix seconds.
    pub created_at: i64,
}

impl CredentialStatement {
    /// Builds a statement body with the kind tag set.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        credential_id: CredentialId,
        version: u64,
        scope_revision: u64,
        name: CredentialName,
        scope: Scope,
        salt: Salt,
        commitment: Commitment,
        creator: OperatorId,
        created_at: i64,
    ) -> Self {
        Self {
            kind: CREDENTIAL_KIND.to_owned(),
            credential_id,
            version,
            scope_revision,
            name,
            scope,
            salt,
            commitment,
            creator,
            created_at,
        }
    }
}

/// A credential statement whose signature and signer were verified.
#[derive(Clone, Debug)]
pub struct VerifiedCredential {
    /// The statement.
    pub statement: CredentialStatement,
    /// The operator who signed it.
    pub signer: OperatorCertificate,
}

impl Signed<CredentialStatement> {
    /// Verifies the signer's operator certificate against the pinned CA (valid when the statement was signed,
    /// not revoked now), the signature over the exact payload, the kind, the version, the scope's form, and that
    /// the creator named inside is the signer.
    pub fn verify(
        &self,
        ca: &PinnedCa,
        revoked: &RevocationList,
    ) -> Result<VerifiedCredential, StatementError> {
        // The signing time is inside the signed payload; read it first, trust it only once the signature holds.
        let claimed = self.parse_unverified(CREDENTIAL_KIND)?;
        let signer = ca.verify_operator(&self.signer_cert, claimed.created_at, revoked)?;
        // Same bytes as parsed above: verifying the signature over them makes `claimed` the signed statement.
        signer
            .identity
            .verify(&self.payload, &self.signature)
            .map_err(|_| StatementError::BadSignature)?;
        let statement = claimed;
        if statement.creator != signer.operator_id {
            return Err(StatementError::CreatorMismatch);
        }
        if statement.version == 0 {
            return Err(StatementError::Malformed("version must be at least 1"));
        }
        statement.scope.check()?;
        Ok(VerifiedCredential { statement, signer })
    }
}
