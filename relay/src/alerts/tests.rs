use super::*;

#[test]
fn stalled_is_deduplicated_for_24_hours() {
    let k = AlertKind::CredentialSyncStalled;
    let (a, raised) = Alert::occur(None, k, "c1", "m".into(), 0);
    assert!(raised);
    assert_eq!(a.severity, Severity::Medium);
    let (a, raised) = Alert::occur(Some(a), k, "c1", "m".into(), 23 * HOUR_MS);
    assert!(!raised);
    assert_eq!(a.count, 2);
    let (a, raised) = Alert::occur(Some(a), k, "c1", "m".into(), 24 * HOUR_MS);
    assert!(raised, "raised again after the window");
    assert_eq!(a.raised_ms, 24 * HOUR_MS);
}

#[test]
fn integrity_failure_is_raised_once() {
    let k = AlertKind::PeerAgentIntegrityFailure;
    let (a, raised) = Alert::occur(None, k, "p", "m".into(), 0);
    assert!(raised);
    assert_eq!(a.severity, Severity::Critical);
    let (a, raised) = Alert::occur(Some(a), k, "p", "m".into(), 1_000 * HOUR_MS);
    assert!(!raised);
    assert_eq!(a.count, 2);
}

#[test]
fn severities_follow_the_design() {
    assert_eq!(AlertKind::AgentCredentialFlood.severity(), Severity::High);
    assert_eq!(AlertKind::AgentCommitmentFlood.severity(), Severity::High);
    assert_eq!(
        AlertKind::CredentialCommitmentMismatch.severity(),
        Severity::Critical
    );
    assert_eq!(
        AlertKind::RedisCoordinationDegraded.severity(),
        Severity::Medium
    );
}

#[test]
fn an_acknowledgement_lasts_until_the_alert_is_raised_again_and_the_id_is_stable() {
    let k = AlertKind::CredentialSyncStalled;
    let (mut a, _) = Alert::occur(None, k, "credential=c1 agent=<x>", "m".into(), 0);
    let id = a.id();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    a.acknowledged_ms = Some(5);
    let (a, raised) = Alert::occur(Some(a), k, "credential=c1 agent=<x>", "m".into(), HOUR_MS);
    assert!(!raised);
    assert_eq!(
        a.acknowledged_ms,
        Some(5),
        "a suppressed recurrence keeps it"
    );
    assert_eq!(a.id(), id);
    let (a, raised) = Alert::occur(
        Some(a),
        k,
        "credential=c1 agent=<x>",
        "m".into(),
        24 * HOUR_MS,
    );
    assert!(raised);
    assert_eq!(
        a.acknowledged_ms, None,
        "raised again: to acknowledge again"
    );
    let (other, _) = Alert::occur(None, k, "credential=c2", "m".into(), 0);
    assert_ne!(other.id(), id);
}
