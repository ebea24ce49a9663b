//! Coordination in memory, and in the machine's Redis (127.0.0.1:6379, a key prefix of its own per test), and
//! through an outage of a Redis of the test's own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tessera_proto::ids::AgentId;
use tessera_system_tests::redis::OwnRedis;

use super::{CoordinationBackend, CoordinationConfig, Coordinator, RedisConfig, Window};

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn redis_cfg(url: &str, replica: &str, prefix: &str) -> CoordinationConfig {
    CoordinationConfig {
        backend: CoordinationBackend::Redis,
        replica: replica.to_owned(),
        redis: RedisConfig {
            url: url.to_owned(),
            key_prefix: prefix.to_owned(),
            timeout_ms: 300,
            degraded_after_ms: 1_000,
            ..RedisConfig::default()
        },
    }
}

fn machine_redis() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

fn prefix() -> String {
    format!("tessera-test-{}", uuid::Uuid::new_v4())
}

/// Removes a test's keys.
fn clean(url: &str, prefix: &str) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut con)
        .unwrap();
    for k in keys {
        redis::cmd("DEL").arg(k).query::<()>(&mut con).unwrap();
    }
}

#[test]
fn in_memory_windows_slide_and_every_tick_is_this_replicas() {
    let mut c = Coordinator::memory("relay-a");
    let a = agent("edge-1");
    assert_eq!(c.record(Window::MissingFlood, &a, 1_000, 10_000), 1);
    assert_eq!(c.record(Window::MissingFlood, &a, 2_000, 10_000), 2);
    assert_eq!(
        c.record(Window::MismatchFlood, &a, 2_000, 10_000),
        1,
        "windows are apart"
    );
    assert_eq!(
        c.record(Window::MissingFlood, &a, 11_500, 10_000),
        2,
        "the first slid out"
    );
    assert!(c.reconciler_turn(0, 60_000) && c.reconciler_turn(1, 60_000));
    let s = c.status();
    assert_eq!((s.backend, s.degraded), ("memory", false));
    assert!(!c.degraded_alert_due(u64::MAX));
}

#[test]
fn replicas_on_one_redis_count_one_window_and_take_turns() {
    let url = machine_redis();
    let keys = prefix();
    let mut a = Coordinator::open(&redis_cfg(&url, "relay-a", &keys)).unwrap();
    let mut b = Coordinator::open(&redis_cfg(&url, "relay-b", &keys)).unwrap();
    let e = agent("edge-1");
    assert_eq!(a.record(Window::MissingFlood, &e, 1_000, 10_000), 1);
    assert_eq!(
        b.record(Window::MissingFlood, &e, 1_500, 10_000),
        2,
        "b sees a's event"
    );
    assert_eq!(a.record(Window::MissingFlood, &e, 2_000, 10_000), 3);
    assert_eq!(
        b.record(Window::MissingFlood, &agent("edge-2"), 2_000, 10_000),
        1,
        "per agent"
    );
    assert_eq!(
        a.record(Window::MismatchFlood, &e, 2_000, 10_000),
        1,
        "per window"
    );
    assert_eq!(
        b.record(Window::MissingFlood, &e, 11_800, 10_000),
        2,
        "the first two slid out"
    );
    // One sweep per slot across replicas, whoever asks first.
    assert!(a.reconciler_turn(120_000, 60_000));
    assert!(!b.reconciler_turn(150_000, 60_000), "the same slot: a's");
    assert!(
        !a.reconciler_turn(170_000, 60_000),
        "asked again: already taken"
    );
    assert!(
        b.reconciler_turn(180_000, 60_000),
        "the next slot: b asked first"
    );
    for replica in [&a, &b] {
        let status = replica.status();
        assert_eq!((status.backend, status.degraded), ("redis", false));
    }
    clean(&url, &keys);
}

#[test]
fn an_outage_falls_back_to_memory_alerts_once_and_ends_when_redis_answers() {
    let mut redis = OwnRedis::start().unwrap();
    let port = redis.port();
    let mut c = Coordinator::open(&redis_cfg(&redis.url(), "relay-a", "t")).unwrap();
    let e = agent("edge-1");
    assert_eq!(c.record(Window::MissingFlood, &e, 1_000, 60_000), 1);

    redis.stop();
    // Every operation still answers, from this replica's memory; the replica sweeps every slot.
    assert_eq!(
        c.record(Window::MissingFlood, &e, 2_000, 60_000),
        1,
        "memory starts its own count"
    );
    assert_eq!(c.record(Window::MissingFlood, &e, 2_500, 60_000), 2);
    assert!(c.reconciler_turn(3_000, 60_000));
    let s = c.status();
    assert_eq!(
        (s.backend, s.degraded, s.degraded_since_ms),
        ("redis", true, Some(2_000))
    );
    assert!(!c.degraded_alert_due(2_900), "not before degraded_after_ms");
    assert!(c.degraded_alert_due(3_000));
    assert!(!c.degraded_alert_due(9_000), "once per outage");
    // The tick that raised it failed to commit: raised again at the next chance.
    c.rearm_alert();
    assert!(c.degraded_alert_due(9_000));
    assert!(!c.degraded_alert_due(9_500));

    let again = OwnRedis::start_on(port).unwrap();
    // The link pauses after a failure; it is asked again after the pause.
    let mut resumed = false;
    for i in 0..60 {
        std::thread::sleep(Duration::from_millis(100));
        if c.record(Window::MissingFlood, &agent("edge-2"), 10_000 + i, 60_000) > 0
            && !c.status().degraded
        {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "coordination did not resume once Redis answered");
    assert_eq!(c.status().degraded_since_ms, None);
    // A later outage is a new episode, alerted again.
    drop(again);
    c.record(Window::MissingFlood, &e, 20_000, 60_000);
    assert!(c.status().degraded);
    assert!(c.degraded_alert_due(25_000));
}

#[test]
fn bad_settings_are_refused_before_anything_connects() {
    let mut cfg = redis_cfg("redis://127.0.0.1:1/0", "relay-a", "t");
    assert!(
        Coordinator::open(&cfg).is_ok(),
        "an unreachable Redis is an outage, not a bad setting"
    );
    cfg.redis.url = "http://example".into();
    assert!(cfg.check().is_err());
    cfg.redis.url = "redis://127.0.0.1/0".into();
    cfg.redis.timeout_ms = 0;
    assert!(cfg.check().is_err());
    cfg.redis.timeout_ms = 200;
    cfg.redis.key_prefix = "a b".into();
    assert!(cfg.check().is_err());
    cfg.redis.key_prefix = "t".into();
    cfg.replica = String::new();
    assert!(cfg.check().is_err());
    cfg.replica = "relay a".into();
    assert!(
        cfg.check().is_err(),
        "a name that would break key=value subjects"
    );
    cfg.replica = "relay-a".into();
    cfg.redis.password_file = Some("/nonexistent/redis-password".into());
    assert!(cfg.check().is_err());
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    cfg.redis.password_file = Some(empty);
    assert!(cfg.check().is_err(), "an empty password file");
    cfg.redis.password_file = None;
    cfg.redis.url = "redis://:s3cret@127.0.0.1/0".into();
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("password_file") && !e.contains("s3cret"), "{e}");
}
