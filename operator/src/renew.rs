//! `tessera ca renew`: the CA's side of agents' blue/green key rotations (docs/operations.md, "Rotating agent keys").
//!
//! The relay queues each agent's renewal request; this decides, for each, from the CA's own registry of issued
//! certificates and nothing the relay says:
//! - a **queued request** is signed only if it verifies against the live certificate the registry holds for that
//!   agent and serial (same agent, signed by that certificate's key, the new keys proven); a request the relay
//!   forged or altered is refused and named;
//! - a **completed rotation** (the agent's receipt of the switch, signed by the new key, verified against the
//!   registry) retires and revokes the old certificate once the grace period has passed.

use tessera_proto::admin::{RenewalState, RenewalView};
use tessera_proto::cert::{AgentCertificate, CertSerial, PinnedCa};
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::statement::RevocationList;

use crate::issued::Registry;
use crate::receipts;

/// What to do about one agent's rotation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Plan {
    /// Issue the green certificate for the request (it verified against `current`, boxed: a whole certificate).
    Sign(Box<AgentCertificate>),
    /// Push again the green certificate already issued for this request (a lost push).
    Repush(Vec<u8>),
    /// The request does not verify against the registry: nothing is signed.
    Refuse(String),
    /// Revoke the old certificate: the rotation completed (receipt verified) and the grace period has passed.
    Retire {
        /// The old (blue) serial.
        blue: CertSerial,
        /// The new (green) serial.
        green: CertSerial,
        /// When the agent switched (the receipt's time), Unix seconds.
        at: i64,
    },
    /// Nothing to do now; why.
    Wait(String),
}

/// The certificate `view`'s request renews, from the registry: issued for that agent, not replaced, verifying
/// against the CA now.
fn current(
    view: &RenewalView,
    registry: &Registry,
    ca: &PinnedCa,
    revoked: &RevocationList,
    now: i64,
) -> Result<AgentCertificate, String> {
    let body = &view.request.body;
    if body.agent_id != view.agent {
        return Err(format!(
            "the request names agent {}, the relay lists it for {}",
            body.agent_id.as_str(),
            view.agent.as_str()
        ));
    }
    let issued = registry
        .find(&body.agent_id, &body.current_serial)
        .ok_or_else(|| {
            format!(
                "certificate {} is not one the CA issued for {} (issued.json)",
                body.current_serial,
                body.agent_id.as_str()
            )
        })?;
    if issued.replaced_by.is_some() {
        return Err(format!(
            "certificate {} of {} was already replaced",
            body.current_serial,
            body.agent_id.as_str()
        ));
    }
    let der = tessera_proto::b64_decode(&issued.cert)
        .ok_or_else(|| "the registry's certificate is not base64".to_owned())?;
    ca.verify_agent(&der, now, revoked)
        .map_err(|e| format!("certificate {}: {e}", body.current_serial))
}

/// The plan for a queued or certified request.
fn plan_request(
    view: &RenewalView,
    registry: &Registry,
    ca: &PinnedCa,
    revoked: &RevocationList,
    now: i64,
) -> Plan {
    let cert = match current(view, registry, ca, revoked, now) {
        Ok(c) => c,
        Err(e) => return Plan::Refuse(e),
    };
    if let Err(e) = view.request.verify(&cert) {
        return Plan::Refuse(format!(
            "the renewal request does not verify against certificate {}: {e}",
            cert.serial
        ));
    }
    // Every green already issued for this blue: one for these very keys is pushed again (the push was lost, or the
    // agent has not switched yet); a request older than any of them is a replay (the agent asked again since).
    for green in registry.renewals_of(&view.agent, &cert.serial) {
        let Some(der) = tessera_proto::b64_decode(&green.cert) else {
            continue;
        };
        let Ok(g) = ca.verify_agent(&der, now, &RevocationList::empty()) else {
            continue;
        };
        if g.identity.spki_der() == view.request.body.identity_spki.as_slice()
            && g.wrap.spki_der() == view.request.body.wrap_spki.as_slice()
        {
            return if green.replaced_by.is_none() && !revoked.is_revoked(&g.serial) {
                Plan::Repush(der)
            } else {
                Plan::Refuse(format!(
                    "certificate {} was issued for this request and is retired or revoked since",
                    g.serial
                ))
            };
        }
        if view.request.body.created_at <= green.issued_at {
            return Plan::Refuse(format!(
                "the request (made at {}) is older than certificate {} already issued for this rotation (issued at \
                 {}): a replayed request",
                view.request.body.created_at, g.serial, green.issued_at
            ));
        }
    }
    Plan::Sign(Box::new(cert))
}

/// The plan for a completed rotation: retire blue after `grace_secs`.
fn plan_completed(
    view: &RenewalView,
    registry: &Registry,
    ca: &PinnedCa,
    revoked: &RevocationList,
    now: i64,
    grace_secs: i64,
) -> Plan {
    let Some(receipt) = &view.receipt else {
        return Plan::Refuse("completed without the agent's receipt".into());
    };
    let body = match receipts::verify(receipt, registry, ca, revoked) {
        Ok(b) => b,
        Err(e) => return Plan::Refuse(format!("the rotation receipt does not verify: {e}")),
    };
    let ReceiptFact::Rotated {
        previous_serial,
        serial,
    } = body.fact
    else {
        return Plan::Refuse("the receipt is not a rotation's".into());
    };
    if body.agent != view.agent
        || previous_serial != view.request.body.current_serial
        || registry
            .find(&view.agent, &serial)
            .and_then(|g| g.renews.as_ref())
            != Some(&previous_serial)
    {
        return Plan::Refuse(
            "the rotation receipt names certificates this CA did not issue for this rotation"
                .into(),
        );
    }
    if revoked.is_revoked(&previous_serial) {
        return Plan::Wait(format!("done: {previous_serial} is revoked"));
    }
    if now < body.at.saturating_add(grace_secs) {
        return Plan::Wait(format!(
            "completed; {previous_serial} is revoked by a `ca renew --due` run {} s from now (--grace-secs {grace_secs} \
             after the switch)",
            body.at.saturating_add(grace_secs).saturating_sub(now)
        ));
    }
    Plan::Retire {
        blue: previous_serial,
        green: serial,
        at: body.at,
    }
}

/// The plan for one agent's rotation as the relay lists it.
pub fn plan(
    view: &RenewalView,
    registry: &Registry,
    ca: &PinnedCa,
    revoked: &RevocationList,
    now: i64,
    grace_secs: i64,
) -> Plan {
    match view.state {
        RenewalState::Requested => plan_request(view, registry, ca, revoked, now),
        RenewalState::Certified => {
            Plan::Wait("certified; the agent validates the new certificate and switches".into())
        }
        RenewalState::Completed => plan_completed(view, registry, ca, revoked, now, grace_secs),
        RenewalState::Failed => Plan::Wait(format!(
            "the agent could not validate its renewed certificate ({}); it will ask again",
            view.failure
                .map_or_else(|| "unknown reason".to_owned(), |f| format!("{f:?}"))
        )),
        _ => Plan::Wait("unknown state".into()),
    }
}

#[cfg(test)]
mod tests;
