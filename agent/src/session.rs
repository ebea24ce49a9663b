//! The MQTT session: TLS with the agent's certificate, one task that owns the event loop, reconnect with backoff
//! and jitter, and the registration state machine.
//!
//! QoS 1 with a persistent session (`clean_session = false`, client id = agent id) and **manual acks**: an incoming
//! message is acknowledged to the broker only after the core worker has handled it (for a delivery: stored and
//! flushed), so a crash before that point makes the broker deliver it again. Outgoing QoS 1 messages the broker
//! has not acknowledged are retransmitted by rumqttc after a reconnect.

pub mod event_loop;
pub mod outbox;
pub mod registration;
pub mod tls;
