//! Batched rewrap in the engine (docs/protocol.md, "Batched rewrap"): requests grouped per (peer, target) only
//! when both announced `batch_rewrap`, each item checked against its own record, the batch's acknowledgement
//! settled item by item; JIT repair and mixed fleets stay single.

use tessera_proto::commitment::Commitment;
use tessera_proto::envelope::batch;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{
    CredentialMissing, CredentialStoreBatch, CredentialStoredBatch, Down, RefusalReason, Register,
    RegistrationMode, RewrapBatchRequest, RewrapBatchResponse, RewrapRefused, SealedItem,
    StoreOutcome, Up, CAPABILITY_BATCH_REWRAP,
};

use super::tests::World;
use super::*;
use crate::state::DeliveryState;

/// `id` registers for the first time, announcing `batch_rewrap` or not.
pub(super) fn register(w: &mut World, id: &AgentId, batches: bool) -> Vec<Outbound> {
    let cert = w.agents[id.as_str()].cert.clone();
    w.up(
        id,
        &Up::Register(Register {
            mode: RegistrationMode::FirstRegistration,
            cert,
            held: Vec::new(),
            agent_version: "test".into(),
            capabilities: if batches {
                vec![CAPABILITY_BATCH_REWRAP.to_owned(), "from_the_future".into()]
            } else {
                Vec::new()
            },
        }),
    )
}

/// Peers holding the same `n` credentials (`secret-<i>`), registered and holding them; returns the peers and the
/// credentials' ids and commitments.
pub(super) fn peers_with(
    w: &mut World,
    names: &[&str],
    n: usize,
    batches: bool,
) -> (Vec<AgentId>, Vec<(CredentialId, Commitment)>) {
    let peers: Vec<AgentId> = names.iter().map(|p| w.agent(p)).collect();
    let refs: Vec<&AgentId> = peers.iter().collect();
    let creds: Vec<_> = (0..n)
        .map(|i| {
            let (id, c, _) = w.put(&format!("c{i}"), Scope::All, &format!("secret-{i}"), &refs);
            (id, c)
        })
        .collect();
    for p in &peers {
        // Operator envelopes need no peer: acknowledge each delivery; the backfill starts the rest.
        let mut out = register(w, p, batches);
        while let Some(d) = out.iter().find_map(|o| match &o.msg {
            Down::CredentialStore(d) if o.to == *p => Some(d.clone()),
            _ => None,
        }) {
            out.retain(
                |o| !matches!(&o.msg, Down::CredentialStore(x) if x.delivery_id == d.delivery_id),
            );
            let (id, c) = held_as(&creds, &d.statement);
            out.extend(w.ack(p, d.delivery_id, *id, StoreOutcome::Stored { digest: *c }));
        }
        for (id, _) in &creds {
            assert_eq!(w.row(id, p).state, DeliveryState::Stored);
        }
    }
    (peers, creds)
}

pub(super) fn peer_with(
    w: &mut World,
    peer: &str,
    n: usize,
    batches: bool,
) -> (AgentId, Vec<(CredentialId, Commitment)>) {
    let (mut peers, creds) = peers_with(w, &[peer], n, batches);
    (peers.remove(0), creds)
}

/// The (id, commitment) of `creds` that `statement` is for.
fn held_as<'a>(
    creds: &'a [(CredentialId, Commitment)],
    statement: &tessera_proto::statement::Signed<tessera_proto::statement::CredentialStatement>,
) -> &'a (CredentialId, Commitment) {
    let st = statement
        .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
        .unwrap();
    creds
        .iter()
        .find(|(id, _)| *id == st.credential_id)
        .unwrap()
}

fn batches_to(out: &[Outbound], to: &AgentId) -> Vec<RewrapBatchRequest> {
    out.iter()
        .filter(|o| o.to == *to)
        .filter_map(|o| match &o.msg {
            Down::RewrapBatchRequest(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn singles(out: &[Outbound]) -> usize {
    out.iter()
        .filter(|o| matches!(o.msg, Down::RewrapRequest(_)))
        .count()
}

pub(super) fn secret_of(w: &World, id: CredentialId) -> String {
    let name = w
        .engine
        .store
        .credential(&id)
        .unwrap()
        .unwrap()
        .name
        .as_str()
        .trim_start_matches('c')
        .to_owned();
    format!("secret-{name}")
}

/// The peer's honest answer to `req`: every item sealed to the target in one envelope.
fn honest_batch(w: &World, peer: &AgentId, req: &RewrapBatchRequest) -> RewrapBatchResponse {
    let target = &w.agents[req.target.as_str()];
    let payloads: Vec<_> = req
        .items
        .iter()
        .map(|i| SecretPayload::from_plain_text(&secret_of(w, i.credential_id)).unwrap())
        .collect();
    let items: Vec<_> = req
        .items
        .iter()
        .zip(&payloads)
        .map(|(i, p)| (i.credential_id, i.version, p.bytes()))
        .collect();
    RewrapBatchResponse {
        batch_id: req.batch_id,
        peer: peer.clone(),
        target_key: Some(target.wrap.public_key().fingerprint()),
        envelope: Some(batch::seal(target.wrap.public_key(), &items).unwrap()),
        sealed: req
            .items
            .iter()
            .map(|i| SealedItem {
                request_id: i.request_id,
                nonce: i.nonce,
                credential_id: i.credential_id,
                version: i.version,
            })
            .collect(),
        refused: Vec::new(),
    }
}

fn delivery_batch(out: &[Outbound], to: &AgentId) -> CredentialStoreBatch {
    out.iter()
        .find_map(|o| match &o.msg {
            Down::CredentialStoreBatch(b) if o.to == *to => Some(b.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no credential_store_batch to {}: {out:?}", to.as_str()))
}

/// The target's honest acknowledgement of `b`: every item stored, with its digest and receipt.
fn honest_ack(
    w: &World,
    target: &AgentId,
    b: &CredentialStoreBatch,
    creds: &[(CredentialId, Commitment)],
) -> Up {
    let items = b
        .items
        .iter()
        .map(|d| {
            let (id, c) = held_as(creds, &d.statement);
            match w.ack_msg(
                target,
                d.delivery_id,
                *id,
                StoreOutcome::Stored { digest: *c },
            ) {
                Up::CredentialStored(s) => s,
                _ => unreachable!(),
            }
        })
        .collect();
    Up::CredentialStoredBatch(CredentialStoredBatch {
        batch_id: b.batch_id,
        items,
    })
}

#[test]
fn a_backfill_between_batching_agents_travels_in_batches_and_ends_online() {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        batch_size: 4,
        batches_in_flight: 2,
        ..EngineConfig::default()
    });
    let (peer, creds) = peer_with(&mut w, "peer-1", 10, true);
    let target = w.agent("target-1");
    let out = register(&mut w, &target, true);
    // Eight in flight (2 batches of 4), nothing single.
    let first = batches_to(&out, &peer);
    assert_eq!(
        first.iter().map(|b| b.items.len()).collect::<Vec<_>>(),
        [4, 4]
    );
    assert_eq!(singles(&out), 0);
    assert_eq!(first[0].target_cert, w.agents["target-1"].cert);
    assert_eq!(w.engine.metrics.rewrap_batches, 2);
    assert_eq!(w.engine.metrics.rewrap_requests, 8);

    let mut pending: Vec<RewrapBatchRequest> = first;
    let mut delivered = 0;
    while let Some(req) = pending.pop() {
        let resp = honest_batch(&w, &peer, &req);
        let out = w.up(&peer, &Up::RewrapBatchResponse(resp));
        let b = delivery_batch(&out, &target);
        assert_eq!(b.items.len(), req.items.len());
        // Each item is delivered under its own record's id.
        for (d, i) in b.items.iter().zip(&req.items) {
            assert_eq!(d.delivery_id, i.request_id);
        }
        let out = w.up(&target, &honest_ack(&w, &target, &b, &creds));
        delivered += b.items.len();
        // The freed slots start the rest of the backlog, batched again.
        pending.extend(batches_to(&out, &peer));
        assert_eq!(
            singles(&out),
            0,
            "a lone remainder goes as a batch only with others"
        );
    }
    // 10 = 4 + 4, then the last two start together when the first batch is acknowledged.
    assert_eq!(delivered, 10);
    for (id, _) in &creds {
        assert_eq!(w.row(id, &target).state, DeliveryState::Stored);
    }
    assert_eq!(
        w.engine.store.agent(&target).unwrap().unwrap().state,
        tessera_proto::wire::AgentState::Online
    );
    let audit = w.engine.store.audit().unwrap();
    let finals = audit
        .iter()
        .filter(|e| e.kind == "rewrap_final" && e.data["result"] == "success")
        .count();
    assert_eq!(
        finals, 20,
        "one audited delivery per credential and agent: 10 to the peer, 10 to the target"
    );
    tessera_proto::audit::verify(&audit).unwrap();
}

#[test]
fn each_item_of_a_batch_answer_passes_its_own_bindings() {
    let mut w = World::new();
    let (peer, creds) = peer_with(&mut w, "peer-1", 4, true);
    let target = w.agent("target-1");
    let out = register(&mut w, &target, true);
    let req = batches_to(&out, &peer).pop().unwrap();
    assert_eq!(req.items.len(), 4);
    let mut resp = honest_batch(&w, &peer, &req);
    // Item 0: a wrong nonce (binding 1). Item 1: another version (binding 3). Item 2: refused by the peer.
    resp.sealed[0].nonce = [0; 32];
    resp.sealed[1].version = 2;
    let refused = resp.sealed.remove(2);
    resp.refused.push(RewrapRefused {
        request_id: refused.request_id,
        nonce: refused.nonce,
        reason: RefusalReason::Busy,
    });
    let before = w.engine.metrics.unsolicited;
    let out = w.up(&peer, &Up::RewrapBatchResponse(resp));
    assert_eq!(w.engine.metrics.unsolicited, before + 2);
    // Only item 3 goes to the target.
    let b = delivery_batch(&out, &target);
    assert_eq!(
        b.items.iter().map(|d| d.delivery_id).collect::<Vec<_>>(),
        [req.items[3].request_id]
    );
    let out2 = w.up(&target, &honest_ack(&w, &target, &b, &creds));
    assert_eq!(
        w.row(&req.items[3].credential_id, &target).state,
        DeliveryState::Stored
    );
    for i in 0..3 {
        assert_eq!(
            w.row(&req.items[i].credential_id, &target).state,
            DeliveryState::Pending
        );
    }
    let _ = out2;

    // A batch sealed to a key that is not the target's registered one (binding 4): no item is delivered.
    let mut fresh = World::new();
    let (peer, _) = peer_with(&mut fresh, "peer-1", 2, true);
    let target = fresh.agent("target-1");
    let req = batches_to(&register(&mut fresh, &target, true), &peer)
        .pop()
        .unwrap();
    let mut resp = honest_batch(&fresh, &peer, &req);
    resp.target_key = Some(fresh.org.agent("stranger").wrap.public_key().fingerprint());
    let out = fresh.up(&peer, &Up::RewrapBatchResponse(resp));
    assert!(
        !out.iter()
            .any(|o| matches!(o.msg, Down::CredentialStoreBatch(_))),
        "{out:?}"
    );
    // From another agent than the asked peer (binding 2): nothing delivered either.
    let other = fresh.agent("peer-2");
    let resp = honest_batch(&fresh, &peer, &req);
    let out = fresh.up(&other, &Up::RewrapBatchResponse(resp));
    assert!(
        !out.iter()
            .any(|o| matches!(o.msg, Down::CredentialStoreBatch(_))),
        "{out:?}"
    );
}

#[test]
fn mixed_fleets_and_jit_repair_stay_single() {
    // A target that does not batch gets single rewraps from a peer that does; a peer that does not batch is asked
    // singly for a target that does; `batch_size` 0 turns batching off for everyone.
    for (peer_batches, target_batches, batch_size) in
        [(true, false, 64), (false, true, 64), (true, true, 0)]
    {
        let mut w = World::new();
        w.engine.set_config(EngineConfig {
            batch_size,
            ..EngineConfig::default()
        });
        let (peer, _) = peer_with(&mut w, "peer-1", 3, peer_batches);
        let target = w.agent("target-1");
        let out = register(&mut w, &target, target_batches);
        assert_eq!(
            singles(&out),
            3,
            "{peer_batches} {target_batches} {batch_size}"
        );
        assert!(batches_to(&out, &peer).is_empty());
    }

    // A delivery a workload waits on (JIT) is asked alone even when the others around it are batched: after the
    // first peer times out, the next peer gets the others in one batch and the JIT one single.
    let mut w = World::new();
    let (peers, _) = peers_with(&mut w, &["peer-1", "peer-2"], 3, true);
    let target = w.agent("target-1");
    let out = register(&mut w, &target, true);
    let first = out
        .iter()
        .find_map(|o| match &o.msg {
            Down::RewrapBatchRequest(b) => Some((o.to.clone(), b.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(first.1.items.len(), 3);
    let next_peer = peers.iter().find(|p| **p != first.0).unwrap().clone();
    let out = w.up(
        &target,
        &Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::new_v4(),
            name: tessera_proto::ids::CredentialName::new("c0").unwrap(),
        }),
    );
    assert!(out.is_empty(), "joins the delivery in flight: {out:?}");
    w.clock.advance(EngineConfig::default().peer_timeout_ms + 1);
    let out = w.engine.tick();
    let again = batches_to(&out, &next_peer);
    assert_eq!(again.len(), 1, "{out:?}");
    assert_eq!(again[0].items.len(), 2);
    let single: Vec<_> = out
        .iter()
        .filter_map(|o| match &o.msg {
            Down::RewrapRequest(r) if o.to == next_peer => Some(r.credential_id),
            _ => None,
        })
        .collect();
    let c0 = w
        .engine
        .store
        .credential_by_name(&tessera_proto::ids::CredentialName::new("c0").unwrap())
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(single, [c0]);
}
