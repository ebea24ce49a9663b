use super::*;
use crate::audit::next_entry;
use crate::cert::IdentityKey;

fn entry(kind: &str, pairs: &[(&str, String)]) -> AuditEntry {
    next_entry(
        None,
        0,
        kind,
        None,
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

#[test]
fn a_receipt_survives_the_trip_through_an_audit_entry_and_an_edited_field_breaks_it() {
    let key = IdentityKey::generate().unwrap();
    let credential: crate::ids::CredentialId =
        "00000000-0000-4000-8000-000000000001".parse().unwrap();
    let delivery = uuid::Uuid::from_u128(5);
    let fact = ReceiptFact::Stored {
        delivery_id: delivery,
        credential_id: credential,
        version: 3,
        digest: Commitment([9; 32]),
    };
    let body = ReceiptBody::new(
        AgentId::new("edge-1").unwrap(),
        CertSerial::try_from("0a0b".to_owned()).unwrap(),
        1_790_000_000,
        fact,
    );
    let receipt = Receipt::sign(&body, &key).unwrap();
    let mut pairs = vec![
        ("result", "success".to_owned()),
        ("credential", credential.to_string()),
        ("version", "3".to_owned()),
        ("target", "edge-1".to_owned()),
        ("delivery", delivery.to_string()),
        ("digest", crate::b64_encode([9u8; 32])),
    ];
    pairs.extend(fields(&receipt, &body));
    let e = entry("rewrap_final", &pairs);
    assert!(needs_receipt(&e.kind, &e.data));
    assert_eq!(rebuild(&e).unwrap(), Some(receipt.clone()));
    // The relay edits the version in the entry: the rebuilt body is not what was signed.
    let mut edited = e.clone();
    edited.data.insert("version".into(), "4".into());
    let rebuilt = rebuild(&edited).unwrap().unwrap();
    assert_ne!(rebuilt.payload, receipt.payload);
    assert!(key
        .public_key()
        .verify(&rebuilt.payload, &rebuilt.signature)
        .is_err());
    // No receipt fields: none; broken ones: malformed.
    assert_eq!(rebuild(&entry("rewrap_final", &pairs[..6])).unwrap(), None);
    let mut broken = e;
    broken.data.insert(SIGNATURE.into(), "%%%".into());
    assert!(rebuild(&broken).is_err());
    assert!(!needs_receipt("rewrap_pending", &BTreeMap::new()));
}
