//! Two relays (replicas) on one PostgreSQL database, each with its own store and memory, as two processes would
//! be: events run one at a time across them (the write turn), each sees what the other committed, and a response
//! may land on the replica that did not dispatch (docs/operations.md, "Running several relays").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::statement::Scope;
use tessera_proto::topics;
use tessera_proto::wire::{
    self, CredentialMissing, Down, RegistrationMode, RewrapRequest, StoreOutcome, Up,
};

use super::tests::{rewrap_msg, store_msg, World};
use super::{Engine, EngineConfig, Outbound};
use crate::state::DeliveryState;

fn send(engine: &mut Engine, from: &AgentId, up: &Up) -> Vec<Outbound> {
    engine.on_message(&topics::agent_up(from), &wire::encode(up).unwrap())
}

fn rewraps(out: &[Outbound]) -> Vec<RewrapRequest> {
    out.iter()
        .filter_map(|o| match &o.msg {
            Down::RewrapRequest(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The credential a `credential_store` carries (its statement, unverified: the test only routes by it).
fn carried(d: &wire::CredentialStore) -> CredentialId {
    d.statement
        .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
        .unwrap()
        .credential_id
}

fn audit_count(w: &World, kind: &str) -> usize {
    w.engine
        .store()
        .audit()
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// Deliveries the audit trail records as confirmed.
fn delivered(w: &World) -> usize {
    w.engine
        .store()
        .audit()
        .unwrap()
        .iter()
        .filter(|e| {
            e.kind == "rewrap_final" && e.data.get("result").map(String::as_str) == Some("success")
        })
        .count()
}

#[test]
fn the_same_repair_asked_through_two_replicas_runs_one_rewrap_and_either_may_finish_it() {
    let (mut w, mut b) = World::replicas(EngineConfig::default());
    let (peer, id, commitment) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("edge-1");
    // The registration lands on replica A, which dispatches the backfill's rewrap.
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let (to, req) = rewrap_msg(&out);
    assert_eq!(to, peer);
    // The workload asks for it through replica B, then through A: both join the rewrap in flight.
    let missing = |n: u128| {
        Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::from_u128(n),
            name: CredentialName::new("db").unwrap(),
        })
    };
    let through_b = send(&mut b, &target, &missing(1));
    assert!(
        rewraps(&through_b).is_empty(),
        "replica B started a second rewrap: {through_b:?}"
    );
    let through_a = send(&mut w.engine, &target, &missing(2));
    assert!(rewraps(&through_a).is_empty(), "{through_a:?}");
    // The peer's answer lands on B, which did not dispatch: it checks the bindings and relays it.
    let resp = w.honest(&peer, &req, "pw");
    let relayed = send(&mut b, &peer, &resp);
    let d = store_msg(&relayed, &target);
    assert_eq!(d.delivery_id, req.request_id);
    // The target's acknowledgement lands on A.
    let ack = w.ack_msg(
        &target,
        d.delivery_id,
        id,
        StoreOutcome::Stored { digest: commitment },
    );
    send(&mut w.engine, &target, &ack);
    assert_eq!(w.row(&id, &target).state, DeliveryState::Stored);
    assert_eq!(
        audit_count(&w, "rewrap_pending"),
        1 + 1,
        "the peer's seeding and one rewrap"
    );
    assert_eq!(delivered(&w), 2);
    tessera_proto::audit::verify(&w.engine.store().audit().unwrap()).unwrap();
    // B mirrors A's commits from its next event on: nothing is left in flight on either, nothing is asked again.
    assert!(b.tick().is_empty());
    assert_eq!(b.in_flight_count(), 0);
    assert_eq!(w.engine.in_flight_count(), 0);
}

#[test]
fn a_rewrap_whose_replica_died_is_timed_out_and_asked_again_by_another() {
    let cfg = EngineConfig::default();
    let (mut w, mut b) = World::replicas(cfg.clone());
    let (peer, id, commitment) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("edge-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let (_, first) = rewrap_msg(&out);
    // Replica A dies with the rewrap in flight, and the peer's answer went to it: lost. A third replica, over a
    // store of its own, stands in for the test's reads.
    let third = crate::state::PgStore::open(&crate::state::PgConfig {
        url: w.db.as_ref().unwrap().url().to_owned(),
        ..crate::state::PgConfig::default()
    })
    .unwrap();
    let a = std::mem::replace(
        &mut w.engine,
        Engine::new(
            std::sync::Arc::new(third),
            w.org.ca.pinned().clone(),
            cfg.clone(),
            std::sync::Arc::new(w.clock.clone()),
        ),
    );
    drop(a);
    // B's tick after the peer's timeout ends the attempt (the only peer was tried); its reconciler asks the peer
    // again after the backoff, with a new nonce.
    w.clock.advance(cfg.peer_timeout_ms + 1);
    assert!(rewraps(&b.tick()).is_empty());
    assert_eq!(b.in_flight_count(), 0);
    let mut again = Vec::new();
    for _ in 0..30 {
        w.clock.advance(cfg.reconcile_interval_ms);
        again = rewraps(&b.tick());
        if !again.is_empty() {
            break;
        }
    }
    let second = match again.as_slice() {
        [r] => r.clone(),
        other => panic!("expected one new rewrap request, got {other:?}"),
    };
    assert_ne!(second.nonce, first.nonce);
    assert_eq!(second.credential_id, id);
    w.complete_honestly(&peer, &second, "pw", commitment);
    assert_eq!(w.row(&id, &target).state, DeliveryState::Stored);
    tessera_proto::audit::verify(&w.engine.store().audit().unwrap()).unwrap();
}

#[test]
fn two_replicas_racing_over_one_database_deliver_each_credential_once() {
    const N: usize = 40;
    let (mut w, mut b) = World::replicas(EngineConfig::default());
    let peer = w.agent("peer-1");
    let mut creds: Vec<(CredentialId, tessera_proto::commitment::Commitment)> = Vec::new();
    for i in 0..N {
        let (id, commitment, _) = w.put(&format!("c{i}"), Scope::All, &format!("s{i}"), &[&peer]);
        creds.push((id, commitment));
    }
    // The peer takes its operator envelopes.
    let out = w.register(&peer, RegistrationMode::FirstRegistration, vec![]);
    for (id, commitment) in &creds {
        let d = out
            .iter()
            .find_map(|o| match &o.msg {
                Down::CredentialStore(s) if carried(s) == *id => Some(s.clone()),
                _ => None,
            })
            .unwrap();
        w.ack(
            &peer,
            d.delivery_id,
            *id,
            StoreOutcome::Stored {
                digest: *commitment,
            },
        );
    }
    let target = w.agent("edge-1");
    let requests = rewraps(&w.register(&target, RegistrationMode::FirstRegistration, vec![]));
    assert_eq!(requests.len(), N);
    let secret = |id: &CredentialId| {
        let i = creds.iter().position(|(c, _)| c == id).unwrap();
        format!("s{i}")
    };
    let responses: Vec<Up> = requests
        .iter()
        .map(|r| w.honest(&peer, r, &secret(&r.credential_id)))
        .collect();
    // The answers land on both replicas at once, each also ticking: the turn makes them take turns.
    let (even, odd): (Vec<_>, Vec<_>) = responses.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let feed = |engine: &mut Engine, msgs: Vec<(usize, &Up)>| {
        let mut out = Vec::new();
        for (_, m) in msgs {
            out.extend(send(engine, &peer, m));
            out.extend(engine.tick());
        }
        out
    };
    let (out_a, out_b) = std::thread::scope(|s| {
        let a = s.spawn(|| feed(&mut w.engine, even));
        let b = s.spawn(|| feed(&mut b, odd));
        (a.join().unwrap(), b.join().unwrap())
    });
    let stores: Vec<wire::CredentialStore> = out_a
        .iter()
        .chain(&out_b)
        .filter_map(|o| match &o.msg {
            Down::CredentialStore(s) if o.to == target => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stores.len(), N, "each answer relayed once");
    let acks: Vec<Up> = stores
        .iter()
        .map(|d| {
            let digest = creds.iter().find(|(c, _)| *c == carried(d)).unwrap().1;
            w.ack_msg(
                &target,
                d.delivery_id,
                carried(d),
                StoreOutcome::Stored { digest },
            )
        })
        .collect();
    let (even, odd): (Vec<_>, Vec<_>) = acks.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let feed = |engine: &mut Engine, msgs: Vec<(usize, &Up)>| {
        for (_, m) in msgs {
            assert!(rewraps(&send(engine, &target, m)).is_empty());
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| feed(&mut w.engine, even));
        s.spawn(|| feed(&mut b, odd));
    });
    for (id, _) in &creds {
        assert_eq!(w.row(id, &target).state, DeliveryState::Stored);
    }
    // One rewrap and one delivery per credential to the target (the peer's N came from operator envelopes).
    assert_eq!(delivered(&w), 2 * N);
    assert_eq!(audit_count(&w, "rewrap_pending"), 2 * N);
    tessera_proto::audit::verify(&w.engine.store().audit().unwrap()).unwrap();
    assert_eq!(
        w.engine.store().agent(&target).unwrap().unwrap().state,
        tessera_proto::wire::AgentState::Online
    );
}
