//! The core worker: the one task that owns the agent's keys, the registration state machine and the JIT waiters.
//! It takes network events from the event-loop task and commands from the local API and jobs, answers rewrap
//! requests (peer), stores deliveries (target) in flushed batches, and acknowledges each incoming message to the
//! broker only once it has been handled.

mod delivery_plan;
pub mod purge;
pub mod revocations;
pub mod rotate;
pub mod waiters;

use crate::clock::unix_now;
use std::time::{Duration, Instant};

use rumqttc::Publish;
use tessera_proto::ids::CredentialName;
use tessera_proto::topics;
use tessera_proto::wire::{
    self, AgentState, CredentialStore, CredentialStored, Down, Register, Status, StoreOutcome, Up,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::LiveConfig;
use crate::identity::AgentKeys;
use crate::jobs::{self, JobContext};
use crate::roles::{peer, target};
use crate::rotation::{Rotation, RotationEvent};
use crate::session::event_loop::NetEvent;
use crate::session::outbox::Outbox;
use crate::session::registration::{
    choose_mode, held_for_register, RegAction, RegEvent, Registration,
};
use crate::status::{CertificateView, RegistrationView, SessionView};
use crate::store::{NewCredential, SeenJobs, SelfRecord, Store};
pub use rotate::SessionHandle;
pub use waiters::JitOutcome;
use waiters::Waiters;

/// Deliveries handled per store flush at most.
const MAX_BATCH: usize = 64;

/// Commands to the core worker.
#[derive(Debug)]
pub enum Command {
    /// Wait until `name` is in the store, asking the relay for JIT repair.
    AwaitCredential {
        /// The credential.
        name: CredentialName,
        /// Where to answer.
        reply: oneshot::Sender<JitOutcome>,
    },
    /// Answer at once: the worker's liveness, for the systemd watchdog.
    Ping {
        /// Where to answer.
        reply: oneshot::Sender<()>,
    },
}

/// A cheap handle to the core worker.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Command>,
}

/// Why a JIT wait failed locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// No answer within the budget.
    Timeout,
    /// The core worker is shutting down or its queue is full.
    Busy,
}

impl CoreHandle {
    /// A handle sending to `tx`.
    pub fn new(tx: mpsc::Sender<Command>) -> Self {
        Self { tx }
    }

    /// Whether the worker answers a no-op command within `budget`.
    pub async fn ping(&self, budget: Duration) -> bool {
        let (reply, rx) = oneshot::channel();
        tokio::time::timeout(budget, async {
            self.tx.send(Command::Ping { reply }).await.is_ok() && rx.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Asks for JIT repair of `name` and waits at most `budget`.
    pub async fn await_credential(
        &self,
        name: CredentialName,
        budget: Duration,
    ) -> Result<JitOutcome, WaitError> {
        let (reply, rx) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + budget;
        tokio::time::timeout_at(
            deadline,
            self.tx.send(Command::AwaitCredential { name, reply }),
        )
        .await
        .map_err(|_| WaitError::Busy)?
        .map_err(|_| WaitError::Busy)?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(WaitError::Busy),
            Err(_) => Err(WaitError::Timeout),
        }
    }
}

/// The worker's state.
#[derive(Debug)]
pub struct Core {
    keys: AgentKeys,
    store: Store,
    outbox: Outbox,
    cfg: LiveConfig,
    handle: CoreHandle,
    registration: Registration,
    waiters: Waiters,
    jobs: JoinSet<()>,
    seen_jobs: SeenJobs,
    started: Instant,
    up_topic: String,
    down_topic: String,
    session: SessionHandle,
    rotation: Rotation,
    validating: Option<rotate::Validating>,
    pending_cert: Option<Vec<u8>>,
    /// The TLS identity generation last asked of the session, and the one its current connection was made with.
    session_generation: u64,
    connected_generation: u64,
    /// What `tessera-agent status` and the metrics see of this worker (crate::status).
    view: watch::Sender<SessionView>,
}

/// A delivery to answer after the batch is flushed.
struct Answer {
    publish: Publish,
    delivery_id: uuid::Uuid,
    reply: Option<Up>,
    stored_name: Option<CredentialName>,
}

impl Core {
    /// A worker for this agent.
    pub fn new(
        keys: AgentKeys,
        store: Store,
        outbox: Outbox,
        cfg: LiveConfig,
        handle: CoreHandle,
        session: SessionHandle,
    ) -> Self {
        let up_topic = topics::agent_up(&keys.id);
        let down_topic = topics::agent_down(&keys.id);
        let rotation = rotate::load(&store);
        let (view, _) = watch::channel(SessionView {
            connected: false,
            registration: RegistrationView::from(&Registration::Disconnected),
            certificate: CertificateView::of(&keys.cert),
        });
        Self {
            view,
            session,
            rotation,
            validating: None,
            pending_cert: None,
            session_generation: 0,
            connected_generation: 0,
            keys,
            seen_jobs: SeenJobs::new(store.clone()),
            store,
            outbox,
            cfg,
            handle,
            registration: Registration::Disconnected,
            waiters: Waiters::default(),
            jobs: JoinSet::new(),
            started: Instant::now(),
            up_topic,
            down_topic,
        }
    }

    /// The worker's status as it changes (connection, registration, certificate).
    pub fn view(&self) -> watch::Receiver<SessionView> {
        self.view.subscribe()
    }

    fn publish_view(&self) {
        let next = SessionView {
            connected: !matches!(self.registration, Registration::Disconnected),
            registration: RegistrationView::from(&self.registration),
            certificate: CertificateView::of(&self.keys.cert),
        };
        self.view.send_if_modified(|v| {
            let changed = *v != next;
            *v = next;
            changed
        });
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs until `cancel`, then publishes `offline` and disconnects.
    pub async fn run(
        mut self,
        mut net: mpsc::Receiver<NetEvent>,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                ev = net.recv() => match ev {
                    Some(NetEvent::Message(p)) => {
                        let mut batch = vec![p];
                        while batch.len() < MAX_BATCH {
                            match net.try_recv() {
                                Ok(NetEvent::Message(p)) => batch.push(p),
                                Ok(other) => { self.handle_messages(std::mem::take(&mut batch)); self.on_net(other); break; }
                                Err(_) => break,
                            }
                        }
                        self.handle_messages(batch);
                    }
                    Some(other) => self.on_net(other),
                    None => break,
                },
                Some(cmd) = commands.recv() => self.on_command(cmd),
                _ = tick.tick() => {
                    let now_ms = self.now_ms();
                    self.step_registration(RegEvent::Tick { now_ms });
                    self.rotation_event(&RotationEvent::Tick);
                    self.waiters.prune();
                    while self.jobs.try_join_next().is_some() {}
                }
            }
        }
        self.publish_status(AgentState::Offline);
        self.jobs.shutdown().await;
        self.outbox.disconnect();
        let _ = self.store.flush();
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connected { generation } => {
                self.connected_generation = generation;
                self.outbox.subscribe(self.down_topic.clone());
                let registered = self
                    .store
                    .get_self(SelfRecord::RegisteredWrapKey)
                    .ok()
                    .flatten()
                    .and_then(|b| b.expose(|b| <[u8; 32]>::try_from(b).ok()))
                    .map(tessera_proto::envelope::KeyFingerprint);
                let own: Vec<_> = self
                    .keys
                    .decrypt_only
                    .iter()
                    .map(|k| k.public_key().fingerprint())
                    .collect();
                let mode = choose_mode(
                    registered.as_ref(),
                    &self.keys.wrap.public_key().fingerprint(),
                    &own,
                );
                let now_ms = self.now_ms();
                if self.validating_connected() {
                    self.rotation_event(&RotationEvent::Connected);
                }
                let serial = self.register_serial();
                self.step_registration(RegEvent::Connected {
                    mode,
                    now_ms,
                    serial,
                });
            }
            NetEvent::Disconnected => self.step_registration(RegEvent::Disconnected),
            NetEvent::Message(p) => self.handle_messages(vec![p]),
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AwaitCredential { name, reply } => {
                if matches!(self.store.credential_by_name(&name), Ok(Some(_))) {
                    let _ = reply.send(JitOutcome::Delivered);
                    return;
                }
                if let Some(request_id) = self.waiters.add(name.clone(), reply) {
                    tracing::info!(name = name.as_str(), %request_id, "credential missing: asking for JIT repair");
                    self.publish_up(&Up::CredentialMissing(wire::CredentialMissing {
                        request_id,
                        name,
                    }));
                }
            }
            Command::Ping { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn step_registration(&mut self, event: RegEvent) {
        let state = std::mem::replace(&mut self.registration, Registration::Disconnected);
        let (next, actions) = state.handle(event, self.cfg.current().broker.register_retry_ms);
        self.registration = next;
        self.publish_view();
        for action in actions {
            match action {
                RegAction::SendRegister(mode) => {
                    let held = match self.store.held() {
                        Ok(h) => held_for_register(mode, h),
                        Err(e) => {
                            tracing::error!(error = %e, "could not list held credentials");
                            Vec::new()
                        }
                    };
                    tracing::info!(?mode, held = held.len(), "registering");
                    self.publish_up(&Up::Register(Register {
                        mode,
                        cert: self.register_cert(),
                        held,
                        agent_version: registered_version(),
                    }));
                }
                RegAction::PublishStatus(state) => self.publish_status(state),
                RegAction::RememberRegistration => {
                    let fp = self.keys.wrap.public_key().fingerprint();
                    if let Err(e) = self
                        .store
                        .put_self(&[(SelfRecord::RegisteredWrapKey, &fp.0)])
                    {
                        tracing::error!(error = %e, "could not record the registration");
                    }
                }
            }
        }
    }

    fn publish_up(&self, up: &Up) {
        match wire::encode(up) {
            Ok(bytes) => self.outbox.publish(self.up_topic.clone(), false, bytes),
            Err(e) => tracing::error!(error = %e, "could not encode a message"),
        }
    }

    fn publish_status(&self, state: AgentState) {
        let status = Status {
            state,
            at: unix_now(),
        };
        if let Ok(bytes) = wire::encode(&status) {
            let topic = topics::agent_status(&self.keys.id);
            self.outbox.publish(topic, true, bytes);
        }
    }

    fn ack(&self, p: Publish) {
        self.outbox.ack(p);
    }

    /// A batch of messages from the down topic, handled in the order the plan gives
    /// ([`delivery_plan`]): deliveries checked and stored in groups (one flush each), everything else on its own.
    fn handle_messages(&mut self, batch: Vec<Publish>) {
        let items = batch.into_iter().map(|p| {
            let message = self.decode(&p);
            let kind = match &message {
                Some(Down::CredentialStore(msg)) => delivery_plan::Kind::Delivery(
                    msg.statement
                        .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                        .ok()
                        .map(|st| (st.credential_id, st.name)),
                ),
                Some(_) => delivery_plan::Kind::Other,
                None => delivery_plan::Kind::Dropped,
            };
            (kind, (p, message))
        });
        let steps = delivery_plan::plan(items.collect::<Vec<_>>());
        for step in steps {
            match step {
                delivery_plan::Step::Group(group) => self.store_group(group),
                delivery_plan::Step::Alone((p, message)) => {
                    if let Some(down) = message {
                        self.handle_other(down);
                    }
                    self.ack(p);
                }
            }
        }
    }

    /// The message `p` carries, or `None` for one that is only acknowledged (logged here).
    fn decode(&self, p: &Publish) -> Option<Down> {
        if p.retain {
            // The relay never publishes retained messages to an agent; one left retained on the down topic would be
            // acted on again at every reconnect. Dropped (and acknowledged), never handled.
            tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "dropped a retained message on the down topic");
            return None;
        }
        if p.topic != self.down_topic {
            tracing::warn!(topic = %p.topic, "dropped a message on an unexpected topic");
            return None;
        }
        wire::decode::<Down>(&p.payload)
            .map_err(|e| tracing::warn!(error = %e, bytes = p.payload.len(), "dropped a malformed message"))
            .ok()
    }

    /// One group of the plan: each delivery checked (refusals and copies already held answered as they are), the
    /// accepted ones stored together, then every message answered and acknowledged in order.
    fn store_group(&mut self, group: Vec<(Publish, Option<Down>)>) {
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        let mut accepted: Vec<(usize, NewCredential)> = Vec::new();
        for (p, message) in group {
            let Some(Down::CredentialStore(msg)) = message else {
                answers.push(Answer {
                    publish: p,
                    delivery_id: uuid::Uuid::nil(),
                    reply: None,
                    stored_name: None,
                });
                continue;
            };
            let (reply, new) = self.check_delivery(&msg);
            self.fail_refused_waiter(&msg, reply.as_ref());
            // A copy already held wakes the workloads waiting on its name as a new one does.
            let stored_name = match &reply {
                Some(Up::CredentialStored(CredentialStored {
                    outcome: StoreOutcome::Stored { .. },
                    ..
                })) => msg
                    .statement
                    .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                    .ok()
                    .map(|s| s.name),
                _ => None,
            };
            answers.push(Answer {
                publish: p,
                delivery_id: msg.delivery_id,
                reply,
                stored_name,
            });
            if let Some(new) = new {
                accepted.push((answers.len() - 1, new));
            }
        }
        self.commit(&mut answers, accepted);
        self.flush_answers(&mut answers);
    }

    /// A delivery answering a workload's JIT request failed an integrity check: the workload gets a typed error now,
    /// not a timeout (docs/protocol.md, "Agent delivery handling"), whoever sent it. A delivery that merely does not open (`BAD_ENVELOPE`) keeps the
    /// workload waiting: an honest relay tries the next peer.
    fn fail_refused_waiter(&mut self, msg: &CredentialStore, reply: Option<&Up>) {
        let (Some(request_id), Some(Up::CredentialStored(s))) = (msg.request_id, reply) else {
            return;
        };
        if let Some(reason) = waiter_failure(&s.outcome) {
            tracing::warn!(%request_id, ?reason, "a JIT delivery failed its integrity check; the workload is told");
            self.waiters.unavailable(&request_id, reason);
        }
    }

    /// Runs the target checks; returns the reply now (refusals, already held) or the credential to store.
    fn check_delivery(&self, msg: &CredentialStore) -> (Option<Up>, Option<NewCredential>) {
        let stored = |credential_id, version, outcome| {
            Some(Up::CredentialStored(CredentialStored {
                delivery_id: msg.delivery_id,
                credential_id,
                version,
                outcome,
                receipt: None,
            }))
        };
        match target::check(&self.keys, &self.store, msg) {
            Ok(target::Accepted::New(c)) => (None, Some(*c)),
            Ok(target::Accepted::AlreadyHeld {
                credential_id,
                version,
                digest,
            }) => (
                Some(self.stored_reply(msg.delivery_id, credential_id, version, digest)),
                None,
            ),
            Err(refused) => {
                tracing::warn!(delivery = %msg.delivery_id, outcome = ?refused.outcome, "delivery refused; nothing stored");
                match refused.credential_id {
                    Some(id) => (stored(id, refused.version.max(1), refused.outcome), None),
                    // Without a readable statement there is no credential id to report against.
                    None => (None, None),
                }
            }
        }
    }

    /// The acknowledgement of a stored (flushed) credential version, with the agent's signed receipt of it
    /// (docs/protocol.md, "Receipts").
    fn stored_reply(
        &self,
        delivery_id: uuid::Uuid,
        credential_id: tessera_proto::ids::CredentialId,
        version: u64,
        digest: tessera_proto::commitment::Commitment,
    ) -> Up {
        let receipt = self
            .keys
            .receipt(
                tessera_proto::receipt::ReceiptFact::Stored {
                    delivery_id,
                    credential_id,
                    version,
                    digest,
                },
                unix_now(),
            )
            .map_err(|e| tracing::error!(error = %e, "could not sign a delivery receipt"))
            .ok();
        Up::CredentialStored(CredentialStored {
            delivery_id,
            credential_id,
            version,
            outcome: StoreOutcome::Stored { digest },
            receipt,
        })
    }

    /// Stores the pending credentials in one batch and flushes; fills in their replies.
    fn commit(&mut self, answers: &mut [Answer], pending: Vec<(usize, NewCredential)>) {
        if pending.is_empty() {
            return;
        }
        let (slots, creds): (Vec<usize>, Vec<NewCredential>) = pending.into_iter().unzip();
        // One flush for the group; when the store refuses the batch for one item, each item alone, so that one
        // refused item refuses only itself. A store failure (not a refusal) refuses the group, logged once.
        let results =
            match tokio::task::block_in_place(|| self.store.accept_each(&creds, unix_now())) {
                Ok(results) => results,
                Err(e) => {
                    tracing::error!(error = %e, count = creds.len(), "could not store deliveries");
                    creds
                        .iter()
                        .map(|_| Err(crate::store::StoreError::Internal("store failure")))
                        .collect()
                }
            };
        for ((i, c), result) in slots.into_iter().zip(&creds).zip(results) {
            let Some(a) = answers.get_mut(i) else {
                continue;
            };
            let outcome = match result {
                Ok(()) => {
                    a.stored_name = Some(c.statement.name.clone());
                    a.reply = Some(self.stored_reply(
                        a.delivery_id,
                        c.statement.credential_id,
                        c.statement.version,
                        c.statement.commitment,
                    ));
                    continue;
                }
                Err(e) => {
                    if e.is_refusal() {
                        tracing::warn!(error = %e, delivery = %a.delivery_id, "delivery refused by the store");
                    }
                    match e {
                        crate::store::StoreError::Stale { .. } => wire::RefusalReason::StaleVersion,
                        crate::store::StoreError::NameBound { .. } => {
                            wire::RefusalReason::NameBoundToOtherId
                        }
                        crate::store::StoreError::Deleted { .. } => {
                            wire::RefusalReason::CredentialDeleted
                        }
                        _ => wire::RefusalReason::Internal,
                    }
                }
            };
            a.reply = Some(Up::CredentialStored(CredentialStored {
                delivery_id: a.delivery_id,
                credential_id: c.statement.credential_id,
                version: c.statement.version,
                outcome: StoreOutcome::Refused { reason: outcome },
                receipt: None,
            }));
        }
    }

    /// Publishes the replies, wakes waiters, advances the backfill count, and acknowledges to the broker.
    fn flush_answers(&mut self, answers: &mut Vec<Answer>) {
        for a in answers.drain(..) {
            if let Some(up) = &a.reply {
                self.publish_up(up);
                if matches!(up, Up::CredentialStored(_)) {
                    self.step_registration(RegEvent::Delivered);
                }
            }
            if let Some(name) = &a.stored_name {
                self.waiters.delivered(name);
            }
            self.ack(a.publish);
        }
    }

    fn handle_other(&mut self, down: Down) {
        match down {
            Down::RegisterAck(ack) => {
                let awaiting = matches!(self.registration, Registration::AwaitingAck { .. });
                let serial = ack.serial.clone();
                self.step_registration(RegEvent::Ack(ack));
                let accepted = !matches!(
                    self.registration,
                    Registration::AwaitingAck { .. } | Registration::Disconnected
                );
                // While a renewed certificate is validated, only the relay's acknowledgement of a registration made
                // with it, over a connection made with it, completes the round trip.
                let completes = match &self.validating {
                    Some(v) => self.validating_connected() && serial.as_ref() == Some(&v.serial),
                    None => true,
                };
                if awaiting && accepted && completes {
                    self.rotation_event(&RotationEvent::Registered);
                }
            }
            Down::RotateKeys(_) => {
                tracing::info!(
                    state = self.rotation.name(),
                    "an operator asked for a key rotation"
                );
                self.rotation_event(&RotationEvent::RotateRequested);
            }
            Down::RenewalCertificate(c) => self.on_renewal_certificate(&c),
            Down::RewrapRequest(req) => {
                let up = tokio::task::block_in_place(|| {
                    peer::answer(&self.keys, &self.store, &req, unix_now())
                });
                self.publish_up(&up);
            }
            Down::CredentialUnavailable(u) => {
                tracing::info!(name = u.name.as_str(), reason = ?u.reason, "JIT repair refused by the relay");
                self.waiters.unavailable(&u.request_id, u.reason);
            }
            Down::JobDispatch(d) => {
                let ctx = JobContext {
                    // The job templates in force at dispatch.
                    cfg: self.cfg.current(),
                    store: self.store.clone(),
                    core: self.handle.clone(),
                    outbox: self.outbox.clone(),
                    up_topic: self.up_topic.clone(),
                };
                // Decided here, in order, and recorded (flushed) before the dispatch is acknowledged: a copy
                // delivered again after a reconnect or a crash, or replayed, is a duplicate.
                let now = unix_now();
                match tokio::task::block_in_place(|| jobs::admit(&mut self.seen_jobs, &d, now)) {
                    Ok(()) => {
                        self.jobs.spawn(jobs::run(ctx, d));
                    }
                    Err(failure) => {
                        tokio::task::block_in_place(|| jobs::refuse(&ctx, &d, &failure));
                    }
                }
            }
            Down::RevocationUpdate(u) => {
                let flagged = tokio::task::block_in_place(|| {
                    revocations::adopt(&mut self.keys, &self.store, &u.list, unix_now())
                });
                for up in revocations::flagged_messages(&flagged, self.keys.revocations.serial) {
                    self.publish_up(&up);
                }
                self.check_blue_revoked();
            }
            Down::CredentialPurge(p) => {
                let up = tokio::task::block_in_place(|| purge::apply(&self.keys, &self.store, &p));
                if let Some(up) = up {
                    self.publish_up(&up);
                }
            }
            Down::CredentialRevoke(r) => {
                let up = tokio::task::block_in_place(|| purge::revoke(&self.keys, &self.store, &r));
                if let Some(up) = up {
                    self.publish_up(&up);
                }
            }
            Down::CredentialStore(_) => {}
            _ => tracing::warn!("dropped a message type this agent does not handle"),
        }
    }
}

/// The typed error a waiting workload gets when its delivery is refused for integrity; `None` to keep waiting.
fn waiter_failure(outcome: &StoreOutcome) -> Option<wire::PublicReason> {
    match outcome {
        StoreOutcome::Mismatch
        | StoreOutcome::Refused {
            reason:
                wire::RefusalReason::CommitmentMismatch
                | wire::RefusalReason::BadStatement
                | wire::RefusalReason::StaleVersion,
        } => Some(wire::PublicReason::CommitmentMismatch),
        StoreOutcome::Refused {
            reason: wire::RefusalReason::NotInScope,
        } => Some(wire::PublicReason::NotGranted),
        _ => None,
    }
}

/// The version the agent states in its registration: the crate version and the git commit it is built from
/// (`0.1.0+1a2b3c4`, build.rs), cut to the wire's 64 bytes (a long `TESSERA_GIT_COMMIT` must not make the relay
/// drop the registration). The relay shows it to operators as the agent's word, unverified.
pub(crate) fn registered_version() -> String {
    let mut v = concat!(env!("CARGO_PKG_VERSION"), "+", env!("TESSERA_GIT_COMMIT")).to_owned();
    let mut end = v.len().min(64);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v.truncate(end);
    v
}
