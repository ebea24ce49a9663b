use super::*;

fn oversized() -> ConnectionError {
    ConnectionError::MqttState(StateError::Deserialization(
        rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(3 * 1024 * 1024),
    ))
}

fn streak() -> Streak {
    Streak {
        backoff: Backoff::new(100, 30_000),
        connected_at: None,
        failures: 0,
        size_logged: false,
    }
}

#[test]
fn a_connack_alone_does_not_reset_the_backoff() {
    // The broker accepts every connection and then sends an oversized packet: each failure follows a CONNACK.
    let mut s = streak();
    let mut ceilings = Vec::new();
    let mut now = Instant::now();
    for _ in 0..6 {
        s.connected(now);
        now += Duration::from_millis(50);
        ceilings.push(s.backoff.ceiling_ms());
        let delay = s.failed(&oversized(), now);
        assert!(delay >= Duration::from_millis(100));
    }
    assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 3200]);
    assert_eq!(s.failures, 6);
    assert!(s.size_logged);
}

#[test]
fn a_healthy_connection_starts_a_new_streak() {
    let mut s = streak();
    let now = Instant::now();
    for _ in 0..4 {
        s.failed(&oversized(), now);
    }
    assert_eq!(s.backoff.ceiling_ms(), 1600);
    // Up for a moment only: still the same streak.
    s.connected(now);
    s.failed(
        &ConnectionError::NetworkTimeout,
        now + Duration::from_secs(1),
    );
    assert_eq!(s.backoff.ceiling_ms(), 3200);
    s.connected(now);
    s.failed(&ConnectionError::NetworkTimeout, now + HEALTHY_CONNECTION);
    // Reset before this failure's delay was drawn: the next ceiling is the second step.
    assert_eq!(s.backoff.ceiling_ms(), 200);
    assert_eq!(s.failures, 1);
    assert!(
        !s.size_logged,
        "the size error is logged again in a new streak"
    );
}

#[test]
fn only_the_size_error_is_classified_oversized() {
    assert!(is_oversized(&oversized()));
    assert!(!is_oversized(&ConnectionError::NetworkTimeout));
}
