//! The outbox: everything the agent sends goes through one task that owns the client's request side.
//!
//! Why: the event-loop task must never wait on a worker while that worker waits on the client's bounded request
//! queue (which only drains while the event loop is polled) — that cycle froze the agent under a burst of
//! redeliveries after a crash. Workers therefore never await the client: they push to this queue and return. The
//! queue is unbounded in type but bounded by design: every entry answers an incoming message (at most the broker's
//! in-flight window), a local request (at most `max_concurrent_per_uid` per uid), a job, or a status change.

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::mpsc;

/// One thing to send, in order.
#[derive(Debug)]
pub enum Outgoing {
    /// Subscribe (QoS 1).
    Subscribe(String),
    /// Publish (QoS 1).
    Publish {
        /// Topic.
        topic: String,
        /// Retained?
        retain: bool,
        /// Bytes.
        payload: Vec<u8>,
    },
    /// Acknowledge an incoming message to the broker.
    Ack(Box<Publish>),
    /// Disconnect cleanly (after everything queued before it).
    Disconnect,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Outbox {
    /// A new outbox and the receiver its task drains.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    fn push(&self, o: Outgoing) {
        if self.tx.send(o).is_err() {
            tracing::warn!("outbox closed; message not sent");
        }
    }

    /// Queues a QoS 1 publish.
    pub fn publish(&self, topic: String, retain: bool, payload: Vec<u8>) {
        self.push(Outgoing::Publish {
            topic,
            retain,
            payload,
        });
    }

    /// Queues an acknowledgement.
    pub fn ack(&self, p: Publish) {
        self.push(Outgoing::Ack(Box::new(p)));
    }

    /// Queues a subscription.
    pub fn subscribe(&self, topic: String) {
        self.push(Outgoing::Subscribe(topic));
    }

    /// Queues a clean disconnect.
    pub fn disconnect(&self) {
        self.push(Outgoing::Disconnect);
    }
}

/// Drains the outbox into the client until every sender is gone.
pub async fn run(client: AsyncClient, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(o) = rx.recv().await {
        let result = match o {
            Outgoing::Subscribe(topic) => client.subscribe(topic, QoS::AtLeastOnce).await,
            Outgoing::Publish {
                topic,
                retain,
                payload,
            } => {
                client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await
            }
            Outgoing::Ack(p) => client.ack(&p).await,
            Outgoing::Disconnect => client.disconnect().await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not hand a message to the MQTT client");
        }
    }
}
