use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::envelope::open;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::statement::{RevocationList, Scope};

use super::*;
use crate::fixtures::{store, Org, TestAgent, NOW};
use crate::store::NewCredential;

struct Setup {
    org: Org,
    peer: crate::identity::AgentKeys,
    target: TestAgent,
    store: Store,
    _dir: tempfile::TempDir,
    id: CredentialId,
}

fn setup(scope: Scope) -> Setup {
    let org = crate::fixtures::org();
    let peer = crate::fixtures::keys(&org, &org.agent("peer-1"));
    let target = org.agent("target-1");
    let (dir, store) = store();
    let id = CredentialId::random();
    let (signed, statement, payload) = org.credential(id, 2, "db", scope, "s3cret");
    store
        .accept(
            &[NewCredential {
                statement,
                signed,
                payload,
            }],
            NOW,
        )
        .unwrap();
    Setup {
        org,
        peer,
        target,
        store,
        _dir: dir,
        id,
    }
}

fn request(s: &Setup) -> RewrapRequest {
    let held = s.store.credential(&s.id).unwrap().unwrap();
    RewrapRequest {
        request_id: uuid::Uuid::new_v4(),
        nonce: [7; 32],
        credential_id: s.id,
        version: 2,
        statement: held.signed,
        target: s.target.id.clone(),
        target_cert: s.target.cert.clone(),
    }
}

fn refusal(s: &Setup, req: &RewrapRequest) -> RefusalReason {
    match answer(&s.peer, &s.store, req, NOW) {
        Up::RewrapRefused(r) => {
            assert_eq!(r.nonce, req.nonce);
            r.reason
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn seals_to_the_certified_key_with_the_four_bindings() {
    let s = setup(Scope::All);
    let req = request(&s);
    let Up::RewrapResponse(r) = answer(&s.peer, &s.store, &req, NOW) else {
        panic!("refused")
    };
    assert_eq!((r.request_id, r.nonce), (req.request_id, req.nonce));
    assert_eq!(r.peer, s.peer.id);
    assert_eq!((r.credential_id, r.version), (s.id, 2));
    assert_eq!(r.target_key, s.target.wrap.public_key().fingerprint());
    let plain = open(&s.target.wrap, &r.envelope).unwrap();
    plain.expose(|p| assert_eq!(p, br#"{"secret":"s3cret"}"#));
}

#[test]
fn refuses_a_certificate_from_another_ca() {
    let s = setup(Scope::All);
    let rogue = crate::fixtures::org().agent("target-1");
    let mut req = request(&s);
    req.target_cert = rogue.cert;
    assert_eq!(refusal(&s, &req), RefusalReason::UntrustedTarget);
    req.target_cert = b"garbage".to_vec();
    assert_eq!(refusal(&s, &req), RefusalReason::UntrustedTarget);
}

#[test]
fn refuses_an_operator_certificate_as_target() {
    let s = setup(Scope::All);
    let mut req = request(&s);
    req.target_cert = s.org.operator_cert.clone();
    assert_eq!(refusal(&s, &req), RefusalReason::UntrustedTarget);
}

#[test]
fn refuses_expired_and_revoked_targets() {
    let s = setup(Scope::All);
    let req = request(&s);
    assert_eq!(
        match answer(&s.peer, &s.store, &req, NOW + 400 * 86_400) {
            Up::RewrapRefused(r) => r.reason,
            other => panic!("{other:?}"),
        },
        RefusalReason::TargetExpired
    );
    let serial = s
        .org
        .ca
        .pinned()
        .verify_agent(&s.target.cert, NOW, &RevocationList::empty())
        .unwrap()
        .serial;
    let mut peer = crate::fixtures::keys(&s.org, &s.org.agent("peer-2"));
    peer.revocations = RevocationList::new(1, NOW, [serial]);
    match answer(&peer, &s.store, &req, NOW) {
        Up::RewrapRefused(r) => assert_eq!(r.reason, RefusalReason::TargetRevoked),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_a_certificate_naming_another_agent() {
    let s = setup(Scope::All);
    let mut req = request(&s);
    req.target = AgentId::new("someone-else").unwrap();
    assert_eq!(refusal(&s, &req), RefusalReason::TargetMismatch);
}

#[test]
fn refuses_targets_outside_the_signed_scope() {
    let s = setup(Scope::explicit([AgentId::new("other").unwrap()]));
    assert_eq!(refusal(&s, &request(&s)), RefusalReason::NotInScope);
}

#[test]
fn a_replayed_older_scope_cannot_widen_access() {
    // Held: revision 0 with scope {other}. The relay replays a statement with revision 0 and scope All
    // signed... by a rogue CA's operator: refused outright. With a real older revision, the held scope wins.
    let s = setup(Scope::explicit([AgentId::new("other").unwrap()]));
    let held = s.store.credential(&s.id).unwrap().unwrap();
    let mut wider = held.statement.clone();
    wider.scope = Scope::All;
    let signed =
        tessera_proto::statement::Signed::sign(&wider, &s.org.operator_key, &s.org.operator_cert)
            .unwrap();
    let mut req = request(&s);
    req.statement = signed;
    assert_eq!(
        refusal(&s, &req),
        RefusalReason::NotInScope,
        "same revision must not replace the held scope"
    );
    // A newer revision (a grant) is adopted and remembered.
    wider.scope_revision = 1;
    let signed =
        tessera_proto::statement::Signed::sign(&wider, &s.org.operator_key, &s.org.operator_cert)
            .unwrap();
    req.statement = signed;
    assert!(matches!(
        answer(&s.peer, &s.store, &req, NOW),
        Up::RewrapResponse(_)
    ));
    assert_eq!(
        s.store
            .credential(&s.id)
            .unwrap()
            .unwrap()
            .statement
            .scope_revision,
        1
    );
}

#[test]
fn refuses_bad_statements() {
    let s = setup(Scope::All);
    // Signed by an operator of another CA.
    let rogue = crate::fixtures::org();
    let (signed, _, _) = rogue.credential(s.id, 2, "db", Scope::All, "s3cret");
    let mut req = request(&s);
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::BadStatement);
    // For another credential.
    let (signed, _, _) = s
        .org
        .credential(CredentialId::random(), 2, "db", Scope::All, "x");
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::BadStatement);
    // Same id and version, another commitment.
    let (signed, _, _) = s
        .org
        .credential(s.id, 2, "db", Scope::All, "other plaintext");
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::BadStatement);
    // Tampered signature.
    let mut req = request(&s);
    let last = req.statement.signature.len() - 1;
    req.statement.signature[last] ^= 1;
    assert_eq!(refusal(&s, &req), RefusalReason::BadStatement);
}

#[test]
fn refuses_unknown_credentials_and_other_versions() {
    let s = setup(Scope::All);
    let id = CredentialId::random();
    let (signed, _, _) = s.org.credential(id, 1, "x", Scope::All, "x");
    let mut req = request(&s);
    req.credential_id = id;
    req.version = 1;
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::UnknownCredential);
    let (signed, _, _) = s.org.credential(s.id, 3, "db", Scope::All, "newer");
    let mut req = request(&s);
    req.version = 3;
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::StaleVersion);
}

#[test]
fn never_encrypts_to_a_key_the_relay_names() {
    // The request has no field for a key; the only key used is the certificate's. A certificate for the target
    // from a rogue CA carrying the attacker's wrap key is refused (above); here a valid certificate of the
    // target is paired with a rogue CA's signed statement: still refused, nothing sealed.
    let s = setup(Scope::All);
    let ca = OrgCa::generate("Rogue", Validity::days_from(NOW - 10, 10)).unwrap();
    let mut req = request(&s);
    req.target_cert = ca.cert_der().to_vec();
    assert_eq!(refusal(&s, &req), RefusalReason::UntrustedTarget);
}

#[test]
fn refuses_a_statement_whose_name_is_bound_to_another_id() {
    // We hold `db` (s.id). The relay asks us to rewrap another, validly signed credential `db` (say, a deleted
    // one): refused before anything is read or stored, and audited.
    let s = setup(Scope::All);
    let other = CredentialId::random();
    let (signed, _, _) = s.org.credential(other, 1, "db", Scope::All, "deleted");
    let mut req = request(&s);
    req.credential_id = other;
    req.version = 1;
    req.statement = signed;
    assert_eq!(refusal(&s, &req), RefusalReason::NameBoundToOtherId);
    assert!(s.store.credential(&other).unwrap().is_none());
    let entry = s.store.audit_log().unwrap().pop().unwrap();
    assert_eq!(entry.op, "rewrap");
    assert_eq!(entry.outcome, crate::store::AuditOutcome::Refused);
    assert!(entry.detail.unwrap().starts_with("NAME_BOUND_TO_OTHER_ID"));
}

#[test]
fn a_quarantined_credential_is_not_rewrapped() {
    let s = setup(Scope::All);
    s.store.apply_revocations(b"{}", 1, &[s.id], NOW).unwrap();
    // Flagged but not quarantined: still rewrapped.
    assert!(matches!(
        answer(&s.peer, &s.store, &request(&s), NOW),
        Up::RewrapResponse(_)
    ));
    s.store.set_quarantine_revoked_signers(true);
    assert_eq!(refusal(&s, &request(&s)), RefusalReason::Quarantined);
}

/// A batched request for the setup's credential, another held one, and one this peer does not hold.
fn batch_request(s: &Setup) -> (RewrapBatchRequest, CredentialId, CredentialId) {
    let second = CredentialId::random();
    let (signed, statement, payload) = s.org.credential(second, 1, "api", Scope::All, "k3y");
    s.store
        .accept(
            &[NewCredential {
                statement,
                signed,
                payload,
            }],
            NOW,
        )
        .unwrap();
    let unknown = CredentialId::random();
    let (unknown_signed, _, _) = s.org.credential(unknown, 1, "gone", Scope::All, "x");
    let item = |id: CredentialId, version: u64, statement, n: u8| tessera_proto::wire::RewrapItem {
        request_id: uuid::Uuid::new_v4(),
        nonce: [n; 32],
        credential_id: id,
        version,
        statement,
    };
    let held = |id| s.store.credential(&id).unwrap().unwrap().signed;
    let req = RewrapBatchRequest {
        batch_id: uuid::Uuid::new_v4(),
        target: s.target.id.clone(),
        target_cert: s.target.cert.clone(),
        items: vec![
            item(s.id, 2, held(s.id), 1),
            item(unknown, 1, unknown_signed, 2),
            item(second, 1, held(second), 3),
        ],
    };
    (req, second, unknown)
}

#[test]
fn a_batch_seals_every_good_item_in_one_envelope_and_refuses_the_others_alone() {
    let s = setup(Scope::All);
    let (req, second, unknown) = batch_request(&s);
    let mut answers = answer_batch(&s.peer, &s.store, &req, NOW);
    assert_eq!(answers.len(), 1);
    let Up::RewrapBatchResponse(r) = answers.remove(0) else {
        panic!("not a batch response")
    };
    assert_eq!(r.batch_id, req.batch_id);
    assert_eq!(r.peer, s.peer.id);
    assert_eq!(r.target_key, Some(s.target.wrap.public_key().fingerprint()));
    // The bindings echo each item's own request id and nonce.
    let sealed: Vec<_> = r
        .sealed
        .iter()
        .map(|i| (i.request_id, i.nonce, i.credential_id, i.version))
        .collect();
    assert_eq!(
        sealed,
        [
            (req.items[0].request_id, [1; 32], s.id, 2),
            (req.items[2].request_id, [3; 32], second, 1)
        ]
    );
    assert_eq!(r.refused.len(), 1);
    assert_eq!(
        (
            r.refused[0].request_id,
            r.refused[0].nonce,
            r.refused[0].reason
        ),
        (
            req.items[1].request_id,
            [2; 32],
            RefusalReason::UnknownCredential
        )
    );
    // One envelope, sealed to the target's certified key, carrying exactly the sealed items.
    let items = batch::open(&s.target.wrap, r.envelope.as_ref().unwrap()).unwrap();
    let opened: Vec<_> = items.iter().map(|i| (i.credential_id, i.version)).collect();
    assert_eq!(opened, [(s.id, 2), (second, 1)]);
    items[0]
        .payload
        .expose(|p| assert_eq!(p, br#"{"secret":"s3cret"}"#));
    items[1]
        .payload
        .expose(|p| assert_eq!(p, br#"{"secret":"k3y"}"#));
    assert!(!items.iter().any(|i| i.credential_id == unknown));
}

#[test]
fn a_batch_for_an_untrusted_target_is_refused_item_by_item_with_no_envelope() {
    let s = setup(Scope::All);
    let (mut req, _, _) = batch_request(&s);
    req.target_cert = crate::fixtures::org().agent("target-1").cert;
    let mut answers = answer_batch(&s.peer, &s.store, &req, NOW);
    assert_eq!(answers.len(), 1);
    let Up::RewrapBatchResponse(r) = answers.remove(0) else {
        panic!("not a batch response")
    };
    assert!(r.sealed.is_empty() && r.envelope.is_none() && r.target_key.is_none());
    assert_eq!(r.refused.len(), 3);
    assert!(r
        .refused
        .iter()
        .all(|x| x.reason == RefusalReason::UntrustedTarget));
    // The answer is a valid message (an envelope only with sealed items).
    tessera_proto::wire::encode(&Up::RewrapBatchResponse(r)).unwrap();
}

#[test]
fn a_batch_out_of_scope_for_one_item_seals_the_others() {
    let s = setup(Scope::explicit([AgentId::new("other").unwrap()]));
    let (req, second, _) = batch_request(&s);
    let mut answers = answer_batch(&s.peer, &s.store, &req, NOW);
    assert_eq!(answers.len(), 1);
    let Up::RewrapBatchResponse(r) = answers.remove(0) else {
        panic!("not a batch response")
    };
    assert_eq!(
        r.sealed.iter().map(|i| i.credential_id).collect::<Vec<_>>(),
        [second]
    );
    let reasons: Vec<_> = r.refused.iter().map(|x| x.reason).collect();
    assert_eq!(
        reasons,
        [RefusalReason::NotInScope, RefusalReason::UnknownCredential]
    );
}

#[test]
fn items_that_do_not_fit_in_the_batch_are_answered_alone() {
    let s = setup(Scope::All);
    let big = "x".repeat(60_000);
    let items: Vec<_> = (0..9u8)
        .map(|n| {
            let id = CredentialId::random();
            let (signed, statement, payload) =
                s.org
                    .credential(id, 1, &format!("big-{n}"), Scope::All, &big);
            s.store
                .accept(
                    &[NewCredential {
                        statement,
                        signed: signed.clone(),
                        payload,
                    }],
                    NOW,
                )
                .unwrap();
            tessera_proto::wire::RewrapItem {
                request_id: uuid::Uuid::new_v4(),
                nonce: [n; 32],
                credential_id: id,
                version: 1,
                statement: signed,
            }
        })
        .collect();
    let req = RewrapBatchRequest {
        batch_id: uuid::Uuid::new_v4(),
        target: s.target.id.clone(),
        target_cert: s.target.cert.clone(),
        items: items.clone(),
    };
    let answers = answer_batch(&s.peer, &s.store, &req, NOW);
    assert_eq!(answers.len(), 2, "the batch, then the one that did not fit");
    let Up::RewrapBatchResponse(r) = &answers[0] else {
        panic!("the batch answer first")
    };
    assert_eq!(r.sealed.len(), 8);
    assert!(r.refused.is_empty());
    assert_eq!(
        batch::open(&s.target.wrap, r.envelope.as_ref().unwrap())
            .unwrap()
            .len(),
        8
    );
    let Up::RewrapResponse(single) = &answers[1] else {
        panic!("a single answer for the ninth")
    };
    assert_eq!(
        (single.request_id, single.nonce, single.credential_id),
        (items[8].request_id, [8; 32], items[8].credential_id)
    );
    assert_eq!(single.target_key, s.target.wrap.public_key().fingerprint());
    open(&s.target.wrap, &single.envelope)
        .unwrap()
        .expose(|p| assert!(p.len() > 60_000));
}
