use super::*;

const RETRY: u64 = 10_000;

fn serial() -> tessera_proto::cert::CertSerial {
    tessera_proto::cert::CertSerial::try_from("0b1e".to_owned()).unwrap()
}

fn ack(mode: RegistrationMode, state: AgentState, backfill: u32) -> RegEvent {
    RegEvent::Ack(RegisterAck {
        mode,
        state,
        backfill,
        serial: None,
    })
}

#[test]
fn mode_follows_the_registered_wrap_key() {
    let a = KeyFingerprint([1; 32]);
    let b = KeyFingerprint([2; 32]);
    assert_eq!(
        choose_mode(None, &a, &[]),
        RegistrationMode::FirstRegistration
    );
    assert_eq!(
        choose_mode(Some(&b), &a, &[]),
        RegistrationMode::KeyRegenerated
    );
    assert_eq!(
        choose_mode(Some(&a), &a, &[]),
        RegistrationMode::WarmReconnect
    );
    // A rotation: registered with the old key (or the green one under validation), still warm.
    assert_eq!(
        choose_mode(Some(&b), &a, &[b]),
        RegistrationMode::WarmReconnect
    );
}

#[test]
fn held_list_only_for_warm_reconnect_and_capped() {
    let held: Vec<Held> = (0..MAX_HELD + 5)
        .map(|_| Held {
            credential_id: tessera_proto::ids::CredentialId::random(),
            version: 1,
        })
        .collect();
    assert_eq!(
        held_for_register(RegistrationMode::WarmReconnect, held.clone()).len(),
        MAX_HELD
    );
    assert!(held_for_register(RegistrationMode::FirstRegistration, held).is_empty());
}

#[test]
fn backfill_then_online() {
    let mode = RegistrationMode::FirstRegistration;
    let (s, a) = Registration::Disconnected.handle(
        RegEvent::Connected {
            mode,
            now_ms: 0,
            serial: serial(),
        },
        RETRY,
    );
    assert_eq!(a, vec![RegAction::SendRegister(mode)]);
    let (s, a) = s.handle(ack(mode, AgentState::Backfilling, 2), RETRY);
    assert_eq!(
        a,
        vec![
            RegAction::RememberRegistration,
            RegAction::PublishStatus(AgentState::Backfilling)
        ]
    );
    let (s, a) = s.handle(RegEvent::Delivered, RETRY);
    assert!(a.is_empty());
    let (s, a) = s.handle(RegEvent::Delivered, RETRY);
    assert_eq!(a, vec![RegAction::PublishStatus(AgentState::Online)]);
    assert_eq!(s, Registration::Online);
}

#[test]
fn nothing_to_backfill_is_online_at_once() {
    let mode = RegistrationMode::WarmReconnect;
    let (s, _) = Registration::Disconnected.handle(
        RegEvent::Connected {
            mode,
            now_ms: 0,
            serial: serial(),
        },
        RETRY,
    );
    let (s, a) = s.handle(ack(mode, AgentState::Online, 0), RETRY);
    assert_eq!(s, Registration::Online);
    assert!(a.contains(&RegAction::PublishStatus(AgentState::Online)));
}

#[test]
fn unacknowledged_register_is_resent_after_the_retry_interval() {
    let mode = RegistrationMode::WarmReconnect;
    let (s, _) = Registration::Disconnected.handle(
        RegEvent::Connected {
            mode,
            now_ms: 1_000,
            serial: serial(),
        },
        RETRY,
    );
    // Serial 0b1e: a spread of 0x0b1e, a factor of 0.75 + 0.5 × 0x0b1e / 65536 ≈ 0.7717: 7,717 ms, then doubling.
    let (s, a) = s.handle(RegEvent::Tick { now_ms: 5_000 }, RETRY);
    assert!(a.is_empty());
    let (s, a) = s.handle(RegEvent::Tick { now_ms: 8_716 }, RETRY);
    assert!(a.is_empty());
    let (s, a) = s.handle(RegEvent::Tick { now_ms: 8_717 }, RETRY);
    assert_eq!(a, vec![RegAction::SendRegister(mode)]);
    assert_eq!(
        s,
        Registration::AwaitingAck {
            mode,
            sent_at_ms: 8_717,
            serial: serial(),
            resent: 1,
        }
    );
    // Sent again: the next wait is twice as long.
    let (s, a) = s.handle(
        RegEvent::Tick {
            now_ms: 8_717 + 15_433,
        },
        RETRY,
    );
    assert!(a.is_empty());
    let (s, a) = s.handle(
        RegEvent::Tick {
            now_ms: 8_717 + 15_434,
        },
        RETRY,
    );
    assert_eq!(a, vec![RegAction::SendRegister(mode)]);
    // A new connection starts again from the shortest wait.
    let (s, _) = s.handle(
        RegEvent::Connected {
            mode,
            now_ms: 100_000,
            serial: serial(),
        },
        RETRY,
    );
    assert!(matches!(s, Registration::AwaitingAck { resent: 0, .. }));
}

#[test]
fn an_ack_for_another_mode_or_out_of_turn_is_ignored() {
    let mode = RegistrationMode::WarmReconnect;
    let (s, _) = Registration::Disconnected.handle(
        RegEvent::Connected {
            mode,
            now_ms: 0,
            serial: serial(),
        },
        RETRY,
    );
    let (s2, a) = s.clone().handle(
        ack(RegistrationMode::FirstRegistration, AgentState::Online, 0),
        RETRY,
    );
    assert_eq!((s2, a), (s, vec![]));
    let (s, a) = Registration::Online.handle(ack(mode, AgentState::Backfilling, 5), RETRY);
    assert_eq!((s, a), (Registration::Online, vec![]));
}

#[test]
fn disconnect_resets_and_reconnect_registers_again() {
    let (s, _) = Registration::Online.handle(RegEvent::Disconnected, RETRY);
    assert_eq!(s, Registration::Disconnected);
    let mode = RegistrationMode::WarmReconnect;
    let (_, a) = s.handle(
        RegEvent::Connected {
            mode,
            now_ms: 0,
            serial: serial(),
        },
        RETRY,
    );
    assert_eq!(a, vec![RegAction::SendRegister(mode)]);
}

#[test]
fn an_ack_naming_another_certificate_is_not_this_registrations() {
    let mode = RegistrationMode::WarmReconnect;
    let (s, _) = Registration::Disconnected.handle(
        RegEvent::Connected {
            mode,
            now_ms: 0,
            serial: serial(),
        },
        RETRY,
    );
    let other = RegEvent::Ack(RegisterAck {
        mode,
        state: AgentState::Online,
        backfill: 0,
        serial: Some(tessera_proto::cert::CertSerial::try_from("0a".to_owned()).unwrap()),
    });
    let (s2, a) = s.clone().handle(other, RETRY);
    assert_eq!((s2, a), (s.clone(), vec![]));
    let mine = RegEvent::Ack(RegisterAck {
        mode,
        state: AgentState::Online,
        backfill: 0,
        serial: Some(serial()),
    });
    assert_eq!(s.handle(mine, RETRY).0, Registration::Online);
}
