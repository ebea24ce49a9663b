//! The CA's registry of the agent certificates it issued: `issued.json` in the CA directory, and a copy in each
//! operator directory on the same workstation (copy it to another workstation as you copy `revocations.json`).
//!
//! Sealing uses only certificates in this registry: a certificate the relay presents for an agent must be one the
//! CA issued **for that agent id** and has not replaced. `ca issue-agent` refuses an agent id that already holds a
//! live certificate unless told to replace it, which revokes the old one. Every entry is verified against the CA
//! when it is used, so an edited file can remove agents (availability) but never add a key the CA did not certify.
//!
//! It also keeps the common names of the service and operator certificates the CA issued: every certificate's CN is
//! its MQTT username at the broker, whose ACL treats the relays' names specially, so the CA refuses to issue a CN
//! already issued to another kind ([`Registry::check_name`]; docs/threat-model.md, "One MQTT username namespace").

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_proto::cert::{AgentCertificate, CertSerial, PinnedCa};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;

use crate::files::{read_json, write_json, FileError};

/// The file name.
pub const FILE: &str = "issued.json";

/// One issued agent certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedCert {
    /// The agent it certifies.
    pub agent: AgentId,
    /// Its serial.
    pub serial: CertSerial,
    /// Its end of validity, Unix seconds.
    pub not_after: i64,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// The serial of the certificate that replaced it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<CertSerial>,
    /// When it was retired (replaced, or rotated away from): receipts its key signed until then still verify after
    /// it is revoked. Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// For a key rotation's certificate: the serial of the certificate it renews (both stay live during the grace
    /// period, until `ca renew` retires and revokes the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews: Option<CertSerial>,
    /// The certificate, b64 DER.
    pub cert: String,
}

/// The registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Every certificate issued, oldest first.
    pub certs: Vec<IssuedCert>,
    /// The common names of the service and operator certificates issued, with their kind (agents' are in `certs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, NameKind>,
}

/// The kind of certificate a common name was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    /// An agent certificate (`ca issue-agent`).
    Agent,
    /// A service certificate, the broker's or a relay's (`ca issue-service`).
    Service,
    /// An operator certificate (`ca issue-operator`).
    Operator,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Agent => "agent",
            Self::Service => "service",
            Self::Operator => "operator",
        })
    }
}

/// A common name already issued to another kind of certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the common name {name} is already issued to a certificate of kind {held} ({FILE}); a certificate of kind \
     {wanted} with the same name would share its MQTT username at the broker, and so its ACL: choose another name"
)]
pub struct NameClash {
    /// The common name.
    pub name: String,
    /// The kind it was issued to.
    pub held: NameKind,
    /// The kind asked for.
    pub wanted: NameKind,
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuedError {
    /// The file.
    #[error(transparent)]
    File(#[from] FileError),
    /// There is no registry where sealing needs one.
    #[error(
        "{0}: no registry of issued agent certificates; copy {FILE} from the CA directory (`tessera ca issue-agent` \
         writes it) so that sealing knows which certificates the CA issued"
    )]
    Missing(String),
}

impl Registry {
    /// The registry in `dir`, or `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, IssuedError> {
        Ok(read_json(&dir.join(FILE))?)
    }

    /// The registry in `dir`, which must exist.
    pub fn require(dir: &Path) -> Result<Self, IssuedError> {
        Self::load(dir)?.ok_or_else(|| IssuedError::Missing(dir.display().to_string()))
    }

    /// The kind of certificate `name` was issued to as a common name, if any.
    pub fn kind_of(&self, name: &str) -> Option<NameKind> {
        if self.certs.iter().any(|c| c.agent.as_str() == name) {
            return Some(NameKind::Agent);
        }
        self.names.get(name).copied()
    }

    /// Refuses `name` as the common name of a `wanted` certificate when it was issued to another kind.
    pub fn check_name(&self, name: &str, wanted: NameKind) -> Result<(), NameClash> {
        match self.kind_of(name) {
            Some(held) if held != wanted => Err(NameClash {
                name: name.to_owned(),
                held,
                wanted,
            }),
            _ => Ok(()),
        }
    }

    /// Writes the registry into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), IssuedError> {
        Ok(write_json(&dir.join(FILE), self)?)
    }

    /// The certificates of `agent` that are live: not replaced, and verifying against `ca` now (unexpired,
    /// unrevoked by `revoked`, naming that agent).
    pub fn live(
        &self,
        agent: &AgentId,
        ca: &PinnedCa,
        now: i64,
        revoked: &RevocationList,
    ) -> Vec<AgentCertificate> {
        self.certs
            .iter()
            .filter(|c| c.agent == *agent && c.replaced_by.is_none())
            .filter_map(|c| tessera_proto::b64_decode(&c.cert))
            .filter_map(|der| ca.verify_agent(&der, now, revoked).ok())
            .filter(|c| c.agent_id == *agent)
            .collect()
    }

    /// Every agent id with at least one live certificate, sorted.
    pub fn live_agents(&self, ca: &PinnedCa, now: i64, revoked: &RevocationList) -> Vec<AgentId> {
        let mut ids: Vec<AgentId> = self
            .certs
            .iter()
            .map(|c| c.agent.clone())
            .filter(|a| !self.live(a, ca, now, revoked).is_empty())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether `der` is a certificate in the registry for `agent` that has not been replaced.
    pub fn issued_for(&self, agent: &AgentId, der: &[u8]) -> bool {
        let b64 = tessera_proto::b64_encode(der);
        self.certs
            .iter()
            .any(|c| c.agent == *agent && c.replaced_by.is_none() && c.cert == b64)
    }

    /// Records a newly issued certificate; the live ones it replaces are marked, and their serials returned.
    pub fn record(&mut self, cert: &AgentCertificate, issued_at: i64) -> Vec<CertSerial> {
        let mut replaced = Vec::new();
        for old in self
            .certs
            .iter_mut()
            .filter(|c| c.agent == cert.agent_id && c.replaced_by.is_none())
        {
            old.replaced_by = Some(cert.serial.clone());
            old.retired_at = Some(issued_at);
            replaced.push(old.serial.clone());
        }
        self.push(cert, issued_at, None);
        replaced
    }

    /// Records the green certificate of a key rotation: the certificate it renews stays live (grace period) until
    /// [`Registry::retire`].
    pub fn record_renewal(&mut self, cert: &AgentCertificate, renews: &CertSerial, issued_at: i64) {
        self.push(cert, issued_at, Some(renews.clone()));
    }

    fn push(&mut self, cert: &AgentCertificate, issued_at: i64, renews: Option<CertSerial>) {
        self.certs.push(IssuedCert {
            agent: cert.agent_id.clone(),
            serial: cert.serial.clone(),
            not_after: cert.not_after,
            issued_at,
            replaced_by: None,
            retired_at: None,
            renews,
            cert: tessera_proto::b64_encode(&cert.der),
        });
    }

    /// Marks `old` of `agent` replaced by `by` (a completed rotation) as of `at`; whether it was live before.
    pub fn retire(&mut self, agent: &AgentId, old: &CertSerial, by: &CertSerial, at: i64) -> bool {
        let mut changed = false;
        for c in self
            .certs
            .iter_mut()
            .filter(|c| c.agent == *agent && c.serial == *old && c.replaced_by.is_none())
        {
            c.replaced_by = Some(by.clone());
            c.retired_at = Some(at);
            changed = true;
        }
        changed
    }

    /// The certificate `serial` the CA issued for `agent`, whatever its state.
    pub fn find(&self, agent: &AgentId, serial: &CertSerial) -> Option<&IssuedCert> {
        self.certs
            .iter()
            .find(|c| c.agent == *agent && c.serial == *serial)
    }

    /// Every green certificate issued for a rotation of `agent` away from `renews`, oldest first.
    pub fn renewals_of<'a>(
        &'a self,
        agent: &'a AgentId,
        renews: &'a CertSerial,
    ) -> impl Iterator<Item = &'a IssuedCert> + 'a {
        self.certs
            .iter()
            .filter(move |c| c.agent == *agent && c.renews.as_ref() == Some(renews))
    }
}

#[cfg(test)]
mod tests;
