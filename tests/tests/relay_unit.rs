//! The relay's systemd unit, deploy/systemd/tessera-relay.service: `Type=notify` with a watchdog, a SIGHUP reload,
//! and the hardening docs/operations.md "Running under systemd" promises. When `systemd-analyze` is installed the
//! unit (with `ExecStart` pointed at the binary this run built) must also verify without a complaint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tessera_system_tests::bins::bin;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/systemd/tessera-relay.service"
);

#[test]
fn the_relay_unit_is_notify_with_a_watchdog_and_hardened() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=tessera-relay",
        "StateDirectory=tessera-relay",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LimitCORE=0",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the unit is not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("tessera-relay.service");
    std::fs::write(
        &local,
        unit.replace(
            "/usr/bin/tessera-relay",
            bin("tessera-relay").to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
