//! An agent whose store key a TPM 2.0 seals (swtpm, started by the test), in the whole system: it enrols with
//! `[sealer] backend = "tpm"` and a PCR policy, holds a credential, unseals again after the agent and the TPM
//! restart, rotates its store key to the file sealer and back to the TPM while serving (through the running
//! agent's socket), and refuses to start, naming the PCR, once that PCR was extended (docs/operations.md, "Agents
//! with a TPM"). Runs with the `tpm` feature (scripts/test turns it on).
#![cfg(feature = "tpm")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../board/tests/support/swtpm.rs"]
mod swtpm;

use std::time::Duration;

use swtpm::Swtpm;
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const PCR: u8 = 16;

fn extra(tpm: &Swtpm) -> String {
    format!(
        "[sealer]\nbackend = \"tpm\"\n[sealer.tpm]\ntcti = \"{}\"\npcrs = [{PCR}]\n\
         [store]\nreencrypt_batch = 4\nreencrypt_pause_ms = 20\n\
         [policy.\"*\"]\nuids = [0]\n",
        tpm.tcti()
    )
}

fn manifest(agent: &AgentProc) -> serde_json::Value {
    let bytes = std::fs::read(agent.dir.join("state/store-keys.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// (state, active generation, its sealer) from the store key manifest.
fn key_state(agent: &AgentProc) -> (String, u64, String) {
    let m = manifest(agent);
    (
        m["keys"]["state"].as_str().unwrap().to_owned(),
        m["keys"]["active"]["generation"].as_u64().unwrap(),
        m["keys"]["active"]["sealer"]["backend"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Asks the running agent to rotate, then reads the credential while the re-encryption runs until it is done.
fn rotate_while_serving(agent: &AgentProc, to: &str, generation: u64) {
    let out = agent
        .cli()
        .args(["rotate-store-key", "--to", to])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["generation"], generation);
    assert_eq!(status["sealer"], to);
    let mut reads_during = 0;
    wait_for("the rotation to finish", Duration::from_secs(60), || {
        let done = key_state(agent) == ("steady".to_owned(), generation, to.to_owned());
        if !done {
            assert_eq!(agent.value("db")?.as_deref(), Some("hunter2"));
            reads_during += 1;
        }
        Ok(done)
    })
    .unwrap();
    assert!(
        reads_during > 0,
        "the rotation finished before any read could overlap it"
    );
    assert_eq!(agent.value("db").unwrap().as_deref(), Some("hunter2"));
}

#[test]
fn a_tpm_sealed_agent_restarts_rotates_and_refuses_a_changed_boot_state() {
    let wait = Duration::from_secs(60);
    let mut tpm = Swtpm::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let mut agent = c.agent("edge-1", &extra(&tpm)).unwrap();
    assert_eq!(key_state(&agent), ("steady".into(), 1, "tpm".into()));
    // The store key is nowhere on disk: no key file beside the store.
    assert!(!agent.dir.join("state/store.key").exists());
    agent.start().unwrap();
    c.wait_state("edge-1", "online", wait).unwrap();
    // Enough records that re-encryption (4 per batch, 20 ms apart) overlaps the reads below.
    for i in 0..10 {
        c.put(&format!("pad-{i}"), "x", &["edge-1"]).unwrap();
    }
    c.put("db", "hunter2", &["edge-1"]).unwrap();
    wait_for("db on edge-1", wait, || Ok(agent.value("db")?.is_some())).unwrap();

    // Agent down, TPM power-cycled, agent up: the store key unseals through the TPM again.
    agent.kill();
    tpm.restart();
    agent.start().unwrap();
    wait_for("edge-1 to serve again", wait, || {
        Ok(agent.value("db")?.as_deref() == Some("hunter2"))
    })
    .unwrap();

    // Store-key rotation in the running agent: to the file sealer, then back to the TPM.
    rotate_while_serving(&agent, "file", 2);
    assert!(agent.dir.join("state/store.key.2").exists());
    rotate_while_serving(&agent, "tpm", 3);
    assert!(
        !agent.dir.join("state/store.key.2").exists(),
        "the file generation's key file is destroyed"
    );
    agent.kill();
    agent.start().unwrap();
    wait_for("edge-1 after the rotations", wait, || {
        Ok(agent.value("db")?.as_deref() == Some("hunter2"))
    })
    .unwrap();
    agent.kill();

    // A changed boot state: PCR 16 extended. The agent refuses to start (exit 5), naming the PCR.
    let out = std::process::Command::new("tpm2_pcrextend")
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .arg(format!("{PCR}:sha256={}", "ab".repeat(32)))
        .output()
        .expect("tpm2_pcrextend (Debian tpm2-tools; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent.cli().arg("run").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("PCR") && stderr.contains("16"), "{stderr}");
    assert!(
        stderr.contains("Re-sealing after a firmware update"),
        "{stderr}"
    );
}
