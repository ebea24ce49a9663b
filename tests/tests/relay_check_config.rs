//! `tessera-relay check-config`: a good configuration passes; a missing key file, a file that is not a
//! certificate, an unknown key and an admin certificate that is not an org service certificate are each refused with exit code 2 and a message naming what is wrong (with `--json`, as the JSON error line).
//! The annotated example deploy/relay.toml passes once its /etc/tessera and /var/lib paths are those of a real org
//! (the substitution docs/operations.md "Running under systemd" describes: only paths change).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::Cluster;

fn check(c: &Cluster, config: &Path) -> Output {
    c.cmd("tessera-relay")
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_config_names_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let good = check(&c, c.relay_config());
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stderr).contains("configuration ok"));

    let text = std::fs::read_to_string(c.relay_config()).unwrap();
    let key = c.service_identity("relay-1").key;
    let cases = [
        (
            text.replace(key.to_str().unwrap(), "/nonexistent/relay-1.key"),
            "/nonexistent/relay-1.key",
        ),
        (
            text.replace(
                c.service_identity("relay-admin").cert.to_str().unwrap(),
                c.relay_config().to_str().unwrap(),
            ),
            "BadEncoding",
        ),
        (format!("surprise = 1\n{text}"), "surprise"),
        // An org certificate that is not a service certificate (the operator's) as the admin API's.
        (
            text.replace(
                c.service_identity("relay-admin").cert.to_str().unwrap(),
                c.operator_dir().join("operator.pem").to_str().unwrap(),
            )
            .replace(
                c.service_identity("relay-admin").key.to_str().unwrap(),
                c.operator_dir().join("operator.key").to_str().unwrap(),
            ),
            "not a valid service certificate",
        ),
    ];
    for (i, (config, needle)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, config).unwrap();
        let out = check(&c, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(
            stderr.contains(needle),
            "case {i}: expected {needle:?} in {stderr}"
        );
        // With --json: the same failure as the one JSON error line of every Tessera binary.
        let out = c
            .cmd("tessera-relay")
            .args(["check-config", "--json", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "case {i}");
        let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(err["error"]["kind"], "invalid", "case {i}: {err}");
        assert_eq!(err["error"]["exit_code"], 2);
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "case {i}: {err}"
        );
    }
    // What a good configuration holds, as JSON.
    let out = c
        .cmd("tessera-relay")
        .args(["check-config", "--json", "--config"])
        .arg(c.relay_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["broker"]["name"], "relay-1", "{found}");
    assert_eq!(found["admin"]["name"], "relay-admin", "{found}");
}

#[test]
fn the_example_configuration_passes_with_its_paths_pointed_at_a_real_org() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/relay.toml"))
            .unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let relay = c.service_identity("relay-1");
    let admin = c.service_identity("relay-admin");
    let text = example
        .replace("/var/lib/tessera-relay", &path(&tmp.path().join("state")))
        .replace("/etc/tessera/org-ca.pem", &path(&c.ca_dir().join("ca.pem")))
        .replace("/etc/tessera/relay-admin.pem", &path(&admin.cert))
        .replace("/etc/tessera/relay-admin.key", &path(&admin.key))
        .replace("/etc/tessera/relay-1.pem", &path(&relay.cert))
        .replace("/etc/tessera/relay-1.key", &path(&relay.key));
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("/etc/tessera")),
        "{text}"
    );
    let config = tmp.path().join("example.toml");
    std::fs::write(&config, text).unwrap();
    let out = check(&c, &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("configuration ok"), "{stderr}");
}
