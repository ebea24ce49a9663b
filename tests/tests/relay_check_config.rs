//! `tessera-relay check-config`: a good configuration passes; a missing key file, a file that is not a
//! certificate, an unknown key and an admin certificate that is not an org service certificate are each refused with exit code 2 and a message naming what is wrong.
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
    }
}
