//! The shipped broker configuration works as shipped: `deploy/mosquitto/` is exactly what `tessera broker-config
//! mosquitto` writes, and a real Mosquitto run with those files — only the lines after a `# site:` comment changed
//! (port, paths, the account) — lets an agent use its own topics and not another agent's, and lets the relay
//! reach every agent.
//!
//! Needs `mosquitto` and `mosquitto_pub`/`mosquitto_sub` (Debian: mosquitto, mosquitto-clients).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// One story on one broker, read top to bottom.
#![allow(clippy::too_many_lines)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tessera_proto::broker_config::SITE_MARKER;
use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::ids::AgentId;
use tessera_proto::topics;
use tessera_system_tests::acl_steps::{
    assert_only_the_relay_writes_down, assert_status_not_spoofed,
};
use tessera_system_tests::bins::bin;
use tessera_system_tests::broker::{
    agent_identity, free_port, now, pem_file, service_identity, Broker,
};
use tessera_system_tests::mosquitto_clients::{publish, received_while};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto")
}

#[test]
fn the_shipped_files_are_what_the_command_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("tessera"))
        .args(["broker-config", "mosquitto", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["tessera.conf", "tessera.acl"] {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name)).unwrap(),
            std::fs::read_to_string(deploy_dir().join(name)).unwrap(),
            "deploy/mosquitto/{name} differs from `tessera broker-config mosquitto` (regenerate it with \
             `tessera broker-config mosquitto --out deploy/mosquitto`)"
        );
    }
}

/// The shipped configuration with each line after a `# site:` marker replaced by the value for its directive;
/// every other line as shipped.
fn site_conf(shipped: &str, values: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut replaced = 0;
    let mut after_marker = false;
    for line in shipped.lines() {
        if after_marker {
            let directive = line.split_whitespace().next().unwrap();
            let (_, value) = values
                .iter()
                .find(|(d, _)| *d == directive)
                .unwrap_or_else(|| panic!("no test value for the site line {line:?}"));
            let _ = writeln!(out, "{directive} {value}");
            replaced += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
        after_marker = line.starts_with(SITE_MARKER);
    }
    assert_eq!(replaced, values.len(), "every site line, and only those");
    out
}

#[test]
fn the_shipped_configuration_confines_agents_and_lets_the_relay_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = OrgCa::generate("Acme", Validity::days_from(now(), 30)).unwrap();
    let ca_file = pem_file(d, "org-ca.pem", "CERTIFICATE", ca.cert_der());
    let server = service_identity(d, &ca, "broker");
    // The ACL as shipped: its relay is `relay-1`, the default service name.
    let acl = d.join("tessera.acl");
    std::fs::copy(deploy_dir().join("tessera.acl"), &acl).unwrap();
    let port = free_port().unwrap();
    let whoami = Command::new("id").arg("-un").output().unwrap().stdout;
    let conf = d.join("tessera.conf");
    std::fs::write(
        &conf,
        site_conf(
            &std::fs::read_to_string(deploy_dir().join("tessera.conf")).unwrap(),
            &[
                ("user", String::from_utf8_lossy(&whoami).trim().to_owned()),
                ("max_queued_messages", "20000".to_owned()),
                ("listener", format!("{port} 127.0.0.1")),
                ("cafile", ca_file.display().to_string()),
                ("certfile", server.cert.display().to_string()),
                ("keyfile", server.key.display().to_string()),
                ("acl_file", acl.display().to_string()),
            ],
        ),
    )
    .unwrap();
    let broker = Broker::start_conf(d, &conf, port, &ca_file).unwrap();

    let relay = service_identity(d, &ca, "relay-1");
    let edge1 = agent_identity(d, &ca, "edge-1");
    let edge2 = agent_identity(d, &ca, "edge-2");
    let (id1, id2) = (
        AgentId::new("edge-1").unwrap(),
        AgentId::new("edge-2").unwrap(),
    );

    // Up: the relay reads edge-1's own up topic; edge-1 posing as edge-2 is dropped.
    let seen = received_while(
        &broker,
        &relay,
        "tessera/v1/agents/+/up",
        Duration::from_secs(3),
        || {
            let out = publish(&broker, &edge1, &topics::agent_up(&id1), "from edge-1");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = publish(&broker, &edge1, &topics::agent_up(&id2), "edge-1 as edge-2");
        },
    );
    assert!(
        seen.contains("tessera/v1/agents/edge-1/up from edge-1"),
        "relay saw {seen:?}"
    );
    assert!(!seen.contains("edge-1 as edge-2"), "relay saw {seen:?}");

    // Down: edge-1 reads what the relay sends it, not what it sends edge-2; edge-2 gets its own.
    let seen = received_while(
        &broker,
        &edge1,
        "tessera/v1/agents/+/down",
        Duration::from_secs(3),
        || {
            assert!(
                publish(&broker, &relay, &topics::agent_down(&id1), "to edge-1")
                    .status
                    .success()
            );
            assert!(
                publish(&broker, &relay, &topics::agent_down(&id2), "to edge-2")
                    .status
                    .success()
            );
        },
    );
    assert!(
        seen.contains("tessera/v1/agents/edge-1/down to edge-1"),
        "edge-1 saw {seen:?}"
    );
    assert!(
        !seen.contains("to edge-2"),
        "edge-1 read edge-2's topic: {seen:?}"
    );
    assert_only_the_relay_writes_down(&broker, &relay, &edge1, &edge2, &id2);

    // Status: each agent its own; the relay reads all.
    assert_status_not_spoofed(&broker, &relay, &edge1, &id2, &edge2, &id2);
}
