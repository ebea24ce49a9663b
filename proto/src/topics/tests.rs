use super::*;

fn agent(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

#[test]
fn topics_round_trip() {
    let a = agent("edge-7");
    assert_eq!(agent_up(&a), "tessera/v1/agents/edge-7/up");
    assert_eq!(
        parse_agent_topic(&agent_up(&a)),
        Some((a.clone(), AgentChannel::Up))
    );
    assert_eq!(
        parse_agent_topic(&agent_down(&a)),
        Some((a.clone(), AgentChannel::Down))
    );
    assert_eq!(
        parse_agent_topic(&agent_status(&a)),
        Some((a, AgentChannel::Status))
    );
}

#[test]
fn foreign_and_malformed_topics_are_rejected() {
    for t in [
        "tessera/v1/agents/+/up",
        "tessera/v1/agents/#",
        "tessera/v1/agents/a/b/up",
        "tessera/v1/agents/a/upx",
        "tessera/v2/agents/a/up",
        "tessera/v1/operators/a/up",
        "tessera/v1/agents//up",
    ] {
        assert_eq!(parse_agent_topic(t), None, "{t}");
    }
}

#[test]
fn relay_subscribes_through_a_shared_group() {
    assert_eq!(relay_agents_up("g1"), "$share/g1/tessera/v1/agents/+/up");
}

#[test]
fn acl_confines_agents_by_username() {
    let acl = mosquitto_acl(&["relay-1"]);
    assert!(acl.contains("pattern write tessera/v1/agents/%u/up"));
    assert!(acl.contains("pattern read tessera/v1/agents/%u/down"));
    assert!(acl.contains("user relay-1\n"));
    assert!(!acl.contains("pattern readwrite tessera/v1/agents/+"));
}
