//! Test fixtures shared by the agent's unit tests: an org CA, an operator, agents and signed credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tessera_proto::cert::{EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, Scope, Signed};

pub(crate) const NOW: i64 = 1_800_000_000;

pub(crate) struct Org {
    pub(crate) ca: OrgCa,
    pub(crate) operator_key: IdentityKey,
    pub(crate) operator_cert: Vec<u8>,
}

pub(crate) struct TestAgent {
    pub(crate) id: AgentId,
    pub(crate) identity: IdentityKey,
    pub(crate) wrap: WrapPrivateKey,
    pub(crate) cert: Vec<u8>,
}

impl Org {
    pub(crate) fn new() -> Self {
        let ca = OrgCa::generate("Test Org", Validity::days_from(NOW - 86_400, 3650)).unwrap();
        let operator_key = IdentityKey::generate().unwrap();
        let operator_cert = ca
            .issue_operator(
                &OperatorId::new("alice").unwrap(),
                operator_key.public_key(),
                Validity::days_from(NOW - 86_400, 365),
            )
            .unwrap();
        Self {
            ca,
            operator_key,
            operator_cert,
        }
    }

    pub(crate) fn agent(&self, id: &str) -> TestAgent {
        let identity = IdentityKey::generate().unwrap();
        let wrap = WrapPrivateKey::generate().unwrap();
        let id = AgentId::new(id).unwrap();
        let req = EnrollmentRequest::new(
            id.clone(),
            &identity,
            wrap.public_key(),
            BTreeMap::new(),
            NOW,
        )
        .unwrap();
        let cert = self
            .ca
            .issue_agent(&req, Validity::days_from(NOW - 86_400, 365))
            .unwrap();
        TestAgent {
            id,
            identity,
            wrap,
            cert,
        }
    }

    /// A signed statement and its payload.
    pub(crate) fn credential(
        &self,
        id: CredentialId,
        version: u64,
        name: &str,
        scope: Scope,
        secret: &str,
    ) -> (
        Signed<CredentialStatement>,
        CredentialStatement,
        SecretPayload,
    ) {
        let payload = SecretPayload::from_plain_text(secret).unwrap();
        let salt = Salt::random();
        let c = commitment::compute(&salt, &id, version, &payload);
        let st = CredentialStatement::new(
            id,
            version,
            0,
            CredentialName::new(name).unwrap(),
            scope,
            salt,
            c,
            OperatorId::new("alice").unwrap(),
            NOW,
        );
        let signed = Signed::sign(&st, &self.operator_key, &self.operator_cert).unwrap();
        (signed, st, payload)
    }
}

impl TestAgent {
    /// The agent's keys as the agent holds them (certificate verified).
    pub(crate) fn keys(&self, org: &Org) -> crate::identity::AgentKeys {
        let ca = org.ca.pinned().clone();
        let revocations = tessera_proto::statement::RevocationList::empty();
        let cert = ca.verify_agent(&self.cert, NOW, &revocations).unwrap();
        crate::identity::AgentKeys {
            id: self.id.clone(),
            identity: IdentityKey::from_pkcs8_der(&self.identity.to_pkcs8_der().unwrap()).unwrap(),
            wrap: WrapPrivateKey::from_pkcs8_der(self.wrap.to_pkcs8_der()).unwrap(),
            ca,
            cert,
            revocations,
        }
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
