//! `cred put` and `cred rotate`: the plaintext is read here, committed to, signed and sealed to every agent in
//! scope whose certificate verifies against the operator's own copy of the org CA and is not revoked by the newest
//! CA-signed revocation list the operator knows of ([`super::revocations`]). The relay's list of agents is only a
//! list of candidates: a certificate that does not verify is skipped, never sealed to.

use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::envelope::seal;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, Scope, Signed};

use super::client::{AdminClient, ClientError};
use crate::admin::{AgentView, CredentialView, EnvelopeFor};

/// What a put did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutReport {
    /// The credential.
    pub id: CredentialId,
    /// Its version.
    pub version: u64,
    /// Agents sealed to.
    pub sealed_for: Vec<AgentId>,
    /// Agents skipped because their certificate did not verify against the CA.
    pub skipped: Vec<String>,
}

/// Put failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredError {
    /// The admin API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No revocation list could be settled on.
    #[error(transparent)]
    Revocations(#[from] super::revocations::RevocationsError),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// The plaintext from input bytes: a JSON document as is, anything else as `{"secret": text}` (one trailing newline
/// dropped).
pub fn payload_from_input(input: &SecretBytes) -> Result<SecretPayload, CredError> {
    input.expose(|b| {
        let trimmed = b.strip_suffix(b"\n").unwrap_or(b);
        if trimmed.first() == Some(&b'{') {
            SecretPayload::from_json(trimmed).map_err(|e| CredError::Invalid(e.to_string()))
        } else {
            let text = std::str::from_utf8(trimmed)
                .map_err(|_| CredError::Invalid("the secret is not UTF-8".into()))?;
            SecretPayload::from_plain_text(text).map_err(|e| CredError::Invalid(e.to_string()))
        }
    })
}

/// Everything needed to sign and seal.
#[derive(Debug)]
pub struct Operator<'a> {
    /// The CA, as the operator has it.
    pub ca: &'a PinnedCa,
    /// The operator's id.
    pub id: OperatorId,
    /// The operator's key.
    pub key: &'a IdentityKey,
    /// The operator's certificate, DER.
    pub cert: &'a [u8],
    /// The operator directory, where a copy of the CA's revocation list may be kept.
    pub dir: &'a std::path::Path,
}

/// Puts `name` (a new credential, or a new version of the existing one with that name).
pub async fn put(
    client: &AdminClient,
    op: &Operator<'_>,
    name: &CredentialName,
    scope: Scope,
    payload: &SecretPayload,
) -> Result<PutReport, CredError> {
    let mut reports = put_many(client, op, &[(name.clone(), Some(scope), payload)]).await?;
    reports
        .pop()
        .ok_or_else(|| CredError::Invalid("nothing was put".into()))
}

/// Puts several credentials, reading the relay's credential and agent lists once (an import). A scope of `None`
/// keeps the current version's signed scope (verified against our CA: the relay is untrusted), or means every
/// agent for a new credential.
pub async fn put_many(
    client: &AdminClient,
    op: &Operator<'_>,
    items: &[(CredentialName, Option<Scope>, &SecretPayload)],
) -> Result<Vec<PutReport>, CredError> {
    let creds: Vec<CredentialView> = serde_json::from_value(client.get("/v1/credentials").await?)
        .map_err(|e| {
        CredError::Invalid(format!("relay answered an unexpected credential list: {e}"))
    })?;
    let agents: Vec<AgentView> = serde_json::from_value(client.get("/v1/agents").await?)
        .map_err(|e| CredError::Invalid(format!("relay answered an unexpected agent list: {e}")))?;
    let revoked = super::revocations::current(client, op.ca, op.dir).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // Only certificates that verify against our own copy of the CA, and are not revoked, are sealed to.
    let mut certified = Vec::new();
    let mut skipped = Vec::new();
    for a in &agents {
        let verified = tessera_proto::b64_decode(&a.cert)
            .and_then(|der| op.ca.verify_agent(&der, now, &revoked).ok())
            .filter(|c| c.agent_id == a.id);
        match verified {
            Some(cert) => certified.push(cert),
            None => skipped.push(a.id.clone()),
        }
    }
    let mut reports = Vec::with_capacity(items.len());
    for (name, scope, payload) in items {
        let current = creds.iter().find(|c| c.name == *name && !c.deleted);
        let (id, version) = current.map_or((CredentialId::random(), 1), |c| (c.id, c.version + 1));
        let scope = match (scope, current) {
            (Some(s), _) => s.clone(),
            (None, None) => Scope::All,
            (None, Some(c)) => {
                c.statement
                    .verify(op.ca, &revoked)
                    .map_err(|e| {
                        CredError::Invalid(format!(
                            "the current version's statement does not verify ({e}), so its scope cannot be kept; \
                             give the scope with --agent"
                        ))
                    })?
                    .statement
                    .scope
            }
        };
        let mut envelopes = Vec::new();
        for cert in certified.iter().filter(|c| scope.includes(&c.agent_id)) {
            let envelope =
                seal(&cert.wrap, payload.bytes()).map_err(|e| CredError::Invalid(e.to_string()))?;
            envelopes.push(EnvelopeFor {
                agent: cert.agent_id.clone(),
                key: cert.wrap.fingerprint(),
                envelope,
            });
        }
        let salt = Salt::random();
        let c = commitment::compute(&salt, &id, version, payload);
        let st = CredentialStatement::new(
            id,
            version,
            0,
            name.clone(),
            scope.clone(),
            salt,
            c,
            op.id.clone(),
            now,
        );
        let signed =
            Signed::sign(&st, op.key, op.cert).map_err(|e| CredError::Invalid(e.to_string()))?;
        let sealed_for = envelopes.iter().map(|e| e.agent.clone()).collect();
        client
            .post(
                "/v1/credentials",
                &serde_json::json!({ "statement": signed, "envelopes": envelopes }),
            )
            .await?;
        reports.push(PutReport {
            id,
            version,
            sealed_for,
            skipped: skipped
                .iter()
                .filter(|a| scope.includes(a))
                .map(|a| a.as_str().to_owned())
                .collect(),
        });
    }
    Ok(reports)
}

/// How to change a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescope {
    /// Add agents (explicit scope).
    Grant,
    /// Remove agents; an all-agents scope becomes the registered agents minus these.
    Revoke,
}

/// `grant` / `revoke`: re-signs the current version's statement with a new scope and a higher scope revision. No
/// plaintext is needed: newly granted agents receive the credential by peer rewrap, and peers adopt the newer
/// signed scope from the rewrap request.
pub async fn rescope(
    client: &AdminClient,
    op: &Operator<'_>,
    name: &CredentialName,
    agents: &[AgentId],
    how: Rescope,
) -> Result<u64, CredError> {
    let creds: Vec<CredentialView> = serde_json::from_value(client.get("/v1/credentials").await?)
        .map_err(|e| {
        CredError::Invalid(format!("relay answered an unexpected credential list: {e}"))
    })?;
    let view = creds
        .into_iter()
        .find(|c| c.name == *name && !c.deleted)
        .ok_or_else(|| CredError::Invalid(format!("no credential named {}", name.as_str())))?;
    // The relay is untrusted: the statement must verify against our CA before we build on it.
    let revoked = super::revocations::current(client, op.ca, op.dir).await?;
    let current = view
        .statement
        .verify(op.ca, &revoked)
        .map_err(|e| CredError::Invalid(format!("the relay's statement does not verify: {e}")))?
        .statement;
    let scope = match (how, &current.scope) {
        (Rescope::Grant, Scope::All) => {
            return Err(CredError::Invalid(format!(
                "{} is already in scope of every agent",
                name.as_str()
            )))
        }
        (Rescope::Grant, Scope::Explicit { agents: have }) => {
            Scope::explicit(have.iter().chain(agents).cloned())
        }
        (Rescope::Revoke, Scope::Explicit { agents: have }) => {
            Scope::explicit(have.iter().filter(|a| !agents.contains(a)).cloned())
        }
        (Rescope::Revoke, Scope::All) => {
            let all: Vec<AgentView> = serde_json::from_value(client.get("/v1/agents").await?)
                .map_err(|e| {
                    CredError::Invalid(format!("relay answered an unexpected agent list: {e}"))
                })?;
            Scope::explicit(
                all.into_iter()
                    .map(|a| a.id)
                    .filter(|a| !agents.contains(a)),
            )
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let revision = current.scope_revision + 1;
    let st = CredentialStatement::new(
        current.credential_id,
        current.version,
        revision,
        current.name,
        scope,
        current.salt,
        current.commitment,
        op.id.clone(),
        now,
    );
    let signed =
        Signed::sign(&st, op.key, op.cert).map_err(|e| CredError::Invalid(e.to_string()))?;
    client
        .post(
            "/v1/credentials",
            &serde_json::json!({ "statement": signed, "envelopes": [] }),
        )
        .await?;
    Ok(revision)
}
