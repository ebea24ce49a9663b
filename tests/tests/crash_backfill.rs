//! Scenario 5, crash safety: the agent is SIGKILLed at random points of a peer-rewrap backfill, again and again.
//! After each restart its store opens, every credential the relay recorded as acknowledged is there and opens to
//! the right value, and in the end everything arrives, each credential delivered once. Run twice: one rewrap at a
//! time, and in small batches (docs/protocol.md, "Batched rewrap"), so that the kills land mid-batch: with a
//! batched delivery opened, half stored or stored and not yet acknowledged.
//!
//! Size knobs: `TESSERA_CRASH_CREDENTIALS` (default 300) and `TESSERA_CRASH_KILLS` (default 6). The full size:
//! `TESSERA_CRASH_CREDENTIALS=1000 TESSERA_CRASH_KILLS=20 cargo test --release -p tessera-system-tests --test crash_backfill`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{knob, poll_until, wait_for, AgentProc, Cluster};
use tessera_system_tests::plain_http;

/// A random number below `n` (a fresh UUID's bits).
fn random_below(n: u64) -> u64 {
    let bits = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    bits % n.max(1)
}

#[test]
fn killed_at_random_points_of_a_backfill_the_agent_loses_nothing_acknowledged() {
    // A narrow backfill window (1 rewrap in flight, not 64, no batches): the backfill takes long enough for each
    // kill point to be reached and acted on before the next delivery completes it.
    let batches = killed_during_backfill("backfill_concurrency = 1\nbatch_size = 0");
    assert_eq!(batches, 0);
}

#[test]
fn killed_mid_batch_the_agent_loses_nothing_acknowledged() {
    // Batches of 4, one in flight: each kill lands with a batch being opened, stored or acknowledged.
    let batches = killed_during_backfill("batch_size = 4\nbatches_in_flight = 1");
    let n = knob("TESSERA_CRASH_CREDENTIALS", 300);
    assert!(
        batches >= n / 4,
        "the backfill went in batches ({batches} for {n} credentials)"
    );
}

/// The scenario on a relay with `engine` in its `[engine]` section; returns the batched rewrap requests it sent.
fn killed_during_backfill(engine: &str) -> usize {
    let n = knob("TESSERA_CRASH_CREDENTIALS", 300);
    let kills = knob("TESSERA_CRASH_KILLS", 6);
    let wait = Duration::from_secs(60 + u64::try_from(n).unwrap() / 10);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), engine).unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let creds: BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("cred-{i:04}"),
                format!("value-{i:04}-{}", uuid::Uuid::new_v4()),
            )
        })
        .collect();
    // The seeded peer runs until the end of the test (dropping it stops it).
    let _peer = c.with_seeded_peer("edge-1", policy, &creds, wait).unwrap();
    let names_by_id: BTreeMap<String, String> = c
        .credential_ids()
        .unwrap()
        .into_iter()
        .map(|(name, id)| (id, name))
        .collect();

    let mut victim = c.agent("edge-2", policy).unwrap();
    victim.start().unwrap();
    // Kill points are chosen by progress, not by time, so that they land inside the backfill on a fast machine as on
    // a slow one: round r kills as soon as the agent's store holds a random count inside the (r + 1)-th of
    // `kills + 2` equal slices of the backfill, so even the last kill leaves a slice to deliver. One round in four
    // also has a deadline, a random point of start-up and registration, and kills there if it comes first.
    let slice = n / (kills + 2);
    let mut mid_backfill = 0;
    for round in 0..kills {
        let target = (round + 1) * slice
            + usize::try_from(random_below(u64::try_from(slice).unwrap())).unwrap();
        let deadline = (round % 4 == 0)
            .then(|| Instant::now() + Duration::from_millis(50 + random_below(400)));
        // Polled over the socket every 5 ms; while the restarted agent opens its socket it holds "nothing yet".
        poll_until("the kill point", wait, Duration::from_millis(5), || {
            Ok(deadline.is_some_and(|d| Instant::now() >= d)
                || victim.held_count().unwrap_or(0) >= target)
        })
        .unwrap();
        victim.kill();
        let acked = c.acknowledged("edge-2").unwrap();
        eprintln!(
            "round {round}: killed with {} of {n} acknowledged",
            acked.len()
        );
        if acked.len() < n {
            mid_backfill += 1;
        }
        victim.start().unwrap();
        restarted_holds_everything_acknowledged(&victim, &acked, &names_by_id, &creds, round, wait);
    }
    eprintln!("{kills} kills, {mid_backfill} of them before the relay had recorded every delivery");
    assert!(
        mid_backfill * 2 >= kills,
        "most kills must land during the backfill; raise the size"
    );

    c.wait_state("edge-2", "online", wait).unwrap();
    wait_for("every credential on edge-2", wait, || {
        Ok(victim.names()?.len() == n)
    })
    .unwrap();
    for (name, value) in &creds {
        assert_eq!(victim.value(name).unwrap().as_ref(), Some(value), "{name}");
    }
    let held = victim.inventory().unwrap();
    assert!(held.values().all(|(_, v)| *v == 1), "one version each");
    c.op(&["audit", "verify"]).unwrap();
    let batches = plain_http::settled_metric(
        &c.health,
        "tessera_relay_rewrap_batches_total",
        Duration::from_secs(60),
    )
    .unwrap();
    // A counter: an exact whole number.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let batches = batches as usize;
    batches
}

/// After a restart the store opens (the local API answers from it), every credential the relay recorded as
/// acknowledged is listed, and a sample of them opens to the right value (all of them are read at the end).
fn restarted_holds_everything_acknowledged(
    victim: &AgentProc,
    acked: &BTreeSet<String>,
    names_by_id: &BTreeMap<String, String>,
    creds: &BTreeMap<String, String>,
    round: usize,
    wait: Duration,
) {
    let mut held = BTreeMap::new();
    wait_for("the restarted agent's local API", wait, || {
        match victim.inventory() {
            Ok(inv) => {
                held = inv;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    })
    .unwrap();
    for id in acked {
        let name = &names_by_id[id];
        assert!(
            held.contains_key(name),
            "round {round}: {name} was acknowledged to the relay but is gone after SIGKILL"
        );
    }
    for id in acked.iter().take(10) {
        let name = &names_by_id[id];
        assert_eq!(
            victim.value(name).unwrap().as_ref(),
            Some(&creds[name]),
            "round {round}"
        );
    }
}
