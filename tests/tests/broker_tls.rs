//! Agent certificates are real MQTT TLS client identities: a real Mosquitto with `require_certificate`,
//! `use_identity_as_username` and the ACL from `proto::broker_config` (what `tessera broker-config mosquitto` prints) accepts an agent's certificate and
//! key, confines it to its own topics, and refuses a certificate from another CA. This is system scenario 4 (broker
//! ACLs): an agent cannot subscribe to another agent's topics, nor publish on its up, down or status topics,
//! checked with real clients using real certificates, each negative check paired with a positive one.
//!
//! Needs `mosquitto` and `mosquitto_pub`/`mosquitto_sub` (Debian: mosquitto, mosquitto-clients; `scripts/test`
//! installs them when missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::ids::AgentId;
use tessera_proto::topics;
use tessera_system_tests::acl_steps::{
    assert_only_the_relay_writes_down, assert_status_not_spoofed,
};
use tessera_system_tests::broker::{agent_identity, now, service_identity, start_broker, Broker};
use tessera_system_tests::mosquitto_clients::{publish, received_while};

/// A fresh org CA and a broker that trusts it, in a temporary directory.
fn org_with_broker() -> (tempfile::TempDir, OrgCa, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let ca = OrgCa::generate("Acme", Validity::days_from(now(), 30)).unwrap();
    let broker = start_broker(dir.path(), &ca, "relay-1");
    (dir, ca, broker)
}

#[test]
fn agent_certificate_is_an_mqtt_identity_confined_to_its_topics() {
    let (dir, ca, broker) = org_with_broker();
    let relay = service_identity(dir.path(), &ca, "relay-1");
    let edge1 = agent_identity(dir.path(), &ca, "edge-1");
    let edge1_id = AgentId::new("edge-1").unwrap();
    let edge2_id = AgentId::new("edge-2").unwrap();

    // The agent's own up topic reaches the relay, with the CN as the username in the ACL pattern.
    let seen = received_while(
        &broker,
        &relay,
        "tessera/v1/agents/+/up",
        Duration::from_secs(3),
        || {
            let out = publish(
                &broker,
                &edge1,
                &topics::agent_up(&edge1_id),
                "hello from edge-1",
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Spoofing another agent's up topic is dropped by the ACL.
            let _ = publish(
                &broker,
                &edge1,
                &topics::agent_up(&edge2_id),
                "spoofed as edge-2",
            );
        },
    );
    assert!(
        seen.contains("tessera/v1/agents/edge-1/up hello from edge-1"),
        "relay saw: {seen:?}"
    );
    assert!(
        !seen.contains("spoofed"),
        "ACL let edge-1 publish as edge-2: {seen:?}"
    );

    // The relay's message to edge-1 arrives; edge-1 cannot read edge-2's down topic.
    let seen = received_while(
        &broker,
        &edge1,
        "tessera/v1/agents/+/down",
        Duration::from_secs(3),
        || {
            assert!(publish(
                &broker,
                &relay,
                &topics::agent_down(&edge1_id),
                "for edge-1"
            )
            .status
            .success());
            assert!(publish(
                &broker,
                &relay,
                &topics::agent_down(&edge2_id),
                "for edge-2 only"
            )
            .status
            .success());
        },
    );
    assert!(
        seen.contains("tessera/v1/agents/edge-1/down for edge-1"),
        "edge-1 saw: {seen:?}"
    );
    assert!(
        !seen.contains("for edge-2 only"),
        "ACL let edge-1 read edge-2's topic: {seen:?}"
    );
}

#[test]
fn an_agent_cannot_speak_as_the_relay_or_as_another_agent() {
    let (dir, ca, broker) = org_with_broker();
    let relay = service_identity(dir.path(), &ca, "relay-1");
    let edge1 = agent_identity(dir.path(), &ca, "edge-1");
    let edge1_id = AgentId::new("edge-1").unwrap();
    let edge2_id = AgentId::new("edge-2").unwrap();
    // edge-1 cannot play the relay towards edge-2: its publication on edge-2's down topic never arrives, the
    // relay's does.
    let edge2 = agent_identity(dir.path(), &ca, "edge-2");
    assert_only_the_relay_writes_down(&broker, &relay, &edge1, &edge2, &edge2_id);

    // Nor can it announce edge-2's presence: only its own status reaches the relay.
    assert_status_not_spoofed(&broker, &relay, &edge1, &edge2_id, &edge1, &edge1_id);
}

#[test]
fn certificate_from_another_ca_is_refused_by_the_broker() {
    let (dir, ca, broker) = org_with_broker();
    let rogue_ca = OrgCa::generate("Acme", Validity::days_from(now(), 30)).unwrap();
    let rogue_dir = dir.path().join("rogue");
    std::fs::create_dir(&rogue_dir).unwrap();
    let rogue = agent_identity(&rogue_dir, &rogue_ca, "edge-1");
    let out = publish(&broker, &rogue, "tessera/v1/agents/edge-1/up", "let me in");
    assert!(
        !out.status.success(),
        "broker accepted a certificate from another CA"
    );
    let genuine = agent_identity(dir.path(), &ca, "edge-1");
    assert!(
        publish(&broker, &genuine, "tessera/v1/agents/edge-1/up", "ok")
            .status
            .success()
    );
}
