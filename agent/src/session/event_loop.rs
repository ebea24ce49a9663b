//! The one task that owns the MQTT event loop: it only polls, hands events to the core worker over a bounded
//! channel, and on error backs off with jitter and keeps polling (rumqttc reconnects on the next poll).
//!
//! The worker never awaits the client (it sends through the outbox task), so this task waiting on the bounded
//! channel is plain backpressure, never a cycle: see `outbox`.

use rumqttc::{Event, EventLoop, Packet, Publish};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use tessera_proto::backoff::Backoff;

/// Capacity of the event channel to the core worker.
pub const EVENT_CAPACITY: usize = 128;

/// What the core worker hears from the network.
#[derive(Debug)]
pub enum NetEvent {
    /// The broker accepted the connection (CONNACK).
    Connected,
    /// The connection failed or dropped.
    Disconnected,
    /// A message arrived; acknowledge it with the client once handled.
    Message(Publish),
}

/// Polls `eventloop` until cancelled.
pub async fn run(
    mut eventloop: EventLoop,
    events: mpsc::Sender<NetEvent>,
    mut backoff: Backoff,
    cancel: CancellationToken,
) {
    let mut connected = false;
    loop {
        let polled = tokio::select! {
            () = cancel.cancelled() => return,
            polled = eventloop.poll() => polled,
        };
        let forward = match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(session_present = ack.session_present, "connected to broker");
                connected = true;
                backoff.reset();
                Some(NetEvent::Connected)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Some(NetEvent::Message(p)),
            Ok(_) => None,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "broker connection failed");
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
