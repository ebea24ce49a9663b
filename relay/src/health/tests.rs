use super::*;

#[test]
fn the_broker_link_records_when_it_changed() {
    let h = Health::new();
    assert_eq!(
        h.broker(),
        BrokerLink {
            connected: false,
            since_ms: None
        }
    );
    h.set_broker(true);
    let up = h.broker();
    assert!(up.connected && up.since_ms.is_some());
    h.set_broker(false);
    assert!(!h.broker().connected);
}
