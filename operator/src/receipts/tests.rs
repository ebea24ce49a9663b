#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use tessera_proto::audit::next_entry;
use tessera_proto::cert::{IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::Commitment;
use tessera_proto::ids::CredentialId;
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::RevocationList;

use super::*;
use crate::test_certs::{issue_with_key, NOW};

struct Fx {
    ca: OrgCa,
    registry: Registry,
    cert: tessera_proto::cert::AgentCertificate,
    key: IdentityKey,
}

fn fx() -> Fx {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let (cert, key) = issue_with_key(&ca, "edge-1");
    let mut registry = Registry::default();
    registry.record(&cert, NOW);
    Fx {
        ca,
        registry,
        cert,
        key,
    }
}

fn cid() -> CredentialId {
    "00000000-0000-4000-8000-000000000001".parse().unwrap()
}

fn purged() -> ReceiptFact {
    ReceiptFact::Purged {
        credential_id: cid(),
        version: 1,
        scope_revision: None,
    }
}

fn signed(f: &Fx, key: &IdentityKey, at: i64, fact: ReceiptFact) -> Receipt {
    Receipt::sign(
        &ReceiptBody::new(f.cert.agent_id.clone(), f.cert.serial.clone(), at, fact),
        key,
    )
    .unwrap()
}

#[test]
fn a_receipt_is_checked_against_the_registry_not_against_anything_the_relay_sends() {
    let f = fx();
    let empty = RevocationList::empty();
    let good = signed(&f, &f.key, NOW + 5, purged());
    assert!(verify(&good, &f.registry, f.ca.pinned(), &empty).is_ok());
    // A key the relay holds, signing in the agent's name.
    let relay_key = IdentityKey::generate().unwrap();
    assert!(matches!(
        verify(
            &signed(&f, &relay_key, NOW + 5, purged()),
            &f.registry,
            f.ca.pinned(),
            &empty
        ),
        Err(ReceiptCheck::Invalid(_))
    ));
    // A certificate the CA's registry does not hold (say the relay's own, from another CA or never recorded).
    assert!(matches!(
        verify(&good, &Registry::default(), f.ca.pinned(), &empty),
        Err(ReceiptCheck::UnknownCertificate { .. })
    ));
    // Outside the certificate's validity.
    assert!(matches!(
        verify(
            &signed(&f, &f.key, NOW + 400 * 86_400, purged()),
            &f.registry,
            f.ca.pinned(),
            &empty
        ),
        Err(ReceiptCheck::Invalid(_))
    ));
}

#[test]
fn a_revoked_signer_is_vouched_for_only_up_to_its_retirement() {
    let mut f = fx();
    let revoked = RevocationList::new(1, NOW, [f.cert.serial.clone()]);
    let early = signed(&f, &f.key, NOW + 5, purged());
    let late = signed(&f, &f.key, NOW + 50, purged());
    // Revoked by `ca revoke` (compromise): nothing it signed is vouched for.
    assert!(matches!(
        verify(&early, &f.registry, f.ca.pinned(), &revoked),
        Err(ReceiptCheck::Revoked(_))
    ));
    // Retired by a rotation at NOW + 10, then revoked: what it signed before still stands.
    let (green, _) = issue_with_key(&f.ca, "edge-1");
    f.registry
        .retire(&f.cert.agent_id, &f.cert.serial, &green.serial, NOW + 10);
    assert!(verify(&early, &f.registry, f.ca.pinned(), &revoked).is_ok());
    assert!(matches!(
        verify(&late, &f.registry, f.ca.pinned(), &revoked),
        Err(ReceiptCheck::Revoked(_))
    ));
}

fn entry(kind: &str, data: &[(&str, String)]) -> AuditEntry {
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    next_entry(None, 0, kind, None, data)
}

#[test]
fn audit_entries_that_record_a_delivery_purge_or_rotation_need_the_matching_receipt() {
    use tessera_proto::receipt::in_audit;

    let f = fx();
    let empty = RevocationList::empty();
    let cat = Catalogue::default();
    let check = |e: &AuditEntry| check_entry(e, &f.registry, &cat, f.ca.pinned(), &empty);
    let delivery = uuid::Uuid::from_u128(3);
    let stored = |credential: CredentialId, version| ReceiptFact::Stored {
        delivery_id: delivery,
        credential_id: credential,
        version,
        digest: Commitment([1; 32]),
    };
    // An entry as the relay writes it for `credential` v1, with the receipt fields of `receipt`.
    let delivered = |receipt: Option<&Receipt>| {
        let mut pairs = vec![
            ("result", "success".to_owned()),
            ("credential", cid().to_string()),
            ("version", "1".to_owned()),
            ("target", "edge-1".to_owned()),
            ("delivery", delivery.to_string()),
            ("digest", tessera_proto::b64_encode([1u8; 32])),
        ];
        if let Some(r) = receipt {
            pairs.extend(in_audit::fields(r, &r.claimed().unwrap()));
        }
        entry("rewrap_final", &pairs)
    };
    // Entries that record nothing an agent did need nothing.
    assert!(check(&entry("rewrap_pending", &[])).is_none());
    assert!(check(&entry("rewrap_final", &[("result", "exhausted".into())])).is_none());
    // A delivery without a receipt.
    assert_eq!(check(&delivered(None)), Some(Err(ReceiptCheck::Missing)));
    // A receipt of another credential, another version, another kind: its signature does not cover this entry.
    let other: CredentialId = "00000000-0000-4000-8000-000000000002".parse().unwrap();
    for wrong in [stored(other, 1), stored(cid(), 2), purged()] {
        let wrong = signed(&f, &f.key, NOW + 5, wrong);
        assert!(matches!(
            check(&delivered(Some(&wrong))),
            Some(Err(ReceiptCheck::Invalid(_)))
        ));
    }
    let receipt = signed(&f, &f.key, NOW + 5, stored(cid(), 1));
    assert_eq!(check(&delivered(Some(&receipt))), Some(Ok(())));
    // The relay edits a field of a receipted entry.
    let mut e = delivered(Some(&receipt));
    e.data.insert("version".into(), "7".into());
    assert!(matches!(check(&e), Some(Err(ReceiptCheck::Invalid(_)))));
    // The entry names another agent than the one that signed.
    let mut e = delivered(Some(&receipt));
    e.data.insert("target".into(), "edge-9".into());
    assert!(matches!(
        check(&e),
        Some(Err(ReceiptCheck::UnknownCertificate { .. }))
    ));
    // Garbage where the signature goes.
    let mut e = delivered(Some(&receipt));
    e.data.insert(in_audit::SIGNATURE.into(), "%%".into());
    assert!(matches!(check(&e), Some(Err(ReceiptCheck::Malformed(_)))));
    // A purge.
    let purge_receipt = signed(&f, &f.key, NOW + 5, purged());
    let mut pairs = vec![
        ("credential", cid().to_string()),
        ("version", "1".to_owned()),
        ("agent", "edge-1".to_owned()),
    ];
    pairs.extend(in_audit::fields(
        &purge_receipt,
        &purge_receipt.claimed().unwrap(),
    ));
    let purge = entry("credential_purged", &pairs);
    assert_eq!(check(&purge), Some(Ok(())));
    let t = tally(
        &[delivered(None), purge, delivered(Some(&receipt))],
        &f.registry,
        &cat,
        f.ca.pinned(),
        &empty,
    );
    assert_eq!((t.verified, t.by_revoked, t.bad.len()), (2, 0, 1));
    assert_eq!(t.bad[0].kind, "rewrap_final");
}
