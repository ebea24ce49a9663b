//! The relay SIGKILLed again and again in the middle of a backfill, each time restarted on its stored state: every
//! event's changes are one atomic batch (docs/operations.md, "State backends"), so whatever instant a kill lands
//! at, the relay comes back on a consistent state. The agent ends up with every credential, nothing it held is
//! lost or rolled back, the relay reports it online (its delivery rows agree with what the agent holds), and the
//! audit chain verifies across every restart. Run on sled, and on PostgreSQL with `TESSERA_TEST_STATE=postgres`.
//!
//! Size knobs: `TESSERA_KILL_CREDENTIALS` (default 240), `TESSERA_KILLS` (default 6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, poll_until, wait_for, Cluster};

#[test]
fn a_relay_killed_again_and_again_mid_backfill_comes_back_consistent_every_time() {
    let n = knob("TESSERA_KILL_CREDENTIALS", 240);
    let kills = knob("TESSERA_KILLS", 6);
    let wait = Duration::from_secs(120);
    let tmp = tempfile::tempdir().unwrap();
    // Short timeouts and retries, so that what a kill cut off is retried within the test; a narrow backfill
    // window (4 in flight, in batches of 2), so that the backfill lasts across the kills.
    let mut c = Cluster::new(
        tmp.path(),
        &bin_dir(),
        "peer_timeout_ms = 3000\nreconcile_interval_ms = 1000\nbackfill_concurrency = 4\n\
         batch_size = 2\nbatches_in_flight = 2\n\
         [engine.backoff]\ndelays_ms = [500]\nmax_attempts = 1000",
    )
    .unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let expected: BTreeMap<String, String> = (0..n)
        .map(|i| (format!("cred-{i:04}"), format!("value-{i:04}")))
        .collect();
    // The seeded peer runs until the end of the test (dropping it stops it).
    let _peer = c
        .with_seeded_peer("edge-1", policy, &expected, wait)
        .unwrap();

    let mut target = c.agent("edge-2", policy).unwrap();
    target.start().unwrap();
    let mut landed = 0;
    for k in 1..=kills {
        // Each kill a little further into the backfill; polled every 5 ms so it lands close to the mark.
        let mark = n * k / (kills + 2);
        poll_until("the next mark", wait, Duration::from_millis(5), || {
            Ok(target.held_count().unwrap_or(0) >= mark)
        })
        .unwrap();
        let before = target.inventory().unwrap();
        if before.len() < n {
            landed += 1;
        }
        c.kill_relay();
        c.start_relay().unwrap();
        // What the agent held before the kill it still holds, at the same version.
        let after = target.inventory().unwrap();
        for (name, (_, v)) in &before {
            let (_, now) = after.get(name).unwrap_or_else(|| panic!("{name} was lost"));
            assert_eq!(now, v, "{name}");
        }
    }
    assert!(
        landed * 2 >= kills,
        "most kills landed after the backfill ({landed} of {kills} inside); raise TESSERA_KILL_CREDENTIALS"
    );
    wait_for("edge-2 to hold everything", wait, || {
        Ok(target.names()?.len() == n)
    })
    .unwrap();
    for (name, value) in &expected {
        assert_eq!(target.value(name).unwrap().as_ref(), Some(value), "{name}");
    }
    c.wait_state("edge-2", "online", wait).unwrap();
    c.op(&["audit", "verify"]).unwrap();
    if let Some(db) = &c.db {
        assert!(db.count("audit").unwrap() > 0);
    }
}
