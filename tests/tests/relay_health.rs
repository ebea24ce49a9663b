//! The relay's health listener (plain HTTP, no operator certificate) on the real binary and a real Mosquitto:
//! `/healthz` answers, `/readyz` follows the broker link (ready while connected, 503 once the broker is gone, ready
//! again after it comes back), `/metrics` carries the metrics docs/operations.md lists (deliveries by state, a real
//! peer rewrap timed in the histogram, a JIT refusal counted by outcome) with the broker gauge following the link,
//! as does `broker` in the admin API's `/v1/status`; and while the link is down `tessera agents ls` shows an online
//! agent as `stale`, not `online` (an offline one stays `offline`), with `stale: true` in the relay's answer.
//! A flood of unauthenticated scrapes (more than the listener serves at once) all get answers while the relay keeps
//! delivering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod admin;

use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};
use tessera_system_tests::plain_http::{get, metric};

const WAIT: Duration = Duration::from_secs(30);

fn status(c: &Cluster, path: &str) -> u16 {
    get(&c.health, path).map_or(0, |(code, _)| code)
}

/// `broker` of the admin API's `GET /v1/status`, as the operator `alice`.
fn broker_link(c: &Cluster) -> serde_json::Value {
    admin::get(c, "/v1/status")["broker"].clone()
}

fn metrics(c: &Cluster) -> String {
    let (code, body) = get(&c.health, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

/// A credential for every agent, sealed to edge-1; edge-2 joins later and gets it by a peer rewrap from edge-1:
/// two stored rows and one timed rewrap. A JIT request for a name that does not exist is counted by outcome. Then
/// edge-2 goes offline.
fn rewrap_and_jit_refusal_are_counted(c: &Cluster, agent: &AgentProc, policy: &str) {
    c.put("db", "s3cret", &[]).unwrap();
    wait_for("edge-1 to hold db", WAIT, || {
        Ok(agent.value("db")?.is_some())
    })
    .unwrap();
    let mut joiner = c.agent("edge-2", policy).unwrap();
    joiner.start().unwrap();
    wait_for("edge-2 to hold db", WAIT, || {
        Ok(joiner.value("db")?.is_some())
    })
    .unwrap();
    assert!(!agent.get("no-such-credential").unwrap().status.success());
    wait_for(
        "the metrics to count the rewrap and the JIT refusal",
        WAIT,
        || {
            let m = metrics(c);
            Ok(
                metric(&m, "tessera_relay_deliveries{state=\"stored\"}") == Some(2.0)
                    && metric(&m, "tessera_relay_rewrap_duration_seconds_count") == Some(1.0)
                    && metric(
                        &m,
                        "tessera_relay_jit_requests_total{outcome=\"unknown_name\"}",
                    ) == Some(1.0),
            )
        },
    )
    .unwrap();
    drop(joiner);
    c.wait_state("edge-2", "offline", WAIT).unwrap();
}

/// Many concurrent `/metrics` and `/readyz` scrapes while a credential is delivered: every scrape is answered and
/// the delivery completes.
fn a_scrape_flood_is_answered_and_delivery_goes_on(c: &Cluster, agent: &AgentProc) {
    let scrapers: Vec<_> = (0..64)
        .map(|i| {
            let addr = c.health.clone();
            std::thread::spawn(move || {
                (0..4)
                    .map(|j| {
                        let path = if (i + j) % 2 == 0 {
                            "/metrics"
                        } else {
                            "/readyz"
                        };
                        get(&addr, path).map_or(0, |(code, _)| code)
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    c.put("during-the-flood", "v4lue", &[]).unwrap();
    wait_for(
        "edge-1 to hold the credential put during the flood",
        WAIT,
        || Ok(agent.value("during-the-flood")?.is_some()),
    )
    .unwrap();
    for s in scrapers {
        assert_eq!(s.join().unwrap(), [200; 4], "every scrape is answered");
    }
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

    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut agent = c.agent("edge-1", policy).unwrap();
    agent.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();

    rewrap_and_jit_refusal_are_counted(&c, &agent, policy);
    a_scrape_flood_is_answered_and_delivery_goes_on(&c, &agent);
    let listed = c.op(&["agents", "ls"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("online") && !text.contains("stale"), "{text}");

    let m = metrics(&c);
    assert_eq!(
        metric(&m, "tessera_relay_broker_connected"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "tessera_relay_agents"), Some(2.0), "{m}");
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
    assert_eq!(broker_link(&c)["connected"], false);
    // The metrics text may be up to a second old (docs/operations.md "Health and metrics").
    wait_for("the broker gauge to drop", WAIT, || {
        Ok(metric(&metrics(&c), "tessera_relay_broker_connected") == Some(0.0))
    })
    .unwrap();
    let listed = c.op(&["agents", "ls"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    let row = text.lines().find(|l| l.contains("edge-1")).unwrap();
    assert!(
        row.contains("stale") && !row.contains("online"),
        "a presence the relay cannot see is not shown as online: {row}"
    );
    let row = text.lines().find(|l| l.contains("edge-2")).unwrap();
    assert!(
        row.contains("offline"),
        "an offline agent stays offline: {row}"
    );
    let json = c.op_json(&["agents", "ls"]).unwrap();
    let stale = |json: &serde_json::Value, id: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()["stale"]
            .clone()
    };
    assert_eq!(stale(&json, "edge-1"), true, "{json}");

    // Back: ready again, and the presence is fresh.
    c.broker.restart().unwrap();
    wait_for("the relay to be ready again", WAIT, || {
        Ok(status(&c, "/readyz") == 200)
    })
    .unwrap();
    wait_for("edge-1 no longer stale", WAIT, || {
        Ok(stale(&c.op_json(&["agents", "ls"])?, "edge-1") == false)
    })
    .unwrap();
}
