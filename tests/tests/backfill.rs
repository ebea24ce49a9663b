//! Scenario 2, backfill: a new agent joining an org with 1,000 credentials is `backfilling` (no job lands on it)
//! and then `online` with all of them, delivered by peer rewrap; an agent that reconnects with a partial store is
//! backfilled with the gap only.
//!
//! Size: `TESSERA_BACKFILL_CREDENTIALS` (default 1000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{poll_until, wait_for, Cluster};

fn size() -> usize {
    std::env::var("TESSERA_BACKFILL_CREDENTIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn a_new_agent_is_backfilled_by_peer_rewrap_and_a_warm_reconnect_gets_only_the_gap() {
    let n = size();
    let wait = Duration::from_secs(60 + u64::try_from(n).unwrap() / 10);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let jobs = format!(
        "[policy.\"*\"]\nuids = [{}]\n[jobs.noop]\ncommand = [\"/bin/true\"]\n",
        std::fs::metadata(tmp.path()).unwrap().uid()
    );
    let mut peer = c.agent("edge-1", &jobs).unwrap();
    peer.start().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();
    let creds: Vec<(String, String)> = (0..n)
        .map(|i| (format!("cred-{i:04}"), format!("value-{i:04}")))
        .collect();
    let t = Instant::now();
    c.import_all(&creds).unwrap();
    eprintln!("imported {n} credentials in {:?}", t.elapsed());
    wait_for("edge-1 to hold every credential", wait, || {
        Ok(peer.names()?.len() == n)
    })
    .unwrap();

    // A new agent joins: backfilling, ineligible for jobs, then online with everything.
    let mut fresh = c.agent("edge-2", &jobs).unwrap();
    let t = Instant::now();
    fresh.start().unwrap();
    c.wait_state("edge-2", "backfilling", wait).unwrap();
    let pinned = c
        .op_unchecked(&["job", "run", "noop", "--agent", "edge-2"])
        .unwrap();
    let still_backfilling = c.agent_state("edge-2").unwrap().as_deref() == Some("backfilling");
    assert!(
        still_backfilling,
        "the backfill outran the check; raise the size"
    );
    assert_eq!(
        pinned.status.code(),
        Some(3),
        "a job was accepted for a backfilling agent: {}",
        String::from_utf8_lossy(&pinned.stdout)
    );
    let anywhere = c.op_json(&["job", "run", "noop"]).unwrap();
    assert_eq!(anywhere["agent"], "edge-1", "jobs go to the online agent");
    c.wait_state("edge-2", "online", wait).unwrap();
    eprintln!("edge-2 backfilled {n} credentials in {:?}", t.elapsed());
    let mut names = fresh.names().unwrap();
    names.sort();
    assert_eq!(
        names,
        creds.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    for (name, value) in creds.iter().step_by((n / 20).max(1)) {
        assert_eq!(fresh.value(name).unwrap().as_deref(), Some(value.as_str()));
    }
    assert_eq!(
        c.acknowledged("edge-2").unwrap().len(),
        n,
        "each delivered once"
    );

    warm_reconnect_gets_only_the_gap(&c, &jobs, n, wait);
    c.op(&["audit", "verify"]).unwrap();
}

/// Warm reconnect with a partial store: killed mid-backfill, it reconnects and gets only the gap.
fn warm_reconnect_gets_only_the_gap(c: &Cluster, jobs: &str, n: usize, wait: Duration) {
    let mut partial = c.agent("edge-3", jobs).unwrap();
    partial.start().unwrap();
    // Polled over the socket every 5 ms, so the kill lands close to a third of the way on any machine's speed.
    poll_until(
        "edge-3 to hold part of the org",
        wait,
        Duration::from_millis(5),
        || Ok(partial.held_count().unwrap_or(0) >= n / 3),
    )
    .unwrap();
    partial.kill();
    c.wait_state("edge-3", "offline", wait).unwrap();
    let acked_before = c.acknowledged("edge-3").unwrap().len();
    assert!(
        acked_before < n,
        "killed after the backfill ended; raise the size"
    );
    let registered_before = c.audit("agent_registered").unwrap().len();
    partial.start().unwrap();
    c.wait_state("edge-3", "online", wait).unwrap();
    let regs = c.audit("agent_registered").unwrap();
    let again = regs
        .iter()
        .skip(registered_before)
        .find(|r| r["data"]["agent"] == "edge-3")
        .expect("edge-3 registered again");
    assert_eq!(again["data"]["mode"], "WarmReconnect");
    let gap: usize = again["data"]["backfill"].as_str().unwrap().parse().unwrap();
    assert!(
        gap > 0 && gap <= n - acked_before,
        "gap {gap}: it held at least the {acked_before} the relay recorded"
    );
    // Only the gap was dispatched after the reconnect: what it held is not sent again.
    let seq: u64 = again["seq"].as_u64().unwrap();
    let after: usize = c
        .audit("rewrap_pending")
        .unwrap()
        .iter()
        .filter(|r| r["seq"].as_u64().unwrap() > seq && r["data"]["target"] == "edge-3")
        .count();
    // Rewraps in flight at the kill complete instead of being started again: at most the backfill window, for an
    // agent that batches `batch_size × batches_in_flight` (64 × 2 by default).
    assert!(
        after <= gap && after + 128 >= gap,
        "{after} rewraps started for a gap of {gap}"
    );
    assert_eq!(partial.names().unwrap().len(), n);
    let successes = c
        .audit("rewrap_final")
        .unwrap()
        .iter()
        .filter(|r| r["data"]["target"] == "edge-3" && r["data"]["result"] == "success")
        .count();
    assert!(
        successes <= n,
        "{successes} deliveries of {n} credentials: something was sent twice"
    );
}
