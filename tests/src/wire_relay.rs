//! A relay on the wire that is not the relay: a client with a certificate the broker's ACL gives the relay's
//! rights, which publishes whatever it likes on agents' down topics and records everything it receives. The
//! agents' wire tests use it as the relay; the hostile-relay suite and the demo use it as a relay taken over.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::panic
)]

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tessera_proto::ids::AgentId;
use tessera_proto::topics;
use tessera_proto::wire::{self, AgentState, Down, Status, Up};

use crate::broker::Identity;

/// How long the helpers wait for an agent.
pub const WAIT: Duration = Duration::from_secs(15);

/// Why the double could not connect or publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireRelayError {
    /// Certificate or key files.
    #[error("identity files: {0}")]
    Identity(String),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A message could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
    /// Connecting or subscribing.
    #[error(transparent)]
    Connect(#[from] crate::mqtt::MqttError),
    /// The MQTT client.
    #[error("MQTT: {0}")]
    Mqtt(#[from] rumqttc::ClientError),
}

/// The double.
pub struct WireRelay {
    client: AsyncClient,
    rx: crate::mqtt::Inbox,
    statuses: VecDeque<(String, Vec<u8>)>,
    ups: VecDeque<(String, Vec<u8>)>,
    /// Every byte received, to assert no plaintext ever reached it.
    pub received: Vec<u8>,
}

impl std::fmt::Debug for WireRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireRelay")
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

fn der(path: &std::path::Path) -> Result<Vec<u8>, WireRelayError> {
    let bytes = std::fs::read(path)
        .map_err(|e| WireRelayError::Identity(format!("{}: {e}", path.display())))?;
    pem::parse(bytes)
        .map(pem::Pem::into_contents)
        .map_err(|e| WireRelayError::Identity(format!("{}: {e}", path.display())))
}

impl WireRelay {
    /// Connects to the broker on `port` as `client_id` with `identity` (which the ACL must know as a relay) and
    /// subscribes to every agent's up and status topics.
    pub async fn connect(
        port: u16,
        ca_der: &[u8],
        identity: &Identity,
        client_id: &str,
    ) -> Result<Self, WireRelayError> {
        let tls = crate::mqtt::client_tls(ca_der, der(&identity.cert)?, der(&identity.key)?)?;
        let (client, rx) = crate::mqtt::connect(
            MqttOptions::new(client_id, "127.0.0.1", port),
            tls,
            &[
                "tessera/v1/agents/+/up".to_owned(),
                "tessera/v1/agents/+/status".to_owned(),
            ],
        )
        .await?;
        Ok(Self {
            client,
            rx,
            statuses: VecDeque::new(),
            ups: VecDeque::new(),
            received: Vec::new(),
        })
    }

    async fn pull(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some((topic, payload))) => {
                self.received.extend_from_slice(&payload);
                if topic.ends_with("/status") {
                    self.statuses.push_back((topic, payload));
                } else {
                    self.ups.push_back((topic, payload));
                }
                true
            }
            _ => false,
        }
    }

    /// The next message `agent` sent on its up topic.
    pub async fn next_up(&mut self, agent: &AgentId) -> Up {
        let topic = topics::agent_up(agent);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.ups.iter().position(|(t, _)| *t == topic) {
                let (_, payload) = self.ups.remove(i).unwrap();
                return wire::decode::<Up>(&payload).unwrap();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.pull(left).await,
                "no message from {} within {WAIT:?}",
                agent.as_str()
            );
        }
    }

    /// Whatever arrives within `within`, recorded; returns how many messages came.
    pub async fn drain(&mut self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.pull(left).await {
                return n;
            }
            n += 1;
        }
    }

    /// Waits until `agent`'s status is `state`.
    pub async fn wait_status(&mut self, agent: &AgentId, state: AgentState) {
        let topic = topics::agent_status(agent);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some((t, payload)) = self.statuses.pop_front() {
                if t == topic && wire::decode::<Status>(&payload).unwrap().state == state {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.pull(left).await,
                "{} never reported {state:?}",
                agent.as_str()
            );
        }
    }

    /// Publishes `down` on `agent`'s down topic.
    pub async fn send(&self, agent: &AgentId, down: &Down) -> Result<(), WireRelayError> {
        let bytes = wire::encode(down).map_err(|e| WireRelayError::Encode(e.to_string()))?;
        self.send_raw(agent, bytes).await
    }

    /// Publishes `down` on `agent`'s down topic as a retained message (what a relay taken over could leave behind
    /// for the broker to hand out again at every subscription).
    pub async fn send_retained(&self, agent: &AgentId, down: &Down) -> Result<(), WireRelayError> {
        let bytes = wire::encode(down).map_err(|e| WireRelayError::Encode(e.to_string()))?;
        self.client
            .publish(topics::agent_down(agent), QoS::AtLeastOnce, true, bytes)
            .await?;
        Ok(())
    }

    /// Publishes raw bytes on `agent`'s down topic.
    pub async fn send_raw(&self, agent: &AgentId, bytes: Vec<u8>) -> Result<(), WireRelayError> {
        self.publish(&topics::agent_down(agent), bytes).await
    }

    /// Publishes raw bytes on any topic.
    pub async fn publish(&self, topic: &str, bytes: Vec<u8>) -> Result<(), WireRelayError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, bytes)
            .await?;
        Ok(())
    }

    /// How many messages from `agent` on its up topic are waiting to be read.
    pub fn queued_ups(&self, agent: &AgentId) -> usize {
        let topic = topics::agent_up(agent);
        self.ups.iter().filter(|(t, _)| *t == topic).count()
    }

    /// Whether `needle` appears anywhere in what the double received.
    pub fn saw(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.received.windows(needle.len()).any(|w| w == needle)
    }
}
