use tessera_proto::statement::Scope;

use super::*;
use crate::fixtures::{Org, NOW};

fn key(b: u8) -> SecretBytes {
    SecretBytes::new(vec![b; 32])
}

fn new_cred(org: &Org, id: CredentialId, version: u64, name: &str, secret: &str) -> NewCredential {
    let (signed, statement, payload) = org.credential(id, version, name, Scope::All, secret);
    NewCredential {
        statement,
        signed,
        payload,
    }
}

fn secret_of(c: &StoredCredential) -> String {
    c.payload.expose(|b| String::from_utf8(b.to_vec()).unwrap())
}

#[test]
fn accepted_credentials_read_back_by_id_name_list_and_held() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let id = CredentialId::random();
    store
        .accept(&[new_cred(&org, id, 1, "db", "hunter2")], NOW)
        .unwrap();
    let c = store.credential(&id).unwrap().unwrap();
    assert_eq!(secret_of(&c), r#"{"secret":"hunter2"}"#);
    let by_name = store
        .credential_by_name(&CredentialName::new("db").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(by_name.statement.credential_id, id);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(
        store.held().unwrap(),
        vec![Held {
            credential_id: id,
            version: 1
        }]
    );
}

#[test]
fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let id = CredentialId::random();
    {
        let store = Store::open(dir.path(), &key(1), 100).unwrap();
        store
            .accept(&[new_cred(&org, id, 3, "db", "v3")], NOW)
            .unwrap();
        store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    }
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    assert_eq!(store.newest_version(&id).unwrap(), Some(3));
    let agent = store.get_self(SelfRecord::AgentId).unwrap().unwrap();
    agent.expose(|b| assert_eq!(b, b"edge-1"));
}

#[test]
fn wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), &key(1), 100).unwrap());
    let err = Store::open(dir.path(), &key(2), 100).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err}");
}

#[test]
fn second_open_while_held_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), &key(1), 100).unwrap();
    let err = Store::open(dir.path(), &key(1), 100).unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(BackendError::Locked(_))),
        "{err}"
    );
}

#[test]
fn corrupted_record_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let id = CredentialId::random();
    store
        .accept(&[new_cred(&org, id, 1, "db", "x")], NOW)
        .unwrap();
    let k = cred_key(&id);
    let mut rec = store.raw().get(&k).unwrap().unwrap();
    let last = rec.len() - 1;
    rec[last] ^= 0x80;
    store.raw().apply(vec![(k, Some(rec))]).unwrap();
    let err = store.credential(&id).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }));
    assert!(text.contains(&format!("cred/{id}")), "{text}");
}

#[test]
fn record_moved_to_another_key_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    store
        .accept(
            &[
                new_cred(&org, a, 1, "a", "A"),
                new_cred(&org, b, 1, "b", "B"),
            ],
            NOW,
        )
        .unwrap();
    let rec_a = store.raw().get(&cred_key(&a)).unwrap().unwrap();
    store
        .raw()
        .apply(vec![(cred_key(&b), Some(rec_a))])
        .unwrap();
    assert!(matches!(
        store.credential(&b),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn record_rolled_back_on_disk_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let id = CredentialId::random();
    store
        .accept(&[new_cred(&org, id, 1, "db", "old")], NOW)
        .unwrap();
    let old = store.raw().get(&cred_key(&id)).unwrap().unwrap();
    store
        .accept(&[new_cred(&org, id, 2, "db", "new")], NOW)
        .unwrap();
    store.raw().apply(vec![(cred_key(&id), Some(old))]).unwrap();
    let err = store.credential(&id).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RolledBack {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn older_version_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let (id, other) = (CredentialId::random(), CredentialId::random());
    store
        .accept(&[new_cred(&org, id, 5, "db", "v5")], NOW)
        .unwrap();
    let err = store
        .accept(
            &[
                new_cred(&org, other, 1, "other", "o"),
                new_cred(&org, id, 4, "db", "v4"),
            ],
            NOW,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Stale {
            offered: 4,
            held: 5,
            ..
        }
    ));
    assert_eq!(
        store.newest_version(&other).unwrap(),
        None,
        "batch is all or nothing"
    );
    assert_eq!(
        secret_of(&store.credential(&id).unwrap().unwrap()),
        r#"{"secret":"v5"}"#
    );
}

#[test]
fn one_refused_item_of_a_batch_refuses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let (id, before, after) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    store
        .accept(&[new_cred(&org, id, 5, "db", "v5")], NOW)
        .unwrap();
    let results = store
        .accept_each(
            &[
                new_cred(&org, before, 1, "before", "b"),
                new_cred(&org, id, 4, "db", "v4"),
                new_cred(&org, after, 1, "after", "a"),
            ],
            NOW,
        )
        .unwrap();
    assert!(matches!(
        results.as_slice(),
        [
            Ok(()),
            Err(StoreError::Stale {
                offered: 4,
                held: 5,
                ..
            }),
            Ok(())
        ]
    ));
    assert_eq!(store.newest_version(&before).unwrap(), Some(1));
    assert_eq!(store.newest_version(&after).unwrap(), Some(1));
    assert_eq!(
        secret_of(&store.credential(&id).unwrap().unwrap()),
        r#"{"secret":"v5"}"#
    );
    // A batch accepted whole is one result per item.
    let (x, y) = (CredentialId::random(), CredentialId::random());
    let results = store
        .accept_each(
            &[
                new_cred(&org, x, 1, "x", "x"),
                new_cred(&org, y, 1, "y", "y"),
            ],
            NOW,
        )
        .unwrap();
    assert!(matches!(results.as_slice(), [Ok(()), Ok(())]));
    // One credential twice in a batch: a rollback within it is refused, a newer version after an older stored.
    let z = CredentialId::random();
    let results = store
        .accept_each(
            &[
                new_cred(&org, z, 2, "z", "z2"),
                new_cred(&org, z, 1, "z", "z1"),
            ],
            NOW,
        )
        .unwrap();
    assert!(matches!(
        results.as_slice(),
        [
            Ok(()),
            Err(StoreError::Stale {
                offered: 1,
                held: 2,
                ..
            })
        ]
    ));
    store
        .accept(
            &[
                new_cred(&org, z, 3, "z", "z3"),
                new_cred(&org, z, 4, "z", "z4"),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(store.newest_version(&z).unwrap(), Some(4));
}

#[test]
fn audit_is_bounded_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |n: u32| AuditEntry {
        seq: 0,
        at: NOW,
        uid: n,
        gid: 0,
        pid: None,
        op: "get".into(),
        name: Some("db".into()),
        outcome: AuditOutcome::Served,
        detail: None,
        job_id: None,
        param: None,
    };
    {
        let store = Store::open(dir.path(), &key(1), 3).unwrap();
        for n in 0..5 {
            store.audit(entry(n)).unwrap();
        }
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), &key(1), 3).unwrap();
    store.audit(entry(5)).unwrap();
    let log = store.audit_log().unwrap();
    let uids: Vec<u32> = log.iter().map(|e| e.uid).collect();
    assert_eq!(uids, vec![3, 4, 5]);
    assert_eq!(log.last().unwrap().seq, 5);
}

#[test]
fn records_on_disk_do_not_contain_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    store
        .accept(
            &[new_cred(
                &org,
                CredentialId::random(),
                1,
                "db",
                "very-secret-plaintext",
            )],
            NOW,
        )
        .unwrap();
    for (_, v) in store.raw().scan_prefix(b"").unwrap() {
        assert!(!v.windows(21).any(|w| w == b"very-secret-plaintext"));
    }
}

fn name(n: &str) -> CredentialName {
    CredentialName::new(n).unwrap()
}

#[test]
fn a_name_stays_bound_to_its_first_id_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    {
        let store = Store::open(dir.path(), &key(1), 100).unwrap();
        store
            .accept(&[new_cred(&org, b, 1, "db", "current")], NOW)
            .unwrap();
    }
    // Reopened (as after a crash or restart): the binding is on disk with the record.
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    assert_eq!(store.name_binding(&name("db")).unwrap(), Some(b));
    let err = store
        .accept(&[new_cred(&org, a, 1, "db", "deleted")], NOW)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NameBound { bound, offered, .. } if bound == b && offered == a),
        "{err}"
    );
    assert_eq!(store.newest_version(&a).unwrap(), None);
    assert!(store.raw().get(&cred_key(&a)).unwrap().is_none());
    assert_eq!(
        secret_of(&store.credential_by_name(&name("db")).unwrap().unwrap()),
        r#"{"secret":"current"}"#
    );
    // The bound id's newer versions are accepted.
    store
        .accept(&[new_cred(&org, b, 2, "db", "rotated")], NOW)
        .unwrap();
    assert_eq!(store.name_binding(&name("db")).unwrap(), Some(b));
}

#[test]
fn two_ids_under_one_name_in_a_batch_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let (a, b, c) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    let err = store
        .accept(
            &[
                new_cred(&org, c, 1, "other", "o"),
                new_cred(&org, a, 1, "db", "A"),
                new_cred(&org, b, 1, "db", "B"),
            ],
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NameBound { .. }), "{err}");
    for id in [a, b, c] {
        assert_eq!(store.newest_version(&id).unwrap(), None, "all or nothing");
    }
    assert_eq!(store.name_binding(&name("db")).unwrap(), None);
}

#[test]
fn flags_follow_the_revocation_list_and_quarantine_refuses_reads() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    store
        .accept(
            &[
                new_cred(&org, a, 1, "a", "A"),
                new_cred(&org, b, 1, "b", "B"),
            ],
            NOW,
        )
        .unwrap();
    store
        .apply_revocations(b"{\"list\":1}", 1, &[a], NOW)
        .unwrap();
    // The list is stored in the same batch.
    store
        .get_self(SelfRecord::Revocations)
        .unwrap()
        .unwrap()
        .expose(|l| assert_eq!(l, b"{\"list\":1}"));
    let flag = store.flag(&a).unwrap().unwrap();
    assert_eq!(flag.list_serial, 1);
    assert!(store.flag(&b).unwrap().is_none());
    let status = |store: &Store| -> Vec<(CredentialId, CredentialStatus)> {
        let mut v: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.status))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    };
    let mut expected = vec![
        (a, CredentialStatus::SignerRevoked),
        (b, CredentialStatus::Ok),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(status(&store), expected);
    // Flagged but not quarantined: still served.
    assert!(store.credential_by_name(&name("a")).unwrap().is_some());
    store.set_quarantine_revoked_signers(true);
    assert!(matches!(
        store.credential_by_name(&name("a")),
        Err(StoreError::Quarantined { .. })
    ));
    assert!(store.credential_by_name(&name("b")).unwrap().is_some());
    assert_eq!(
        store.lookup_by_name(&name("a")).unwrap().unwrap().status,
        CredentialStatus::Quarantined
    );
    // Flags survive a reopen.
    drop(store);
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    assert!(store.flag(&a).unwrap().is_some());
    // A newer version clears the flag; the same version does not.
    store
        .accept(&[new_cred(&org, a, 1, "a", "A")], NOW)
        .unwrap();
    assert!(store.flag(&a).unwrap().is_some());
    store
        .accept(&[new_cred(&org, a, 2, "a", "A2")], NOW)
        .unwrap();
    assert!(store.flag(&a).unwrap().is_none());
    // A later list that no longer revokes the signer clears flags; one that does sets them.
    store.apply_revocations(b"{}", 2, &[b], NOW).unwrap();
    assert!(store.flag(&b).unwrap().is_some());
    store.apply_revocations(b"{}", 3, &[], NOW).unwrap();
    assert!(store.flag(&b).unwrap().is_none());
}

#[test]
fn a_purge_forgets_releases_the_name_and_refuses_the_deleted_versions_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let (old, other, new) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    {
        let store = Store::open(dir.path(), &key(1), 100).unwrap();
        store
            .accept(
                &[
                    new_cred(&org, old, 2, "db", "old"),
                    new_cred(&org, other, 1, "api", "keep"),
                ],
                NOW,
            )
            .unwrap();
        // A tombstone through version 1 does not delete the version 2 held: nothing written.
        assert!(matches!(
            store.purge(&old, &name("db"), 1, PurgeKind::Deleted),
            Err(StoreError::Stale { held: 2, .. })
        ));
        assert!(store.credential(&old).unwrap().is_some());
        let purged = store
            .purge(&old, &name("db"), 2, PurgeKind::Deleted)
            .unwrap();
        assert_eq!(
            purged,
            Purged {
                held: Some(2),
                released_name: true
            }
        );
    }
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    assert!(store.credential(&old).unwrap().is_none());
    assert_eq!(store.name_binding(&name("db")).unwrap(), None);
    assert_eq!(store.deleted_through(&old).unwrap(), Some(2));
    assert_eq!(
        store.list().unwrap().len(),
        1,
        "the other credential is kept"
    );
    assert!(store.held().unwrap().iter().all(|h| h.credential_id != old));
    // Every deleted version is refused again; a new id under the name binds.
    for v in [1, 2] {
        assert!(matches!(
            store.accept(&[new_cred(&org, old, v, "db", "old")], NOW),
            Err(StoreError::Deleted { through: 2, .. })
        ));
    }
    store
        .accept(&[new_cred(&org, new, 1, "db", "new")], NOW)
        .unwrap();
    assert_eq!(store.name_binding(&name("db")).unwrap(), Some(new));
    // A purge of the old id again leaves the new binding alone.
    let again = store
        .purge(&old, &name("db"), 2, PurgeKind::Deleted)
        .unwrap();
    assert!(!again.released_name);
    assert_eq!(store.name_binding(&name("db")).unwrap(), Some(new));
}

#[test]
fn a_revoke_purge_is_undone_only_by_a_later_grant() {
    let dir = tempfile::tempdir().unwrap();
    let org = crate::fixtures::org();
    let store = Store::open(dir.path(), &key(1), 100).unwrap();
    let id = CredentialId::random();
    store
        .accept(&[new_cred(&org, id, 1, "db", "pw")], NOW)
        .unwrap();
    store
        .purge(
            &id,
            &name("db"),
            1,
            PurgeKind::Revoked { scope_revision: 4 },
        )
        .unwrap();
    assert!(store.credential(&id).unwrap().is_none());
    assert_eq!(store.revoked_at(&id).unwrap(), Some((1, 4)));
    assert_eq!(store.deleted_through(&id).unwrap(), None);
    // Accepting again (a grant the target role checked) clears the marker.
    store
        .accept(&[new_cred(&org, id, 1, "db", "pw")], NOW)
        .unwrap();
    assert_eq!(store.revoked_at(&id).unwrap(), None);
    assert_eq!(store.name_binding(&name("db")).unwrap(), Some(id));
}
