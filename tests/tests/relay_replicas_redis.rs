//! Three relay replicas (three `tessera-relay serve` processes on one PostgreSQL database) coordinating through a
//! Redis of the test's own, with the reconciler's interval shortened to a second:
//!
//! - while Redis answers, one replica sweeps per interval across the three (their sweep counters grow by about
//!   one a second together, not three);
//! - Redis is killed mid-run: every replica goes on delivering, coordinating in memory (each then sweeps every
//!   interval itself), reports itself degraded, and raises `redis_coordination_degraded` once, under its own name;
//!   `GET /v1/coordination` on any replica shows all three degraded;
//! - Redis is back: coordination resumes on every replica, and one sweep per interval again.
//!
//! docs/operations.md, "Running several relays" and "Coordination".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod admin;

use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::plain_http;
use tessera_system_tests::redis::OwnRedis;

const WAIT: Duration = Duration::from_secs(60);
const REPLICAS: [&str; 3] = ["relay-1", "relay-2", "relay-3"];

/// The replicas' reconciler sweeps, summed.
fn sweeps(healths: &[String]) -> f64 {
    healths
        .iter()
        .map(|h| {
            let (status, text) = plain_http::get(h, "/metrics").unwrap();
            assert_eq!(status, 200);
            plain_http::metric(&text, "tessera_relay_reconciler_sweeps_total").unwrap()
        })
        .sum()
}

/// How many sweeps the replicas ran together over `secs` seconds, and how many intervals passed.
fn sweeps_over(healths: &[String], secs: u64) -> (f64, f64) {
    // The metrics are rendered at most once a second: wait out a render before the first reading.
    std::thread::sleep(Duration::from_millis(1100));
    let (before, t) = (sweeps(healths), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let ran = sweeps(healths) - before;
    (ran, t.elapsed().as_secs_f64())
}

/// The coordination of every replica as relay-1 lists it: name → degraded.
fn degraded(c: &Cluster) -> Vec<(String, bool)> {
    let v = admin::get(c, "/v1/coordination");
    v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["backend"], "redis", "{v}");
            (
                r["replica"].as_str().unwrap().to_owned(),
                r["degraded"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn all(c: &Cluster, is_degraded: bool) -> bool {
    let listed = degraded(c);
    listed.len() == REPLICAS.len() && listed.iter().all(|(_, d)| *d == is_degraded)
}

/// The `redis_coordination_degraded` alerts: subject → how many times raised.
fn degraded_alerts(c: &Cluster) -> Vec<(String, u64)> {
    let mut alerts: Vec<(String, u64)> = c
        .alerts()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "redis_coordination_degraded")
        .map(|a| {
            (
                a["subject"].as_str().unwrap().to_owned(),
                a["count"].as_u64().unwrap(),
            )
        })
        .collect();
    alerts.sort();
    alerts
}

#[test]
fn three_replicas_coordinate_through_redis_sweep_once_per_interval_and_ride_out_an_outage() {
    let mut redis = OwnRedis::start().unwrap();
    let port = redis.port();
    let tmp = tempfile::tempdir().unwrap();
    let coordination = format!(
        "backend = \"redis\"\n[coordination.redis]\nurl = \"{}\"\nkey_prefix = \"t-{}\"\ntimeout_ms = 200\n\
         degraded_after_ms = 2000",
        redis.url(),
        uuid::Uuid::new_v4()
    );
    let mut c = Cluster::replicated_with(
        tmp.path(),
        &bin_dir(),
        "reconcile_interval_ms = 1000",
        3,
        &coordination,
    )
    .unwrap();
    c.start_relay().unwrap();
    c.start_replica(0).unwrap();
    c.start_replica(1).unwrap();
    let mut healths = vec![c.health.clone()];
    for i in 0..2 {
        healths.push(c.replica(i).unwrap().health.clone());
    }
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut agents = Vec::new();
    for id in ["edge-1", "edge-2"] {
        let mut a = c.agent(id, policy).unwrap();
        a.start().unwrap();
        agents.push(a);
    }
    for id in ["edge-1", "edge-2"] {
        c.wait_state(id, "online", WAIT).unwrap();
    }
    wait_for("every replica listed, coordinating", WAIT, || {
        Ok(all(&c, false))
    })
    .unwrap();
    let names: Vec<String> = degraded(&c).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, REPLICAS);

    // One sweep per interval across the three.
    let (ran, secs) = sweeps_over(&healths, 8);
    eprintln!("coordinated: {ran} sweeps in {secs:.1} s");
    assert!(
        ran >= 2.0 && ran <= secs.ceil() + 2.0,
        "{ran} sweeps in {secs:.1} s: not one per interval across the replicas"
    );

    // Redis dies mid-run; the replicas go on delivering.
    redis.stop();
    c.put("during-the-outage", "delivered-without-redis", &[])
        .unwrap();
    for a in &agents {
        wait_for("the credential put during the outage", WAIT, || {
            Ok(a.value("during-the-outage")?.as_deref() == Some("delivered-without-redis"))
        })
        .unwrap();
    }
    wait_for("every replica degraded", WAIT, || Ok(all(&c, true))).unwrap();
    let expected: Vec<(String, u64)> = REPLICAS
        .iter()
        .map(|r| (format!("replica={r}"), 1))
        .collect();
    wait_for("one degraded alert per replica", WAIT, || {
        Ok(degraded_alerts(&c).len() == REPLICAS.len())
    })
    .unwrap();
    // Each replica sweeps on its own while it cannot ask Redis.
    let (ran, secs) = sweeps_over(&healths, 6);
    eprintln!("degraded: {ran} sweeps in {secs:.1} s");
    assert!(
        ran > secs.ceil() + 2.0,
        "{ran} sweeps in {secs:.1} s: the replicas did not sweep on their own"
    );
    assert_eq!(degraded_alerts(&c), expected, "raised once per replica");

    // Redis is back: every replica coordinates through it again.
    let _back = OwnRedis::start_on(port).unwrap();
    wait_for("coordination to resume on every replica", WAIT, || {
        Ok(all(&c, false))
    })
    .unwrap();
    let (ran, secs) = sweeps_over(&healths, 6);
    eprintln!("resumed: {ran} sweeps in {secs:.1} s");
    assert!(ran <= secs.ceil() + 2.0, "{ran} sweeps in {secs:.1} s");
    c.put("after-the-outage", "delivered-with-redis", &[])
        .unwrap();
    for a in &agents {
        wait_for("the credential put after the outage", WAIT, || {
            Ok(a.value("after-the-outage")?.as_deref() == Some("delivered-with-redis"))
        })
        .unwrap();
    }
    assert_eq!(degraded_alerts(&c), expected);
    c.op(&["audit", "verify"]).unwrap();
}
