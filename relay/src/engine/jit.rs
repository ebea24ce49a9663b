//! JIT repair: a workload on `agent` asked for a credential the agent lacks.
//!
//! Dispatch starts at once; a per-agent token bucket answers `RATE_LIMITED`; more than
//! `missing_flood_threshold` events in the window raise `agent_credential_flood`; every internal condition maps
//! to a public reason (`DISPATCH_BACKPRESSURE` → `BACKEND_BUSY`), so nothing internal reaches a possibly
//! compromised agent.

use tessera_proto::ids::AgentId;
use tessera_proto::wire::{CredentialMissing, CredentialUnavailable, Down, PublicReason};

use super::audit_event::AuditEvent;
use super::{log_state, Engine, Outbound};
use crate::alerts::{AlertKind, Subject};
use crate::coordination::Window;
use crate::state::StateResult;

/// Internal reasons a JIT request is not served, and the public reason each becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitRefusal {
    /// The agent's token bucket is empty.
    RateLimited,
    /// Too many rewraps in flight relay-wide.
    DispatchBackpressure,
    /// No live credential has that name.
    UnknownName,
    /// The credential's scope does not include the agent.
    OutOfScope,
    /// The relay's state failed.
    StateFailure,
}

impl JitRefusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::DispatchBackpressure => "dispatch_backpressure",
            Self::UnknownName => "unknown_name",
            Self::OutOfScope => "out_of_scope",
            Self::StateFailure => "state_failure",
        }
    }

    /// What the agent is told.
    pub fn public(self) -> PublicReason {
        match self {
            Self::RateLimited => PublicReason::RateLimited,
            Self::DispatchBackpressure | Self::StateFailure => PublicReason::BackendBusy,
            Self::UnknownName => PublicReason::NotFound,
            Self::OutOfScope => PublicReason::NotGranted,
        }
    }
}

impl Engine {
    pub(super) fn on_missing(
        &mut self,
        agent: &AgentId,
        m: &CredentialMissing,
    ) -> StateResult<Vec<Outbound>> {
        let now = self.now_ms();
        let missing = self
            .coord
            .record(Window::MissingFlood, agent, now, self.cfg.flood_window_ms);
        if missing > self.cfg.missing_flood_threshold {
            self.alert(
                AlertKind::AgentCredentialFlood,
                Subject::Agent(agent),
                format!(
                    "{} asked for more than {} missing credentials in the window",
                    agent.as_str(),
                    self.cfg.missing_flood_threshold
                ),
            )?;
        }
        match self.jit(agent, m) {
            Ok(out) => {
                *self.metrics.jit.entry("dispatched").or_default() += 1;
                Ok(out)
            }
            Err(refusal) => {
                *self.metrics.jit.entry(refusal.as_str()).or_default() += 1;
                match refusal {
                    JitRefusal::RateLimited => self.metrics.rate_limited += 1,
                    // The workload is answered at once rather than left to its timeout. Nothing of the event is
                    // kept, and nothing is written (not even the audit entry), so the answer goes out while the
                    // store fails: the failure was logged where it happened.
                    JitRefusal::StateFailure => {
                        self.resync();
                        return Ok(vec![refusal_message(agent, m, refusal)]);
                    }
                    _ => {}
                }
                self.audit(AuditEvent::JitRefused {
                    agent,
                    name: &m.name,
                    reason: format!("{refusal:?}"),
                })?;
                Ok(vec![refusal_message(agent, m, refusal)])
            }
        }
    }

    fn jit(&mut self, agent: &AgentId, m: &CredentialMissing) -> Result<Vec<Outbound>, JitRefusal> {
        if !self.jit_limiter.allow(agent, self.now_ms()) {
            return Err(JitRefusal::RateLimited);
        }
        let state = |e| {
            log_state(&e);
            JitRefusal::StateFailure
        };
        let c = self
            .store
            .credential_by_name(&m.name)
            .map_err(state)?
            .filter(|c| !c.deleted)
            .ok_or(JitRefusal::UnknownName)?;
        if !c.scope.includes(agent) {
            return Err(JitRefusal::OutOfScope);
        }
        if self.in_flight_count() >= self.cfg.max_in_flight {
            return Err(JitRefusal::DispatchBackpressure);
        }
        // Make sure a delivery row exists (a credential granted since the last registration).
        if self.store.delivery(&c.id, agent).map_err(state)?.is_none() {
            self.ensure_row(&c, agent).map_err(state)?;
        }
        self.start_delivery(&c.id, agent, Some(m.request_id))
            .map_err(state)
    }
}

/// The workload's typed answer to a refused JIT request.
fn refusal_message(agent: &AgentId, m: &CredentialMissing, refusal: JitRefusal) -> Outbound {
    Outbound {
        to: agent.clone(),
        msg: Down::CredentialUnavailable(CredentialUnavailable {
            request_id: m.request_id,
            name: m.name.clone(),
            reason: refusal.public(),
        }),
    }
}
