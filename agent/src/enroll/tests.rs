use std::os::unix::fs::PermissionsExt;

use tessera_proto::cert::{OrgCa, Validity};

use super::*;
use crate::fixtures::NOW;
use crate::identity::AgentKeys;

fn cfg(dir: &Path) -> AgentConfig {
    AgentConfig {
        state_dir: dir.join("state"),
        ..AgentConfig::default()
    }
}

/// An agent `edge-1` enrolled (no certificate yet), with its request at `<dir>/req.json`.
fn enrolled() -> (
    tempfile::TempDir,
    AgentConfig,
    crate::fixtures::Org,
    AgentId,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let org = crate::fixtures::org();
    let id = AgentId::new("edge-1").unwrap();
    let out = dir.path().join("req.json");
    enroll(&cfg, &id, org.ca.cert_der(), &out, NOW).unwrap();
    (dir, cfg, org, id, out)
}

fn request(path: &Path) -> EnrollmentRequest {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn enroll_then_install_then_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let org = crate::fixtures::org();
    let id = AgentId::new("edge-1").unwrap();
    let out = dir.path().join("edge-1.request.json");
    let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", org.ca.cert_der().to_vec()));
    assert_eq!(
        enroll(&cfg, &id, ca_pem.as_bytes(), &out, NOW).unwrap(),
        EnrollOutcome::Enrolled
    );
    for f in [cfg.key_file(), cfg.store_keys_file(), out.clone()] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let req = request(&out);
    assert_eq!(req.body.agent_id, id);
    // Not runnable before the certificate is installed.
    {
        let store = open_store(&cfg).unwrap();
        assert!(matches!(
            AgentKeys::load(&store, NOW),
            Err(IdentityError::NoCertificate)
        ));
    }
    let cert = org
        .ca
        .issue_agent(&req, Validity::days_from(NOW, 30))
        .unwrap();
    assert_eq!(
        install_certificate(&cfg, &cert, NOW).unwrap(),
        InstallOutcome::Installed
    );
    assert_eq!(
        install_certificate(&cfg, &cert, NOW).unwrap(),
        InstallOutcome::AlreadyInstalled
    );
    let store = open_store(&cfg).unwrap();
    let keys = AgentKeys::load(&store, NOW).unwrap();
    assert_eq!(keys.id, id);
}

#[test]
fn enroll_is_idempotent_and_refuses_another_identity() {
    let (_dir, cfg, org, id, out) = enrolled();
    let first = request(&out);
    assert_eq!(
        enroll(&cfg, &id, org.ca.cert_der(), &out, NOW + 5).unwrap(),
        EnrollOutcome::AlreadyEnrolled
    );
    let second = request(&out);
    assert_eq!(first.body.identity_spki, second.body.identity_spki);
    assert_eq!(first.body.wrap_spki, second.body.wrap_spki);

    let err = enroll(
        &cfg,
        &AgentId::new("edge-2").unwrap(),
        org.ca.cert_der(),
        &out,
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    let other = OrgCa::generate("Other", Validity::days_from(NOW, 30)).unwrap();
    let err = enroll(&cfg, &id, other.cert_der(), &out, NOW).unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    let err = enroll(&cfg, &id, b"not a certificate", &out, NOW).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
}

#[test]
fn install_refuses_certificates_that_are_not_ours() {
    let (_dir, cfg, org, _id, out) = enrolled();
    // Another agent's certificate from the right CA.
    let other = org.agent("edge-2");
    let err = install_certificate(&cfg, &other.cert, NOW).unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    // Our request signed by another CA.
    let rogue = OrgCa::generate("Rogue", Validity::days_from(NOW - 10, 30)).unwrap();
    let cert = rogue
        .issue_agent(&request(&out), Validity::days_from(NOW - 10, 30))
        .unwrap();
    assert_eq!(
        install_certificate(&cfg, &cert, NOW)
            .unwrap_err()
            .exit_code(),
        4
    );
    // Expired.
    let cert = org
        .ca
        .issue_agent(&request(&out), Validity::days_from(NOW - 100 * 86_400, 30))
        .unwrap();
    assert_eq!(
        install_certificate(&cfg, &cert, NOW)
            .unwrap_err()
            .exit_code(),
        4
    );
    assert_eq!(
        install_certificate(&cfg, b"garbage", NOW)
            .unwrap_err()
            .exit_code(),
        4
    );
}

#[test]
fn a_replaced_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let org = crate::fixtures::org();
    enroll(
        &cfg,
        &AgentId::new("edge-1").unwrap(),
        org.ca.cert_der(),
        &dir.path().join("r"),
        NOW,
    )
    .unwrap();
    std::fs::remove_file(cfg.key_file()).unwrap();
    tessera_board::FileSealer::open_or_create(&cfg.key_file()).unwrap();
    let err = open_store(&cfg).unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    std::fs::set_permissions(cfg.key_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = open_store(&cfg).unwrap_err();
    assert!(err.to_string().contains("mode 0644"), "{err}");
}

#[test]
fn not_enrolled_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_store(&cfg(dir.path())).unwrap_err();
    assert!(matches!(err, OpenError::NotEnrolled(_)), "{err}");
}
