//! Two engines over one store (two replicas) coordinating through the machine's Redis: a flood spread over both
//! is counted once, and one of them sweeps per reconciler slot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tessera_proto::ids::CredentialName;
use tessera_proto::wire::{CredentialMissing, Up};

use super::tests::World;
use super::{Engine, EngineConfig};
use crate::alerts::AlertKind;
use crate::coordination::{CoordinationBackend, CoordinationConfig, Coordinator, RedisConfig};

fn coordinator(replica: &str, prefix: &str) -> Coordinator {
    Coordinator::open(&CoordinationConfig {
        backend: CoordinationBackend::Redis,
        replica: replica.to_owned(),
        redis: RedisConfig {
            url: std::env::var("TESSERA_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned()),
            key_prefix: prefix.to_owned(),
            ..RedisConfig::default()
        },
    })
    .unwrap()
}

#[test]
fn a_flood_spread_over_two_replicas_is_counted_once() {
    let cfg = EngineConfig {
        missing_flood_threshold: 3,
        ..EngineConfig::default()
    };
    let mut w = World::with(cfg.clone());
    let prefix = format!("tessera-test-{}", uuid::Uuid::new_v4());
    w.engine.set_coordination(coordinator("relay-a", &prefix));
    let mut b = Engine::new(
        w.engine.store().clone(),
        w.org.ca.pinned().clone(),
        cfg,
        Arc::new(w.clock.clone()),
    );
    b.set_coordination(coordinator("relay-b", &prefix));
    let edge = w.agent("edge-1");
    let ask = |n: usize| {
        tessera_proto::wire::encode(&Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::new_v4(),
            name: CredentialName::new(format!("nope-{n}")).unwrap(),
        }))
        .unwrap()
    };
    let topic = tessera_proto::topics::agent_up(&edge);
    let flooded = |w: &World| {
        w.engine
            .store()
            .alerts()
            .unwrap()
            .iter()
            .any(|a| a.kind == AlertKind::AgentCredentialFlood)
    };
    // Two asks on each replica: four in the window, over the threshold of three; each replica saw only two.
    w.engine.on_message(&topic, &ask(1));
    b.on_message(&topic, &ask(2));
    w.engine.on_message(&topic, &ask(3));
    assert!(!flooded(&w), "three are not over the threshold");
    b.on_message(&topic, &ask(4));
    assert!(flooded(&w), "the fourth, on the other replica, is");
    assert_eq!(w.engine.coordination().backend, "redis");
    assert!(!w.engine.coordination().degraded);
}
