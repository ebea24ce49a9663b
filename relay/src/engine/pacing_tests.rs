//! Backfill pacing (docs/protocol.md, "Backfill pacing"): backfills ask one peer for at most `peer_max_in_flight`
//! rewraps, pause when it is full and resume, longest waiting first, as it answers; JIT repair is not paced.

use tessera_proto::ids::{AgentId, CredentialName};
use tessera_proto::wire::{AgentState, CredentialMissing, Down, RewrapRequest, StoreOutcome, Up};

use super::batch_tests::{peer_with, register, secret_of, singles};
use super::tests::{store_msg, World};
use super::*;
use crate::state::DeliveryState;

/// A world whose backfills ask a peer for at most `peer_max_in_flight` rewraps, one credential per message.
fn paced_world(peer_max_in_flight: usize) -> World {
    let mut w = World::new();
    w.engine.set_config(EngineConfig {
        peer_max_in_flight,
        batch_size: 0,
        ..EngineConfig::default()
    });
    w
}

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
    let mut w = paced_world(2);
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
    let mut w = paced_world(1);
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

/// One peer with one credential and a limit of one rewrap; four targets register: target-0's rewrap fills the peer,
/// the other three backfills are paused. Returns the peer, the targets and target-0's request.
fn one_full_peer_and_three_paused() -> (World, AgentId, Vec<AgentId>, (AgentId, RewrapRequest)) {
    let mut w = paced_world(1);
    let (peer, _) = peer_with(&mut w, "peer-1", 1, false);
    let targets: Vec<AgentId> = (0..4).map(|i| w.agent(&format!("target-{i}"))).collect();
    let mut asked = requests(&register(&mut w, &targets[0], false));
    assert_eq!(asked.len(), 1);
    for t in &targets[1..] {
        assert!(requests(&register(&mut w, t, false)).is_empty());
        assert!(w.engine.pacing.is_paused(t));
    }
    let first = asked.pop().unwrap();
    (w, peer, targets, first)
}

#[test]
fn a_target_that_stored_a_credential_is_room_for_paused_backfills_beyond_the_places_freed() {
    let (mut w, peer, targets, first) = one_full_peer_and_three_paused();
    // peer-1 answers target-0, which stores: one place freed at peer-1, and target-0 is now a holder with room of
    // its own. Two paused backfills go on in this exchange (one at each), not only the one the freed place allows.
    let next = requests(&answer(&mut w, &first));
    let mut asked_of: Vec<AgentId> = next.iter().map(|(to, _)| to.clone()).collect();
    asked_of.sort();
    assert_eq!(asked_of, vec![peer, targets[0].clone()]);
    let paused = targets.iter().filter(|t| w.engine.pacing.is_paused(t));
    assert_eq!(paused.count(), 1, "the last waits: every holder is full");
}

#[test]
fn a_resume_that_finds_the_peers_still_full_passes_over_the_backfills_waiting_on_the_same_credential(
) {
    let (mut w, _peer, targets, _) = one_full_peer_and_three_paused();
    // The tick offers a place; the first paused backfill finds peer-1 still full. The others wait on the same
    // credential: they are not tried in this event, and no place is kept for the next to try them again for nothing.
    w.clock.advance(1_000);
    assert!(requests(&w.engine.tick()).is_empty());
    assert_eq!(w.engine.pacing.take_resumable(), (0, 3));
    for t in &targets[1..] {
        assert_eq!(w.engine.pacing.next_paused().as_ref(), Some(t));
    }
}

/// `peer` holds credential `c{i}` (scope: `peer` and `targets`), delivered from the operator's envelope.
fn holder_of(w: &mut World, i: usize, peer: &AgentId, targets: &[&AgentId]) {
    let mut agents: Vec<AgentId> = targets.iter().map(|t| (*t).clone()).collect();
    agents.push(peer.clone());
    agents.sort();
    let scope = tessera_proto::statement::Scope::Explicit { agents };
    let (id, digest, _) = w.put(&format!("c{i}"), scope, &format!("secret-{i}"), &[peer]);
    let out = register(w, peer, false);
    let d = store_msg(&out, peer);
    w.ack(peer, d.delivery_id, id, StoreOutcome::Stored { digest });
    assert_eq!(w.row(&id, peer).state, DeliveryState::Stored);
}

#[test]
fn a_backfill_waiting_on_another_credential_is_tried_after_one_found_its_peers_full() {
    let mut w = paced_world(1);
    let [p1, p2, a1, a2, b1, b2] =
        ["peer-1", "peer-2", "a-1", "a-2", "b-1", "b-2"].map(|n| w.agent(n));
    holder_of(&mut w, 0, &p1, &[&a1, &a2]);
    holder_of(&mut w, 1, &p2, &[&b1, &b2]);
    // a-1 fills peer-1 (c0), b-1 fills peer-2 (c1); a-2 and b-2 wait, a-2 first.
    let mut asked_b = Vec::new();
    for (t, waits) in [(&a1, false), (&b1, false), (&a2, true), (&b2, true)] {
        let asked = requests(&register(&mut w, t, false));
        assert_eq!(asked.is_empty(), waits, "{t:?}");
        if *t == b1 {
            asked_b = asked;
        }
    }
    // peer-2 answers b-1: a place at peer-2. a-2, first in line, still finds peer-1 full; b-2 is tried all the same,
    // and goes on (at peer-2, or at b-1 once it holds c1).
    let next = requests(&answer(&mut w, &asked_b.pop().unwrap()));
    assert!(
        next.iter().any(|(_, r)| r.target == b2),
        "b-2 was left waiting behind a-2"
    );
    assert!(w.engine.pacing.is_paused(&a2) && !w.engine.pacing.is_paused(&b2));
}
