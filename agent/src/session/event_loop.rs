//! The one task that owns the MQTT event loop: it only polls, hands events to the core worker over a bounded
//! channel, and on error backs off with jitter and keeps polling (rumqttc reconnects on the next poll).
//!
//! Backoff: exponential with full jitter over consecutive connection errors, reset only after a connection stayed
//! up for [`HEALTHY_CONNECTION`]. A CONNACK alone is not health: a hostile or broken broker that accepts the
//! connection and then sends a packet over our size limit (rumqttc fails the connection on it, and a persistent
//! session redelivers it at once) would otherwise make the agent reconnect in a tight loop. The size error is logged
//! once per streak of failures.
//!
//! The worker never awaits the client (it sends through the outbox task), so this task waiting on the bounded
//! channel is plain backpressure, never a cycle: see `outbox`.

use rumqttc::{
    ConnectionError, Event, EventLoop, Packet, Publish, StateError, TlsConfiguration, Transport,
};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use tessera_proto::backoff::Backoff;

/// Capacity of the event channel to the core worker.
pub const EVENT_CAPACITY: usize = 128;

/// How long a connection must have stayed up for the next failure to start a new backoff streak.
pub const HEALTHY_CONNECTION: Duration = Duration::from_secs(30);

/// What the core worker hears from the network.
#[derive(Debug)]
pub enum NetEvent {
    /// The broker accepted the connection (CONNACK), made with the TLS identity of this generation (0 at start,
    /// then the one each [`SessionControl::UseIdentity`] named).
    Connected {
        /// The identity generation.
        generation: u64,
    },
    /// The connection failed or dropped.
    Disconnected,
    /// A message arrived; acknowledge it with the client once handled.
    Message(Publish),
}

/// Whether `e` is the broker sending a packet larger than the agent accepts.
fn is_oversized(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
        ))
    )
}

/// Consecutive connection failures and what has been logged about them.
#[derive(Debug)]
struct Streak {
    backoff: Backoff,
    connected_at: Option<Instant>,
    failures: u32,
    size_logged: bool,
}

impl Streak {
    fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// A connection error at `now`: the delay before the next attempt.
    fn failed(&mut self, e: &ConnectionError, now: Instant) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|t| now.saturating_duration_since(t) >= HEALTHY_CONNECTION)
        {
            self.backoff.reset();
            self.failures = 0;
            self.size_logged = false;
        }
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.next_delay();
        if is_oversized(e) {
            if self.size_logged {
                tracing::debug!(error = %e, failures = self.failures, retry_in_ms = delay.as_millis(), "oversized packet again");
            } else {
                self.size_logged = true;
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "the broker sent a packet larger than this agent accepts; dropping the connection and backing off (logged once until a connection stays healthy)");
            }
        } else {
            tracing::warn!(error = %e, failures = self.failures, retry_in_ms = delay.as_millis(), "broker connection failed");
        }
        delay
    }
}

/// What the core worker may ask of the event-loop task.
#[derive(Debug)]
pub enum SessionControl {
    /// Reconnect with this TLS identity (a key rotation validating its green certificate, or going back to blue):
    /// the connection is dropped, unacknowledged requests are kept for the next one (rumqttc's `clean`), and the
    /// next poll connects at once with the new certificate. The persistent session (same client id) carries over.
    UseIdentity {
        /// The TLS configuration with the certificate and key to use.
        tls: Arc<ClientConfig>,
        /// Its generation, echoed in [`NetEvent::Connected`], so a connection made with the previous identity is
        /// never taken for one made with this.
        generation: u64,
    },
}

/// Polls `eventloop` until cancelled.
pub async fn run(
    mut eventloop: EventLoop,
    events: mpsc::Sender<NetEvent>,
    mut control: mpsc::Receiver<SessionControl>,
    backoff: Backoff,
    cancel: CancellationToken,
) {
    let mut connected = false;
    let mut generation = 0;
    let mut streak = Streak {
        backoff,
        connected_at: None,
        failures: 0,
        size_logged: false,
    };
    loop {
        let polled = tokio::select! {
            () = cancel.cancelled() => return,
            Some(SessionControl::UseIdentity { tls, generation: g }) = control.recv() => {
                generation = g;
                eventloop
                    .mqtt_options
                    .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
                eventloop.clean();
                streak.backoff.reset();
                streak.connected_at = None;
                tracing::info!("reconnecting with another certificate (key rotation)");
                if connected {
                    connected = false;
                    if events.send(NetEvent::Disconnected).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            polled = eventloop.poll() => polled,
        };
        let forward = match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(session_present = ack.session_present, "connected to broker");
                connected = true;
                streak.connected(Instant::now());
                Some(NetEvent::Connected { generation })
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Some(NetEvent::Message(p)),
            Ok(_) => None,
            Err(e) => {
                let delay = streak.failed(&e, Instant::now());
                if connected {
                    connected = false;
                    if events.send(NetEvent::Disconnected).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                None
            }
        };
        if let Some(ev) = forward {
            if events.send(ev).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
