use tessera_proto::envelope::{seal, Envelope};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::Scope;

use super::*;
use crate::fixtures::{store, Org, TestAgent, NOW};

struct Setup {
    org: Org,
    me: TestAgent,
    keys: crate::identity::AgentKeys,
    store: Store,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let org = crate::fixtures::org();
    let me = org.agent("target-1");
    let keys = crate::fixtures::keys(&org, &me);
    let (dir, store) = store();
    Setup {
        org,
        me,
        keys,
        store,
        _dir: dir,
    }
}

fn delivery(
    s: &Setup,
    id: CredentialId,
    version: u64,
    scope: Scope,
    secret: &str,
) -> CredentialStore {
    let (statement, _, payload) = s.org.credential(id, version, "db", scope, secret);
    let envelope = seal(s.me.wrap.public_key(), payload.bytes()).unwrap();
    CredentialStore {
        delivery_id: uuid::Uuid::new_v4(),
        statement,
        envelope,
        request_id: None,
        target_key: None,
    }
}

fn store_it(s: &Setup, msg: &CredentialStore) {
    match check(&s.keys, &s.store, msg).unwrap() {
        Accepted::New(c) => s.store.accept(&[*c], NOW).unwrap(),
        Accepted::AlreadyHeld { .. } => {}
    }
}

fn reason(r: Result<Accepted, Refused>) -> StoreOutcome {
    r.expect_err("must be refused").outcome
}

fn refused(reason: RefusalReason) -> StoreOutcome {
    StoreOutcome::Refused { reason }
}

#[test]
fn accepts_a_correct_delivery() {
    let s = setup();
    let id = CredentialId::random();
    let msg = delivery(&s, id, 1, Scope::All, "pw");
    let Accepted::New(c) = check(&s.keys, &s.store, &msg).unwrap() else {
        panic!("not new")
    };
    assert_eq!(c.statement.credential_id, id);
    s.store.accept(&[*c], NOW).unwrap();
    // The same delivery again is acknowledged without a write.
    assert!(matches!(
        check(&s.keys, &s.store, &msg).unwrap(),
        Accepted::AlreadyHeld { version: 1, .. }
    ));
}

#[test]
fn commitment_swap_is_a_mismatch() {
    // The relay ships credential A's envelope under credential B's statement.
    let s = setup();
    let a = delivery(&s, CredentialId::random(), 1, Scope::All, "A");
    let mut b = delivery(&s, CredentialId::random(), 1, Scope::All, "B");
    b.envelope = a.envelope;
    assert_eq!(reason(check(&s.keys, &s.store, &b)), StoreOutcome::Mismatch);
}

#[test]
fn injected_plaintext_is_a_mismatch() {
    // Public keys are public: the relay seals a plaintext of its choice to our key.
    let s = setup();
    let mut msg = delivery(&s, CredentialId::random(), 1, Scope::All, "real");
    let evil = SecretPayload::from_plain_text("attacker-chosen").unwrap();
    msg.envelope = seal(s.me.wrap.public_key(), evil.bytes()).unwrap();
    assert_eq!(
        reason(check(&s.keys, &s.store, &msg)),
        StoreOutcome::Mismatch
    );
    assert!(s.store.list().unwrap().is_empty());
}

#[test]
fn forged_or_foreign_statements_are_refused() {
    let s = setup();
    let id = CredentialId::random();
    let mut msg = delivery(&s, id, 1, Scope::All, "pw");
    // A statement from another org's operator, with a commitment that matches its plaintext.
    let rogue = crate::fixtures::org();
    let (statement, _, payload) = rogue.credential(id, 1, "db", Scope::All, "evil");
    msg.statement = statement;
    msg.envelope = seal(s.me.wrap.public_key(), payload.bytes()).unwrap();
    assert_eq!(
        reason(check(&s.keys, &s.store, &msg)),
        refused(RefusalReason::BadStatement)
    );
    // A statement altered after signing.
    let mut msg = delivery(&s, id, 1, Scope::All, "pw");
    msg.statement.payload[10] ^= 1;
    assert_eq!(
        reason(check(&s.keys, &s.store, &msg)),
        refused(RefusalReason::BadStatement)
    );
}

#[test]
fn out_of_scope_is_refused() {
    let s = setup();
    let msg = delivery(
        &s,
        CredentialId::random(),
        1,
        Scope::explicit([AgentId::new("x").unwrap()]),
        "pw",
    );
    assert_eq!(
        reason(check(&s.keys, &s.store, &msg)),
        refused(RefusalReason::NotInScope)
    );
}

#[test]
fn rollback_to_an_older_version_is_refused() {
    let s = setup();
    let id = CredentialId::random();
    let v1 = delivery(&s, id, 1, Scope::All, "old");
    store_it(&s, &delivery(&s, id, 2, Scope::All, "new"));
    assert_eq!(
        reason(check(&s.keys, &s.store, &v1)),
        refused(RefusalReason::StaleVersion)
    );
    // The same version with another (validly signed) commitment is refused too.
    let conflicting = delivery(&s, id, 2, Scope::All, "conflict");
    assert_eq!(
        reason(check(&s.keys, &s.store, &conflicting)),
        refused(RefusalReason::StaleVersion)
    );
}

#[test]
fn tampered_envelopes_are_refused() {
    let s = setup();
    let msg = delivery(&s, CredentialId::random(), 1, Scope::All, "pw");
    let flip = |field: &str| -> Envelope {
        let mut e = msg.envelope.clone();
        let target = match field {
            "encrypted_key" => &mut e.encrypted_key,
            "iv" => &mut e.iv,
            "ciphertext" => &mut e.ciphertext,
            _ => &mut e.tag,
        };
        let mut bytes = tessera_proto::b64_decode(target).unwrap();
        bytes[0] ^= 1;
        *target = tessera_proto::b64_encode(&bytes);
        e
    };
    for field in ["encrypted_key", "iv", "ciphertext", "tag"] {
        let mut m = msg.clone();
        m.envelope = flip(field);
        assert_eq!(
            reason(check(&s.keys, &s.store, &m)),
            refused(RefusalReason::BadEnvelope),
            "{field}"
        );
    }
    // Sealed to another agent's key.
    let mut m = msg.clone();
    let other = s.org.agent("other");
    m.envelope = seal(
        other.wrap.public_key(),
        &SecretBytes::copy_from(br#"{"secret":"pw"}"#),
    )
    .unwrap();
    assert_eq!(
        reason(check(&s.keys, &s.store, &m)),
        refused(RefusalReason::BadEnvelope)
    );
}

#[test]
fn non_canonical_plaintext_is_refused() {
    let s = setup();
    let mut msg = delivery(&s, CredentialId::random(), 1, Scope::All, "pw");
    msg.envelope = seal(
        s.me.wrap.public_key(),
        &SecretBytes::copy_from(b"{ \"secret\" : \"pw\" }"),
    )
    .unwrap();
    assert_eq!(
        reason(check(&s.keys, &s.store, &msg)),
        refused(RefusalReason::BadPayload)
    );
}

fn delivery_named(
    s: &Setup,
    id: CredentialId,
    version: u64,
    name: &str,
    secret: &str,
) -> CredentialStore {
    let (statement, _, payload) = s.org.credential(id, version, name, Scope::All, secret);
    CredentialStore {
        delivery_id: uuid::Uuid::new_v4(),
        statement,
        envelope: seal(s.me.wrap.public_key(), payload.bytes()).unwrap(),
        request_id: None,
        target_key: None,
    }
}

#[test]
fn a_replayed_statement_of_a_deleted_credential_cannot_take_its_name() {
    // The operator deleted `db` (id A) and created a new `db` (id B); this agent holds B. The relay re-sends A's
    // delivery, still validly signed: refused before anything is stored, and audited.
    let s = setup();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    let old = delivery_named(&s, a, 1, "db", "deleted-secret");
    store_it(&s, &delivery_named(&s, b, 1, "db", "current-secret"));
    assert_eq!(
        reason(check(&s.keys, &s.store, &old)),
        refused(RefusalReason::NameBoundToOtherId)
    );
    assert_eq!(s.store.newest_version(&a).unwrap(), None);
    assert!(s.store.credential(&a).unwrap().is_none());
    let served = s
        .store
        .credential_by_name(&tessera_proto::ids::CredentialName::new("db").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(served.statement.credential_id, b);
    let log = s.store.audit_log().unwrap();
    let entry = log.last().unwrap();
    assert_eq!(entry.op, "delivery");
    assert_eq!(entry.name.as_deref(), Some("db"));
    assert_eq!(entry.outcome, crate::store::AuditOutcome::Refused);
    let detail = entry.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("NAME_BOUND_TO_OTHER_ID") && detail.contains(&a.to_string()),
        "{detail}"
    );
    // Other names and newer versions of the bound id are unaffected.
    store_it(&s, &delivery_named(&s, a, 1, "other", "x"));
    store_it(&s, &delivery_named(&s, b, 2, "db", "rotated"));
    assert_eq!(s.store.newest_version(&b).unwrap(), Some(2));
}

#[test]
fn the_first_id_under_a_name_keeps_it() {
    // An agent that held A and never B: B's delivery under A's name is refused the same way (the rebinding an
    // operator tombstone will allow later).
    let s = setup();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    store_it(&s, &delivery_named(&s, a, 1, "db", "first"));
    assert_eq!(
        reason(check(
            &s.keys,
            &s.store,
            &delivery_named(&s, b, 1, "db", "second")
        )),
        refused(RefusalReason::NameBoundToOtherId)
    );
    assert_eq!(s.store.newest_version(&b).unwrap(), None);
}

#[test]
fn during_a_rotation_an_envelope_opens_with_either_wrap_key_whatever_the_hint() {
    // The agent holds a second wrap key (green while it is validated, blue after the switch): an envelope sealed to
    // either opens, with a right hint, a wrong hint, or none; one sealed to a key it does not hold does not.
    let mut s = setup();
    let other = tessera_proto::envelope::WrapPrivateKey::generate().unwrap();
    let other_fp = other.public_key().fingerprint();
    let own_fp = s.keys.wrap.public_key().fingerprint();
    let (statement, _, payload) =
        s.org
            .credential(CredentialId::random(), 1, "rotating", Scope::All, "s");
    let to_other = CredentialStore {
        delivery_id: uuid::Uuid::new_v4(),
        statement: statement.clone(),
        envelope: seal(other.public_key(), payload.bytes()).unwrap(),
        request_id: None,
        target_key: None,
    };
    let refused = check(&s.keys, &s.store, &to_other).unwrap_err();
    assert_eq!(
        refused.outcome,
        StoreOutcome::Refused {
            reason: RefusalReason::BadEnvelope
        }
    );
    s.keys.decrypt_only.push(other);
    for hint in [None, Some(other_fp), Some(own_fp)] {
        let msg = CredentialStore {
            target_key: hint,
            ..to_other.clone()
        };
        assert!(matches!(
            check(&s.keys, &s.store, &msg).unwrap(),
            Accepted::New(_)
        ));
    }
}
