use super::*;

#[test]
fn names_accept_the_documented_alphabet() {
    for ok in ["a", "agent-01", "SNMP_ro", &"x".repeat(128)] {
        assert!(AgentId::new(ok).is_ok(), "{ok}");
    }
}

#[test]
fn names_refuse_topic_injection_and_junk() {
    for bad in [
        "",
        "a/b",
        "+",
        "#",
        "a+",
        "$SYS",
        "a b",
        "a\0",
        "é",
        "a.b",
        &"x".repeat(129),
    ] {
        assert!(AgentId::new(bad).is_err(), "{bad:?} accepted");
        assert!(CredentialName::new(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn names_validate_on_deserialisation() {
    assert!(serde_json::from_str::<AgentId>("\"ok-1\"").is_ok());
    assert!(serde_json::from_str::<AgentId>("\"bad/1\"").is_err());
}

#[test]
fn credential_ids_are_canonical_uuids() {
    let id = CredentialId::random();
    let text = id.to_string();
    assert_eq!(text.parse::<CredentialId>().unwrap(), id);
    assert!(text.to_uppercase().parse::<CredentialId>().is_err());
    assert!(text.replace('-', "").parse::<CredentialId>().is_err());
    assert!(format!("{{{text}}}").parse::<CredentialId>().is_err());
    assert!("not-a-uuid".parse::<CredentialId>().is_err());
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<CredentialId>(&json).unwrap(), id);
}

#[test]
fn error_does_not_echo_input() {
    let err = AgentId::new("evil/+/#payload").unwrap_err();
    assert!(!err.to_string().contains("payload"));
}
