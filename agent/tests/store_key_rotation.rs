//! Store-key rotation survives SIGKILL: `tessera-agent rotate-store-key` is killed again and again over the rotation
//! of a 1,000-credential store; after every kill the store opens with every credential readable, and the rotation
//! resumes until the old key is destroyed (docs/operations.md, "Rotating the store key").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tessera_agent::config::AgentConfig;
use tessera_agent::store_key::KeyState;
use tessera_agent::unseal::open_store_keys;
use tessera_proto::ids::CredentialName;
use tessera_system_tests::org::TestOrg;

mod fill;

const BIN: &str = env!("CARGO_BIN_EXE_tessera-agent");
const NOW: i64 = 1_800_000_000;
const CREDENTIALS: usize = 1_000;

fn config(dir: &Path) -> (std::path::PathBuf, AgentConfig) {
    let path = dir.join("agent.toml");
    let text = format!(
        "state_dir = {state:?}\n\
         [socket]\npath = {socket:?}\n\
         [store]\nreencrypt_batch = 12\nreencrypt_pause_ms = 2\n",
        state = dir.join("state").display().to_string(),
        socket = dir.join("no-agent.sock").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    let cfg = AgentConfig::load(Some(&path), std::iter::empty()).unwrap();
    (path, cfg)
}

fn secret(i: usize) -> String {
    format!("secret-{i}")
}

/// Opens the store (completing a destroy a kill interrupted, as the agent does at start), checks every credential
/// reads back with its secret, and returns the state and how many records are still under the old key.
fn check_store(cfg: &AgentConfig) -> (KeyState, usize) {
    let opened = open_store_keys(cfg).unwrap();
    for i in 0..CREDENTIALS {
        let c = opened
            .store
            .credential_by_name(&CredentialName::new(format!("cred-{i}")).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("cred-{i} lost"));
        let text = c.payload.expose(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(text, format!(r#"{{"secret":"{}"}}"#, secret(i)));
    }
    let remaining = opened.store.stale_records().unwrap();
    (opened.keys, remaining)
}

/// A store of [`CREDENTIALS`] credentials (generation 1, file sealer), as enrolment and deliveries leave it.
fn fill(cfg: &AgentConfig) {
    fill::store_with_credentials(cfg, &TestOrg::at(NOW), NOW, CREDENTIALS, secret);
}

/// At most this many kills in the SIGKILL test.
const MAX_KILLS: usize = 300;

#[test]
fn sigkill_at_any_point_of_a_rotation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, cfg) = config(dir.path());
    fill(&cfg);
    let (state, remaining) = check_store(&cfg);
    assert_eq!(
        (state.name(), state.active().generation, remaining),
        ("steady", 1, 0)
    );

    // Kill the rotation at spread-out moments: early ones land while the process starts and seals the new key,
    // later ones in the middle of re-encryption batches. How far a run gets before its kill depends on the
    // machine's load, so the kills go on (at most MAX_KILLS) until one has landed in the second half of the
    // re-encryption, and the delays grow while kills make no progress.
    let total = 3 * CREDENTIALS;
    let mut landed = Vec::new();
    let mut kills = 0;
    let mut finished = false;
    let mut stretch = 1u64;
    for attempt in 0..(MAX_KILLS as u64 + 20) {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config_path)
            .arg("rotate-store-key")
            .env_remove("TESSERA_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // 20 ms .. 270 ms, varied deterministically, stretched while kills land before any progress.
        let delay = (20 + (attempt * 7_919) % 250) * stretch;
        std::thread::sleep(Duration::from_millis(delay));
        let second_half_seen = landed
            .iter()
            .any(|(s, r): &(&str, usize)| *s == "reencrypting" && *r > 0 && *r < total / 2);
        let keep_killing = kills < MAX_KILLS && (kills < 40 || !second_half_seen);
        if child.try_wait().unwrap().is_none() && keep_killing {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            let (state, remaining) = check_store(&cfg);
            let stalled = landed.last() == Some(&(state.name(), remaining));
            stretch = if stalled { (stretch + 1).min(8) } else { 1 };
            let was_rotating = landed.iter().any(|(s, _)| *s != "steady");
            landed.push((state.name(), remaining));
            // Killed after the rotation ended, before the process exited: done (another run would start the next).
            if was_rotating && state.name() == "steady" {
                finished = true;
                break;
            }
        } else {
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "the rotation failed after {kills} kills: {status}"
            );
            finished = true;
            break;
        }
    }
    eprintln!("kills landed at (state, records left): {landed:?}");
    assert!(finished, "the rotation did not finish: {landed:?}");
    assert!(kills >= 10, "only {kills} kills landed: {landed:?}");
    let mid: Vec<usize> = landed
        .iter()
        .filter(|(s, r)| *s == "reencrypting" && *r > 0)
        .map(|(_, r)| *r)
        .collect();
    assert!(
        mid.len() >= 5,
        "too few kills in the middle of re-encryption: {landed:?}"
    );
    // Progress carried over from one run to the next: the record counts left at the kills only go down, and went
    // down across them (how far each run gets before its kill depends on the machine's load: the loop above aims for
    // the second half of the re-encryption but a fast run may finish first).
    assert!(mid.windows(2).all(|w| w[1] <= w[0]), "{landed:?}");
    assert!(
        mid.first() > mid.last(),
        "no progress across kills: {landed:?}"
    );
    assert!(mid.iter().any(|r| *r < total), "{landed:?}");

    assert_finished(&cfg);
}

/// Generation 2 active, nothing left under generation 1, its key file destroyed, both steps audited.
fn assert_finished(cfg: &AgentConfig) {
    let (state, remaining) = check_store(cfg);
    assert_eq!(
        (state.name(), state.active().generation, remaining),
        ("steady", 2, 0)
    );
    // The old key file is destroyed; the new generation has its own.
    assert!(!cfg.key_file().exists());
    let mut next = cfg.key_file().into_os_string();
    next.push(".2");
    assert!(Path::new(&next).exists());
    // Audited: started and finished.
    let store = open_store_keys(cfg).unwrap().store;
    let steps: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.op == "store_key")
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        steps
            .iter()
            .any(|d| d.starts_with("started: generation 1 (file) -> 2 (file)")),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|d| d.starts_with("finished: generation 1 (file) destroyed")),
        "{steps:?}"
    );
}
