//! The hostile relay and batched rewrap (docs/protocol.md, "Batched rewrap"): a relay double with the relay's
//! rights on the broker sends real `tessera-agent` processes batched deliveries and batched rewrap requests it
//! crafted. As a target, the agent opens the envelope once and checks every item against its own operator-signed
//! statement: an item moved between batches, an item whose payload was swapped for another's, a batch replayed after a
//! newer version, a batch sealed to another key, a credential listed twice and an oversized batch store nothing, each
//! refused item alone, while the honest items beside them are stored. As a peer, it seals a batch only to the key
//! the org CA certified for the named target, refuses out-of-scope items alone, and no plaintext reaches the relay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use tessera_proto::envelope::{batch, WrapPublicKey};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, Scope, Signed};
use tessera_proto::wire::{
    BatchDelivery, CredentialStoreBatch, CredentialStored, Down, RefusalReason, RewrapBatchRequest,
    RewrapItem, StoreOutcome, Up,
};
use tessera_system_tests::bins::bin;
use tessera_system_tests::wire_world::{assert_never_seen, Agent, Org, World};

const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";

/// A credential the test org signed: its statement and payload.
struct Cred {
    id: CredentialId,
    version: u64,
    signed: Signed<CredentialStatement>,
    payload: SecretPayload,
}

fn cred(org: &Org, id: CredentialId, version: u64, name: &str, secret: &str) -> Cred {
    let (signed, _, payload) = org.credential(id, version, name, Scope::All, secret);
    Cred {
        id,
        version,
        signed,
        payload,
    }
}

/// `listed` delivered in one batch whose envelope, sealed to `to`, carries `sealed`.
fn batch_of(to: &WrapPublicKey, sealed: &[&Cred], listed: &[&Cred]) -> Down {
    let items: Vec<_> = sealed
        .iter()
        .map(|c| (c.id, c.version, c.payload.bytes()))
        .collect();
    Down::CredentialStoreBatch(CredentialStoreBatch {
        batch_id: uuid::Uuid::new_v4(),
        envelope: batch::seal(to, &items).unwrap(),
        target_key: Some(to.fingerprint()),
        items: listed
            .iter()
            .map(|c| BatchDelivery {
                delivery_id: uuid::Uuid::new_v4(),
                statement: c.signed.clone(),
                request_id: None,
            })
            .collect(),
    })
}

/// The outcomes of the agent's batched acknowledgement, in the order the batch listed its items.
async fn outcomes(w: &mut World, agent: &Agent, sent: &Down) -> Vec<(CredentialId, StoreOutcome)> {
    let Down::CredentialStoreBatch(b) = sent else {
        unreachable!()
    };
    w.relay.send(&agent.id, sent).await;
    let ack = match w.relay.next_up(&agent.id).await {
        Up::CredentialStoredBatch(ack) => ack,
        other => panic!(
            "expected credential_stored_batch, got {other:?}\n{}",
            agent.log()
        ),
    };
    assert_eq!(ack.batch_id, b.batch_id);
    b.items
        .iter()
        .map(|d| {
            let s: &CredentialStored = ack
                .items
                .iter()
                .find(|s| s.delivery_id == d.delivery_id)
                .expect("every listed item is answered");
            (s.credential_id, s.outcome.clone())
        })
        .collect()
}

fn stored(o: &StoreOutcome) -> bool {
    matches!(o, StoreOutcome::Stored { .. })
}

fn refused(reason: RefusalReason) -> StoreOutcome {
    StoreOutcome::Refused { reason }
}

/// The payload the agent serves for `name`, or `None` when it does not hold it (asked by `list` first: a `get` of a
/// credential not held would ask the relay for JIT repair).
fn served(agent: &Agent, name: &str) -> Option<String> {
    let out = agent.get_as(None, &["list"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let held = list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str() == Some(name));
    if !held {
        return None;
    }
    let out = agent.get_as(None, &["get", name]);
    assert!(out.status.success());
    Some(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_checks_every_item_of_a_batch_and_stores_only_the_honest_ones() {
    let mut w = World::new(&bin("tessera-agent")).await;
    let agent = w.online_agent("edge-1", POLICY).await;
    let wrap = agent.cert().wrap.clone();
    let org = &w.org;
    let alpha = cred(org, CredentialId::random(), 1, "alpha", "alpha-secret");
    let bravo = cred(org, CredentialId::random(), 1, "bravo", "bravo-secret");
    let charlie = cred(org, CredentialId::random(), 1, "charlie", "charlie-secret");
    let delta = cred(org, CredentialId::random(), 1, "delta", "delta-secret");

    // An honest batch: every item stored, one acknowledgement, each item with its digest and signed receipt.
    let honest = batch_of(&wrap, &[&alpha, &bravo], &[&alpha, &bravo]);
    let Down::CredentialStoreBatch(hb) = &honest else {
        unreachable!()
    };
    w.relay.send(&agent.id, &honest).await;
    let Up::CredentialStoredBatch(ack) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_stored_batch")
    };
    assert_eq!(ack.items.len(), 2);
    for (item, listed) in ack.items.iter().zip(&hb.items) {
        assert_eq!(item.delivery_id, listed.delivery_id);
        assert!(stored(&item.outcome), "{:?}", item.outcome);
        assert!(item.receipt.is_some(), "a stored item carries its receipt");
    }
    assert_eq!(served(&agent, "alpha").as_deref(), Some("alpha-secret"));
    assert_eq!(served(&agent, "bravo").as_deref(), Some("bravo-secret"));

    // An item moved between batches: charlie's statement listed with an envelope that carries delta only. Charlie
    // is not in the envelope (BAD_ENVELOPE); delta, listed beside it, is stored.
    let moved = batch_of(&wrap, &[&delta], &[&charlie, &delta]);
    let got = outcomes(&mut w, &agent, &moved).await;
    assert_eq!(got[0], (charlie.id, refused(RefusalReason::BadEnvelope)));
    assert!(stored(&got[1].1));
    assert_eq!(served(&agent, "charlie"), None);
    assert_eq!(served(&agent, "delta").as_deref(), Some("delta-secret"));

    // A payload swapped between items: the relay seals (it has the target's public key) charlie's id and version
    // over another credential's payload. The commitment check catches it: a mismatch, nothing stored.
    let forged = Cred {
        id: charlie.id,
        version: 1,
        signed: charlie.signed.clone(),
        payload: SecretPayload::from_plain_text("alpha-secret").unwrap(),
    };
    let swapped = batch_of(&wrap, &[&forged], &[&charlie]);
    let got = outcomes(&mut w, &agent, &swapped).await;
    assert_eq!(got, [(charlie.id, StoreOutcome::Mismatch)]);
    assert_eq!(served(&agent, "charlie"), None);

    // A batch replayed after a newer version was stored: the replayed item is a rollback (STALE_VERSION).
    let a2 = cred(&w.org, alpha.id, 2, "alpha", "alpha-secret-2");
    let newer = batch_of(&wrap, &[&a2], &[&a2]);
    assert!(stored(&outcomes(&mut w, &agent, &newer).await[0].1));
    let got = outcomes(&mut w, &agent, &honest).await;
    assert_eq!(got[0], (alpha.id, refused(RefusalReason::StaleVersion)));
    assert!(
        stored(&got[1].1),
        "bravo's copy is the one held: acknowledged again"
    );
    assert_eq!(served(&agent, "alpha").as_deref(), Some("alpha-secret-2"));

    // A batch sealed to another key: no item opens, nothing stored.
    let stranger = w.org.agent("stranger").wrap;
    let wrong_key = batch_of(stranger.public_key(), &[&charlie], &[&charlie]);
    let got = outcomes(&mut w, &agent, &wrong_key).await;
    assert_eq!(got, [(charlie.id, refused(RefusalReason::BadEnvelope))]);

    // The same credential listed twice: the second is refused alone.
    let twice = batch_of(&wrap, &[&charlie], &[&charlie, &charlie]);
    let got = outcomes(&mut w, &agent, &twice).await;
    assert!(stored(&got[0].1));
    assert_eq!(got[1], (charlie.id, refused(RefusalReason::BadPayload)));
    assert_eq!(served(&agent, "charlie").as_deref(), Some("charlie-secret"));

    // Oversized: 65 items is not a valid message; the agent drops it and answers nothing.
    let many: Vec<Cred> = (0..=batch::MAX_BATCH_ITEMS)
        .map(|i| {
            cred(
                &w.org,
                CredentialId::random(),
                1,
                &format!("bulk-{i}"),
                "bulk",
            )
        })
        .collect();
    let listed: Vec<&Cred> = many.iter().collect();
    let Down::CredentialStoreBatch(oversized) = batch_of(&wrap, &listed[..1], &listed) else {
        unreachable!()
    };
    let bytes = serde_json::to_vec(&serde_json::json!({
        "v": 1,
        "msg": {"type": "credential_store_batch", "body": oversized},
    }))
    .unwrap();
    w.relay.send_raw(&agent.id, bytes).await;
    // An envelope over the batch plaintext limit (its ciphertext field too long): refused without being opened.
    let echo = cred(&w.org, CredentialId::random(), 1, "echo", "echo-secret");
    let Down::CredentialStoreBatch(mut huge) = batch_of(&wrap, &[&echo], &[&echo]) else {
        unreachable!()
    };
    huge.envelope.ciphertext = tessera_proto::b64_encode(vec![0u8; batch::MAX_BATCH_PLAINTEXT + 1]);
    let got = outcomes(&mut w, &agent, &Down::CredentialStoreBatch(huge)).await;
    assert_eq!(got, [(echo.id, refused(RefusalReason::BadEnvelope))]);
    assert_eq!(served(&agent, "bulk-0"), None);
    assert_eq!(served(&agent, "echo"), None);
    assert_eq!(w.relay.drain(Duration::from_millis(500)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_seals_a_batch_only_to_the_certified_target_and_refuses_out_of_scope_items_alone() {
    let mut w = World::new(&bin("tessera-agent")).await;
    let peer = w.online_agent("peer-1", POLICY).await;
    let wrap = peer.cert().wrap.clone();
    let target = w.org.agent("target-1");
    let (db, api, scoped) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    let mut statements = std::collections::HashMap::new();
    for (cid, name, scope) in [
        (db, "db", Scope::All),
        (api, "api", Scope::All),
        (
            scoped,
            "scoped",
            Scope::explicit([AgentId::new("peer-1").unwrap()]),
        ),
    ] {
        let (signed, _, payload) =
            w.org
                .credential(cid, 1, name, scope, &format!("{name}-peer-secret"));
        statements.insert(cid, signed.clone());
        let c = Cred {
            id: cid,
            version: 1,
            signed,
            payload,
        };
        let got = outcomes(&mut w, &peer, &batch_of(&wrap, &[&c], &[&c])).await;
        assert!(stored(&got[0].1));
    }
    let request = |cids: &[CredentialId], target: &str, cert: &[u8]| RewrapBatchRequest {
        batch_id: uuid::Uuid::new_v4(),
        target: AgentId::new(target).unwrap(),
        target_cert: cert.to_vec(),
        items: cids
            .iter()
            .enumerate()
            .map(|(i, cid)| RewrapItem {
                request_id: uuid::Uuid::new_v4(),
                nonce: [u8::try_from(i).unwrap() + 1; 32],
                credential_id: *cid,
                version: 1,
                statement: statements[cid].clone(),
            })
            .collect(),
    };

    // The good case, with an out-of-scope item among the good ones: the good ones sealed to the certified key in
    // one envelope, the other refused alone.
    let req = request(&[db, scoped, api], "target-1", &target.cert);
    w.relay
        .send(&peer.id, &Down::RewrapBatchRequest(req.clone()))
        .await;
    let Up::RewrapBatchResponse(r) = w.relay.next_up(&peer.id).await else {
        panic!("expected rewrap_batch_response")
    };
    assert_eq!((r.batch_id, &r.peer), (req.batch_id, &peer.id));
    assert_eq!(r.target_key, Some(target.wrap.public_key().fingerprint()));
    let sealed: Vec<_> = r
        .sealed
        .iter()
        .map(|i| (i.request_id, i.nonce, i.credential_id))
        .collect();
    assert_eq!(
        sealed,
        [
            (req.items[0].request_id, req.items[0].nonce, db),
            (req.items[2].request_id, req.items[2].nonce, api)
        ]
    );
    assert_eq!(r.refused.len(), 1);
    assert_eq!(
        (r.refused[0].request_id, r.refused[0].reason),
        (req.items[1].request_id, RefusalReason::NotInScope)
    );
    let envelope = r.envelope.unwrap();
    let items = batch::open(&target.wrap, &envelope).unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| (i.credential_id, i.version))
            .collect::<Vec<_>>(),
        [(db, 1), (api, 1)]
    );
    items[0]
        .payload
        .expose(|p| assert_eq!(p, br#"{"secret":"db-peer-secret"}"#));
    assert!(
        batch::open(&w.org.agent("stranger").wrap, &envelope).is_err(),
        "sealed to the target alone"
    );

    // Key substitution: a certificate from another CA for the target's name. Every item refused, no envelope.
    let rogue = Org::new().agent("target-1").cert;
    w.relay
        .send(
            &peer.id,
            &Down::RewrapBatchRequest(request(&[db, api], "target-1", &rogue)),
        )
        .await;
    let Up::RewrapBatchResponse(r) = w.relay.next_up(&peer.id).await else {
        panic!("expected rewrap_batch_response")
    };
    assert!(r.sealed.is_empty() && r.envelope.is_none());
    assert!(r
        .refused
        .iter()
        .all(|x| x.reason == RefusalReason::UntrustedTarget));
    // A valid certificate naming someone else than the batch's target.
    w.relay
        .send(
            &peer.id,
            &Down::RewrapBatchRequest(request(&[db], "target-2", &target.cert)),
        )
        .await;
    let Up::RewrapBatchResponse(r) = w.relay.next_up(&peer.id).await else {
        panic!("expected rewrap_batch_response")
    };
    assert_eq!(r.refused[0].reason, RefusalReason::TargetMismatch);
    assert!(r.envelope.is_none());

    w.relay.drain(Duration::from_millis(500)).await;
    for secret in ["db-peer-secret", "api-peer-secret", "scoped-peer-secret"] {
        assert_never_seen(&w.relay, secret);
    }
}
