use tessera_proto::secret::SecretBytes;

use super::*;

const NOW: i64 = 1_790_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &SecretBytes::new(vec![7; 32]), 100).unwrap()
}

#[test]
fn a_job_id_is_admitted_once_and_remembered_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::new_v4();
    {
        let mut seen = SeenJobs::new(open(dir.path()));
        assert!(seen.is_empty());
        assert_eq!(seen.admit(&id, NOW + 300, NOW).unwrap(), Admission::New);
        assert_eq!(
            seen.admit(&id, NOW + 300, NOW + 1).unwrap(),
            Admission::Duplicate
        );
        // The expiry the duplicate claims does not matter: the id does.
        assert_eq!(
            seen.admit(&id, NOW + 9_000, NOW + 2).unwrap(),
            Admission::Duplicate
        );
        let other = uuid::Uuid::new_v4();
        assert_eq!(seen.admit(&other, NOW + 300, NOW).unwrap(), Admission::New);
        assert_eq!(seen.len(), 2);
    }
    let mut seen = SeenJobs::new(open(dir.path()));
    assert_eq!(
        seen.admit(&id, NOW + 300, NOW + 3).unwrap(),
        Admission::Duplicate
    );
    assert_eq!(seen.len(), 2, "counted at the first admit");
}

#[test]
fn records_are_pruned_only_after_expiry_and_grace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut seen = SeenJobs::new(store.clone());
    let early = uuid::Uuid::new_v4();
    let late = uuid::Uuid::new_v4();
    seen.admit(&early, NOW + 100, NOW).unwrap();
    seen.admit(&late, NOW + 10_000, NOW).unwrap();
    assert_eq!(
        seen.prune(NOW + 100 + GRACE_SECS).unwrap(),
        0,
        "still within the grace"
    );
    assert_eq!(seen.prune(NOW + 101 + GRACE_SECS).unwrap(), 1);
    assert_eq!(seen.len(), 1);
    assert!(store.inner.backend.get(&key(&early)).unwrap().is_none());
    assert_eq!(
        seen.admit(&late, NOW + 10_000, NOW + 200 + GRACE_SECS)
            .unwrap(),
        Admission::Duplicate
    );
}

#[test]
fn an_expiry_beyond_the_cap_is_remembered_only_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = SeenJobs::new(open(dir.path()));
    let id = uuid::Uuid::new_v4();
    seen.admit(&id, i64::MAX, NOW).unwrap();
    assert_eq!(
        seen.prune(NOW + MAX_JOB_TTL_SECS + GRACE_SECS + 1).unwrap(),
        1
    );
}

#[test]
fn a_full_record_refuses_new_ids_until_old_ones_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = SeenJobs::with_max(open(dir.path()), 3);
    for _ in 0..3 {
        assert_eq!(
            seen.admit(&uuid::Uuid::new_v4(), NOW + 10, NOW).unwrap(),
            Admission::New
        );
    }
    let next = uuid::Uuid::new_v4();
    assert_eq!(
        seen.admit(&next, NOW + 10, NOW + 1).unwrap(),
        Admission::Full
    );
    // A refused-for-full id was not recorded: once the old ones expire it is admitted.
    assert_eq!(
        seen.admit(&next, NOW + 10_000, NOW + 11 + GRACE_SECS)
            .unwrap(),
        Admission::New
    );
    assert_eq!(seen.len(), 1);
}

#[test]
fn a_record_moved_to_another_job_id_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut seen = SeenJobs::new(store.clone());
    let a = uuid::Uuid::new_v4();
    seen.admit(&a, NOW + 10, NOW).unwrap();
    let rec = store.inner.backend.get(&key(&a)).unwrap().unwrap();
    let b = uuid::Uuid::new_v4();
    store
        .inner
        .backend
        .apply(vec![(key(&b), Some(rec))])
        .unwrap();
    assert!(matches!(seen.prune(NOW), Err(StoreError::Corrupt { .. })));
}
