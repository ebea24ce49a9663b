//! The core worker: the one task that owns the agent's keys, the registration state machine and the JIT waiters.
//! It takes network events from the event-loop task and commands from the local API and jobs, answers rewrap
//! requests (peer), stores deliveries (target) in flushed batches, and acknowledges each incoming message to the
//! broker only once it has been handled.

mod deliveries;
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
use tessera_proto::wire::{self, AgentState, Down, Register, Status, StoreOutcome, Up};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::LiveConfig;
use crate::identity::AgentKeys;
use crate::jobs::{self, JobContext};
use crate::roles::peer;
use crate::rotation::{Rotation, RotationEvent};
use crate::session::event_loop::NetEvent;
use crate::session::outbox::Outbox;
use crate::session::registration::{
    choose_mode, held_for_register, RegAction, RegEvent, Registration,
};
use crate::status::{CertificateView, RegistrationView, SessionView};
use crate::store::{SeenJobs, SelfRecord, Store};
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
                        capabilities: if self.cfg.current().broker.batch_rewrap {
                            vec![wire::CAPABILITY_BATCH_REWRAP.to_owned()]
                        } else {
                            Vec::new()
                        },
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
            let claimed = |s: &tessera_proto::statement::Signed<_>| {
                s.parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                    .ok()
                    .map(|st: tessera_proto::statement::CredentialStatement| {
                        (st.credential_id, st.name)
                    })
            };
            let kind = match &message {
                Some(Down::CredentialStore(msg)) => {
                    delivery_plan::Kind::Delivery(claimed(&msg.statement).into_iter().collect())
                }
                Some(Down::CredentialStoreBatch(b)) => delivery_plan::Kind::Delivery(
                    b.items
                        .iter()
                        .filter_map(|i| claimed(&i.statement))
                        .collect(),
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
        let down = wire::decode::<Down>(&p.payload)
            .map_err(|e| tracing::warn!(error = %e, bytes = p.payload.len(), "dropped a malformed message"))
            .ok()?;
        if matches!(
            down,
            Down::RewrapBatchRequest(_) | Down::CredentialStoreBatch(_)
        ) && !self.cfg.current().broker.batch_rewrap
        {
            // Not announced: a relay that sends one anyway is not answered (its records time out).
            tracing::warn!("dropped a batched message: broker.batch_rewrap is off");
            return None;
        }
        Some(down)
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
            Down::RewrapBatchRequest(req) => {
                let answers = tokio::task::block_in_place(|| {
                    peer::answer_batch(&self.keys, &self.store, &req, unix_now())
                });
                for up in &answers {
                    self.publish_up(up);
                }
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
            Down::CredentialStore(_) | Down::CredentialStoreBatch(_) => {}
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
