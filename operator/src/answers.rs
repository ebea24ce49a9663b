//! The relay's answers, parsed into typed values. Parsing is all this does: what an answer claims is checked
//! against the catalogue, the CA and the issued-certificate registry by the commands that use it.

use tessera_proto::admin::{AgentView, CredentialView, DeliveryView, RenewalView};
use tessera_proto::audit::AuditEntry;
use tessera_proto::statement::{RevocationList, Signed};

/// Most entries a list answer may hold (a relay that answers more is refused, not followed).
pub const MAX_ENTRIES: usize = 1_000_000;

/// An answer that is not what the admin API documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the relay answered an unexpected {what}: {detail}")]
pub struct AnswerError {
    /// Which answer.
    pub what: &'static str,
    /// Why.
    pub detail: String,
}

fn list<T: serde::de::DeserializeOwned>(
    what: &'static str,
    v: serde_json::Value,
) -> Result<Vec<T>, AnswerError> {
    let fail = |detail: String| AnswerError { what, detail };
    if v.as_array().is_some_and(|a| a.len() > MAX_ENTRIES) {
        return Err(fail(format!("more than {MAX_ENTRIES} entries")));
    }
    serde_json::from_value(v).map_err(|e| fail(e.to_string()))
}

/// `GET /v1/credentials`.
pub fn credentials(v: serde_json::Value) -> Result<Vec<CredentialView>, AnswerError> {
    list("credential list", v)
}

/// `GET /v1/agents`.
pub fn agents(v: serde_json::Value) -> Result<Vec<AgentView>, AnswerError> {
    list("agent list", v)
}

/// `GET /v1/audit`.
pub fn audit(v: serde_json::Value) -> Result<Vec<AuditEntry>, AnswerError> {
    list("audit trail", v)
}

/// `GET /v1/renewals`.
pub fn renewals(v: serde_json::Value) -> Result<Vec<RenewalView>, AnswerError> {
    list("renewal queue", v)
}

/// `GET /v1/credentials/{id}/deliveries`.
pub fn deliveries(v: serde_json::Value) -> Result<Vec<DeliveryView>, AnswerError> {
    list("delivery list", v)
}

/// `GET /v1/revocations`: the relay's copy of the CA-signed list, if it has one.
pub fn revocations(v: serde_json::Value) -> Result<Option<Signed<RevocationList>>, AnswerError> {
    if v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| AnswerError {
            what: "revocation list",
            detail: e.to_string(),
        })
}

/// Every answer parser over raw bytes, for the fuzzer: none may panic, whatever the bytes.
pub fn parse_any(bytes: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = credentials(v.clone());
        let _ = agents(v.clone());
        let _ = audit(v.clone());
        let _ = renewals(v.clone());
        let _ = deliveries(v.clone());
        let _ = revocations(v);
    }
}
