//! Crash safety of the target role: the real agent is SIGKILLed at random points while a stream of deliveries
//! arrives. After every kill the store opens, every credential the agent acknowledged as stored is present and
//! opens to its plaintext, and after the restart the broker's redeliveries bring the rest.
//!
//! Size knob: `TESSERA_CRASH_ROUNDS` (default 5 here; the full run is documented in docs/operations.md as
//! `TESSERA_CRASH_ROUNDS=25 cargo test -p tessera-agent --test crash`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::World;
use tessera_proto::ids::CredentialId;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{AgentState, Down, RegisterAck, StoreOutcome, Up};

const PER_ROUND: usize = 200;

fn rounds() -> usize {
    std::env::var("TESSERA_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn random_below(n: u64) -> u64 {
    let b = uuid::Uuid::new_v4();
    u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap()) % n
}

/// Reads the agent's messages for `window` or until `stop_after` new acknowledgements: records acknowledged
/// credentials, answers registrations.
async fn collect_until(
    w: &mut World,
    agent: &common::Agent,
    acked: &mut BTreeSet<CredentialId>,
    window: Duration,
    stop_after: usize,
) {
    let deadline = tokio::time::Instant::now() + window;
    let before = acked.len();
    while acked.len() - before < stop_after {
        let Ok(up) = tokio::time::timeout_at(deadline, w.relay.next_up(&agent.id)).await else {
            break;
        };
        match up {
            Up::CredentialStored(s) => {
                assert!(matches!(s.outcome, StoreOutcome::Stored { .. }), "{s:?}");
                acked.insert(s.credential_id);
            }
            Up::Register(r) => {
                w.relay
                    .send(
                        &agent.id,
                        &Down::RegisterAck(RegisterAck {
                            mode: r.mode,
                            state: AgentState::Online,
                            backfill: 0,
                            serial: None,
                        }),
                    )
                    .await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn collect(
    w: &mut World,
    agent: &common::Agent,
    acked: &mut BTreeSet<CredentialId>,
    window: Duration,
) {
    collect_until(w, agent, acked, window, usize::MAX).await;
}

fn check_store(
    agent: &common::Agent,
    acked: &BTreeSet<CredentialId>,
    secrets: &BTreeMap<CredentialId, String>,
) {
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).expect("the store must open after a crash");
    for id in acked {
        let c = store
            .credential(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged credential {id} is missing after a crash"));
        let expected = format!("{{\"secret\":\"{}\"}}", secrets[id]);
        c.payload.expose(|p| assert_eq!(p, expected.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_an_acknowledged_credential() {
    let mut w = common::world().await;
    let mut agent = w.online_agent("edge-1", "").await;
    let cert = agent.cert().clone();
    let mut acked = BTreeSet::new();
    let mut secrets = BTreeMap::new();
    let mut kills_with_work_in_flight = 0;
    for round in 0..rounds() {
        let mut sent = Vec::new();
        for i in 0..PER_ROUND {
            let id = CredentialId::random();
            let secret = format!("round-{round}-{i}");
            let d = w.org.delivery(
                &cert.wrap,
                id,
                1,
                &format!("c-{round}-{i}"),
                Scope::All,
                &secret,
            );
            secrets.insert(id, secret);
            sent.push(id);
            w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
        }
        // Kill after a random number of this round's acknowledgements: mid-stream, at a random point.
        let stop_after = usize::try_from(random_below(u64::try_from(PER_ROUND).unwrap())).unwrap();
        collect_until(
            &mut w,
            &agent,
            &mut acked,
            Duration::from_secs(10),
            stop_after,
        )
        .await;
        agent.kill();
        // Acknowledgements already on their way still count: the agent sent them, so it must have flushed.
        collect(&mut w, &agent, &mut acked, Duration::from_millis(200)).await;
        if sent.iter().any(|id| !acked.contains(id)) {
            kills_with_work_in_flight += 1;
        }
        check_store(&agent, &acked, &secrets);
        agent.start();
    }
    // After the last restart, everything sent arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.len() < secrets.len() && tokio::time::Instant::now() < deadline {
        collect(&mut w, &agent, &mut acked, Duration::from_millis(500)).await;
    }
    if acked.len() != secrets.len() {
        let log = agent.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let broker_log = std::fs::read_to_string(&w.broker.log).unwrap_or_default();
        let broker_tail: Vec<&str> = broker_log.lines().rev().take(40).collect();
        panic!(
            "deliveries were lost across crashes: {} of {} acknowledged; broker log tail:\n{}\nagent log tail:\n{}",
            acked.len(),
            secrets.len(),
            broker_tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    agent.kill();
    check_store(&agent, &acked, &secrets);
    assert!(
        kills_with_work_in_flight > 0,
        "no kill landed in the middle of a stream; the test proved nothing"
    );
}
