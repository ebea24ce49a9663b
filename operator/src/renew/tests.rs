#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::admin::{RenewalState, RenewalView};
use tessera_proto::cert::{CertSerial, IdentityKey, OrgCa, RenewalRequest, Validity};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::RevocationList;

use super::*;
use crate::test_certs::{issue_with_key, NOW};

struct Fx {
    ca: OrgCa,
    registry: Registry,
    blue: AgentCertificate,
    blue_key: IdentityKey,
    green_key: IdentityKey,
    green_wrap: WrapPrivateKey,
}

fn fx() -> Fx {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let (blue, blue_key) = issue_with_key(&ca, "edge-1");
    let mut registry = Registry::default();
    registry.record(&blue, NOW);
    Fx {
        ca,
        registry,
        blue,
        blue_key,
        green_key: IdentityKey::generate().unwrap(),
        green_wrap: WrapPrivateKey::generate().unwrap(),
    }
}

fn request(f: &Fx, signer: &IdentityKey) -> RenewalRequest {
    RenewalRequest::new(
        &f.blue,
        signer,
        &f.green_key,
        f.green_wrap.public_key(),
        NOW,
    )
    .unwrap()
}

/// The CA issues the green certificate for `req` and records it as renewing blue (issued at `at`): its DER and view.
fn certify(f: &mut Fx, req: &RenewalRequest, at: i64) -> (Vec<u8>, AgentCertificate) {
    let der =
        f.ca.issue_renewal(req, &f.blue, Validity::days_from(NOW, 30))
            .unwrap();
    let green =
        f.ca.pinned()
            .verify_agent(&der, NOW + 1, &RevocationList::empty())
            .unwrap();
    f.registry.record_renewal(&green, &f.blue.serial, at);
    (der, green)
}

fn view(f: &Fx, request: RenewalRequest, state: RenewalState) -> RenewalView {
    RenewalView {
        agent: f.blue.agent_id.clone(),
        state,
        request,
        cert: None,
        receipt: None,
        failure: None,
        requested_ms: 0,
        updated_ms: 0,
    }
}

fn plan_of(f: &Fx, v: &RenewalView, revoked: &RevocationList, now: i64) -> Plan {
    plan(v, &f.registry, f.ca.pinned(), revoked, now, 3600)
}

#[test]
fn only_a_request_signed_by_the_registered_certificates_key_is_signed() {
    let f = fx();
    let empty = RevocationList::empty();
    let genuine = view(&f, request(&f, &f.blue_key), RenewalState::Requested);
    assert!(
        matches!(plan_of(&f, &genuine, &empty, NOW + 5), Plan::Sign(c) if c.serial == f.blue.serial)
    );
    // Signed by a key the relay holds.
    let forged = view(
        &f,
        request(&f, &IdentityKey::generate().unwrap()),
        RenewalState::Requested,
    );
    assert!(matches!(
        plan_of(&f, &forged, &empty, NOW + 5),
        Plan::Refuse(_)
    ));
    // Listed under another agent than the request names.
    let mut misfiled = genuine.clone();
    misfiled.agent = tessera_proto::ids::AgentId::new("edge-2").unwrap();
    assert!(matches!(
        plan_of(&f, &misfiled, &empty, NOW + 5),
        Plan::Refuse(_)
    ));
    // Renewing a certificate the CA's registry does not hold.
    let mut unknown = genuine.clone();
    unknown.request.body.current_serial = CertSerial::try_from("0a0b".to_owned()).unwrap();
    assert!(matches!(
        plan_of(&f, &unknown, &empty, NOW + 5),
        Plan::Refuse(_)
    ));
    // Renewing a revoked certificate.
    let revoked = RevocationList::new(1, NOW, [f.blue.serial.clone()]);
    assert!(matches!(
        plan_of(&f, &genuine, &revoked, NOW + 5),
        Plan::Refuse(_)
    ));
}

#[test]
fn a_request_already_certified_is_pushed_again_not_signed_twice() {
    let mut f = fx();
    let req = request(&f, &f.blue_key);
    let (der, _) = certify(&mut f, &req, NOW);
    let v = view(&f, req, RenewalState::Requested);
    assert!(
        matches!(plan_of(&f, &v, &RevocationList::empty(), NOW + 5), Plan::Repush(d) if d == der)
    );
}

#[test]
fn a_completed_rotation_retires_blue_after_the_grace_period_on_a_receipt_from_green() {
    let mut f = fx();
    let req = request(&f, &f.blue_key);
    let (_, green) = certify(&mut f, &req, NOW);
    let rotated = ReceiptFact::Rotated {
        previous_serial: f.blue.serial.clone(),
        serial: green.serial.clone(),
    };
    let receipt = |key: &IdentityKey, serial: &CertSerial| {
        Receipt::sign(
            &ReceiptBody::new(
                green.agent_id.clone(),
                serial.clone(),
                NOW + 100,
                rotated.clone(),
            ),
            key,
        )
        .unwrap()
    };
    let mut v = view(&f, req, RenewalState::Completed);
    let empty = RevocationList::empty();
    // No receipt, or one not signed by green: blue is not retired.
    assert!(matches!(
        plan_of(&f, &v, &empty, NOW + 10_000),
        Plan::Refuse(_)
    ));
    v.receipt = Some(receipt(&f.blue_key, &green.serial));
    assert!(matches!(
        plan_of(&f, &v, &empty, NOW + 10_000),
        Plan::Refuse(_)
    ));
    v.receipt = Some(receipt(&f.green_key, &green.serial));
    // Within the grace period: wait; after: retire blue.
    assert!(matches!(plan_of(&f, &v, &empty, NOW + 200), Plan::Wait(_)));
    assert!(matches!(
        plan_of(&f, &v, &empty, NOW + 100 + 3600),
        Plan::Retire { blue, green: g, at } if blue == f.blue.serial && g == green.serial && at == NOW + 100
    ));
    // Once blue is revoked: done.
    let revoked = RevocationList::new(1, NOW, [f.blue.serial.clone()]);
    assert!(matches!(
        plan_of(&f, &v, &revoked, NOW + 100 + 3600),
        Plan::Wait(_)
    ));
}

#[test]
fn a_request_older_than_a_certificate_already_issued_for_the_rotation_is_a_replay() {
    let mut f = fx();
    // R1 was certified (C1) and then abandoned by the agent, which asked again later with new keys (R2).
    let r1 = request(&f, &f.blue_key);
    certify(&mut f, &r1, NOW + 10);
    let green2 = IdentityKey::generate().unwrap();
    let wrap2 = WrapPrivateKey::generate().unwrap();
    let r2 =
        RenewalRequest::new(&f.blue, &f.blue_key, &green2, wrap2.public_key(), NOW + 20).unwrap();
    let empty = RevocationList::empty();
    assert!(matches!(
        plan_of(
            &f,
            &view(&f, r2.clone(), RenewalState::Requested),
            &empty,
            NOW + 30
        ),
        Plan::Sign(_)
    ));
    // The relay replays R1: C1 exists for exactly its keys, so it is pushed again, never signed twice.
    assert!(matches!(
        plan_of(&f, &view(&f, r1, RenewalState::Requested), &empty, NOW + 30),
        Plan::Repush(_)
    ));
    // An older request for other keys (one the agent made before C1 was issued): refused.
    let stale =
        RenewalRequest::new(&f.blue, &f.blue_key, &green2, wrap2.public_key(), NOW + 5).unwrap();
    let p = plan_of(
        &f,
        &view(&f, stale, RenewalState::Requested),
        &empty,
        NOW + 30,
    );
    assert!(
        matches!(p, Plan::Refuse(ref why) if why.contains("replayed")),
        "{p:?}"
    );
}
