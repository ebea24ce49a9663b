//! Operator batches end to end (docs/protocol.md, "Operator batches"): `tessera cred import` against the real relay,
//! real agents and a real broker. An agent that takes batches receives the import as batch envelopes (one RSA open
//! for up to 64 credentials), one that does not (`broker.batch_rewrap = false`, an older release) one envelope per
//! credential; an agent offline during the import receives its batch envelopes when it comes back, kept by the
//! relay, without a peer rewrap. Every agent ends with every value, and the audit chain verifies.
//!
//! Size: `TESSERA_IMPORT_CREDENTIALS` (default 150).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, wait_for, AgentProc, Cluster};
use tessera_system_tests::plain_http;

/// `name` once the relay has published its last change (the engine counters reach `/metrics` on a one-second tick).
fn counter(c: &Cluster, name: &str) -> f64 {
    plain_http::settled_metric(&c.health, name, Duration::from_secs(60)).unwrap()
}

fn holds_all(agent: &AgentProc, creds: &[(String, String)], wait: Duration) {
    wait_for(&format!("{} to hold the import", agent.id), wait, || {
        Ok(agent.names()?.len() == creds.len())
    })
    .unwrap();
    for (name, value) in creds.iter().step_by((creds.len() / 15).max(1)) {
        assert_eq!(
            agent.value(name).unwrap().as_deref(),
            Some(value.as_str()),
            "{}: {name}",
            agent.id
        );
    }
}

#[test]
fn an_import_reaches_batching_agents_in_batch_envelopes_and_the_others_one_by_one() {
    let n = knob("TESSERA_IMPORT_CREDENTIALS", 150);
    let wait = Duration::from_secs(60 + u64::try_from(n).unwrap() / 10);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut batching = c.agent("edge-1", policy).unwrap();
    let mut single = c.agent("edge-2", policy).unwrap();
    single.without_batch_rewrap().unwrap();
    let mut away = c.agent("edge-3", policy).unwrap();
    for a in [&mut batching, &mut single, &mut away] {
        a.start().unwrap();
    }
    for id in ["edge-1", "edge-2", "edge-3"] {
        c.wait_state(id, "online", wait).unwrap();
    }
    // edge-3 registered (the relay lists it, certified, taking batches) and is now away: the import seals for it.
    away.stop().unwrap();
    c.wait_state("edge-3", "offline", wait).unwrap();

    let creds: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("imp-{i:04}"),
                format!("value-{i:04}-{}", uuid::Uuid::new_v4()),
            )
        })
        .collect();
    c.import_all(&creds).unwrap();
    holds_all(&batching, &creds, wait);
    holds_all(&single, &creds, wait);
    // Per agent that batches, one batch envelope per request of at most 64 credentials; none for edge-2.
    let chunks = n.div_ceil(64);
    let batches = counter(&c, "tessera_relay_operator_batches_total");
    // Two batching agents: at least one envelope per chunk each, at most one per two credentials each.
    #[allow(clippy::cast_precision_loss)]
    let (least, most) = ((2 * chunks) as f64, n as f64);
    assert!(
        (least..=most).contains(&batches),
        "{batches} operator batch envelopes for {n} credentials to two batching agents"
    );

    // edge-3 comes back: the relay delivers the batch envelopes it kept; no peer is asked to rewrap anything.
    let rewraps_before = counter(&c, "tessera_relay_rewrap_requests_total");
    away.start().unwrap();
    c.wait_state("edge-3", "online", wait).unwrap();
    holds_all(&away, &creds, wait);
    let rewraps = counter(&c, "tessera_relay_rewrap_requests_total") - rewraps_before;
    assert!(
        rewraps.abs() < 0.5,
        "edge-3 was served from the operator's batch envelopes, yet {rewraps} rewraps were asked"
    );
    for id in ["edge-1", "edge-2", "edge-3"] {
        assert_eq!(c.acknowledged(id).unwrap().len(), n, "{id}");
    }
    c.op(&["audit", "verify"]).unwrap();
}
