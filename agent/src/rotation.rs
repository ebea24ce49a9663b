//! Blue/green rotation of the agent's own keys and certificate, as one persisted state machine (drawn in
//! docs/protocol.md, "Key rotation"). Pure: [`Rotation::handle`] takes the state, an event and the context and
//! returns the next state and the actions; `core::rotate` carries the actions out, each step in one atomic store
//! batch together with the state it leads to, so a SIGKILL at any point resumes from one step or the next.
//!
//! - **blue active**: the certificate in use (blue). At the configured share of its lifetime (half by default), or
//!   when an operator asks (`tessera agents rotate`), the agent generates new identity and wrap keys (green) and
//!   sends a renewal request signed by both identity keys → **green issued**.
//! - **green issued**: the request is queued at the relay for the operator's offline CA (`tessera ca renew`); sent
//!   again at each registration and every `resend_secs`.
//! - **green certified**: the CA's certificate for the green keys arrived and verified against the pinned CA and the
//!   green keys. Once the agent is online (not backfilling) →
//! - **green validating**: the session reconnects to the broker with the green certificate and registers with it.
//!   The relay's acknowledgement completes the round trip → **green active**. No acknowledgement within
//!   `validate_secs` (the broker refused the certificate, or the relay did not answer): back to blue, green
//!   discarded, `rotation_failed` sent (the relay alerts), retried later with backoff.
//! - **green active**: the keys are switched; the blue wrap key is kept decrypt-only (grace period: envelopes sealed
//!   to blue still open) until a CA-signed revocation list names the blue certificate (the operator's `tessera ca
//!   renew` revokes it after the grace period), it expires, or green is itself due for renewal; then it is
//!   destroyed → blue active again (green is the new blue).
//!
//! A green certificate that stops verifying before the switch (revoked, expired) is given up like a failed
//! validation; a request the CA leaves unanswered for `resend_secs` is started over on an operator's request.
//!
//! What this does not do: certify anything. The relay can ask for a rotation and forward a certificate, but only a
//! certificate from the pinned org CA for this agent's green keys is ever switched to.

use serde::{Deserialize, Serialize};
use tessera_proto::cert::CertSerial;
use tessera_proto::wire::RotationFailure;

/// Where a rotation stands (persisted as `self/rotation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rotation {
    /// The certificate in use is the only one; the next automatic rotation waits for `retry_at` after failures.
    BlueActive {
        /// Failed validations since the last completed rotation.
        failures: u32,
        /// No automatic rotation before this, Unix seconds.
        retry_at: i64,
    },
    /// Green keys generated and the renewal request sent; waiting for the CA's certificate.
    GreenIssued {
        /// Failed validations before this attempt.
        failures: u32,
        /// When the request was last sent, Unix seconds.
        sent_at: i64,
    },
    /// The CA's certificate for the green keys is stored; validation starts once the agent is online.
    GreenCertified {
        /// Failed validations before this attempt.
        failures: u32,
        /// The green certificate's serial.
        serial: CertSerial,
    },
    /// The session uses the green certificate; waiting for the relay's acknowledgement of its registration.
    GreenValidating {
        /// Failed validations before this attempt.
        failures: u32,
        /// The green certificate's serial.
        serial: CertSerial,
        /// When the switch started, Unix seconds.
        started_at: i64,
        /// Whether the broker accepted a connection with it.
        connected: bool,
    },
    /// Switched to green; blue's wrap key is kept to open envelopes sealed to it until blue is revoked or expires.
    GreenActive {
        /// The blue certificate's serial.
        blue_serial: CertSerial,
        /// Its end of validity, Unix seconds.
        blue_not_after: i64,
        /// When the switch was made, Unix seconds.
        since: i64,
    },
}

impl Default for Rotation {
    fn default() -> Self {
        Self::BlueActive {
            failures: 0,
            retry_at: 0,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationEvent {
    /// Time passed.
    Tick,
    /// An operator asked for a rotation now (through the relay).
    RotateRequested,
    /// The broker accepted a connection.
    Connected,
    /// The relay acknowledged a registration.
    Registered,
    /// A certificate for the green keys arrived and verified (serial given).
    Certified(CertSerial),
    /// The blue certificate is on the newest revocation list.
    BlueRevoked,
    /// The stored green certificate no longer verifies (revoked or expired before the switch).
    GreenUnusable,
}

/// The rotation policy (`[rotation]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate automatically at all.
    pub automatic: bool,
    /// At which share of the certificate's lifetime, percent (1..=99).
    pub renew_at_percent: u8,
    /// How long the green certificate has to be accepted by the broker and acknowledged by the relay, seconds.
    pub validate_secs: i64,
    /// How often an unanswered renewal request is sent again, seconds.
    pub resend_secs: i64,
    /// Backoff after the first failed validation, seconds (doubled per failure).
    pub retry_min_secs: i64,
    /// Longest backoff, seconds.
    pub retry_max_secs: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            automatic: true,
            renew_at_percent: 50,
            validate_secs: 60,
            resend_secs: 3_600,
            retry_min_secs: 3_600,
            retry_max_secs: 86_400,
        }
    }
}

/// What the state machine needs to know besides the event.
#[derive(Debug, Clone)]
pub struct Context {
    /// Now, Unix seconds.
    pub now: i64,
    /// The certificate in use: (not before, not after, serial).
    pub active: (i64, i64, CertSerial),
    /// Whether the agent is registered and not backfilling (a validation may interrupt the session).
    pub online: bool,
    /// The policy.
    pub policy: Policy,
}

/// What the caller must do (in order), with the next state written in the same store batch where keys change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationAction {
    /// Generate green keys, store them with the renewal request and the next state, send the request.
    GenerateAndRequest,
    /// Send the stored renewal request again.
    SendRequest,
    /// Store the green certificate (it arrived with the event) with the next state.
    StoreCertificate,
    /// Reconnect the session with the green certificate (green's wrap key opens envelopes from now on).
    StartValidation,
    /// Switch the keys (green becomes the active identity, blue's wrap key decrypt-only) with the next state; send
    /// `rotation_completed` with a receipt signed by the green key.
    Commit,
    /// Send `rotation_completed` again (at each registration while blue is kept).
    SendCompleted,
    /// Reconnect with blue, discard green, store the next state, send `rotation_failed`.
    Abandon {
        /// Why.
        reason: RotationFailure,
        /// The green serial that failed.
        serial: CertSerial,
        /// When the agent will try again, Unix seconds.
        retry_at: i64,
    },
    /// Destroy blue's wrap key, store the next state.
    DestroyBlue,
    /// Only store the next state.
    Persist,
}

/// When a certificate valid from `not_before` to `not_after` is due for renewal.
pub fn due_at(not_before: i64, not_after: i64, percent: u8) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    not_before.saturating_add(lifetime / 100 * i64::from(percent))
}

/// The backoff after `failures` failed validations (the first waits `retry_min_secs`, then doubles).
pub fn backoff(policy: &Policy, failures: u32) -> i64 {
    let shift = failures.saturating_sub(1).min(30);
    policy
        .retry_min_secs
        .saturating_mul(1_i64 << shift)
        .min(policy.retry_max_secs)
}

impl Rotation {
    /// The next state and the actions: one function per state, each transition of the diagram in one arm.
    /// Anything a state does not expect (a request during a rotation, a certificate nobody asked for, an early tick)
    /// changes nothing.
    pub fn handle(self, event: &RotationEvent, ctx: &Context) -> (Self, Vec<RotationAction>) {
        match self {
            Self::BlueActive { failures, retry_at } => blue_active(failures, retry_at, event, ctx),
            Self::GreenIssued { failures, sent_at } => green_issued(failures, sent_at, event, ctx),
            Self::GreenCertified { failures, serial } => {
                green_certified(failures, serial, event, ctx)
            }
            Self::GreenValidating {
                failures,
                serial,
                started_at,
                connected,
            } => green_validating(failures, serial, started_at, connected, event, ctx),
            active @ Self::GreenActive { .. } => green_active(active, event, ctx),
        }
    }

    /// The state to resume from after a restart: a validation that was under way starts again (the session comes
    /// up with blue, the committed identity); every other state resumes as it is.
    #[must_use]
    pub fn resume(self) -> Self {
        match self {
            Self::GreenValidating {
                failures, serial, ..
            } => Self::GreenCertified { failures, serial },
            other => other,
        }
    }

    /// The state's name, as docs/protocol.md and the local audit spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BlueActive { .. } => "blue_active",
            Self::GreenIssued { .. } => "green_issued",
            Self::GreenCertified { .. } => "green_certified",
            Self::GreenValidating { .. } => "green_validating",
            Self::GreenActive { .. } => "green_active",
        }
    }
}

fn blue_active(
    failures: u32,
    retry_at: i64,
    event: &RotationEvent,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    let start = || {
        (
            Rotation::GreenIssued {
                failures,
                sent_at: ctx.now,
            },
            vec![RotationAction::GenerateAndRequest],
        )
    };
    match event {
        RotationEvent::Tick => {
            let (not_before, not_after, _) = &ctx.active;
            let due = due_at(*not_before, *not_after, ctx.policy.renew_at_percent);
            if ctx.policy.automatic && ctx.now >= due && ctx.now >= retry_at {
                start()
            } else {
                (Rotation::BlueActive { failures, retry_at }, vec![])
            }
        }
        RotationEvent::RotateRequested => start(),
        _ => (Rotation::BlueActive { failures, retry_at }, vec![]),
    }
}

fn green_issued(
    failures: u32,
    sent_at: i64,
    event: &RotationEvent,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    let resend = || {
        (
            Rotation::GreenIssued {
                failures,
                sent_at: ctx.now,
            },
            vec![RotationAction::SendRequest, RotationAction::Persist],
        )
    };
    match event {
        RotationEvent::Registered => resend(),
        RotationEvent::Tick if ctx.now.saturating_sub(sent_at) >= ctx.policy.resend_secs => {
            resend()
        }
        // The CA has not answered for resend_secs and an operator asks again: start over with new keys (a request
        // lost for good, or refused by the CA, must not hold the rotation until the certificate expires).
        RotationEvent::RotateRequested
            if ctx.now.saturating_sub(sent_at) >= ctx.policy.resend_secs =>
        {
            (
                Rotation::GreenIssued {
                    failures,
                    sent_at: ctx.now,
                },
                vec![RotationAction::GenerateAndRequest],
            )
        }
        RotationEvent::Certified(serial) => (
            Rotation::GreenCertified {
                failures,
                serial: serial.clone(),
            },
            vec![RotationAction::StoreCertificate],
        ),
        _ => (Rotation::GreenIssued { failures, sent_at }, vec![]),
    }
}

/// Green given up before the switch: back to blue with backoff, the failure reported.
fn give_up(
    failures: u32,
    serial: CertSerial,
    reason: RotationFailure,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    let failures = failures.saturating_add(1);
    let retry_at = ctx.now.saturating_add(backoff(&ctx.policy, failures));
    (
        Rotation::BlueActive { failures, retry_at },
        vec![RotationAction::Abandon {
            reason,
            serial,
            retry_at,
        }],
    )
}

fn green_certified(
    failures: u32,
    serial: CertSerial,
    event: &RotationEvent,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    match event {
        RotationEvent::GreenUnusable => {
            give_up(failures, serial, RotationFailure::CertificateInvalid, ctx)
        }
        RotationEvent::Tick | RotationEvent::Registered if ctx.online => (
            Rotation::GreenValidating {
                failures,
                serial,
                started_at: ctx.now,
                connected: false,
            },
            vec![RotationAction::Persist, RotationAction::StartValidation],
        ),
        _ => (Rotation::GreenCertified { failures, serial }, vec![]),
    }
}

fn green_validating(
    failures: u32,
    serial: CertSerial,
    started_at: i64,
    connected: bool,
    event: &RotationEvent,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    match event {
        RotationEvent::Connected => (
            Rotation::GreenValidating {
                failures,
                serial,
                started_at,
                connected: true,
            },
            vec![],
        ),
        RotationEvent::Registered => {
            let (_, blue_not_after, blue_serial) = &ctx.active;
            (
                Rotation::GreenActive {
                    blue_serial: blue_serial.clone(),
                    blue_not_after: *blue_not_after,
                    since: ctx.now,
                },
                vec![RotationAction::Commit],
            )
        }
        RotationEvent::GreenUnusable => {
            give_up(failures, serial, RotationFailure::CertificateInvalid, ctx)
        }
        RotationEvent::Tick if ctx.now.saturating_sub(started_at) >= ctx.policy.validate_secs => {
            let reason = if connected {
                RotationFailure::NoRegisterAck
            } else {
                RotationFailure::BrokerRefused
            };
            give_up(failures, serial, reason, ctx)
        }
        _ => (
            Rotation::GreenValidating {
                failures,
                serial,
                started_at,
                connected,
            },
            vec![],
        ),
    }
}

fn green_active(
    active: Rotation,
    event: &RotationEvent,
    ctx: &Context,
) -> (Rotation, Vec<RotationAction>) {
    // Blue goes when it is revoked, when it expires, or when green (the certificate in use) is itself due for
    // renewal: a relay that withholds the list naming blue must not hold the next rotation back.
    let (not_before, not_after, _) = &ctx.active;
    let green_due = ctx.now >= due_at(*not_before, *not_after, ctx.policy.renew_at_percent);
    let expired = green_due
        || matches!(&active, Rotation::GreenActive { blue_not_after, .. } if ctx.now > *blue_not_after);
    match event {
        RotationEvent::Registered => (active, vec![RotationAction::SendCompleted]),
        RotationEvent::BlueRevoked => (Rotation::default(), vec![RotationAction::DestroyBlue]),
        RotationEvent::Tick if expired => (Rotation::default(), vec![RotationAction::DestroyBlue]),
        _ => (active, vec![]),
    }
}

#[cfg(test)]
mod tests;
