//! The firmware package: `cross/package` makes a rootfs overlay with the agent, the provisioning script, the
//! configuration template, and the hardened unit (checked with `systemd-analyze verify` when present); the
//! provisioning script from the overlay enrols an appliance non-interactively in two passes with clear exit codes,
//! and the agent it provisioned comes online at a real relay.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The provisioning story reads top to bottom: bad input, pass 1, signing, pass 2, a second identity, the run.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::{Cluster, Proc};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn provision(rootfs: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(rootfs.join("usr/sbin/tessera-provision"))
        .args(args)
        .env("TESSERA_CONFIG", rootfs.join("etc/tessera/agent.toml"))
        .env("TESSERA_AGENT_BIN", rootfs.join("usr/bin/tessera-agent"))
        .env("TESSERA_STATE_DIR", state)
        .env("TESSERA_SOCKET", state.join("agent.sock"))
        .env("TESSERA_USER", "no-such-user-here")
        .env("TESSERA_SKIP_SERVICE", "1")
        .output()
        .unwrap()
}

/// `tessera-provision --ca CA --agent-id ID --broker BROKER FLAG VALUE`.
fn enrol(
    rootfs: &Path,
    state: &Path,
    [ca, id, broker]: [&str; 3],
    [flag, value]: [&str; 2],
) -> Output {
    provision(
        rootfs,
        state,
        &[
            "--ca",
            ca,
            "--agent-id",
            id,
            "--broker",
            broker,
            flag,
            value,
        ],
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Packages the host build into `dir` and extracts it; checks the listing and the unit; returns the rootfs.
fn overlay(dir: &Path) -> PathBuf {
    let tarball = dir.join("overlay.tar.gz");
    let out = Command::new(repo().join("cross/package"))
        .args(["x86_64-unknown-linux-gnu", "--binary"])
        .arg(bin_dir().join("tessera-agent"))
        .arg("--out")
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        assert!(text(&out).contains("the unit is clean"), "{}", text(&out));
    }
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for (mode, path) in [
        ("-rwxr-xr-x", "usr/bin/tessera-agent"),
        ("-rwxr-xr-x", "usr/sbin/tessera-provision"),
        ("-rw-r--r--", "etc/tessera/agent.toml"),
        ("-rw-r--r--", "usr/lib/systemd/system/tessera-agent.service"),
        ("-rw-r--r--", "usr/lib/tmpfiles.d/tessera-agent.conf"),
        ("-rw-r--r--", "usr/lib/sysusers.d/tessera-agent.conf"),
        ("-rw-r--r--", "usr/share/tessera/tpm.conf"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path) && l.contains("0/0")),
            "{path} ({mode}, root) missing from:\n{listing}"
        );
    }
    assert!(
        !listing.lines().any(|l| l.ends_with(" ./")),
        "the overlay must not carry the root directory's mode"
    );
    let unit = {
        let o = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&rootfs)
            .output()
            .unwrap();
        assert!(o.status.success());
        std::fs::read_to_string(rootfs.join("usr/lib/systemd/system/tessera-agent.service"))
            .unwrap()
    };
    for hardening in [
        "User=tessera",
        "StateDirectory=tessera",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "LimitCORE=0",
        "MemoryDenyWriteExecute=yes",
        "Restart=on-failure",
        "Environment=MALLOC_ARENA_MAX=1",
        "Type=notify",
        "WatchdogSec=30s",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l == hardening),
            "unit lacks {hardening}"
        );
    }
    rootfs
}

#[test]
fn the_overlay_provisions_an_appliance_that_comes_online() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = overlay(tmp.path());

    // The relay's org, and the appliance provisioned with the overlay's script.
    let mut c = Cluster::new(&tmp.path().join("org"), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let ca = c.ca_dir().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let state = tmp.path().join("state");
    let broker = format!("127.0.0.1:{}", c.broker.port);
    let request = tmp.path().join("edge-9.request.json");
    let cert = tmp.path().join("edge-9.pem");

    // Bad input: clear codes, nothing enrolled.
    assert_eq!(
        provision(&rootfs, &state, &["--ca", ca]).status.code(),
        Some(2)
    );
    let o = enrol(
        &rootfs,
        &state,
        ["/nonexistent", "edge-9", &broker],
        ["--request-out", "/tmp/x"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = enrol(
        &rootfs,
        &state,
        [ca, "edge-9", "bad host:1"],
        ["--request-out", "/tmp/x"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Pass 1: keys and request; the operator signs it; pass 2 installs the certificate. Both idempotent.
    let req = request.to_str().unwrap();
    for _ in 0..2 {
        let o = enrol(
            &rootfs,
            &state,
            [ca, "edge-9", &broker],
            ["--request-out", req],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    tessera_system_tests::cluster::run(
        c.operator_cmd()
            .args(["ca", "issue-agent", "--dir"])
            .arg(c.ca_dir())
            .arg(&request)
            .arg("--out")
            .arg(&cert),
    )
    .unwrap();
    let cert_s = cert.to_str().unwrap();
    for _ in 0..2 {
        let o = enrol(&rootfs, &state, [ca, "edge-9", &broker], ["--cert", cert_s]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    // Another identity on a provisioned appliance is refused, not overwritten.
    let o = enrol(
        &rootfs,
        &state,
        [ca, "edge-10", &broker],
        ["--request-out", req],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let config = std::fs::read_to_string(rootfs.join("etc/tessera/agent.toml")).unwrap();
    assert!(
        config.contains(&format!("port = {}", c.broker.port)),
        "{config}"
    );
    assert!(config.contains("host = \"127.0.0.1\""), "{config}");

    // The provisioned agent, started as the unit would, comes online at the relay.
    let _agent = Proc::spawn(
        Command::new(rootfs.join("usr/bin/tessera-agent"))
            .arg("--config")
            .arg(rootfs.join("etc/tessera/agent.toml"))
            .arg("run")
            .env("TESSERA_STATE_DIR", &state)
            .env("TESSERA_SOCKET", state.join("agent.sock"))
            .env("MALLOC_ARENA_MAX", "1"),
        &tmp.path().join("edge-9.log"),
    )
    .unwrap();
    c.wait_state("edge-9", "online", Duration::from_secs(30))
        .unwrap();
}
