//! What an alert is about, typed. Its text (`agent=edge-1`, `credential=<id> target=edge-2`) is part of the
//! alert's deduplication key and its id in the admin API, so each variant prints exactly what the relay stored
//! before the subjects were typed; `subject/tests.rs` pins them.

use std::fmt;

use tessera_proto::ids::{AgentId, CredentialId};

/// What an alert is about.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Subject<'a> {
    /// An agent (`agent=…`): floods, a failed rotation, an expiring certificate.
    Agent(&'a AgentId),
    /// A credential (`credential=…`): its signer revoked.
    Credential(CredentialId),
    /// A credential on one agent (`credential=… agent=…`): a stalled delivery, an overdue purge.
    Delivery(CredentialId, &'a AgentId),
    /// A delivery to a target whose commitment check failed (`credential=… target=…`).
    Mismatch(CredentialId, &'a AgentId),
    /// A delivery this relay never dispatched, refused by its target (`credential=… target=… source=unknown`).
    ForgedDelivery(CredentialId, &'a AgentId),
    /// A peer whose copy of a credential failed the commitment check (`peer=… credential=…`).
    Peer(&'a AgentId, CredentialId),
    /// A relay replica (`replica=…`): its coordination degraded.
    Replica(&'a str),
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(a) => write!(f, "agent={}", a.as_str()),
            Self::Credential(c) => write!(f, "credential={c}"),
            Self::Delivery(c, a) => write!(f, "credential={c} agent={}", a.as_str()),
            Self::Mismatch(c, t) => write!(f, "credential={c} target={}", t.as_str()),
            Self::ForgedDelivery(c, t) => {
                write!(f, "credential={c} target={} source=unknown", t.as_str())
            }
            Self::Peer(p, c) => write!(f, "peer={} credential={c}", p.as_str()),
            Self::Replica(r) => write!(f, "replica={r}"),
        }
    }
}

#[cfg(test)]
mod tests;
