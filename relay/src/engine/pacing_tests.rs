//! Backfill pacing (docs/protocol.md, "Backfill pacing"): backfills ask one peer for at most `peer_max_in_flight`
//! rewraps, pause when it is full and resume, longest waiting first, as it answers; JIT repair is not paced.

use tessera_proto::ids::{AgentId, CredentialName};
use tessera_proto::wire::{AgentState, CredentialMissing, Down, RewrapRequest, StoreOutcome, Up};

use super::batch_tests::{peer_with, register, secret_of, singles};
use super::tests::{store_msg, World};
use super::*;
use crate::state::DeliveryState;

/// The rewrap requests sent, each with the peer asked.
fn requests(out: &[Outbound]) -> Vec<(AgentId, RewrapRequest)> {
    out.iter()
        .filter_map(|o| match &o.msg {
            Down::RewrapRequest(r) => Some((o.to.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// `peer` answers `req` honestly and the target acknowledges; returns what the relay sent on both.
fn answer(w: &mut World, (peer, req): &(AgentId, RewrapRequest)) -> Vec<Outbound> {
    let secret = secret_of(w, req.credential_id);
    let resp = w.honest(peer, req, &secret);
    let mut out = w.up(peer, &resp);
    let d = store_msg(&out, &req.target);
    let c = w
        .engine
        .store
        .credential(&req.credential_id)
        .unwrap()
        .unwrap()
        .commitment;
    out.extend(w.ack(
        &req.target,
        d.delivery_id,
        req.credential_id,
        StoreOutcome::Stored { digest: c },
    ));
    out
}

#[test]
fn backfills_wait_for_a_full_peer_and_resume_in_turn_while_jit_is_not_paced() {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        peer_max_in_flight: 2,
        batch_size: 0,
        ..EngineConfig::default()
    });
    let (peer, creds) = peer_with(&mut w, "peer-1", 3, false);
    let (a, b) = (w.agent("target-a"), w.agent("target-b"));
    let out = register(&mut w, &a, false);
    let mut asked = requests(&out);
    assert_eq!(asked.len(), 2, "two of a's three: the peer's limit");
    let out = register(&mut w, &b, false);
    assert_eq!(singles(&out), 0, "the peer is full: b waits");
    assert_eq!(
        w.engine.store.agent(&b).unwrap().unwrap().state,
        AgentState::Backfilling
    );
    // JIT repair is not paced: b's workload gets its rewrap asked at once.
    let out = w.up(
        &b,
        &Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::new_v4(),
            name: CredentialName::new("c2").unwrap(),
        }),
    );
    let jit = requests(&out);
    assert_eq!(jit.len(), 1, "{out:?}");
    assert_eq!(
        w.engine.pacing.load(&peer),
        3,
        "above the limit, by JIT alone"
    );

    // Each answer frees a place at peer-1. A resumed backfill asks peer-1 only below its limit (the JIT rewrap
    // counts); a target that now holds a credential is a peer with room of its own.
    let mut queue = jit;
    queue.append(&mut asked);
    let mut most = 0;
    while let Some(req) = queue.pop() {
        let next = requests(&answer(&mut w, &req));
        let to_peer = next.iter().filter(|(to, _)| *to == peer).count();
        assert!(
            w.engine.pacing.load(&peer) <= 2 || to_peer == 0,
            "a backfill asked peer-1 past its limit: {next:?}"
        );
        most = most.max(w.engine.pacing.load(&peer));
        queue.extend(next);
    }
    assert!(most <= 3, "at most the limit and the JIT rewrap");
    for target in [&a, &b] {
        for (id, _) in &creds {
            assert_eq!(w.row(id, target).state, DeliveryState::Stored);
        }
        assert_eq!(
            w.engine.store.agent(target).unwrap().unwrap().state,
            AgentState::Online
        );
    }
    assert_eq!(w.engine.pacing.load(&peer), 0);
}

#[test]
fn a_paused_backfill_that_ended_meanwhile_leaves_the_queue() {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        peer_max_in_flight: 1,
        batch_size: 0,
        ..EngineConfig::default()
    });
    let (_peer, _) = peer_with(&mut w, "peer-1", 1, false);
    let (a, b) = (w.agent("target-a"), w.agent("target-b"));
    let mut asked = requests(&register(&mut w, &a, false));
    assert_eq!(asked.len(), 1);
    assert!(requests(&register(&mut w, &b, false)).is_empty());
    assert!(w.engine.pacing.is_paused(&b));
    // a's delivery makes a a holder: b's backfill resumes (from a or the peer) and ends.
    while let Some(req) = asked.pop() {
        asked.extend(requests(&answer(&mut w, &req)));
    }
    assert_eq!(
        w.engine.store.agent(&b).unwrap().unwrap().state,
        AgentState::Online
    );
    // Nothing is left paused to be tried at every tick.
    for _ in 0..3 {
        w.clock.advance(1_000);
        assert!(w.engine.tick().is_empty());
    }
    assert!(!w.engine.pacing.is_paused(&a) && !w.engine.pacing.is_paused(&b));
    assert_eq!(w.engine.pacing.take_resumable(), (0, 0));
}

#[test]
fn a_target_that_stored_a_credential_is_room_for_paused_backfills_beyond_the_places_freed() {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        peer_max_in_flight: 1,
        batch_size: 0,
        ..EngineConfig::default()
    });
    let (peer, _) = peer_with(&mut w, "peer-1", 1, false);
    let targets: Vec<AgentId> = (0..4).map(|i| w.agent(&format!("target-{i}"))).collect();
    let mut asked = requests(&register(&mut w, &targets[0], false));
    assert_eq!(asked.len(), 1);
    for t in &targets[1..] {
        assert!(requests(&register(&mut w, t, false)).is_empty());
        assert!(w.engine.pacing.is_paused(t));
    }
    // peer-1 answers target-0, which stores: one place freed at peer-1, and target-0 is now a holder with room of
    // its own. Two paused backfills go on in this exchange (one at each), not only the one the freed place allows.
    let next = requests(&answer(&mut w, &asked.pop().unwrap()));
    let mut asked_of: Vec<AgentId> = next.iter().map(|(to, _)| to.clone()).collect();
    asked_of.sort();
    assert_eq!(asked_of, vec![peer, targets[0].clone()]);
    let paused = targets.iter().filter(|t| w.engine.pacing.is_paused(t));
    assert_eq!(paused.count(), 1, "the last waits: every holder is full");
}

#[test]
fn a_resume_that_finds_the_peers_still_full_stops_there_and_keeps_the_order() {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        peer_max_in_flight: 1,
        batch_size: 0,
        ..EngineConfig::default()
    });
    let (_peer, _) = peer_with(&mut w, "peer-1", 1, false);
    let targets: Vec<AgentId> = (0..4).map(|i| w.agent(&format!("target-{i}"))).collect();
    assert_eq!(requests(&register(&mut w, &targets[0], false)).len(), 1);
    for t in &targets[1..] {
        assert!(requests(&register(&mut w, t, false)).is_empty());
    }
    // The tick offers a place; the first paused backfill finds peer-1 still full. The others wait on the same peer:
    // they are not tried in this event, and no place is kept for the next to try them again for nothing.
    w.clock.advance(1_000);
    assert!(requests(&w.engine.tick()).is_empty());
    assert_eq!(w.engine.pacing.take_resumable(), (0, 3));
    for t in &targets[1..] {
        assert_eq!(w.engine.pacing.next_paused().as_ref(), Some(t));
    }
}
