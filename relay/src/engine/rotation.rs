//! Agents' key rotations (docs/protocol.md, "Key rotation"). The relay queues each agent's renewal request for the
//! operators' offline CA, forwards the certificate an operator pushes, re-sends it while the agent has not switched,
//! records the agent's receipt of the switch, and alerts on a failed validation (`agent_rotation_failed`) and on an
//! agent inside the last part of its certificate's lifetime with no renewed certificate (`certificate_expiring`).
//!
//! It certifies nothing: a request is only checked against the agent's registered certificate (to keep junk out of
//! the queue), a pushed certificate must verify against the pinned CA and carry the queued request's keys, and the
//! agent itself verifies the certificate against its own pinned CA and keys before it switches.

use tessera_proto::ids::AgentId;
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::wire::{
    Down, RenewalCertificate, RenewalRequested, RotateKeys, RotationCompleted, RotationFailed,
};

use super::audit_event::AuditEvent;
use super::operator::OperatorError;
use super::{Engine, Outbound};
use crate::alerts::{AlertKind, Subject};
use crate::state::{RenewalRecord, RenewalState, StateResult};

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn certificate_message(to: AgentId, der: &[u8]) -> Outbound {
    Outbound {
        to,
        msg: Down::RenewalCertificate(RenewalCertificate { cert: der.to_vec() }),
    }
}

impl Engine {
    pub(super) fn on_renewal_requested(
        &mut self,
        agent: &AgentId,
        r: &RenewalRequested,
    ) -> StateResult<()> {
        let result: StateResult<Result<bool, String>> = (|| {
            let Some(rec) = self.store.agent(agent)? else {
                return Ok(Err("renewal request from an unregistered agent".into()));
            };
            let cert = match self
                .ca
                .verify_agent(&rec.cert, self.now_s(), &self.revocations)
            {
                Ok(c) => c,
                Err(e) => return Ok(Err(format!("renewal request: registered certificate: {e}"))),
            };
            if let Err(e) = r.request.verify(&cert) {
                return Ok(Err(format!("renewal request refused: {e}")));
            }
            if let Some(x) = self.store.renewal(agent)? {
                if x.request == r.request {
                    return Ok(Ok(false));
                }
                // A rotation's request replaces the one queued only if the agent made it later: an old request
                // replayed (by a broker, say) must not reopen a rotation that is certified or completed.
                if r.request.body.created_at <= x.request.body.created_at {
                    return Ok(Err(
                        "renewal request older than the one queued for this agent (a replay)"
                            .into(),
                    ));
                }
            }
            let now = self.now_ms();
            self.store.put_renewal(&RenewalRecord {
                agent: agent.clone(),
                state: RenewalState::Requested,
                request: r.request.clone(),
                cert: None,
                receipt: None,
                failure: None,
                requested_ms: now,
                updated_ms: now,
            })?;
            Ok(Ok(true))
        })();
        match result? {
            Ok(true) => {
                tracing::info!(
                    agent = agent.as_str(),
                    "renewal request queued for the operators' CA"
                );
                self.audit(AuditEvent::RenewalRequested {
                    agent,
                    serial: &r.request.body.current_serial,
                    request: hex(&r.request.digest()),
                })?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(reason) => self.drop_message(agent.as_str(), &reason),
        }
    }

    /// An operator pushes the certificate the CA issued for `agent`'s queued request; it is forwarded to the agent.
    pub(crate) fn renewal_certificate_staged(
        &mut self,
        agent: &AgentId,
        der: &[u8],
    ) -> Result<Vec<Outbound>, OperatorError> {
        let mut rec = self.store.renewal(agent)?.ok_or_else(|| {
            OperatorError::NotFound(format!("no renewal request queued for {}", agent.as_str()))
        })?;
        if rec.state == RenewalState::Completed {
            return Err(OperatorError::Conflict(format!(
                "{} already completed this rotation",
                agent.as_str()
            )));
        }
        let cert = self
            .ca
            .verify_agent(der, self.now_s(), &self.revocations)
            .map_err(|e| OperatorError::Statement(format!("certificate refused: {e}")))?;
        if cert.agent_id != *agent
            || cert.identity.spki_der() != rec.request.body.identity_spki.as_slice()
            || cert.wrap.spki_der() != rec.request.body.wrap_spki.as_slice()
        {
            return Err(OperatorError::Statement(format!(
                "the certificate is not for the keys of {}'s queued renewal request",
                agent.as_str()
            )));
        }
        rec.state = RenewalState::Certified;
        rec.cert = Some(der.to_vec());
        rec.failure = None;
        rec.updated_ms = self.now_ms();
        self.store.put_renewal(&rec)?;
        self.audit(AuditEvent::RenewalCertified {
            agent,
            serial: &cert.serial,
            renews: &rec.request.body.current_serial,
        })?;
        Ok(vec![certificate_message(agent.clone(), der)])
    }

    /// An operator asks `agent` to rotate its keys now.
    pub(crate) fn rotate_agent_staged(
        &mut self,
        agent: &AgentId,
    ) -> Result<Vec<Outbound>, OperatorError> {
        if self.store.agent(agent)?.is_none() {
            return Err(OperatorError::NotFound(format!(
                "no agent {}",
                agent.as_str()
            )));
        }
        self.audit(AuditEvent::RotationRequested { agent })?;
        Ok(vec![Outbound {
            to: agent.clone(),
            msg: Down::RotateKeys(RotateKeys {}),
        }])
    }

    /// At registration: a pushed certificate the agent has not switched to yet is sent again.
    pub(super) fn renewal_on_register(
        &mut self,
        agent: &AgentId,
        registered: &[u8],
    ) -> StateResult<Option<Outbound>> {
        let Some(rec) = self.store.renewal(agent)? else {
            return Ok(None);
        };
        Ok(match (&rec.state, &rec.cert) {
            (RenewalState::Certified, Some(der)) if der.as_slice() != registered => {
                Some(certificate_message(agent.clone(), der))
            }
            _ => None,
        })
    }

    pub(super) fn on_rotation_completed(
        &mut self,
        agent: &AgentId,
        r: &RotationCompleted,
    ) -> StateResult<()> {
        let body = match self.verify_receipt(agent, Some(&r.receipt))? {
            Ok(b) => b,
            Err(reason) => {
                return self.drop_message(
                    agent.as_str(),
                    &format!("rotation_completed without a valid receipt: {reason}"),
                );
            }
        };
        let ReceiptFact::Rotated {
            previous_serial,
            serial,
        } = body.fact.clone()
        else {
            return self.drop_message(
                agent.as_str(),
                "rotation_completed: the receipt is not a rotation's",
            );
        };
        let result: StateResult<Result<bool, &str>> = (|| {
            let Some(mut rec) = self.store.renewal(agent)? else {
                return Ok(Err(
                    "rotation_completed for a rotation the relay did not queue",
                ));
            };
            if rec.request.body.current_serial != previous_serial || serial != body.signer_serial {
                return Ok(Err(
                    "rotation_completed: the receipt names other certificates",
                ));
            }
            if rec.state == RenewalState::Completed {
                return Ok(Ok(false));
            }
            rec.state = RenewalState::Completed;
            rec.receipt = Some(r.receipt.clone());
            rec.failure = None;
            rec.updated_ms = self.now_ms();
            self.store.put_renewal(&rec)?;
            Ok(Ok(true))
        })();
        match result? {
            Ok(true) => {
                tracing::info!(agent = agent.as_str(), from = %previous_serial, to = %serial, "agent switched to its renewed certificate");
                self.audit(AuditEvent::RotationCompleted {
                    agent,
                    previous_serial: &previous_serial,
                    serial: &serial,
                    receipt: (&r.receipt, &body),
                })?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(reason) => self.drop_message(agent.as_str(), reason),
        }
    }

    pub(super) fn on_rotation_failed(
        &mut self,
        agent: &AgentId,
        f: &RotationFailed,
    ) -> StateResult<()> {
        let known = match self.store.renewal(agent)? {
            Some(mut rec) if rec.state != RenewalState::Completed => {
                rec.state = RenewalState::Failed;
                rec.failure = Some(f.reason);
                rec.updated_ms = self.now_ms();
                self.store.put_renewal(&rec)?;
                true
            }
            _ => false,
        };
        self.alert(
            AlertKind::AgentRotationFailed,
            Subject::Agent(agent),
            format!(
                "{} could not validate its renewed certificate {} ({:?}); it keeps the current one and asks \
                 again at {}",
                agent.as_str(),
                f.serial,
                f.reason,
                f.retry_at
            ),
        )?;
        self.audit(AuditEvent::RotationFailed {
            agent,
            serial: &f.serial,
            reason: format!("{:?}", f.reason),
            queued: known,
        })?;
        Ok(())
    }

    /// `certificate_expiring` for every agent past `cert_expiry_alert_percent` of its certificate's lifetime with
    /// no renewed certificate certified for it.
    pub(super) fn check_certificates(&mut self) -> StateResult<()> {
        let now = self.now_s();
        for a in self.store.agents()? {
            let (nb, na) = (a.cert_not_before, a.cert_not_after);
            if na <= nb {
                continue;
            }
            let threshold =
                nb.saturating_add((na - nb) / 100 * i64::from(self.cfg.cert_expiry_alert_percent));
            if now < threshold {
                continue;
            }
            let certified = self
                .store
                .renewal(&a.id)?
                .is_some_and(|r| r.state == RenewalState::Certified);
            if !certified {
                self.alert(
                    AlertKind::CertificateExpiring,
                    Subject::Agent(&a.id),
                    format!(
                        "the certificate of {} expires at {na} and no renewed certificate is certified for it (run \
                         `tessera ca renew --due`)",
                        a.id.as_str()
                    ),
                )?;
            }
        }
        Ok(())
    }
}
