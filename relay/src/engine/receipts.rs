//! Agents' signed receipts (docs/protocol.md, "Receipts"): an acknowledgement that changes what the relay records —
//! a credential stored, purged, a rotation completed — must carry the agent's receipt of it, signed by the identity
//! key of a certificate the agent registered with, naming exactly what is acknowledged. The relay checks it (an
//! acknowledgement without one is not recorded; the signatures of purge and rotation receipts are verified here, a
//! delivery's is left to the operators, see [`Engine::claimed_receipt`]) and keeps it with the row and the audit
//! entry, where the operator's
//! `tessera audit verify` checks it again against the CA's own registry: the relay cannot record a delivery, a
//! purge or a rotation that did not happen.

use tessera_proto::cert::AgentCertificate;
use tessera_proto::ids::AgentId;
use tessera_proto::receipt::{Receipt, ReceiptBody};

use super::Engine;
use crate::state::StateResult;

impl Engine {
    /// Makes sure the certificates `agent` registered with (the current one, and the previous one during a rotation)
    /// are parsed and verified against the pinned CA: once per registration, not per receipt.
    fn load_receipt_certs(&mut self, agent: &AgentId) -> StateResult<()> {
        let Some(rec) = self.store.agent(agent)? else {
            self.receipt_certs.remove(agent);
            return Ok(());
        };
        let serial = self.revocations.serial;
        if self
            .receipt_certs
            .get(agent)
            .is_some_and(|(der, s, _)| *der == rec.cert && *s == serial)
        {
            return Ok(());
        }
        let now = self.now_s();
        let certs: Vec<AgentCertificate> = std::iter::once(&rec.cert)
            .chain(rec.previous_cert.as_ref())
            .filter_map(|der| self.ca.verify_agent(der, now, &self.revocations).ok())
            .filter(|c| c.agent_id == *agent)
            .collect();
        self.receipt_certs
            .insert(agent.clone(), (rec.cert, serial, certs));
        Ok(())
    }

    /// Verifies `receipt` from `agent`: the body, when it is signed by one of the agent's registered certificates
    /// (the signature checked); otherwise why not. The outer error is the relay's own state failing.
    pub(crate) fn verify_receipt(
        &mut self,
        agent: &AgentId,
        receipt: Option<&Receipt>,
    ) -> StateResult<Result<ReceiptBody, String>> {
        self.check_receipt(agent, receipt, true)
    }

    /// A delivery's receipt: parsed and checked to name one of the agent's registered certificates, but its
    /// signature is left to the operators' `audit verify` and `cred show`, whose evidence it is. At one ECDSA
    /// verification per delivered credential it would double the relay's CPU per delivery, and it stops nothing: an
    /// agent that lies about storing holds the key to sign the lie (docs/threat-model.md, "Receipts the relay cannot
    /// forge").
    pub(crate) fn claimed_receipt(
        &mut self,
        agent: &AgentId,
        receipt: Option<&Receipt>,
    ) -> StateResult<Result<ReceiptBody, String>> {
        self.check_receipt(agent, receipt, false)
    }

    fn check_receipt(
        &mut self,
        agent: &AgentId,
        receipt: Option<&Receipt>,
        signature: bool,
    ) -> StateResult<Result<ReceiptBody, String>> {
        self.load_receipt_certs(agent)?;
        Ok(self.judge_receipt(agent, receipt, signature))
    }

    fn judge_receipt(
        &self,
        agent: &AgentId,
        receipt: Option<&Receipt>,
        signature: bool,
    ) -> Result<ReceiptBody, String> {
        let receipt = receipt.ok_or("no receipt")?;
        let claimed = receipt.claimed().map_err(|e| e.to_string())?;
        let cert = self
            .receipt_certs
            .get(agent)
            .and_then(|(_, _, certs)| certs.iter().find(|c| c.serial == claimed.signer_serial))
            .ok_or("signed by a certificate this agent has not registered with")?;
        if signature {
            receipt
                .verify_claimed(&claimed, cert)
                .map_err(|e| e.to_string())?;
        } else if claimed.agent != cert.agent_id {
            return Err("the receipt names another agent".to_owned());
        }
        Ok(claimed)
    }
}
