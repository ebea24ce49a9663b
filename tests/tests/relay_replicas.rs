//! Three relay replicas (`tessera-relay serve`, three processes) on one PostgreSQL database, behind one Mosquitto
//! with TLS and the pattern ACL, reading the agents' upward topics through the shared subscription: a backfill of
//! two new agents is spread over the replicas, one replica is SIGKILLed mid-flight, and the others finish it with
//! each credential delivered once per target and the audit chain intact (docs/operations.md, "Running several
//! relays").
//!
//! Size: `TESSERA_REPLICA_CREDENTIALS` (default 1,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod admin;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, poll_until, wait_for, Cluster};
use tessera_system_tests::plain_http;

/// Short timeouts and backoff, so that what the killed replica held is asked again within the test.
const ENGINE: &str = "peer_timeout_ms = 20000\nreconcile_interval_ms = 5000\n\
                      [engine.backoff]\ndelays_ms = [2000]\nmax_attempts = 50";

fn gauge(health: &str, series: &str) -> f64 {
    let (status, text) = plain_http::get(health, "/metrics").unwrap();
    assert_eq!(status, 200);
    plain_http::metric(&text, series).unwrap_or(0.0)
}

fn delivered_ok(health: &str) -> f64 {
    gauge(health, "tessera_relay_deliveries_ok_total")
}

#[test]
fn three_replicas_backfill_each_credential_once_per_target_and_survive_one_killed_mid_flight() {
    let n = knob("TESSERA_REPLICA_CREDENTIALS", 1000);
    let wait = Duration::from_secs(120 + u64::try_from(n).unwrap() / 5);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::replicated(tmp.path(), &bin_dir(), ENGINE, 3).unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let creds: BTreeMap<String, String> = (0..n)
        .map(|i| (format!("cred-{i:04}"), format!("value-{i:04}")))
        .collect();
    let t = Instant::now();
    let _peer = c.with_seeded_peer("edge-1", policy, &creds, wait).unwrap();
    eprintln!("edge-1 seeded with {n} credentials in {:?}", t.elapsed());
    c.start_replica(0).unwrap();
    c.start_replica(1).unwrap();
    let (relay2_health, relay3_health, relay3_admin) = {
        let r2 = c.replica(0).unwrap().health.clone();
        let r3 = c.replica(1).unwrap();
        (r2, r3.health.clone(), r3.admin.clone())
    };

    // Every replica is connected to the database: the status counts them.
    wait_for("three replicas on the database", wait, || {
        Ok(admin::get(&c, "/v1/status")["replicas"] == 3)
    })
    .unwrap();

    let t = Instant::now();
    let mut targets = Vec::new();
    for id in ["edge-2", "edge-3"] {
        let mut a = c.agent(id, policy).unwrap();
        a.start().unwrap();
        targets.push(a);
    }
    let half_way = f64::from(u32::try_from(n + n / 2).unwrap());
    // Mid-flight: once a quarter of the deliveries are acknowledged, relay-2 is killed. (Polled on the health
    // gauge, once a second: reading the whole audit trail through the admin API would load the relay under test.)
    poll_until(
        "a quarter of the backfill",
        wait,
        Duration::from_secs(1),
        || Ok(gauge(&c.health, "tessera_relay_deliveries{state=\"stored\"}") >= half_way),
    )
    .unwrap();
    let relay2_did = delivered_ok(&relay2_health);
    c.replica(0).unwrap().kill();
    wait_for("relay-2 to leave the database", wait, || {
        Ok(admin::get(&c, "/v1/status")["replicas"] == 2)
    })
    .unwrap();
    for id in ["edge-2", "edge-3"] {
        c.wait_state(id, "online", wait).unwrap();
    }
    eprintln!(
        "two agents backfilled with {n} credentials each through 3 replicas (one killed) in {:?}",
        t.elapsed()
    );

    // Every replica took part: the shared subscription spread the agents' messages over them.
    let (relay1_did, relay3_did) = (delivered_ok(&c.health), delivered_ok(&relay3_health));
    eprintln!("deliveries confirmed: relay-1 {relay1_did}, relay-2 {relay2_did} (killed), relay-3 {relay3_did}");
    assert!(
        relay1_did > 0.0 && relay2_did > 0.0 && relay3_did > 0.0,
        "a replica confirmed no delivery: {relay1_did} {relay2_did} {relay3_did}"
    );
    // Each target holds every credential, with its value. A delivery whose rewrap was in flight at the killed
    // replica times out and is retried after its backoff; the relay lists the agent `online` meanwhile (only rows
    // due now keep it `backfilling`), so the retried ones are waited for here.
    for a in &targets {
        wait_for("every credential after the retries", wait, || {
            Ok(a.names()?.len() == n)
        })
        .unwrap();
        let mut names = a.names().unwrap();
        names.sort();
        assert_eq!(names, creds.keys().cloned().collect::<Vec<_>>());
        for (name, value) in creds.iter().step_by((n / 20).max(1)) {
            assert_eq!(a.value(name).unwrap().as_deref(), Some(value.as_str()));
        }
    }
    // An agent is online once nothing is due; a delivery whose acknowledgement went down with relay-2 waits out its
    // backoff and is made again (the agent stores the same version again and acknowledges it). Once no row is
    // pending, each credential was delivered once per target: one successful final entry per (target, credential).
    poll_until(
        "every delivery settled",
        wait,
        Duration::from_secs(1),
        || Ok(gauge(&c.health, "tessera_relay_deliveries{state=\"pending\"}") == 0.0),
    )
    .unwrap();
    for target in ["edge-2", "edge-3"] {
        let per_credential = successes(&c, target);
        assert_eq!(per_credential.len(), n, "{target}: credentials delivered");
        assert!(
            per_credential.values().all(|k| *k == 1),
            "{target}: a credential delivered twice"
        );
    }
    // The chain the three wrote in turns verifies, and the survivors show the same fleet.
    c.op(&["audit", "verify"]).unwrap();
    all_online_through(&c, &relay3_admin, &["edge-1", "edge-2", "edge-3"]);
    // The relays spoke MQTT 5 to Mosquitto on both connections (their sessions expire: what lets a dead replica's
    // share stop).
    let log = c.relay_log();
    for connection in ["Inbound", "Outbound"] {
        assert!(
            log.contains(&format!(
                "relay connected to broker connection={connection} mqtt=\"5\""
            )),
            "{connection}"
        );
    }
}

/// Successful final audit entries for `target`, per credential.
fn successes(c: &Cluster, target: &str) -> BTreeMap<String, usize> {
    let mut per_credential = BTreeMap::new();
    for e in c.audit("rewrap_final").unwrap() {
        if e["data"]["result"] == "success" && e["data"]["target"] == target {
            let id = e["data"]["credential"].as_str().unwrap().to_owned();
            *per_credential.entry(id).or_default() += 1;
        }
    }
    per_credential
}

/// The agents `ids` are listed online by the relay whose admin API is at `admin`.
fn all_online_through(c: &Cluster, admin: &str, ids: &[&str]) {
    let out = c.op_via(admin, &["--json", "agents", "ls"]).unwrap();
    let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for id in ids {
        let a = agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == *id)
            .unwrap_or_else(|| panic!("{id} not listed through {admin}: {agents}"));
        assert_eq!(a["state"], "online", "{id} through {admin}");
    }
}
