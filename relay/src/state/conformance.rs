//! What every state backend must do, run against each ([`super::SledStore`] in `sled_store/tests.rs`,
//! [`super::PgStore`] in `pg_store/tests.rs`): a backend is opened, written in batches, dropped and opened again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_proto::audit::next_entry;
use tessera_proto::ids::{AgentId, CredentialId};

use super::{Batch, DeliveryRow, DeliveryState, PendingRewrap, RelayStore, StateError, Write};
use crate::lifecycle::{Dispatch, Timing};

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

pub(super) fn row(credential: CredentialId, agent: &AgentId, state: DeliveryState) -> DeliveryRow {
    DeliveryRow {
        state,
        ..DeliveryRow::pending(credential, agent.clone(), 1, 0)
    }
}

/// An in-flight rewrap to `target` (also the staged view's tests').
pub(super) fn pending(target: &AgentId, credential: CredentialId) -> PendingRewrap {
    let d = Dispatch {
        request_id: uuid::Uuid::new_v4(),
        credential,
        version: 1,
        target: target.clone(),
        jit: None,
        audit_seq: 1,
    };
    let t = Timing {
        now_ms: 0,
        peer_timeout_ms: 0,
    };
    PendingRewrap::operator_envelope(d, t)
}

fn apply(s: &dyn RelayStore, writes: Vec<Write>) {
    s.apply(&Batch(writes)).unwrap();
}

/// Delivery rows per agent and per credential, and in-flight records per target, are found again after a reopen.
pub(super) fn rows_and_in_flight_records_survive_a_reopen(open: &dyn Fn() -> Arc<dyn RelayStore>) {
    let (a, b) = (agent("edge-a"), agent("edge-b"));
    let (c1, c2) = (CredentialId::random(), CredentialId::random());
    let (p1, p2, p3) = (pending(&a, c1), pending(&a, c2), pending(&b, c1));
    {
        let s = open();
        apply(
            &*s,
            vec![
                Write::Delivery(row(c1, &a, DeliveryState::Pending)),
                Write::Delivery(row(c2, &a, DeliveryState::Pending)),
                Write::Delivery(row(c1, &b, DeliveryState::Stored)),
            ],
        );
        // A row written again is one row, with the newer state.
        apply(
            &*s,
            vec![Write::Delivery(row(c2, &a, DeliveryState::Stored))],
        );
        apply(
            &*s,
            vec![
                Write::Pending(p1.clone()),
                Write::Pending(p2.clone()),
                Write::Pending(p3.clone()),
            ],
        );
        apply(&*s, vec![Write::RemovePending(p2.request_id)]);
        s.flush().unwrap();
    }
    let s = open();
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
    assert_eq!(s.deliveries().unwrap().len(), 3);
    assert_eq!(s.pendings_of_target(&a).unwrap(), std::slice::from_ref(&p1));
    assert_eq!(s.pendings_of_target(&b).unwrap(), [p3]);
    apply(&*s, vec![Write::RemovePending(p1.request_id)]);
    assert!(s.pendings_of_target(&a).unwrap().is_empty());
    let left = s.pendings().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        s.in_flight_keys().unwrap(),
        left.iter()
            .map(|p| (p.request_id, p.credential, p.target.clone()))
            .collect::<Vec<_>>()
    );
}

/// The chain continues across a reopen, and a batch built on a stale head is refused whole: none of its
/// records is written, the chain does not fork.
pub(super) fn the_audit_chain_continues_and_a_stale_batch_writes_nothing(
    open: &dyn Fn() -> Arc<dyn RelayStore>,
) {
    let second = {
        let s = open();
        let one = next_entry(None, 1, "one", None, BTreeMap::new());
        let two = next_entry(Some(&one), 2, "two", Some(0), BTreeMap::new());
        apply(&*s, vec![Write::Audit(one), Write::Audit(two.clone())]);
        s.flush().unwrap();
        two
    };
    let s = open();
    assert_eq!(s.audit_head().unwrap().as_ref(), Some(&second));
    let third = next_entry(Some(&second), 3, "three", None, BTreeMap::new());
    apply(&*s, vec![Write::Audit(third.clone())]);
    // Built on `second` again: another writer's view.
    let stale = next_entry(Some(&second), 4, "stale", None, BTreeMap::new());
    let a = agent("edge-stale");
    let c = CredentialId::random();
    let r = s.apply(&Batch(vec![
        Write::Delivery(row(c, &a, DeliveryState::Stored)),
        Write::Audit(stale),
    ]));
    assert!(matches!(r, Err(StateError::Conflict(_))), "{r:?}");
    assert!(
        s.delivery(&c, &a).unwrap().is_none(),
        "a refused batch wrote a record"
    );
    let all = s.audit().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all.last(), Some(&third));
    tessera_proto::audit::verify(&all).unwrap();
}

/// A blocklist entry, an alert and the revocation list read back as written.
pub(super) fn small_records_read_back(open: &dyn Fn() -> Arc<dyn RelayStore>) {
    let s = open();
    let (c, peer) = (CredentialId::random(), agent("edge-peer"));
    assert_eq!(s.blocked_until(&c, &peer).unwrap(), None);
    apply(
        &*s,
        vec![Write::Block {
            credential: c,
            peer: peer.clone(),
            until_ms: 1_800_000_000_000,
        }],
    );
    assert_eq!(s.blocked_until(&c, &peer).unwrap(), Some(1_800_000_000_000));
    assert!(s.alerts().unwrap().is_empty());
    assert!(s.revocations().unwrap().is_none());
}

fn envelope(tag: &str) -> tessera_proto::envelope::Envelope {
    tessera_proto::envelope::Envelope {
        encrypted_key: format!("key-{tag}"),
        iv: "aXY=".into(),
        ciphertext: format!("ct-{tag}"),
        tag: "dGFn".into(),
    }
}

/// What an operator sealed, a single envelope or an item of a batch envelope kept once per (batch, agent), reads
/// back after a reopen; each with the key it is sealed to.
pub(super) fn operator_envelopes_single_and_batched_survive_a_reopen(
    open: &dyn Fn() -> Arc<dyn RelayStore>,
) {
    use super::OperatorSealed;
    let (a, b) = (agent("edge-a"), agent("edge-b"));
    let (c1, c2) = (CredentialId::random(), CredentialId::random());
    let batch = uuid::Uuid::new_v4();
    {
        let s = open();
        apply(
            &*s,
            vec![
                Write::Envelope {
                    credential: c1,
                    version: 3,
                    agent: a.clone(),
                    sealed: OperatorSealed::Envelope(envelope("single")),
                    key: [1; 32],
                },
                Write::Envelope {
                    credential: c1,
                    version: 3,
                    agent: b.clone(),
                    sealed: OperatorSealed::InBatch(batch),
                    key: [2; 32],
                },
                Write::Envelope {
                    credential: c2,
                    version: 1,
                    agent: b.clone(),
                    sealed: OperatorSealed::InBatch(batch),
                    key: [2; 32],
                },
                Write::BatchEnvelope {
                    batch,
                    agent: b.clone(),
                    record: super::BatchEnvelopeRecord {
                        envelope: envelope("batch"),
                        key: [2; 32],
                        items: vec![c1, c2],
                    },
                },
            ],
        );
        s.flush().unwrap();
    }
    let s = open();
    match s.envelope(&c1, 3, &a).unwrap() {
        Some((OperatorSealed::Envelope(e), key)) => {
            assert_eq!((e.ciphertext.as_str(), key), ("ct-single", [1; 32]));
        }
        other => panic!("single envelope: {other:?}"),
    }
    for c in [c1, c2] {
        match s.envelope(&c, if c == c1 { 3 } else { 1 }, &b).unwrap() {
            Some((OperatorSealed::InBatch(id), key)) => assert_eq!((id, key), (batch, [2; 32])),
            other => panic!("batch item: {other:?}"),
        }
    }
    let r = s.batch_envelope(&batch, &b).unwrap().unwrap();
    assert_eq!(
        (r.envelope.ciphertext.as_str(), r.key),
        ("ct-batch", [2; 32])
    );
    assert_eq!(r.items, [c1, c2]);
    // Another version, another agent, another batch: nothing.
    assert!(s.envelope(&c1, 2, &a).unwrap().is_none());
    assert!(s.batch_envelope(&batch, &a).unwrap().is_none());
    assert!(s
        .batch_envelope(&uuid::Uuid::new_v4(), &b)
        .unwrap()
        .is_none());
}
