//! The real relay with `[coordination] backend = "redis"` on a Redis of the test's own: `GET /v1/coordination`
//! shows it; when Redis is killed the relay goes on delivering (coordinating in memory), reports itself degraded
//! and raises `redis_coordination_degraded` once; when Redis is back it resumes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod admin;

use std::io::Write as _;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::redis::OwnRedis;

const WAIT: Duration = Duration::from_secs(60);

fn degraded(c: &Cluster) -> bool {
    admin::get(c, "/v1/coordination")["replicas"][0]["degraded"]
        .as_bool()
        .unwrap()
}

fn degraded_alerts(c: &Cluster) -> usize {
    c.alerts()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "redis_coordination_degraded")
        .count()
}

#[test]
fn a_relay_coordinating_through_redis_keeps_delivering_through_an_outage() {
    let mut redis = OwnRedis::start().unwrap();
    let port = redis.port();
    let tmp = tempfile::tempdir().unwrap();
    // The reconciler asks Redis for its turn every second, so an outage is noticed within the test.
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "reconcile_interval_ms = 1000").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.relay_config())
        .unwrap();
    write!(
        f,
        "\n[coordination]\nbackend = \"redis\"\nreplica = \"relay-1\"\n[coordination.redis]\nurl = \"{}\"\n\
         key_prefix = \"t-{}\"\ntimeout_ms = 200\ndegraded_after_ms = 2000\n",
        redis.url(),
        uuid::Uuid::new_v4()
    )
    .unwrap();
    drop(f);
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut a = c.agent("edge-1", policy).unwrap();
    a.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    let me = admin::get(&c, "/v1/coordination")["replicas"][0].clone();
    assert_eq!(
        (
            me["replica"].as_str(),
            me["backend"].as_str(),
            me["degraded"].as_bool()
        ),
        (Some("relay-1"), Some("redis"), Some(false))
    );
    assert_eq!(admin::get(&c, "/v1/status")["coordination"], "redis");

    redis.stop();
    c.put("db", "during-the-outage", &["edge-1"]).unwrap();
    wait_for("edge-1 to get db while Redis is down", WAIT, || {
        Ok(a.value("db")?.as_deref() == Some("during-the-outage"))
    })
    .unwrap();
    wait_for("the relay to report itself degraded", WAIT, || {
        Ok(degraded(&c))
    })
    .unwrap();
    wait_for("redis_coordination_degraded", WAIT, || {
        Ok(degraded_alerts(&c) == 1)
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(degraded_alerts(&c), 1, "raised once per outage");
    assert!(c
        .alerts()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "redis_coordination_degraded" && a["subject"] == "replica=relay-1"));

    let _back = OwnRedis::start_on(port).unwrap();
    wait_for("coordination to resume", WAIT, || Ok(!degraded(&c))).unwrap();
    c.op(&["audit", "verify"]).unwrap();
}
