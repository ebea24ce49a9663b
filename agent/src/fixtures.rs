//! Test fixtures for the agent's unit tests: the shared test org at a fixed "now", an agent's keys as the agent
//! holds them, and a fresh store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::cert::IdentityKey;
use tessera_proto::envelope::WrapPrivateKey;
pub(crate) use tessera_system_tests::org::{TestAgent, TestOrg as Org};

pub(crate) const NOW: i64 = 1_800_000_000;

/// The org at [`NOW`].
pub(crate) fn org() -> Org {
    Org::at(NOW)
}

/// The agent's keys as the agent holds them (certificate verified).
pub(crate) fn keys(org: &Org, agent: &TestAgent) -> crate::identity::AgentKeys {
    let ca = org.ca.pinned().clone();
    let revocations = tessera_proto::statement::RevocationList::empty();
    let cert = ca.verify_agent(&agent.cert, NOW, &revocations).unwrap();
    crate::identity::AgentKeys {
        id: agent.id.clone(),
        identity: IdentityKey::from_pkcs8_der(&agent.identity.to_pkcs8_der().unwrap()).unwrap(),
        wrap: WrapPrivateKey::from_pkcs8_der(agent.wrap.to_pkcs8_der()).unwrap(),
        ca,
        cert,
        revocations,
        decrypt_only: Vec::new(),
    }
}

/// A fresh store in a temp dir.
pub(crate) fn store() -> (tempfile::TempDir, crate::store::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(
        dir.path(),
        &tessera_proto::secret::SecretBytes::new(vec![9; 32]),
        100,
    )
    .unwrap();
    (dir, store)
}
