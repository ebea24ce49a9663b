//! `agents rotate` (and the dashboard's "Rotate keys"): asks the relay to have an agent generate new keys and queue
//! a renewal request, which `ca renew` certifies later (docs/operations.md, "Key rotation").
//!
//! Only an agent the CA certified is asked: the operator directory's registry of issued certificates
//! ([`crate::issued`]) must hold a live certificate for it (verified against the CA, not revoked by the newest
//! signed list). An id the relay made up, or a revoked agent, is refused here rather than sent.

use std::path::Path;

use tessera_proto::cert::PinnedCa;
use tessera_proto::ids::AgentId;

use crate::client::{AdminClient, ClientError};
use crate::issued::{IssuedError, Registry};
use crate::revocations::{self, RevocationsError};

/// Why a rotation was not requested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// The registry holds no live certificate for the agent.
    #[error(
        "{0} has no live certificate in this operator directory's registry of issued certificates (issued.json): \
         only agents the CA certified, and has not revoked, are rotated"
    )]
    NotCertified(String),
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] IssuedError),
    /// The revocation list could not be established.
    #[error(transparent)]
    Revocations(#[from] RevocationsError),
    /// The relay refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks `agent` is certified (registry in `dir`, verified against `ca`), then posts
/// `POST /v1/agents/{agent}/rotate`; returns the relay's answer.
pub async fn request(
    client: &AdminClient,
    ca: &PinnedCa,
    dir: &Path,
    agent: &AgentId,
) -> Result<serde_json::Value, RotateError> {
    let registry = Registry::require(dir)?;
    let revoked = revocations::current(client, ca, dir).await?;
    if registry.live(agent, ca, now_s(), &revoked).is_empty() {
        return Err(RotateError::NotCertified(agent.as_str().to_owned()));
    }
    Ok(client
        .post(
            &format!("/v1/agents/{}/rotate", agent.as_str()),
            &serde_json::json!({}),
        )
        .await?)
}
