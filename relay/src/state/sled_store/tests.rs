#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::ids::{AgentId, CredentialId};

use super::SledStore;
use crate::state::{DeliveryRow, DeliveryState, PendingRewrap, RelayStore, RewrapStage};

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn row(credential: CredentialId, agent: &AgentId, state: DeliveryState) -> DeliveryRow {
    DeliveryRow {
        state,
        ..DeliveryRow::pending(credential, agent.clone(), 1, 0)
    }
}

fn pending(target: &AgentId, credential: CredentialId) -> PendingRewrap {
    PendingRewrap {
        request_id: uuid::Uuid::new_v4(),
        nonce: [7; 32],
        credential,
        version: 1,
        target: target.clone(),
        peer: None,
        tried: Vec::new(),
        stage: RewrapStage::AwaitingTarget,
        deadline_ms: 0,
        jit: None,
        audit_seq: 1,
    }
}

#[test]
fn per_agent_rows_and_in_flight_records_are_found_again_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (a, b) = (agent("edge-a"), agent("edge-b"));
    let (c1, c2) = (CredentialId::random(), CredentialId::random());
    let (p1, p2, p3);
    {
        let s = SledStore::open(&path).unwrap();
        s.put_delivery(&row(c1, &a, DeliveryState::Pending))
            .unwrap();
        s.put_delivery(&row(c2, &a, DeliveryState::Pending))
            .unwrap();
        s.put_delivery(&row(c1, &b, DeliveryState::Stored)).unwrap();
        // A row written again is one row, with the newer state.
        s.put_delivery(&row(c2, &a, DeliveryState::Stored)).unwrap();
        (p1, p2, p3) = (pending(&a, c1), pending(&a, c2), pending(&b, c1));
        for p in [&p1, &p2, &p3] {
            s.put_pending(p).unwrap();
        }
        s.remove_pending(&p2.request_id).unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    let mut of_a = s.deliveries_of_agent(&a).unwrap();
    of_a.sort_by_key(|r| r.credential);
    let mut want = vec![
        row(c1, &a, DeliveryState::Pending),
        row(c2, &a, DeliveryState::Stored),
    ];
    want.sort_by_key(|r| r.credential);
    assert_eq!(of_a, want);
    assert_eq!(
        s.deliveries_of_agent(&b).unwrap(),
        [row(c1, &b, DeliveryState::Stored)]
    );
    assert_eq!(s.deliveries_of_credential(&c1).unwrap().len(), 2);
    assert_eq!(s.pendings_of_target(&a).unwrap(), std::slice::from_ref(&p1));
    assert_eq!(s.pendings_of_target(&b).unwrap(), [p3]);
    s.remove_pending(&p1.request_id).unwrap();
    assert!(s.pendings_of_target(&a).unwrap().is_empty());
    assert_eq!(s.pendings().unwrap().len(), 1);
}

#[test]
fn the_audit_chain_continues_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let second = {
        let s = SledStore::open(&path).unwrap();
        s.append_audit(1, "one", None, std::collections::BTreeMap::new())
            .unwrap();
        let e = s
            .append_audit(2, "two", Some(1), std::collections::BTreeMap::new())
            .unwrap();
        s.flush().unwrap();
        e
    };
    let s = SledStore::open(&path).unwrap();
    let third = s
        .append_audit(3, "three", None, std::collections::BTreeMap::new())
        .unwrap();
    assert_eq!(third.seq, second.seq + 1);
    assert_eq!(third.prev, second.hash);
    let all = s.audit().unwrap();
    assert_eq!(all.len(), 3);
    tessera_proto::audit::verify(&all).unwrap();
}
