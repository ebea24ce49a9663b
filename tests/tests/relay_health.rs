//! The relay's health listener (plain HTTP, no operator certificate) on the real binary and a real Mosquitto:
//! `/healthz` answers, `/readyz` follows the broker link (ready while connected, 503 once the broker is gone, ready
//! again after it comes back), `/metrics` carries the metrics docs/operations.md lists with the broker gauge
//! following the link; and while the link is down `tessera agents ls` shows an online agent as `stale`, not
//! `online`, with `stale: true` in the relay's answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::plain_http::{get, metric};

const WAIT: Duration = Duration::from_secs(30);

fn status(c: &Cluster, path: &str) -> u16 {
    get(&c.health, path).map_or(0, |(code, _)| code)
}

fn metrics(c: &Cluster) -> String {
    let (code, body) = get(&c.health, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn health_and_readiness_follow_the_broker_link_and_stale_presence_is_not_online() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    assert_eq!(status(&c, "/healthz"), 200);
    wait_for("the relay to be ready", WAIT, || {
        Ok(status(&c, "/readyz") == 200)
    })
    .unwrap();

    let mut agent = c.agent("edge-1", "").unwrap();
    agent.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    let listed = c.op(&["agents", "ls"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("online") && !text.contains("stale"), "{text}");

    let m = metrics(&c);
    assert_eq!(
        metric(&m, "tessera_relay_broker_connected"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "tessera_relay_agents"), Some(1.0), "{m}");
    for series in [
        "tessera_relay_deliveries{state=\"pending\"}",
        "tessera_relay_deliveries{state=\"stored\"}",
        "tessera_relay_rewraps_in_flight",
        "tessera_relay_backfill_backlog",
        "tessera_relay_engine_limit{name=\"jit_burst\"}",
        "tessera_relay_rewrap_duration_seconds_count",
        "tessera_relay_dropped_messages_total",
    ] {
        assert!(metric(&m, series).is_some(), "{series} missing from\n{m}");
    }

    // The broker goes away: not ready, the gauge drops, and presence is stale.
    c.broker.stop();
    wait_for("the relay to be not ready", WAIT, || {
        Ok(status(&c, "/readyz") == 503)
    })
    .unwrap();
    let (_, why) = get(&c.health, "/readyz").unwrap();
    assert!(why.contains("broker not connected"), "{why}");
    assert_eq!(status(&c, "/healthz"), 200, "alive without a broker");
    assert_eq!(
        metric(&metrics(&c), "tessera_relay_broker_connected"),
        Some(0.0)
    );
    let listed = c.op(&["agents", "ls"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    let row = text.lines().find(|l| l.contains("edge-1")).unwrap();
    assert!(
        row.contains("stale") && !row.contains("online"),
        "a presence the relay cannot see is not shown as online: {row}"
    );
    let json = c.op_json(&["agents", "ls"]).unwrap();
    assert_eq!(json[0]["stale"], true, "{json}");

    // Back: ready again, and the presence is fresh.
    c.broker.restart().unwrap();
    wait_for("the relay to be ready again", WAIT, || {
        Ok(status(&c, "/readyz") == 200)
    })
    .unwrap();
    wait_for("edge-1 no longer stale", WAIT, || {
        Ok(c.op_json(&["agents", "ls"])?[0]["stale"] == false)
    })
    .unwrap();
}
