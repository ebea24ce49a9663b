#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::ids::AgentId;
use tessera_proto::statement::Scope;

use super::ScopeDiff;

fn ids(v: &[&str]) -> Vec<AgentId> {
    v.iter().map(|i| AgentId::new(*i).unwrap()).collect()
}

fn scope(v: &[&str]) -> Scope {
    Scope::explicit(ids(v))
}

#[test]
fn a_grant_may_only_add_the_agents_asked_for() {
    let d = ScopeDiff::between(&scope(&["a", "b"]), &scope(&["a", "b", "c"]));
    assert_eq!(d.added, ids(&["c"]));
    assert!(d.removed.is_empty());
    assert!(d.only(true, &ids(&["c"])).is_ok());
    // Adding an agent nobody asked for, or removing one, is refused.
    assert!(d.only(true, &ids(&["x"])).is_err());
    let d = ScopeDiff::between(&scope(&["a", "b"]), &scope(&["a", "c"]));
    assert!(d.only(true, &ids(&["c"])).unwrap_err().contains("remove b"));
    // Nothing to add.
    let d = ScopeDiff::between(&scope(&["a"]), &scope(&["a"]));
    assert!(d.only(true, &ids(&["a"])).is_err());
}

#[test]
fn a_revoke_may_only_remove_the_agents_asked_for() {
    let d = ScopeDiff::between(&scope(&["a", "b", "c"]), &scope(&["a", "c"]));
    assert!(d.only(false, &ids(&["b"])).is_ok());
    assert!(d.only(false, &ids(&["c"])).is_err());
    let d = ScopeDiff::between(&scope(&["a", "b"]), &scope(&["c"]));
    assert!(d
        .only(false, &ids(&["a", "b"]))
        .unwrap_err()
        .contains("add c"));
    // From all to an explicit list: the list is printed.
    let d = ScopeDiff::between(&Scope::All, &scope(&["a"]));
    assert_eq!(d.to_string(), "scope all -> [a]");
    assert!(d.only(false, &ids(&["b"])).is_ok());
}
