use super::*;
use crate::status::{BrokerView, CertificateView, HeldView, RegistrationView};
use crate::store_key::worker::StoreKeyStatus;

fn status() -> AgentStatus {
    AgentStatus {
        version: "0.1.0".into(),
        agent: "edge-1".into(),
        broker: BrokerView {
            address: "127.0.0.1:8883".into(),
            connected: true,
        },
        registration: RegistrationView {
            state: "online".into(),
            backfill_expected: None,
            backfill_received: None,
        },
        certificate: CertificateView {
            serial: "0a".into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            not_after_unix: 1_798_761_600,
        },
        credentials: vec![HeldView {
            name: "db".into(),
            version: 3,
            status: CredentialStatus::Ok,
        }],
        store_key: StoreKeyStatus {
            state: "steady".into(),
            generation: 2,
            sealer: "file".into(),
            retiring: None,
        },
    }
}

#[test]
fn the_status_renders_as_gauges_with_the_agent_label() {
    let text = render(&status());
    for line in [
        "tessera_agent_broker_connected{agent=\"edge-1\"} 1",
        "tessera_agent_registration_state{agent=\"edge-1\",state=\"online\"} 1",
        "tessera_agent_registration_state{agent=\"edge-1\",state=\"disconnected\"} 0",
        "tessera_agent_certificate_expiry_timestamp_seconds{agent=\"edge-1\"} 1798761600",
        "tessera_agent_credentials_held{agent=\"edge-1\",status=\"ok\"} 1",
        "tessera_agent_store_key_generation{agent=\"edge-1\",sealer=\"file\"} 2",
        "# TYPE tessera_agent_store_key_rotating gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[test]
fn the_file_is_replaced_whole_and_no_temporary_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.prom");
    write_atomically(&path, "a 1\n").unwrap();
    write_atomically(&path, "b 2\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tessera.prom")]);
}

#[test]
fn a_symlink_planted_at_a_temporary_name_is_not_followed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("store.key");
    std::fs::write(&victim, "key material").unwrap();
    let collector = dir.path().join("collector");
    std::fs::create_dir(&collector).unwrap();
    // The name the agent used to write through, and the pid-suffixed one.
    for name in [
        ".tessera.prom.tmp".to_owned(),
        format!(".tessera.prom.tmp.{}", std::process::id()),
    ] {
        std::os::unix::fs::symlink(&victim, collector.join(name)).unwrap();
    }
    let path = collector.join("tessera.prom");
    write_atomically(&path, "a 1\n").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "key material");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\n");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
}
