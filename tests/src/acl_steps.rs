//! The ACL steps the broker tests share (tests/tests/broker_tls.rs on the generated configuration,
//! tests/tests/broker_deploy.rs on the shipped one): an agent can neither play the relay towards another agent nor
//! announce another agent's status. Each pairs the forged publication with a genuine one in the same window (see
//! [`received_while`]), so a subscription that was not ready fails the step rather than passing it vacuously.
#![allow(clippy::missing_panics_doc)]

use std::time::Duration;

use tessera_proto::ids::AgentId;
use tessera_proto::topics;

use crate::broker::{Broker, Identity};
use crate::mosquitto_clients::{publish, received_while};

/// `intruder`'s publication on `victim`'s down topic never reaches `victim`; `relay`'s does.
pub fn assert_only_the_relay_writes_down(
    broker: &Broker,
    relay: &Identity,
    intruder: &Identity,
    victim: &Identity,
    victim_id: &AgentId,
) {
    let down = topics::agent_down(victim_id);
    let seen = received_while(broker, victim, &down, Duration::from_secs(3), || {
        let _ = publish(broker, intruder, &down, "forged by another agent");
        assert!(publish(broker, relay, &down, "from the relay")
            .status
            .success());
    });
    assert!(seen.contains("from the relay"), "{victim_id} saw: {seen:?}");
    assert!(
        !seen.contains("forged"),
        "ACL let another agent publish on {victim_id}'s down topic: {seen:?}"
    );
}

/// `intruder`'s publication of `victim_id`'s status never reaches `relay`; `speaker`'s of its own (`speaker_id`)
/// does.
pub fn assert_status_not_spoofed(
    broker: &Broker,
    relay: &Identity,
    intruder: &Identity,
    victim_id: &AgentId,
    speaker: &Identity,
    speaker_id: &AgentId,
) {
    let seen = received_while(
        broker,
        relay,
        "tessera/v1/agents/+/status",
        Duration::from_secs(3),
        || {
            let _ = publish(
                broker,
                intruder,
                &topics::agent_status(victim_id),
                "spoofed status",
            );
            assert!(publish(
                broker,
                speaker,
                &topics::agent_status(speaker_id),
                "genuine status"
            )
            .status
            .success());
        },
    );
    assert!(seen.contains("genuine status"), "relay saw: {seen:?}");
    assert!(
        !seen.contains("spoofed"),
        "ACL let an agent publish {victim_id}'s status: {seen:?}"
    );
}
