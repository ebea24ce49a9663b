//! Scenario 6: the broker restarts in the middle of a backfill, and the relay restarts in the middle of a dispatch
//! (both SIGKILLed: the broker keeps no persistence, so queued messages die with it). Both converge: every
//! credential arrives at its newest version (some are rotated while the backfill runs), nothing acknowledged is
//! lost, no older version replaces a newer one, and the audit chain stays intact across the relay's restart.
//!
//! Size knob: `TESSERA_RESTART_CREDENTIALS` (default 200).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, poll_until, wait_for, AgentProc, Cluster};

const ROTATED: usize = 5;

fn size() -> usize {
    knob("TESSERA_RESTART_CREDENTIALS", 200)
}

/// Waits until `agent` holds every credential at `expected`'s value, with the newest versions.
fn converged(agent: &AgentProc, expected: &BTreeMap<String, (String, u64)>, wait: Duration) {
    wait_for(&format!("{} to converge", agent.id.as_str()), wait, || {
        let inv = agent.inventory()?;
        Ok(expected
            .iter()
            .all(|(name, (_, v))| inv.get(name).is_some_and(|(_, have)| have == v)))
    })
    .unwrap();
    for (name, (value, _)) in expected {
        assert_eq!(agent.value(name).unwrap().as_ref(), Some(value), "{name}");
    }
}

fn held_part(
    agent: &AgentProc,
    at_least: usize,
    wait: Duration,
) -> BTreeMap<String, (String, u64)> {
    // Polled over the socket every 5 ms, so the restart lands close to the point chosen on any machine's speed.
    poll_until(
        "part of the backfill",
        wait,
        Duration::from_millis(5),
        || Ok(agent.held_count().unwrap_or(0) >= at_least),
    )
    .unwrap();
    agent.inventory().unwrap()
}

fn assert_kept(before: &BTreeMap<String, (String, u64)>, agent: &AgentProc) {
    let after = agent.inventory().unwrap();
    for (name, (_, v)) in before {
        let (_, now) = after.get(name).unwrap_or_else(|| panic!("{name} was lost"));
        assert!(now >= v, "{name} went back from version {v} to {now}");
    }
}

#[test]
fn broker_and_relay_restarts_mid_backfill_converge_without_loss_or_rollback() {
    let n = size();
    let wait = Duration::from_secs(90);
    let tmp = tempfile::tempdir().unwrap();
    // Timeouts and retries shortened so that what the restarts lost is retried within the test, and a narrow backfill
    // window (2 in flight, one batch of 2) so that each restart lands inside a backfill.
    let mut c = Cluster::new(
        tmp.path(),
        &bin_dir(),
        "peer_timeout_ms = 3000\nreconcile_interval_ms = 2000\nbackfill_concurrency = 2\n\
         batch_size = 2\nbatches_in_flight = 1\n\
         [engine.backoff]\ndelays_ms = [1000]\nmax_attempts = 100",
    )
    .unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut expected: BTreeMap<String, (String, u64)> = (0..n)
        .map(|i| (format!("cred-{i:04}"), (format!("v1-{i:04}"), 1)))
        .collect();
    let seed = expected
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let peer = c.with_seeded_peer("edge-1", policy, &seed, wait).unwrap();

    // The broker dies in the middle of edge-2's backfill; credentials are rotated once it is back.
    let mut b = c.agent("edge-2", policy).unwrap();
    b.start().unwrap();
    let before = held_part(&b, n / 4, wait);
    assert!(
        before.len() < n,
        "the backfill ended before the restart; raise the size"
    );
    c.broker.restart().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();
    for i in 0..ROTATED {
        let name = format!("cred-{i:04}");
        let value = format!("v2-{i:04}");
        c.put(&name, &value, &[]).unwrap();
        expected.insert(name, (value, 2));
    }
    converged(&b, &expected, wait);
    assert_kept(&before, &b);
    c.wait_state("edge-2", "online", wait).unwrap();

    // The relay dies in the middle of edge-3's backfill and comes back on its stored state.
    let mut d = c.agent("edge-3", policy).unwrap();
    d.start().unwrap();
    let before = held_part(&d, n / 4, wait);
    assert!(
        before.len() < n,
        "the backfill ended before the restart; raise the size"
    );
    c.kill_relay();
    std::thread::sleep(Duration::from_millis(500));
    c.start_relay().unwrap();
    converged(&d, &expected, wait);
    assert_kept(&before, &d);
    c.wait_state("edge-3", "online", wait).unwrap();
    for a in [&peer, &b] {
        assert_eq!(a.inventory().unwrap().len(), n);
    }
    c.op(&["audit", "verify"]).unwrap();
}

/// An agent restarted while the relay is down: its Last Will (retained, re-sent when the relay subscribes again)
/// reaches the relay after its new registration. The relay must still list it online once the agent's own status
/// follows, and deliver to it without an operator's retry.
#[test]
fn an_agent_restarted_while_the_relay_is_down_is_online_when_the_relay_is_back() {
    let wait = Duration::from_secs(60);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut a = c.agent("edge-1", policy).unwrap();
    a.start().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();

    c.kill_relay();
    // SIGKILLed: the broker publishes its Last Will (offline, retained); then it starts again and registers, and
    // the registration waits in the relay's session.
    a.kill();
    a.start().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    c.start_relay().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();
    // Stays online (the Last Will is not the last word), and a new credential reaches it with no retry.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.agent_state("edge-1").unwrap().as_deref(), Some("online"));
    c.put("db", "pw-after-restart", &["edge-1"]).unwrap();
    wait_for("edge-1 to get db", wait, || {
        Ok(a.value("db")?.as_deref() == Some("pw-after-restart"))
    })
    .unwrap();
}
