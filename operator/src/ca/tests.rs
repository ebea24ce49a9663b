#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tessera_proto::cert::{EnrollmentRequest, IdentityKey};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;

use super::*;

/// An enrolment request for `id`, written into `dir`.
fn request(dir: &Path, id: &str) -> std::path::PathBuf {
    let key = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let req = EnrollmentRequest::new(
        AgentId::new(id).unwrap(),
        &key,
        wrap.public_key(),
        BTreeMap::new(),
        now(),
    )
    .unwrap();
    let path = dir.join(format!("{id}.req.json"));
    std::fs::write(&path, serde_json::to_vec(&req).unwrap()).unwrap();
    path
}

fn clash(r: Result<impl std::fmt::Debug, CaError>, name: &str) {
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains(&format!("common name {name} is already issued")) && e.contains("MQTT username"),
        "{e}"
    );
}

#[test]
fn a_common_name_is_never_issued_to_two_kinds_of_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    init(&ca, "Test Org", 365).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let lifetime = lifetime_secs(30, None);

    // The relay's name, then an agent enrolling under it (it would get the relay's broker ACL): refused, nothing
    // issued.
    issue_service(&ca, "relay-1", &["relay.example".into()], &[], &out, 30).unwrap();
    let cert = out.join("relay-1.agent.pem");
    clash(
        issue_agent(&ca, &request(tmp.path(), "relay-1"), &cert, lifetime, false),
        "relay-1",
    );
    assert!(!cert.exists());
    clash(
        issue_operator(&ca, "relay-1", &tmp.path().join("op"), 30),
        "relay-1",
    );
    // The same kind again (a renewed service certificate) is fine.
    issue_service(
        &ca,
        "relay-1",
        &["relay.example".into()],
        &[],
        &tmp.path().join("renewed"),
        30,
    )
    .unwrap();

    // An agent's id as a service or operator name: refused.
    issue_agent(
        &ca,
        &request(tmp.path(), "edge-1"),
        &out.join("edge-1.pem"),
        lifetime,
        false,
    )
    .unwrap();
    clash(issue_service(&ca, "edge-1", &[], &[], &out, 30), "edge-1");
    clash(
        issue_operator(&ca, "edge-1", &tmp.path().join("op"), 30),
        "edge-1",
    );
    // An operator's id as an agent id: refused.
    issue_operator(&ca, "alice", &tmp.path().join("alice"), 30).unwrap();
    clash(
        issue_agent(
            &ca,
            &request(tmp.path(), "alice"),
            &out.join("alice.pem"),
            lifetime,
            false,
        ),
        "alice",
    );
    let registry = Registry::require(&ca).unwrap();
    assert_eq!(registry.kind_of("relay-1"), Some(NameKind::Service));
    assert_eq!(registry.kind_of("alice"), Some(NameKind::Operator));
    assert_eq!(registry.kind_of("edge-1"), Some(NameKind::Agent));
}
