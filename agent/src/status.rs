//! What `tessera-agent status` shows and the metrics textfile exports: the broker connection, where registration
//! stands, the certificate's validity, the credentials held with their versions, and the store key's generation and
//! sealer. The core worker publishes its part ([`SessionView`]) on a watch channel each step; the store-key task
//! publishes its own; [`snapshot`] reads both and the store, never waiting on either task.
//!
//! Nothing here is secret: names, versions, ids, times. The local API serves it to the agent's uid and root only
//! (docs/protocol.md, "Local API").

pub mod text;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::session::registration::Registration;
use crate::store::{CredentialStatus, Store, StoreError};
use crate::store_key::worker::{StoreKeyHandle, StoreKeyStatus};

/// The core worker's part of the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionView {
    /// Whether the MQTT connection to the broker is up.
    pub connected: bool,
    /// Where registration is.
    pub registration: RegistrationView,
    /// The certificate the agent presents.
    pub certificate: CertificateView,
}

/// Registration, as `tessera-agent status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationView {
    /// `disconnected`, `awaiting_ack`, `backfilling` or `online`.
    pub state: String,
    /// While backfilling: deliveries announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_expected: Option<u32>,
    /// While backfilling: deliveries stored so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_received: Option<u32>,
}

impl From<&Registration> for RegistrationView {
    fn from(r: &Registration) -> Self {
        let (state, expected, received) = match r {
            Registration::Disconnected => ("disconnected", None, None),
            Registration::AwaitingAck { .. } => ("awaiting_ack", None, None),
            Registration::Backfilling { expected, received } => {
                ("backfilling", Some(*expected), Some(*received))
            }
            Registration::Online => ("online", None, None),
        };
        Self {
            state: state.to_owned(),
            backfill_expected: expected,
            backfill_received: received,
        }
    }
}

/// The agent's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateView {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Start of validity, RFC 3339 (UTC).
    pub not_before: String,
    /// End of validity, RFC 3339 (UTC).
    pub not_after: String,
    /// End of validity, unix seconds (the metric).
    pub not_after_unix: i64,
}

impl CertificateView {
    /// The view of a verified certificate.
    pub fn of(cert: &tessera_proto::cert::AgentCertificate) -> Self {
        Self {
            serial: cert.serial.as_str().to_owned(),
            not_before: rfc3339(cert.not_before),
            not_after: rfc3339(cert.not_after),
            not_after_unix: cert.not_after,
        }
    }
}

/// Unix seconds as RFC 3339 in UTC (`1970-01-01T00:00:00Z` for a time out of range).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// A credential held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldView {
    /// Name.
    pub name: String,
    /// Version held.
    pub version: u64,
    /// `ok`, `signer_revoked` or `quarantined`.
    pub status: CredentialStatus,
}

/// The broker the agent is configured for, and whether it is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerView {
    /// `host:port`.
    pub address: String,
    /// Whether the MQTT connection is up.
    pub connected: bool,
}

/// `tessera-agent status`, and the `status` answer of the local API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    /// The agent's version.
    pub version: String,
    /// The agent id.
    pub agent: String,
    /// The broker.
    pub broker: BrokerView,
    /// Registration.
    pub registration: RegistrationView,
    /// The certificate.
    pub certificate: CertificateView,
    /// The credentials held, by name.
    pub credentials: Vec<HeldView>,
    /// The store key.
    pub store_key: StoreKeyStatus,
}

/// Where a running agent's status comes from.
#[derive(Debug, Clone)]
pub struct StatusSources {
    /// The agent id.
    pub agent: String,
    /// The core worker's view.
    pub session: watch::Receiver<SessionView>,
    /// The store-key task.
    pub store_key: StoreKeyHandle,
}

/// The status now.
pub fn snapshot(
    cfg: &AgentConfig,
    store: &Store,
    sources: &StatusSources,
) -> Result<AgentStatus, StoreError> {
    let session = sources.session.borrow().clone();
    let credentials = store
        .list()?
        .into_iter()
        .map(|m| HeldView {
            name: m.name.as_str().to_owned(),
            version: m.version,
            status: m.status,
        })
        .collect();
    Ok(AgentStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        agent: sources.agent.clone(),
        broker: BrokerView {
            address: format!("{}:{}", cfg.broker.host, cfg.broker.port),
            connected: session.connected,
        },
        registration: session.registration,
        certificate: session.certificate,
        credentials,
        store_key: sources.store_key.status(),
    })
}

#[cfg(test)]
mod tests;
