//! Scenario 3, the reconciler: a delivery that keeps failing (its only holder is offline) follows the backoff
//! schedule — 30 s, 2 min, 8 min, 30 min, then 2 h for attempts 4 to 9 — and is retired after 10 attempts with one
//! `credential_sync_stalled` alert. The relay runs in this process on the real broker with real agents; its
//! injectable clock is moved by hand, so twelve hours pass in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_relay::clock::ManualClock;
use tessera_relay::config::RelayConfig;
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tokio_util::sync::CancellationToken;

const MIN: u64 = 60_000;
/// Design §4, written out: the wait before attempts 2, 3, ..., 10.
const TABLE: [u64; 9] = [
    30_000,
    2 * MIN,
    8 * MIN,
    30 * MIN,
    120 * MIN,
    120 * MIN,
    120 * MIN,
    120 * MIN,
    120 * MIN,
];
const WAIT: Duration = Duration::from_secs(30);

/// The times (relay clock) at which dispatches of anything to `agent` started.
fn attempts(c: &Cluster, agent: &str) -> Vec<u64> {
    c.audit("rewrap_pending")
        .unwrap()
        .iter()
        .filter(|r| r["data"]["target"] == agent)
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_failing_delivery_follows_the_backoff_table_and_retires_with_one_alert() {
    let tmp = tempfile::tempdir().unwrap();
    // The reconciler looks every second of relay time, so only the backoff decides when a row is retried.
    let c = Cluster::new(tmp.path(), &bin_dir(), "reconcile_interval_ms = 1000").unwrap();
    let cfg = RelayConfig::load(Some(c.relay_config()), Vec::new()).unwrap();
    let now = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let clock = ManualClock::at(now);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cancel = CancellationToken::new();
    let relay = rt.spawn(tessera_relay::runtime::serve_with_clock(
        cfg,
        Arc::new(clock.clone()),
        cancel.clone(),
    ));
    wait_for("the relay's admin API", WAIT, || {
        Ok(c.op_unchecked(&["agents", "ls"])?.status.success())
    })
    .unwrap();

    // edge-1 holds db and goes offline; edge-2 joins: the first attempt finds no peer.
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut holder = c.agent("edge-1", policy).unwrap();
    holder.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.put("db", "unreachable", &[]).unwrap();
    wait_for("edge-1 to hold db", WAIT, || {
        Ok(holder.value("db")?.is_some())
    })
    .unwrap();
    holder.kill();
    c.wait_state("edge-1", "offline", WAIT).unwrap();
    let mut target = c.agent("edge-2", policy).unwrap();
    target.start().unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();
    assert_eq!(attempts(&c, "edge-2").len(), 1);

    for (i, delay) in TABLE.iter().enumerate() {
        let done = i + 1;
        // Five seconds short of the delay: the reconciler runs and leaves the row alone.
        clock.advance(delay - 5_000);
        std::thread::sleep(Duration::from_millis(2_200));
        assert_eq!(
            attempts(&c, "edge-2").len(),
            done,
            "attempt {} came early",
            done + 1
        );
        // Past it: the next attempt happens.
        clock.advance(5_000 + 1_000);
        wait_for(&format!("attempt {}", done + 1), WAIT, || {
            Ok(attempts(&c, "edge-2").len() == done + 1)
        })
        .unwrap();
    }
    let at = attempts(&c, "edge-2");
    for (i, pair) in at.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= TABLE[i] && gap <= TABLE[i] + 3_000,
            "wait before attempt {} was {gap} ms, the table says {}",
            i + 2,
            TABLE[i]
        );
    }

    // After the tenth failure the row is retired with one stalled alert; time passing changes nothing more.
    wait_for("the stalled alert", WAIT, || {
        Ok(c.alerts()?
            .iter()
            .any(|a| a["kind"] == "credential_sync_stalled"))
    })
    .unwrap();
    for _ in 0..3 {
        clock.advance(240 * MIN);
        std::thread::sleep(Duration::from_millis(1_200));
    }
    assert_eq!(
        attempts(&c, "edge-2").len(),
        10,
        "retired rows are not retried"
    );
    let stalled: Vec<_> = c
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|a| a["kind"] == "credential_sync_stalled")
        .collect();
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0]["severity"], "medium");
    assert_eq!(stalled[0]["count"], 1, "deduplicated");
    let creds = c.op_json(&["cred", "ls"]).unwrap();
    assert_eq!(creds[0]["sync"]["stalled"], 1);
    c.op(&["audit", "verify"]).unwrap();
    cancel.cancel();
    rt.block_on(relay).unwrap().unwrap();
}
