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
