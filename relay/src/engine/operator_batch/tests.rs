//! Operator batches in the engine (docs/protocol.md, "Operator batches"): a batch envelope kept once and delivered
//! to its agent in one message, single envelopes beside it for agents that do not batch, each item acknowledged
//! on its own; a body that does not hold together refused whole.

use tessera_proto::admin::{BatchEnvelopeFor, ItemEnvelopeFor, PutBatchBody};
use tessera_proto::envelope::{batch, seal};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, Scope, Signed};
use tessera_proto::wire::{CredentialStoreBatch, CredentialStoredBatch, Down, StoreOutcome, Up};

use super::super::batch_tests::register;
use super::super::tests::World;
use super::*;
use crate::engine::EngineConfig;
use crate::state::DeliveryState;

/// Three new credentials: statements, payloads, commitments.
/// One new credential: id, signed statement, payload, statement.
type Cred = (
    CredentialId,
    Signed<CredentialStatement>,
    SecretPayload,
    CredentialStatement,
);

fn three(w: &World) -> Vec<Cred> {
    some(w, 3)
}

/// `n` new credentials.
fn some(w: &World, n: usize) -> Vec<Cred> {
    (0..n)
        .map(|i| {
            let id = CredentialId::random();
            let (signed, st, payload) = w.org.credential(
                id,
                1,
                &format!("import-{i}"),
                Scope::All,
                &format!("secret-{i}"),
            );
            (id, signed, payload, st)
        })
        .collect()
}

/// The body of an import of `creds`: one batch envelope for `batching`, single envelopes for `single`.
fn body(
    w: &World,
    creds: &[(
        CredentialId,
        Signed<CredentialStatement>,
        SecretPayload,
        CredentialStatement,
    )],
    batching: &AgentId,
    single: &AgentId,
    batch_id: uuid::Uuid,
) -> PutBatchBody {
    let key = w.agents[batching.as_str()].wrap.public_key();
    let items: Vec<_> = creds
        .iter()
        .map(|(id, _, p, _)| (*id, 1, p.bytes()))
        .collect();
    let single_key = w.agents[single.as_str()].wrap.public_key();
    PutBatchBody {
        statements: creds.iter().map(|(_, s, _, _)| s.clone()).collect(),
        envelopes: creds
            .iter()
            .map(|(id, _, p, _)| ItemEnvelopeFor {
                credential_id: *id,
                agent: single.clone(),
                key: single_key.fingerprint(),
                envelope: seal(single_key, p.bytes()).unwrap(),
            })
            .collect(),
        batches: vec![BatchEnvelopeFor {
            batch_id,
            items: creds.iter().map(|(id, _, _, _)| *id).collect(),
            agent: batching.clone(),
            key: key.fingerprint(),
            envelope: batch::seal(key, &items).unwrap(),
        }],
    }
}

/// edge-a (batching; registered now when `a_online`, else later by the test) and edge-b (registered, not
/// batching).
fn fleet(w: &mut World, a_online: bool) -> (AgentId, AgentId) {
    let (a, b) = (w.agent("edge-a"), w.agent("edge-b"));
    if a_online {
        register(w, &a, true);
    }
    register(w, &b, false);
    (a, b)
}

fn store_batches(out: &[Outbound], to: &AgentId) -> Vec<CredentialStoreBatch> {
    out.iter()
        .filter(|o| o.to == *to)
        .filter_map(|o| match &o.msg {
            Down::CredentialStoreBatch(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// `from` acknowledges every item of `b` as stored, in one message.
fn ack_batch(
    w: &mut World,
    from: &AgentId,
    b: &CredentialStoreBatch,
    creds: &[(
        CredentialId,
        Signed<CredentialStatement>,
        SecretPayload,
        CredentialStatement,
    )],
) -> Vec<Outbound> {
    let items = b
        .items
        .iter()
        .map(|item| {
            let st = item
                .statement
                .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                .unwrap();
            let (_, _, _, c) = creds.iter().find(|c| c.0 == st.credential_id).unwrap();
            match w.ack_msg(
                from,
                item.delivery_id,
                st.credential_id,
                StoreOutcome::Stored {
                    digest: c.commitment,
                },
            ) {
                Up::CredentialStored(s) => s,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    w.up(
        from,
        &Up::CredentialStoredBatch(CredentialStoredBatch {
            batch_id: b.batch_id,
            items,
        }),
    )
}

#[test]
fn an_import_reaches_a_batching_agent_in_one_message_and_the_others_one_by_one() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, true);
    let creds = three(&w);
    let batch_id = uuid::Uuid::new_v4();
    let body = body(&w, &creds, &a, &b, batch_id);
    let out = w.engine.put_credentials_batch(&body).unwrap();

    // One message to the batching agent, with every item, carrying the envelope the operator sealed (which the
    // agent opens once: real crypto).
    let to_a = store_batches(&out, &a);
    assert_eq!(to_a.len(), 1, "{out:?}");
    let delivery = &to_a[0];
    assert_eq!((delivery.batch_id, delivery.items.len()), (batch_id, 3));
    let opened = batch::open(&w.agents["edge-a"].wrap, &delivery.envelope).unwrap();
    assert_eq!(opened.len(), 3);
    // The agent that does not batch gets its three single envelopes, and nothing batched.
    assert!(store_batches(&out, &b).is_empty());
    let singles_to_b = out
        .iter()
        .filter(|o| o.to == b && matches!(o.msg, Down::CredentialStore(_)))
        .count();
    assert_eq!(singles_to_b, 3);
    // No peer was asked: the operator sealed for both.
    assert!(!out
        .iter()
        .any(|o| matches!(o.msg, Down::RewrapRequest(_) | Down::RewrapBatchRequest(_))));

    // One acknowledgement settles each item on its own record.
    ack_batch(&mut w, &a, delivery, &creds);
    for (id, _, _, _) in &creds {
        assert_eq!(w.row(id, &a).state, DeliveryState::Stored);
        assert_ne!(w.row(id, &b).state, DeliveryState::Stored);
    }
}

#[test]
fn an_agent_offline_at_the_import_gets_the_batch_in_one_message_when_it_registers() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, false);
    let creds = three(&w);
    let batch_id = uuid::Uuid::new_v4();
    let body = body(&w, &creds, &a, &b, batch_id);
    let out = w.engine.put_credentials_batch(&body).unwrap();
    assert!(
        store_batches(&out, &a).is_empty(),
        "edge-a is not registered yet"
    );
    // The relay restarts in between: the batch envelope and the items' references are state, not memory.
    w.restart();
    let out = register(&mut w, &a, true);
    let to_a = store_batches(&out, &a);
    assert_eq!(to_a.len(), 1, "{out:?}");
    assert_eq!((to_a[0].batch_id, to_a[0].items.len()), (batch_id, 3));
    ack_batch(&mut w, &a, &to_a[0], &creds);
    for (id, _, _, _) in &creds {
        assert_eq!(w.row(id, &a).state, DeliveryState::Stored);
    }
}

#[test]
fn an_agent_that_stopped_batching_is_not_sent_the_batch_envelope() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, false);
    let creds = three(&w);
    let body = body(&w, &creds, &a, &b, uuid::Uuid::new_v4());
    w.engine.put_credentials_batch(&body).unwrap();
    // edge-a comes up without the capability (`broker.batch_rewrap = false`): it would drop a batch, so the relay
    // does not use the batch envelope and asks a peer instead (edge-b has none yet: no peer, nothing sent).
    let out = register(&mut w, &a, false);
    assert!(store_batches(&out, &a).is_empty(), "{out:?}");
    assert!(!out
        .iter()
        .any(|o| o.to == a && matches!(o.msg, Down::CredentialStore(_))));
}

#[test]
fn a_body_that_does_not_hold_together_is_refused_whole() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, true);
    let creds = three(&w);
    let good = body(&w, &creds, &a, &b, uuid::Uuid::new_v4());
    let stranger = CredentialId::random();
    let mut cases: Vec<(&str, PutBatchBody)> = Vec::new();
    let mut case = good.clone();
    case.batches[0].items[1] = stranger;
    cases.push(("a batch item the body does not carry", case));
    let mut case = good.clone();
    case.envelopes[0].credential_id = stranger;
    cases.push(("a single envelope the body does not carry", case));
    let mut case = good.clone();
    case.batches[0].items.truncate(1);
    cases.push(("a batch of one", case));
    let mut case = good.clone();
    case.envelopes[0].agent = a.clone();
    case.envelopes[0].key = case.batches[0].key;
    cases.push(("a single and a batch item for one agent and key", case));
    let mut case = good.clone();
    case.statements.push(case.statements[0].clone());
    cases.push(("a statement twice", case));
    let mut case = good.clone();
    case.batches.push(case.batches[0].clone());
    cases.push(("a batch twice", case));
    let mut case = good;
    case.statements.clear();
    cases.push(("no statement", case));
    for (what, body) in cases {
        let e = w.engine.put_credentials_batch(&body).unwrap_err();
        assert!(matches!(e, OperatorError::Invalid(_)), "{what}: {e}");
        for (id, _, _, _) in &creds {
            assert!(
                w.engine.store.credential(id).unwrap().is_none(),
                "{what}: nothing is kept"
            );
        }
    }
}

#[test]
fn a_backlog_taken_a_few_at_a_time_still_gets_each_batch_envelope_once() {
    // A backfill window of 2 (batches of 2, one in flight): the backlog alone would start the items of one batch
    // envelope two at a time, sending the envelope three times.
    let mut w = World::with(EngineConfig {
        batch_size: 2,
        batches_in_flight: 1,
        ..EngineConfig::default()
    });
    let (a, b) = fleet(&mut w, false);
    let creds = some(&w, 5);
    let batch_id = uuid::Uuid::new_v4();
    let body = body(&w, &creds, &a, &b, batch_id);
    w.engine.put_credentials_batch(&body).unwrap();
    let out = register(&mut w, &a, true);
    let to_a = store_batches(&out, &a);
    assert_eq!(to_a.len(), 1, "{out:?}");
    assert_eq!(to_a[0].items.len(), 5);
    let out = ack_batch(&mut w, &a, &to_a[0], &creds);
    assert!(store_batches(&out, &a).is_empty(), "nothing sent again");
    for (id, _, _, _) in &creds {
        assert_eq!(w.row(id, &a).state, DeliveryState::Stored);
    }
}

#[test]
fn two_keys_of_one_agent_are_a_rotation_and_the_current_one_is_used() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, true);
    let creds = three(&w);
    let batch_id = uuid::Uuid::new_v4();
    let mut body = body(&w, &creds, &a, &b, batch_id);
    // The old certificate's key, still live in the grace period: a single envelope of the first credential.
    let old = tessera_proto::envelope::WrapPrivateKey::generate().unwrap();
    body.envelopes.insert(
        0,
        ItemEnvelopeFor {
            credential_id: creds[0].0,
            agent: a.clone(),
            key: old.public_key().fingerprint(),
            envelope: seal(old.public_key(), creds[0].2.bytes()).unwrap(),
        },
    );
    let out = w.engine.put_credentials_batch(&body).unwrap();
    let to_a = store_batches(&out, &a);
    assert_eq!(to_a.len(), 1);
    assert_eq!(
        to_a[0].items.len(),
        3,
        "the current key's batch carries all three"
    );
    // The same key twice is refused.
    let mut twice = body.clone();
    twice.envelopes.push(twice.envelopes[0].clone());
    assert!(matches!(
        w.engine.put_credentials_batch(&twice),
        Err(OperatorError::Invalid(_))
    ));
}

#[test]
fn a_batch_id_names_one_envelope_for_good() {
    let mut w = World::new();
    let (a, b) = fleet(&mut w, true);
    let batch_id = uuid::Uuid::new_v4();
    let first = three(&w);
    let body1 = body(&w, &first, &a, &b, batch_id);
    w.engine.put_credentials_batch(&body1).unwrap();
    let second = three(&w);
    let body2 = body(&w, &second, &a, &b, batch_id);
    assert!(matches!(
        w.engine.put_credentials_batch(&body2),
        Err(OperatorError::Conflict(_))
    ));
    for (id, _, _, _) in &second {
        assert!(w.engine.store.credential(id).unwrap().is_none());
    }
}

#[test]
fn a_merged_delivery_stays_within_the_statement_budget() {
    let w = World::new();
    let a = AgentId::new("edge-a").unwrap();
    let creds = three(&w);
    let batch_id = uuid::Uuid::new_v4();
    let envelope = tessera_proto::envelope::Envelope {
        encrypted_key: String::new(),
        iv: String::new(),
        ciphertext: String::new(),
        tag: String::new(),
    };
    // Three items whose statements take 80 KiB each: two fit in 192 KiB, the third starts a second message.
    let out: Vec<Outbound> = creds
        .iter()
        .map(|(_, signed, _, _)| {
            let mut statement = signed.clone();
            statement.payload = vec![b'x'; 80 * 1024];
            Outbound {
                to: a.clone(),
                msg: Down::CredentialStoreBatch(CredentialStoreBatch {
                    batch_id,
                    envelope: envelope.clone(),
                    target_key: None,
                    items: vec![tessera_proto::wire::BatchDelivery {
                        delivery_id: uuid::Uuid::new_v4(),
                        statement,
                        request_id: None,
                    }],
                }),
            }
        })
        .collect();
    let merged = merge_operator_batches(out);
    let sizes: Vec<usize> = merged
        .iter()
        .map(|o| match &o.msg {
            Down::CredentialStoreBatch(b) => b.items.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [2, 1]);
}
