//! The lifecycle of one in-flight delivery (a credential version on its way to a target), as a typed state machine:
//! the [`Stage`] it is in, and pure transitions that take the stage, the event, the time and (where a peer is asked)
//! a fresh nonce, and return a [`Step`]: the next stage, or how the delivery ends. docs/protocol.md draws this enum
//! ("Relay: a delivery (state machines)"). The delivery row's half is here too: a failed attempt's backoff or
//! retirement ([`attempt_failed`]) and a delivery's reset ([`row_delivered`]).
//!
//! What this file does not do: read or write the store, choose a peer, send anything, audit or alert. The engine
//! (`engine/dispatch.rs`, `engine/reconcile.rs`) gathers what a transition needs, calls it, and stages the step's
//! effects in the event's one commit. So the binding checks and the routing of every answer are tested here without
//! a database, a broker or a clock (`lifecycle/tests.rs`).
//!
//! The record keeps the JSON layout relays have stored since the first release (a flat `peer`, `nonce` and `stage`),
//! so stores written before the enum existed read unchanged (see [`StoredPending`] for the one field dropped).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::{Nonce, PublicReason, RefusalReason};

use crate::schedule::{Backoff, Next};
use crate::state::{DeliveryRow, DeliveryState};

/// Where the envelope sent to the target came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A peer rewrapped its copy to the target's key.
    Peer(AgentId),
    /// An operator sealed it to the target's current key; no peer was involved.
    Operator,
}

impl Source {
    /// The name the audit trail and alerts give it.
    pub fn name(&self) -> &str {
        match self {
            Self::Peer(a) => a.as_str(),
            Self::Operator => "operator",
        }
    }
}

/// Where an in-flight delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `peer` was asked to rewrap; its answer must echo `nonce`.
    AwaitingPeer {
        /// The peer asked.
        peer: AgentId,
        /// The nonce it must echo.
        nonce: Nonce,
    },
    /// The envelope went to the target; its acknowledgement must carry the creator's commitment.
    AwaitingTarget {
        /// Where the envelope came from.
        source: Source,
    },
}

/// What identifies a dispatch from its start to its end, whatever its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// Request id (to the peer) and delivery id (to the target).
    pub request_id: uuid::Uuid,
    /// Credential.
    pub credential: CredentialId,
    /// Version.
    pub version: u64,
    /// Target.
    pub target: AgentId,
    /// The JIT request this serves.
    pub jit: Option<uuid::Uuid>,
    /// Sequence number of the write-ahead audit entry (`rewrap_pending`).
    pub audit_seq: u64,
}

/// An in-flight delivery: the record the store keeps while a rewrap (or an operator envelope) is under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredPending", into = "StoredPending")]
pub struct PendingRewrap {
    /// Request id (to the peer) and delivery id (to the target).
    pub request_id: uuid::Uuid,
    /// Credential.
    pub credential: CredentialId,
    /// Version.
    pub version: u64,
    /// Target.
    pub target: AgentId,
    /// Peers asked so far, in order.
    pub tried: Vec<AgentId>,
    /// Where it stands.
    pub stage: Stage,
    /// When the current stage times out, Unix ms.
    pub deadline_ms: u64,
    /// The JIT request this serves.
    pub jit: Option<uuid::Uuid>,
    /// Sequence number of the write-ahead audit entry.
    pub audit_seq: u64,
}

/// The clock and the one number every transition that sets a deadline needs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Now, Unix ms.
    pub now_ms: u64,
    /// How long a peer (and then the target) has to answer, ms.
    pub peer_timeout_ms: u64,
}

impl Timing {
    fn deadline(self) -> u64 {
        self.now_ms.saturating_add(self.peer_timeout_ms)
    }
}

/// A peer's `rewrap_response`, as received.
#[derive(Debug)]
pub struct PeerAnswer<'a> {
    /// The agent whose topic it came on.
    pub from: &'a AgentId,
    /// The peer it names inside.
    pub claimed_peer: &'a AgentId,
    /// The nonce it echoes.
    pub nonce: &'a Nonce,
    /// The credential it is for.
    pub credential: CredentialId,
    /// The version it is for.
    pub version: u64,
    /// Whether the key it sealed to is the target's registered wrap key.
    pub target_key_current: bool,
}

/// The target's `credential_stored`, as received and checked by the engine (the digest against the creator's
/// commitment, the receipt against the target's certificate).
#[derive(Debug)]
pub struct TargetAnswer<'a> {
    /// The agent whose topic it came on.
    pub from: &'a AgentId,
    /// The credential it is for.
    pub credential: CredentialId,
    /// The version it is for.
    pub version: u64,
    /// What it reports.
    pub outcome: TargetOutcome,
}

/// What the target reported, as the engine judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOutcome {
    /// Stored, with a digest equal to the commitment and a receipt for exactly this delivery.
    Verified,
    /// Stored with the right digest, but the receipt does not verify or is for something else (why).
    BadReceipt(String),
    /// The plaintext does not match the commitment (reported as a mismatch, or a stored digest that differs).
    Mismatch,
    /// Refused.
    Refused(RefusalReason),
    /// An outcome this relay does not know.
    Unknown,
}

/// An answer that does not fit the delivery as it stands (the reason is audited as `unsolicited_response`);
/// nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsolicited(pub String);

impl Unsolicited {
    fn new(reason: &str) -> Self {
        Self(reason.to_owned())
    }
}

/// Where a delivery goes after an event other than a peer's valid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The source failed this attempt (refused, timed out, sealed something the target cannot open): ask the next
    /// peer, with `0` as the record so far.
    NextPeer(PendingRewrap),
    /// The target stored it and proved it: the delivery is done.
    Delivered(Source),
    /// The target's plaintext did not match the commitment: `source` is attributed, the waiting workload (if any)
    /// is told, and the delivery goes on with the next peer from `next` (which no longer carries the JIT request).
    Mismatch {
        /// Whom to attribute.
        source: Source,
        /// The record to go on with.
        next: PendingRewrap,
    },
    /// The delivery ends without delivery (`result` for the audit trail, `reason` for a waiting workload).
    Fail {
        /// Internal result.
        result: String,
        /// Public reason.
        reason: PublicReason,
    },
}

impl PendingRewrap {
    /// A dispatch that asks `peer` first.
    pub fn ask_first(d: Dispatch, peer: AgentId, nonce: Nonce, t: Timing) -> Self {
        Self {
            request_id: d.request_id,
            credential: d.credential,
            version: d.version,
            target: d.target,
            tried: vec![peer.clone()],
            stage: Stage::AwaitingPeer { peer, nonce },
            deadline_ms: t.deadline(),
            jit: d.jit,
            audit_seq: d.audit_seq,
        }
    }

    /// A dispatch of an envelope an operator sealed to the target's current key: straight to the target.
    pub fn operator_envelope(d: Dispatch, t: Timing) -> Self {
        Self {
            request_id: d.request_id,
            credential: d.credential,
            version: d.version,
            target: d.target,
            tried: Vec::new(),
            stage: Stage::AwaitingTarget {
                source: Source::Operator,
            },
            deadline_ms: t.deadline(),
            jit: d.jit,
            audit_seq: d.audit_seq,
        }
    }

    /// What identifies this dispatch.
    pub fn dispatch(&self) -> Dispatch {
        Dispatch {
            request_id: self.request_id,
            credential: self.credential,
            version: self.version,
            target: self.target.clone(),
            jit: self.jit,
            audit_seq: self.audit_seq,
        }
    }

    /// The peer currently asked, if the delivery waits for one.
    pub fn awaited_peer(&self) -> Option<&AgentId> {
        match &self.stage {
            Stage::AwaitingPeer { peer, .. } => Some(peer),
            Stage::AwaitingTarget { .. } => None,
        }
    }

    /// Whether another peer may be asked (at most `max_peers` per dispatch).
    pub fn may_ask_another(&self, max_peers: usize) -> bool {
        self.tried.len() < max_peers
    }

    /// Asks `peer` (chosen by the engine among the eligible ones, `None` when there is none) with a fresh nonce, or
    /// ends the dispatch: `NO_PEER` when no peer was ever asked, `TIMEOUT` when those asked all failed.
    pub fn ask(
        &mut self,
        peer: Option<AgentId>,
        nonce: Nonce,
        t: Timing,
    ) -> Result<(), PublicReason> {
        let Some(peer) = peer else {
            return Err(if self.tried.is_empty() {
                PublicReason::NoPeer
            } else {
                PublicReason::Timeout
            });
        };
        self.tried.push(peer.clone());
        self.stage = Stage::AwaitingPeer { peer, nonce };
        self.deadline_ms = t.deadline();
        Ok(())
    }

    /// A peer's answer: the bindings (stage, nonce in constant time, the peer on the topic and inside, the
    /// credential version, the target's current key); when they hold, the record that relays its envelope to the
    /// target.
    pub fn on_peer_answer(&self, a: &PeerAnswer<'_>, t: Timing) -> Result<Self, Unsolicited> {
        let Stage::AwaitingPeer { peer, nonce } = &self.stage else {
            return Err(Unsolicited::new("WRONG_STAGE"));
        };
        let refusal = if !bool::from(a.nonce.ct_eq(nonce)) {
            Some("NONCE_MISMATCH")
        } else if a.from != peer || a.claimed_peer != a.from {
            Some("PEER_MISMATCH")
        } else if a.credential != self.credential || a.version != self.version {
            Some("CREDENTIAL_MISMATCH")
        } else if !a.target_key_current {
            Some("TARGET_KEY_MISMATCH")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(Unsolicited::new(reason));
        }
        let mut next = self.clone();
        next.stage = Stage::AwaitingTarget {
            source: Source::Peer(peer.clone()),
        };
        next.deadline_ms = t.deadline();
        Ok(next)
    }

    /// A peer's `rewrap_refused`: from the peer asked, echoing its nonce, while it is awaited; then the next peer.
    pub fn on_peer_refused(&self, from: &AgentId, echoed: &Nonce) -> Result<Step, Unsolicited> {
        match &self.stage {
            Stage::AwaitingPeer { peer, nonce }
                if peer == from && bool::from(echoed.ct_eq(nonce)) =>
            {
                Ok(Step::NextPeer(self.clone()))
            }
            _ => Err(Unsolicited::new("REFUSAL_MISMATCH")),
        }
    }

    /// Whether an acknowledgement from `from` for (`credential`, `version`) is the one this delivery awaits: the
    /// target's, for this version, once the envelope went to it. The engine asks before it judges what the
    /// acknowledgement reports (its receipt), so nobody else's acknowledgement costs a certificate check.
    pub fn awaits_target_answer(
        &self,
        from: &AgentId,
        credential: CredentialId,
        version: u64,
    ) -> Result<&Source, Unsolicited> {
        match &self.stage {
            Stage::AwaitingTarget { source }
                if *from == self.target
                    && credential == self.credential
                    && version == self.version =>
            {
                Ok(source)
            }
            _ => Err(Unsolicited::new("DELIVERY_MISMATCH")),
        }
    }

    /// The target's acknowledgement.
    pub fn on_target_answer(&self, a: TargetAnswer<'_>) -> Result<Step, Unsolicited> {
        let source = self.awaits_target_answer(a.from, a.credential, a.version)?;
        Ok(match a.outcome {
            TargetOutcome::Verified => Step::Delivered(source.clone()),
            // Not recorded: the stage times out and the delivery is tried again.
            TargetOutcome::BadReceipt(why) => {
                return Err(Unsolicited(format!("BAD_RECEIPT: {why}")))
            }
            TargetOutcome::Mismatch => {
                let mut next = self.clone();
                // The workload hears COMMITMENT_MISMATCH now; the delivery itself goes on without it.
                next.jit = None;
                Step::Mismatch {
                    source: source.clone(),
                    next,
                }
            }
            // An envelope the target cannot open or parse is the source's fault: try another peer. An operator's
            // envelope has no other source.
            TargetOutcome::Refused(RefusalReason::BadEnvelope | RefusalReason::BadPayload)
                if matches!(source, Source::Peer(_)) =>
            {
                Step::NextPeer(self.clone())
            }
            TargetOutcome::Refused(reason) => Step::Fail {
                result: format!("target_refused:{reason:?}"),
                reason: PublicReason::BackendBusy,
            },
            TargetOutcome::Unknown => Step::Fail {
                result: "target_unknown_outcome".to_owned(),
                reason: PublicReason::BackendBusy,
            },
        })
    }

    /// Time passing: `None` while the stage's deadline is ahead; then the next peer, or for an operator's envelope
    /// (which no peer can replace) the end of the dispatch.
    pub fn on_tick(&self, now_ms: u64) -> Option<Step> {
        if self.deadline_ms > now_ms {
            return None;
        }
        Some(match &self.stage {
            Stage::AwaitingPeer { .. }
            | Stage::AwaitingTarget {
                source: Source::Peer(_),
            } => Step::NextPeer(self.clone()),
            Stage::AwaitingTarget {
                source: Source::Operator,
            } => Step::Fail {
                result: "timeout".to_owned(),
                reason: PublicReason::Timeout,
            },
        })
    }
}

/// What a failed attempt did to a delivery row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// The row was not pending (stored, stalled or untrusted since): untouched.
    NotPending,
    /// The row waits for its next attempt at this time, Unix ms.
    RetryAt(u64),
    /// That was its last attempt: the row is `Stalled` (`credential_sync_stalled`).
    Stalled,
}

/// The row's half of the lifecycle: a dispatch that ended without delivery counts one failed attempt on its
/// (credential, target) row, which then waits per the backoff table or, after the last attempt, is retired.
pub fn attempt_failed(
    row: &mut DeliveryRow,
    error: &str,
    backoff: &Backoff,
    now_ms: u64,
) -> AfterFailure {
    if row.state != DeliveryState::Pending {
        return AfterFailure::NotPending;
    }
    row.attempts = row.attempts.saturating_add(1);
    row.last_error = Some(error.to_owned());
    match backoff.after(row.attempts, now_ms) {
        Next::RetryAt(t) => {
            row.next_attempt_ms = t;
            AfterFailure::RetryAt(t)
        }
        Next::Retire => {
            row.state = DeliveryState::Stalled;
            AfterFailure::Stalled
        }
    }
}

/// The row's half of a delivery: stored at `version`, its failures forgotten.
pub fn row_delivered(row: &mut DeliveryRow, version: u64) {
    row.state = DeliveryState::Stored;
    row.version = version;
    row.attempts = 0;
    row.last_error = None;
}

/// The record as stored: the flat layout of the first release (`peer` is the source once the envelope went to
/// the target, absent for an operator's envelope; `nonce` is all zeros when no peer is awaited). Records of the
/// first release kept the peer's nonce after its answer; it is read and ignored (nothing checks a nonce once the
/// envelope went to the target), and written back as zeros.
#[derive(Serialize, Deserialize)]
struct StoredPending {
    request_id: uuid::Uuid,
    nonce: Nonce,
    credential: CredentialId,
    version: u64,
    target: AgentId,
    peer: Option<AgentId>,
    tried: Vec<AgentId>,
    stage: StoredStage,
    deadline_ms: u64,
    jit: Option<uuid::Uuid>,
    audit_seq: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredStage {
    AwaitingPeer,
    AwaitingTarget,
}

impl From<PendingRewrap> for StoredPending {
    fn from(p: PendingRewrap) -> Self {
        let (stage, peer, nonce) = match p.stage {
            Stage::AwaitingPeer { peer, nonce } => (StoredStage::AwaitingPeer, Some(peer), nonce),
            Stage::AwaitingTarget { source } => (
                StoredStage::AwaitingTarget,
                match source {
                    Source::Peer(a) => Some(a),
                    Source::Operator => None,
                },
                [0; 32],
            ),
        };
        Self {
            request_id: p.request_id,
            nonce,
            credential: p.credential,
            version: p.version,
            target: p.target,
            peer,
            tried: p.tried,
            stage,
            deadline_ms: p.deadline_ms,
            jit: p.jit,
            audit_seq: p.audit_seq,
        }
    }
}

impl TryFrom<StoredPending> for PendingRewrap {
    type Error = &'static str;

    fn try_from(s: StoredPending) -> Result<Self, Self::Error> {
        let stage = match (s.stage, s.peer) {
            (StoredStage::AwaitingPeer, Some(peer)) => Stage::AwaitingPeer {
                peer,
                nonce: s.nonce,
            },
            (StoredStage::AwaitingPeer, None) => {
                return Err("an in-flight rewrap awaits a peer but names none")
            }
            (StoredStage::AwaitingTarget, Some(peer)) => Stage::AwaitingTarget {
                source: Source::Peer(peer),
            },
            (StoredStage::AwaitingTarget, None) => Stage::AwaitingTarget {
                source: Source::Operator,
            },
        };
        Ok(Self {
            request_id: s.request_id,
            credential: s.credential,
            version: s.version,
            target: s.target,
            tried: s.tried,
            stage,
            deadline_ms: s.deadline_ms,
            jit: s.jit,
            audit_seq: s.audit_seq,
        })
    }
}

#[cfg(test)]
mod tests;
