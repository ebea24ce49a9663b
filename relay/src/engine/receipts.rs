//! Agents' signed receipts (docs/protocol.md, "Receipts"): an acknowledgement that changes what the relay records —
//! a credential stored, purged, a rotation completed — must carry the agent's receipt of it, signed by the identity
//! key of a certificate the agent registered with, naming exactly what is acknowledged. The relay checks it (an
//! acknowledgement without one is not recorded) and keeps it with the row and the audit entry, where the operator's
//! `tessera audit verify` checks it again against the CA's own registry: the relay cannot record a delivery, a
//! purge or a rotation that did not happen.

use tessera_proto::cert::AgentCertificate;
use tessera_proto::ids::AgentId;
use tessera_proto::receipt::{Receipt, ReceiptBody};

use super::Engine;

impl Engine {
    /// The certificates `agent` registered with (the current one, and the previous one during a rotation), parsed
    /// and verified against the pinned CA once per registration.
    fn receipt_certs(&mut self, agent: &AgentId) -> Vec<AgentCertificate> {
        let Ok(Some(rec)) = self.store.agent(agent) else {
            return Vec::new();
        };
        if let Some((der, certs)) = self.receipt_certs.get(agent) {
            if *der == rec.cert {
                return certs.clone();
            }
        }
        let now = self.now_s();
        let certs: Vec<AgentCertificate> = std::iter::once(&rec.cert)
            .chain(rec.previous_cert.as_ref())
            .filter_map(|der| self.ca.verify_agent(der, now, &self.revocations).ok())
            .filter(|c| c.agent_id == *agent)
            .collect();
        self.receipt_certs
            .insert(agent.clone(), (rec.cert.clone(), certs.clone()));
        certs
    }

    /// Verifies `receipt` from `agent`: the body, when it is signed by one of the agent's registered certificates.
    pub(crate) fn verify_receipt(
        &mut self,
        agent: &AgentId,
        receipt: Option<&Receipt>,
    ) -> Result<ReceiptBody, String> {
        let receipt = receipt.ok_or("no receipt")?;
        let claimed = receipt.claimed().map_err(|e| e.to_string())?;
        let certs = self.receipt_certs(agent);
        let cert = certs
            .iter()
            .find(|c| c.serial == claimed.signer_serial)
            .ok_or("signed by a certificate this agent has not registered with")?;
        receipt.verify(cert).map_err(|e| e.to_string())
    }
}

/// A receipt as the audit trail keeps it: its JSON.
pub(crate) fn audit_text(receipt: &Receipt) -> String {
    serde_json::to_string(receipt).unwrap_or_default()
}
