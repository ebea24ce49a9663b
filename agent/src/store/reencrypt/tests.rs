#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::Scope;

use super::super::record::generation_of;
use super::super::{NewCredential, SelfRecord, Store, StoreKeys};
use crate::fixtures::{Org, NOW};

fn key(b: u8) -> SecretBytes {
    SecretBytes::new(vec![b; 32])
}

fn cred(org: &Org, id: CredentialId, version: u64, name: &str, secret: &str) -> NewCredential {
    let (signed, statement, payload) = org.credential(id, version, name, Scope::All, secret);
    NewCredential {
        statement,
        signed,
        payload,
    }
}

fn generations(store: &Store) -> Vec<u32> {
    store
        .inner
        .backend
        .scan_prefix(b"")
        .unwrap()
        .iter()
        .map(|(_, rec)| generation_of(rec).unwrap())
        .collect()
}

fn secret(store: &Store, name: &str) -> String {
    let c = store
        .credential_by_name(&CredentialName::new(name).unwrap())
        .unwrap()
        .unwrap();
    c.payload.expose(|b| String::from_utf8(b.to_vec()).unwrap())
}

#[test]
fn a_rotation_moves_every_record_in_bounded_batches_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let batch: Vec<_> = (0..40)
        .map(|i| {
            cred(
                &org,
                CredentialId::random(),
                1,
                &format!("c{i}"),
                &format!("s{i}"),
            )
        })
        .collect();
    store.accept(&batch, NOW).unwrap();
    store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    let total = generations(&store).len();
    assert!(generations(&store).iter().all(|g| *g == 1));

    store.begin_key_generation(2, &key(2)).unwrap();
    assert_eq!(store.key_generations().unwrap(), (2, Some(1)));
    // A second rotation is refused while this one runs.
    assert!(store.begin_key_generation(3, &key(3)).is_err());
    // Not finished while a record needs the old key.
    assert!(store.finish_key_generation().is_err());

    let mut rounds = 0;
    loop {
        let before = store.stale_records().unwrap();
        let done = store.reencrypt_batch(16).unwrap();
        assert!(done.rewritten <= 16);
        assert_eq!(store.stale_records().unwrap(), before - done.rewritten);
        rounds += 1;
        // The store keeps serving reads and writes between batches, old and new records alike.
        assert_eq!(secret(&store, "c0"), r#"{"secret":"s0"}"#);
        assert_eq!(secret(&store, "c39"), r#"{"secret":"s39"}"#);
        store
            .accept(
                &[cred(
                    &org,
                    CredentialId::random(),
                    1,
                    &format!("new{rounds}"),
                    "n",
                )],
                NOW,
            )
            .unwrap();
        if done.done {
            break;
        }
    }
    assert!(rounds >= total / 16, "{rounds} batches for {total} records");
    store.finish_key_generation().unwrap();
    assert_eq!(store.key_generations().unwrap(), (2, None));
    assert!(generations(&store).iter().all(|g| *g == 2));
    assert_eq!(store.list().unwrap().len(), 40 + rounds);
    drop(store);

    // The old key is no longer needed: the store opens with generation 2 alone, not with generation 1.
    let store = Store::open_keys(dir.path(), &StoreKeys::single(2, key(2)), 100).unwrap();
    assert_eq!(secret(&store, "c17"), r#"{"secret":"s17"}"#);
    drop(store);
    assert!(Store::open_keys(dir.path(), &StoreKeys::single(1, key(1)), 100).is_err());
}

#[test]
fn a_write_sealed_before_the_rotation_began_lands_under_the_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let k = SelfRecord::AgentId.key();
    let sealed_early = store.seal(k, 0, b"edge-1").unwrap();
    store.begin_key_generation(2, &key(2)).unwrap();
    store
        .commit_durable(vec![(k.to_vec(), Some(sealed_early))])
        .unwrap();
    let raw = store.inner.backend.get(k).unwrap().unwrap();
    assert_eq!(generation_of(&raw), Some(2));
    assert_eq!(
        store
            .get_self(SelfRecord::AgentId)
            .unwrap()
            .unwrap()
            .expose(<[u8]>::to_vec),
        b"edge-1"
    );
}

#[test]
fn an_interrupted_rotation_resumes_with_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    {
        let store = Store::open(dir.path(), &key(1), 100).unwrap();
        let batch: Vec<_> = (0..10)
            .map(|i| cred(&org, CredentialId::random(), 1, &format!("c{i}"), "s"))
            .collect();
        store.accept(&batch, NOW).unwrap();
        store.begin_key_generation(2, &key(2)).unwrap();
        store.reencrypt_batch(7).unwrap();
    }
    // Reopened after a crash mid-way: both keys load and the rotation carries on.
    let keys = StoreKeys {
        active: (2, key(2)),
        retiring: Some((1, key(1))),
    };
    let store = Store::open_keys(dir.path(), &keys, 100).unwrap();
    assert_eq!(store.list().unwrap().len(), 10);
    while !store.reencrypt_batch(7).unwrap().done {}
    store.finish_key_generation().unwrap();
    assert!(generations(&store).iter().all(|g| *g == 2));
}
