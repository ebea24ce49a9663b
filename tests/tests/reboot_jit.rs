//! Scenario 1, the 02:00 reboot: three agents, a credential held by two; one holder is SIGKILLed; a job for the
//! credential lands on the agent that lacks it; JIT repair delivers it from the remaining peer; the job succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::Cluster;

const WAIT: Duration = Duration::from_secs(30);

fn sha256_hex(s: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "printf %s \"$0\" | sha256sum | cut -d' ' -f1", s])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_job_on_the_agent_lacking_its_credential_is_repaired_just_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    // The reconciler is slowed so that only JIT repair can deliver in this test; peers time out after 3 s.
    let mut c = Cluster::new(
        tmp.path(),
        &bin_dir(),
        "reconcile_interval_ms = 3600000\npeer_timeout_ms = 3000",
    )
    .unwrap();
    c.start_relay().unwrap();
    let uid = std::fs::metadata(tmp.path()).unwrap().uid();
    let jobs = format!(
        "[policy.\"*\"]\nuids = [{uid}]\n[jobs.hash-db]\ncommand = [\"/bin/sh\", \"-c\", \"printf %s \\\"$DB\\\" | sha256sum\"]\ncredentials = {{ DB = \"db\" }}\n"
    );
    let mut a1 = c.agent("edge-1", &jobs).unwrap();
    let mut a2 = c.agent("edge-2", &jobs).unwrap();
    a1.start().unwrap();
    a2.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();
    c.put("db", "db-password-0200", &[]).unwrap();
    for a in [&a1, &a2] {
        tessera_system_tests::cluster::wait_for("the holders", WAIT, || {
            Ok(a.value("db")?.as_deref() == Some("db-password-0200"))
        })
        .unwrap();
    }

    // edge-3 joins while both holders are down: its backfill finds no peer, it goes online without db.
    a1.kill();
    a2.kill();
    c.wait_state("edge-1", "offline", WAIT).unwrap();
    c.wait_state("edge-2", "offline", WAIT).unwrap();
    let mut a3 = c.agent("edge-3", &jobs).unwrap();
    a3.start().unwrap();
    c.wait_state("edge-3", "online", WAIT).unwrap();
    assert_eq!(c.chips("db").unwrap(), Some((2, 3)), "edge-3 lacks db");
    a1.start().unwrap();
    a2.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();
    assert_eq!(
        c.chips("db").unwrap(),
        Some((2, 3)),
        "nothing repaired it yet"
    );

    // 02:00: edge-1 reboots; the job lands on edge-3.
    a1.kill();
    let result = c
        .job("hash-db", Some("edge-3"), &["db"], Duration::from_secs(40))
        .unwrap();
    assert_eq!(result["exit_code"], 0, "{result}");
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(
        result["stdout"].as_str().unwrap().split_whitespace().next(),
        Some(sha256_hex("db-password-0200").as_str()),
        "the workload got the right credential"
    );
    assert_eq!(a3.value("db").unwrap().as_deref(), Some("db-password-0200"));
    // Repaired by the remaining peer, recorded write-ahead and final once edge-3's acknowledgement arrives.
    tessera_system_tests::cluster::wait_for("the relay to record the repair", WAIT, || {
        Ok(c.audit("rewrap_final")?.iter().any(|r| {
            r["data"]["target"] == "edge-3"
                && r["data"]["result"] == "success"
                && r["data"]["peer"] == "edge-2"
        }))
    })
    .unwrap();
    assert!(c.op(&["audit", "verify"]).is_ok());
    assert!(a3.log().contains("credential missing"), "{}", a3.log());
}
