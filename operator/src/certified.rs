//! Which agents a credential is sealed to. Only certificates the CA issued for the agent id
//! ([`crate::issued::Registry`]), verifying against the operator's copy of the org CA, unexpired and not revoked
//! by the newest CA-signed list the operator knows of:
//!
//! - an explicit scope: exactly the agents it names, each of which must have such a certificate (an agent without
//!   one is an error, never "sealed for 0 agents");
//! - scope `all`: the relay's agent list (untrusted: only a list of candidates), each agent kept only when the
//!   certificate the relay shows for it is a live one of the registry; the rest are reported as skipped.

use tessera_proto::admin::AgentView;
use tessera_proto::cert::{AgentCertificate, PinnedCa};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::{RevocationList, Scope};

use crate::issued::Registry;

/// An agent of the relay's list that is not sealed to, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The agent id the relay listed.
    pub agent: String,
    /// Why it was not sealed to.
    pub reason: String,
}

/// The certificates to seal to.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Certificates sealed to (two for one agent only during a rotation's grace period).
    pub certs: Vec<AgentCertificate>,
    /// Agents of the relay's list left out.
    pub skipped: Vec<Skipped>,
}

/// An explicit scope names an agent the CA has no live certificate for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--agent {0}: no live certificate issued by the CA for this agent id (not in issued.json, expired or revoked)"
)]
pub struct NotCertified(pub AgentId);

/// The certificates `scope` is sealed to.
pub fn targets(
    scope: &Scope,
    relay_agents: &[AgentView],
    registry: &Registry,
    ca: &PinnedCa,
    now: i64,
    revoked: &RevocationList,
) -> Result<Targets, NotCertified> {
    match scope {
        Scope::Explicit { agents } => {
            let mut certs = Vec::new();
            for a in agents {
                let live = registry.live(a, ca, now, revoked);
                if live.is_empty() {
                    return Err(NotCertified(a.clone()));
                }
                certs.extend(live);
            }
            Ok(Targets {
                certs,
                skipped: Vec::new(),
            })
        }
        Scope::All => {
            let mut t = Targets::default();
            for a in relay_agents {
                let skip = |reason: &str| Skipped {
                    agent: a.id.as_str().to_owned(),
                    reason: reason.to_owned(),
                };
                let Some(der) = tessera_proto::b64_decode(&a.cert) else {
                    t.skipped
                        .push(skip("the relay's certificate is not base64"));
                    continue;
                };
                if !registry.issued_for(&a.id, &der) {
                    t.skipped.push(skip(
                        "not a live certificate the CA issued for this agent id",
                    ));
                    continue;
                }
                match ca.verify_agent(&der, now, revoked) {
                    Ok(c) if c.agent_id == a.id => {
                        if !t.certs.iter().any(|have| have.der == c.der) {
                            t.certs.push(c);
                        }
                    }
                    Ok(_) => t.skipped.push(skip("the certificate names another agent")),
                    Err(e) => t.skipped.push(skip(&e.to_string())),
                }
            }
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests;
