#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;

use crate::test_certs::{issue, NOW};

use super::Registry;

#[test]
fn only_the_newest_certificate_of_an_agent_is_live_and_the_replaced_one_is_reported() {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let edge = AgentId::new("edge-1").unwrap();
    let mut reg = Registry::default();
    let first = issue(&ca, "edge-1");
    assert!(reg.record(&first, NOW).is_empty());
    let second = issue(&ca, "edge-1");
    assert_eq!(reg.record(&second, NOW), vec![first.serial.clone()]);
    let live = reg.live(&edge, ca.pinned(), NOW + 1, &RevocationList::empty());
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].serial, second.serial);
    assert!(reg.issued_for(&edge, &second.der));
    assert!(!reg.issued_for(&edge, &first.der));
    // Another agent's certificate is never issued "for" this one.
    let other = issue(&ca, "edge-2");
    reg.record(&other, NOW);
    assert!(!reg.issued_for(&edge, &other.der));
    // Expired or revoked: not live.
    assert!(reg
        .live(
            &edge,
            ca.pinned(),
            NOW + 40 * 86_400,
            &RevocationList::empty()
        )
        .is_empty());
    let revoked = RevocationList::new(1, NOW, [second.serial.clone()]);
    assert!(reg.live(&edge, ca.pinned(), NOW + 1, &revoked).is_empty());
}

#[test]
fn a_certificate_from_another_ca_in_the_file_is_never_live() {
    let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let rogue = OrgCa::generate("Test Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let mut reg = Registry::default();
    reg.record(&issue(&rogue, "edge-1"), NOW);
    let dir = tempfile::tempdir().unwrap();
    reg.save(dir.path()).unwrap();
    let loaded = Registry::require(dir.path()).unwrap();
    assert!(loaded
        .live(
            &AgentId::new("edge-1").unwrap(),
            ca.pinned(),
            NOW + 1,
            &RevocationList::empty()
        )
        .is_empty());
}
