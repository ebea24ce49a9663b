use tessera_proto::cert::{IdentityKey, Validity};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::ids::{CredentialName, OperatorId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, Scope};

use super::*;
use crate::fixtures::{store, Org, NOW};
use crate::store::{CredentialStatus, NewCredential};

/// A credential signed by `bob`, a second operator of `org`; returns it and bob's certificate serial.
fn signed_by_bob(
    org: &Org,
    id: CredentialId,
    name: &str,
) -> (NewCredential, tessera_proto::cert::CertSerial) {
    let key = IdentityKey::generate().unwrap();
    let bob = OperatorId::new("bob").unwrap();
    let cert = org
        .ca
        .issue_operator(
            &bob,
            key.public_key(),
            Validity::days_from(NOW - 86_400, 365),
        )
        .unwrap();
    let serial = org
        .ca
        .pinned()
        .verify_operator(&cert, NOW, &RevocationList::empty())
        .unwrap()
        .serial;
    let payload = SecretPayload::from_plain_text("bob's").unwrap();
    let salt = Salt::random();
    let c = commitment::compute(&salt, &id, 1, &payload);
    let st = CredentialStatement::new(
        id,
        1,
        0,
        CredentialName::new(name).unwrap(),
        Scope::All,
        salt,
        c,
        bob,
        NOW,
    );
    let signed = Signed::sign(&st, &key, &cert).unwrap();
    (
        NewCredential {
            statement: st,
            signed,
            payload,
        },
        serial,
    )
}

fn alice_cred(org: &Org, id: CredentialId, name: &str) -> NewCredential {
    let (signed, statement, payload) = org.credential(id, 1, name, Scope::All, "alice's");
    NewCredential {
        statement,
        signed,
        payload,
    }
}

#[test]
fn a_newer_list_flags_exactly_the_credentials_its_signers_revoke() {
    let org = crate::fixtures::org();
    let mut keys = crate::fixtures::keys(&org, &org.agent("edge-1"));
    let (_dir, store) = store();
    let (by_bob, by_alice) = (CredentialId::random(), CredentialId::random());
    let (bob_cred, bob_serial) = signed_by_bob(&org, by_bob, "bobs");
    store
        .accept(&[bob_cred, alice_cred(&org, by_alice, "alices")], NOW)
        .unwrap();

    let list = RevocationList::new(1, NOW, [bob_serial])
        .sign(&org.ca)
        .unwrap();
    let flagged = adopt(&mut keys, &store, &list, NOW);
    assert_eq!(flagged, vec![by_bob]);
    assert_eq!(keys.revocations.serial, 1);
    assert!(store.flag(&by_bob).unwrap().is_some());
    assert!(store.flag(&by_alice).unwrap().is_none());
    // The list was stored with the flags.
    let held = crate::identity::load_revocations(&store, &keys.ca).unwrap();
    assert_eq!(held.serial, 1);
    let meta = store
        .lookup_by_name(&CredentialName::new("bobs").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(meta.status, CredentialStatus::SignerRevoked);

    // The relay hears of it.
    let ups = flagged_messages(&flagged, keys.revocations.serial);
    assert_eq!(
        ups,
        vec![Up::CredentialsFlagged(CredentialsFlagged {
            reason: FlagReason::SignerRevoked,
            list_serial: 1,
            credential_ids: vec![by_bob],
        })]
    );
    assert!(ups.iter().all(|u| tessera_proto::wire::encode(u).is_ok()));

    // Quarantine on: not served to workloads.
    store.set_quarantine_revoked_signers(true);
    assert!(matches!(
        store.credential_by_name(&CredentialName::new("bobs").unwrap()),
        Err(StoreError::Quarantined { .. })
    ));
    assert!(store
        .credential_by_name(&CredentialName::new("alices").unwrap())
        .unwrap()
        .is_some());
}

#[test]
fn an_old_or_foreign_list_changes_nothing() {
    let org = crate::fixtures::org();
    let mut keys = crate::fixtures::keys(&org, &org.agent("edge-1"));
    let (_dir, store) = store();
    let id = CredentialId::random();
    let (cred, serial) = signed_by_bob(&org, id, "bobs");
    store.accept(&[cred], NOW).unwrap();
    let newer = RevocationList::new(5, NOW, []).sign(&org.ca).unwrap();
    assert!(adopt(&mut keys, &store, &newer, NOW).is_empty());
    // Not newer than the held serial 5.
    let replayed = RevocationList::new(4, NOW, [serial.clone()])
        .sign(&org.ca)
        .unwrap();
    assert!(adopt(&mut keys, &store, &replayed, NOW).is_empty());
    // Signed by another CA.
    let rogue = crate::fixtures::org();
    let foreign = RevocationList::new(9, NOW, [serial])
        .sign(&rogue.ca)
        .unwrap();
    assert!(adopt(&mut keys, &store, &foreign, NOW).is_empty());
    assert_eq!(keys.revocations.serial, 5);
    assert!(store.flag(&id).unwrap().is_none());
}

#[test]
fn many_flags_are_split_under_the_message_cap() {
    let ids: Vec<CredentialId> = (0..=MAX_FLAGGED).map(|_| CredentialId::random()).collect();
    let ups = flagged_messages(&ids, 2);
    assert_eq!(ups.len(), 2);
    assert!(ups.iter().all(|u| tessera_proto::wire::encode(u).is_ok()));
    assert!(flagged_messages(&[], 2).is_empty());
}
