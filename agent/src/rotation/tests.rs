use super::*;

const NB: i64 = 1_000_000;
const NA: i64 = NB + 100_000;

fn serial(s: &str) -> CertSerial {
    CertSerial::try_from(s.to_owned()).unwrap()
}

fn ctx(now: i64) -> Context {
    Context {
        now,
        active: (NB, NA, serial("0b1e")),
        online: true,
        policy: Policy::default(),
    }
}

fn step(state: Rotation, event: &RotationEvent, c: &Context) -> (Rotation, Vec<RotationAction>) {
    state.handle(event, c)
}

#[test]
fn a_rotation_starts_at_half_life_not_before() {
    let half = due_at(NB, NA, 50);
    assert_eq!(half, NB + 50_000);
    let (s, a) = step(Rotation::default(), &RotationEvent::Tick, &ctx(half - 1));
    assert_eq!((s, a), (Rotation::default(), vec![]));
    let (s, a) = step(Rotation::default(), &RotationEvent::Tick, &ctx(half));
    assert_eq!(s.name(), "green_issued");
    assert_eq!(a, vec![RotationAction::GenerateAndRequest]);
}

#[test]
fn automatic_rotation_can_be_switched_off_but_an_operator_request_still_starts_one() {
    let mut c = ctx(NA - 1);
    c.policy.automatic = false;
    assert_eq!(
        step(Rotation::default(), &RotationEvent::Tick, &c).0,
        Rotation::default()
    );
    let (s, a) = step(Rotation::default(), &RotationEvent::RotateRequested, &c);
    assert_eq!(s.name(), "green_issued");
    assert_eq!(a, vec![RotationAction::GenerateAndRequest]);
}

#[test]
fn the_whole_path_blue_to_green_and_back_to_one_key() {
    let c = ctx(NB + 60_000);
    let (s, _) = step(Rotation::default(), &RotationEvent::Tick, &c);
    // Re-sent at registration and after resend_secs, not before.
    let (s, a) = step(s, &RotationEvent::Registered, &c);
    assert_eq!(
        a,
        vec![RotationAction::SendRequest, RotationAction::Persist]
    );
    let (s, a) = step(s, &RotationEvent::Tick, &ctx(c.now + 10));
    assert!(a.is_empty());
    let (s, a) = step(s, &RotationEvent::Tick, &ctx(c.now + 3_600));
    assert_eq!(
        a,
        vec![RotationAction::SendRequest, RotationAction::Persist]
    );
    let (s, a) = step(s, &RotationEvent::Certified(serial("0a")), &c);
    assert_eq!(s.name(), "green_certified");
    assert_eq!(a, vec![RotationAction::StoreCertificate]);
    // Not while backfilling.
    let mut busy = ctx(c.now + 1);
    busy.online = false;
    let (s, a) = step(s, &RotationEvent::Tick, &busy);
    assert!(a.is_empty());
    let (s, a) = step(s, &RotationEvent::Tick, &ctx(c.now + 2));
    assert_eq!(s.name(), "green_validating");
    assert_eq!(
        a,
        vec![RotationAction::Persist, RotationAction::StartValidation]
    );
    let (s, _) = step(s, &RotationEvent::Connected, &c);
    let (s, a) = step(s, &RotationEvent::Registered, &ctx(c.now + 3));
    assert_eq!(
        s,
        Rotation::GreenActive {
            blue_serial: serial("0b1e"),
            blue_not_after: NA,
            since: c.now + 3
        }
    );
    assert_eq!(a, vec![RotationAction::Commit]);
    // Every registration while blue is kept re-sends the receipt.
    let (s, a) = step(s, &RotationEvent::Registered, &c);
    assert_eq!(a, vec![RotationAction::SendCompleted]);
    let (s, a) = step(s, &RotationEvent::BlueRevoked, &c);
    assert_eq!(
        (s, a),
        (Rotation::default(), vec![RotationAction::DestroyBlue])
    );
}

#[test]
fn blue_is_destroyed_when_it_expires_even_if_never_revoked() {
    let s = Rotation::GreenActive {
        blue_serial: serial("0b"),
        blue_not_after: NB + 1_000,
        since: NB,
    };
    assert!(step(s.clone(), &RotationEvent::Tick, &ctx(NB + 1_000))
        .1
        .is_empty());
    assert_eq!(
        step(s, &RotationEvent::Tick, &ctx(NB + 1_001)).1,
        vec![RotationAction::DestroyBlue]
    );
}

#[test]
fn a_green_the_broker_refuses_is_abandoned_with_backoff() {
    // Validation started at half-life; the broker never accepts the green certificate.
    let start = due_at(NB, NA, 50);
    let s = Rotation::GreenValidating {
        failures: 0,
        serial: serial("0a"),
        started_at: start,
        connected: false,
    };
    assert!(step(s.clone(), &RotationEvent::Tick, &ctx(start + 59))
        .1
        .is_empty());
    let (s, a) = step(s, &RotationEvent::Tick, &ctx(start + 60));
    let retry_at = start + 60 + 3_600;
    assert_eq!(
        s,
        Rotation::BlueActive {
            failures: 1,
            retry_at
        }
    );
    assert_eq!(
        a,
        vec![RotationAction::Abandon {
            reason: RotationFailure::BrokerRefused,
            serial: serial("0a"),
            retry_at
        }]
    );
    // Past half-life, but no automatic retry before retry_at.
    assert!(step(s.clone(), &RotationEvent::Tick, &ctx(retry_at - 1))
        .1
        .is_empty());
    assert_eq!(
        step(s, &RotationEvent::Tick, &ctx(retry_at)).1,
        vec![RotationAction::GenerateAndRequest]
    );
}

#[test]
fn connected_but_unacknowledged_is_told_apart_and_backoff_doubles_to_a_cap() {
    let s = Rotation::GreenValidating {
        failures: 2,
        serial: serial("0a"),
        started_at: NB,
        connected: false,
    };
    let (s, _) = step(s, &RotationEvent::Connected, &ctx(NB));
    let (s, a) = step(s, &RotationEvent::Tick, &ctx(NB + 60));
    assert!(matches!(
        a.as_slice(),
        [RotationAction::Abandon {
            reason: RotationFailure::NoRegisterAck,
            ..
        }]
    ));
    assert_eq!(
        s,
        Rotation::BlueActive {
            failures: 3,
            retry_at: NB + 60 + 4 * 3_600
        }
    );
    let p = Policy::default();
    assert_eq!(backoff(&p, 1), 3_600);
    assert_eq!(backoff(&p, 5), 57_600);
    assert_eq!(backoff(&p, 6), 86_400);
    assert_eq!(backoff(&p, 200), 86_400);
}

#[test]
fn requests_and_certificates_out_of_turn_change_nothing() {
    let c = ctx(NB);
    for s in [
        Rotation::GreenIssued {
            failures: 0,
            sent_at: NB,
        },
        Rotation::GreenCertified {
            failures: 0,
            serial: serial("0a"),
        },
        Rotation::GreenActive {
            blue_serial: serial("0b"),
            blue_not_after: NA,
            since: NB,
        },
    ] {
        assert_eq!(
            step(s.clone(), &RotationEvent::RotateRequested, &c),
            (s.clone(), vec![])
        );
        if !matches!(s, Rotation::GreenIssued { .. }) {
            assert_eq!(
                step(s.clone(), &RotationEvent::Certified(serial("0c")), &c),
                (s, vec![])
            );
        }
    }
    assert_eq!(
        step(
            Rotation::default(),
            &RotationEvent::Certified(serial("0c")),
            &c
        ),
        (Rotation::default(), vec![])
    );
    assert_eq!(
        step(Rotation::default(), &RotationEvent::BlueRevoked, &c),
        (Rotation::default(), vec![])
    );
}

#[test]
fn a_restart_during_validation_validates_again_and_the_state_round_trips() {
    let s = Rotation::GreenValidating {
        failures: 1,
        serial: serial("0a"),
        started_at: NB,
        connected: true,
    };
    assert_eq!(
        s.clone().resume(),
        Rotation::GreenCertified {
            failures: 1,
            serial: serial("0a")
        }
    );
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Rotation>(&json).unwrap(), s);
    assert!(serde_json::from_str::<Rotation>(
        r#"{"state":"blue_active","failures":0,"retry_at":0,"x":1}"#
    )
    .is_err());
}

#[test]
fn a_green_that_stops_verifying_before_the_switch_is_given_up() {
    for s in [
        Rotation::GreenCertified {
            failures: 0,
            serial: serial("0a"),
        },
        Rotation::GreenValidating {
            failures: 0,
            serial: serial("0a"),
            started_at: NB,
            connected: true,
        },
    ] {
        let (next, a) = step(s, &RotationEvent::GreenUnusable, &ctx(NB + 10));
        assert_eq!(
            next,
            Rotation::BlueActive {
                failures: 1,
                retry_at: NB + 10 + 3_600
            }
        );
        assert_eq!(
            a,
            vec![RotationAction::Abandon {
                reason: RotationFailure::CertificateInvalid,
                serial: serial("0a"),
                retry_at: NB + 10 + 3_600
            }]
        );
    }
}

#[test]
fn an_unanswered_request_is_started_over_on_request_but_not_at_once() {
    let s = Rotation::GreenIssued {
        failures: 0,
        sent_at: NB,
    };
    assert!(
        step(s.clone(), &RotationEvent::RotateRequested, &ctx(NB + 60))
            .1
            .is_empty()
    );
    assert_eq!(
        step(s, &RotationEvent::RotateRequested, &ctx(NB + 3_600)).1,
        vec![RotationAction::GenerateAndRequest]
    );
}

#[test]
fn blue_goes_when_green_is_itself_due_even_if_blue_is_never_revoked() {
    // The certificate in use (green) from NB to NA; blue still valid long after.
    let s = Rotation::GreenActive {
        blue_serial: serial("0b"),
        blue_not_after: NA * 2,
        since: NB,
    };
    assert!(step(s.clone(), &RotationEvent::Tick, &ctx(NB + 10))
        .1
        .is_empty());
    assert_eq!(
        step(s, &RotationEvent::Tick, &ctx(due_at(NB, NA, 50))).1,
        vec![RotationAction::DestroyBlue]
    );
}
