use super::*;

#[test]
fn the_default_site_has_the_documented_paths_the_tls_settings_and_the_packet_limit() {
    let conf = MosquittoSite::default().conf();
    for line in [
        "listener 8883",
        "cafile /etc/tessera/org-ca.pem",
        "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
        "acl_file /etc/mosquitto/tessera.acl",
        "max_packet_size 2097152",
        "max_queued_messages 20000",
        "max_queued_bytes 67108864",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} missing in\n{conf}");
    }
}

#[test]
fn every_site_line_follows_a_marker_and_no_line_has_a_trailing_comment() {
    let site = MosquittoSite {
        port: 18883,
        bind: Some("127.0.0.1".into()),
        ca_file: "/x/ca".into(),
        cert_file: "/x/cert".into(),
        key_file: "/x/key".into(),
        acl_file: "/x/acl".into(),
        user: "me".into(),
        relay_users: vec!["relay-a".into(), "relay-b".into()],
    };
    let conf = site.conf();
    let lines: Vec<&str> = conf.lines().collect();
    for value in [
        "18883 127.0.0.1",
        "/x/ca",
        "/x/cert",
        "/x/key",
        "/x/acl",
        "user me",
    ] {
        let i = lines.iter().position(|l| l.contains(value)).unwrap();
        assert!(lines[i - 1].starts_with(SITE_MARKER), "{value}");
    }
    for l in &lines {
        assert!(l.starts_with('#') || !l.contains('#'), "{l}");
    }
    let acl = site.acl();
    assert!(acl.contains("user relay-a\n") && acl.contains("user relay-b\n"));
    assert!(acl.contains("pattern write tessera/v1/agents/%u/up\n"));
}
