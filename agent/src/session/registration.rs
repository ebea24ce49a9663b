//! Registration as an explicit state machine (drawn in docs/protocol.md).
//!
//! The mode is chosen from what the store remembers: no registered wrap key → `first_registration`; a different
//! one → `key_regenerated`; the same → `warm_reconnect` listing at most [`MAX_HELD`] held credentials. The relay's
//! acknowledgement says whether a backfill follows; the agent counts deliveries and reports `online` when the
//! backfill is complete. A registration that is not acknowledged in time is sent again, after a wait that doubles
//! each time and differs a little from agent to agent ([`tessera_proto::backoff::resend_after_ms`]: a fleet that
//! registered at once must not keep a late relay busier). An acknowledgement that names another certificate than the
//! one registered with (a stale or replayed one) is not this registration's.

use tessera_proto::backoff::{resend_after_ms, spread_of_serial};
use tessera_proto::cert::CertSerial;
use tessera_proto::envelope::KeyFingerprint;
use tessera_proto::wire::{AgentState, Held, RegisterAck, RegistrationMode, MAX_HELD};

/// Chooses the registration mode. `own` are the wrap keys this agent holds besides the one it announces (during or
/// after a key rotation): a registration remembered with one of them is a warm reconnect, since every credential
/// held is still in the store (a rotation is not `key_regenerated`).
pub fn choose_mode(
    registered: Option<&KeyFingerprint>,
    current: &KeyFingerprint,
    own: &[KeyFingerprint],
) -> RegistrationMode {
    match registered {
        None => RegistrationMode::FirstRegistration,
        Some(fp) if fp == current || own.contains(fp) => RegistrationMode::WarmReconnect,
        Some(_) => RegistrationMode::KeyRegenerated,
    }
}

/// The held list for a warm reconnect: at most [`MAX_HELD`], newest-first by nothing but order; when more are held,
/// the rest are re-delivered by the relay and acknowledged without a write (same version, same commitment).
pub fn held_for_register(mode: RegistrationMode, mut held: Vec<Held>) -> Vec<Held> {
    if mode == RegistrationMode::WarmReconnect {
        held.truncate(MAX_HELD);
        held
    } else {
        Vec::new()
    }
}

/// Where registration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// No connection.
    Disconnected,
    /// Register sent at `sent_at_ms`, no acknowledgement yet.
    AwaitingAck {
        /// The mode sent.
        mode: RegistrationMode,
        /// When, in ms of the caller's clock.
        sent_at_ms: u64,
        /// The serial of the certificate registered with (an acknowledgement naming another is not this one's).
        serial: CertSerial,
        /// How many times it was sent again on this connection.
        resent: u32,
    },
    /// Acknowledged; backfilling until `received >= expected`.
    Backfilling {
        /// Deliveries announced.
        expected: u32,
        /// Deliveries stored so far.
        received: u32,
    },
    /// Registered and complete.
    Online,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// The broker accepted the connection; `mode` is what the store says now.
    Connected {
        /// The mode to register with.
        mode: RegistrationMode,
        /// Now, ms.
        now_ms: u64,
        /// The serial of the certificate this connection registers with.
        serial: CertSerial,
    },
    /// The connection dropped.
    Disconnected,
    /// The relay acknowledged.
    Ack(RegisterAck),
    /// A delivery was stored.
    Delivered,
    /// Time passed.
    Tick {
        /// Now, ms.
        now_ms: u64,
    },
}

/// What the session must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegAction {
    /// Publish a `register` with this mode.
    SendRegister(RegistrationMode),
    /// Publish this retained status.
    PublishStatus(AgentState),
    /// Remember that the current wrap key is registered.
    RememberRegistration,
}

impl Registration {
    /// The next state and the actions to take.
    pub fn handle(self, event: RegEvent, retry_ms: u64) -> (Self, Vec<RegAction>) {
        use RegAction as A;
        match (self, event) {
            (
                _,
                RegEvent::Connected {
                    mode,
                    now_ms,
                    serial,
                },
            ) => (
                Self::AwaitingAck {
                    mode,
                    sent_at_ms: now_ms,
                    serial,
                    resent: 0,
                },
                vec![A::SendRegister(mode)],
            ),
            (_, RegEvent::Disconnected) => (Self::Disconnected, vec![]),
            (Self::AwaitingAck { mode, serial, .. }, RegEvent::Ack(ack))
                if ack.mode == mode && ack.serial.as_ref().is_none_or(|s| *s == serial) =>
            {
                if ack.state == AgentState::Backfilling && ack.backfill > 0 {
                    (
                        Self::Backfilling {
                            expected: ack.backfill,
                            received: 0,
                        },
                        vec![
                            A::RememberRegistration,
                            A::PublishStatus(AgentState::Backfilling),
                        ],
                    )
                } else {
                    (
                        Self::Online,
                        vec![
                            A::RememberRegistration,
                            A::PublishStatus(AgentState::Online),
                        ],
                    )
                }
            }
            (
                Self::AwaitingAck {
                    mode,
                    sent_at_ms,
                    serial,
                    resent,
                },
                RegEvent::Tick { now_ms },
            ) if now_ms.saturating_sub(sent_at_ms)
                >= resend_after_ms(retry_ms, resent, spread_of_serial(serial.as_str())) =>
            {
                (
                    Self::AwaitingAck {
                        mode,
                        sent_at_ms: now_ms,
                        serial,
                        resent: resent.saturating_add(1),
                    },
                    vec![A::SendRegister(mode)],
                )
            }
            (Self::Backfilling { expected, received }, RegEvent::Delivered) => {
                let received = received.saturating_add(1);
                if received >= expected {
                    (Self::Online, vec![A::PublishStatus(AgentState::Online)])
                } else {
                    (Self::Backfilling { expected, received }, vec![])
                }
            }
            // Anything else (a stale or unsolicited ack, a delivery outside a backfill, an early tick) changes
            // nothing.
            (state, _) => (state, vec![]),
        }
    }
}

#[cfg(test)]
mod tests;
