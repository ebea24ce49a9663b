use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::*;
use crate::envelope::WrapPrivateKey;
use crate::ids::{AgentId, OperatorId};
use crate::statement::RevocationList;

const NOW: i64 = 1_790_000_000;

struct Fixture {
    ca: OrgCa,
    identity: IdentityKey,
    wrap: WrapPrivateKey,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| Fixture {
        ca: OrgCa::generate("Acme", Validity::days_from(NOW, 3650)).unwrap(),
        identity: IdentityKey::generate().unwrap(),
        wrap: WrapPrivateKey::generate().unwrap(),
    })
}

fn request(id: &str) -> EnrollmentRequest {
    let f = fx();
    EnrollmentRequest::new(
        AgentId::new(id).unwrap(),
        &f.identity,
        f.wrap.public_key(),
        BTreeMap::new(),
        NOW,
    )
    .unwrap()
}

fn agent_cert(id: &str) -> Vec<u8> {
    fx().ca
        .issue_agent(&request(id), Validity::days_from(NOW, 365))
        .unwrap()
}

#[test]
fn agent_certificate_verifies_with_both_keys() {
    let der = agent_cert("edge-1");
    let cert = fx()
        .ca
        .pinned()
        .verify_agent(&der, NOW, &RevocationList::empty())
        .unwrap();
    assert_eq!(cert.agent_id.as_str(), "edge-1");
    assert_eq!(cert.identity, *fx().identity.public_key());
    assert_eq!(
        cert.wrap.fingerprint(),
        fx().wrap.public_key().fingerprint()
    );
}

#[test]
fn ca_round_trips_through_its_parts() {
    let f = fx();
    let key = f.ca.key().to_pkcs8_der().unwrap();
    let again = OrgCa::from_parts(f.ca.cert_der(), &key).unwrap();
    let der = again
        .issue_agent(&request("edge-2"), Validity::days_from(NOW, 1))
        .unwrap();
    f.ca.pinned()
        .verify_agent(&der, NOW, &RevocationList::empty())
        .unwrap();
    let other = IdentityKey::generate().unwrap().to_pkcs8_der().unwrap();
    assert!(OrgCa::from_parts(f.ca.cert_der(), &other).is_err());
}

#[test]
fn certificate_from_another_ca_is_untrusted() {
    let rogue = OrgCa::generate("Acme", Validity::days_from(NOW, 10)).unwrap();
    let der = rogue
        .issue_agent(&request("edge-1"), Validity::days_from(NOW, 10))
        .unwrap();
    assert_eq!(
        fx().ca
            .pinned()
            .verify_agent(&der, NOW, &RevocationList::empty())
            .unwrap_err(),
        CertError::UntrustedIssuer
    );
}

#[test]
fn tampered_certificate_is_untrusted() {
    let mut der = agent_cert("edge-1");
    // Flip a byte inside the wrap key extension (near the end of the TBS part).
    let at = der.len() - 120;
    der[at] ^= 0x01;
    assert!(fx()
        .ca
        .pinned()
        .verify_agent(&der, NOW, &RevocationList::empty())
        .is_err());
}

#[test]
fn validity_window_is_enforced() {
    let der = agent_cert("edge-1");
    let pinned = fx().ca.pinned();
    assert!(matches!(
        pinned.verify_agent(&der, NOW + 366 * 86_400, &RevocationList::empty()),
        Err(CertError::Expired { .. })
    ));
    assert!(matches!(
        pinned.verify_agent(&der, NOW - 3600, &RevocationList::empty()),
        Err(CertError::Expired { .. })
    ));
}

#[test]
fn revoked_certificate_is_refused() {
    let der = agent_cert("edge-1");
    let pinned = fx().ca.pinned();
    let serial = pinned
        .verify_agent(&der, NOW, &RevocationList::empty())
        .unwrap()
        .serial;
    let crl = RevocationList::new(1, NOW, [serial.clone()]);
    assert_eq!(
        pinned.verify_agent(&der, NOW, &crl).unwrap_err(),
        CertError::Revoked(serial)
    );
}

#[test]
fn roles_are_not_interchangeable() {
    let f = fx();
    let op =
        f.ca.issue_operator(
            &OperatorId::new("alice").unwrap(),
            f.identity.public_key(),
            Validity::days_from(NOW, 30),
        )
        .unwrap();
    let pinned = f.ca.pinned();
    assert_eq!(
        pinned
            .verify_agent(&op, NOW, &RevocationList::empty())
            .unwrap_err(),
        CertError::WrongRole { expected: AGENT_OU }
    );
    let agent = agent_cert("edge-1");
    assert_eq!(
        pinned
            .verify_operator(&agent, NOW, &RevocationList::empty())
            .unwrap_err(),
        CertError::WrongRole {
            expected: OPERATOR_OU
        }
    );
    assert_eq!(
        pinned
            .verify_operator(&op, NOW, &RevocationList::empty())
            .unwrap()
            .operator_id
            .as_str(),
        "alice"
    );
    // The CA's own certificate is no agent certificate.
    assert!(pinned
        .verify_agent(f.ca.cert_der(), NOW, &RevocationList::empty())
        .is_err());
}

#[test]
fn enrollment_request_proves_possession() {
    let mut req = request("edge-1");
    req.verify().unwrap();
    req.body.agent_id = AgentId::new("edge-evil").unwrap();
    assert_eq!(req.verify().unwrap_err(), CertError::BadSignature);
    assert!(fx()
        .ca
        .issue_agent(&req, Validity::days_from(NOW, 1))
        .is_err());
}

#[test]
fn enrollment_request_with_a_substituted_wrap_key_is_refused() {
    let mut req = request("edge-1");
    let other = WrapPrivateKey::generate().unwrap();
    req.body.wrap_spki = other.public_key().spki_der().to_vec();
    assert_eq!(req.verify().unwrap_err(), CertError::BadSignature);
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let pinned = fx().ca.pinned();
    for junk in [&b""[..], b"\x30\x82\xff\xff", &[0u8; 300]] {
        assert!(matches!(
            pinned.verify_agent(junk, NOW, &RevocationList::empty()),
            Err(CertError::Malformed(_))
        ));
    }
    let mut trailing = agent_cert("edge-1");
    trailing.push(0);
    assert!(matches!(
        pinned.verify_agent(&trailing, NOW, &RevocationList::empty()),
        Err(CertError::Malformed(_))
    ));
    assert!(
        PinnedCa::from_der(&agent_cert("edge-1")).is_err(),
        "an agent certificate is no CA"
    );
}

#[test]
fn serials_are_normalised_hex() {
    assert_eq!(CertSerial::from_bytes(&[0, 0, 0x1a, 0x02]).as_str(), "1a02");
    assert!(CertSerial::try_from("1A".to_owned()).is_err());
    assert!(CertSerial::try_from("abc".to_owned()).is_err());
}

#[test]
fn service_certificates_are_neither_agents_nor_operators() {
    let f = fx();
    let der =
        f.ca.issue_service(
            "broker",
            &["localhost"],
            &["127.0.0.1".parse().unwrap()],
            f.identity.public_key(),
            Validity::days_from(NOW, 30),
        )
        .unwrap();
    let pinned = f.ca.pinned();
    assert!(matches!(
        pinned.verify_agent(&der, NOW, &RevocationList::empty()),
        Err(CertError::WrongRole { .. })
    ));
    assert!(matches!(
        pinned.verify_operator(&der, NOW, &RevocationList::empty()),
        Err(CertError::WrongRole { .. })
    ));
    assert!(f
        .ca
        .issue_service(
            "a/b",
            &[],
            &[],
            f.identity.public_key(),
            Validity::days_from(NOW, 1)
        )
        .is_err());
}

struct Green {
    identity: IdentityKey,
    wrap: WrapPrivateKey,
}

fn green() -> &'static Green {
    static G: OnceLock<Green> = OnceLock::new();
    G.get_or_init(|| Green {
        identity: IdentityKey::generate().unwrap(),
        wrap: WrapPrivateKey::generate().unwrap(),
    })
}

fn blue(id: &str) -> AgentCertificate {
    fx().ca
        .pinned()
        .verify_agent(&agent_cert(id), NOW, &RevocationList::empty())
        .unwrap()
}

fn renewal(current: &AgentCertificate) -> RenewalRequest {
    RenewalRequest::new(
        current,
        &fx().identity,
        &green().identity,
        green().wrap.public_key(),
        NOW,
    )
    .unwrap()
}

#[test]
fn renewal_is_certified_for_the_new_keys_under_the_same_agent() {
    let current = blue("edge-1");
    let req = renewal(&current);
    let der = fx()
        .ca
        .issue_renewal(&req, &current, Validity::days_from(NOW, 30))
        .unwrap();
    let cert = fx()
        .ca
        .pinned()
        .verify_agent(&der, NOW, &RevocationList::empty())
        .unwrap();
    assert_eq!(cert.agent_id.as_str(), "edge-1");
    assert_eq!(cert.identity, *green().identity.public_key());
    assert_eq!(
        cert.wrap.fingerprint(),
        green().wrap.public_key().fingerprint()
    );
    assert_ne!(cert.serial, current.serial);
}

#[test]
fn renewal_refuses_another_agent_serial_or_signer() {
    let current = blue("edge-1");
    let other = blue("edge-2");
    let req = renewal(&current);
    // Checked against another agent's certificate.
    assert_eq!(req.verify(&other).unwrap_err(), CertError::WrongSubject);
    // The serial altered: names a certificate it was not signed for.
    let mut r = req.clone();
    r.body.current_serial = other.serial.clone();
    assert_eq!(r.verify(&current).unwrap_err(), CertError::WrongSubject);
    // Signed by a key that is not the certified one (a relay forging a request for its own keys).
    let relay_key = IdentityKey::generate().unwrap();
    let forged = RenewalRequest::new(
        &current,
        &relay_key,
        &green().identity,
        green().wrap.public_key(),
        NOW,
    )
    .unwrap();
    assert_eq!(
        forged.verify(&current).unwrap_err(),
        CertError::BadSignature
    );
    // The green key not proven: its signature from another key.
    let mut r = req.clone();
    r.new_signature = relay_key.sign(b"whatever");
    assert_eq!(r.verify(&current).unwrap_err(), CertError::BadSignature);
    // A green wrap key swapped after signing.
    let mut r = req.clone();
    r.body.wrap_spki = fx().wrap.public_key().spki_der().to_vec();
    assert!(r.verify(&current).is_err());
    // Nothing issued for any of them.
    assert!(fx()
        .ca
        .issue_renewal(&forged, &current, Validity::days_from(NOW, 30))
        .is_err());
}

#[test]
fn renewal_must_carry_new_keys() {
    let current = blue("edge-1");
    let same = RenewalRequest::new(
        &current,
        &fx().identity,
        &fx().identity,
        fx().wrap.public_key(),
        NOW,
    )
    .unwrap();
    assert!(matches!(
        same.verify(&current),
        Err(CertError::Malformed(_))
    ));
    assert_eq!(renewal(&current).digest(), renewal(&current).digest());
}
