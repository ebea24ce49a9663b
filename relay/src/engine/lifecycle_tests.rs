//! The engine's lifecycle rules (receipts, key rotations, purge and certificate alerts), each with a test that fails
//! when the rule is broken. The same world as the engine's other tests: real crypto, a real sled store, a manual
//! clock, the agents played by building their wire messages.

use tessera_proto::cert::{AgentCertificate, IdentityKey, RenewalRequest, Validity};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;
use tessera_proto::receipt::{Receipt, ReceiptFact};
use tessera_proto::statement::{RevocationList, Scope};
use tessera_proto::wire::{
    self, CredentialStored, Down, RegistrationMode, RenewalRequested, RotationCompleted,
    RotationFailed, RotationFailure, StoreOutcome, Up,
};
use tessera_system_tests::org::TestAgent;

use super::tests::{rewrap_msg, store_msg, World};
use crate::alerts::AlertKind;
use crate::state::{DeliveryState, RenewalState};

fn certificate(w: &World, a: &AgentId) -> AgentCertificate {
    w.org
        .ca
        .pinned()
        .verify_agent(
            &w.agents[a.as_str()].cert,
            w.org.at,
            &RevocationList::empty(),
        )
        .unwrap()
}

/// A renewal for `a`: the request (signed by its certified key and the new one) and the green agent it becomes once
/// the CA certifies it.
fn renewal(w: &World, a: &AgentId) -> (RenewalRequest, TestAgent) {
    let blue = certificate(w, a);
    let identity = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let req = RenewalRequest::new(
        &blue,
        &w.agents[a.as_str()].identity,
        &identity,
        wrap.public_key(),
        w.org.at,
    )
    .unwrap();
    let cert = w
        .org
        .ca
        .issue_renewal(&req, &blue, Validity::days_from(w.org.at - 86_400, 365))
        .unwrap();
    (
        req,
        TestAgent {
            id: a.clone(),
            identity,
            wrap,
            cert,
        },
    )
}

fn queue(w: &mut World, from: &AgentId, request: &RenewalRequest) {
    w.up(
        from,
        &Up::RenewalRequested(RenewalRequested {
            request: request.clone(),
        }),
    );
}

/// The serial of an agent certificate (DER) of the test org.
fn serial_of(w: &World, der: &[u8]) -> tessera_proto::cert::CertSerial {
    w.org
        .ca
        .pinned()
        .verify_agent(der, w.org.at, &RevocationList::empty())
        .unwrap()
        .serial
}

fn stored_with(w: &mut World, from: &AgentId, d: &wire::CredentialStore, receipt: Option<Receipt>) {
    let st = d
        .statement
        .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
        .unwrap();
    w.up(
        from,
        &Up::CredentialStored(CredentialStored {
            delivery_id: d.delivery_id,
            credential_id: st.credential_id,
            version: st.version,
            outcome: StoreOutcome::Stored {
                digest: st.commitment,
            },
            receipt,
        }),
    );
}

#[test]
fn a_delivery_is_recorded_only_with_the_targets_valid_receipt() {
    let mut w = World::new();
    let t = w.agent("edge-1");
    w.agent("edge-2");
    let (id, commitment, _) = w.put("db", Scope::All, "pw", &[&t]);
    let out = w.register(&t, RegistrationMode::FirstRegistration, vec![]);
    let d = store_msg(&out, &t);
    let fact = |delivery_id, version| ReceiptFact::Stored {
        delivery_id,
        credential_id: id,
        version,
        digest: commitment,
    };
    // No receipt; one signed by another agent; one for another delivery; one for another version.
    let forged_by_other = w.org.receipt(&w.agents["edge-2"], fact(d.delivery_id, 1));
    let another_delivery = w
        .org
        .receipt(&w.agents["edge-1"], fact(uuid::Uuid::new_v4(), 1));
    let another_version = w.org.receipt(&w.agents["edge-1"], fact(d.delivery_id, 2));
    for bad in [
        None,
        Some(forged_by_other),
        Some(another_delivery),
        Some(another_version),
    ] {
        stored_with(&mut w, &t, &d, bad);
        assert_eq!(w.row(&id, &t).state, DeliveryState::Pending);
    }
    let unsolicited = w.engine.store.audit().unwrap();
    assert_eq!(
        unsolicited
            .iter()
            .filter(
                |e| e.kind == "unsolicited_response" && e.data["reason"].starts_with("BAD_RECEIPT")
            )
            .count(),
        4
    );
    assert!(
        w.engine.is_in_flight(&id, &t),
        "still waiting for a valid acknowledgement"
    );
    // The honest one: recorded, kept with the row and in the audit entry.
    let good = w.org.receipt(&w.agents["edge-1"], fact(d.delivery_id, 1));
    stored_with(&mut w, &t, &d, Some(good.clone()));
    let row = w.row(&id, &t);
    assert_eq!(row.state, DeliveryState::Stored);
    assert_eq!(
        w.engine
            .store
            .receipt(&id, &t, crate::state::ReceiptKind::Stored)
            .unwrap(),
        Some(good.clone())
    );
    let entry = w
        .engine
        .store
        .audit()
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == "rewrap_final")
        .unwrap();
    assert_eq!(entry.data["result"], "success");
    assert_eq!(entry.data["version"], "1");
    // The entry carries the signature; the signed body is rebuilt from its fields.
    let kept = tessera_proto::receipt::in_audit::rebuild(&entry)
        .unwrap()
        .unwrap();
    assert_eq!(kept, good);
    assert!(kept.verify(&certificate(&w, &t)).is_ok());
}

#[test]
fn a_purge_is_recorded_only_with_the_agents_valid_receipt() {
    let mut w = World::new();
    let (p, id, _) = w.seeded_peer("edge-1", "db", "pw");
    w.agent("edge-2");
    w.engine
        .tombstone_credential(&id, &w.org.tombstone(id, "db", 1))
        .unwrap();
    let purged = |receipt| {
        Up::CredentialPurged(wire::CredentialPurged {
            credential_id: id,
            version: 1,
            receipt,
        })
    };
    let by_other = w.org.receipt(
        &w.agents["edge-2"],
        ReceiptFact::Purged {
            credential_id: id,
            version: 1,
            scope_revision: None,
        },
    );
    for bad in [None, Some(by_other)] {
        w.up(&p, &purged(bad));
        assert_eq!(
            w.row(&id, &p).purge,
            Some(crate::state::PurgeState::Purging)
        );
    }
    w.purge_ack(&p, id, 1);
    let row = w.row(&id, &p);
    assert_eq!(row.purge, Some(crate::state::PurgeState::Purged));
    assert!(w
        .engine
        .store
        .receipt(&id, &p, crate::state::ReceiptKind::Purged)
        .unwrap()
        .is_some());
    let entry = w
        .engine
        .store
        .audit()
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == "credential_purged")
        .unwrap();
    assert!(tessera_proto::receipt::in_audit::rebuild(&entry)
        .unwrap()
        .is_some());
}

#[test]
#[allow(clippy::too_many_lines)] // one rotation, step by step, as the agent and the operator drive it
fn a_rotation_is_queued_certified_forwarded_and_completed_with_receipts() {
    let mut w = World::new();
    let (peer, id, commitment) = w.seeded_peer("edge-2", "db", "pw");
    let a = w.agent("edge-1");
    let out = w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let (_, req) = rewrap_msg(&out);
    w.complete_honestly(&peer, &req, "pw", commitment);
    assert_eq!(w.row(&id, &a).state, DeliveryState::Stored);
    let (request, green) = renewal(&w, &a);

    // A request the relay cannot tie to the agent's certified key is dropped: signed by another key, or renewing
    // another agent's certificate.
    let mut forged = request.clone();
    forged.current_signature = IdentityKey::generate().unwrap().sign(b"x");
    queue(&mut w, &a, &forged);
    assert!(w.engine.store.renewal(&a).unwrap().is_none());
    queue(&mut w, &peer, &request);
    assert!(w.engine.store.renewal(&peer).unwrap().is_none());

    // Queued.
    queue(&mut w, &a, &request);
    let rec = w.engine.store.renewal(&a).unwrap().unwrap();
    assert_eq!(rec.state, RenewalState::Requested);
    assert!(w.audit_kinds().iter().any(|k| k == "renewal_requested"));

    // A certificate not for the request's keys (the agent's own, another agent's) is refused; the CA's is forwarded.
    let own = w.agents["edge-1"].cert.clone();
    let peers = w.agents["edge-2"].cert.clone();
    for wrong in [own, peers] {
        assert!(w.engine.renewal_certificate(&a, &wrong).is_err());
    }
    let out = w.engine.renewal_certificate(&a, &green.cert).unwrap();
    assert!(matches!(
        out.as_slice(),
        [o] if o.to == a && matches!(&o.msg, Down::RenewalCertificate(c) if c.cert == green.cert)
    ));
    assert_eq!(
        w.engine.store.renewal(&a).unwrap().unwrap().state,
        RenewalState::Certified
    );
    // Registering again with blue: the certificate is sent again.
    let held = vec![wire::Held {
        credential_id: id,
        version: 1,
    }];
    let out = w.register(&a, RegistrationMode::WarmReconnect, held.clone());
    assert!(out
        .iter()
        .any(|o| matches!(&o.msg, Down::RenewalCertificate(c) if c.cert == green.cert)));

    // The agent validates green: a warm registration with the green certificate (no fan-out), then its receipt.
    let blue = w.agents.insert("edge-1".into(), green).unwrap();
    let out = w.register(&a, RegistrationMode::WarmReconnect, held);
    assert!(!out
        .iter()
        .any(|o| matches!(o.msg, Down::RewrapRequest(_) | Down::CredentialStore(_))));
    assert!(!out
        .iter()
        .any(|o| matches!(o.msg, Down::RenewalCertificate(_))));
    let agent = w.engine.store.agent(&a).unwrap().unwrap();
    assert_eq!(agent.cert, w.agents["edge-1"].cert);
    assert_eq!(agent.previous_cert, Some(blue.cert.clone()));
    assert_eq!(w.row(&id, &a).state, DeliveryState::Stored);
    let green_cert = certificate(&w, &a);
    let blue_serial = serial_of(&w, &blue.cert);
    // A completion signed by blue (not the certificate it switched to) is dropped.
    let by_blue = w.org.receipt(
        &blue,
        ReceiptFact::Rotated {
            previous_serial: blue_serial.clone(),
            serial: green_cert.serial.clone(),
        },
    );
    w.up(
        &a,
        &Up::RotationCompleted(RotationCompleted { receipt: by_blue }),
    );
    assert_ne!(
        w.engine.store.renewal(&a).unwrap().unwrap().state,
        RenewalState::Completed
    );
    let receipt = w.org.receipt(
        &w.agents["edge-1"],
        ReceiptFact::Rotated {
            previous_serial: blue_serial,
            serial: green_cert.serial,
        },
    );
    w.up(
        &a,
        &Up::RotationCompleted(RotationCompleted {
            receipt: receipt.clone(),
        }),
    );
    let rec = w.engine.store.renewal(&a).unwrap().unwrap();
    assert_eq!(rec.state, RenewalState::Completed);
    assert_eq!(rec.receipt, Some(receipt));
    assert!(w.audit_kinds().iter().any(|k| k == "rotation_completed"));
    // Receipts signed with blue during the grace period still verify (the previous certificate is kept).
    assert!(w
        .engine
        .verify_receipt(
            &a,
            Some(&w.org.receipt(
                &blue,
                ReceiptFact::Purged {
                    credential_id: id,
                    version: 1,
                    scope_revision: None,
                }
            ))
        )
        .unwrap()
        .is_ok());
}

#[test]
fn a_new_wrap_key_reseals_rewraps_still_waiting_for_their_peer() {
    let mut w = World::new();
    let (peer, id, commitment) = w.seeded_peer("edge-2", "db", "pw");
    let a = w.agent("edge-1");
    let out = w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let (_, first) = rewrap_msg(&out);
    assert_eq!(first.target_cert, w.agents["edge-1"].cert);
    // The agent comes back with its renewed certificate before the peer answered.
    let (request, green) = renewal(&w, &a);
    queue(&mut w, &a, &request);
    w.engine.renewal_certificate(&a, &green.cert).unwrap();
    w.agents.insert("edge-1".into(), green);
    let out = w.register(&a, RegistrationMode::WarmReconnect, vec![]);
    let (to, again) = rewrap_msg(&out);
    assert_eq!(to, peer);
    assert_ne!(again.request_id, first.request_id);
    assert_eq!(
        again.target_cert, w.agents["edge-1"].cert,
        "asked again for the new key"
    );
    assert!(w
        .engine
        .store
        .audit()
        .unwrap()
        .iter()
        .any(|e| e.kind == "rewrap_final" && e.data["result"] == "resealed"));
    // The first request's answer now fails binding 4; the new one completes.
    w.complete_honestly(&peer, &again, "pw", commitment);
    assert_eq!(w.row(&id, &a).state, DeliveryState::Stored);
}

#[test]
fn a_failed_validation_raises_the_rotation_alert() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let (request, green) = renewal(&w, &a);
    queue(&mut w, &a, &request);
    w.engine.renewal_certificate(&a, &green.cert).unwrap();
    let serial = serial_of(&w, &green.cert);
    w.up(
        &a,
        &Up::RotationFailed(RotationFailed {
            serial,
            reason: RotationFailure::BrokerRefused,
            retry_at: 0,
        }),
    );
    let rec = w.engine.store.renewal(&a).unwrap().unwrap();
    assert_eq!(rec.state, RenewalState::Failed);
    assert_eq!(rec.failure, Some(RotationFailure::BrokerRefused));
    assert!(w
        .engine
        .store
        .alerts()
        .unwrap()
        .iter()
        .any(|al| al.kind == AlertKind::AgentRotationFailed && al.subject == "agent=edge-1"));
}

#[test]
fn certificate_expiring_is_raised_in_the_last_fifth_of_a_lifetime_without_a_renewal() {
    let mut w = World::new();
    // Valid from "now" for 10 days; the reconciler runs every minute.
    let t = w.org.agent_from("edge-1", w.org.at, 10);
    let a = t.id.clone();
    w.agents.insert("edge-1".into(), t);
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let expiring = |w: &World| {
        w.engine
            .store
            .alerts()
            .unwrap()
            .iter()
            .any(|al| al.kind == AlertKind::CertificateExpiring)
    };
    w.clock.advance(7 * 86_400_000);
    w.engine.tick();
    assert!(!expiring(&w), "70% of the lifetime: not yet");
    w.clock.advance(86_400_000 + 3_600_000);
    w.engine.tick();
    assert!(expiring(&w), "past 80%, no renewal certified");
}

#[test]
fn a_purge_left_unacknowledged_raises_the_overdue_alert_after_the_configured_time() {
    let mut w = World::new();
    let (p, id, _) = w.seeded_peer("edge-1", "db", "pw");
    w.engine
        .tombstone_credential(&id, &w.org.tombstone(id, "db", 1))
        .unwrap();
    let overdue = |w: &World| {
        w.engine
            .store
            .alerts()
            .unwrap()
            .iter()
            .any(|al| al.kind == AlertKind::CredentialPurgeOverdue)
    };
    w.clock.advance(23 * 3_600_000);
    w.engine.tick();
    assert!(!overdue(&w));
    w.clock.advance(3_600_000 + 60_000);
    w.engine.tick();
    assert!(overdue(&w));
    // Acknowledged (a new tombstone round would start the clock again); no alert for purged rows.
    w.purge_ack(&p, id, 1);
    assert_eq!(w.row(&id, &p).purge, Some(crate::state::PurgeState::Purged));
}

#[test]
fn an_older_renewal_request_replayed_does_not_reopen_a_rotation() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let (old, _) = renewal(&w, &a);
    // A later request of the same agent (it asked again, with new keys).
    let identity = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let newer = RenewalRequest::new(
        &certificate(&w, &a),
        &w.agents["edge-1"].identity,
        &identity,
        wrap.public_key(),
        old.body.created_at + 10,
    )
    .unwrap();
    queue(&mut w, &a, &newer);
    queue(&mut w, &a, &old);
    assert_eq!(
        w.engine.store.renewal(&a).unwrap().unwrap().request,
        newer,
        "the replayed older request did not replace the newer one"
    );
}
