use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::*;
use crate::cert::{EnrollmentRequest, OrgCa, Validity};
use crate::envelope::WrapPrivateKey;
use crate::statement::RevocationList;

const NOW: i64 = 1_790_000_000;

struct Fx {
    key: IdentityKey,
    cert: AgentCertificate,
    other: AgentCertificate,
}

fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(|| {
        let ca = OrgCa::generate("Acme", Validity::days_from(NOW, 3650)).unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        let issue = |id: &str, key: &IdentityKey| {
            let req = EnrollmentRequest::new(
                AgentId::new(id).unwrap(),
                key,
                wrap.public_key(),
                BTreeMap::new(),
                NOW,
            )
            .unwrap();
            let der = ca.issue_agent(&req, Validity::days_from(NOW, 30)).unwrap();
            ca.pinned()
                .verify_agent(&der, NOW, &RevocationList::empty())
                .unwrap()
        };
        let key = IdentityKey::generate().unwrap();
        let cert = issue("edge-1", &key);
        let other = issue("edge-2", &IdentityKey::generate().unwrap());
        Fx { key, cert, other }
    })
}

fn cid(n: u8) -> CredentialId {
    format!("00000000-0000-4000-8000-0000000000{n:02}")
        .parse()
        .unwrap()
}

fn stored() -> ReceiptFact {
    ReceiptFact::Stored {
        delivery_id: uuid::Uuid::from_u128(7),
        credential_id: cid(9),
        version: 3,
        digest: Commitment([5; 32]),
    }
}

fn signed(at: i64, fact: ReceiptFact) -> Receipt {
    let f = fx();
    Receipt::sign(
        &ReceiptBody::new(f.cert.agent_id.clone(), f.cert.serial.clone(), at, fact),
        &f.key,
    )
    .unwrap()
}

#[test]
fn a_receipt_verifies_against_its_certificate() {
    let r = signed(NOW, stored());
    let body = r.verify(&fx().cert).unwrap();
    assert_eq!(body.fact, stored());
    assert_eq!(body.agent, fx().cert.agent_id);
    // It round-trips through JSON unchanged (the relay stores it as it came).
    let back: Receipt = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.verify(&fx().cert).unwrap(), body);
}

#[test]
fn another_agents_certificate_does_not_verify_it() {
    let r = signed(NOW, stored());
    assert!(matches!(
        r.verify(&fx().other),
        Err(ReceiptError::WrongSigner { .. })
    ));
}

#[test]
fn an_altered_fact_or_a_foreign_signature_is_refused() {
    let r = signed(NOW, stored());
    // The relay edits the version in the payload (kept canonical): the signature no longer verifies.
    let text = String::from_utf8(r.payload.clone()).unwrap();
    let mut altered = r.clone();
    altered.payload = text.replace("\"version\":3", "\"version\":4").into_bytes();
    assert_eq!(
        altered.verify(&fx().cert).unwrap_err(),
        ReceiptError::BadSignature
    );
    // A receipt the relay signs itself, naming the agent's certificate.
    let relay_key = IdentityKey::generate().unwrap();
    let body = ReceiptBody::new(
        fx().cert.agent_id.clone(),
        fx().cert.serial.clone(),
        NOW,
        stored(),
    );
    let forged = Receipt::sign(&body, &relay_key).unwrap();
    assert_eq!(
        forged.verify(&fx().cert).unwrap_err(),
        ReceiptError::BadSignature
    );
}

#[test]
fn a_receipt_outside_the_certificates_validity_is_refused() {
    let late = signed(fx().cert.not_after + 1, stored());
    assert_eq!(
        late.verify(&fx().cert).unwrap_err(),
        ReceiptError::OutsideValidity {
            at: fx().cert.not_after + 1
        }
    );
}

#[test]
fn non_canonical_unknown_or_oversized_payloads_are_malformed() {
    let r = signed(NOW, stored());
    let mut spaced = r.clone();
    spaced.payload = format!(" {}", String::from_utf8(r.payload).unwrap()).into_bytes();
    assert!(matches!(spaced.claimed(), Err(ReceiptError::Malformed(_))));
    let mut huge = signed(NOW, stored());
    huge.payload = vec![b'a'; MAX_RECEIPT_PAYLOAD + 1];
    assert!(matches!(huge.claimed(), Err(ReceiptError::Malformed(_))));
    // An unknown key inside the fact (serde's deny_unknown_fields on the tagged enum).
    let body = serde_json::json!({
        "agent": "edge-1", "at": NOW, "kind": RECEIPT_KIND, "signer_serial": "01",
        "fact": {"type": "purged", "credential_id": cid(1).to_string(), "version": 1, "extra": 1}
    });
    let bytes = canonical::to_vec(&body).unwrap();
    let r = Receipt {
        payload: bytes,
        signature: Vec::new(),
    };
    assert!(matches!(r.claimed(), Err(ReceiptError::Malformed(_))));
}

#[test]
fn rotated_and_purged_facts_round_trip() {
    for fact in [
        ReceiptFact::Purged {
            credential_id: cid(1),
            version: 2,
            scope_revision: None,
        },
        ReceiptFact::Rotated {
            previous_serial: CertSerial::try_from("0a0b".to_owned()).unwrap(),
            serial: fx().cert.serial.clone(),
        },
    ] {
        assert_eq!(
            signed(NOW, fact.clone()).verify(&fx().cert).unwrap().fact,
            fact
        );
    }
}
