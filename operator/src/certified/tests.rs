#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tessera_proto::admin::AgentView;
use tessera_proto::cert::{OrgCa, Validity};
use tessera_proto::ids::AgentId;
use tessera_proto::statement::{RevocationList, Scope};
use tessera_proto::wire::AgentState;

use crate::test_certs::{issue, NOW};

use super::{targets, NotCertified};
use crate::issued::Registry;

fn view(id: &str, der: &[u8]) -> AgentView {
    AgentView {
        id: AgentId::new(id).unwrap(),
        state: AgentState::Online,
        last_seen_ms: 0,
        mode: None,
        cert: tessera_proto::b64_encode(der),
        stale: false,
        version: None,
        batch_rewrap: false,
    }
}

#[test]
fn scope_all_keeps_only_live_registry_certificates_for_the_listed_id() {
    let ca = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let rogue = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let mut reg = Registry::default();
    let a = issue(&ca, "a");
    let old_b = issue(&ca, "b");
    reg.record(&a, NOW);
    reg.record(&old_b, NOW);
    let b = issue(&ca, "b");
    reg.record(&b, NOW);
    let listed = [
        view("a", &a.der),
        view("b", &old_b.der),
        view("c", &a.der),
        view("m", &issue(&rogue, "m").der),
        view("b", &b.der),
    ];
    let t = targets(
        &Scope::All,
        &listed,
        &reg,
        ca.pinned(),
        NOW + 1,
        &RevocationList::empty(),
    )
    .unwrap();
    let sealed: Vec<&str> = t.certs.iter().map(|c| c.agent_id.as_str()).collect();
    assert_eq!(sealed, ["a", "b"]);
    assert_eq!(t.certs[1].serial, b.serial);
    let skipped: Vec<&str> = t.skipped.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(skipped, ["b", "c", "m"]);
}

#[test]
fn an_explicit_scope_seals_to_exactly_the_named_agents_or_fails() {
    let ca = OrgCa::generate("Org", Validity::days_from(NOW - 10, 365)).unwrap();
    let mut reg = Registry::default();
    let a = issue(&ca, "a");
    reg.record(&a, NOW);
    reg.record(&issue(&ca, "b"), NOW);
    // The relay's list plays no part in an explicit scope.
    let t = targets(
        &Scope::explicit([AgentId::new("a").unwrap()]),
        &[],
        &reg,
        ca.pinned(),
        NOW + 1,
        &RevocationList::empty(),
    )
    .unwrap();
    assert_eq!(t.certs.len(), 1);
    assert_eq!(t.certs[0].serial, a.serial);
    let err = targets(
        &Scope::explicit([AgentId::new("a").unwrap(), AgentId::new("z").unwrap()]),
        &[],
        &reg,
        ca.pinned(),
        NOW + 1,
        &RevocationList::empty(),
    )
    .unwrap_err();
    assert_eq!(err, NotCertified(AgentId::new("z").unwrap()));
    // Revoked: not sealed to.
    let revoked = RevocationList::new(1, NOW, [a.serial.clone()]);
    assert!(targets(
        &Scope::explicit([AgentId::new("a").unwrap()]),
        &[],
        &reg,
        ca.pinned(),
        NOW + 1,
        &revoked,
    )
    .is_err());
}
