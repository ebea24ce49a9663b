use super::*;

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

#[tokio::test]
async fn requests_for_one_name_share_one_request_and_all_wake() {
    let mut w = Waiters::default();
    let (tx1, rx1) = oneshot::channel();
    let (tx2, rx2) = oneshot::channel();
    let id = w.add(name("db"), tx1).unwrap();
    assert_eq!(w.add(name("db"), tx2), None);
    w.unavailable(&Uuid::new_v4(), PublicReason::NoPeer);
    assert_eq!(w.len(), 1, "an unknown request id changes nothing");
    w.delivered(&name("other"));
    assert_eq!(w.len(), 1);
    w.delivered(&name("db"));
    assert_eq!(rx1.await.unwrap(), JitOutcome::Delivered);
    assert_eq!(rx2.await.unwrap(), JitOutcome::Delivered);
    assert!(w.is_empty());
    let (tx, rx) = oneshot::channel();
    let again = w.add(name("db"), tx).unwrap();
    assert_ne!(again, id, "a new request gets a new id");
    w.unavailable(&again, PublicReason::CommitmentMismatch);
    assert_eq!(
        rx.await.unwrap(),
        JitOutcome::Unavailable(PublicReason::CommitmentMismatch)
    );
}

#[tokio::test]
async fn abandoned_requests_are_pruned() {
    let mut w = Waiters::default();
    let (tx, rx) = oneshot::channel();
    w.add(name("db"), tx).unwrap();
    drop(rx);
    w.prune();
    assert!(w.is_empty());
    let (tx, _rx) = oneshot::channel();
    assert!(w.add(name("db"), tx).is_some());
}
