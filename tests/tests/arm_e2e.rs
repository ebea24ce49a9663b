//! The ARM build end to end: the cross-built agent, running under qemu-user, enrols with the org, connects over TLS
//! to a real Mosquitto, registers with the x86 relay, receives a credential by backfill, serves it over its local
//! API, and answers a peer rewrap for an x86 agent that joins later. Proves the ARM build is not just compiled.
//!
//! Run by `cross/e2e TARGET`, which builds the agent and sets `TESSERA_ARM_AGENT` (the binary) and
//! `TESSERA_ARM_RUNNER` (the emulator command); ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(60);

/// The ELF machine of `path` (`e_machine`, little-endian).
fn elf_machine(path: &std::path::Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
#[ignore = "needs a cross-built agent and qemu-user: run cross/e2e TARGET"]
fn the_arm_agent_enrols_backfills_serves_and_rewraps_for_a_peer() {
    let arm = PathBuf::from(std::env::var("TESSERA_ARM_AGENT").expect("TESSERA_ARM_AGENT"));
    let runner = std::env::var("TESSERA_ARM_RUNNER").expect("TESSERA_ARM_RUNNER");
    // 183 = EM_AARCH64, 40 = EM_ARM.
    let machine = elf_machine(&arm);
    assert!(
        machine == 183 || machine == 40,
        "{} is not an ARM binary (machine {machine})",
        arm.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let wrapper = tmp.path().join("tessera-agent-arm");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {runner} {} \"$@\"\n", arm.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut c = Cluster::new(
        &tmp.path().join("org"),
        &bin_dir(),
        "peer_timeout_ms = 10000",
    )
    .unwrap();
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut x86 = c.agent("edge-1", policy).unwrap();
    x86.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.put("db", "secret-for-arm", &[]).unwrap();
    wait_for("edge-1 to hold db", WAIT, || Ok(x86.value("db")?.is_some())).unwrap();

    // The ARM agent: enrolled through its own CLI under qemu, backfilled by peer rewrap from edge-1.
    let mut arm_agent = c.agent_with_bin("arm-1", policy, &wrapper).unwrap();
    arm_agent.start().unwrap();
    c.wait_state("arm-1", "online", WAIT).unwrap();
    wait_for("arm-1 to serve db", WAIT, || {
        Ok(arm_agent.value("db")?.as_deref() == Some("secret-for-arm"))
    })
    .unwrap();
    let regs = c.audit("agent_registered").unwrap();
    assert!(regs
        .iter()
        .any(|r| r["data"]["agent"] == "arm-1" && r["data"]["mode"] == "FirstRegistration"));

    // The ARM agent as a peer: edge-1 is down, a new x86 agent can only be served by arm-1.
    x86.kill();
    c.wait_state("edge-1", "offline", WAIT).unwrap();
    let mut late = c.agent("edge-2", policy).unwrap();
    late.start().unwrap();
    wait_for("edge-2 to hold db", WAIT, || {
        Ok(late.value("db")?.as_deref() == Some("secret-for-arm"))
    })
    .unwrap();
    wait_for("the relay to record arm-1's rewrap", WAIT, || {
        Ok(c.audit("rewrap_final")?.iter().any(|r| {
            r["data"]["target"] == "edge-2"
                && r["data"]["peer"] == "arm-1"
                && r["data"]["result"] == "success"
        }))
    })
    .unwrap();
    c.op(&["audit", "verify"]).unwrap();
}
