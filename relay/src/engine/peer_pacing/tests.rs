use super::*;

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

#[test]
fn the_load_follows_each_rewrap_from_peer_to_peer_and_frees_a_place_when_it_leaves() {
    let mut p = PeerPacing::default();
    let (a, b) = (agent("peer-a"), agent("peer-b"));
    let (r1, r2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    p.track(r1, Some(&a));
    p.track(r2, Some(&a));
    p.track(r2, Some(&a));
    assert_eq!((p.load(&a), p.asked()), (2, 2));
    // Asked again of another peer: one place freed at the first.
    p.track(r1, Some(&b));
    assert_eq!((p.load(&a), p.load(&b)), (1, 1));
    // Nothing paused: the freed place is not kept for later.
    assert_eq!(p.take_resumable(), (0, 0));
    p.pause(&agent("target"));
    p.pause(&agent("target"));
    // Answered (moved on to the target) and ended: two places freed for the paused backfill.
    p.track(r1, None);
    p.track(r2, None);
    p.track(r2, None);
    assert_eq!((p.load(&a), p.load(&b), p.asked()), (0, 0, 0));
    assert_eq!(p.take_resumable(), (2, 1));
    assert_eq!(p.take_resumable(), (0, 1));
    assert_eq!(p.next_paused(), Some(agent("target")));
    assert_eq!(p.next_paused(), None);
}

#[test]
fn places_not_used_are_kept_and_a_tick_tries_a_paused_backfill_anyway() {
    let mut p = PeerPacing::default();
    p.pause(&agent("t1"));
    p.pause(&agent("t2"));
    // Nothing freed: nothing to try, until a tick nudges.
    assert_eq!(p.take_resumable(), (0, 2));
    p.nudge();
    assert_eq!(p.take_resumable(), (1, 2));
    // What a resume could not use is there the next time.
    p.give_back(3);
    assert_eq!(p.take_resumable(), (3, 2));
    // Resumed and back in front, in order.
    let first = p.next_paused().unwrap();
    let second = p.next_paused().unwrap();
    p.first_again(vec![first.clone(), second.clone()]);
    assert_eq!(p.next_paused(), Some(first));
    assert_eq!(p.next_paused(), Some(second));
    p.nudge();
    assert_eq!(p.take_resumable(), (0, 0), "nothing paused: nothing kept");
}
