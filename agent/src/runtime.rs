//! `tessera-agent run`: opens the store, loads the keys, and runs the event-loop task, the core worker and the
//! local API under one cancellation token and join set.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use tessera_proto::topics;
use tessera_proto::wire::{self, AgentState, Status, MAX_MESSAGE_BYTES};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::reload::ConfigSource;
use crate::config::{AgentConfig, LiveConfig};
use crate::core::{Core, CoreHandle, SessionHandle};
use crate::identity::{AgentKeys, IdentityError};
use crate::local_api::limiter::UidLimiter;
use crate::local_api::server::{self, ApiContext};
use crate::metrics;
use crate::session::event_loop::{self, EVENT_CAPACITY};
use crate::session::outbox::{self, Outbox};
use crate::session::tls::{broker_roots, client_config, TlsError};
use crate::status::StatusSources;
use crate::store_key::worker;
use crate::unseal::{open_store_keys, OpenError, OpenStore};
use tessera_proto::backoff::Backoff;

/// Largest MQTT packet accepted from the broker.
pub const MAX_INCOMING_PACKET: usize = 2 * MAX_MESSAGE_BYTES + 4096;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The store did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The keys or certificate are missing or invalid.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The broker CA file could not be read.
    #[error("broker CA file {path}: {source}")]
    BrokerCa {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SIGHUP could not be taken over.
    #[error("SIGHUP handler: {0}")]
    Signal(std::io::Error),
    /// The local API socket could not be bound.
    #[error("local API socket {path}: {source}")]
    Socket {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The session's MQTT options: persistent session, manual acks, the packet limits, TLS, the offline Last Will.
fn mqtt_options(
    cfg: &AgentConfig,
    keys: &AgentKeys,
    tls: Arc<rustls::ClientConfig>,
) -> MqttOptions {
    let mut opts = MqttOptions::new(keys.id.as_str(), cfg.broker.host.clone(), cfg.broker.port);
    opts.set_keep_alive(Duration::from_secs(cfg.broker.keep_alive_secs))
        .set_clean_session(false)
        .set_manual_acks(true)
        // Incoming: above the broker's packet limit (2 MiB in the shipped Mosquitto config), so an oversized
        // message reaches the wire decoder, is refused there and acknowledged, instead of breaking the connection
        // and being redelivered forever.
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_MESSAGE_BYTES + 4096)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let will = wire::encode(&Status {
        state: AgentState::Offline,
        at: 0,
    })
    .unwrap_or_default();
    opts.set_last_will(LastWill::new(
        topics::agent_status(&keys.id),
        will,
        QoS::AtLeastOnce,
        true,
    ));
    opts
}

/// Runs the agent until `cancel` fires.
pub async fn run(
    cfg: AgentConfig,
    source: ConfigSource,
    cancel: CancellationToken,
) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    // The configuration in force for new requests: the SIGHUP task replaces its policy and job templates.
    let (live_writer, live) = LiveConfig::new(cfg.clone());
    let OpenStore {
        store,
        keys: store_keys,
    } = open_store_keys(&cfg)?;
    let keys = AgentKeys::load(&store, crate::clock::unix_now())?;
    let roots = roots_for(&cfg, &keys)?;
    let tls = client_config(&keys, &roots)?;

    let opts = mqtt_options(&cfg, &keys, tls);
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    // Small request/answer messages: Nagle's algorithm with delayed acks would add tens of milliseconds a hop.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);

    let listener =
        server::bind(&cfg.socket.path, cfg.socket.mode, cfg.socket.gid).map_err(|source| {
            RunError::Socket {
                path: cfg.socket.path.display().to_string(),
                source,
            }
        })?;
    log_start(&cfg, keys.id.as_str(), &store_keys);
    let hup = crate::service::listen_sighup().map_err(RunError::Signal)?;

    let (net_tx, net_rx) = mpsc::channel(EVENT_CAPACITY);
    let (control_tx, control_rx) = mpsc::channel(4);
    let session = SessionHandle {
        control: control_tx,
        roots,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let handle = CoreHandle::new(cmd_tx);
    let net_cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(event_loop::run(
        eventloop,
        net_tx,
        control_rx,
        Backoff::new(cfg.broker.reconnect_min_ms, cfg.broker.reconnect_max_ms),
        net_cancel.clone(),
    ));
    let (store_key, store_key_task) = worker::spawn_parts(cfg.clone(), store.clone(), store_keys);
    tasks.spawn(store_key_task.run(cancel.clone()));
    let (outbox, outbox_rx) = Outbox::new();
    let publisher = tokio::spawn(outbox::run(client, outbox_rx));
    let agent = keys.id.as_str().to_owned();
    let core = Core::new(
        keys,
        store.clone(),
        outbox,
        live.clone(),
        handle.clone(),
        session,
    );
    let sources = StatusSources {
        agent,
        session: core.view(),
        store_key: store_key.clone(),
    };
    spawn_metrics(&mut tasks, &cfg, &store, &sources, &cancel);
    let api = ApiContext {
        cfg: live,
        store,
        core: handle.clone(),
        limiter: UidLimiter::new(cfg.socket.max_concurrent_per_uid),
        store_key: Some(store_key),
        status: Some(sources),
    };
    tasks.spawn(server::serve(listener, api, cancel.clone()));
    let core_task = tokio::spawn(core.run(net_rx, cmd_rx, cancel.clone()));
    tasks.spawn(crate::service::on_sighup(
        hup,
        source,
        live_writer,
        cancel.clone(),
    ));
    if let Some(interval) = crate::service::watchdog_interval(std::env::vars()) {
        tasks.spawn(crate::service::watchdog(interval, handle, cancel.clone()));
    }
    crate::service::ready();

    cancel.cancelled().await;
    crate::service::stopping();
    let _ = core_task.await;
    // The core queued the offline status and a disconnect; let the event loop send them.
    let _ = tokio::time::timeout(Duration::from_secs(2), publisher).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    net_cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&cfg.socket.path);
    tracing::info!("agent stopped");
    Ok(())
}

/// The CA certificates the broker's server certificate must chain to: `broker.ca_file`, else the pinned org CA.
fn roots_for(cfg: &AgentConfig, keys: &AgentKeys) -> Result<Vec<Vec<u8>>, RunError> {
    match &cfg.broker.ca_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| RunError::BrokerCa {
                path: path.display().to_string(),
                source,
            })?;
            Ok(broker_roots(&bytes)?)
        }
        None => Ok(vec![keys.ca.der().to_vec()]),
    }
}

/// The metrics textfile's task, when `[metrics] textfile` is set.
fn spawn_metrics(
    tasks: &mut JoinSet<()>,
    cfg: &Arc<AgentConfig>,
    store: &crate::store::Store,
    sources: &StatusSources,
    cancel: &CancellationToken,
) {
    if let Some(textfile) = cfg.metrics.textfile.clone() {
        tasks.spawn(metrics::run(
            textfile,
            Duration::from_secs(cfg.metrics.interval_secs),
            cfg.clone(),
            store.clone(),
            sources.clone(),
            cancel.clone(),
        ));
    }
}

/// The start line, and a warning when the store key's sealer is not the configured one (a re-sealing left half done).
fn log_start(cfg: &AgentConfig, agent: &str, store_keys: &crate::store_key::KeyState) {
    tracing::info!(
        agent,
        broker = %format!("{}:{}", cfg.broker.host, cfg.broker.port),
        socket = %cfg.socket.path.display(),
        store_key_generation = store_keys.active().generation,
        store_key_sealer = store_keys.active().sealer.backend(),
        store_key_state = store_keys.name(),
        "agent starting"
    );
    if store_keys.active().sealer.kind() != cfg.sealer.backend {
        tracing::warn!(
            "the store key is sealed by {} but [sealer] backend says {}: a rotation keeps the current sealer; run \
             `tessera-agent rotate-store-key --to {}` if the store key should move",
            store_keys.active().sealer.backend(),
            cfg.sealer.backend,
            cfg.sealer.backend
        );
    }
}
