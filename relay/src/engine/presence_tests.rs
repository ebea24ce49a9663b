//! Presence: an agent's statuses (its own, and its Last Will) against what its registration established, in the
//! order the broker can deliver them: a Last Will re-sent as a retained status after the agent registered again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_proto::ids::AgentId;
use tessera_proto::statement::{RevocationList, Scope};
use tessera_proto::topics;
use tessera_proto::wire::{self, AgentState, Down, RegistrationMode, Status};

use super::tests::World;
use super::Outbound;

fn status(w: &mut World, agent: &AgentId, state: AgentState, at: i64) -> Vec<Outbound> {
    w.engine.on_message(
        &topics::agent_status(agent),
        &wire::encode(&Status { state, at }).unwrap(),
    )
}

fn presence(w: &World, agent: &AgentId) -> Option<AgentState> {
    w.engine.store.agent(agent).unwrap().map(|a| a.state)
}

#[test]
fn a_last_will_handled_after_the_registration_is_overridden_by_the_agents_next_status() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::WarmReconnect, vec![]);
    assert_eq!(presence(&w, &a), Some(AgentState::Online));
    // The retained Last Will of the agent's previous connection, re-sent when the relay subscribed again.
    status(&mut w, &a, AgentState::Offline, 0);
    assert_eq!(presence(&w, &a), Some(AgentState::Offline));
    // The agent's own status, published once its registration was acknowledged.
    assert!(status(&mut w, &a, AgentState::Online, 1_700_000_000).is_empty());
    assert_eq!(presence(&w, &a), Some(AgentState::Online));
    // Said again: nothing changes.
    status(&mut w, &a, AgentState::Online, 1_700_000_001);
    assert_eq!(presence(&w, &a), Some(AgentState::Online));
}

#[test]
fn an_agent_present_again_goes_on_with_what_it_lacks() {
    let mut w = World::new();
    let (_peer, id, _) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let first = out
        .iter()
        .find_map(|o| match &o.msg {
            Down::RewrapRequest(r) => Some(r.request_id),
            _ => None,
        })
        .expect("the backfill asks the peer");
    status(&mut w, &target, AgentState::Offline, 0);
    // The dispatch times out while the target is away and fails (the target is offline); its row waits.
    w.clock.advance(3 * 30_000 + 1);
    w.engine.tick();
    assert!(w.engine.store.pendings().unwrap().is_empty());
    w.clock.advance(10 * 60_000);
    let out = status(&mut w, &target, AgentState::Backfilling, 1_700_000_000);
    let again = out.iter().find_map(|o| match &o.msg {
        Down::RewrapRequest(r) if r.credential_id == id && r.target == target => Some(r.request_id),
        _ => None,
    });
    assert!(
        again.is_some_and(|r| r != first),
        "the missing credential is asked for again: {out:?}"
    );
    assert_eq!(presence(&w, &target), Some(AgentState::Backfilling));
}

#[test]
fn a_status_never_stands_in_for_a_registration() {
    let mut w = World::new();
    // Never registered: a status creates nothing.
    let stranger = w.agent("edge-9");
    status(&mut w, &stranger, AgentState::Online, 1_700_000_000);
    assert_eq!(presence(&w, &stranger), None);
    // Registered, then its certificate revoked: only a registration (which checks it) could bring it back.
    let a = w.agent("edge-1");
    w.put("db", Scope::All, "pw", &[]);
    w.register(&a, RegistrationMode::WarmReconnect, vec![]);
    status(&mut w, &a, AgentState::Offline, 0);
    let serial = w
        .org
        .ca
        .pinned()
        .verify_agent(&w.agents["edge-1"].cert, w.org.at, &RevocationList::empty())
        .unwrap()
        .serial;
    w.engine
        .set_revocations(RevocationList::new(1, w.org.at, [serial]));
    assert!(status(&mut w, &a, AgentState::Online, 1_700_000_000).is_empty());
    assert_eq!(presence(&w, &a), Some(AgentState::Offline));
}

/// A backfill whose only dispatch ends without delivery (its peer never answers) does not leave the agent
/// backfilling forever: the row waits out its backoff and the agent is listed online.
#[test]
fn a_backfill_whose_dispatch_times_out_ends_online() {
    let mut w = World::new();
    w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    assert!(out.iter().any(|o| matches!(o.msg, Down::RewrapRequest(_))));
    assert_eq!(presence(&w, &target), Some(AgentState::Backfilling));
    // The peer never answers; with no other peer the dispatch ends exhausted.
    w.clock.advance(30_001);
    w.engine.tick();
    assert!(w.engine.store.pendings().unwrap().is_empty());
    assert_eq!(presence(&w, &target), Some(AgentState::Online));
}
