//! The README's first command: the demo runs the whole story on real processes, exits 0 and removes what it made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_demo_tells_the_whole_story_and_cleans_up() {
    // The agent and relay binaries sit next to the demo's in the target directory.
    let bins = tessera_system_tests::bins::bin_dir();
    assert!(bins.join("tessera-agent").is_file());
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-demo"))
        .args(["--pace", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "edge-3 holds core-switch-ssh and snmp-community",
        "job succeeded",
        "edge-3 now holds backup-server-key (2/2)",
        "alert [critical] credential_commitment_mismatch",
        "commitment_mismatch_detected target=edge-3 source=not_dispatched_by_this_relay",
        "edge-3 still serves the genuine core-switch-ssh",
        "hash chain intact",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("working directory: "))
        .unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}
