//! Each subject's text, as the relay stored it before the subjects were typed (alert keys and ids depend on it).
#![allow(clippy::unwrap_used)]

use tessera_proto::ids::{AgentId, CredentialId};

use super::Subject;

#[test]
fn every_subject_prints_as_before() {
    let c: CredentialId = "0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47".parse().unwrap();
    let a = AgentId::new("edge-1").unwrap();
    let cases = [
        (Subject::Agent(&a), "agent=edge-1"),
        (
            Subject::Credential(c),
            "credential=0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47",
        ),
        (
            Subject::Delivery(c, &a),
            "credential=0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47 agent=edge-1",
        ),
        (
            Subject::Mismatch(c, &a),
            "credential=0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47 target=edge-1",
        ),
        (
            Subject::ForgedDelivery(c, &a),
            "credential=0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47 target=edge-1 source=unknown",
        ),
        (
            Subject::Peer(&a, c),
            "peer=edge-1 credential=0b7e7c52-6a43-4f1e-9d0a-5c2b8e1f3a47",
        ),
    ];
    let replica = Subject::Replica("relay-2");
    assert_eq!(replica.to_string(), "replica=relay-2");
    for (subject, text) in cases {
        assert_eq!(subject.to_string(), text);
    }
}
