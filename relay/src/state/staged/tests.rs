#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_proto::ids::{AgentId, CredentialId};

use super::Staged;
use crate::state::conformance::pending;
use crate::state::{DeliveryRow, DeliveryState, RelayStore, SledStore};

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn world() -> (tempfile::TempDir, Arc<dyn RelayStore>, Staged) {
    let dir = tempfile::tempdir().unwrap();
    let base: Arc<dyn RelayStore> = Arc::new(SledStore::open(&dir.path().join("s")).unwrap());
    let staged = Staged::new(base.clone());
    (dir, base, staged)
}

#[test]
fn an_event_reads_its_own_writes_and_the_backend_sees_none_until_the_commit() {
    let (_dir, base, s) = world();
    let (a, c) = (agent("edge-a"), CredentialId::random());
    let row = DeliveryRow::pending(c, a.clone(), 1, 5);
    s.put_delivery(&row).unwrap();
    let p = pending(&a, c);
    s.put_pending(&p).unwrap();
    s.append_audit(1, "one", None, BTreeMap::new()).unwrap();

    assert_eq!(s.delivery(&c, &a).unwrap().as_ref(), Some(&row));
    assert_eq!(
        s.deliveries_of_agent(&a).unwrap(),
        std::slice::from_ref(&row)
    );
    assert_eq!(
        s.deliveries_of_credential(&c).unwrap(),
        std::slice::from_ref(&row)
    );
    assert_eq!(s.pendings_of_target(&a).unwrap(), std::slice::from_ref(&p));
    assert_eq!(s.audit().unwrap().len(), 1);
    assert!(base.delivery(&c, &a).unwrap().is_none());
    assert!(base.pendings().unwrap().is_empty());
    assert!(base.audit().unwrap().is_empty());

    assert_eq!(s.commit().unwrap(), 3);
    assert!(!s.is_dirty());
    assert_eq!(base.delivery(&c, &a).unwrap(), Some(row));
    assert_eq!(base.pendings().unwrap(), [p]);
    assert_eq!(base.audit().unwrap().len(), 1);
}

#[test]
fn a_staged_replacement_or_removal_hides_the_backend_record_in_every_list() {
    let (_dir, base, s) = world();
    let (a, b, c) = (agent("edge-a"), agent("edge-b"), CredentialId::random());
    let (p1, p2) = (pending(&a, c), pending(&b, c));
    s.put_pending(&p1).unwrap();
    s.put_pending(&p2).unwrap();
    s.put_delivery(&DeliveryRow::pending(c, a.clone(), 1, 0))
        .unwrap();
    s.commit().unwrap();

    s.remove_pending(&p1.request_id).unwrap();
    let stored = DeliveryRow {
        state: DeliveryState::Stored,
        ..DeliveryRow::pending(c, a.clone(), 1, 0)
    };
    s.put_delivery(&stored).unwrap();
    assert!(s.pending(&p1.request_id).unwrap().is_none());
    assert!(s.pendings_of_target(&a).unwrap().is_empty());
    assert_eq!(s.pendings().unwrap(), std::slice::from_ref(&p2));
    assert_eq!(s.deliveries().unwrap(), std::slice::from_ref(&stored));
    // The backend still has both until the commit.
    assert_eq!(base.pendings().unwrap().len(), 2);
    s.commit().unwrap();
    assert_eq!(base.pendings().unwrap(), [p2]);
    assert_eq!(base.deliveries().unwrap(), [stored]);
}

#[test]
fn a_discarded_event_leaves_nothing_and_the_next_event_continues_the_chain() {
    let (_dir, base, s) = world();
    let first = s.append_audit(1, "one", None, BTreeMap::new()).unwrap();
    s.commit().unwrap();
    s.append_audit(2, "lost", None, BTreeMap::new()).unwrap();
    s.put_delivery(&DeliveryRow::pending(
        CredentialId::random(),
        agent("edge-a"),
        1,
        0,
    ))
    .unwrap();
    s.discard();
    assert!(!s.is_dirty());
    assert_eq!(s.commit().unwrap(), 0);
    let next = s
        .append_audit(3, "two", Some(first.seq), BTreeMap::new())
        .unwrap();
    assert_eq!(next.seq, first.seq + 1);
    assert_eq!(next.prev, first.hash);
    s.commit().unwrap();
    assert!(base.deliveries().unwrap().is_empty());
    tessera_proto::audit::verify(&base.audit().unwrap()).unwrap();
}
