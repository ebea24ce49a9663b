use std::marker::PhantomData;
use std::sync::OnceLock;

use super::*;
use crate::cert::{IdentityKey, OrgCa, Validity};
use crate::commitment::{self, Salt};
use crate::ids::{CredentialId, CredentialName, OperatorId};
use crate::secret::SecretPayload;
use crate::statement::{CredentialStatement, Scope};

const NOW: i64 = 1_790_000_000;

struct Fx {
    ca: OrgCa,
    alice: IdentityKey,
    alice_cert: Vec<u8>,
    svc_cert: Vec<u8>,
    svc_key: IdentityKey,
}

fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(|| {
        let ca = OrgCa::generate("Acme", Validity::days_from(NOW, 3650)).unwrap();
        let alice = IdentityKey::generate().unwrap();
        let alice_cert = ca
            .issue_operator(
                &OperatorId::new("alice").unwrap(),
                alice.public_key(),
                Validity::days_from(NOW, 30),
            )
            .unwrap();
        let svc_key = IdentityKey::generate().unwrap();
        let svc_cert = ca
            .issue_service(
                "relay-1",
                &["localhost"],
                &[],
                svc_key.public_key(),
                Validity::days_from(NOW, 30),
            )
            .unwrap();
        Fx {
            ca,
            alice,
            alice_cert,
            svc_cert,
            svc_key,
        }
    })
}

fn tombstone() -> CredentialTombstone {
    CredentialTombstone::new(
        CredentialId::random(),
        CredentialName::new("db").unwrap(),
        3,
        OperatorId::new("alice").unwrap(),
        NOW,
    )
}

fn signed(t: &CredentialTombstone) -> Signed<CredentialTombstone> {
    Signed::sign(t, &fx().alice, &fx().alice_cert).unwrap()
}

#[test]
fn a_tombstone_signed_by_an_operator_verifies_and_survives_the_wire() {
    let t = tombstone();
    let json = serde_json::to_string(&signed(&t)).unwrap();
    assert!(json.contains("payload"), "{json}");
    let back: Signed<CredentialTombstone> = serde_json::from_str(&json).unwrap();
    let v = back
        .verify(fx().ca.pinned(), &RevocationList::empty())
        .unwrap();
    assert_eq!(v.tombstone, t);
    assert_eq!(v.signer.operator_id.as_str(), "alice");
    assert_eq!(v.tombstone.kind, TOMBSTONE_KIND);
}

#[test]
fn an_altered_tombstone_is_refused() {
    let mut st = signed(&tombstone());
    let text = String::from_utf8(st.payload.clone()).unwrap();
    st.payload = text.replace("\"version\":3", "\"version\":4").into_bytes();
    assert_eq!(
        st.verify(fx().ca.pinned(), &RevocationList::empty())
            .unwrap_err(),
        StatementError::BadSignature
    );
}

#[test]
fn creator_must_be_the_signer_and_version_at_least_one() {
    let mut t = tombstone();
    t.creator = OperatorId::new("mallory").unwrap();
    assert_eq!(
        signed(&t)
            .verify(fx().ca.pinned(), &RevocationList::empty())
            .unwrap_err(),
        StatementError::CreatorMismatch
    );
    let mut t = tombstone();
    t.version = 0;
    assert!(matches!(
        signed(&t).verify(fx().ca.pinned(), &RevocationList::empty()),
        Err(StatementError::Malformed(_))
    ));
}

#[test]
fn only_a_certified_unrevoked_operator_may_sign_a_tombstone() {
    let f = fx();
    let t = tombstone();
    // Another CA's operator certificate for the same key.
    let rogue_ca = OrgCa::generate("Acme", Validity::days_from(NOW, 10)).unwrap();
    let rogue_cert = rogue_ca
        .issue_operator(
            &OperatorId::new("alice").unwrap(),
            f.alice.public_key(),
            Validity::days_from(NOW, 10),
        )
        .unwrap();
    let forged = Signed::sign(&t, &f.alice, &rogue_cert).unwrap();
    assert!(matches!(
        forged.verify(f.ca.pinned(), &RevocationList::empty()),
        Err(StatementError::Signer(_))
    ));
    // A service certificate from the right CA (the relay's own) is not an operator's.
    let by_relay = Signed::sign(&t, &f.svc_key, &f.svc_cert).unwrap();
    assert!(matches!(
        by_relay.verify(f.ca.pinned(), &RevocationList::empty()),
        Err(StatementError::Signer(_))
    ));
    // A revoked operator.
    let serial =
        f.ca.pinned()
            .verify_operator(&f.alice_cert, NOW, &RevocationList::empty())
            .unwrap()
            .serial;
    let crl = RevocationList::new(1, NOW, [serial]);
    assert!(matches!(
        signed(&t).verify(f.ca.pinned(), &crl),
        Err(StatementError::Signer(_))
    ));
}

#[test]
fn a_credential_statement_signature_cannot_pass_as_a_tombstone() {
    let id = CredentialId::random();
    let salt = Salt::random();
    let payload = SecretPayload::from_plain_text("pw").unwrap();
    let st = CredentialStatement::new(
        id,
        1,
        0,
        CredentialName::new("db").unwrap(),
        Scope::All,
        salt,
        commitment::compute(&salt, &id, 1, &payload),
        OperatorId::new("alice").unwrap(),
        NOW,
    );
    let s = Signed::sign(&st, &fx().alice, &fx().alice_cert).unwrap();
    let confused = Signed::<CredentialTombstone> {
        payload: s.payload,
        signature: s.signature,
        signer_cert: s.signer_cert,
        body: PhantomData,
    };
    assert!(matches!(
        confused.verify(fx().ca.pinned(), &RevocationList::empty()),
        Err(StatementError::Malformed(_))
    ));
}
