//! `tessera-relay serve`: the MQTT event-loop task, the engine worker, the outbox task and the admin API, under one
//! cancellation token.
//!
//! The engine worker owns the [`Engine`]; it takes agents' messages from the event loop, operator mutations from
//! the admin API (typed requests with a reply channel) and a tick each second. Reads of state go to the store
//! directly. The worker never awaits the MQTT client: outbound messages go through the outbox task (the same rule
//! as the agent's, for the same reason).
//!
//! Around them: the health listener ([`crate::health`]), systemd's notifications ([`crate::service`]) and, for the
//! binary, the SIGHUP reload of the `[engine]` numbers ([`sighup`]).

mod broker_link;
mod replica_status;
mod sighup;

use std::sync::Arc;
use std::time::Duration;

use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::{Envelope, KeyFingerprint};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::statement::{CredentialStatement, Signed};
use tessera_proto::topics;
use tessera_proto::wire;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::RelayConfig;
use crate::coordination::CoordinationStatus;
use crate::engine::operator::OperatorError;
use crate::engine::EngineConfig;
use crate::engine::{Engine, Outbound};
use crate::health::Health;
use crate::state::{PgStore, RelayStore, SledStore};
use crate::tls;

/// A mutation for the engine worker.
#[derive(Debug)]
pub enum AdminRequest {
    /// Put, rotate, grant or revoke.
    Put {
        /// The signed statement.
        statement: Signed<CredentialStatement>,
        /// Envelopes with the fingerprint of the key each is sealed to.
        envelopes: Vec<(AgentId, KeyFingerprint, Envelope)>,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// An operator batch (an import): statements, single and batch envelopes.
    PutBatch {
        /// The body as the operator sent it.
        body: Box<tessera_proto::admin::PutBatchBody>,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Soft delete.
    Remove {
        /// Credential.
        id: CredentialId,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Delete on an operator-signed tombstone, and purge on agents.
    Tombstone {
        /// Credential.
        id: CredentialId,
        /// The tombstone.
        tombstone: Signed<tessera_proto::statement::CredentialTombstone>,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// The CA's certificate for an agent's queued renewal request.
    RenewalCertificate {
        /// The agent.
        agent: AgentId,
        /// The certificate, DER.
        cert: Vec<u8>,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Ask an agent to rotate its keys now.
    Rotate {
        /// The agent.
        agent: AgentId,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// An operator acknowledges an alert (by its id, [`crate::alerts::Alert::id`]).
    AckAlert {
        /// The alert's id.
        id: String,
        /// The operator.
        by: String,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Operator retry.
    Retry {
        /// Credential.
        id: CredentialId,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// A new revocation list.
    Revocations {
        /// The list, signed by the org CA.
        list: Signed<tessera_proto::statement::RevocationList>,
        /// Answer.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Dispatch a job.
    Job {
        /// Template.
        template: TemplateName,
        /// Parameters.
        params: std::collections::BTreeMap<String, String>,
        /// Credentials it needs.
        credentials: Vec<CredentialName>,
        /// A specific agent.
        agent: Option<AgentId>,
        /// Answer: job id and agent.
        reply: oneshot::Sender<Result<(uuid::Uuid, AgentId), OperatorError>>,
    },
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A file could not be read or parsed.
    #[error("{0}")]
    Input(String),
    /// The state store failed to open.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The admin API could not start.
    #[error("admin API: {0}")]
    Admin(String),
    /// The health listener could not start.
    #[error("health listener: {0}")]
    Health(String),
    /// The coordination configuration is refused.
    #[error(transparent)]
    Coordination(#[from] crate::coordination::CoordinationError),
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| ServeError::Input(format!("{}: {e}", path.display())))
}

/// The certificates and keys a configuration names, loaded and checked: the pinned org CA, the MQTT client
/// configuration and the admin API's server configuration. `serve` starts from it; `check-config` only builds it.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The org CA, DER.
    pub ca_der: Vec<u8>,
    /// The org CA.
    pub ca: PinnedCa,
    /// The broker connection (the relay's service identity).
    pub broker: Arc<rustls::ClientConfig>,
    /// The admin API (requires operator client certificates from the org CA).
    pub admin: Arc<rustls::ServerConfig>,
}

impl TlsMaterial {
    /// Reads and checks everything `cfg` names (each error names the file).
    pub fn load(cfg: &RelayConfig) -> Result<Self, ServeError> {
        let named =
            |p: &std::path::Path, e: String| ServeError::Input(format!("{}: {e}", p.display()));
        let ca_der = tls::first_cert(&read(&cfg.org_ca)?).map_err(|e| named(&cfg.org_ca, e))?;
        let ca =
            PinnedCa::from_der(&ca_der).map_err(|e| named(&cfg.org_ca, format!("org CA: {e}")))?;
        let broker_roots = match &cfg.broker.ca_file {
            Some(p) => tls::all_certs(&read(p)?).map_err(|e| named(p, e))?,
            None => vec![ca_der.clone()],
        };
        let broker = tls::client_config(
            &broker_roots,
            &read(&cfg.broker.cert)?,
            &read(&cfg.broker.key)?,
        )
        .map_err(|e| {
            ServeError::Input(format!(
                "{} / {}: {e}",
                cfg.broker.cert.display(),
                cfg.broker.key.display()
            ))
        })?;
        let admin = tls::server_config(
            std::slice::from_ref(&ca_der),
            &read(&cfg.admin.cert)?,
            &read(&cfg.admin.key)?,
        )
        .map_err(|e| {
            ServeError::Input(format!(
                "{} / {}: {e}",
                cfg.admin.cert.display(),
                cfg.admin.key.display()
            ))
        })?;
        Ok(Self {
            ca_der,
            ca,
            broker,
            admin,
        })
    }
}

/// Runs the relay until `cancel`.
pub async fn serve(cfg: RelayConfig, cancel: CancellationToken) -> Result<(), ServeError> {
    serve_with_clock(cfg, Arc::new(SystemClock), cancel).await
}

/// Runs the relay until `cancel`, reloading the `[engine]` numbers from `config` (the file it started from; `None`:
/// the default path) on SIGHUP. What `tessera-relay serve` runs.
pub async fn serve_reloading(
    cfg: RelayConfig,
    config: Option<std::path::PathBuf>,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    run(cfg, Arc::new(SystemClock), cancel, Some(ConfigFile(config))).await
}

/// The file SIGHUP reloads (`None`: the default path).
#[derive(Debug)]
struct ConfigFile(Option<std::path::PathBuf>);

/// Runs the relay until `cancel`, its schedules reading `clock` (system tests accelerate time with a
/// [`crate::clock::ManualClock`]).
pub async fn serve_with_clock(
    cfg: RelayConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    run(cfg, clock, cancel, None).await
}

/// The configured state backend.
pub fn open_store(cfg: &RelayConfig) -> Result<Arc<dyn RelayStore>, crate::state::StateError> {
    Ok(match cfg.state.backend {
        crate::config::StateBackend::Sled => {
            Arc::new(SledStore::open(&cfg.state_dir.join("state"))?)
        }
        crate::config::StateBackend::Postgres => Arc::new(PgStore::open_as(
            &cfg.state.postgres,
            &cfg.coordination.replica,
        )?),
    })
}

async fn run(
    cfg: RelayConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    reload_from: Option<ConfigFile>,
) -> Result<(), ServeError> {
    let TlsMaterial {
        ca_der: _,
        ca,
        broker: client_tls,
        admin: admin_tls,
    } = TlsMaterial::load(&cfg)?;
    let store = open_store(&cfg)?;
    tracing::info!(backend = ?cfg.state.backend, "relay state opened");
    let mut engine = Engine::new(store.clone(), ca.clone(), cfg.engine.clone(), clock);
    engine.set_coordination(open_coordination(&cfg)?);
    let (coordination_tx, coordination_rx) = tokio::sync::watch::channel(engine.coordination());

    let (net_tx, net_rx) = mpsc::channel(1024);
    let (admin_tx, admin_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let health = Health::new();
    health.metrics.set_limits(&cfg.engine);
    let health_listener = bind_health(&cfg).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let net_cancel = CancellationToken::new();
    let clients = broker_link::spawn(
        &mut tasks,
        broker_link::Link {
            broker: cfg.broker.clone(),
            tls: client_tls,
            to_engine: net_tx,
            health: health.clone(),
            cancel: net_cancel.clone(),
            outbound_up: tokio::sync::watch::channel(false).0,
        },
    );
    tasks.spawn(outbox(clients.outbound.clone(), out_rx));
    let admin = crate::admin::AdminState {
        store: store.clone(),
        ca,
        requests: admin_tx,
        health: health.clone(),
        state_backend: cfg.state.backend.as_str(),
        coordination: coordination_rx,
    };
    let listener = tokio::net::TcpListener::bind(cfg.admin.listen)
        .await
        .map_err(|e| ServeError::Admin(format!("{}: {e}", cfg.admin.listen)))?;
    tracing::info!(admin = %cfg.admin.listen, health = %health_listener.as_ref().map_or_else(|| "off".to_owned(), |_| cfg.health.listen.to_string()), broker = %format!("{}:{}", cfg.broker.host, cfg.broker.port), "relay starting");
    if let Some(l) = health_listener {
        tasks.spawn(crate::health::serve(
            l,
            health.clone(),
            store.clone(),
            cancel.clone(),
        ));
    }
    if let Some(ConfigFile(path)) = reload_from {
        let hup = sighup::listen().map_err(|e| ServeError::Input(format!("SIGHUP: {e}")))?;
        tasks.spawn(sighup::run(
            hup,
            path,
            cfg.clone(),
            reload_tx,
            health.clone(),
            cancel.clone(),
        ));
    }
    replica_status::spawn(&mut tasks, &store, &admin.coordination, &cancel);
    tasks.spawn(crate::admin::serve(
        listener,
        admin_tls,
        admin,
        cancel.clone(),
    ));
    let worker = tokio::spawn(engine_worker(
        engine,
        net_rx,
        admin_rx,
        out_tx,
        reload_rx,
        (health.clone(), coordination_tx),
        cancel.clone(),
    ));
    if let Some(interval) = crate::service::watchdog_interval(std::env::vars()) {
        tasks.spawn(crate::service::watchdog(interval, health, cancel.clone()));
    }
    crate::service::ready();

    cancel.cancelled().await;
    crate::service::stopping();
    let _ = worker.await;
    let _ = store.flush();
    // The DISCONNECTs are queued while the event loops still run, so that they are sent (the broker then ends the
    // connections cleanly and keeps the sessions); a full request queue does not hold the shutdown up.
    clients.disconnect_within(Duration::from_millis(500)).await;
    net_cancel.cancel();
    tasks.shutdown().await;
    tracing::info!("relay stopped");
    Ok(())
}

/// This replica's coordination, from `[coordination]`.
fn open_coordination(cfg: &RelayConfig) -> Result<crate::coordination::Coordinator, ServeError> {
    let coordinator = crate::coordination::Coordinator::open(&cfg.coordination)?;
    tracing::info!(
        backend = cfg.coordination.backend.as_str(),
        replica = coordinator.replica(),
        "relay coordination"
    );
    Ok(coordinator)
}

/// The health listener, bound before anything starts: a port in use fails the start, as the admin API's does.
async fn bind_health(cfg: &RelayConfig) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    if !cfg.health.enabled {
        return Ok(None);
    }
    tokio::net::TcpListener::bind(cfg.health.listen)
        .await
        .map(Some)
        .map_err(|e| ServeError::Health(format!("{}: {e}", cfg.health.listen)))
}

/// Publishes what the engine sends, through the current MQTT client (the event-loop task replaces it when it falls
/// back to 3.1.1).
async fn outbox(
    publisher: tokio::sync::watch::Receiver<broker_link::Publisher>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    while let Some(o) = rx.recv().await {
        match wire::encode(&o.msg) {
            Ok(bytes) => {
                let client = publisher.borrow().clone();
                if let Err(e) = client.publish(topics::agent_down(&o.to), bytes).await {
                    tracing::warn!(error = %e, "publish failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not encode a message"),
        }
    }
}

async fn engine_worker(
    mut engine: Engine,
    mut net: mpsc::Receiver<(String, Vec<u8>)>,
    mut admin: mpsc::Receiver<AdminRequest>,
    out: mpsc::UnboundedSender<Outbound>,
    mut reload: mpsc::Receiver<EngineConfig>,
    (health, coordination): (Arc<Health>, tokio::sync::watch::Sender<CoordinationStatus>),
    cancel: CancellationToken,
) {
    health.beat();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let send = |msgs: Vec<Outbound>| {
        for m in msgs {
            let _ = out.send(m);
        }
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some((topic, payload)) = net.recv() => send(engine.on_message(&topic, &payload)),
            Some(req) = admin.recv() => match req {
                AdminRequest::Put { statement, envelopes, reply } => {
                    let r = engine.put_credential(&statement, &envelopes).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::PutBatch { body, reply } => {
                    let r = engine.put_credentials_batch(&body).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::Revocations { list, reply } => {
                    let r = engine.apply_revocations(&list).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::Remove { id, reply } => { let _ = reply.send(engine.remove_credential(&id)); }
                AdminRequest::Tombstone { id, tombstone, reply } => {
                    let r = engine.tombstone_credential(&id, &tombstone).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::RenewalCertificate { agent, cert, reply } => {
                    let r = engine.renewal_certificate(&agent, &cert).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::Rotate { agent, reply } => {
                    let r = engine.rotate_agent(&agent).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::AckAlert { id, by, reply } => {
                    let _ = reply.send(engine.ack_alert(&id, &by));
                }
                AdminRequest::Retry { id, reply } => {
                    let r = engine.retry(&id).map(&send);
                    let _ = reply.send(r);
                }
                AdminRequest::Job { template, params, credentials, agent, reply } => {
                    let r = engine.dispatch_job(template, params, credentials, agent.as_ref()).map(|(id, agent, msgs)| {
                        send(msgs);
                        (id, agent)
                    });
                    let _ = reply.send(r);
                }
            },
            Some(cfg) = reload.recv() => {
                health.metrics.set_limits(&cfg);
                engine.set_config(cfg);
            }
            _ = tick.tick() => {
                send(engine.tick());
                coordination.send_if_modified(|c| {
                    let now = engine.coordination();
                    let changed = *c != now;
                    *c = now;
                    changed
                });
                let durations = engine.take_rewrap_durations_ms();
                health.metrics.observe_engine(&engine.metrics, &durations, engine.backfill_backlog());
                health.beat();
            }
        }
    }
}
