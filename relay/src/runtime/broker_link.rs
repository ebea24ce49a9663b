//! The relay's MQTT connections: MQTT 5 where the broker speaks it, 3.1.1 otherwise (`[broker] protocol`).
//!
//! Two connections, each owned by one task ([`run`]) that polls it and backs off with jitter on errors:
//! - **inbound** (client id `client_id`, a persistent session): subscribes again at every connection and hands
//!   each agent message to the engine's bounded channel, waiting when the engine is behind (back-pressure to the
//!   broker), and nothing while the outbound connection is down;
//! - **outbound** (client id `client_id` + [`OUTBOUND_SUFFIX`], a persistent session, no subscriptions): what the outbox
//!   publishes ([`Publisher`], handed over on a watch channel). Its loop never waits on the engine, so the
//!   acknowledgements of the relay's own publishes are read at once. On one connection they were read only between
//!   the agent messages the engine was behind on, and a registration herd stalled every answer the relay sent
//!   (docs/benchmarks.md, "Fleet load").
//!
//! Each task owns its choice of protocol: with `auto` it connects with MQTT 5 and, when the broker refuses that
//! version before any connection succeeded, goes on with 3.1.1 for good.
//!
//! Why 5: the relay's inbound session has an expiry (`session_expiry_secs`). A replica that dies stops taking its
//! share of the shared subscription once its session expires; with 3.1.1 a persistent session never expires, so the
//! broker queues a dead replica's share until it comes back (docs/operations.md, "Running several relays").

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{TlsConfiguration, Transport};
use tessera_proto::backoff::Backoff;
use tessera_proto::topics;
use tessera_proto::wire::MAX_MESSAGE_BYTES;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, MqttProtocol};
use crate::health::{BrokerConnection, Health};

/// Appended to `client_id` for the outbound connection's client id.
pub(super) const OUTBOUND_SUFFIX: &str = "-out";

/// Requests queued in a client before `publish` waits.
const REQUESTS: usize = 1024;

/// The client the outbox publishes with.
#[derive(Clone)]
pub(super) enum Publisher {
    /// MQTT 3.1.1.
    V311(rumqttc::AsyncClient),
    /// MQTT 5.
    V5(rumqttc::v5::AsyncClient),
}

impl Publisher {
    /// Queues a DISCONNECT, waiting at most `limit` for room in the request queue, then gives the event loop a
    /// moment to send it. Run while the event loop still polls.
    pub(super) async fn disconnect_within(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.disconnect()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Ends the session cleanly (the broker sends no Last Will).
    async fn disconnect(&self) {
        let _ = match self {
            Self::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Self::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }

    /// Publishes at QoS 1, not retained.
    pub(super) async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Self::V311(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| e.to_string()),
            Self::V5(c) => c
                .publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// What the event-loop tasks need.
pub(super) struct Link {
    pub(super) broker: BrokerConfig,
    pub(super) tls: Arc<rustls::ClientConfig>,
    /// Agent messages, (topic, payload), to the engine worker.
    pub(super) to_engine: mpsc::Sender<(String, Vec<u8>)>,
    pub(super) health: Arc<Health>,
    pub(super) cancel: CancellationToken,
    /// Whether the outbound connection is up: the inbound task hands the engine nothing while it is down (the
    /// engine's answers would pile up unsent; the broker keeps the agents' messages queued instead).
    pub(super) outbound_up: watch::Sender<bool>,
}

impl Link {
    /// Waits until the outbound connection is up; false when cancelled first.
    async fn outbound_ready(&self) -> bool {
        let mut up = self.outbound_up.subscribe();
        tokio::select! {
            () = self.cancel.cancelled() => false,
            r = up.wait_for(|up| *up) => r.is_ok(),
        }
    }

    fn report(&self, role: Role, up: bool) {
        self.health.set_broker(role.health(), up);
        if role == Role::Outbound {
            self.outbound_up.send_replace(up);
        }
    }
}

/// Which connection a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Inbound,
    Outbound,
}

impl Role {
    fn health(self) -> BrokerConnection {
        match self {
            Self::Inbound => BrokerConnection::Inbound,
            Self::Outbound => BrokerConnection::Outbound,
        }
    }
}

/// The current client of each connection: the outbox publishes with `outbound`; at shutdown both disconnect.
pub(super) struct Clients {
    pub(super) inbound: watch::Receiver<Publisher>,
    pub(super) outbound: watch::Receiver<Publisher>,
}

impl Clients {
    /// Queues a DISCONNECT on both connections (see [`Publisher::disconnect_within`]).
    pub(super) async fn disconnect_within(&self, limit: Duration) {
        let inbound = self.inbound.borrow().clone();
        let outbound = self.outbound.borrow().clone();
        tokio::join!(
            inbound.disconnect_within(limit),
            outbound.disconnect_within(limit)
        );
    }
}

/// Spawns both event-loop tasks on `tasks`; returns their current clients.
pub(super) fn spawn(tasks: &mut tokio::task::JoinSet<()>, link: Link) -> Clients {
    let link = Arc::new(link);
    let mut spawn_one = |role| {
        let (client, first_loop) = first(&link.broker, &link.tls, role);
        let (tx, rx) = watch::channel(client);
        tasks.spawn(run(link.clone(), role, first_loop, tx));
        rx
    };
    let inbound = spawn_one(Role::Inbound);
    let outbound = spawn_one(Role::Outbound);
    Clients { inbound, outbound }
}

/// The first client of `role`: MQTT 5 unless `3.1.1` is configured. Made before the tasks start, so the outbox has
/// a client from the start.
fn first(broker: &BrokerConfig, tls: &Arc<rustls::ClientConfig>, role: Role) -> (Publisher, Loop) {
    match broker.protocol {
        MqttProtocol::V311 => v311(broker, tls, role),
        MqttProtocol::Auto | MqttProtocol::V5 => v5(broker, tls, role),
    }
}

/// The client id of `role`'s connection.
fn client_id(broker: &BrokerConfig, role: Role) -> String {
    match role {
        Role::Inbound => broker.client_id.clone(),
        Role::Outbound => format!("{}{OUTBOUND_SUFFIX}", broker.client_id),
    }
}

/// An event loop of either version, with a client of its own for subscribing.
pub(super) enum Loop {
    V311(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

fn v311(broker: &BrokerConfig, tls: &Arc<rustls::ClientConfig>, role: Role) -> (Publisher, Loop) {
    let mut opts =
        rumqttc::MqttOptions::new(client_id(broker, role), broker.host.clone(), broker.port);
    // Both sessions persistent: the inbound one keeps the subscriptions and their queue; the outbound one lets the
    // broker acknowledge, after a reconnection, the publishes rumqttc sends again (with a clean session rumqttc
    // drops what it had not had acknowledged).
    opts.set_keep_alive(Duration::from_secs(broker.keep_alive_secs.max(5)))
        .set_clean_session(false)
        .set_max_packet_size(2 * MAX_MESSAGE_BYTES + 4096, MAX_MESSAGE_BYTES + 4096)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, REQUESTS);
    eventloop.set_network_options(network());
    (
        Publisher::V311(client.clone()),
        Loop::V311(client, Box::new(eventloop)),
    )
}

fn v5(broker: &BrokerConfig, tls: &Arc<rustls::ClientConfig>, role: Role) -> (Publisher, Loop) {
    let mut opts =
        rumqttc::v5::MqttOptions::new(client_id(broker, role), broker.host.clone(), broker.port);
    // Both sessions persistent and expiring alike (see `v311`).
    opts.set_keep_alive(Duration::from_secs(broker.keep_alive_secs.max(5)))
        .set_clean_start(false)
        .set_max_packet_size(u32::try_from(2 * MAX_MESSAGE_BYTES + 4096).ok())
        .set_session_expiry_interval(Some(broker.session_expiry_secs))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )))
        .set_network_options(network());
    let (client, eventloop) = rumqttc::v5::AsyncClient::new(opts, REQUESTS);
    (
        Publisher::V5(client.clone()),
        Loop::V5(client, Box::new(eventloop)),
    )
}

/// Small request/answer messages: Nagle's algorithm with delayed acks would add tens of milliseconds a hop.
fn network() -> rumqttc::NetworkOptions {
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net
}

/// The topics the relay reads: every agent's upward messages (through the shared subscription when a group is
/// set, so each lands on one replica) and every agent's status (every replica sees presence).
fn subscriptions(group: &str) -> [String; 2] {
    let up = if group.is_empty() {
        format!("{}/agents/+/up", topics::ROOT)
    } else {
        topics::relay_agents_up(group)
    };
    [up, topics::relay_agents_status()]
}

/// How a connection attempt ended the loop of one protocol.
enum Ended {
    Cancelled,
    /// The broker refused MQTT 5 before any connection succeeded.
    RefusedV5,
}

/// An event-loop task: runs `first`'s loop, and for `auto` falls back to 3.1.1 once if the broker refuses 5.
async fn run(link: Arc<Link>, role: Role, first: Loop, client: watch::Sender<Publisher>) {
    let ended = match first {
        Loop::V311(c, l) => {
            poll_v311(&link, role, c, *l).await;
            return;
        }
        Loop::V5(c, l) => poll_v5(&link, role, c, *l).await,
    };
    if matches!(ended, Ended::RefusedV5) {
        tracing::warn!(connection = ?role, "the broker refused MQTT 5: using MQTT 3.1.1");
        let (next, l) = v311(&link.broker, &link.tls, role);
        // The outbox may be gone already (shutting down): nothing to hand over then.
        let _ = client.send(next);
        if let Loop::V311(c, l) = l {
            poll_v311(&link, role, c, *l).await;
        }
    }
}

/// Waits out a backoff step, or returns false when cancelled.
async fn back_off(link: &Link, role: Role, backoff: &mut Backoff, error: String) -> bool {
    link.report(role, false);
    let d = backoff.next_delay();
    tracing::warn!(connection = ?role, error = %error, retry_in_ms = d.as_millis(), "relay broker connection failed");
    tokio::select! {
        () = link.cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

fn connected(link: &Link, role: Role, version: &str) {
    link.report(role, true);
    tracing::info!(connection = ?role, mqtt = version, "relay connected to broker");
}

async fn poll_v311(
    link: &Link,
    role: Role,
    client: rumqttc::AsyncClient,
    mut eventloop: rumqttc::EventLoop,
) {
    use rumqttc::{Event, Packet};
    let mut backoff = Backoff::new(200, 10_000);
    loop {
        let polled = tokio::select! {
            () = link.cancel.cancelled() => return,
            p = eventloop.poll() => p,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                connected(link, role, "3.1.1");
                if role == Role::Outbound {
                    continue;
                }
                // try_subscribe: never wait on the request queue from the task that drains it.
                for t in subscriptions(&link.broker.shared_group) {
                    if let Err(e) = client.try_subscribe(t, rumqttc::QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if role == Role::Inbound => {
                if !link.outbound_ready().await {
                    return;
                }
                if link
                    .to_engine
                    .send((p.topic.clone(), p.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !back_off(link, role, &mut backoff, e.to_string()).await {
                    return;
                }
            }
        }
    }
}

async fn poll_v5(
    link: &Link,
    role: Role,
    client: rumqttc::v5::AsyncClient,
    mut eventloop: rumqttc::v5::EventLoop,
) -> Ended {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut backoff = Backoff::new(200, 10_000);
    let mut ever_connected = false;
    loop {
        let polled = tokio::select! {
            () = link.cancel.cancelled() => return Ended::Cancelled,
            p = eventloop.poll() => p,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                ever_connected = true;
                backoff.reset();
                connected(link, role, "5");
                if role == Role::Outbound {
                    continue;
                }
                for t in subscriptions(&link.broker.shared_group) {
                    if let Err(e) =
                        client.try_subscribe(t, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                    {
                        tracing::error!(error = %e, "subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if role == Role::Inbound => {
                if !link.outbound_ready().await {
                    return Ended::Cancelled;
                }
                // A topic that is not UTF-8 is no agent's: the engine drops it as such.
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if link
                    .to_engine
                    .send((topic, p.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return Ended::Cancelled;
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Only `auto` gives up on 5; with `protocol = "5"` a refusal is an error like any other.
                if !ever_connected && link.broker.protocol == MqttProtocol::Auto && refuses_v5(&e) {
                    return Ended::RefusedV5;
                }
                if !back_off(link, role, &mut backoff, e.to_string()).await {
                    return Ended::Cancelled;
                }
            }
        }
    }
}

/// Whether a failed MQTT 5 connection says the broker does not speak 5: it refused the protocol version, or
/// answered with a packet a 5 client cannot parse (a 3.1.1 CONNACK). Network and TLS failures (a reset, a refused
/// certificate) are not: they say nothing of the version. A broker that only closes the connection on a 5 CONNECT
/// is not recognised either: set `protocol = "3.1.1"` for it.
fn refuses_v5(e: &rumqttc::v5::ConnectionError) -> bool {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    use rumqttc::v5::mqttbytes::Error as Parse;
    use rumqttc::v5::{ConnectionError, StateError};
    match e {
        ConnectionError::ConnectionRefused(code) => matches!(
            code,
            ConnectReturnCode::RefusedProtocolVersion
                | ConnectReturnCode::UnsupportedProtocolVersion
        ),
        ConnectionError::MqttState(StateError::Deserialization(p)) => !matches!(
            p,
            Parse::Io(_)
                | Parse::OutgoingPacketTooLarge { .. }
                | Parse::PayloadSizeLimitExceeded { .. }
        ),
        ConnectionError::NotConnAck(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
