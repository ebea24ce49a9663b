//! The lifecycle's transitions, without a store, a broker or a clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::wire::{PublicReason, RefusalReason};

use super::{
    attempt_failed, row_delivered, AfterFailure, Dispatch, PeerAnswer, PendingRewrap, Source,
    Stage, Step, TargetAnswer, TargetOutcome, Timing, Unsolicited,
};
use crate::schedule::Backoff;
use crate::state::{DeliveryRow, DeliveryState};

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

const T0: Timing = Timing {
    now_ms: 1_000,
    peer_timeout_ms: 30_000,
};

fn dispatch(jit: Option<uuid::Uuid>) -> Dispatch {
    Dispatch {
        request_id: uuid::Uuid::new_v4(),
        credential: CredentialId::random(),
        version: 3,
        target: agent("target"),
        jit,
        audit_seq: 17,
    }
}

/// A dispatch that asked `peer-a` with nonce 1s.
fn asking() -> PendingRewrap {
    PendingRewrap::ask_first(
        dispatch(Some(uuid::Uuid::new_v4())),
        agent("peer-a"),
        [1; 32],
        T0,
    )
}

fn answer<'a>(p: &PendingRewrap, from: &'a AgentId, nonce: &'a [u8; 32]) -> PeerAnswer<'a> {
    PeerAnswer {
        from,
        claimed_peer: from,
        nonce,
        credential: p.credential,
        version: p.version,
        target_key_current: true,
    }
}

/// `p` after peer-a's valid answer.
fn at_target(p: &PendingRewrap) -> PendingRewrap {
    let peer = agent("peer-a");
    p.on_peer_answer(&answer(p, &peer, &[1; 32]), T0).unwrap()
}

fn stored<'a>(p: &PendingRewrap, from: &'a AgentId, outcome: TargetOutcome) -> TargetAnswer<'a> {
    TargetAnswer {
        from,
        credential: p.credential,
        version: p.version,
        outcome,
    }
}

fn unsolicited(reason: &str) -> Unsolicited {
    Unsolicited(reason.to_owned())
}

#[test]
fn the_first_ask_awaits_that_peer_until_the_timeout() {
    let p = asking();
    assert_eq!(
        p.stage,
        Stage::AwaitingPeer {
            peer: agent("peer-a"),
            nonce: [1; 32]
        }
    );
    assert_eq!(p.tried, vec![agent("peer-a")]);
    assert_eq!(p.deadline_ms, 31_000);
    assert_eq!(p.awaited_peer(), Some(&agent("peer-a")));
}

#[test]
fn a_peer_answer_that_holds_every_binding_goes_on_to_the_target() {
    let p = asking();
    let later = Timing {
        now_ms: 5_000,
        ..T0
    };
    let peer = agent("peer-a");
    let next = p
        .on_peer_answer(&answer(&p, &peer, &[1; 32]), later)
        .unwrap();
    assert_eq!(
        next.stage,
        Stage::AwaitingTarget {
            source: Source::Peer(agent("peer-a"))
        }
    );
    assert_eq!(next.deadline_ms, 35_000, "the target gets a full timeout");
    assert_eq!((next.jit, next.tried.len()), (p.jit, 1));
    assert_eq!(next.awaited_peer(), None);
}

#[test]
fn each_broken_binding_of_a_peer_answer_is_refused_with_its_reason() {
    let p = asking();
    let (peer, other) = (agent("peer-a"), agent("peer-b"));
    let cases: Vec<(PeerAnswer<'_>, &str)> = vec![
        (answer(&p, &peer, &[2; 32]), "NONCE_MISMATCH"),
        (answer(&p, &other, &[1; 32]), "PEER_MISMATCH"),
        (
            PeerAnswer {
                claimed_peer: &other,
                ..answer(&p, &peer, &[1; 32])
            },
            "PEER_MISMATCH",
        ),
        (
            PeerAnswer {
                credential: CredentialId::random(),
                ..answer(&p, &peer, &[1; 32])
            },
            "CREDENTIAL_MISMATCH",
        ),
        (
            PeerAnswer {
                version: 2,
                ..answer(&p, &peer, &[1; 32])
            },
            "CREDENTIAL_MISMATCH",
        ),
        (
            PeerAnswer {
                target_key_current: false,
                ..answer(&p, &peer, &[1; 32])
            },
            "TARGET_KEY_MISMATCH",
        ),
    ];
    for (a, reason) in cases {
        assert_eq!(p.on_peer_answer(&a, T0), Err(unsolicited(reason)), "{a:?}");
    }
    // A second answer once the envelope went to the target (a replay) is out of stage.
    let relayed = at_target(&p);
    assert_eq!(
        relayed.on_peer_answer(&answer(&p, &peer, &[1; 32]), T0),
        Err(unsolicited("WRONG_STAGE"))
    );
}

#[test]
fn only_the_awaited_peer_echoing_its_nonce_can_refuse() {
    let p = asking();
    assert_eq!(
        p.on_peer_refused(&agent("peer-a"), &[1; 32]),
        Ok(Step::NextPeer(p.clone()))
    );
    for (from, nonce) in [("peer-b", [1; 32]), ("peer-a", [9; 32])] {
        assert_eq!(
            p.on_peer_refused(&agent(from), &nonce),
            Err(unsolicited("REFUSAL_MISMATCH"))
        );
    }
    assert_eq!(
        at_target(&p).on_peer_refused(&agent("peer-a"), &[1; 32]),
        Err(unsolicited("REFUSAL_MISMATCH")),
        "a refusal after the answer is not the peer's to give"
    );
}

#[test]
fn the_target_answer_must_be_the_targets_for_this_version_in_stage() {
    let p = asking();
    let target = agent("target");
    assert_eq!(
        p.on_target_answer(stored(&p, &target, TargetOutcome::Verified)),
        Err(unsolicited("DELIVERY_MISMATCH")),
        "nothing went to the target yet"
    );
    let q = at_target(&p);
    let peer = agent("peer-a");
    for a in [
        stored(&q, &peer, TargetOutcome::Verified),
        TargetAnswer {
            version: 2,
            ..stored(&q, &target, TargetOutcome::Verified)
        },
        TargetAnswer {
            credential: CredentialId::random(),
            ..stored(&q, &target, TargetOutcome::Verified)
        },
    ] {
        assert_eq!(q.on_target_answer(a), Err(unsolicited("DELIVERY_MISMATCH")));
    }
}

#[test]
fn a_proven_store_delivers_and_names_its_source() {
    let q = at_target(&asking());
    let target = agent("target");
    assert_eq!(
        q.on_target_answer(stored(&q, &target, TargetOutcome::Verified)),
        Ok(Step::Delivered(Source::Peer(agent("peer-a"))))
    );
    let op = PendingRewrap::operator_envelope(dispatch(None), T0);
    assert_eq!(
        op.on_target_answer(stored(&op, &target, TargetOutcome::Verified)),
        Ok(Step::Delivered(Source::Operator))
    );
}

#[test]
fn a_store_without_a_valid_receipt_is_not_recorded() {
    let q = at_target(&asking());
    let target = agent("target");
    assert_eq!(
        q.on_target_answer(stored(
            &q,
            &target,
            TargetOutcome::BadReceipt("signed by another key".to_owned())
        )),
        Err(unsolicited("BAD_RECEIPT: signed by another key"))
    );
}

#[test]
fn a_mismatch_attributes_the_source_answers_the_workload_once_and_goes_on() {
    let q = at_target(&asking());
    assert!(q.jit.is_some());
    let target = agent("target");
    let Ok(Step::Mismatch { source, next }) =
        q.on_target_answer(stored(&q, &target, TargetOutcome::Mismatch))
    else {
        panic!("a mismatch step")
    };
    assert_eq!(source, Source::Peer(agent("peer-a")));
    assert_eq!(
        next.jit, None,
        "the workload is answered now, not again later"
    );
    assert_eq!(next.tried, q.tried, "the failed peer stays tried");
}

#[test]
fn an_unopenable_envelope_blames_the_peer_but_ends_an_operator_delivery() {
    let target = agent("target");
    for reason in [RefusalReason::BadEnvelope, RefusalReason::BadPayload] {
        let q = at_target(&asking());
        assert_eq!(
            q.on_target_answer(stored(&q, &target, TargetOutcome::Refused(reason))),
            Ok(Step::NextPeer(q.clone()))
        );
        let op = PendingRewrap::operator_envelope(dispatch(None), T0);
        assert_eq!(
            op.on_target_answer(stored(&op, &target, TargetOutcome::Refused(reason))),
            Ok(Step::Fail {
                result: format!("target_refused:{reason:?}"),
                reason: PublicReason::BackendBusy
            })
        );
    }
    let q = at_target(&asking());
    assert_eq!(
        q.on_target_answer(stored(
            &q,
            &target,
            TargetOutcome::Refused(RefusalReason::NotInScope)
        )),
        Ok(Step::Fail {
            result: "target_refused:NotInScope".to_owned(),
            reason: PublicReason::BackendBusy
        })
    );
    assert_eq!(
        q.on_target_answer(stored(&q, &target, TargetOutcome::Unknown)),
        Ok(Step::Fail {
            result: "target_unknown_outcome".to_owned(),
            reason: PublicReason::BackendBusy
        })
    );
}

#[test]
fn a_timeout_moves_on_to_the_next_peer_except_for_an_operator_envelope() {
    let p = asking();
    assert_eq!(p.on_tick(30_999), None, "not before the deadline");
    assert_eq!(p.on_tick(31_000), Some(Step::NextPeer(p.clone())));
    let q = at_target(&p);
    assert_eq!(q.on_tick(31_000), Some(Step::NextPeer(q.clone())));
    let op = PendingRewrap::operator_envelope(dispatch(None), T0);
    assert_eq!(
        op.on_tick(31_000),
        Some(Step::Fail {
            result: "timeout".to_owned(),
            reason: PublicReason::Timeout
        })
    );
}

#[test]
fn asking_again_takes_a_fresh_nonce_and_ends_when_no_peer_is_left() {
    let mut p = asking();
    let later = Timing {
        now_ms: 40_000,
        ..T0
    };
    p.ask(Some(agent("peer-b")), [2; 32], later).unwrap();
    assert_eq!(
        p.stage,
        Stage::AwaitingPeer {
            peer: agent("peer-b"),
            nonce: [2; 32]
        }
    );
    assert_eq!(p.tried, vec![agent("peer-a"), agent("peer-b")]);
    assert_eq!(p.deadline_ms, 70_000);
    assert!(p.may_ask_another(3) && !p.may_ask_another(2));
    let before = p.clone();
    assert_eq!(p.ask(None, [3; 32], later), Err(PublicReason::Timeout));
    assert_eq!(p, before, "a refused ask changes nothing");
    let mut op = PendingRewrap::operator_envelope(dispatch(None), T0);
    assert_eq!(op.ask(None, [3; 32], later), Err(PublicReason::NoPeer));
}

/// The JSON relays stored before the enum existed (testdata), read and written unchanged.
#[test]
fn the_stored_layout_is_the_first_releases() {
    let awaiting_peer = include_str!("../../testdata/pending_awaiting_peer.json").trim();
    let p: PendingRewrap = serde_json::from_str(awaiting_peer).unwrap();
    assert_eq!(
        p.stage,
        Stage::AwaitingPeer {
            peer: agent("peer-a"),
            nonce: [1; 32]
        }
    );
    assert_eq!(serde_json::to_string(&p).unwrap(), awaiting_peer);

    let operator = include_str!("../../testdata/pending_operator_envelope.json").trim();
    let p: PendingRewrap = serde_json::from_str(operator).unwrap();
    assert_eq!(
        p.stage,
        Stage::AwaitingTarget {
            source: Source::Operator
        }
    );
    assert_eq!(serde_json::to_string(&p).unwrap(), operator);

    // A first-release record awaiting the target kept the peer's nonce: read (and ignored), written back as zeros.
    let first = include_str!("../../testdata/pending_awaiting_target_first_release.json").trim();
    let p: PendingRewrap = serde_json::from_str(first).unwrap();
    assert_eq!(
        p.stage,
        Stage::AwaitingTarget {
            source: Source::Peer(agent("peer-a"))
        }
    );
    let ones = vec!["1"; 32].join(",");
    let zeros = vec!["0"; 32].join(",");
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        first.replace(&ones, &zeros)
    );

    // Awaiting a peer that is not named cannot be represented; such a record is refused, not guessed at.
    let broken = awaiting_peer.replace(r#""peer":"peer-a""#, r#""peer":null"#);
    assert!(serde_json::from_str::<PendingRewrap>(&broken).is_err());
}

fn row(state: DeliveryState) -> DeliveryRow {
    DeliveryRow {
        state,
        ..DeliveryRow::pending(CredentialId::random(), agent("target"), 3, 0)
    }
}

#[test]
fn failed_attempts_follow_the_backoff_table_then_stall_the_row() {
    let backoff = Backoff {
        delays_ms: vec![100, 1_000],
        max_attempts: 3,
    };
    let mut r = row(DeliveryState::Pending);
    assert_eq!(
        attempt_failed(&mut r, "exhausted", &backoff, 5_000),
        AfterFailure::RetryAt(5_100)
    );
    assert_eq!(
        (r.attempts, r.next_attempt_ms, r.last_error.as_deref()),
        (1, 5_100, Some("exhausted"))
    );
    assert_eq!(
        attempt_failed(&mut r, "timeout", &backoff, 6_000),
        AfterFailure::RetryAt(7_000)
    );
    assert_eq!(
        attempt_failed(&mut r, "timeout", &backoff, 8_000),
        AfterFailure::Stalled
    );
    assert_eq!((r.state, r.attempts), (DeliveryState::Stalled, 3));
    // Only a pending row counts failures: a stalled, stored or untrusted one is left as it is.
    for state in [
        DeliveryState::Stalled,
        DeliveryState::Stored,
        DeliveryState::Untrusted,
    ] {
        let mut r = row(state);
        let before = r.clone();
        assert_eq!(
            attempt_failed(&mut r, "timeout", &backoff, 1),
            AfterFailure::NotPending
        );
        assert_eq!(r, before);
    }
}

#[test]
fn a_delivery_stores_the_row_at_its_version_and_forgets_its_failures() {
    let mut r = row(DeliveryState::Pending);
    r.attempts = 4;
    r.last_error = Some("timeout".to_owned());
    row_delivered(&mut r, 5);
    assert_eq!(
        (r.state, r.version, r.attempts, r.last_error),
        (DeliveryState::Stored, 5, 0, None)
    );
}
