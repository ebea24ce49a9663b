//! Batched rewrap end to end in a mixed fleet (docs/protocol.md, "Batched rewrap"): a real relay, real agents, a
//! real broker. Two new agents join an org whose credentials one peer holds: one announces `batch_rewrap`, one does
//! not (`broker.batch_rewrap = false`, as an agent of an older release). Both end online with every credential,
//! the batching one through batched requests, the other one credential per message; the audit chain verifies.
//!
//! Size: `TESSERA_BATCH_CREDENTIALS` (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, wait_for, Cluster};
use tessera_system_tests::plain_http;

/// `name` once the relay has published its last change (the engine counters reach `/metrics` on a one-second tick).
fn counter(c: &Cluster, name: &str) -> f64 {
    plain_http::settled_metric(&c.health, name, Duration::from_secs(60)).unwrap()
}

#[test]
fn a_mixed_fleet_is_backfilled_batched_where_both_sides_batch_and_single_elsewhere() {
    let n = knob("TESSERA_BATCH_CREDENTIALS", 300);
    let wait = Duration::from_secs(60 + u64::try_from(n).unwrap() / 10);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let creds: std::collections::BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("cred-{i:04}"),
                format!("value-{i:04}-{}", uuid::Uuid::new_v4()),
            )
        })
        .collect();
    let _peer = c.with_seeded_peer("edge-1", policy, &creds, wait).unwrap();
    let batches_before = counter(&c, "tessera_relay_rewrap_batches_total");

    let mut batching = c.agent("edge-2", policy).unwrap();
    let mut single = c.agent("edge-3", policy).unwrap();
    single.without_batch_rewrap().unwrap();
    let t = Instant::now();
    batching.start().unwrap();
    single.start().unwrap();
    for agent in ["edge-2", "edge-3"] {
        c.wait_state(agent, "online", wait).unwrap();
    }
    eprintln!(
        "two agents backfilled {n} credentials each in {:?}",
        t.elapsed()
    );
    for agent in [&batching, &single] {
        wait_for("every credential", wait, || Ok(agent.names()?.len() == n)).unwrap();
        for (name, value) in creds.iter().step_by((n / 25).max(1)) {
            assert_eq!(agent.value(name).unwrap().as_ref(), Some(value), "{name}");
        }
        let held = agent.inventory().unwrap();
        assert!(held.values().all(|(_, v)| *v == 1), "one version each");
        assert_eq!(c.acknowledged(agent.id.as_str()).unwrap().len(), n);
    }
    // The batching agent's n credentials went in batches of at most 64 (the default); the other's n one by one, so
    // the batches cannot be more than n / 2 (two items each at least).
    let batches = counter(&c, "tessera_relay_rewrap_batches_total") - batches_before;
    #[allow(clippy::cast_precision_loss)]
    let (least, most) = ((n as f64 / 64.0).ceil(), n as f64 / 2.0);
    assert!(
        (least..=most).contains(&batches),
        "{batches} batches for {n} credentials to one batching agent"
    );
    c.op(&["audit", "verify"]).unwrap();
}
