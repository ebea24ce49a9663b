//! The relay's rules, sans-IO: a message from an agent (topic and bytes), an operator action or a tick goes in;
//! messages to agents come out; state lives in a [`RelayStore`]. The MQTT runtime feeds it; tests drive it
//! directly with an injectable clock.
//!
//! - [`register`]: registration and backfill (the three modes, `backfilling` until the gap is closed, bounded
//!   concurrency per agent).
//! - [`batch`]: batched rewrap: rewrap requests of one event for one (peer, target) sent as one batch, the peer's
//!   batch answer checked item by item, the target's batch acknowledgement.
//! - [`dispatch`]: choosing a peer, the rewrap request, the four bindings on the response, relaying to the target,
//!   the digest check on its acknowledgement, commitment-mismatch handling.
//! - [`jit`]: `credential_missing`, the per-agent rate limit, the flood alert, public reasons.
//! - [`reconcile`]: timeouts of in-flight rewraps and the periodic reconciler with its backoff table.
//! - [`flagged`]: an agent's report of held credentials whose signer was revoked (`credential_signer_revoked`).
//! - [`operator`]: credentials put, rotated, granted, revoked, removed and retried; jobs.
//! - [`purge`]: a credential deleted on an operator-signed tombstone, forwarded to its agents until each purges.
//! - [`receipts`]: the agents' signed receipts every recorded delivery, purge and rotation must carry.
//! - [`rotation`]: agents' key rotations: renewal requests queued for the operators' CA, certificates forwarded.

mod audit_event;
pub mod batch;
mod commit;
pub mod dispatch;
pub mod flagged;
pub mod jit;
pub mod operator;
mod operator_batch;
mod operator_sealed;
mod peer_pacing;
pub mod purge;
pub mod receipts;
pub mod reconcile;
pub mod register;
pub mod rotation;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use tessera_proto::cert::PinnedCa;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;
use tessera_proto::topics::{parse_agent_topic, AgentChannel};
use tessera_proto::wire::{self, Down, Status, Up};

use self::audit_event::AuditEvent;
use crate::alerts::{Alert, AlertKind, Subject};
use crate::clock::Clock;
use crate::coordination::{CoordinationStatus, Coordinator};
use crate::limits::RateLimiter;
use crate::schedule::Backoff;
use crate::state::{RelayStore, Staged, StateError, StateResult};

/// Every number of the relay's rules (docs/operations.md, the `[engine]` section), configurable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How long a peer (and then the target) has to answer, ms.
    pub peer_timeout_ms: u64,
    /// Peers tried per dispatch.
    pub max_peers: usize,
    /// How long a (credential, peer) stays blocklisted after a mismatch, ms.
    pub blocklist_ms: u64,
    /// JIT requests an agent may burst.
    pub jit_burst: u32,
    /// JIT requests an agent may make per minute, sustained.
    pub jit_per_minute: u32,
    /// Missing-credential events in the window that raise `agent_credential_flood`.
    pub missing_flood_threshold: usize,
    /// Mismatches in the window that raise `agent_commitment_flood`.
    pub mismatch_flood_threshold: usize,
    /// The flood window, ms.
    pub flood_window_ms: u64,
    /// Reconciler period, ms.
    pub reconcile_interval_ms: u64,
    /// Rows per reconciler tick.
    pub reconcile_batch: usize,
    /// Deliveries in flight per backfilling agent that does not batch.
    pub backfill_concurrency: usize,
    /// Most credentials per batched rewrap (docs/protocol.md, "Batched rewrap"): 2..=64, or 0 or 1 for none.
    pub batch_size: usize,
    /// Batches in flight per backfilling agent that batches: its deliveries in flight are `batch_size` times this.
    pub batches_in_flight: usize,
    /// Rewraps in flight in total before JIT answers `BACKEND_BUSY`.
    pub max_in_flight: usize,
    /// Rewraps one peer is asked for by backfills before they wait for its answers (docs/protocol.md, "Backfill
    /// pacing").
    pub peer_max_in_flight: usize,
    /// Cooldown of an operator's retry, ms.
    pub retry_cooldown_ms: u64,
    /// How long a dispatched job may wait to start, seconds: its `expires_at` is dispatch time plus this, after
    /// which the agent refuses it (`JOB_EXPIRED`). 1..=86400 (agents refuse an expiry further ahead).
    pub job_ttl_secs: u64,
    /// The reconciler's backoff table.
    pub backoff: Backoff,
    /// How long an agent may leave a purge (tombstone or scope revoke) unacknowledged before
    /// `credential_purge_overdue`, ms.
    pub purge_alert_ms: u64,
    /// Share of an agent certificate's lifetime after which `certificate_expiring` is raised while no renewed
    /// certificate is certified, percent (1..=99).
    pub cert_expiry_alert_percent: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            peer_timeout_ms: 30_000,
            max_peers: 3,
            blocklist_ms: 24 * 3_600_000,
            jit_burst: 20,
            jit_per_minute: 60,
            missing_flood_threshold: 100,
            mismatch_flood_threshold: 10,
            flood_window_ms: 300_000,
            reconcile_interval_ms: 60_000,
            reconcile_batch: 100,
            backfill_concurrency: 64,
            batch_size: 64,
            batches_in_flight: 2,
            max_in_flight: 10_000,
            peer_max_in_flight: 512,
            retry_cooldown_ms: 30_000,
            job_ttl_secs: 300,
            backoff: Backoff::default(),
            purge_alert_ms: 24 * 3_600_000,
            cert_expiry_alert_percent: 80,
        }
    }
}

/// A message for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The agent.
    pub to: AgentId,
    /// The message.
    pub msg: Down,
}

/// Counters exported as Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Metrics {
    /// Messages dropped as malformed, oversized, of an unknown type, or unverifiable.
    pub dropped_messages: u64,
    /// Rewrap responses or acknowledgements that failed a binding.
    pub unsolicited: u64,
    /// Rewrap requests sent to peers (one per credential, batched or not).
    pub rewrap_requests: u64,
    /// Batched rewrap requests sent to peers (each carries several of `rewrap_requests`).
    pub rewrap_batches: u64,
    /// Batch envelopes operators sealed (imports), accepted by the admin API.
    pub operator_batches: u64,
    /// Deliveries confirmed by a matching digest.
    pub deliveries_ok: u64,
    /// Commitment mismatches.
    pub mismatches: u64,
    /// JIT requests answered RATE_LIMITED.
    pub rate_limited: u64,
    /// Deliveries retired as stalled.
    pub stalled: u64,
    /// Reconciler sweeps this replica ran (its turn in the interval: [`crate::coordination`]).
    pub reconciler_sweeps: u64,
    /// JIT requests by outcome (`dispatched`, or the internal refusal: `rate_limited`, `dispatch_backpressure`,
    /// `unknown_name`, `out_of_scope`, `state_failure`).
    pub jit: BTreeMap<&'static str, u64>,
    /// Rewrap durations not yet taken by [`Engine::take_rewrap_durations_ms`]: from the first rewrap request of a
    /// dispatch to the target's confirmed delivery, ms (at most [`MAX_UNTAKEN_DURATIONS`] kept).
    pub rewrap_durations_ms: Vec<u64>,
}

/// Rewrap durations kept between two takes (the runtime takes them every second).
pub const MAX_UNTAKEN_DURATIONS: usize = 4096;

/// The engine.
#[derive(Debug)]
pub struct Engine {
    /// The state: the backend, with the current event's writes staged over it until they are committed.
    pub(crate) store: Staged,
    pub(crate) ca: PinnedCa,
    pub(crate) revocations: RevocationList,
    pub(crate) cfg: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) jit_limiter: RateLimiter<AgentId>,
    /// The flood windows and the reconciler's turn, shared with other replicas through Redis when configured.
    pub(crate) coord: Coordinator,
    pub(crate) last_reconcile_ms: u64,
    /// When the certificate-expiry and overdue-purge checks last ran (they scan every agent and delivery row, so
    /// at most hourly: their alerts are about hours and days).
    pub(crate) last_lifecycle_check_ms: Option<u64>,
    /// Credentials in flight per target (mirrors the store's in-flight records; rebuilt at start).
    pub(crate) in_flight: std::collections::HashMap<
        AgentId,
        std::collections::HashSet<tessera_proto::ids::CredentialId>,
    >,
    /// When each agent's last-seen time was last written.
    pub(crate) seen: std::collections::HashMap<AgentId, u64>,
    /// Targets whose registered certificate verified: (certificate, revocation list serial, not after).
    pub(crate) certified: std::collections::HashMap<AgentId, (Vec<u8>, u64, i64)>,
    /// The certificates each agent registered with, parsed, to verify its receipts.
    pub(crate) receipt_certs: std::collections::HashMap<AgentId, ReceiptCerts>,
    /// Deliveries waiting to start, per backfilling agent (rebuilt from the store when absent).
    pub(crate) backlog: std::collections::HashMap<
        AgentId,
        std::collections::VecDeque<tessera_proto::ids::CredentialId>,
    >,
    /// When each in-flight dispatch sent its first rewrap request, Unix ms (in memory: a dispatch resumed after a
    /// restart is not timed).
    pub(crate) rewrap_started: std::collections::HashMap<uuid::Uuid, u64>,
    /// Whether each agent announced `batch_rewrap` (read from its record when absent; forgotten when it registers
    /// again and when another relay wrote).
    pub(crate) batch_capable: std::collections::HashMap<AgentId, bool>,
    /// The rewraps awaiting each peer, and the backfills paused on them ([`peer_pacing`]).
    pub(crate) pacing: peer_pacing::PeerPacing,
    /// Rewrap requests of this event that stay single (JIT repairs), taken by [`Engine::group_rewraps`].
    pub(crate) unbatched: std::collections::HashSet<uuid::Uuid>,
    /// Set while the other items of an operator batch envelope are being started ([`Engine::start_batch_siblings`]).
    pub(crate) starting_siblings: bool,
    /// Counters.
    pub metrics: Metrics,
    /// The in-flight set could not be rebuilt from the store after a failure: rebuilt before the next event.
    pub(crate) needs_resync: bool,
}

/// The certificates an agent registered with, parsed, to verify its receipts: (its current certificate's DER, the
/// revocation list serial they were checked against, the certificates).
pub(crate) type ReceiptCerts = (Vec<u8>, u64, Vec<tessera_proto::cert::AgentCertificate>);

/// Internal failures are logged once here and never reach an agent.
pub(crate) fn log_state(e: &StateError) {
    tracing::error!(error = %e, "relay state failure");
}

impl Engine {
    /// An engine over `store`, trusting `ca`.
    pub fn new(
        store: Arc<dyn RelayStore>,
        ca: PinnedCa,
        cfg: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now_ms();
        let mut engine = Self {
            store: Staged::new(store),
            jit_limiter: RateLimiter::new(cfg.jit_burst, cfg.jit_per_minute),
            coord: Coordinator::memory("relay"),
            ca,
            revocations: RevocationList::empty(),
            cfg,
            clock,
            last_reconcile_ms: now,
            last_lifecycle_check_ms: None,
            in_flight: std::collections::HashMap::new(),
            certified: std::collections::HashMap::new(),
            receipt_certs: std::collections::HashMap::new(),
            seen: std::collections::HashMap::new(),
            backlog: std::collections::HashMap::new(),
            rewrap_started: std::collections::HashMap::new(),
            metrics: Metrics::default(),
            batch_capable: std::collections::HashMap::new(),
            pacing: peer_pacing::PeerPacing::default(),
            unbatched: std::collections::HashSet::new(),
            starting_siblings: false,
            needs_resync: false,
        };
        // The stored revocation list (verified again against the pinned CA) and the rewraps in flight; when either
        // read fails, no event runs until both succeed.
        engine.resync();
        engine
    }

    /// The state backend (committed state only).
    pub fn store(&self) -> &Arc<dyn RelayStore> {
        self.store.backend()
    }

    /// Adopts a newer revocation list (already verified by the caller).
    pub fn set_revocations(&mut self, list: RevocationList) {
        self.revocations = list;
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn now_s(&self) -> i64 {
        i64::try_from(self.now_ms() / 1000).unwrap_or(i64::MAX)
    }

    /// Stores an in-flight rewrap and tracks it.
    pub(crate) fn save_pending(
        &mut self,
        p: &crate::state::PendingRewrap,
    ) -> crate::state::StateResult<()> {
        self.store.put_pending(p)?;
        self.pacing.track(p.request_id, p.awaited_peer());
        self.in_flight
            .entry(p.target.clone())
            .or_default()
            .insert(p.credential);
        Ok(())
    }

    /// Removes an in-flight rewrap.
    pub(crate) fn drop_pending(
        &mut self,
        request_id: &uuid::Uuid,
        credential: &tessera_proto::ids::CredentialId,
        target: &AgentId,
    ) -> crate::state::StateResult<()> {
        self.store.remove_pending(request_id)?;
        self.pacing.track(*request_id, None);
        self.rewrap_started.remove(request_id);
        if let Some(set) = self.in_flight.get_mut(target) {
            set.remove(credential);
            if set.is_empty() {
                self.in_flight.remove(target);
            }
        }
        Ok(())
    }

    /// The clock and the peer timeout, for a lifecycle transition.
    pub(crate) fn timing(&self) -> crate::lifecycle::Timing {
        crate::lifecycle::Timing {
            now_ms: self.now_ms(),
            peer_timeout_ms: self.cfg.peer_timeout_ms,
        }
    }

    /// Whether a delivery of `credential` to `target` is in flight.
    /// How many rewraps are in flight (from memory: the store's records are counted once, at start).
    /// Coordinates through `coord` from now on (the runtime's, from `[coordination]`).
    pub fn set_coordination(&mut self, coord: Coordinator) {
        self.coord = coord;
    }

    /// This replica's coordination, as the admin API shows it.
    pub fn coordination(&self) -> CoordinationStatus {
        self.coord.status()
    }

    /// The rules' numbers in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Applies reloaded numbers (SIGHUP): the JIT token buckets and flood windows keep their state under the new
    /// rates; everything else reads `cfg` when it next runs.
    pub fn set_config(&mut self, cfg: EngineConfig) {
        self.jit_limiter
            .set_rates(cfg.jit_burst, cfg.jit_per_minute);
        self.cfg = cfg;
    }

    /// Takes the rewrap durations recorded since the last call, ms.
    pub fn take_rewrap_durations_ms(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.metrics.rewrap_durations_ms)
    }

    /// Deliveries waiting to start behind backfilling agents' concurrency limit.
    pub fn backfill_backlog(&self) -> usize {
        self.backlog
            .values()
            .map(std::collections::VecDeque::len)
            .sum()
    }

    pub(crate) fn rewrap_delivered(&mut self, request_id: &uuid::Uuid) {
        if let Some(started) = self.rewrap_started.remove(request_id) {
            if self.metrics.rewrap_durations_ms.len() < MAX_UNTAKEN_DURATIONS {
                let took = self.now_ms().saturating_sub(started);
                self.metrics.rewrap_durations_ms.push(took);
            }
        }
    }

    pub(crate) fn in_flight_count(&self) -> usize {
        self.in_flight
            .values()
            .map(std::collections::HashSet::len)
            .sum()
    }

    pub(crate) fn is_in_flight(
        &self,
        credential: &tessera_proto::ids::CredentialId,
        target: &AgentId,
    ) -> bool {
        self.in_flight
            .get(target)
            .is_some_and(|s| s.contains(credential))
    }

    /// Appends `event` to the audit chain, staged with the event's other writes; returns its sequence number.
    pub(crate) fn audit(&self, event: AuditEvent<'_>) -> StateResult<u64> {
        let e = event.entry();
        Ok(self
            .store
            .append_audit(self.now_ms(), e.kind, e.link, e.data)?
            .seq)
    }

    /// Raises (or counts) an alert.
    pub(crate) fn alert(
        &self,
        kind: AlertKind,
        subject: Subject<'_>,
        message: String,
    ) -> StateResult<()> {
        let subject = subject.to_string();
        let key = Alert::key(kind, &subject);
        let existing = self.store.alert(&key)?;
        let (alert, raised) = Alert::occur(existing, kind, &subject, message, self.now_ms());
        if raised {
            tracing::warn!(alert = kind.as_str(), severity = ?alert.severity, subject, "{}", alert.message);
        }
        self.store.put_alert(&key, &alert)
    }

    fn drop_message(&mut self, agent: &str, reason: &str) -> StateResult<()> {
        self.metrics.dropped_messages += 1;
        tracing::warn!(agent, reason, "dropped a message from an agent");
        self.audit(AuditEvent::DroppedMessage { agent, reason })
            .map(drop)
    }

    /// [`Engine::on_message`], staged. A state failure ends the event here, with nothing of it written or sent; it
    /// is logged once, where the event is committed.
    pub(crate) fn on_message_staged(
        &mut self,
        topic: &str,
        payload: &[u8],
    ) -> StateResult<Vec<Outbound>> {
        let Some((agent, channel)) = parse_agent_topic(topic) else {
            self.drop_message("?", "not an agent topic")?;
            return Ok(Vec::new());
        };
        match channel {
            AgentChannel::Status => match wire::decode::<Status>(payload) {
                Ok(status) => self.on_status(&agent, &status),
                Err(e) => {
                    self.drop_message(agent.as_str(), &format!("status: {e}"))?;
                    Ok(Vec::new())
                }
            },
            AgentChannel::Up => match wire::decode::<Up>(payload) {
                Ok(up) => {
                    self.touch(&agent)?;
                    let mut out = self.on_up(&agent, up)?;
                    out.extend(self.resume_paused()?);
                    Ok(out)
                }
                Err(e) => {
                    self.drop_message(agent.as_str(), &e.to_string())?;
                    Ok(Vec::new())
                }
            },
            _ => {
                self.drop_message(agent.as_str(), "message on a relay-to-agent topic")?;
                Ok(Vec::new())
            }
        }
    }

    /// Records that `agent` was heard from (at most one write per agent every 10 s).
    fn touch(&mut self, agent: &AgentId) -> StateResult<()> {
        let now = self.now_ms();
        if self
            .seen
            .get(agent)
            .is_some_and(|t| now.saturating_sub(*t) < 10_000)
        {
            return Ok(());
        }
        self.seen.insert(agent.clone(), now);
        if let Some(mut a) = self.store.agent(agent)? {
            if now.saturating_sub(a.last_seen_ms) >= 10_000 {
                a.last_seen_ms = now;
                self.store.put_agent(&a)?;
            }
        }
        Ok(())
    }

    fn on_up(&mut self, agent: &AgentId, up: Up) -> StateResult<Vec<Outbound>> {
        match up {
            Up::Register(r) => self.on_register(agent, &r),
            Up::RewrapResponse(r) => self.on_rewrap_response(agent, r),
            Up::RewrapRefused(r) => self.on_rewrap_refused(agent, &r),
            Up::CredentialStored(s) => self.on_stored(agent, &s),
            Up::CredentialMissing(m) => self.on_missing(agent, &m),
            Up::CredentialsFlagged(f) => self.on_flagged(agent, &f).map(|()| Vec::new()),
            Up::CredentialPurged(p) => self.on_purged(agent, &p).map(|()| Vec::new()),
            Up::RenewalRequested(r) => self.on_renewal_requested(agent, &r).map(|()| Vec::new()),
            Up::RotationCompleted(r) => self.on_rotation_completed(agent, &r).map(|()| Vec::new()),
            Up::RotationFailed(f) => self.on_rotation_failed(agent, &f).map(|()| Vec::new()),
            Up::JobResult(j) => self.on_job_result(agent, j).map(|()| Vec::new()),
            Up::RewrapBatchResponse(r) => self.on_rewrap_batch_response(agent, &r),
            Up::CredentialStoredBatch(b) => self.on_stored_batch(agent, &b),
            _ => {
                self.drop_message(agent.as_str(), "unhandled message type")?;
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle_tests;

#[cfg(test)]
mod commit_tests;

#[cfg(test)]
mod presence_tests;

#[cfg(test)]
mod coordination_tests;

#[cfg(test)]
mod replicas_tests;

#[cfg(test)]
mod batch_tests;

#[cfg(test)]
mod pacing_tests;
